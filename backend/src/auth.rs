//! Bearer tokens: generated here, shown once, stored only as a SHA-256 hash. The extractors resolve
//! the caller of every request; resolved tokens are cached in memory for [`AUTH_CACHE_TTL`]
//! (accounts never change role, but a token can be rotated).

use crate::AppState;
use crate::error::AppError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use friend_protocol::{AccountId, ErrorCode, Role};
use ring::rand::SecureRandom;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// SHA-256 of a token, as stored.
pub type TokenHash = [u8; 32];

/// A fresh random bearer token (256 bits, base64url).
pub fn new_token() -> Result<String, AppError> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AppError::new(ErrorCode::Internal, "no system randomness"))?;
    Ok(format!(
        "fc_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The stored hash of a token.
pub fn hash_token(token: &str) -> TokenHash {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// An authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Account id.
    pub id: AccountId,
    /// Friend or customer.
    pub role: Role,
}

fn bearer(parts: &Parts) -> Result<&str, AppError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            AppError::new(
                ErrorCode::Unauthorized,
                "missing Authorization: Bearer token",
            )
        })?;
    header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(|| AppError::new(ErrorCode::Unauthorized, "malformed Authorization header"))
}

/// How long a resolved token is trusted without asking the database again. A token rotated on one
/// instance stops there at once ([`AuthCache::forget`]); the other instances on the same database
/// stop taking it within this time.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(30);

/// Above this many entries an insert first drops the expired ones (entries are per token in use).
const SWEEP_ABOVE: usize = 65_536;

/// Resolved tokens, each trusted for a while ([`AUTH_CACHE_TTL`]).
pub struct AuthCache {
    ttl: Duration,
    inner: RwLock<Entries>,
}

#[derive(Default)]
struct Entries {
    by_hash: HashMap<TokenHash, (Caller, Instant)>,
    /// Grows with every [`AuthCache::forget`]: a lookup that started before it must not cache
    /// what it read (it may be the old token's account, read just before the rotation committed).
    generation: u64,
}

/// What the cache knows of a token.
enum Cached {
    /// Resolved within the time to live.
    Caller(Caller),
    /// Not known: ask the database, then [`AuthCache::keep`] with this generation.
    Unknown(u64),
}

impl AuthCache {
    /// An empty cache trusting entries for `ttl`.
    pub fn new(ttl: Duration) -> AuthCache {
        AuthCache {
            ttl,
            inner: RwLock::new(Entries::default()),
        }
    }

    fn get(&self, hash: &TokenHash) -> Cached {
        let Ok(entries) = self.inner.read() else {
            return Cached::Unknown(u64::MAX);
        };
        match entries.by_hash.get(hash) {
            Some((caller, at)) if at.elapsed() < self.ttl => Cached::Caller(*caller),
            _ => Cached::Unknown(entries.generation),
        }
    }

    /// Keeps `caller` for `hash`, unless a token was forgotten since the lookup began
    /// (`generation` from [`Cached::Unknown`]).
    fn keep(&self, hash: TokenHash, caller: Caller, generation: u64) {
        let Ok(mut entries) = self.inner.write() else {
            return;
        };
        if entries.generation != generation {
            return;
        }
        if entries.by_hash.len() >= SWEEP_ABOVE {
            let ttl = self.ttl;
            entries.by_hash.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        entries.by_hash.insert(hash, (caller, Instant::now()));
    }

    /// Forgets every token of `account` (its token was rotated), including lookups in flight.
    pub fn forget(&self, account: AccountId) {
        if let Ok(mut entries) = self.inner.write() {
            entries
                .by_hash
                .retain(|_, (caller, _)| caller.id != account);
            entries.generation += 1;
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, AppError> {
        let hash = hash_token(bearer(parts)?);
        let generation = match state.auth_cache.get(&hash) {
            Cached::Caller(c) => return Ok(c),
            Cached::Unknown(generation) => generation,
        };
        let found = state
            .db
            .read(move |tx| {
                crate::store::accounts::by_token_hash(tx, &hash).map_err(AppError::from)
            })
            .await?;
        let caller =
            found.ok_or_else(|| AppError::new(ErrorCode::Unauthorized, "unknown token"))?;
        state.auth_cache.keep(hash, caller, generation);
        Ok(caller)
    }
}

/// The caller's account when it has `role`, else 403 with `refusal`.
async fn caller_in_role(
    parts: &mut Parts,
    state: &Arc<AppState>,
    role: Role,
    refusal: &'static str,
) -> Result<AccountId, AppError> {
    let caller = Caller::from_request_parts(parts, state).await?;
    if caller.role == role {
        Ok(caller.id)
    } else {
        Err(AppError::new(ErrorCode::Forbidden, refusal))
    }
}

/// A caller that must be a Friend.
pub struct FriendCaller(pub AccountId);

impl FromRequestParts<Arc<AppState>> for FriendCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, AppError> {
        caller_in_role(parts, state, Role::Friend, "this route is for Friends")
            .await
            .map(FriendCaller)
    }
}

/// A caller that must be a customer.
pub struct CustomerCaller(pub AccountId);

impl FromRequestParts<Arc<AppState>> for CustomerCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, AppError> {
        caller_in_role(parts, state, Role::Customer, "this route is for customers")
            .await
            .map(CustomerCaller)
    }
}

/// The operator, holding the admin token.
pub struct AdminCaller;

impl FromRequestParts<Arc<AppState>> for AdminCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, AppError> {
        // Comparing hashes: equal-length digests, and timing reveals nothing about the token.
        if hash_token(bearer(parts)?) == state.admin_token_hash {
            Ok(AdminCaller)
        } else {
            Err(AppError::new(
                ErrorCode::Unauthorized,
                "admin token required",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            id: AccountId::random(),
            role: Role::Friend,
        }
    }

    fn cached(cache: &AuthCache, hash: &TokenHash) -> Option<Caller> {
        match cache.get(hash) {
            Cached::Caller(c) => Some(c),
            Cached::Unknown(_) => None,
        }
    }

    fn generation(cache: &AuthCache, hash: &TokenHash) -> u64 {
        match cache.get(hash) {
            Cached::Unknown(g) => g,
            Cached::Caller(c) => panic!("{c:?} is cached"),
        }
    }

    #[test]
    fn a_forgotten_account_is_asked_for_again_even_when_its_lookup_was_in_flight() {
        let cache = AuthCache::new(AUTH_CACHE_TTL);
        let (old, anna, luca) = (hash_token("old"), caller(), caller());
        let g = generation(&cache, &old);
        cache.keep(old, anna, g);
        cache.keep(hash_token("luca"), luca, g);
        assert_eq!(cached(&cache, &old), Some(anna));

        // Anna's token is rotated while another request, which read it just before, is in flight.
        let in_flight = generation(&cache, &hash_token("old again"));
        cache.forget(anna.id);
        assert_eq!(cached(&cache, &old), None, "forgotten at once");
        cache.keep(old, anna, in_flight);
        assert_eq!(cached(&cache, &old), None, "the late answer is not kept");
        assert_eq!(
            cached(&cache, &hash_token("luca")),
            Some(luca),
            "others stay"
        );
    }

    #[test]
    fn an_entry_is_trusted_for_its_time_to_live_only() {
        let cache = AuthCache::new(Duration::ZERO);
        let (hash, anna) = (hash_token("t"), caller());
        let g = generation(&cache, &hash);
        cache.keep(hash, anna, g);
        assert_eq!(cached(&cache, &hash), None, "asked again once it expired");
    }
}
