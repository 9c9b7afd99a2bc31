//! Rows of the durable outbox.

use crate::error::{CoreError, CoreResult};
use friend_protocol::JobId;
use rusqlite::{Connection, Row, Transaction, params};

/// Delivery state of an outbox item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemStatus {
    /// Waiting to be delivered (or retried).
    Pending,
    /// The server applied it.
    Applied,
    /// The server refused it for good; set aside with the reason.
    Refused,
}

impl ItemStatus {
    fn parse(s: &str) -> ItemStatus {
        match s {
            "applied" => ItemStatus::Applied,
            "refused" => ItemStatus::Refused,
            _ => ItemStatus::Pending,
        }
    }
}

/// One queued action.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    /// Queue position (global order; delivery is ordered per job).
    pub id: i64,
    /// The job it acts on.
    pub job_id: JobId,
    /// What to do (see `crate::outbox::Action`).
    pub kind: String,
    /// JSON request body.
    pub payload: String,
    /// Idempotency key sent with every attempt.
    pub key: String,
    /// Delivery state.
    pub status: ItemStatus,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (device ms).
    pub next_attempt_at_ms: i64,
    /// When it was queued (device ms).
    pub created_at_ms: i64,
    /// Last transient failure.
    pub last_error: Option<String>,
    /// Refusal code (refused items).
    pub outcome_code: Option<String>,
    /// Refusal message (refused items).
    pub outcome_message: Option<String>,
    /// The server's answer (applied items).
    pub result: Option<String>,
}

const COLUMNS: &str =
    "id, job_id, kind, payload, idempotency_key, status, attempts, next_attempt_at, created_at,
    last_error, outcome_code, outcome_message, result";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ItemRow> {
    let job: String = r.get(1)?;
    let status: String = r.get(5)?;
    Ok(ItemRow {
        id: r.get(0)?,
        job_id: job.parse().map_err(|_| {
            rusqlite::Error::InvalidColumnType(1, "job_id".into(), rusqlite::types::Type::Text)
        })?,
        kind: r.get(2)?,
        payload: r.get(3)?,
        key: r.get(4)?,
        status: ItemStatus::parse(&status),
        attempts: r.get(6)?,
        next_attempt_at_ms: r.get(7)?,
        created_at_ms: r.get(8)?,
        last_error: r.get(9)?,
        outcome_code: r.get(10)?,
        outcome_message: r.get(11)?,
        result: r.get(12)?,
    })
}

/// Queues an action; returns its id.
pub fn enqueue(
    tx: &Transaction<'_>,
    job: JobId,
    kind: &str,
    payload: &str,
    key: &str,
    now_ms: i64,
) -> CoreResult<i64> {
    tx.execute(
        "INSERT INTO outbox (job_id, kind, payload, idempotency_key, next_attempt_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?5)",
        params![job.to_string(), kind, payload, key, now_ms],
    )?;
    Ok(tx.last_insert_rowid())
}

/// The first pending item of every job (later items of a job wait for it), oldest first.
pub fn heads(conn: &Connection) -> CoreResult<Vec<ItemRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE id IN
            (SELECT MIN(id) FROM outbox WHERE status = 'pending' GROUP BY job_id)
         ORDER BY id"
    ))?;
    Ok(stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// When the earliest deliverable item is due, if any: only each job's first pending item counts
/// (later ones wait for it), so a head in backoff does not make the timer spin.
pub fn next_due_ms(conn: &Connection) -> CoreResult<Option<i64>> {
    Ok(conn.query_row(
        "SELECT MIN(next_attempt_at) FROM outbox WHERE id IN
            (SELECT MIN(id) FROM outbox WHERE status = 'pending' GROUP BY job_id)",
        [],
        |r| r.get(0),
    )?)
}

/// All items, oldest first.
pub fn all(conn: &Connection) -> CoreResult<Vec<ItemRow>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM outbox ORDER BY id"))?;
    Ok(stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Pending items of one job, oldest first.
pub fn pending_for_job(conn: &Connection, job: JobId) -> CoreResult<Vec<ItemRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE status = 'pending' AND job_id = ?1 ORDER BY id"
    ))?;
    Ok(stmt
        .query_map(params![job.to_string()], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Every pending item, oldest first.
pub fn pending(conn: &Connection) -> CoreResult<Vec<ItemRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id"
    ))?;
    Ok(stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// (pending, refused) counts.
pub fn counts(conn: &Connection) -> CoreResult<(u32, u32)> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'refused'), 0) FROM outbox",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Marks an item applied, keeping the server's answer.
pub fn mark_applied(tx: &Transaction<'_>, id: i64, result: &str, now_ms: i64) -> CoreResult<()> {
    let n = tx.execute(
        "UPDATE outbox SET status = 'applied', updated_at = ?2, last_error = NULL, result = ?3 WHERE id = ?1",
        params![id, now_ms, result],
    )?;
    if n == 0 {
        return Err(CoreError::NotCached(format!("outbox item {id}")));
    }
    Ok(())
}

/// The newest item of `kind` whose payload equals `payload` and that is pending, or applied after
/// `since_ms` (a double tap or a retried call finds the first one).
pub fn find_recent(
    conn: &Connection,
    kind: &str,
    payload: &str,
    since_ms: i64,
) -> CoreResult<Option<ItemRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE kind = ?1 AND payload = ?2
            AND (status = 'pending' OR (status = 'applied' AND updated_at >= ?3))
         ORDER BY id DESC LIMIT 1"
    ))?;
    let mut rows = stmt.query_map(params![kind, payload, since_ms], from_row)?;
    Ok(rows.next().transpose()?)
}

/// Sets an item aside with the server's refusal.
pub fn mark_refused(
    tx: &Transaction<'_>,
    id: i64,
    code: &str,
    message: &str,
    now_ms: i64,
) -> CoreResult<()> {
    tx.execute(
        "UPDATE outbox SET status = 'refused', outcome_code = ?2, outcome_message = ?3, updated_at = ?4 WHERE id = ?1",
        params![id, code, message, now_ms],
    )?;
    Ok(())
}

/// Records a transient failure and when to try again.
pub fn mark_retry(
    tx: &Transaction<'_>,
    id: i64,
    next_ms: i64,
    error: &str,
    now_ms: i64,
) -> CoreResult<()> {
    tx.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3, updated_at = ?4
         WHERE id = ?1",
        params![id, next_ms, error, now_ms],
    )?;
    Ok(())
}
