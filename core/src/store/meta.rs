//! Typed access to the `meta` table.

use crate::error::CoreResult;
use rusqlite::{Connection, OptionalExtension, params};

/// Delta cursor of the last applied page.
pub const CURSOR: &str = "cursor";
/// Continuation of a snapshot in progress.
pub const SNAPSHOT_CURSOR: &str = "snapshot_cursor";
/// Server clock minus device clock, in milliseconds.
pub const CLOCK_OFFSET_MS: &str = "clock_offset_ms";
/// Device time of the last successful sync, in milliseconds.
pub const LAST_SYNC_MS: &str = "last_sync_ms";
/// Sealed constant that proves the data key.
pub const KEY_CHECK: &str = "key_check";
/// Cached catalog JSON.
pub const CATALOG: &str = "catalog";
/// Cached own profile JSON.
pub const PROFILE: &str = "profile";
/// The device's Ed25519 key (PKCS#8), sealed.
pub const DEVICE_KEY: &str = "device_key";
/// Set once the device key was registered with the backend.
pub const KEY_REGISTERED: &str = "key_registered";
/// The push token this device registered last (queued or delivered), sealed: platform and token as
/// JSON (`crate::outbox::push::Registered`).
pub const PUSH_TOKEN: &str = "push_token";

/// Reads a text value.
pub fn get_text(conn: &Connection, key: &str) -> CoreResult<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Reads a blob value.
pub fn get_blob(conn: &Connection, key: &str) -> CoreResult<Option<Vec<u8>>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Reads an integer value stored as text.
pub fn get_i64(conn: &Connection, key: &str) -> CoreResult<Option<i64>> {
    Ok(get_text(conn, key)?.and_then(|v| v.parse().ok()))
}

/// Writes a text value.
pub fn set_text(conn: &Connection, key: &str, value: &str) -> CoreResult<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Writes a blob value.
pub fn set_blob(conn: &Connection, key: &str, value: &[u8]) -> CoreResult<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Deletes a value.
pub fn delete(conn: &Connection, key: &str) -> CoreResult<()> {
    conn.execute("DELETE FROM meta WHERE key = ?1", params![key])?;
    Ok(())
}

/// Writes `text` sealed (the own profile holds the account's name and, for a Friend, their home).
pub fn set_sealed(
    conn: &Connection,
    cipher: &crate::crypto::FieldCipher,
    key: &str,
    text: &str,
) -> CoreResult<()> {
    set_blob(conn, key, &cipher.seal_text("meta", key, text)?)
}

/// Reads a value written by [`set_sealed`]. A value in clear from an older version counts as
/// absent (it is a cache, rewritten sealed on the next fetch).
pub fn get_sealed(
    conn: &Connection,
    cipher: &crate::crypto::FieldCipher,
    key: &str,
) -> CoreResult<Option<String>> {
    let value: Option<rusqlite::types::Value> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
            r.get(0)
        })
        .optional()?;
    match value {
        Some(rusqlite::types::Value::Blob(sealed)) => {
            cipher.open_text("meta", key, &sealed).map(Some)
        }
        _ => Ok(None),
    }
}
