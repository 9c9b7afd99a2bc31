//! SQL for each table family, as plain functions over a transaction. Handlers compose them inside
//! one `Db::write`/`Db::read` closure so every multi-step change is one transaction.

pub mod accounts;
pub mod catalog;
pub mod feed;
pub mod idempotency;
pub mod jobs;
pub mod keys;
pub mod ledger;
pub mod onsite;
pub mod outcomes;
pub mod push;
pub mod quotes;
pub mod ratings;

use friend_protocol::AccountId;

/// `execute` and `query_row` through the connection's statement cache: the same few dozen
/// statements run for every request, so parsing them once matters (measured in P7).
pub(crate) trait Cached {
    /// Executes a cached statement.
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// Runs a cached single-row query.
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for rusqlite::Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Parses a stored id. Ids are written only by this backend, so a bad one is corruption.
pub(crate) fn parse_id<T: std::str::FromStr>(s: &str) -> rusqlite::Result<T> {
    s.parse().map_err(|_| {
        rusqlite::Error::InvalidColumnType(0, format!("bad id {s}"), rusqlite::types::Type::Text)
    })
}

/// What a write's changes call for: pushes (queued in the same transaction, see
/// [`crate::push::plan`]) and, once committed, wake-ups of the long-polls they concern.
#[derive(Debug, Default)]
pub struct Effects {
    /// What each change tells whom, for the push queue.
    pub announce: Vec<crate::push::plan::Announcement>,
    /// Accounts the changed jobs name (customer, holder, previous holder).
    pub wake: Vec<AccountId>,
    /// Open (or just closed) jobs whose change every eligible Friend must hear of.
    pub broadcast: Vec<jobs::JobRow>,
    /// The newest change sequence number written.
    pub seq: u64,
}

impl Effects {
    /// Merges another write's effects into this one.
    pub fn merge(&mut self, other: Effects) {
        self.announce.extend(other.announce);
        self.wake.extend(other.wake);
        self.broadcast.extend(other.broadcast);
        self.seq = self.seq.max(other.seq);
    }
}
