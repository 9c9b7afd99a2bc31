//! Negotiation routes for both parties: register a device key, upload signed consent, reject the
//! pending proposal.

use super::idempotent;
use crate::AppState;
use crate::auth::Caller;
use crate::error::AppError;
use crate::extract::{ApiJson, ApiPath, IdempotencyKey};
use crate::negotiate;
use axum::Json;
use axum::extract::State;
use friend_protocol::{
    ApiError, ConsentRequest, DeviceKeys, JobId, JobResponse, RegisterKeyRequest, RejectRequest,
    decode_public_key,
};
use std::sync::Arc;

/// Registers the caller's device key (Ed25519 public key, 32 bytes in base64). An account may
/// register several devices (at most 16) and keeps them all; registering a key again changes
/// nothing. The other party of a job receives the keys with the job's details.
#[utoipa::path(post, path = "/v1/keys", tag = "negotiation", security(("account" = [])),
    request_body = RegisterKeyRequest,
    responses((status = 200, body = DeviceKeys, description = "all keys the caller registered"),
        (status = 400, body = ApiError, description = "`invalid_input`: not 32 bytes of base64, or too many keys")))]
pub async fn register_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(req): ApiJson<RegisterKeyRequest>,
) -> Result<Json<DeviceKeys>, AppError> {
    let key = decode_public_key(&req.public_key)?;
    idempotent(
        &state,
        caller.id,
        None,
        "register_key".into(),
        serde_json::Value::Null,
        move |tx, now| negotiate::register_key(tx, caller, &key, now),
    )
    .await
    .map(Json)
}

/// Uploads a signed proposal or acceptance for the job. Either party uploads, and the payload may be
/// signed by either party (whoever is online first uploads what both signed offline). The server
/// verifies it against the keys registered for the signing party, checks the quote's guardrails and
/// the negotiation's rules, and stores it; the same payload again gets the same answer.
#[utoipa::path(post, path = "/v1/jobs/{id}/consent", tag = "negotiation", security(("account" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; retries of the same payload are safe without it",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = ConsentRequest,
    responses((status = 200, body = JobResponse, description = "the job with its negotiation"),
        (status = 404, body = ApiError, description = "`not_found`: not a party of this job"),
        (status = 409, body = ApiError, description = "job_closed, invalid_transition (not on site), negotiation_refused (stale_version, version_gap, not_latest, nothing_pending, own_proposal)"),
        (status = 422, body = ApiError, description = "invalid_consent (malformed_payload, key_not_registered, bad_signature, wrong_job, quote_mismatch, …) or invalid_quote (the quote rule's code)")))]
pub async fn consent(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(req): ApiJson<ConsentRequest>,
) -> Result<Json<JobResponse>, AppError> {
    let body = serde_json::json!({ "job": id, "payload": req.payload });
    idempotent(
        &state,
        caller.id,
        key.0,
        "consent".into(),
        body,
        move |tx, now| {
            let (job, effects) = negotiate::consent(tx, caller, id, &req.payload, now)?;
            Ok((JobResponse { job: job.details() }, effects))
        },
    )
    .await
    .map(Json)
}

/// The other party rejects the pending proposal. The earlier agreement, if any, stays in force.
#[utoipa::path(post, path = "/v1/jobs/{id}/reject", tag = "negotiation", security(("account" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; makes retries safe",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = RejectRequest,
    responses((status = 200, body = JobResponse),
        (status = 404, body = ApiError, description = "`not_found`: not a party of this job"),
        (status = 409, body = ApiError, description = "job_closed or negotiation_refused (not_latest, nothing_pending, own_proposal)")))]
pub async fn reject(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(req): ApiJson<RejectRequest>,
) -> Result<Json<JobResponse>, AppError> {
    let body = serde_json::json!({ "job": id, "version": req.version });
    idempotent(
        &state,
        caller.id,
        key.0,
        "reject".into(),
        body,
        move |tx, now| {
            let (job, effects) = negotiate::reject(tx, caller, id, req.version, now)?;
            Ok((JobResponse { job: job.details() }, effects))
        },
    )
    .await
    .map(Json)
}
