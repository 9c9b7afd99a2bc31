//! Several instances on one PostgreSQL database (docs/adr/0014): what each instance learns of the
//! others' commits, and the work only one of them does.
//!
//! - Wake-ups: a write wakes the long-polls of its own instance at once ([`crate::notify`]); the
//!   others hear of it through [`crate::pg::wakeups::Follower`] (NOTIFY at commit, the counter
//!   polled as a fallback), read the accounts and open jobs the new changes name, and wake their
//!   own long-polls for them the same way. A lost notification costs latency, never a change: a
//!   long-poll that wakes reads its feed from its cursor.
//! - Singletons: the expiry sweep and the push dispatcher run where their lease is held
//!   ([`crate::pg::lease::Keeper`]); a draining instance hands them over.

use crate::AppState;
use crate::db::DbError;
use crate::pg::Pg;
use crate::pg::lease::{Keeper, Lease};
use crate::sql::{Tx, params};
use crate::store::{self, Effects};
use friend_protocol::{AccountId, JobId};
use std::sync::Arc;
use std::time::Duration;

/// How long a lease lasts from each renewal (a dead holder's work resumes elsewhere after this).
const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the follower reads the change counter when no notification comes.
const POLL: Duration = Duration::from_secs(1);
/// Most changes read per wake-up round (a burst is taken in several).
const BATCH: i64 = 2_000;

/// This instance among the others on one database.
pub struct Cluster {
    /// The expiry sweep's lease.
    pub expiry: Keeper,
    /// The push dispatcher's lease.
    pub push: Arc<Keeper>,
}

impl Cluster {
    /// This instance's view of the leases on `pg`, under a name random per start.
    pub fn new(pg: &Pg) -> Cluster {
        let instance = uuid::Uuid::new_v4().to_string();
        Cluster {
            expiry: Keeper::new(Lease::new(pg, "expiry", &instance, LEASE_TTL)),
            push: Arc::new(Keeper::new(Lease::new(pg, "push", &instance, LEASE_TTL))),
        }
    }

    /// Hands both leases over (draining).
    pub async fn release(&self) {
        self.expiry.release().await;
        self.push.release().await;
    }
}

/// Follows the other instances' commits until the task is aborted, waking this instance's
/// long-polls for them (and its push dispatcher: their pushes are queued with them), and their
/// token rotations, forgetting the old tokens here.
pub(crate) async fn follow_changes(state: Arc<AppState>, pg: Pg) {
    let mut follower = crate::pg::wakeups::Follower::start(&pg, POLL);
    let mut head = follower.head();
    // A token rotated on another instance: forget what this one's cache knew (ends with the
    // follower, which owns the sender).
    if let Some(mut rotated) = follower.rotated_tokens() {
        let state = state.clone();
        tokio::spawn(async move {
            while let Some(account) = rotated.recv().await {
                state.auth_cache.forget(account);
            }
        });
    }
    // Changes before this start are nobody's news here: no long-poll waited for them. (If the
    // counter cannot be read now, the first head heard is the baseline.)
    let mut seen: Option<i64> = state
        .db
        .read(|tx| {
            tx.row(
                "SELECT seq FROM change_counter WHERE id = 1",
                params![],
                |r| r.get::<i64>(0),
            )
            .map_err(DbError::from)
        })
        .await
        .ok();
    loop {
        if head.changed().await.is_err() {
            return;
        }
        let now = *head.borrow_and_update();
        let Some(from) = seen else {
            seen = Some(now);
            continue;
        };
        // Pushes queued by the other instances' commits: the dispatcher holding the lease looks.
        state.pusher.kick();
        // Nobody waits here: nothing to wake, nothing to read.
        if state.notifier.waiting_accounts() == 0 {
            seen = Some(now);
            continue;
        }
        let mut at = from;
        while at < now {
            let upto = now.min(at + BATCH);
            match state
                .db
                .read(move |tx| named_between(tx, at, upto).map_err(DbError::from))
                .await
            {
                Ok(effects) => {
                    state.notifier.wake(&effects);
                    at = upto;
                }
                Err(e) => {
                    tracing::warn!("reading other instances' changes: {e}");
                    break;
                }
            }
        }
        seen = Some(at);
    }
}

/// What the changes numbered `(after, upto]` concern: the accounts they name and the open (or
/// just closed) jobs they broadcast — as the write's own [`Effects`] say on its instance.
fn named_between(tx: &Tx<'_>, after: i64, upto: i64) -> crate::sql::Result<Effects> {
    let wake: Vec<AccountId> = tx.rows(
        "SELECT DISTINCT account_id FROM feed WHERE seq > ?1 AND seq <= ?2",
        params![after, upto],
        |r| store::parse_id(&r.get::<String>(0)?),
    )?;
    let jobs: Vec<JobId> = tx.rows(
        "SELECT DISTINCT job_id FROM area_feed WHERE seq > ?1 AND seq <= ?2",
        params![after, upto],
        |r| store::parse_id(&r.get::<String>(0)?),
    )?;
    Ok(Effects {
        announce: Vec::new(),
        wake,
        broadcast: store::jobs::get_many(tx, &jobs)?.into_values().collect(),
        seq: u64::try_from(upto).unwrap_or_default(),
    })
}
