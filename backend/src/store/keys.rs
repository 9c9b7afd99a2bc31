//! Device keys: the Ed25519 public keys each account registered, in canonical base64.

use crate::clock::to_ms;
use crate::store::Cached as _;
use chrono::{DateTime, Utc};
use friend_protocol::AccountId;
use rusqlite::{Connection, params};

/// Registers `key` for `account`. Returns whether it was new (a second registration changes nothing).
pub fn register(
    tx: &Connection,
    account: AccountId,
    key: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let n = tx.exec(
        "INSERT INTO device_keys (account_id, public_key, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, public_key) DO NOTHING",
        params![account.to_string(), key, to_ms(now)],
    )?;
    Ok(n == 1)
}

/// The keys `account` registered, oldest first.
pub fn list(tx: &Connection, account: AccountId) -> rusqlite::Result<Vec<String>> {
    let mut stmt = tx.prepare_cached(
        "SELECT public_key FROM device_keys WHERE account_id = ?1 ORDER BY created_at, public_key",
    )?;
    stmt.query_map(params![account.to_string()], |r| r.get(0))?
        .collect()
}

/// Whether `account` registered `key`.
pub fn is_registered(tx: &Connection, account: AccountId, key: &str) -> rusqlite::Result<bool> {
    let mut stmt = tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM device_keys WHERE account_id = ?1 AND public_key = ?2)",
    )?;
    stmt.query_row(params![account.to_string(), key], |r| r.get(0))
}
