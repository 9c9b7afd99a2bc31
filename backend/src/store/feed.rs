//! The change log and its per-account fan-out. Every change of a job appends one `changes` row and
//! one `feed` row per concerned account: the customer, the Friend holding it (and the one who held it
//! before), and — while the job is or was open — every Friend eligible for it. A delta sync is then a
//! range scan of the caller's feed rows, O(changes) and never O(inbox).

use super::jobs::JobRow;
use super::{Effects, accounts, parse_id};
use crate::clock::to_ms;
use crate::store::Cached as _;
use chrono::{DateTime, Utc};
use friend_protocol::{AccountId, JobId, JobState, Place, eligibility};
use rusqlite::{Connection, OptionalExtension, params};

/// Appends a change of `job` (its state after the change) and fans it out. `previous_holder` is the
/// Friend who held it before the change (for releases), `was_open` whether it was open before.
pub fn record(
    tx: &Connection,
    job: &JobRow,
    previous_holder: Option<AccountId>,
    was_open: bool,
    now: DateTime<Utc>,
) -> rusqlite::Result<Effects> {
    tx.exec(
        "INSERT INTO changes (job_id, at) VALUES (?1, ?2)",
        params![job.id.to_string(), to_ms(now)],
    )?;
    let seq = tx.last_insert_rowid();

    let mut concerned = vec![job.customer_id];
    concerned.extend(job.friend_id());
    concerned.extend(previous_holder);
    if was_open || job.state == JobState::Open {
        let candidates = match (job.place, job.location) {
            (Place::OnSite, Some(at)) => {
                accounts::friends_near(tx, &at, eligibility::max_reach_m(job.radius_km))?
            }
            _ => accounts::all_friends(tx)?,
        };
        let reach = job.reach();
        concerned.extend(
            candidates
                .iter()
                .filter(|f| eligibility::check(f, &reach).is_ok())
                .map(|f| f.id),
        );
    }
    concerned.sort();
    concerned.dedup();

    let mut stmt =
        tx.prepare_cached("INSERT INTO feed (account_id, seq, job_id) VALUES (?1, ?2, ?3)")?;
    let job_id = job.id.to_string();
    for account in &concerned {
        stmt.execute(params![account.to_string(), seq, job_id])?;
    }
    Ok(Effects {
        wake: concerned,
        seq: seq as u64,
    })
}

/// The newest change sequence number (0 when nothing happened yet).
pub fn head(tx: &Connection) -> rusqlite::Result<i64> {
    tx.row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
        r.get(0)
    })
}

/// The oldest cursor still served: changes at or below it may have been pruned.
pub fn floor(tx: &Connection) -> rusqlite::Result<i64> {
    let v: Option<String> = tx
        .row("SELECT value FROM meta WHERE key = 'feed_floor'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Feed rows of `account` after `cursor`: up to `limit` (seq, job) pairs, and whether more follow.
pub fn after(
    tx: &Connection,
    account: AccountId,
    cursor: i64,
    limit: u32,
) -> rusqlite::Result<(Vec<(i64, JobId)>, bool)> {
    let mut stmt = tx.prepare_cached(
        "SELECT seq, job_id FROM feed WHERE account_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let mut rows = stmt
        .query_map(
            params![account.to_string(), cursor, i64::from(limit) + 1],
            |r| Ok((r.get::<_, i64>(0)?, parse_id(&r.get::<_, String>(1)?)?)),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// Drops changes older than `before` and raises the floor: cursors below it get "cursor too old".
pub fn prune_before(tx: &Connection, before: DateTime<Utc>) -> rusqlite::Result<i64> {
    let cut: i64 = tx.row(
        "SELECT COALESCE(MAX(seq), 0) FROM changes WHERE at < ?1",
        params![to_ms(before)],
        |r| r.get(0),
    )?;
    if cut == 0 {
        return Ok(0);
    }
    tx.exec("DELETE FROM feed WHERE seq <= ?1", params![cut])?;
    let n = tx.exec("DELETE FROM changes WHERE seq <= ?1", params![cut])?;
    tx.exec(
        "INSERT INTO meta (key, value) VALUES ('feed_floor', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![cut.to_string()],
    )?;
    Ok(n as i64)
}
