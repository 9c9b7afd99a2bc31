//! SQL for each table family, as plain functions over a transaction. Handlers compose them inside
//! one `Database::write`/`Database::read` closure so every multi-step change is one transaction.

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

/// Parses a stored id. Ids are written only by this backend, so a bad one is corruption.
pub(crate) fn parse_id<T: std::str::FromStr>(s: &str) -> crate::sql::Result<T> {
    s.parse()
        .map_err(|_| crate::sql::SqlError::Corrupt(format!("bad id {s}")))
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
