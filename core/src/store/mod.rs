//! The device database: one SQLite connection (WAL), numbered migrations in `PRAGMA user_version`,
//! scoped access through [`Store::read`] / [`Store::write`] (a write is one transaction, committed
//! on `Ok`), and async wrappers that run the blocking work on tokio's blocking pool.

pub mod cache;
pub mod meta;
pub mod outbox;

use crate::error::{CoreError, CoreResult};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Numbered migrations; `user_version` is the number applied.
pub(crate) const MIGRATIONS: &[&str] = &[include_str!("../../migrations/001_initial.sql")];

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
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn, MIGRATIONS)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
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
