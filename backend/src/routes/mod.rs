//! HTTP routes, the OpenAPI document, and the helpers every handler shares: idempotent writes,
//! typed fallbacks and the server-time header.

pub(crate) mod admin;
mod closing;
mod contract;
mod customer;
mod friend;
mod ledger;
mod meta;
mod negotiation;
mod push_tokens;
mod sync;
mod visit;

use crate::AppState;
use crate::error::AppError;
use crate::sql::Tx;
use crate::store::jobs::JobRow;
use crate::store::{Effects, idempotency};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use contract::Contract;
use friend_protocol::{AccountId, ErrorCode, JobResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use utoipa::OpenApi;

/// Where the OpenAPI 3 document is served.
pub const OPENAPI_PATH: &str = "/v1/openapi.json";
/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Response header carrying the server clock (milliseconds since the epoch) on every response.
pub const SERVER_TIME_HEADER: &str = "x-server-time";

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/health", get(meta::health))
        .route("/v1/ready", get(meta::ready))
        .route("/v1/catalog", get(meta::catalog))
        .route("/v1/me", get(meta::me))
        .route(OPENAPI_PATH, get(meta::openapi_json))
        .route("/v1/sync", get(sync::sync))
        .route(
            "/v1/customer/jobs",
            post(customer::book).get(customer::list),
        )
        .route("/v1/customer/jobs/{id}", get(customer::get_job))
        .route("/v1/customer/jobs/{id}/cancel", post(customer::cancel))
        .route("/v1/friend/jobs/{id}", get(friend::get_job))
        .route("/v1/friend/jobs/{id}/accept", post(friend::accept))
        .route("/v1/friend/accepts/{key}", get(friend::accept_outcome))
        .route("/v1/friend/jobs/{id}/decline", post(friend::decline))
        .route("/v1/friend/jobs/{id}/release", post(friend::release))
        .route("/v1/friend/jobs/{id}/check-in", post(friend::check_in))
        .route(
            "/v1/friend/jobs/{id}/appointment",
            post(visit::set_appointment),
        )
        .route("/v1/friend/jobs/{id}/on-my-way", post(visit::on_my_way))
        .route(
            "/v1/customer/jobs/{id}/appointment/decline",
            post(visit::decline_appointment),
        )
        .route(
            "/v1/customer/jobs/{id}/cancel-preview",
            get(visit::cancel_preview),
        )
        .route("/v1/friend/jobs/{id}/complete", post(closing::complete))
        .route("/v1/friend/jobs/{id}/escalate", post(closing::escalate))
        .route(
            "/v1/friend/jobs/{id}/unsuccessful",
            post(closing::unsuccessful),
        )
        .route("/v1/friend/ledger", get(ledger::friend_ledger))
        .route("/v1/customer/jobs/{id}/rate", post(closing::rate))
        .route("/v1/keys", post(negotiation::register_key))
        .route("/v1/push-tokens", post(push_tokens::register))
        .route("/v1/push-tokens/remove", post(push_tokens::remove))
        .route("/v1/jobs/{id}/consent", post(negotiation::consent))
        .route("/v1/jobs/{id}/reject", post(negotiation::reject))
        .route("/v1/admin/ledger/{id}", post(ledger::move_entry))
        .route(
            "/v1/admin/friends",
            post(admin::create_friend).get(admin::list_friends),
        )
        .route("/v1/admin/friends/{id}/profile", post(admin::update_friend))
        .route("/v1/admin/customers", post(admin::create_customer))
        .route("/v1/admin/expire-due", post(admin::expire_due))
        .route("/v1/admin/friends/{id}/suspend", post(admin::suspend))
        .route("/v1/admin/friends/{id}/reactivate", post(admin::reactivate))
        .route(
            "/v1/admin/accounts/{id}/rotate-token",
            post(admin::rotate_token),
        )
        .route("/v1/admin/audit", get(admin::audit))
        .route("/metrics", get(admin::metrics))
        // Per route template (MatchedPath), so only matched routes are counted here.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            track_request,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            server_time_header,
        ))
        .layer(
            // Structured request logs: method, path, status, latency. No bodies or headers (tokens).
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(
                    tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::INFO),
                )
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                ),
        )
        .with_state(state)
}

/// Counts a request by route template, method and status, and observes its latency.
async fn track_request(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let m = &state.metrics;
    m.latency
        .get_or_create(&crate::metrics::RouteLabels {
            route: route.clone(),
            method: method.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&crate::metrics::RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// The metrics text: the state gauges read now, then every metric encoded.
pub(crate) async fn metrics_text(state: &Arc<AppState>) -> Result<String, AppError> {
    let (head, (depth, oldest)) = state
        .db
        .read(|tx| {
            Ok::<_, AppError>((
                crate::store::feed::head(tx)?,
                crate::store::push::depth(tx)?,
            ))
        })
        .await?;
    let m = &state.metrics;
    let now = state.clock.now();
    m.change_log_head.set(head);
    m.push_queue_depth.set(depth as i64);
    m.push_queue_oldest_age
        .set(oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0));
    m.long_polls_waiting
        .set(state.notifier.waiting_accounts() as i64);
    crate::metrics::mirror(&m.wakeups, state.notifier.woken());
    crate::metrics::mirror(&m.wake_checks, state.notifier.eligibility_checks());
    let push = state.pusher.stats().counts();
    crate::metrics::mirror(&m.push_sent, push.sent);
    crate::metrics::mirror(&m.push_failed, push.failed);
    crate::metrics::mirror(&m.push_dead_tokens, push.dead_tokens);
    crate::metrics::mirror(&m.push_retried, push.retried);
    m.db_queued_writes.set(state.db.writer_queue() as i64);
    if let Some(pg) = state.db.postgres() {
        let (in_use, waiting) = pg.pool_use();
        m.db_pool_in_use.set(in_use as i64);
        m.db_pool_waiting.set(waiting as i64);
    }
    m.draining.set(i64::from(*state.draining.borrow()));
    m.encode()
        .map_err(|_| AppError::new(ErrorCode::Internal, "metrics could not be encoded"))
}

async fn not_found() -> AppError {
    AppError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> AppError {
    AppError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

async fn server_time_header(
    State(state): State<Arc<AppState>>,
    mut response: Response,
) -> Response {
    let ms = state.clock.now().timestamp_millis().to_string();
    if let Ok(v) = HeaderValue::from_str(&ms) {
        response.headers_mut().insert(SERVER_TIME_HEADER, v);
    }
    response
}

/// Runs `work` in one write transaction, at most once per (account, Idempotency-Key): a retry with
/// the same key and request returns the stored response. Wakes the long-polls the write concerns
/// after it committed.
pub(crate) async fn idempotent<T, F>(
    state: &Arc<AppState>,
    account: AccountId,
    key: Option<String>,
    route: String,
    body: serde_json::Value,
    work: F,
) -> Result<T, AppError>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    F: FnMut(&Tx<'_>, DateTime<Utc>) -> Result<(T, Effects), AppError> + Send + 'static,
{
    idempotent_decided(state, account, key, route, body, work)
        .await
        .map(|(value, _)| value)
}

/// [`idempotent`], also telling whether the answer was decided now (`true`) or replayed from the
/// stored outcome (`false`): what the metrics count.
pub(crate) async fn idempotent_decided<T, F>(
    state: &Arc<AppState>,
    account: AccountId,
    key: Option<String>,
    route: String,
    body: serde_json::Value,
    mut work: F,
) -> Result<(T, bool), AppError>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    F: FnMut(&Tx<'_>, DateTime<Utc>) -> Result<(T, Effects), AppError> + Send + 'static,
{
    let clock = state.clock.clone();
    let shared = state.clone();
    let (value, effects, decided) = state
        .db
        .write(move |tx| {
            let fingerprint = key
                .as_ref()
                .map(|_| idempotency::fingerprint(&route, &body));
            // The clock is read under the writer lock so change times follow commit order.
            let now = clock.now();
            // The key is claimed first: a concurrent request with it (another instance, or a
            // lookup fencing it) waits for this transaction and then sees its outcome.
            if let (Some(k), Some(fp)) = (&key, &fingerprint)
                && let Some((_, stored)) = idempotency::claim(tx, account, k, &route, fp, now)?
            {
                shared.metrics.replays.inc();
                return Ok((serde_json::from_str(&stored)?, Effects::default(), false));
            }
            let (value, effects) = work(tx, now)?;
            queue_pushes(&shared, tx, &effects, now)?;
            if let Some(k) = &key {
                let body = serde_json::to_string(&value)?;
                idempotency::store(tx, account, k, &body)?;
            }
            Ok::<_, AppError>((value, effects, true))
        })
        .await?;
    committed(state, &effects);
    Ok((value, decided))
}

/// Queues the pushes a write's changes call for, inside its transaction (before the commit, so
/// the long-polls that count as awake are the ones this commit will wake).
pub(crate) fn queue_pushes(
    state: &AppState,
    tx: &Tx<'_>,
    effects: &Effects,
    now: DateTime<Utc>,
) -> crate::sql::Result<usize> {
    if effects.announce.is_empty() {
        return Ok(0);
    }
    let awake = |a| state.notifier.is_waiting(a);
    crate::push::plan::enqueue(tx, &effects.announce, &awake, now)
}

/// After a commit: wake the long-polls it concerns and the push dispatcher.
pub(crate) fn committed(state: &AppState, effects: &Effects) {
    state.notifier.wake(effects);
    if !effects.announce.is_empty() {
        state.pusher.kick();
    }
}

/// [`idempotent`] for the routes that change one job and answer with it: `work` returns the changed
/// job, the response is its details.
pub(crate) async fn idempotent_job<F>(
    state: &Arc<AppState>,
    account: AccountId,
    key: Option<String>,
    route: &str,
    body: serde_json::Value,
    mut work: F,
) -> Result<Json<JobResponse>, AppError>
where
    F: FnMut(&Tx<'_>, DateTime<Utc>) -> Result<(JobRow, Effects), AppError> + Send + 'static,
{
    idempotent(state, account, key, route.into(), body, move |tx, now| {
        let (job, effects) = work(tx, now)?;
        Ok((JobResponse { job: job.details() }, effects))
    })
    .await
    .map(Json)
}

/// Expires every due open job, in batches, waking whom each batch concerns.
pub(crate) async fn expire_due(state: &Arc<AppState>) -> Result<usize, AppError> {
    let mut total = 0;
    loop {
        let shared = state.clone();
        let (n, effects) = state
            .db
            .write(move |tx| {
                let now = shared.clock.now();
                let (n, effects) = crate::actions::expire_due(tx, now, 200)?;
                queue_pushes(&shared, tx, &effects, now)?;
                Ok::<_, AppError>((n, effects))
            })
            .await?;
        committed(state, &effects);
        state.metrics.expired.inc_by(n as u64);
        total += n;
        if n < 200 {
            return Ok(total);
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FriendCore reference backend",
        version = "1",
        description = "Booking, delta inbox sync with long-poll, the first-accept-wins race, and on-site \
            price negotiation with signed offline consent, completion, payment, ledger and rating. \
            Every error is a JSON `ApiError` with a stable `code`, and every operation lists every \
            status it can answer with; every response carries the server clock in the \
            `x-server-time` header (ms since the epoch). Enums list the values this server sends and \
            accepts; clients should still tolerate values they do not know (newer servers)."
    ),
    paths(
        meta::health,
        meta::ready,
        meta::catalog,
        meta::me,
        meta::openapi_json,
        sync::sync,
        customer::book,
        customer::list,
        customer::get_job,
        customer::cancel,
        friend::get_job,
        friend::accept,
        friend::accept_outcome,
        friend::decline,
        friend::release,
        friend::check_in,
        visit::set_appointment,
        visit::on_my_way,
        visit::decline_appointment,
        visit::cancel_preview,
        closing::complete,
        closing::escalate,
        closing::unsuccessful,
        ledger::friend_ledger,
        closing::rate,
        negotiation::register_key,
        push_tokens::register,
        push_tokens::remove,
        negotiation::consent,
        negotiation::reject,
        ledger::move_entry,
        admin::create_friend,
        admin::create_customer,
        admin::expire_due,
        admin::list_friends,
        admin::update_friend,
        admin::suspend,
        admin::reactivate,
        admin::rotate_token,
        admin::audit,
        admin::metrics,
    ),
    components(schemas(friend_protocol::ApiError, friend_protocol::ErrorCode)),
    modifiers(&Contract),
    tags(
        (name = "meta", description = "Health, catalog, identity, this document"),
        (name = "sync", description = "Delta sync of inbox and jobs, with long-poll"),
        (name = "customer", description = "Booking and the customer's jobs"),
        (name = "friend", description = "Offers, the accept race and held jobs"),
        (name = "negotiation", description = "Device keys and signed price consent, for both parties"),
        (name = "push", description = "Push tokens of the caller's devices (FCM, APNs)"),
        (name = "admin", description = "Accounts and operations (admin token)"),
    )
)]
struct ApiDoc;

/// The OpenAPI 3 document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
