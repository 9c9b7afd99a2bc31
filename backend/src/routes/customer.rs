//! Customer routes: book (idempotent), list and read own jobs, cancel.

use super::{idempotent, idempotent_decided};
use crate::AppState;
use crate::actions;
use crate::auth::CustomerCaller;
use crate::error::AppError;
use crate::extract::{ApiJson, ApiPath, IdempotencyKey};
use crate::store::jobs;
use axum::Json;
use axum::extract::State;
use friend_protocol::lifecycle::{Actor, Event};
use friend_protocol::{ApiError, BookRequest, JobDetails, JobId, JobList, JobResponse};
use std::sync::Arc;

/// Books a job. A retry with the same `Idempotency-Key` returns the job booked the first time.
#[utoipa::path(post, path = "/v1/customer/jobs", tag = "customer", security(("customer" = [])),
    params(("Idempotency-Key" = String, Header, description = "Required; one key per booking",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = BookRequest,
    responses(
        (status = 200, body = JobResponse),
        (status = 400, body = ApiError, description = "`invalid_input`: a value outside the documented values or ranges, or a rule the schema cannot express (a blank text, control characters, a slot not in the future, longer than 12 h or more than 90 days ahead, on site without location or address); `unknown_service`; `idempotency_key_missing`"),
    ))]
pub async fn book(
    State(state): State<Arc<AppState>>,
    CustomerCaller(me): CustomerCaller,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<BookRequest>,
) -> Result<Json<JobResponse>, AppError> {
    let key = key.required()?;
    let body = serde_json::to_value(&req)?;
    let (booked, decided) = idempotent_decided(
        &state,
        me,
        Some(key),
        "book".into(),
        body,
        move |tx, now| {
            let (job, effects) = actions::book(tx, me, &req, now)?;
            tracing::info!(job = %job.id, category = job.category.as_str(), "booked");
            Ok((JobResponse { job }, effects))
        },
    )
    .await?;
    if decided {
        state.metrics.bookings.inc();
    }
    Ok(Json(booked))
}

/// The caller's jobs, newest first (at most 200).
#[utoipa::path(get, path = "/v1/customer/jobs", tag = "customer", security(("customer" = [])),
    responses((status = 200, body = JobList)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    CustomerCaller(me): CustomerCaller,
) -> Result<Json<JobList>, AppError> {
    let rows = state
        .db
        .read(move |tx| jobs::for_customer(tx, me, 200).map_err(AppError::from))
        .await?;
    Ok(Json(JobList {
        jobs: rows.iter().map(|j| j.details()).collect(),
    }))
}

/// One of the caller's jobs with full details.
#[utoipa::path(get, path = "/v1/customer/jobs/{id}", tag = "customer", operation_id = "get_customer_job",
    security(("customer" = [])), params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses((status = 200, body = JobDetails),
        (status = 404, body = ApiError, description = "`not_found`: no such job of the caller's")))]
pub async fn get_job(
    State(state): State<Arc<AppState>>,
    CustomerCaller(me): CustomerCaller,
    ApiPath(id): ApiPath<JobId>,
) -> Result<Json<JobDetails>, AppError> {
    let job = state
        .db
        .read(move |tx| jobs::get(tx, id).map_err(AppError::from))
        .await?;
    match job {
        Some(j) if j.customer_id == me => Ok(Json(j.details())),
        _ => Err(AppError::job_not_found()),
    }
}

/// Cancels the caller's job before the Friend is on site.
#[utoipa::path(post, path = "/v1/customer/jobs/{id}/cancel", tag = "customer", security(("customer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; makes retries safe",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    responses((status = 200, body = JobResponse),
        (status = 404, body = ApiError, description = "`not_found`: no such job of the caller's"),
        (status = 409, body = ApiError, description = "`invalid_transition`: too late to cancel")))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    CustomerCaller(me): CustomerCaller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
) -> Result<Json<JobResponse>, AppError> {
    let body = serde_json::json!({ "job": id });
    idempotent(&state, me, key.0, "cancel".into(), body, move |tx, now| {
        let (job, effects) = actions::apply(tx, id, Actor::Customer(me), Event::Cancel, now)?;
        Ok((JobResponse { job: job.details() }, effects))
    })
    .await
    .map(Json)
}
