//! The change log and its fan-out. Every change of a job appends one `changes` row, one `feed` row
//! per account the job names (the customer, the Friend holding it and the one who held it before)
//! and — while the job is or was open — one `area_feed` row in the job's area tile
//! ([`crate::area`]). A delta sync is a range scan of the caller's own rows plus, for a Friend, of
//! the tiles their reach touches: O(changes nearby), never O(inbox), and a write costs the same
//! however many Friends are in reach.

use super::jobs::JobRow;
use super::{Effects, parse_id};
use crate::area;
use crate::clock::to_ms;
use crate::push::plan::{Announcement, News};
use crate::sql::{Param, Tx, params};
use chrono::{DateTime, Utc};
use friend_protocol::{AccountId, JobId, JobState, Place};

/// Appends a change of `job` (its state after the change) and fans it out. `previous_holder` is the
/// Friend who held it before the change (for releases), `was_open` whether it was open before,
/// `news` whom the change is pushed to.
pub fn record(
    tx: &Tx<'_>,
    job: &JobRow,
    previous_holder: Option<AccountId>,
    was_open: bool,
    news: &[News],
    now: DateTime<Utc>,
) -> crate::sql::Result<Effects> {
    let mut named = vec![job.customer_id];
    named.extend(job.friend_id());
    named.extend(previous_holder);
    let mut effects = append(tx, job.id, named, now)?;
    for news in news.iter().filter(|n| **n != News::Quiet) {
        effects.announce.push(Announcement {
            job: job.clone(),
            news: *news,
            holder: job.friend_id().or(previous_holder),
        });
    }
    if was_open || job.state == JobState::Open {
        tx.exec(
            "INSERT INTO area_feed (tile, seq, job_id) VALUES (?1, ?2, ?3)",
            params![tile(job), effects.seq as i64, job.id.to_string()],
        )?;
        effects.broadcast.push(job.clone());
    }
    Ok(effects)
}

/// Appends a change of `job_id` that only `account` hears of (a decline: the job itself did not
/// change for anyone else).
pub fn record_for(
    tx: &Tx<'_>,
    job_id: JobId,
    account: AccountId,
    now: DateTime<Utc>,
) -> crate::sql::Result<Effects> {
    append(tx, job_id, vec![account], now)
}

/// One `changes` row and a `feed` row for each of `named`, who are then the accounts to wake.
fn append(
    tx: &Tx<'_>,
    job_id: JobId,
    mut named: Vec<AccountId>,
    now: DateTime<Utc>,
) -> crate::sql::Result<Effects> {
    let job = job_id.to_string();
    let seq = tx.next_change(&job, to_ms(now))?;
    named.sort();
    named.dedup();
    for account in &named {
        tx.exec(
            "INSERT INTO feed (account_id, seq, job_id) VALUES (?1, ?2, ?3)",
            params![account.to_string(), seq, job],
        )?;
    }
    Ok(Effects {
        announce: Vec::new(),
        wake: named,
        broadcast: Vec::new(),
        seq: seq as u64,
    })
}

/// The area tile a job's open-job changes go to.
fn tile(job: &JobRow) -> i64 {
    match (job.place, job.location) {
        (Place::OnSite, Some(at)) => area::tile_of(&at),
        _ => area::REMOTE,
    }
}

/// The newest change sequence number (0 when nothing happened yet), as a query.
const HEAD: &str = "SELECT COALESCE(MAX(seq), 0) FROM changes";

/// The newest change sequence number (0 when nothing happened yet).
pub fn head(tx: &Tx<'_>) -> crate::sql::Result<i64> {
    tx.row(HEAD, params![], |r| r.get(0))
}

/// The delta cursors still served, `(floor, head)`: changes at or below the floor may have been
/// pruned, the head is the last change ([`head`]). One statement, read by every long-poll.
pub fn bounds(tx: &Tx<'_>) -> crate::sql::Result<(i64, i64)> {
    let (floor, head): (Option<String>, i64) = tx.row(
        &format!("SELECT (SELECT value FROM meta WHERE key = 'feed_floor'), ({HEAD})"),
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((floor.and_then(|v| v.parse().ok()).unwrap_or(0), head))
}

/// One feed row: a change sequence number, the job it changed, and whether it came from an area
/// tile (then the reader must still apply the eligibility rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedRow {
    /// Change sequence number.
    pub seq: i64,
    /// The job changed.
    pub job: JobId,
    /// Read from an area tile rather than the account's own rows.
    pub broadcast: bool,
}

/// Feed rows of `account` after `cursor`, merged with the rows of `tiles` (a Friend's reach; empty
/// for customers): up to `limit` rows in sequence order, and whether more follow.
///
/// One statement, however many tiles: a long-poll renews every 30 s, and on PostgreSQL each
/// statement is a round trip (a Friend reads about ten tiles). Each source is still a range scan
/// of its own index with its own limit — the first `limit + 1` rows of the union are among the
/// first `limit + 1` of each source — so a cursor far behind reads a bounded number of rows.
pub fn after(
    tx: &Tx<'_>,
    account: AccountId,
    tiles: &[i64],
    cursor: i64,
    limit: u32,
) -> crate::sql::Result<(Vec<FeedRow>, bool)> {
    let take = i64::from(limit) + 1;
    let mut sql = String::from(
        "SELECT seq, job_id, 0 FROM (SELECT seq, job_id FROM feed \
         WHERE account_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3) AS own",
    );
    for n in 4..4 + tiles.len() {
        sql.push_str(&format!(
            " UNION ALL SELECT seq, job_id, 1 FROM (SELECT seq, job_id FROM area_feed \
             WHERE tile = ?{n} AND seq > ?2 ORDER BY seq LIMIT ?3) AS t{n}"
        ));
    }
    let account = account.to_string();
    let mut bound: Vec<&dyn Param> = vec![&account, &cursor, &take];
    bound.extend(tiles.iter().map(|t| t as &dyn Param));
    let mut rows = tx.rows(&sql, &bound, |r| {
        Ok(FeedRow {
            seq: r.get(0)?,
            job: parse_id(&r.get::<String>(1)?)?,
            broadcast: r.get(2)?,
        })
    })?;
    // Own rows sort before a tile's copy of the same change (`broadcast` false first): a change
    // that names the account is read from its own rows.
    rows.sort_unstable();
    rows.dedup_by(|later, earlier| later.seq == earlier.seq);
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// Drops changes older than `before` and raises the floor: cursors below it get "cursor too old".
pub fn prune_before(tx: &Tx<'_>, before: DateTime<Utc>) -> crate::sql::Result<i64> {
    let cut: i64 = tx.row(
        "SELECT COALESCE(MAX(seq), 0) FROM changes WHERE at < ?1",
        params![to_ms(before)],
        |r| r.get(0),
    )?;
    if cut == 0 {
        return Ok(0);
    }
    tx.exec("DELETE FROM feed WHERE seq <= ?1", params![cut])?;
    tx.exec("DELETE FROM area_feed WHERE seq <= ?1", params![cut])?;
    let n = tx.exec("DELETE FROM changes WHERE seq <= ?1", params![cut])?;
    tx.exec(
        "INSERT INTO meta (key, value) VALUES ('feed_floor', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![cut.to_string()],
    )?;
    Ok(n as i64)
}
