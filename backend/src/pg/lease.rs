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
