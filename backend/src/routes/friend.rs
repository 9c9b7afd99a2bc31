//! Friend routes: read an offer or held job, the accept race, decline, release and check-in.

use super::{idempotent, idempotent_decided, idempotent_job};
use crate::AppState;
use crate::actions;
use crate::auth::FriendCaller;
use crate::error::AppError;
use crate::extract::{ApiJson, ApiPath, IdempotencyKey};
use crate::store::{accounts, jobs};
use crate::views;
use axum::Json;
use axum::extract::State;
use friend_protocol::lifecycle::{Actor, Event};
use friend_protocol::{
    AcceptOutcome, AccountId, ApiError, Change, DeclineReason, DeclineRequest, ErrorCode,
    FriendJobView, JobId, JobResponse, ReleaseRequest,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The idempotency route name of accepts (the lookup reads and fences it).
const ACCEPT: &str = "accept";

/// The full job when the caller holds it, the approximate offer when they are eligible, else 404.
#[utoipa::path(get, path = "/v1/friend/jobs/{id}", tag = "friend", operation_id = "get_friend_job",
    security(("friend" = [])), params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses((status = 200, body = FriendJobView),
        (status = 404, body = ApiError, description = "`not_found`: no such job, or neither held by nor offered to the caller")))]
pub async fn get_job(
    State(state): State<Arc<AppState>>,
    FriendCaller(me): FriendCaller,
    ApiPath(id): ApiPath<JobId>,
) -> Result<Json<FriendJobView>, AppError> {
    let clock = state.clock.clone();
    let view = state
        .db
        .read(move |tx| {
            let now = clock.now();
            let Some(job) = jobs::get(tx, id)? else {
                return Ok(None);
            };
            let Some(profile) = accounts::friend(tx, me)? else {
                return Ok(None);
            };
            let declined = jobs::declined_among(tx, me, &[job.id])?.contains(&job.id);
            Ok::<_, AppError>(match views::for_friend(&job, &profile, declined, now) {
                Change::Job { job } => Some(FriendJobView::Full(*job)),
                Change::Offer { offer } => Some(FriendJobView::Offer(offer)),
                _ => None,
            })
        })
        .await?;
    view.map(Json).ok_or_else(AppError::job_not_found)
}

/// Takes an open job: the first accept wins. Requires an `Idempotency-Key`; a retry with the same key
/// returns the original outcome (a lost "won" response is never turned into "taken").
#[utoipa::path(post, path = "/v1/friend/jobs/{id}/accept", tag = "friend", security(("friend" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = String, Header, description = "Required; written to the device before sending",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    responses(
        (status = 200, body = AcceptOutcome, description = "won, taken, cancelled, expired or not_eligible"),
        (status = 400, body = ApiError, description = "`idempotency_key_missing`: no Idempotency-Key"),
        (status = 404, body = ApiError, description = "`not_found`: no such job"),
    ))]
pub async fn accept(
    State(state): State<Arc<AppState>>,
    FriendCaller(me): FriendCaller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
) -> Result<Json<AcceptOutcome>, AppError> {
    let key = key.required()?;
    let body = serde_json::json!({ "job": id });
    let (outcome, decided) = idempotent_decided(
        &state,
        me,
        Some(key),
        ACCEPT.into(),
        body,
        move |tx, now| actions::accept(tx, me, id, now),
    )
    .await?;
    // Counted when decided, not when replayed from the stored outcome.
    if decided {
        state.metrics.accept(outcome.as_str());
        return Ok(Json(outcome));
    }
    Ok(Json(as_seen_now(&state, me, outcome).await?))
}

/// A stored accept outcome as the caller may see it now. A win is answered with the job's
/// current details while the caller holds it; once they no longer do (released, the moved visit
/// declined, given to another Friend) with what the job is to them now — cancelled, expired or
/// taken — never with the customer's address and contact from the stored answer (SPEC §8: full
/// details only for the Friend the job is assigned to). Other outcomes are answered as stored.
async fn as_seen_now(
    state: &AppState,
    me: AccountId,
    outcome: AcceptOutcome,
) -> Result<AcceptOutcome, AppError> {
    let AcceptOutcome::Won { job } = outcome else {
        return Ok(outcome);
    };
    let id = job.id;
    let now = state
        .db
        .read(move |tx| jobs::get(tx, id).map_err(AppError::from))
        .await?;
    Ok(match now {
        Some(job) if job.friend_id() == Some(me) => AcceptOutcome::Won {
            job: Box::new(job.details()),
        },
        Some(job) if job.state == friend_protocol::JobState::Cancelled => AcceptOutcome::Cancelled,
        Some(job) if job.state == friend_protocol::JobState::Expired => AcceptOutcome::Expired,
        _ => AcceptOutcome::Taken,
    })
}

/// The outcome of an earlier accept, by its `Idempotency-Key`, without side effects on the job: how
/// a device that lost an accept's answer (app killed, connection dropped) learns what happened
/// without accepting again. The answer is final: a lookup that finds nothing fences the key in
/// the same serial order as the writes, so an accept with it still on its way can no longer apply
/// (it is refused with `idempotency_key_reused`); 404 means no accept with this key was or will
/// ever be applied. A win is answered with the job as it is now: its details while the caller
/// holds it, else `cancelled`, `expired` or `taken` (never the customer's address to a former
/// holder).
#[utoipa::path(get, path = "/v1/friend/accepts/{key}", tag = "friend", security(("friend" = [])),
    params(("key" = String, Path, description = "The Idempotency-Key the accept was sent with",
        min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    responses((status = 200, body = AcceptOutcome), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError, description = "no accept with this key was applied, and none will be")))]
pub async fn accept_outcome(
    State(state): State<Arc<AppState>>,
    FriendCaller(me): FriendCaller,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<AcceptOutcome>, AppError> {
    use crate::store::idempotency::{self, Recorded};
    let never = || {
        AppError::new(
            ErrorCode::NotFound,
            "no accept with this key was applied, and none with it will be",
        )
    };
    // A key no request could carry (`IdempotencyKey` takes trimmed visible ASCII up to its
    // limit) is answered without a write.
    if key.is_empty()
        || key.len() > crate::extract::MAX_IDEMPOTENCY_KEY_LEN
        || key.trim() != key
        || !key
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err(never());
    }
    let lookup_key = key.clone();
    let found = state
        .db
        .read(move |tx| idempotency::stored(tx, me, &lookup_key, ACCEPT).map_err(AppError::from))
        .await?;
    let recorded = match found {
        Some(r) => r,
        // Nothing yet: decide on the writer, behind any accept with this key already queued.
        None => {
            let clock = state.clock.clone();
            state
                .db
                .write(move |tx| {
                    // Fence first: an accept with this key still in flight holds its claim, so
                    // this waits for it and then reads its outcome; a later one finds the fence.
                    idempotency::fence(tx, me, &key, ACCEPT, clock.now())?;
                    Ok::<_, AppError>(
                        idempotency::stored(tx, me, &key, ACCEPT)?.unwrap_or(Recorded::Fenced),
                    )
                })
                .await?
        }
    };
    match recorded {
        Recorded::Answer(body) => Ok(Json(
            as_seen_now(&state, me, serde_json::from_str(&body)?).await?,
        )),
        Recorded::Fenced => Err(never()),
    }
}

/// Acknowledgement of a decline.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Declined {
    /// The declined job.
    pub job_id: JobId,
}

/// Declines an open offer with a reason; it leaves the caller's inbox.
#[utoipa::path(post, path = "/v1/friend/jobs/{id}/decline", tag = "friend", security(("friend" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; makes retries safe",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = DeclineRequest,
    responses((status = 200, body = Declined),
        (status = 400, body = ApiError, description = "`invalid_input`: a reason outside the documented values"),
        (status = 404, body = ApiError, description = "`not_found`: no such job"),
        (status = 409, body = ApiError, description = "`invalid_transition`: the job is no longer open")))]
pub async fn decline(
    State(state): State<Arc<AppState>>,
    FriendCaller(me): FriendCaller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(req): ApiJson<DeclineRequest>,
) -> Result<Json<Declined>, AppError> {
    let reason = match req.reason {
        DeclineReason::TooFar => "too_far",
        DeclineReason::NoTime => "no_time",
        DeclineReason::NotMySkill => "not_my_skill",
        DeclineReason::Other => "other",
        DeclineReason::Unknown => {
            return Err(AppError::new(
                ErrorCode::InvalidInput,
                "reason: unknown value",
            ));
        }
    };
    let body = serde_json::json!({ "job": id, "reason": reason });
    idempotent(&state, me, key.0, "decline".into(), body, move |tx, now| {
        let effects = actions::decline(tx, me, id, reason, now)?;
        Ok((Declined { job_id: id }, effects))
    })
    .await
    .map(Json)
}

async fn held_job_event(
    state: Arc<AppState>,
    me: AccountId,
    key: Option<String>,
    id: JobId,
    event: Event,
) -> Result<Json<JobResponse>, AppError> {
    let body = serde_json::json!({ "job": id });
    idempotent_job(&state, me, key, event.as_str(), body, move |tx, now| {
        actions::apply(tx, id, Actor::Friend(me), event, now)
    })
    .await
}

/// Gives an assigned job back to the crowd before arriving, saying why: it is offered again to the
/// eligible Friends (not to the caller) and the customer sees "looking for another Friend".
#[utoipa::path(post, path = "/v1/friend/jobs/{id}/release", tag = "friend", security(("friend" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; makes retries safe",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    request_body = ReleaseRequest,
    responses((status = 200, body = JobResponse),
        (status = 400, body = ApiError, description = "`invalid_input`: unknown reason or a note too long"),
        (status = 404, body = ApiError, description = "`not_found`: no such job"),
        (status = 409, body = ApiError, description = "`not_assigned_to_you` or `invalid_transition`")))]
pub async fn release(
    State(state): State<Arc<AppState>>,
    FriendCaller(me): FriendCaller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> Result<Json<JobResponse>, AppError> {
    let body = serde_json::json!({ "job": id, "release": req });
    idempotent_job(&state, me, key.0, "release", body, move |tx, now| {
        crate::visit::release(tx, me, id, &req, now)
    })
    .await
}

/// Checks in on site.
#[utoipa::path(post, path = "/v1/friend/jobs/{id}/check-in", tag = "friend", security(("friend" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; makes retries safe",
            min_length = 1, max_length = 128, pattern = r"^[!-~]([\t -~]*[!-~])?$")),
    responses((status = 200, body = JobResponse),
        (status = 404, body = ApiError, description = "`not_found`: no such job"),
        (status = 409, body = ApiError, description = "`not_assigned_to_you` or `invalid_transition`")))]
pub async fn check_in(
    State(state): State<Arc<AppState>>,
    FriendCaller(me): FriendCaller,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<JobId>,
) -> Result<Json<JobResponse>, AppError> {
    held_job_event(state, me, key.0, id, Event::CheckIn).await
}
