//! The Friends' ledger: each Friend reads their own; the admin moves entries forward.

use crate::AppState;
use crate::auth::{AdminCaller, FriendCaller};
use crate::error::AppError;
use crate::extract::{ApiJson, ApiPath};
use crate::finish;
use crate::store::ledger;
use axum::Json;
use axum::extract::State;
use friend_protocol::{ApiError, JobId, Ledger, LedgerEntry, LedgerUpdate};
use std::sync::Arc;

/// Most entries returned.
const LEDGER_LIMIT: u32 = 500;

/// The caller's ledger, newest first (at most 500 entries): one entry per completed job with what it
/// settled at. For cash jobs the Friend owes the fee; for online jobs the platform owes the payout.
#[utoipa::path(get, path = "/v1/friend/ledger", tag = "friend", security(("friend" = [])),
    responses((status = 200, body = Ledger)))]
pub async fn friend_ledger(
    State(state): State<Arc<AppState>>,
    FriendCaller(me): FriendCaller,
) -> Result<Json<Ledger>, AppError> {
    let entries = state
        .db
        .read(move |tx| ledger::for_friend(tx, me, LEDGER_LIMIT).map_err(AppError::from))
        .await?;
    Ok(Json(Ledger { entries }))
}

/// Moves a job's ledger entry forward: pending → to_pay → paid (skipping is allowed, the same status
/// again is a no-op, backwards is refused).
#[utoipa::path(post, path = "/v1/admin/ledger/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id")),
    request_body = LedgerUpdate,
    responses((status = 200, body = LedgerEntry),
        (status = 400, body = ApiError, description = "`invalid_input`: a status outside the documented values"),
        (status = 404, body = ApiError, description = "`not_found`: no ledger entry for this job"),
        (status = 409, body = ApiError, description = "`invalid_transition` (backwards)")))]
pub async fn move_entry(
    State(state): State<Arc<AppState>>,
    _admin: AdminCaller,
    ApiPath(id): ApiPath<JobId>,
    ApiJson(req): ApiJson<LedgerUpdate>,
) -> Result<Json<LedgerEntry>, AppError> {
    let clock = state.clock.clone();
    let entry = state
        .db
        .write(move |tx| finish::move_ledger(tx, id, req.status, clock.now()))
        .await?;
    Ok(Json(entry))
}
