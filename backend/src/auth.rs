//! Bearer tokens: generated here, shown once, stored only as a SHA-256 hash. The extractors resolve
//! the caller of every request; resolved tokens are cached in memory (accounts never change role).

use crate::AppState;
use crate::error::AppError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use friend_protocol::{AccountId, ErrorCode, Role};
use ring::rand::SecureRandom;
use std::sync::Arc;

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

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, AppError> {
        let hash = hash_token(bearer(parts)?);
        if let Some(c) = state
            .auth_cache
            .read()
            .ok()
            .and_then(|m| m.get(&hash).copied())
        {
            return Ok(c);
        }
        let found = state
            .db
            .read(move |tx| {
                crate::store::accounts::by_token_hash(tx, &hash).map_err(AppError::from)
            })
            .await?;
        let caller =
            found.ok_or_else(|| AppError::new(ErrorCode::Unauthorized, "unknown token"))?;
        if let Ok(mut m) = state.auth_cache.write() {
            m.insert(hash, caller);
        }
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
