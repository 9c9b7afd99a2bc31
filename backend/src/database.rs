//! The store the routes see: the embedded SQLite or a PostgreSQL server (docs/adr/0014). Both run
//! a use case — a closure over a [`Tx`] — as one transaction; the use cases never see which.
//!
//! - SQLite: the writer thread's group commit ([`Db`]) for writes, a reader's snapshot for reads.
//! - PostgreSQL: a pooled connection's transaction on tokio's blocking pool ([`crate::pg::run`]);
//!   a transaction aborted for a serialization failure or a deadlock is run again, so write
//!   closures must be repeatable (`FnMut` reading their captures, not consuming them).

use crate::db::{Db, DbError, WritePause};
use crate::pg::Pg;
use crate::pg::run::Mode;
use crate::sql::Tx;
use std::path::Path;

/// A store's transaction future, on the heap (see [`Database::write`]).
type Boxed<'a, T, E> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send + 'a>>;

/// The backend's database.
#[derive(Clone)]
pub enum Database {
    /// The embedded SQLite file.
    Sqlite(Db),
    /// A PostgreSQL database several instances share.
    Postgres {
        /// The pool.
        pg: Pg,
        /// The settings it was opened with (start-up work connects once more on its own thread).
        url: String,
    },
}

impl Database {
    /// Opens `db`: a `postgres://…` URL (or `host=… dbname=…`) or a SQLite file path. Migrates.
    pub fn open(db: &Path) -> Result<Database, DbError> {
        let name = db.to_string_lossy();
        if !crate::pg::is_postgres(&name) {
            return Ok(Database::Sqlite(Db::open(db)?));
        }
        let url = name.into_owned();
        let pg = Pg::connect(&url)?;
        on_own_runtime(&url, |pg, rt| {
            rt.block_on(pg.migrate()).map_err(DbError::from)
        })?;
        Ok(Database::Postgres { pg, url })
    }

    /// Which store: `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres { .. } => "postgres",
        }
    }

    /// The PostgreSQL pool, when on PostgreSQL.
    pub fn postgres(&self) -> Option<&Pg> {
        match self {
            Database::Postgres { pg, .. } => Some(pg),
            Database::Sqlite(_) => None,
        }
    }

    /// Runs `f` as one write transaction; resolves after the commit.
    ///
    /// [`Database::read`] and this box the store's future: a request's future is as large as the
    /// largest state of anything it awaits, and a long-poll spends its life waiting after its
    /// reads; inline, their states would stay in every waiting long-poll (BENCHMARKS.md, P9).
    pub async fn write<T, E, F>(&self, mut f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnMut(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let run: Boxed<'_, T, E> = match self {
            Database::Sqlite(db) => Box::pin(db.write(move |c| f(&Tx::Sqlite(c)))),
            Database::Postgres { pg, .. } => Box::pin(run_pg(pg, Mode::Write, f)),
        };
        run.await
    }

    /// [`Database::write`] from a thread that may block (start-up, outside any async context).
    pub fn write_now<T, E, F>(&self, mut f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnMut(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        match self {
            Database::Sqlite(db) => db.write_now(move |c| f(&Tx::Sqlite(c))),
            Database::Postgres { url, .. } => on_own_runtime(url, move |pg, rt| {
                pg.run_blocking(rt.handle(), Mode::Write, |tx| f(tx).map_err(Wrapped::Use))
                    .map_err(Wrapped::into_error)
            }),
        }
    }

    /// Runs `f` in one read-only transaction (a consistent snapshot).
    pub async fn read<T, E, F>(&self, mut f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnMut(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let run: Boxed<'_, T, E> = match self {
            Database::Sqlite(db) => Box::pin(db.read(move |c| f(&Tx::Sqlite(c)))),
            Database::Postgres { pg, .. } => Box::pin(run_pg(pg, Mode::Read, f)),
        };
        run.await
    }

    /// Holds writes until the guard is dropped, for tests that interleave requests. SQLite: the
    /// writer thread itself, so every write queues. PostgreSQL: a transaction holding the change
    /// counter's row lock, so every write that changes a job waits at its change-log step (with
    /// its idempotency claim held); writes that change no job go on.
    pub async fn pause_writes(&self) -> Result<WritePause, DbError> {
        let pg = match self {
            Database::Sqlite(db) => return db.pause_writes().await,
            Database::Postgres { pg, .. } => pg.clone(),
        };
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let mut started = Some(started);
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            pg.run_blocking(&rt, Mode::Write, |tx| {
                tx.row(
                    "SELECT seq FROM change_counter WHERE id = 1 FOR UPDATE",
                    crate::sql::params![],
                    |r| r.get::<i64>(0),
                )?;
                if let Some(s) = started.take() {
                    let _ = s.send(());
                }
                // Returns when the guard (the only sender) is dropped.
                let _ = held.recv();
                Ok::<(), DbError>(())
            })
        });
        running
            .await
            .map_err(|_| DbError::Task("the pause did not take the counter".into()))?;
        Ok(WritePause::new(release))
    }

    /// SQLite: the writer's histogram of commit-group sizes.
    pub fn commit_groups(&self) -> Option<prometheus_client::metrics::histogram::Histogram> {
        match self {
            Database::Sqlite(db) => Some(db.commit_groups()),
            Database::Postgres { .. } => None,
        }
    }

    /// Writes waiting: for SQLite's writer thread; on PostgreSQL, this database's sessions
    /// waiting for a lock (behind [`Database::pause_writes`], or behind each other).
    pub async fn queued_writes(&self) -> Result<usize, DbError> {
        match self {
            Database::Sqlite(db) => Ok(db.queued_writes()),
            Database::Postgres { .. } => {
                self.read(|tx| {
                    tx.row(
                        "SELECT COUNT(*) FROM pg_stat_activity
                         WHERE datname = current_database() AND wait_event_type = 'Lock'",
                        crate::sql::params![],
                        |r| r.get::<usize>(0),
                    )
                    .map_err(DbError::from)
                })
                .await
            }
        }
    }

    /// Writes waiting for SQLite's writer thread (for the metrics; PostgreSQL has no such queue).
    pub fn writer_queue(&self) -> usize {
        match self {
            Database::Sqlite(db) => db.queued_writes(),
            Database::Postgres { .. } => 0,
        }
    }
}

/// A use case's own error, or the runner's: keeps `E` free of any `From<SqlError>` requirement.
enum Wrapped<E> {
    Use(E),
    Store(DbError),
}

impl<E> From<crate::pg::PgError> for Wrapped<E> {
    fn from(e: crate::pg::PgError) -> Self {
        Wrapped::Store(e.into())
    }
}

impl<E> From<crate::sql::SqlError> for Wrapped<E> {
    fn from(e: crate::sql::SqlError) -> Self {
        Wrapped::Store(e.into())
    }
}

impl<E: From<DbError>> Wrapped<E> {
    fn into_error(self) -> E {
        match self {
            Wrapped::Use(e) => e,
            Wrapped::Store(e) => E::from(e),
        }
    }
}

async fn run_pg<T, E, F>(pg: &Pg, mode: Mode, mut f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
    F: FnMut(&Tx<'_>) -> Result<T, E> + Send + 'static,
{
    pg.run(mode, move |tx| f(tx).map_err(Wrapped::Use))
        .await
        .map_err(Wrapped::into_error)
}

/// Runs start-up work against PostgreSQL on a thread of its own with a runtime of its own, so it
/// works from async and plain callers alike (the pool's connections belong to the runtime that
/// opened them; this one's are closed when it ends).
fn on_own_runtime<T, E, F>(url: &str, f: F) -> Result<T, E>
where
    T: Send,
    E: From<DbError> + Send,
    F: FnOnce(&Pg, &tokio::runtime::Runtime) -> Result<T, E> + Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| E::from(DbError::Task(e.to_string())))?;
            let pg = Pg::connect(url).map_err(|e| E::from(DbError::from(e)))?;
            f(&pg, &rt)
        })
        .join()
        .unwrap_or_else(|_| Err(E::from(DbError::Task("start-up work panicked".into()))))
    })
}
