//! Leases: the work one instance does for all (the expiry sweep, the push dispatcher) runs where
//! the lease is held (docs/adr/0014). The holder renews it well before it lapses; when the holder
//! dies, another instance takes it over once `until` passed; a draining instance hands it over at
//! once ([`Lease::release`]). Times come from the database's clock, so instances need not agree on
//! theirs. Chosen over session advisory locks, which vanish silently with a pooled connection and
//! do not exist on distributed SQL.

use super::{Pg, PgError};
use std::time::Duration;

/// One named lease as one instance sees it.
#[derive(Clone)]
pub struct Lease {
    pg: Pg,
    name: String,
    holder: String,
    ttl: Duration,
}

impl Lease {
    /// The lease `name` for the instance `holder`, held for `ttl` from each (re)acquisition.
    pub fn new(pg: &Pg, name: &str, holder: &str, ttl: Duration) -> Lease {
        Lease {
            pg: pg.clone(),
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl,
        }
    }

    /// Takes the lease if nobody holds it, it lapsed, or this instance holds it (then it is
    /// renewed). Whether this instance holds it now, for `ttl`.
    pub async fn acquire(&self) -> Result<bool, PgError> {
        let conn = self.pg.conn().await?;
        let ttl_ms = self.ttl.as_secs_f64() * 1000.0;
        let row = conn
            .query_opt(
                "INSERT INTO leases (name, holder, until)
                 VALUES ($1, $2, clock_timestamp() + $3::float8 * interval '1 millisecond')
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE leases.holder = excluded.holder OR leases.until < clock_timestamp()
                 RETURNING holder",
                &[&self.name, &self.holder, &ttl_ms],
            )
            .await?;
        Ok(row.is_some())
    }

    /// Gives the lease up now if this instance holds it: another takes it at its next attempt.
    pub async fn release(&self) -> Result<(), PgError> {
        let conn = self.pg.conn().await?;
        conn.execute(
            "UPDATE leases SET until = '-infinity' WHERE name = $1 AND holder = $2",
            &[&self.name, &self.holder],
        )
        .await?;
        Ok(())
    }

    /// Who holds lease `name` now (none: free or lapsed).
    pub async fn holder(pg: &Pg, name: &str) -> Result<Option<String>, PgError> {
        let conn = pg.conn().await?;
        let row = conn
            .query_opt(
                "SELECT holder FROM leases WHERE name = $1 AND until >= clock_timestamp()",
                &[&name],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// A lease as a long-running task asks about it: "do I hold it now?", answered from memory for a
/// third of the lease's time after each attempt, so a busy loop costs one statement per
/// `ttl / 3`, never one per turn. A kept lease is renewed at each such attempt; after
/// [`Keeper::release`] it is never taken again by this instance (draining).
pub struct Keeper {
    lease: Lease,
    state: std::sync::Mutex<KeeperState>,
}

#[derive(Default)]
struct KeeperState {
    held: bool,
    checked: Option<std::time::Instant>,
    released: bool,
}

impl Keeper {
    /// Keeps `lease`.
    pub fn new(lease: Lease) -> Keeper {
        Keeper {
            lease,
            state: Default::default(),
        }
    }

    /// How long an answer of [`Keeper::held`] stands: a third of the lease, so a holder renews it
    /// twice before it could lapse.
    pub fn recheck(&self) -> Duration {
        self.lease.ttl / 3
    }

    /// Whether this instance holds the lease now (taking or renewing it when due).
    pub async fn held(&self) -> bool {
        if let Ok(s) = self.state.lock() {
            if s.released {
                return false;
            }
            if s.checked.is_some_and(|at| at.elapsed() < self.recheck()) {
                return s.held;
            }
        }
        let held = match self.lease.acquire().await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(lease = %self.lease.name, code = e.code(), "lease check failed: {e}");
                false
            }
        };
        if let Ok(mut s) = self.state.lock() {
            if s.released {
                return false;
            }
            if held != s.held {
                tracing::info!(lease = %self.lease.name, held, "lease changed hands");
            }
            s.held = held;
            s.checked = Some(std::time::Instant::now());
        }
        held
    }

    /// Hands the lease over (draining): given up in the database, never taken again here.
    pub async fn release(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.released = true;
            s.held = false;
        }
        if let Err(e) = self.lease.release().await {
            tracing::warn!(lease = %self.lease.name, code = e.code(), "lease release failed: {e}");
        }
    }
}
