//! Stored outcomes of idempotent requests. A retry with the same key and the same request gets the
//! stored answer (a Friend whose "won" response was lost learns they won); the same key with a
//! different request is refused.

use crate::clock::to_ms;
use crate::error::AppError;
use crate::store::Cached as _;
use chrono::{DateTime, Utc};
use friend_protocol::{AccountId, ErrorCode};
use rusqlite::{Connection, OptionalExtension, params};

/// SHA-256 over the route and the canonical (key-sorted) JSON body.
pub fn fingerprint(route: &str, body: &serde_json::Value) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(route.as_bytes());
    ctx.update(&[0]);
    ctx.update(body.to_string().as_bytes());
    ctx.finish().as_ref().to_vec()
}

/// The stored response for this key, if any. A different request under the same key is an error.
pub fn lookup(
    tx: &Connection,
    account: AccountId,
    key: &str,
    fingerprint: &[u8],
) -> Result<Option<(u16, String)>, AppError> {
    let found: Option<(Vec<u8>, u16, String)> = tx
        .row(
            "SELECT fingerprint, status, body FROM idempotency WHERE account_id = ?1 AND key = ?2",
            params![account.to_string(), key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    match found {
        None => Ok(None),
        Some((fp, status, body)) if fp == fingerprint => Ok(Some((status, body))),
        Some(_) => Err(AppError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used for a different request",
        )),
    }
}

/// The stored response body for `key` if it was stored by `route` (fingerprints start with the
/// route, so another route's entry under the same key is not returned).
pub fn stored(
    tx: &Connection,
    account: AccountId,
    key: &str,
    route: &str,
) -> rusqlite::Result<Option<String>> {
    let found: Option<(String, String)> = tx
        .row(
            "SELECT route, body FROM idempotency WHERE account_id = ?1 AND key = ?2",
            params![account.to_string(), key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(found.filter(|(r, _)| r == route).map(|(_, body)| body))
}

/// Stores a successful (200) response under its key.
pub fn store(
    tx: &Connection,
    account: AccountId,
    key: &str,
    route: &str,
    fingerprint: &[u8],
    body: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    tx.exec(
        "INSERT INTO idempotency (account_id, key, route, fingerprint, status, body, created_at)
         VALUES (?1, ?2, ?3, ?4, 200, ?5, ?6)",
        params![
            account.to_string(),
            key,
            route,
            fingerprint,
            body,
            to_ms(now)
        ],
    )?;
    Ok(())
}
