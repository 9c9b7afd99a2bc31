//! Routes between the accept and the arrival (SPEC §3): the agreed visit, "on my way", declining a
//! moved visit, and the preview of what a cancellation costs.

use super::idempotent_job;
use crate::AppState;
use crate::auth::{CustomerCaller, FriendCaller};
use crate::error::AppError;
use crate::extract::{ApiJson, ApiPath, IdempotencyKey};
use crate::visit;
use axum::Json;
use axum::extract::State;
use friend_protocol::{
    ApiError, AppointmentRequest, CancelPreview, JobId, JobResponse, OnMyWayRequest,
};
use std::sync::Arc;

/// The holding Friend records the agreed visit: a now-job's arrival window (at most 4 h, ending
/// within 12 h), or a slot job's slot confirmed or moved by agreement (the customer may decline a
/// moved one). The same visit again changes nothing.
#[utoipa::path(post, path = "/v1/friend/jobs/{id}/appointment", tag = "friend", security(("friend" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; makes retries safe",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = AppointmentRequest,
    responses((status = 200, body = JobResponse),
        (status = 400, body = ApiError, description = "`invalid_input`: the window is backwards, in the past, too long or too far ahead"),
        (status = 404, body = ApiError, description = "`not_found`: no such job"),
        (status = 409, body = ApiError, description = "`not_assigned_to_you` or `invalid_transition` (not assigned)")))]
pub async fn set_appointment(
    State(state): State<Arc<AppState>>,
    FriendCaller(me): FriendCaller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(req): ApiJson<AppointmentRequest>,
) -> Result<Json<JobResponse>, AppError> {
    let body = serde_json::json!({ "job": id, "visit": req });
    idempotent_job(&state, me, key.0, "appointment", body, move |tx, now| {
        visit::set_appointment(tx, me, id, &req, now)
    })
    .await
}

/// The holding Friend is on the way, with the arrival the device estimated (its position never
/// leaves it). A new estimate replaces the previous one; the customer is pushed.
#[utoipa::path(post, path = "/v1/friend/jobs/{id}/on-my-way", tag = "friend", security(("friend" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; makes retries safe",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = OnMyWayRequest,
    responses((status = 200, body = JobResponse),
        (status = 400, body = ApiError, description = "`invalid_input`: the estimate is in the past or more than 6 h ahead"),
        (status = 404, body = ApiError, description = "`not_found`: no such job"),
        (status = 409, body = ApiError, description = "`not_assigned_to_you` or `invalid_transition` (not assigned)")))]
pub async fn on_my_way(
    State(state): State<Arc<AppState>>,
    FriendCaller(me): FriendCaller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(req): ApiJson<OnMyWayRequest>,
) -> Result<Json<JobResponse>, AppError> {
    let body = serde_json::json!({ "job": id, "eta": req });
    idempotent_job(&state, me, key.0, "on_my_way", body, move |tx, now| {
        visit::on_my_way(tx, me, id, &req, now)
    })
    .await
}

/// The customer declines the visit the Friend moved away from the booked slot: the Friend is
/// released without penalty and the job is offered again.
#[utoipa::path(post, path = "/v1/customer/jobs/{id}/appointment/decline", tag = "customer",
    security(("customer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; makes retries safe",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    responses((status = 200, body = JobResponse),
        (status = 404, body = ApiError, description = "`not_found`: no such job of the caller's"),
        (status = 409, body = ApiError, description = "`invalid_transition`: not assigned, or the visit was not moved")))]
pub async fn decline_appointment(
    State(state): State<Arc<AppState>>,
    CustomerCaller(me): CustomerCaller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
) -> Result<Json<JobResponse>, AppError> {
    let body = serde_json::json!({ "job": id });
    idempotent_job(
        &state,
        me,
        key.0,
        "decline_appointment",
        body,
        move |tx, now| visit::decline_appointment(tx, me, id, now),
    )
    .await
}

/// What cancelling the caller's job now would cost: nothing while it is open; once a Friend holds
/// it, the compensation fee for a now-job, and for a slot job less than 24 h before the visit.
#[utoipa::path(get, path = "/v1/customer/jobs/{id}/cancel-preview", tag = "customer",
    security(("customer" = [])), params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses((status = 200, body = CancelPreview),
        (status = 404, body = ApiError, description = "`not_found`: no such job of the caller's"),
        (status = 409, body = ApiError, description = "`invalid_transition`: the job can no longer be cancelled")))]
pub async fn cancel_preview(
    State(state): State<Arc<AppState>>,
    CustomerCaller(me): CustomerCaller,
    ApiPath(id): ApiPath<JobId>,
) -> Result<Json<CancelPreview>, AppError> {
    let now = state.clock.now();
    state
        .db
        .read(move |tx| visit::cancel_preview(tx, me, id, now))
        .await
        .map(Json)
}
