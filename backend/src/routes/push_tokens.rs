//! Push token routes for both roles: a device registers the token FCM or APNs gave it, and forgets
//! it at sign-out. Tokens travel in bodies only (never in a path, so no request log holds one).

use super::idempotent;
use crate::AppState;
use crate::auth::Caller;
use crate::error::AppError;
use crate::extract::{ApiJson, IdempotencyKey};
use crate::store::{Effects, push};
use axum::Json;
use axum::extract::State;
use friend_protocol::push::validate_registration;
use friend_protocol::{ApiError, PushDevices, PushTokenRemoval, PushTokenRequest};
use std::sync::Arc;

/// Registers the caller's device for pushes. Registering the same token again changes nothing
/// (it counts as the device's latest registration); a token another account registered moves to
/// the caller; `replaces` (the device's previous token) is forgotten. An account keeps at most 10
/// devices: the least recently registered is forgotten first.
#[utoipa::path(post, path = "/v1/push-tokens", tag = "push", security(("account" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Optional; a registration is safe to repeat without it",
        min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = PushTokenRequest,
    responses((status = 200, body = PushDevices, description = "how many devices the caller has registered"),
        (status = 400, body = ApiError, description = "`invalid_input`: unknown platform, empty, too long or malformed token")))]
pub async fn register(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<PushTokenRequest>,
) -> Result<Json<PushDevices>, AppError> {
    validate_registration(&req)?;
    let body = serde_json::to_value(&req)?;
    idempotent(
        &state,
        caller.id,
        key.0,
        "push_register".into(),
        body,
        move |tx, now| {
            let devices = push::register(
                tx,
                caller.id,
                req.platform,
                &req.token,
                req.replaces.as_deref(),
                now,
            )?;
            Ok((PushDevices { devices }, Effects::default()))
        },
    )
    .await
    .map(Json)
}

/// Forgets one of the caller's push tokens (at sign-out). Forgetting a token that is not the
/// caller's, or no longer registered, changes nothing.
#[utoipa::path(post, path = "/v1/push-tokens/remove", tag = "push", security(("account" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Optional; a removal is safe to repeat without it",
        min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = PushTokenRemoval,
    responses((status = 200, body = PushDevices, description = "how many devices the caller has registered"),
        (status = 400, body = ApiError, description = "`invalid_input`: empty or too long token")))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<PushTokenRemoval>,
) -> Result<Json<PushDevices>, AppError> {
    friend_protocol::push::validate_token("token", friend_protocol::PushPlatform::Fcm, &req.token)?;
    let body = serde_json::to_value(&req)?;
    idempotent(
        &state,
        caller.id,
        key.0,
        "push_remove".into(),
        body,
        move |tx, _now| {
            let devices = push::remove(tx, caller.id, &req.token)?;
            Ok((PushDevices { devices }, Effects::default()))
        },
    )
    .await
    .map(Json)
}
