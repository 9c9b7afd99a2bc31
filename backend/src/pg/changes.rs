//! The change log on PostgreSQL, in commit order (docs/adr/0014). Changes are appended by every
//! use case through [`crate::sql::Tx::next_change`]; this module reads them.
//!
//! A delta cursor is the last change sequence number a device has seen; a reader must never see
//! number N+1 committed while N is still to come, or it skips N for ever. A PostgreSQL sequence
//! gives no such promise (numbers are taken at insert, transactions commit in any order). Here a
//! changing transaction takes its numbers from the one-row `change_counter`:
//! the row lock it takes is held until its commit, so the next transaction takes later numbers only
//! after this one committed, and a rollback gives the numbers back. All numbers taken and not yet
//! committed belong to one transaction and lie above every committed one: a reader that saw N has
//! seen everything up to N. The lock is held from the transaction's first change to its commit.
//! The same holds on distributed SQL stores, which have no LISTEN/NOTIFY or xid8 watermarks.

use super::PgError;

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
