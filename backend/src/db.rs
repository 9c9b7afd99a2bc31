//! SQLite access: one writer thread that owns the writing connection and commits in groups, and a
//! small pool of readers (WAL lets them run beside the writer) on tokio's blocking pool — never on
//! async worker threads.
//!
//! Group commit: writes queued while the writer is busy run back to back in one `BEGIN IMMEDIATE`
//! transaction, each inside its own savepoint (a failing write rolls back alone), and every caller
//! gets its answer only after the shared COMMIT. Writes stay strictly serial — the accept race is
//! still decided by one conditional update at a time — but concurrent accepts no longer pay one
//! commit each. Measured (BENCHMARKS.md, P7): accepts on distinct jobs went from 202/s with one
//! transaction per request to the figure there.

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// Numbered migrations; the database's `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/001_initial.sql"),
    include_str!("../migrations/002_negotiation.sql"),
    include_str!("../migrations/003_area_feed.sql"),
    include_str!("../migrations/004_push.sql"),
    include_str!("../migrations/005_visit.sql"),
    include_str!("../migrations/006_admin.sql"),
    include_str!("../migrations/007_idempotency_retention.sql"),
];

/// Most idle reader connections kept open.
const MAX_IDLE_READERS: usize = 8;
/// Most writes committed together.
const MAX_GROUP: usize = 128;
/// Page cache per connection (negative: KiB). The feed's per-account pages stay hot.
const CACHE_KIB: i64 = 64 * 1024;

/// A storage failure.
#[derive(Debug, Error)]
pub enum DbError {
    /// SQLite refused.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer backend.
    #[error("database schema version {0} is newer than this backend ({1})")]
    TooNew(i64, usize),
    /// The shared commit of a group failed (the write was rolled back).
    #[error("commit failed: {0}")]
    Commit(String),
    /// A blocking task or the writer thread failed.
    #[error("storage task failed: {0}")]
    Task(String),
    /// A lock was poisoned by an earlier panic.
    #[error("storage lock poisoned")]
    Poisoned,
    /// A statement failed (either store).
    #[error("{0}")]
    Sql(#[from] crate::sql::SqlError),
    /// PostgreSQL: settings, pool or connection.
    #[error("{0}")]
    Postgres(#[from] crate::pg::PgError),
}

/// One queued write: run inside the group's transaction, answered once the commit is known.
trait Write: Send {
    /// Runs the write; whether it succeeded (a failed write is rolled back to its savepoint).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Delivers the answer: the write's own result, or the group's commit error.
    fn finish(self: Box<Self>, error: Option<String>);
}

type WriteJob = Box<dyn Write>;

struct Pending<T, E, F, R> {
    f: Option<F>,
    result: Option<Result<T, E>>,
    reply: R,
}

impl<T, E, F, R> Write for Pending<T, E, F, R>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
    F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    R: FnOnce(Result<T, E>) + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else { return false };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(E::from(DbError::Task("a write panicked".into()))));
        let ok = outcome.is_ok();
        self.result = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, error: Option<String>) {
        let this = *self;
        let answer = match (this.result, error) {
            (Some(Ok(v)), None) => Ok(v),
            (Some(Err(e)), _) => Err(e),
            (_, e) => Err(E::from(DbError::Commit(
                e.unwrap_or_else(|| "the write did not run".into()),
            ))),
        };
        (this.reply)(answer);
    }
}

/// The database handle shared by all requests.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writes: Mutex<mpsc::Sender<WriteJob>>,
    /// Writes submitted and not yet taken by the writer thread.
    queued: Arc<AtomicUsize>,
    readers: Mutex<Vec<Connection>>,
    /// Writes per committed group.
    commit_groups: prometheus_client::metrics::histogram::Histogram,
}

/// Holds the writer thread (inside an open group transaction) until dropped; see
/// [`Db::pause_writes`].
pub struct WritePause {
    _release: mpsc::Sender<()>,
}

impl WritePause {
    /// A pause that ends when `release` (the only sender) is dropped.
    pub(crate) fn new(release: mpsc::Sender<()>) -> WritePause {
        WritePause { _release: release }
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    // rusqlite keeps 16 prepared statements by default; a request path uses more than that.
    conn.set_prepared_statement_cache_capacity(256);
    // Plans must not depend on bound values: otherwise SQLite marks statements whose plan looked
    // at a parameter (`LIMIT ?`, STAT4 estimates) for re-preparation on every new binding, and
    // the cache above saves nothing — profiling P7 showed the writer re-parsing `jobs::get` on
    // every accept.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

impl Db {
    /// Opens (creating if needed) the database file, applies pending migrations and starts the
    /// writer thread.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let mut writer = Connection::open(path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: every acknowledged write survives a power cut. With NORMAL a power cut can roll
        // back the last commits — an accept already answered `won` among them, after which another
        // Friend could win the same job (a double assignment). Group commit pays one fsync per
        // group, not per write (BENCHMARKS.md: P3 and P7 with FULL and NORMAL).
        writer.pragma_update(None, "synchronous", "FULL")?;
        // Checkpoint less often than the default 1,000 pages: a checkpoint copies pages back and
        // fsyncs the database file, and busy writers would otherwise do so every few groups.
        writer.pragma_update(None, "wal_autocheckpoint", 16_000)?;
        configure(&writer)?;
        migrate(&mut writer)?;
        // Derived columns a migration cannot compute in SQL (the Friends' home tiles).
        crate::store::accounts::fill_home_tiles(&crate::sql::Tx::Sqlite(&writer))?;
        let (tx, rx) = mpsc::channel::<WriteJob>();
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = queued.clone();
        let commit_groups = crate::metrics::commit_group_histogram();
        let groups = commit_groups.clone();
        std::thread::Builder::new()
            .name("friend-db-writer".into())
            .spawn(move || writer_loop(writer, rx, &taken, &groups))
            .map_err(|e| DbError::Task(e.to_string()))?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writes: Mutex::new(tx),
                queued,
                readers: Mutex::new(Vec::new()),
                commit_groups,
            }),
        })
    }

    /// The writer's histogram of commit-group sizes (for the metrics).
    pub fn commit_groups(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.inner.commit_groups.clone()
    }

    /// How many writes wait for the writer thread (not yet taken into a group).
    pub fn queued_writes(&self) -> usize {
        self.inner.queued.load(Ordering::SeqCst)
    }

    /// Holds the writer until the returned guard is dropped: it runs a write that waits, inside
    /// its group's transaction, so every later write queues up behind it in order. Resolves once
    /// the writer is held. For deterministic tests of interleavings (and nothing else: readers
    /// go on, writers wait).
    pub async fn pause_writes(&self) -> Result<WritePause, DbError> {
        let (release, held) = mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        self.submit(
            move |_conn: &Connection| {
                let _ = started.send(());
                // Returns when the guard (the only sender) is dropped.
                let _ = held.recv();
                Ok::<(), DbError>(())
            },
            |_| {},
        )?;
        running
            .await
            .map_err(|_| DbError::Task("the writer dropped the pause".into()))?;
        Ok(WritePause { _release: release })
    }

    fn submit<T, E, F>(
        &self,
        f: F,
        reply: impl FnOnce(Result<T, E>) + Send + 'static,
    ) -> Result<(), E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let job: WriteJob = Box::new(Pending {
            f: Some(f),
            result: None,
            reply,
        });
        let sender = self
            .inner
            .writes
            .lock()
            .map_err(|_| E::from(DbError::Poisoned))?;
        self.inner.queued.fetch_add(1, Ordering::SeqCst);
        sender.send(job).map_err(|_| {
            self.inner.queued.fetch_sub(1, Ordering::SeqCst);
            E::from(DbError::Task("the writer thread stopped".into()))
        })
    }

    /// Runs `f` as one write (inside the current group's transaction, in its own savepoint);
    /// resolves after the group committed.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.await
            .unwrap_or_else(|_| Err(E::from(DbError::Task("the writer dropped a write".into()))))
    }

    /// [`Db::write`] from a thread that may block (start-up, outside any async context).
    pub fn write_now<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.submit(f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv()
            .unwrap_or_else(|_| Err(E::from(DbError::Task("the writer dropped a write".into()))))
    }

    /// Runs `f` in one read transaction (a consistent snapshot) on the blocking pool.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        let inner = self.inner.clone();
        run_blocking(move || {
            let pooled = inner.readers.lock().map_err(|_| DbError::Poisoned)?.pop();
            let mut conn = match pooled {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &inner.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .map_err(DbError::from)?;
                    configure(&c).map_err(DbError::from)?;
                    c
                }
            };
            let result = (|| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Deferred)
                    .map_err(DbError::from)?;
                let value = f(&tx)?;
                tx.finish().map_err(DbError::from)?;
                Ok(value)
            })();
            if let Ok(mut idle) = inner.readers.lock()
                && idle.len() < MAX_IDLE_READERS
            {
                idle.push(conn);
            }
            result
        })
        .await
    }
}

/// The writer thread: takes the next write, gathers whatever else is queued, runs them in one
/// transaction with a savepoint each, commits once, then answers every caller.
fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<WriteJob>,
    queued: &AtomicUsize,
    group_sizes: &prometheus_client::metrics::histogram::Histogram,
) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        queued.fetch_sub(group.len(), Ordering::SeqCst);
        group_sizes.observe(group.len() as f64);
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            for job in group {
                job.finish(Some(e.to_string()));
            }
            continue;
        }
        let mut done = Vec::with_capacity(group.len());
        for mut job in group {
            let own_error = match conn.execute_batch("SAVEPOINT write") {
                Ok(()) => {
                    let ok = job.run(&conn);
                    let undo = if ok {
                        "RELEASE write"
                    } else {
                        "ROLLBACK TO write; RELEASE write"
                    };
                    conn.execute_batch(undo).err().map(|e| e.to_string())
                }
                Err(e) => Some(e.to_string()),
            };
            done.push((job, own_error));
        }
        let committed = conn.execute_batch("COMMIT").err().map(|e| e.to_string());
        if committed.is_some() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for (job, own_error) in done {
            job.finish(own_error.or_else(|| committed.clone()));
        }
    }
}

async fn run_blocking<T, E, F>(f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(E::from(DbError::Task(e.to_string()))),
    }
}

fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > MIGRATIONS.len() as i64 {
        return Err(DbError::TooNew(current, MIGRATIONS.len()));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An acknowledged write survives a power cut: the writer syncs every commit (FULL = 2), not
    /// only at checkpoints (NORMAL = 1, which can roll back an accept already answered `won`).
    #[test]
    fn the_writer_commits_durably() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("d.db")).unwrap();
        let level: i64 = db
            .write_now(|conn| {
                conn.pragma_query_value(None, "synchronous", |r| r.get(0))
                    .map_err(DbError::from)
            })
            .unwrap();
        assert_eq!(level, 2, "PRAGMA synchronous on the writer");
    }

    #[test]
    fn migrates_once_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        drop(Db::open(&path).unwrap());
        drop(Db::open(&path).unwrap()); // idempotent
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(Db::open(&path), Err(DbError::TooNew(99, _))));
    }
}
