//! Admin routes (admin bearer token): create accounts, run the expiry sweep now.

use crate::AppState;
use crate::auth::{self, AdminCaller, TokenHash};
use crate::error::AppError;
use crate::extract::{ApiJson, ApiPath};
use crate::sql::Tx;
use crate::store::accounts;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use friend_protocol::{
    AccountId, ApiError, CreatedAccount, ErrorCode, FriendProfile, FriendUpdate, NewCustomer,
    NewFriend, Role, validate,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The metrics in the Prometheus text format (OpenMetrics): requests, latencies, long-polls and
/// wake-ups, accepts by outcome, idempotent replays, sync pages, the change-log head, the push
/// queue and its outcomes, the writer's queue and commit groups. Admin token (scrape config:
/// `authorization: {credentials: …}`).
#[utoipa::path(get, path = "/metrics", tag = "admin", security(("admin" = [])),
    responses((status = 200, description = "Prometheus text format (OpenMetrics 1.0)",
        content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    _admin: AdminCaller,
) -> Result<axum::response::Response, AppError> {
    let text = super::metrics_text(&state).await?;
    Ok(axum::response::IntoResponse::into_response((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )))
}

/// Creates a Friend and returns its token (shown once).
#[utoipa::path(post, path = "/v1/admin/friends", tag = "admin", security(("admin" = [])),
    request_body = NewFriend,
    responses((status = 200, body = CreatedAccount),
        (status = 400, body = ApiError, description = "`invalid_input`: a blank name or community, control characters, or a category or tier outside the documented values")))]
pub async fn create_friend(
    State(state): State<Arc<AppState>>,
    _admin: AdminCaller,
    ApiJson(req): ApiJson<NewFriend>,
) -> Result<Json<CreatedAccount>, AppError> {
    create_friend_in(&state, req).await.map(Json)
}

pub(crate) async fn create_friend_in(
    state: &Arc<AppState>,
    req: NewFriend,
) -> Result<CreatedAccount, AppError> {
    validate::new_friend(&req)?;
    create_account(state, Role::Friend, move |tx, id, hash, now| {
        accounts::insert_friend(tx, id, &req, hash, now)
    })
    .await
}

/// Creates a customer and returns its token (shown once).
#[utoipa::path(post, path = "/v1/admin/customers", tag = "admin", security(("admin" = [])),
    request_body = NewCustomer,
    responses((status = 200, body = CreatedAccount),
        (status = 400, body = ApiError, description = "`invalid_input`: a blank name, or control characters")))]
pub async fn create_customer(
    State(state): State<Arc<AppState>>,
    _admin: AdminCaller,
    ApiJson(req): ApiJson<NewCustomer>,
) -> Result<Json<CreatedAccount>, AppError> {
    create_customer_in(&state, req).await.map(Json)
}

pub(crate) async fn create_customer_in(
    state: &Arc<AppState>,
    req: NewCustomer,
) -> Result<CreatedAccount, AppError> {
    validate::new_customer(&req)?;
    create_account(state, Role::Customer, move |tx, id, hash, now| {
        accounts::insert_customer(tx, id, &req, hash, now)
    })
    .await
}

/// Creates an account of `role` with a fresh token; `insert` writes the role's rows. The request is
/// validated before, so a refused one costs no randomness and no write.
async fn create_account<F>(
    state: &Arc<AppState>,
    role: Role,
    insert: F,
) -> Result<CreatedAccount, AppError>
where
    F: Fn(&Tx<'_>, AccountId, &TokenHash, DateTime<Utc>) -> crate::sql::Result<()> + Send + 'static,
{
    let token = auth::new_token()?;
    let hash = auth::hash_token(&token);
    let id = AccountId::random();
    let now = state.clock.now();
    state
        .db
        .write(move |tx| insert(tx, id, &hash, now).map_err(AppError::from))
        .await?;
    Ok(CreatedAccount { id, role, token })
}

/// Result of an expiry sweep.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Expired {
    /// How many open jobs expired.
    pub expired: usize,
}

/// Expires every open job whose time is up by the server clock (the server also does this on a
/// timer; this route is for operators and QA).
#[utoipa::path(post, path = "/v1/admin/expire-due", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = Expired)))]
pub async fn expire_due(
    State(state): State<Arc<AppState>>,
    _admin: AdminCaller,
) -> Result<Json<Expired>, AppError> {
    Ok(Json(Expired {
        expired: super::expire_due(&state).await?,
    }))
}

/// Why a Friend is suspended (recorded in the audit).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuspendRequest {
    /// The reason, for the record (1…2,000 characters; no control characters but line breaks).
    pub reason: String,
}

/// The admin changes, newest first.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminChanges {
    /// Newest first.
    pub changes: Vec<accounts::AuditRow>,
}

/// Who makes admin changes: the one admin credential this backend has.
const ADMIN_ACTOR: &str = "admin";

/// Records an admin change of account `id` in the audit.
fn record(
    tx: &Tx<'_>,
    at: DateTime<Utc>,
    action: &str,
    id: AccountId,
    detail: String,
) -> crate::sql::Result<()> {
    accounts::audit(
        tx,
        &accounts::AuditRow {
            at,
            actor: ADMIN_ACTOR.into(),
            action: action.into(),
            account_id: Some(id),
            detail,
        },
    )
}

/// Suspends a Friend: no offers or pushes from now on, accepts refused `not_eligible` with reason
/// `suspended`; jobs they hold stay theirs unless released. Recorded in the audit.
#[utoipa::path(post, path = "/v1/admin/friends/{id}/suspend", tag = "admin", security(("admin" = [])),
    params(("id" = uuid::Uuid, Path, description = "The Friend's account id")),
    request_body = SuspendRequest,
    responses((status = 200, body = FriendProfile),
        (status = 400, body = ApiError, description = "`invalid_input`: a blank or overlong reason"),
        (status = 404, body = ApiError, description = "`not_found`: no such Friend")))]
pub async fn suspend(
    State(state): State<Arc<AppState>>,
    _admin: AdminCaller,
    ApiPath(id): ApiPath<AccountId>,
    ApiJson(req): ApiJson<SuspendRequest>,
) -> Result<Json<FriendProfile>, AppError> {
    if req.reason.trim().is_empty() {
        return Err(AppError::new(
            ErrorCode::InvalidInput,
            "reason: must not be blank",
        ));
    }
    validate::note("reason", Some(&req.reason))?;
    set_suspended(&state, id, Some(req.reason)).await.map(Json)
}

/// Reactivates a suspended Friend: offers, pushes and accepts again. Recorded in the audit.
#[utoipa::path(post, path = "/v1/admin/friends/{id}/reactivate", tag = "admin", security(("admin" = [])),
    params(("id" = uuid::Uuid, Path, description = "The Friend's account id")),
    responses((status = 200, body = FriendProfile),
        (status = 404, body = ApiError, description = "`not_found`: no such Friend")))]
pub async fn reactivate(
    State(state): State<Arc<AppState>>,
    _admin: AdminCaller,
    ApiPath(id): ApiPath<AccountId>,
) -> Result<Json<FriendProfile>, AppError> {
    set_suspended(&state, id, None).await.map(Json)
}

/// Suspends (with a reason) or reactivates (`None`) a Friend, and records it.
async fn set_suspended(
    state: &Arc<AppState>,
    id: AccountId,
    reason: Option<String>,
) -> Result<FriendProfile, AppError> {
    let now = state.clock.now();
    state
        .db
        .write(move |tx| {
            let suspend = reason.is_some();
            if !accounts::set_suspended(tx, id, suspend, now)? {
                return Err(AppError::new(ErrorCode::NotFound, "no such Friend"));
            }

            record(
                tx,
                now,
                if suspend { "suspend" } else { "reactivate" },
                id,
                reason.clone().unwrap_or_default(),
            )?;
            let profile = accounts::friend(tx, id)?
                .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such Friend"))?;
            // "No offers from now on" includes those still waiting in the push queue.
            crate::push::plan::refit_offers(tx, &profile)?;
            Ok(profile)
        })
        .await
        .inspect(|_| profile_changed(state, id))
}

/// A Friend's profile changed (suspension, qualifications, radius): a long-poll they have waiting
/// wakes and goes on with the new profile — offers it no longer allows stop at once.
fn profile_changed(state: &AppState, id: AccountId) {
    state.notifier.wake(&crate::store::Effects {
        wake: vec![id],
        ..Default::default()
    });
}

/// Gives an account a new token (shown once); the old one is refused from this answer on by this
/// instance, and by the other instances on the same database as soon as they hear of it (within
/// 30 s should the notification be lost).
/// Recorded in the audit (never the token).
#[utoipa::path(post, path = "/v1/admin/accounts/{id}/rotate-token", tag = "admin", security(("admin" = [])),
    params(("id" = uuid::Uuid, Path, description = "The account id")),
    responses((status = 200, body = CreatedAccount),
        (status = 404, body = ApiError, description = "`not_found`: no such account")))]
pub async fn rotate_token(
    State(state): State<Arc<AppState>>,
    _admin: AdminCaller,
    ApiPath(id): ApiPath<AccountId>,
) -> Result<Json<CreatedAccount>, AppError> {
    let token = auth::new_token()?;
    let hash = auth::hash_token(&token);
    let now = state.clock.now();
    let role = state
        .db
        .write(move |tx| {
            let role = accounts::set_token_hash(tx, id, &hash)?
                .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such account"))?;
            record(tx, now, "rotate_token", id, String::new())?;
            Ok::<_, AppError>(role)
        })
        .await?;
    // The old token stops at once on this instance (the others: within auth::AUTH_CACHE_TTL).
    state.auth_cache.forget(id);
    Ok(Json(CreatedAccount { id, role, token }))
}

/// How many entries an admin listing's page holds at most.
const MAX_ADMIN_PAGE: u32 = 500;

/// Parameters of the audit listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// At most this many, newest first (1…500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// The recorded admin changes: who, what, when.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("admin" = [])),
    params(AuditParams),
    responses((status = 200, body = AdminChanges),
        (status = 400, body = ApiError, description = "`invalid_input`: limit outside 1…500")))]
pub async fn audit(
    State(state): State<Arc<AppState>>,
    _admin: AdminCaller,
    crate::extract::ApiQuery(params): crate::extract::ApiQuery<AuditParams>,
) -> Result<Json<AdminChanges>, AppError> {
    let limit = page_limit(params.limit)?;
    let rows = state
        .db
        .read(move |tx| accounts::audit_log(tx, limit).map_err(AppError::from))
        .await?;
    Ok(Json(AdminChanges { changes: rows }))
}

/// Changes a Friend's qualifications (categories, communities, tier) and travel radius; fields left
/// out stay. Offers follow the new profile from the Friend's next sync. Recorded in the audit.
#[utoipa::path(post, path = "/v1/admin/friends/{id}/profile", tag = "admin", security(("admin" = [])),
    params(("id" = uuid::Uuid, Path, description = "The Friend's account id")),
    request_body = FriendUpdate,
    responses((status = 200, body = FriendProfile),
        (status = 400, body = ApiError, description = "`invalid_input`: no category, an unknown category or tier, a radius outside 1…50, a blank community"),
        (status = 404, body = ApiError, description = "`not_found`: no such Friend")))]
pub async fn update_friend(
    State(state): State<Arc<AppState>>,
    _admin: AdminCaller,
    ApiPath(id): ApiPath<AccountId>,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<FriendProfile>, AppError> {
    // An object only: serde would also read an all-optional struct from an array (`[null]`).
    let update: FriendUpdate = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| AppError::new(ErrorCode::InvalidInput, format!("body: {e}")))?;
    let now = state.clock.now();
    state
        .db
        .write(move |tx| {
            let current = accounts::friend(tx, id)?
                .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such Friend"))?;
            let next = update.apply(&current);
            // The same rules as for a new Friend.
            validate::new_friend(&NewFriend {
                name: next.name.clone(),
                home: next.home,
                radius_km: next.radius_km,
                categories: next.categories.clone(),
                communities: next.communities.clone(),
                tier: next.tier,
            })?;
            accounts::update_friend(tx, &next)?;
            // Offers queued under the old profile that the new one does not allow are not sent.
            crate::push::plan::refit_offers(tx, &next)?;
            record(
                tx,
                now,
                "update_profile",
                id,
                serde_json::to_string(&update).unwrap_or_default(),
            )?;
            Ok(next)
        })
        .await
        .inspect(|_| profile_changed(&state, id))
        .map(Json)
}

/// Parameters of the Friends listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FriendsParams {
    /// At most this many, by name (1…500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// The Friends as operators list them.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FriendRecords {
    /// By name.
    pub friends: Vec<accounts::FriendRecord>,
}

/// The Friends with their ratings and completed jobs, by name.
#[utoipa::path(get, path = "/v1/admin/friends", tag = "admin", security(("admin" = [])),
    params(FriendsParams),
    responses((status = 200, body = FriendRecords),
        (status = 400, body = ApiError, description = "`invalid_input`: limit outside 1…500")))]
pub async fn list_friends(
    State(state): State<Arc<AppState>>,
    _admin: AdminCaller,
    crate::extract::ApiQuery(params): crate::extract::ApiQuery<FriendsParams>,
) -> Result<Json<FriendRecords>, AppError> {
    let limit = page_limit(params.limit)?;
    let friends = state
        .db
        .read(move |tx| accounts::friend_records(tx, limit).map_err(AppError::from))
        .await?;
    Ok(Json(FriendRecords { friends }))
}

/// A listing's page size: 1…[`MAX_ADMIN_PAGE`], 100 by default.
fn page_limit(limit: Option<u32>) -> Result<u32, AppError> {
    let limit = limit.unwrap_or(100);
    if limit == 0 || limit > MAX_ADMIN_PAGE {
        return Err(AppError::new(
            ErrorCode::InvalidInput,
            format!("limit must be 1…{MAX_ADMIN_PAGE}"),
        ));
    }
    Ok(limit)
}
