//! How a job ends after check-in: the Friend completes it (with the payment method), escalates it or
//! checks out unsuccessful; the customer rates it.

use super::idempotent_job;
use crate::AppState;
use crate::auth::{CustomerCaller, FriendCaller};
use crate::error::AppError;
use crate::extract::{ApiJson, ApiPath, IdempotencyKey};
use crate::finish;
use axum::Json;
use axum::extract::State;
use friend_protocol::lifecycle::Event;
use friend_protocol::{
    ApiError, CompleteRequest, EscalateRequest, JobId, JobOutcome, JobResponse, RateRequest,
    UnsuccessfulRequest,
};
use std::sync::Arc;

/// Completes an agreed job at the agreed total, with the payment method. Settles the total (cash is
/// rounded to the smallest coin, the fee is taken from what was charged) and records a ledger entry.
#[utoipa::path(post, path = "/v1/friend/jobs/{id}/complete", tag = "friend", security(("friend" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; the same completion again is answered like the first",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = CompleteRequest,
    responses((status = 200, body = JobResponse, description = "the completed job with payment, final total and settlement"),
        (status = 400, body = ApiError, description = "`invalid_input`: a payment method outside the documented values, or a total that cannot be settled"),
        (status = 404, body = ApiError, description = "`not_found`: not the Friend of this job"),
        (status = 409, body = ApiError, description = "`job_closed`, `negotiation_refused` (not_agreed, amendment_pending, total_not_agreed) or `invalid_transition`")))]
pub async fn complete(
    State(state): State<Arc<AppState>>,
    FriendCaller(me): FriendCaller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> Result<Json<JobResponse>, AppError> {
    req.validate()?;
    let body = serde_json::json!({ "job": id, "request": req });
    idempotent_job(&state, me, key.0, "complete", body, move |tx, now| {
        finish::complete(tx, me, id, &req, now)
    })
    .await
}

/// Escalation and unsuccessful check-out: the same write, told apart by the event and outcome.
async fn end_unhappily(
    state: Arc<AppState>,
    me: friend_protocol::AccountId,
    key: Option<String>,
    id: JobId,
    event: Event,
    outcome: JobOutcome,
) -> Result<Json<JobResponse>, AppError> {
    let body = serde_json::json!({ "job": id, "outcome": outcome });
    idempotent_job(&state, me, key, event.as_str(), body, move |tx, now| {
        finish::end_unhappily(tx, me, id, event, &outcome, now)
    })
    .await
}

/// A blank note is no note: the outcome (and the idempotency fingerprint) then carries none.
fn trimmed_note(note: Option<String>) -> Option<String> {
    note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty())
}

/// Hands the job to the company's field service (too complex on site). From on site or agreed.
#[utoipa::path(post, path = "/v1/friend/jobs/{id}/escalate", tag = "friend", security(("friend" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; makes retries safe",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = EscalateRequest,
    responses((status = 200, body = JobResponse),
        (status = 400, body = ApiError, description = "`invalid_input`: the note has control characters"),
        (status = 404, body = ApiError, description = "`not_found`: not the Friend of this job"),
        (status = 409, body = ApiError, description = "`job_closed` or `invalid_transition`")))]
pub async fn escalate(
    State(state): State<Arc<AppState>>,
    FriendCaller(me): FriendCaller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(req): ApiJson<EscalateRequest>,
) -> Result<Json<JobResponse>, AppError> {
    req.validate()?;
    let note = trimmed_note(req.note);
    let outcome = JobOutcome::Escalated { note };
    end_unhappily(state, me, key.0, id, Event::Escalate, outcome).await
}

/// Checks out without success (customer absent after waiting and calling, cannot help, other).
/// From on site or agreed.
#[utoipa::path(post, path = "/v1/friend/jobs/{id}/unsuccessful", tag = "friend", security(("friend" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; makes retries safe",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = UnsuccessfulRequest,
    responses((status = 200, body = JobResponse),
        (status = 400, body = ApiError, description = "`invalid_input`: a reason outside the documented values, the note missing for `other` or with control characters"),
        (status = 404, body = ApiError, description = "`not_found`: not the Friend of this job"),
        (status = 409, body = ApiError, description = "`job_closed` or `invalid_transition`")))]
pub async fn unsuccessful(
    State(state): State<Arc<AppState>>,
    FriendCaller(me): FriendCaller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(req): ApiJson<UnsuccessfulRequest>,
) -> Result<Json<JobResponse>, AppError> {
    req.validate()?;
    let note = trimmed_note(req.note);
    let outcome = JobOutcome::Unsuccessful {
        reason: req.reason,
        note,
    };
    end_unhappily(state, me, key.0, id, Event::CheckOutUnsuccessful, outcome).await
}

/// Rates a completed job, 1–5 stars with an optional comment (≤ 500 characters). Once per job.
#[utoipa::path(post, path = "/v1/customer/jobs/{id}/rate", tag = "customer", security(("customer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; a retry with the same key gets the first answer",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = RateRequest,
    responses((status = 200, body = JobResponse),
        (status = 400, body = ApiError, description = "`invalid_input`: stars outside 1…5, or a comment with control characters"),
        (status = 404, body = ApiError, description = "`not_found`: no such job of the caller's"),
        (status = 409, body = ApiError, description = "`already_rated`, or `invalid_transition` (not completed)")))]
pub async fn rate(
    State(state): State<Arc<AppState>>,
    CustomerCaller(me): CustomerCaller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(req): ApiJson<RateRequest>,
) -> Result<Json<JobResponse>, AppError> {
    req.validate()?;
    let body = serde_json::json!({ "job": id, "request": req });
    idempotent_job(&state, me, key.0, "rate", body, move |tx, now| {
        finish::rate(tx, me, id, &req, now)
    })
    .await
}
