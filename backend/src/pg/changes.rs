//! The change log on PostgreSQL, in commit order (docs/adr/0014).
//!
//! A delta cursor is the last change sequence number a device has seen; a reader must never see
//! number N+1 committed while N is still to come, or it skips N for ever. A PostgreSQL sequence
//! gives no such promise (numbers are taken at insert, transactions commit in any order). Here a
//! changing transaction takes its numbers from the one-row `change_counter` as its **last step**:
//! the row lock it takes is held until its commit, so the next transaction takes later numbers only
//! after this one committed, and a rollback gives the numbers back. All numbers taken and not yet
//! committed belong to one transaction and lie above every committed one: a reader that saw N has
//! seen everything up to N. The lock is held only from the last step to the commit (microseconds).
//! The same holds on distributed SQL stores, which have no LISTEN/NOTIFY or xid8 watermarks.

use super::PgError;
use tokio_postgres::Transaction;

/// One change to log: the job, the accounts it names, and for an open job's change its area tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The job.
    pub job_id: String,
    /// Accounts that hear of it (customer, holder, previous holder), each once.
    pub named: Vec<String>,
    /// The area tile, while the job is or was open ([`crate::area`]).
    pub tile: Option<i64>,
    /// When, milliseconds since the epoch.
    pub at_ms: i64,
}

/// Appends `entries` as the transaction's last step: takes their sequence numbers from the
/// counter row, writes the `changes`, `feed` and `area_feed` rows and announces the new head to
/// the other instances ([`super::wakeups`]). Returns each entry's number.
pub async fn append(tx: &Transaction<'_>, entries: &[Entry]) -> Result<Vec<i64>, PgError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let n = entries.len() as i64;
    let last: i64 = tx
        .query_one(
            "UPDATE change_counter SET seq = seq + $1 WHERE id = 1 RETURNING seq",
            &[&n],
        )
        .await?
        .get(0);
    let change = tx
        .prepare("INSERT INTO changes (seq, job_id, at) VALUES ($1, $2, $3)")
        .await?;
    let feed = tx
        .prepare("INSERT INTO feed (account_id, seq, job_id) VALUES ($1, $2, $3)")
        .await?;
    let area = tx
        .prepare("INSERT INTO area_feed (tile, seq, job_id) VALUES ($1, $2, $3)")
        .await?;
    let mut seqs = Vec::with_capacity(entries.len());
    for (entry, seq) in entries.iter().zip(last - n + 1..) {
        tx.execute(&change, &[&seq, &entry.job_id, &entry.at_ms])
            .await?;
        let mut named: Vec<&String> = entry.named.iter().collect();
        named.sort();
        named.dedup();
        for account in named {
            tx.execute(&feed, &[account, &seq, &entry.job_id]).await?;
        }
        if let Some(tile) = entry.tile {
            tx.execute(&area, &[&tile, &seq, &entry.job_id]).await?;
        }
        seqs.push(seq);
    }
    // Heard by the other instances at commit (and never for a rollback).
    super::wakeups::announce(tx, last).await?;
    Ok(seqs)
}

/// The changes after `cursor` that `account` hears of (its own feed rows), oldest first, at most
/// `limit`: (sequence number, job id).
pub async fn feed_after(
    client: &impl tokio_postgres::GenericClient,
    account: &str,
    cursor: i64,
    limit: i64,
) -> Result<Vec<(i64, String)>, PgError> {
    let rows = client
        .query(
            "SELECT seq, job_id FROM feed WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&account, &cursor, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
