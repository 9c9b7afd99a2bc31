//! Rows of the durable outbox. Everything an item carries that could hold personal data — the action
//! itself (a booking's address and contact, a rating's comment, notes), the last transient error and
//! the server's refusal message — is sealed here, with the item's idempotency key and the column as
//! associated data; the rest of the core sees plain [`ItemRow`]s. An applied item keeps only the
//! job id the server named, and settled items are deleted after a bounded time ([`prune`]).

use super::ActionKind;
use crate::crypto::FieldCipher;
use crate::error::{CoreError, CoreResult};
use friend_protocol::JobId;
use rusqlite::types::Value;
use rusqlite::{Connection, Params, Row, Transaction, params};

/// How long an applied item is kept (the app's outbox view and a booking's local → server id).
pub const APPLIED_KEPT_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a refused item is kept for the app to show: as long as the personal data of an ended
/// job.
pub const REFUSED_KEPT_MS: i64 = crate::engine::PURGE_PERSONAL_AFTER.num_milliseconds();

/// The refusal code of an item this version cannot read (its sealed payload does not open, its
/// kind or job id is unknown, its action does not parse): set aside by the device itself, never
/// sent.
pub const UNREADABLE_ITEM: &str = "unreadable_item";

const PAYLOAD: &str = "outbox.payload";
const LAST_ERROR: &str = "outbox.last_error";
const OUTCOME_MESSAGE: &str = "outbox.outcome_message";

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

/// One queued action, opened.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    /// Queue position (global order; delivery is ordered per job).
    pub id: i64,
    /// The job it acts on.
    pub job_id: JobId,
    /// What it does (the payload is the whole `crate::outbox::Action`).
    pub kind: ActionKind,
    /// The action as JSON (sealed at rest).
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
    /// The job the server applied it to (applied items; a booking's server id).
    pub server_job_id: Option<JobId>,
}

const COLUMNS: &str =
    "id, job_id, kind, payload, idempotency_key, status, attempts, next_attempt_at, created_at,
    last_error, outcome_code, outcome_message, server_job_id";

fn parse_job(s: &str) -> CoreResult<JobId> {
    s.parse()
        .map_err(|_| CoreError::Corrupt(format!("outbox job id {s}")))
}

/// Opens a sealed column; a text value is a version-1 row not yet sealed by [`seal_legacy`].
fn open_column(
    cipher: &FieldCipher,
    key: &str,
    field: &str,
    v: Value,
) -> CoreResult<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::Blob(sealed) => cipher.open_text(key, field, &sealed).map(Some),
        Value::Text(t) => Ok(Some(t)),
        _ => Err(CoreError::Corrupt(format!("{field}: unexpected type"))),
    }
}

fn from_row(cipher: &FieldCipher, r: &Row<'_>) -> CoreResult<ItemRow> {
    let key: String = r.get(4)?;
    let status: String = r.get(5)?;
    let job: String = r.get(1)?;
    let kind: String = r.get(2)?;
    let server_job: Option<String> = r.get(12)?;
    Ok(ItemRow {
        id: r.get(0)?,
        job_id: parse_job(&job)?,
        kind: ActionKind::parse(&kind)
            .ok_or_else(|| CoreError::Corrupt(format!("outbox kind {kind}")))?,
        payload: open_column(cipher, &key, PAYLOAD, r.get(3)?)?
            .ok_or_else(|| CoreError::Corrupt("outbox payload missing".into()))?,
        status: ItemStatus::parse(&status),
        attempts: r.get(6)?,
        next_attempt_at_ms: r.get(7)?,
        created_at_ms: r.get(8)?,
        last_error: open_column(cipher, &key, LAST_ERROR, r.get(9)?)?,
        outcome_code: r.get(10)?,
        outcome_message: open_column(cipher, &key, OUTCOME_MESSAGE, r.get(11)?)?,
        server_job_id: server_job.as_deref().map(parse_job).transpose()?,
        key,
    })
}

/// A pending item this version cannot read, to be set aside ([`mark_unreadable`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    /// Queue position.
    pub id: i64,
    /// Its idempotency key, if that much can be read (seals the refusal message).
    pub key: Option<String>,
    /// Its job, if that much can be read (for the listeners).
    pub job_id: Option<JobId>,
    /// What cannot be read: a stable code, never the content.
    pub problem: &'static str,
}

impl Unreadable {
    /// An item whose row opened but whose action does not parse.
    pub fn action_of(item: &ItemRow) -> Unreadable {
        Unreadable {
            id: item.id,
            key: Some(item.key.clone()),
            job_id: Some(item.job_id),
            problem: "action",
        }
    }
}

/// The row as an item, or what is known of it when it cannot be read. Only the content is judged
/// here; a failing database fails the whole read (`rows.next()`).
fn from_row_checked(cipher: &FieldCipher, r: &Row<'_>) -> CoreResult<Result<ItemRow, Unreadable>> {
    match from_row(cipher, r) {
        Ok(item) => Ok(Ok(item)),
        Err(e) => {
            let job: Option<String> = r.get(1).ok();
            Ok(Err(Unreadable {
                id: r.get(0)?,
                key: r.get(4).ok(),
                job_id: job.and_then(|j| j.parse().ok()),
                problem: e.code(),
            }))
        }
    }
}

fn select_checked(
    conn: &Connection,
    cipher: &FieldCipher,
    sql: &str,
    params: impl Params,
) -> CoreResult<Vec<Result<ItemRow, Unreadable>>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row_checked(cipher, r)?);
    }
    Ok(out)
}

fn select(
    conn: &Connection,
    cipher: &FieldCipher,
    sql: &str,
    params: impl Params,
) -> CoreResult<Vec<ItemRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(cipher, r)?);
    }
    Ok(out)
}

/// Queues an action (its JSON `payload`, sealed); returns its id.
pub fn enqueue(
    tx: &Transaction<'_>,
    cipher: &FieldCipher,
    job: JobId,
    kind: ActionKind,
    payload: &str,
    key: &str,
    now_ms: i64,
) -> CoreResult<i64> {
    tx.execute(
        "INSERT INTO outbox (job_id, kind, payload, digest, idempotency_key, next_attempt_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
        params![
            job.to_string(),
            kind.as_str(),
            cipher.seal_text(key, PAYLOAD, payload)?,
            cipher.digest(PAYLOAD, payload.as_bytes()),
            key,
            now_ms
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Deletes a pending item that never left the device, superseded by a newer one (the device's
/// push-token queue: `super::push::queue_change`; a job's waiting "on my way":
/// `Engine::enqueue_superseding`). Settled items are left alone.
pub fn forget(tx: &Transaction<'_>, id: i64) -> CoreResult<()> {
    tx.execute(
        "DELETE FROM outbox WHERE id = ?1 AND status = 'pending'",
        params![id],
    )?;
    Ok(())
}

/// Seals what a version-1 database (or a rescued copy of one) left in clear, fills in missing
/// digests, and keeps only the job id of applied items. Returns how many rows it rewrote.
///
/// A row it cannot read (a rescued payload that does not open, a key that is not text) does not
/// fail the open: a pending one is set aside as refused ([`UNREADABLE_ITEM`]), and nothing of it
/// is left in clear or selected again. Kinds and job ids are not judged here: delivery sets aside
/// what it cannot send.
pub fn seal_legacy(tx: &Transaction<'_>, cipher: &FieldCipher, now_ms: i64) -> CoreResult<usize> {
    let legacy: Vec<LegacyRow> = {
        let mut stmt = tx.prepare(
            "SELECT id, idempotency_key, payload, digest, last_error, outcome_message FROM outbox
             WHERE typeof(payload) = 'text' OR digest IS NULL
                OR typeof(last_error) = 'text' OR typeof(outcome_message) = 'text' ORDER BY id",
        )?;
        stmt.query_map([], |r| {
            Ok(LegacyRow {
                id: r.get(0)?,
                key: match r.get(1)? {
                    Value::Text(k) => Some(k),
                    _ => None,
                },
                payload: r.get(2)?,
                digest: match r.get(3)? {
                    Value::Blob(d) => Some(d),
                    _ => None,
                },
                last_error: r.get(4)?,
                outcome_message: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?
    };
    for row in &legacy {
        let key = row.key.as_deref();
        // A text column is sealed with the item's key; without a readable key it is dropped
        // rather than kept in clear.
        let seal = |field: &str, v: &Value| -> CoreResult<Value> {
            Ok(match (v, key) {
                (Value::Text(t), Some(k)) => Value::Blob(cipher.seal_text(k, field, t)?),
                (Value::Text(_), None) => Value::Null,
                (other, _) => other.clone(),
            })
        };
        let (payload, digest, readable) = match (&row.payload, key, &row.digest) {
            (Value::Text(t), Some(k), _) => (
                Value::Blob(cipher.seal_text(k, PAYLOAD, t)?),
                cipher.digest(PAYLOAD, t.as_bytes()),
                true,
            ),
            (Value::Blob(_), _, Some(d)) => (row.payload.clone(), d.clone(), true),
            (Value::Blob(b), Some(k), None) => match cipher.open_text(k, PAYLOAD, b) {
                Ok(t) => (
                    row.payload.clone(),
                    cipher.digest(PAYLOAD, t.as_bytes()),
                    true,
                ),
                // An empty digest matches no action's, and keeps the row from being selected
                // again.
                Err(_) => (row.payload.clone(), Vec::new(), false),
            },
            (Value::Blob(_), None, None) => (row.payload.clone(), Vec::new(), false),
            // Text without a key to seal it with, or no payload at all: nothing is kept in clear.
            _ => (Value::Blob(Vec::new()), Vec::new(), false),
        };
        tx.execute(
            "UPDATE outbox SET payload = ?2, digest = ?3, last_error = ?4, outcome_message = ?5
             WHERE id = ?1",
            params![
                row.id,
                payload,
                digest,
                seal(LAST_ERROR, &row.last_error)?,
                seal(OUTCOME_MESSAGE, &row.outcome_message)?,
            ],
        )?;
        if !readable {
            tracing::warn!(
                item = row.id,
                code = UNREADABLE_ITEM,
                "an outbox item left by an older version cannot be read; set aside"
            );
            let unreadable = Unreadable {
                id: row.id,
                key: row.key.clone(),
                job_id: None,
                problem: "legacy",
            };
            mark_unreadable(tx, cipher, &unreadable, now_ms)?;
        }
    }
    Ok(legacy.len())
}

/// A row [`seal_legacy`] looks at, as stored.
struct LegacyRow {
    id: i64,
    /// The idempotency key, when it is text (it seals the other columns).
    key: Option<String>,
    payload: Value,
    digest: Option<Vec<u8>>,
    last_error: Value,
    outcome_message: Value,
}

/// Deletes applied items older than [`APPLIED_KEPT_MS`] and refused ones older than
/// [`REFUSED_KEPT_MS`] (by when they settled). Pending items are never deleted.
pub fn prune(tx: &Transaction<'_>, now_ms: i64) -> CoreResult<usize> {
    Ok(tx.execute(
        "DELETE FROM outbox WHERE (status = 'applied' AND updated_at < ?1)
            OR (status = 'refused' AND updated_at < ?2)",
        params![now_ms - APPLIED_KEPT_MS, now_ms - REFUSED_KEPT_MS],
    )?)
}

/// The first pending item of every job (later items of a job wait for it), oldest first; one this
/// version cannot read comes as [`Unreadable`], so it holds back nothing but itself.
pub fn heads(
    conn: &Connection,
    cipher: &FieldCipher,
) -> CoreResult<Vec<Result<ItemRow, Unreadable>>> {
    select_checked(
        conn,
        cipher,
        &format!(
            "SELECT {COLUMNS} FROM outbox WHERE id IN
                (SELECT MIN(id) FROM outbox WHERE status = 'pending' GROUP BY job_id)
             ORDER BY id"
        ),
        [],
    )
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

/// All items this version can read, oldest first. One it cannot read is left out (delivery sets
/// it aside as refused, [`UNREADABLE_ITEM`], so it is counted among the refused ones).
pub fn all(conn: &Connection, cipher: &FieldCipher) -> CoreResult<Vec<ItemRow>> {
    Ok(select_checked(
        conn,
        cipher,
        &format!("SELECT {COLUMNS} FROM outbox ORDER BY id"),
        [],
    )?
    .into_iter()
    .filter_map(Result::ok)
    .collect())
}

/// Pending items of one job, oldest first.
pub fn pending_for_job(
    conn: &Connection,
    cipher: &FieldCipher,
    job: JobId,
) -> CoreResult<Vec<ItemRow>> {
    select(
        conn,
        cipher,
        &format!(
            "SELECT {COLUMNS} FROM outbox WHERE status = 'pending' AND job_id = ?1 ORDER BY id"
        ),
        params![job.to_string()],
    )
}

/// Every pending item, oldest first.
pub fn pending(conn: &Connection, cipher: &FieldCipher) -> CoreResult<Vec<ItemRow>> {
    select(
        conn,
        cipher,
        &format!("SELECT {COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id"),
        [],
    )
}

/// The item of a booking by its local job id, if still kept.
pub fn booking(
    conn: &Connection,
    cipher: &FieldCipher,
    local: JobId,
) -> CoreResult<Option<ItemRow>> {
    Ok(select(
        conn,
        cipher,
        &format!(
            "SELECT {COLUMNS} FROM outbox WHERE kind = 'book' AND job_id = ?1 ORDER BY id LIMIT 1"
        ),
        params![local.to_string()],
    )?
    .pop())
}

/// (pending, refused) counts.
pub fn counts(conn: &Connection) -> CoreResult<(u32, u32)> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'refused'), 0) FROM outbox",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Marks an item applied, keeping only the job the server named (the server's answer itself, a
/// whole job with address and contact, goes to the sealed cache, not here).
pub fn mark_applied(
    tx: &Transaction<'_>,
    id: i64,
    server_job: Option<JobId>,
    now_ms: i64,
) -> CoreResult<()> {
    let n = tx.execute(
        "UPDATE outbox SET status = 'applied', updated_at = ?2, last_error = NULL, server_job_id = ?3
         WHERE id = ?1",
        params![id, now_ms, server_job.map(|j| j.to_string())],
    )?;
    if n == 0 {
        return Err(CoreError::NotCached(format!("outbox item {id}")));
    }
    Ok(())
}

/// The newest item of `kind` whose action equals `payload` and that is pending, or applied after
/// `since_ms` (a double tap or a retried call finds the first one). Compared by keyed digest, so
/// no payload is opened.
pub fn find_recent(
    conn: &Connection,
    cipher: &FieldCipher,
    kind: ActionKind,
    payload: &str,
    since_ms: i64,
) -> CoreResult<Option<ItemRow>> {
    Ok(select(
        conn,
        cipher,
        &format!(
            "SELECT {COLUMNS} FROM outbox WHERE kind = ?1 AND digest = ?2
                AND (status = 'pending' OR (status = 'applied' AND updated_at >= ?3))
             ORDER BY id DESC LIMIT 1"
        ),
        params![
            kind.as_str(),
            cipher.digest(PAYLOAD, payload.as_bytes()),
            since_ms
        ],
    )?
    .pop())
}

/// Sets an item aside with the server's refusal (the message sealed).
pub fn mark_refused(
    tx: &Transaction<'_>,
    cipher: &FieldCipher,
    item: &ItemRow,
    code: &str,
    message: &str,
    now_ms: i64,
) -> CoreResult<()> {
    tx.execute(
        "UPDATE outbox SET status = 'refused', outcome_code = ?2, outcome_message = ?3, updated_at = ?4
         WHERE id = ?1",
        params![
            item.id,
            code,
            cipher.seal_text(&item.key, OUTCOME_MESSAGE, message)?,
            now_ms
        ],
    )?;
    Ok(())
}

/// Sets aside a pending item this version cannot read: refused with [`UNREADABLE_ITEM`], never
/// sent. The message (sealed when the key is known) names the problem, never the content.
pub fn mark_unreadable(
    tx: &Transaction<'_>,
    cipher: &FieldCipher,
    item: &Unreadable,
    now_ms: i64,
) -> CoreResult<()> {
    let message = format!(
        "this version cannot read the queued action ({})",
        item.problem
    );
    let sealed = item
        .key
        .as_deref()
        .map(|k| cipher.seal_text(k, OUTCOME_MESSAGE, &message))
        .transpose()?;
    tx.execute(
        "UPDATE outbox SET status = 'refused', outcome_code = ?2, outcome_message = ?3, updated_at = ?4
         WHERE id = ?1 AND status = 'pending'",
        params![item.id, UNREADABLE_ITEM, sealed, now_ms],
    )?;
    Ok(())
}

/// Records a transient failure (sealed) and when to try again.
pub fn mark_retry(
    tx: &Transaction<'_>,
    cipher: &FieldCipher,
    item: &ItemRow,
    next_ms: i64,
    error: &str,
    now_ms: i64,
) -> CoreResult<()> {
    tx.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3, updated_at = ?4
         WHERE id = ?1",
        params![
            item.id,
            next_ms,
            cipher.seal_text(&item.key, LAST_ERROR, error)?,
            now_ms
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MIGRATIONS, Store, migrate};

    const MARKER: &str = "Quarzgasse 17";

    fn cipher() -> FieldCipher {
        FieldCipher::new(&[9u8; 32]).unwrap()
    }

    fn file_has(path: &std::path::Path, needle: &str) -> bool {
        let mut hit = false;
        for suffix in ["", "-wal", "-shm"] {
            let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if let Ok(bytes) = std::fs::read(&p) {
                hit |= bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            }
        }
        hit
    }

    #[test]
    fn a_version_1_outbox_is_sealed_and_keeps_only_the_server_job_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let (local, server) = (JobId::random(), JobId::random());
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
            let book = format!(r#"{{"kind":"book","street":"{MARKER}"}}"#);
            let answer = format!(r#"{{"job":{{"id":"{server}","street":"{MARKER}"}}}}"#);
            conn.execute(
                "INSERT INTO outbox (job_id, kind, payload, idempotency_key, status, next_attempt_at,
                    created_at, updated_at, last_error, result)
                 VALUES (?1, 'book', ?2, 'k1', 'applied', 1, 1, 1, ?3, ?4)",
                params![local.to_string(), book, format!("offline: {MARKER}"), answer],
            )
            .unwrap();
        }
        assert!(file_has(&path, MARKER), "the old file has it in clear");
        let store = Store::open(&path).unwrap();
        let c = cipher();
        assert_eq!(store.write(|tx| seal_legacy(tx, &c, 2)).unwrap(), 1);
        assert_eq!(store.write(|tx| seal_legacy(tx, &c, 3)).unwrap(), 0, "once");
        let item = store
            .read(|conn| booking(conn, &c, local))
            .unwrap()
            .unwrap();
        assert_eq!(item.server_job_id, Some(server));
        assert!(item.payload.contains(MARKER), "opened for the app");
        assert_eq!(
            item.last_error.as_deref(),
            Some(&*format!("offline: {MARKER}"))
        );
        store
            .read(|conn| Ok(conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?))
            .unwrap();
        drop(store);
        assert!(!file_has(&path, MARKER), "no copy left in clear");
    }

    #[test]
    fn payloads_are_sealed_to_their_item_and_found_again_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.db")).unwrap();
        let c = cipher();
        let job = JobId::random();
        let payload = format!(r#"{{"kind":"book","street":"{MARKER}"}}"#);
        store
            .write(|tx| enqueue(tx, &c, job, ActionKind::Book, &payload, "key-a", 10))
            .unwrap();
        let found = store
            .read(|conn| find_recent(conn, &c, ActionKind::Book, &payload, 0))
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.job_id, found.payload.as_str()),
            (job, payload.as_str())
        );
        let other = r#"{"kind":"book","street":"elsewhere"}"#;
        assert!(
            store
                .read(|conn| find_recent(conn, &c, ActionKind::Book, other, 0))
                .unwrap()
                .is_none()
        );
        // A sealed payload moved to another item does not open.
        store
            .write(|tx| enqueue(tx, &c, job, ActionKind::Book, other, "key-b", 11))
            .unwrap();
        store
            .write(|tx| {
                tx.execute_batch(
                    "UPDATE outbox SET payload = (SELECT payload FROM outbox WHERE idempotency_key = 'key-a')
                     WHERE idempotency_key = 'key-b'",
                )?;
                Ok(())
            })
            .unwrap();
        assert!(matches!(
            store.read(|conn| pending(conn, &c)),
            Err(CoreError::WrongKey)
        ));
        let [listed] = store
            .read(|conn| all(conn, &c))
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            listed.key, "key-a",
            "the listing leaves out what does not open"
        );
    }

    #[test]
    fn settled_items_are_pruned_after_their_retention_and_pending_ones_never() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let c = cipher();
        let day = 24 * 60 * 60 * 1000;
        let now = 100 * day;
        store
            .write(|tx| {
                for (key, at) in [
                    ("pending", 0),
                    ("applied-old", 0),
                    ("applied-new", now - 1000),
                ] {
                    let id = enqueue(tx, &c, JobId::random(), ActionKind::CheckIn, "{}", key, at)?;
                    if key != "pending" {
                        mark_applied(tx, id, None, at)?;
                    }
                }
                for (key, at) in [
                    ("refused-old", now - 15 * day),
                    ("refused-new", now - 13 * day),
                ] {
                    let id = enqueue(tx, &c, JobId::random(), ActionKind::CheckIn, "{}", key, at)?;
                    let item = ItemRow {
                        id,
                        job_id: JobId::random(),
                        kind: ActionKind::CheckIn,
                        payload: "{}".into(),
                        key: key.into(),
                        status: ItemStatus::Pending,
                        attempts: 0,
                        next_attempt_at_ms: at,
                        created_at_ms: at,
                        last_error: None,
                        outcome_code: None,
                        outcome_message: None,
                        server_job_id: None,
                    };
                    mark_refused(tx, &c, &item, "job_closed", "closed", at)?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(store.write(|tx| prune(tx, now)).unwrap(), 2);
        let mut left: Vec<String> = store
            .read(|conn| all(conn, &c))
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect();
        left.sort();
        assert_eq!(left, ["applied-new", "pending", "refused-new"]);
    }
}
