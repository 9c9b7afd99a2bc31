//! The device database: one SQLite connection (WAL), numbered migrations in `PRAGMA user_version`,
//! scoped access through [`Store::read`] / [`Store::write`] (a write is one transaction, committed
//! on `Ok`), and async wrappers that run the blocking work on tokio's blocking pool.

pub mod accepts;
pub mod cache;
pub mod meta;
/// The outbox table (it lives with the rest of the outbox in `crate::outbox`).
pub use crate::outbox::table as outbox;

use crate::error::{CoreError, CoreResult};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Numbered migrations; `user_version` is the number applied.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/001_initial.sql"),
    include_str!("../../migrations/002_sealed_outbox.sql"),
];

/// The account database.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> CoreResult<Store> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: an acknowledged outbox write survives power loss, not only an app crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Deleted and overwritten content is zeroed, so a purged or re-sealed field leaves no old
        // bytes in free space of the file.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Plans independent of bound values, so cached statements are not re-prepared on every
        // new binding (SQLite otherwise does that for `LIMIT ?` and STAT4 estimates).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        migrate(&mut conn, MIGRATIONS)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Opens the database; when it is corrupt (SQLITE_CORRUPT, SQLITE_NOTADB, or a failed
    /// `quick_check`), keeps the damaged file aside (never deleted), rescues what it can of the
    /// outbox and pending accepts into a fresh database, and lets the next sync rebuild the cache
    /// from the server (the cache is a cache, the outbox is not: docs/adr/0002). Any other failure (busy,
    /// permission, disk full, a newer schema) is returned as it is: a healthy cache is never
    /// moved aside.
    pub fn open_or_recover(path: &Path) -> CoreResult<(Store, Option<Recovery>)> {
        let corrupt = match Store::open(path) {
            Ok(store) => match store
                .read(|c| Ok(c.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0))?))
            {
                Ok(ok) if ok == "ok" => return Ok((store, None)),
                Ok(problem) => problem,
                Err(CoreError::Corrupt(e)) => e,
                Err(other) => return Err(other),
            },
            Err(CoreError::Corrupt(e)) => e,
            Err(other) => return Err(other),
        };
        let rescued = rescue(path).unwrap_or_default();
        let aside =
            path.with_extension(format!("corrupt-{}", chrono::Utc::now().timestamp_millis()));
        std::fs::rename(path, &aside)
            .map_err(|e| CoreError::Storage(format!("moving the corrupt cache aside: {e}")))?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", path.display()));
            if side.exists() {
                let _ =
                    std::fs::rename(&side, PathBuf::from(format!("{}{suffix}", aside.display())));
            }
        }
        let store = Store::open(path)?;
        let restored = rescued.outbox.len();
        store.write(|tx| {
            for r in &rescued.outbox {
                tx.execute(
                    "INSERT INTO outbox (job_id, kind, payload, idempotency_key, status, attempts, next_attempt_at,
                        created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, ?5)",
                    rusqlite::params![r.0, r.1, r.2, r.3, r.4],
                )?;
            }
            for (job, key, at) in &rescued.pending_accepts {
                tx.execute(
                    "INSERT INTO pending_accepts (job_id, key, created_at) VALUES (?1, ?2, ?3)",
                    rusqlite::params![job, key, at],
                )?;
            }
            Ok(())
        })?;
        tracing::warn!(problem = %corrupt, restored, "cache was corrupt; rebuilt, damaged file kept aside");
        Ok((
            store,
            Some(Recovery {
                problem: corrupt,
                kept_at: aside,
                outbox_items_restored: restored,
            }),
        ))
    }

    fn lock(&self) -> CoreResult<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| CoreError::Storage("database lock poisoned".into()))
    }

    /// Runs `f` on the connection (reads; a consistent snapshot when it starts a transaction).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> CoreResult<T>) -> CoreResult<T> {
        let conn = self.lock()?;
        f(&conn)
    }

    /// Runs `f` in one immediate transaction, committed when it returns `Ok`.
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> CoreResult<T>) -> CoreResult<T> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// [`Store::read`] on the blocking pool.
    pub async fn read_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> CoreResult<T> + Send + 'static,
    ) -> CoreResult<T> {
        let store = self.clone();
        blocking(move || store.read(f)).await
    }

    /// [`Store::write`] on the blocking pool.
    pub async fn write_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> CoreResult<T> + Send + 'static,
    ) -> CoreResult<T> {
        let store = self.clone();
        blocking(move || store.write(f)).await
    }
}

/// Deletes the damaged copies [`Store::open_or_recover`] kept aside next to `path` more than
/// `before_ms` ago (by the time in their name), with their -wal and -shm: they may hold personal
/// data (sealed, or in clear from an older version), which is purged like the rest. Returns how
/// many files were deleted; one that cannot be deleted is left for the next open.
pub fn purge_kept_aside(path: &Path, before_ms: i64) -> usize {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_stem()) else {
        return 0;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.corrupt-", stem.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut deleted = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let stamp = rest.trim_end_matches("-wal").trim_end_matches("-shm");
        if stamp.parse::<i64>().is_ok_and(|ms| ms < before_ms)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            deleted += 1;
        }
    }
    deleted
}

/// What a recovery from a corrupt cache did.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// What SQLite reported.
    pub problem: String,
    /// Where the damaged file was kept.
    pub kept_at: PathBuf,
    /// Pending outbox items carried over.
    pub outbox_items_restored: usize,
}

/// job_id, kind, payload (sealed, or text from version 1), idempotency key, created_at.
type RescuedItem = (String, String, rusqlite::types::Value, String, i64);

#[derive(Default)]
struct Rescued {
    outbox: Vec<RescuedItem>,
    pending_accepts: Vec<(String, String, i64)>,
}

/// Reads what can be read of the undelivered outbox and pending accepts from a damaged file.
fn rescue(path: &Path) -> CoreResult<Rescued> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut out = Rescued::default();
    let mut stmt = conn.prepare(
        "SELECT job_id, kind, payload, idempotency_key, created_at FROM outbox WHERE status = 'pending' ORDER BY id",
    )?;
    for row in stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })? {
        match row {
            Ok(r) => out.outbox.push(r),
            Err(_) => break,
        }
    }
    if let Ok(mut stmt) = conn.prepare("SELECT job_id, key, created_at FROM pending_accepts")
        && let Ok(rows) = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    {
        out.pending_accepts.extend(rows.map_while(Result::ok));
    }
    Ok(out)
}

/// Runs blocking work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> CoreResult<T> + Send + 'static,
) -> CoreResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CoreError::Storage(format!("storage task: {e}")))?
}

pub(crate) fn migrate(conn: &mut Connection, migrations: &[&str]) -> CoreResult<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > migrations.len() as i64 {
        return Err(CoreError::SchemaTooNew(current));
    }
    for (i, sql) in migrations.iter().enumerate().skip(current.max(0) as usize) {
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

    fn schema(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    /// A database created at any older version and upgraded equals a freshly created one.
    #[test]
    fn upgraded_databases_equal_fresh_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut fresh = Connection::open(dir.path().join("fresh.db")).unwrap();
        migrate(&mut fresh, MIGRATIONS).unwrap();
        for start in 0..MIGRATIONS.len() {
            let mut old = Connection::open(dir.path().join(format!("from-{start}.db"))).unwrap();
            migrate(&mut old, &MIGRATIONS[..start]).unwrap();
            migrate(&mut old, MIGRATIONS).unwrap();
            assert_eq!(schema(&old), schema(&fresh), "upgrade from version {start}");
            let v: i64 = old
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v, MIGRATIONS.len() as i64);
        }
    }

    #[test]
    fn a_garbage_file_is_kept_aside_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
        let (store, recovery) = Store::open_or_recover(&path).unwrap();
        let recovery = recovery.expect("recovered");
        assert!(
            recovery.kept_at.exists(),
            "the damaged file is never deleted"
        );
        assert_eq!(std::fs::read(&recovery.kept_at).unwrap().len(), 64 * 1024);
        assert_eq!(store.read(crate::store::cache::offer_count).unwrap(), 0);
    }

    #[test]
    fn a_damaged_cache_keeps_its_undelivered_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let job = friend_protocol::JobId::random();
        let cipher = crate::crypto::FieldCipher::new(&[3u8; 32]).unwrap();
        {
            let store = Store::open(&path).unwrap();
            store
                .write(|tx| {
                    crate::store::outbox::enqueue(
                        tx,
                        &cipher,
                        job,
                        crate::outbox::ActionKind::CheckIn,
                        r#"{"kind":"check_in"}"#,
                        "key-1",
                        1,
                    )?;
                    tx.execute_batch("CREATE TABLE filler (x BLOB);")?;
                    for _ in 0..50 {
                        tx.execute("INSERT INTO filler VALUES (zeroblob(4000))", [])?;
                    }
                    Ok(())
                })
                .unwrap();
            store
                .read(|c| Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?))
                .unwrap();
        }
        // Damage the last pages (the filler table), leaving the outbox's page readable.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        for b in &mut bytes[n - 20_000..n - 100] {
            *b = 0xff;
        }
        std::fs::write(&path, &bytes).unwrap();
        let (store, recovery) = Store::open_or_recover(&path).unwrap();
        let recovery = recovery.expect("the damage was noticed");
        assert_eq!(recovery.outbox_items_restored, 1);
        let items = store
            .read(|c| crate::store::outbox::pending(c, &cipher))
            .unwrap();
        assert_eq!((items[0].job_id, items[0].key.as_str()), (job, "key-1"));
    }

    #[test]
    fn failures_other_than_corruption_leave_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        // Not a file at all (cannot open).
        let not_a_file = dir.path().join("dir.db");
        std::fs::create_dir(&not_a_file).unwrap();
        assert!(matches!(
            Store::open_or_recover(&not_a_file),
            Err(CoreError::Storage(_))
        ));
        assert!(not_a_file.is_dir(), "nothing moved aside");
        // Locked by another connection (busy): an error for the app, not a corrupt cache.
        let path = dir.path().join("locked.db");
        drop(Store::open(&path).unwrap());
        let holder = Connection::open(&path).unwrap();
        holder
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
            .unwrap();
        assert!(matches!(
            Store::open_or_recover(&path),
            Err(CoreError::Storage(_))
        ));
        drop(holder);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.contains("corrupt")),
            "a busy cache is never moved aside: {names:?}"
        );
        assert!(Store::open_or_recover(&path).unwrap().1.is_none());
    }

    #[test]
    fn kept_aside_copies_are_purged_after_their_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        for name in [
            "c.corrupt-1000",
            "c.corrupt-1000-wal",
            "c.corrupt-5000",
            "other.corrupt-1000",
            "c.db",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(purge_kept_aside(&path, 2000), 2);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["c.corrupt-5000", "c.db", "other.corrupt-1000"]);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        drop(Store::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 42)
            .unwrap();
        assert!(matches!(
            Store::open(&path),
            Err(CoreError::SchemaTooNew(42))
        ));
    }
}
