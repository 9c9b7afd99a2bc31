//! Admin routes (admin bearer token): create accounts, run the expiry sweep now.

use crate::AppState;
use crate::auth::{self, AdminCaller, TokenHash};
use crate::error::AppError;
use crate::extract::ApiJson;
use crate::store::accounts;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use friend_protocol::{
    AccountId, ApiError, CreatedAccount, NewCustomer, NewFriend, Role, validate,
};
use rusqlite::Connection;
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
    F: FnOnce(&Connection, AccountId, &TokenHash, DateTime<Utc>) -> rusqlite::Result<()>
        + Send
        + 'static,
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
