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
pub mod quotes;
pub mod ratings;

use friend_protocol::AccountId;

/// Parses a stored id. Ids are written only by this backend, so a bad one is corruption.
pub(crate) fn parse_id<T: std::str::FromStr>(s: &str) -> rusqlite::Result<T> {
    s.parse().map_err(|_| {
        rusqlite::Error::InvalidColumnType(0, format!("bad id {s}"), rusqlite::types::Type::Text)
    })
}

/// What a committed write must do afterwards: wake these accounts' long-polls.
#[derive(Debug, Default)]
pub struct Effects {
    /// Accounts with new feed rows.
    pub wake: Vec<AccountId>,
    /// The newest change sequence number written.
    pub seq: u64,
}

impl Effects {
    /// Merges another write's effects into this one.
    pub fn merge(&mut self, other: Effects) {
        self.wake.extend(other.wake);
        self.seq = self.seq.max(other.seq);
    }
}
