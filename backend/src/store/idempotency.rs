//! Stored outcomes of idempotent requests. A retry with the same key and the same request gets the
//! stored answer (a Friend whose "won" response was lost learns they won); the same key with a
//! different request is refused.
//!
//! A lookup that finds nothing *fences* the key ([`fence`]) in the writer's serial order: what the
//! server said about a key then stays true, because a request with that key still on its way can
//! no longer apply (it is refused as a reused key). Without the fence a device that asked while its
//! own accept was queued behind other writes was told "never applied", then the accept won.
//!
//! Both are kept for [`IDEMPOTENCY_RETENTION`], then pruned with the change feed ([`prune_before`]):
//! a stored answer can hold personal data (a booking's address), and a lookup writes a fence, so
//! keeping them for ever would keep both for ever. A request retried later than that is applied as
//! new; the devices' outboxes deliver within minutes of being online again.

use crate::clock::to_ms;
use crate::error::AppError;
use crate::sql::{OptionalExtension, Tx, params};
use chrono::{DateTime, Utc};
use friend_protocol::{AccountId, ErrorCode};

/// How long a key's stored answer or fence is kept.
pub const IDEMPOTENCY_RETENTION: chrono::Duration = chrono::Duration::days(30);

/// The fingerprint of a fenced key; no request's SHA-256 fingerprint has this length.
const FENCED: &[u8] = b"fenced";

/// What is recorded under a key for a route.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// The stored successful answer.
    Answer(String),
    /// A lookup found nothing and fenced the key: no request with it was or will be applied.
    Fenced,
}

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
    tx: &Tx<'_>,
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
        Some((fp, _, _)) if fp == FENCED => Err(AppError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was looked up before any request with it was applied, and was \
             told none was; it cannot be used any more: send the request with a new key",
        )),
        Some(_) => Err(AppError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used for a different request",
        )),
    }
}

/// What is recorded for `key` by `route` (another route's entry under the same key is not
/// returned).
pub fn stored(
    tx: &Tx<'_>,
    account: AccountId,
    key: &str,
    route: &str,
) -> crate::sql::Result<Option<Recorded>> {
    let found: Option<(String, Vec<u8>, String)> = tx
        .row(
            "SELECT route, fingerprint, body FROM idempotency WHERE account_id = ?1 AND key = ?2",
            params![account.to_string(), key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(found
        .filter(|(r, _, _)| r == route)
        .map(|(_, fp, body)| match fp.as_slice() {
            FENCED => Recorded::Fenced,
            _ => Recorded::Answer(body),
        }))
}

/// Fences `key` for `route` unless something is recorded under it already: a later request with
/// it is refused ([`lookup`]). Must run on the writer, in the same serial order as the requests.
pub fn fence(
    tx: &Tx<'_>,
    account: AccountId,
    key: &str,
    route: &str,
    now: DateTime<Utc>,
) -> crate::sql::Result<()> {
    tx.exec(
        "INSERT INTO idempotency (account_id, key, route, fingerprint, status, body, created_at)
         VALUES (?1, ?2, ?3, ?4, 404, '', ?5) ON CONFLICT (account_id, key) DO NOTHING",
        params![account.to_string(), key, route, FENCED, to_ms(now)],
    )?;
    Ok(())
}

/// Claims `key` for this request before it is applied, or returns what is recorded under it
/// ([`lookup`]: the stored answer, or a refusal for a fenced or differently used key). The claim
/// is written in the request's transaction: a failing request takes it back with everything else,
/// and a concurrent request or lookup with the same key waits for the claim's transaction to end
/// (the primary key's lock) instead of deciding beside it.
pub fn claim(
    tx: &Tx<'_>,
    account: AccountId,
    key: &str,
    route: &str,
    fingerprint: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<(u16, String)>, AppError> {
    let claimed = tx.exec(
        "INSERT INTO idempotency (account_id, key, route, fingerprint, status, body, created_at)
         VALUES (?1, ?2, ?3, ?4, 0, '', ?5) ON CONFLICT (account_id, key) DO NOTHING",
        params![account.to_string(), key, route, fingerprint, to_ms(now)],
    )?;
    if claimed == 1 {
        return Ok(None);
    }
    lookup(tx, account, key, fingerprint)
}

/// Forgets keys recorded before `before`; how many.
pub fn prune_before(tx: &Tx<'_>, before: DateTime<Utc>) -> crate::sql::Result<usize> {
    tx.exec(
        "DELETE FROM idempotency WHERE created_at < ?1",
        params![to_ms(before)],
    )
}

/// Stores the successful (200) answer under the key [`claim`]ed for it.
pub fn store(tx: &Tx<'_>, account: AccountId, key: &str, body: &str) -> crate::sql::Result<()> {
    tx.exec(
        "UPDATE idempotency SET status = 200, body = ?3 WHERE account_id = ?1 AND key = ?2",
        params![account.to_string(), key, body],
    )?;
    Ok(())
}
