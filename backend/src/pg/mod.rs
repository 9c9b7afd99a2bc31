//! PostgreSQL: the store several backend instances share (docs/adr/0014). A connection pool
//! (deadpool) over tokio-postgres, TLS through rustls on ring, numbered migrations applied once
//! however many instances start together, transactions run (and run again after a conflict) by
//! [`run`], the change log's sequence taken in commit order ([`crate::sql::Tx::next_change`]),
//! cross-instance wake-ups ([`wakeups`]) and leases ([`lease`]).
//!
//! `--db postgres://user@host:port/dbname` (or the key-value form `host=… dbname=…`) selects it;
//! a path keeps the embedded SQLite.

pub mod lease;
pub mod run;
pub mod wakeups;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Numbered migrations; `schema_migrations` holds the versions applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/pg/001_initial.sql"),
    include_str!("../../migrations/pg/002_leases.sql"),
    include_str!("../../migrations/pg/003_admin.sql"),
    include_str!("../../migrations/pg/004_sqlite_functions.sql"),
    include_str!("../../migrations/pg/005_idempotency_retention.sql"),
];

/// The schema version this backend migrates a PostgreSQL database to.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Most connections one instance holds (each long-poll holds none while it waits).
const POOL_SIZE: usize = 16;
/// Advisory lock key under which one instance at a time migrates ("FRIENDMG").
const MIGRATION_LOCK: i64 = 0x4652_4945_4e44_4d47;

/// A PostgreSQL failure.
#[derive(Debug, Error)]
pub enum PgError {
    /// The settings do not parse.
    #[error("bad PostgreSQL settings: {0}")]
    Settings(String),
    /// The server refused or the connection failed.
    #[error("postgres: {}", crate::sql::pg_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection from the pool.
    #[error("connection pool: {0}")]
    Pool(String),
    /// The database was migrated by a newer backend.
    #[error("database schema version {0} is newer than this backend ({1})")]
    TooNew(i64, usize),
}

impl PgError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            PgError::Settings(_) => "pg_settings",
            PgError::Postgres(_) => "pg_error",
            PgError::Pool(_) => "pg_pool",
            PgError::TooNew(..) => "pg_schema_too_new",
        }
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> PgError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => PgError::Postgres(e),
            other => PgError::Pool(other.to_string()),
        }
    }
}

/// `db` as it may be printed: a PostgreSQL URL without its password (`postgres://user@host:port/
/// dbname`), a SQLite path as it is.
pub fn describe(db: &str) -> String {
    if !is_postgres(db) {
        return db.to_owned();
    }
    let Ok(c) = tokio_postgres::Config::from_str(db) else {
        return "postgres (settings do not parse)".into();
    };
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

/// Whether `db` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://") || db.contains("dbname=")
}

/// The shared database: a pool of connections.
#[derive(Clone)]
pub struct Pg {
    pool: Pool,
    settings: Arc<tokio_postgres::Config>,
    /// Transactions run again after a serialization failure or a deadlock.
    pub retried: prometheus_client::metrics::counter::Counter,
}

impl Pg {
    /// Connects (lazily: the pool opens connections on demand) to the database `url` names —
    /// `postgres://user:password@host:port/dbname?sslmode=require` or `host=… user=… dbname=…`.
    /// TLS is used as `sslmode` asks (default `prefer`), verified against Mozilla's roots.
    pub fn connect(url: &str) -> Result<Pg, PgError> {
        let settings =
            tokio_postgres::Config::from_str(url).map_err(|e| PgError::Settings(e.to_string()))?;
        let manager = Manager::from_config(
            settings.clone(),
            tls()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Pool(e.to_string()))?;
        Ok(Pg {
            pool,
            settings: Arc::new(settings),
            retried: Default::default(),
        })
    }

    /// Pooled connections lent out now, and requests waiting for one.
    pub fn pool_use(&self) -> (usize, usize) {
        let s = self.pool.status();
        (s.size.saturating_sub(s.available), s.waiting)
    }

    /// A pooled connection.
    pub async fn conn(&self) -> Result<deadpool_postgres::Object, PgError> {
        Ok(self.pool.get().await?)
    }

    /// Applies the migrations this database lacks, in one transaction under an advisory lock so
    /// instances starting together migrate once. Returns the schema version.
    pub async fn migrate(&self) -> Result<usize, PgError> {
        self.migrate_to(MIGRATIONS.len()).await
    }

    /// Applies the migrations up to `version` (for the migration tests: an upgraded database must
    /// equal a fresh one). Returns the schema version.
    pub async fn migrate_to(&self, version: usize) -> Result<usize, PgError> {
        let version = version.min(MIGRATIONS.len());
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .get(0);
        if current > MIGRATIONS.len() as i64 {
            return Err(PgError::TooNew(current, MIGRATIONS.len()));
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .take(version)
            .skip(current as usize)
        {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&(i as i64 + 1)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(version.max(current as usize))
    }
}

/// rustls on ring with Mozilla's roots: no OpenSSL, no aws-lc.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, PgError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| PgError::Settings(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_a_postgres_url_from_a_file() {
        assert!(is_postgres("postgres://friend@db:5432/friendcore"));
        assert!(is_postgres(
            "postgresql://friend@db/friendcore?sslmode=require"
        ));
        assert!(is_postgres(
            "host=/run/postgresql user=friend dbname=friendcore"
        ));
        assert!(!is_postgres("friendcore.db"));
        assert!(!is_postgres("/var/lib/friendcore/postgres.db"));
    }

    #[test]
    fn a_printed_url_has_no_password() {
        let shown = describe("postgres://friend:s3cret@db.example:6543/friendcore?sslmode=require");
        assert_eq!(shown, "postgres://friend@db.example:6543/friendcore");
        let shown = describe("host=db user=friend password=s3cret dbname=friendcore");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(describe("friendcore.db"), "friendcore.db");
    }

    #[test]
    fn bad_settings_are_a_typed_error() {
        let Err(e) = Pg::connect("postgres://friend@db:notaport/x") else {
            panic!("a bad port must not parse");
        };
        assert_eq!(e.code(), "pg_settings");
    }
}
