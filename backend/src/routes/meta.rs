//! Health, catalog, identity and the OpenAPI document.

use crate::AppState;
use crate::auth::Caller;
use crate::error::AppError;
use crate::store::{accounts, catalog as catalog_store};
use axum::Json;
use axum::extract::State;
use friend_protocol::{ApiError, Catalog, ErrorCode, Health, Me, Readiness, Role};
use std::sync::Arc;

/// Liveness and the server clock.
#[utoipa::path(get, path = "/v1/health", tag = "meta", responses((status = 200, body = Health)))]
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        server_time: state.clock.now(),
    })
}

/// Readiness: 200 once the database answers (an instance migrates its database before it serves),
/// 503 `unavailable` with the reason while it drains or while the database does not answer — a
/// load balancer sends no new requests to it then.
#[utoipa::path(get, path = "/v1/ready", tag = "meta", responses(
    (status = 200, body = Readiness, description = "ready: serving, database answering"),
    (status = 503, body = ApiError, description = "draining, or the database does not answer")))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Result<Json<Readiness>, AppError> {
    if *state.draining.borrow() {
        return Err(AppError::new(
            ErrorCode::Unavailable,
            "draining: this instance is shutting down",
        ));
    }
    state
        .db
        .read(|tx| {
            tx.row("SELECT 1", crate::sql::params![], |_| Ok(()))
                .map_err(AppError::from)
        })
        .await
        .map_err(|e| {
            // The cause is for the operator's log; the probe (anyone may call it) learns only that.
            tracing::warn!(code = e.code.as_str(), "readiness: {}", e.message);
            AppError::new(ErrorCode::Unavailable, "the database does not answer")
        })?;
    Ok(Json(Readiness {
        status: "ready".into(),
        server_time: state.clock.now(),
        waiting_long_polls: state.notifier.waiting_accounts() as u64,
    }))
}

/// The service catalog with orientation prices.
#[utoipa::path(get, path = "/v1/catalog", tag = "meta", security(("account" = [])),
    responses((status = 200, body = Catalog)))]
pub async fn catalog(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
) -> Result<Json<Catalog>, AppError> {
    let catalog = state
        .db
        .read(|tx| catalog_store::catalog(tx).map_err(AppError::from))
        .await?;
    Ok(Json(catalog))
}

/// Who the caller is.
#[utoipa::path(get, path = "/v1/me", tag = "meta", security(("account" = [])),
    responses((status = 200, body = Me)))]
pub async fn me(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Me>, AppError> {
    let me = state
        .db
        .read(move |tx| {
            Ok::<_, AppError>(match caller.role {
                Role::Friend => accounts::friend(tx, caller.id)?.map(Me::Friend),
                _ => accounts::customer(tx, caller.id)?.map(Me::Customer),
            })
        })
        .await?;
    me.map(Json)
        .ok_or_else(|| AppError::new(ErrorCode::Unauthorized, "account gone"))
}

/// This OpenAPI 3 document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi())
}
