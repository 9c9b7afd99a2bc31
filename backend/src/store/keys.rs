//! Device keys: the Ed25519 public keys each account registered, in canonical base64.

use crate::clock::to_ms;
use crate::sql::{Tx, params};
use chrono::{DateTime, Utc};
use friend_protocol::AccountId;

/// Registers `key` for `account`. Returns whether it was new (a second registration changes nothing).
pub fn register(
    tx: &Tx<'_>,
    account: AccountId,
    key: &str,
    now: DateTime<Utc>,
) -> crate::sql::Result<bool> {
    let n = tx.exec(
        "INSERT INTO device_keys (account_id, public_key, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, public_key) DO NOTHING",
        params![account.to_string(), key, to_ms(now)],
    )?;
    Ok(n == 1)
}

/// The keys `account` registered, oldest first.
pub fn list(tx: &Tx<'_>, account: AccountId) -> crate::sql::Result<Vec<String>> {
    tx.rows(
        "SELECT public_key FROM device_keys WHERE account_id = ?1 ORDER BY created_at, public_key",
        params![account.to_string()],
        |r| r.get(0),
    )
}

/// Whether `account` registered `key`.
///
/// In a write transaction the account's row is locked first ([`Tx::lock_once`]): two
/// registrations of one account check (the key, the limit) one after the other.
pub fn is_registered(tx: &Tx<'_>, account: AccountId, key: &str) -> crate::sql::Result<bool> {
    let account = account.to_string();
    tx.lock_once("SELECT 1 FROM accounts WHERE id = ?1 FOR UPDATE", &account)?;
    tx.row(
        "SELECT EXISTS (SELECT 1 FROM device_keys WHERE account_id = ?1 AND public_key = ?2)",
        params![account, key],
        |r| r.get(0),
    )
}
