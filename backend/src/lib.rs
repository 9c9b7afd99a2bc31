//! FriendCore's reference backend: a thin axum service over SQLite that books jobs, broadcasts them
//! to eligible Friends through one change log (a row per account a job names, and one per area tile
//! for open jobs, filtered by the eligibility rule when read) with targeted long-poll wake-ups, and
//! decides the accept race in one database transaction.
//!
//! It is stateless over its database (the in-memory token cache and long-poll registry are
//! rebuilt on demand), starts with zero configuration on an embedded file, and publishes an OpenAPI
//! document of every route at [`OPENAPI_PATH`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = friend_backend::Backend::open(friend_backend::Config::new("friendcore.db"))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! backend.serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod actions;
mod area;
mod auth;
pub mod clock;
pub mod cluster;
mod database;
mod db;
mod error;
mod extract;
mod finish;
mod h2c;
mod http1;
pub mod metrics;
mod negotiate;
mod notify;
pub mod pg;
pub mod push;
mod routes;
pub mod seed;
pub mod settings;
pub mod sql;
mod store;
mod views;
mod visit;

pub use auth::hash_token;
pub use db::{DbError, WritePause};
pub use http1::{MAX_HEAD_BYTES, MAX_HEADER_FIELDS, MAX_URI_BYTES};
pub use routes::{OPENAPI_PATH, openapi};
pub use store::idempotency::IDEMPOTENCY_RETENTION;
pub use store::jobs::by_id_sql as job_by_id_sql;

use clock::{Clock, SystemClock};
use friend_protocol::{AccountId, CreatedAccount, NewCustomer, NewFriend};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Resolves at the first SIGTERM (how orchestrators stop an instance) or Ctrl-C: the shutdown
/// future to hand [`Backend::serve`], which then drains.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: shutting down"),
                }
                return;
            }
            Err(e) => tracing::warn!("SIGTERM cannot be handled ({e}); Ctrl-C still stops"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The default bound on a shutdown's wait for the requests in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The default [`Config::head_timeout`] (hyper's own default for reading a head).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How the backend runs.
#[derive(Clone)]
pub struct Config {
    /// SQLite database file (created when missing).
    pub db_path: PathBuf,
    /// The admin bearer token for `/v1/admin/*`; a random one is generated when `None`.
    pub admin_token: Option<String>,
    /// Seed the catalog and the development accounts into a new, empty database.
    pub seed_dev_data: bool,
    /// The server clock.
    pub clock: Arc<dyn Clock>,
    /// How often open jobs past their expiry are expired (none: only on demand).
    pub expiry_interval: Option<Duration>,
    /// How long the change feed is kept; older cursors get "cursor too old".
    pub feed_retention: chrono::Duration,
    /// Push gateways (none by default: pushes are counted, not sent).
    pub push: push::PushSettings,
    /// How long a shutdown waits for requests in flight before it closes what is left.
    pub drain_timeout: Duration,
    /// How long a connection may take to send a request's head (or, between requests, to start
    /// the next one) before it is closed: a client that opens connections and never finishes a
    /// request does not hold them (and their file descriptors) for ever.
    pub head_timeout: Duration,
}

impl Config {
    /// Defaults: system clock, dev seed on, expiry every 5 s, a 7-day feed.
    pub fn new(db_path: impl Into<PathBuf>) -> Config {
        Config {
            db_path: db_path.into(),
            admin_token: None,
            seed_dev_data: true,
            clock: Arc::new(SystemClock),
            expiry_interval: Some(Duration::from_secs(5)),
            feed_retention: chrono::Duration::days(7),
            push: push::PushSettings::default(),
            drain_timeout: DRAIN_TIMEOUT,
            head_timeout: HEAD_TIMEOUT,
        }
    }
}

/// Errors starting the backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// Seeding or another start-up step failed.
    #[error("start-up: {0}")]
    Startup(String),
    /// The listener failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared state of all requests.
pub(crate) struct AppState {
    pub db: database::Database,
    pub clock: Arc<dyn Clock>,
    pub notifier: notify::Notifier,
    pub admin_token_hash: auth::TokenHash,
    pub pusher: Arc<push::Dispatcher>,
    pub auth_cache: auth::AuthCache,
    /// Set when the instance starts draining: readiness answers 503 and long-polls stop waiting.
    pub draining: tokio::sync::watch::Sender<bool>,
    /// What `GET /metrics` exports.
    pub metrics: metrics::Metrics,
    /// On PostgreSQL: this instance among the others on the database (leases, wake-ups).
    pub cluster: Option<Arc<cluster::Cluster>>,
}

/// A running backend's handle: serve it, and drive it from tests (expiry, pruning, counters).
#[derive(Clone)]
pub struct Backend {
    state: Arc<AppState>,
    config: Config,
    admin_token: String,
    seeded: Option<Vec<seed::DevAccount>>,
}

impl Backend {
    /// Opens the database, migrates it and, for a new database, seeds the catalog and dev accounts.
    pub fn open(config: Config) -> Result<Backend, BackendError> {
        let db = database::Database::open(&config.db_path)?;
        let cluster = db.postgres().map(|pg| Arc::new(cluster::Cluster::new(pg)));
        let pusher = push::Dispatcher::new(
            db.clone(),
            config.clock.clone(),
            &config.push,
            cluster.as_ref().map(|c| c.push.clone()),
        )
        .map_err(|e| BackendError::Startup(e.to_string()))?;
        let admin_token = match &config.admin_token {
            Some(t) => t.clone(),
            None => auth::new_token().map_err(|e| BackendError::Startup(e.message))?,
        };
        let metrics = metrics::Metrics::new(&db);
        let state = Arc::new(AppState {
            db,
            clock: config.clock.clone(),
            notifier: notify::Notifier::default(),
            admin_token_hash: auth::hash_token(&admin_token),
            pusher: Arc::new(pusher),
            auth_cache: auth::AuthCache::new(auth::AUTH_CACHE_TTL),
            draining: tokio::sync::watch::Sender::new(false),
            metrics,
            cluster,
        });
        let seeded = seed::ensure(&state, config.seed_dev_data)
            .map_err(|e| BackendError::Startup(e.message))?;
        // The first feed pruning, here rather than on a timer, so no start-up write lands among
        // the first requests (tests hold the writer to order requests).
        let before = state.clock.now() - config.feed_retention;
        state
            .db
            .write_now(move |tx| store::feed::prune_before(tx, before).map_err(DbError::from))?;
        Ok(Backend {
            state,
            config,
            admin_token,
            seeded,
        })
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The dev accounts created when this start seeded a new database (their tokens are shown once).
    pub fn seeded_accounts(&self) -> Option<&[seed::DevAccount]> {
        self.seeded.as_deref()
    }

    /// The start-up lines about credentials (the admin token when it was generated, the dev
    /// accounts of a new database) that `friend-backend` and `friendctl serve` print, one per line.
    pub fn credentials_text(&self) -> String {
        // A token the operator gave is a secret they already have: never printed.
        let mut out = match self.config.admin_token {
            Some(_) => String::new(),
            None => format!("  admin token:      {}\n", self.admin_token()),
        };
        match self.seeded_accounts() {
            Some(accounts) => {
                out.push_str("  development accounts (new database):\n");
                for a in accounts {
                    out.push_str(&format!(
                        "    {:<9} {:<14} token {}\n",
                        format!("{:?}", a.role).to_lowercase(),
                        a.name,
                        a.token
                    ));
                }
            }
            None if self.config.seed_dev_data => out.push_str(
                "  existing database: earlier dev tokens (dev-friend-anna, dev-customer-heidi, …) still work\n",
            ),
            None => {}
        }
        out
    }

    /// The HTTP router (for embedding; [`Backend::serve`] uses it).
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// Starts draining this instance (SIGTERM, Ctrl-C, or an operator): `GET /v1/ready` answers
    /// 503, every waiting long-poll is answered at once with what it has (the device reconnects,
    /// possibly to another instance, from the same cursor: nothing is lost), and new long-polls do
    /// not wait. Requests go on being served until the shutdown itself.
    pub fn start_drain(&self) {
        if !self.state.draining.send_replace(true) {
            tracing::info!("draining: readiness off, waiting long-polls answered");
        }
    }

    /// The metrics in the Prometheus text format, as `GET /metrics` serves them.
    pub async fn metrics_text(&self) -> Result<String, error::AppError> {
        routes::metrics_text(&self.state).await
    }

    /// Whether the database holds no account yet (a simulation wants a database of its own).
    pub async fn is_empty(&self) -> Result<bool, DbError> {
        self.state
            .db
            .read(|tx| store::accounts::is_empty(tx).map_err(DbError::from))
            .await
    }

    /// The store it runs on: `sqlite` or `postgres`.
    pub fn store(&self) -> &'static str {
        self.state.db.kind()
    }

    /// Whether this instance is draining.
    pub fn is_draining(&self) -> bool {
        *self.state.draining.borrow()
    }

    /// Serves HTTP on `listener` until `shutdown` resolves, running the expiry and feed-pruning
    /// timers alongside. Then it drains ([`Backend::start_drain`]), stops accepting, closes idle
    /// connections and lets requests in flight finish — for at most `Config::drain_timeout`.
    /// Every answer is JSON, also to requests whose head is malformed or too large (see
    /// [`MAX_URI_BYTES`], [`MAX_HEAD_BYTES`]).
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BackendError> {
        self.serve_router(listener, self.router(), shutdown).await
    }

    /// [`Backend::serve`] with `app` in place of [`Backend::router`], e.g. the router wrapped in
    /// extra layers.
    pub async fn serve_router(
        &self,
        listener: tokio::net::TcpListener,
        app: axum::Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BackendError> {
        let timers = tokio::spawn(self.clone().run_timers());
        let dispatcher = tokio::spawn(self.state.pusher.clone().run());
        let follower = self
            .state
            .db
            .postgres()
            .map(|pg| tokio::spawn(cluster::follow_changes(self.state.clone(), pg.clone())));
        // Shutdown drains first: long-polls answered, readiness off, leases handed over; then
        // connections close gracefully, requests in flight finish, within the drain bound.
        let this = self.clone();
        let shutdown = async move {
            shutdown.await;
            this.start_drain();
            if let Some(c) = &this.state.cluster {
                c.release().await;
            }
        };
        let result = http1::serve(
            listener,
            app,
            self.state.clock.clone(),
            shutdown,
            http1::Limits {
                drain: self.config.drain_timeout,
                head: self.config.head_timeout,
            },
        )
        .await;
        timers.abort();
        dispatcher.abort();
        if let Some(f) = follower {
            f.abort();
        }
        result.map_err(BackendError::Io)
    }

    async fn run_timers(self) {
        let mut expiry = self.config.expiry_interval.map(tokio::time::interval);
        let hour = Duration::from_secs(3600);
        let mut prune = tokio::time::interval_at(tokio::time::Instant::now() + hour, hour);
        loop {
            tokio::select! {
                _ = async { match expiry.as_mut() { Some(i) => { i.tick().await; } None => std::future::pending().await } } => {
                    // Several instances on one database: the lease holder sweeps for all.
                    if let Some(c) = &self.state.cluster && !c.expiry.held().await {
                        continue;
                    }
                    if let Err(e) = self.expire_due().await {
                        tracing::warn!(code = e.code.as_str(), "expiry sweep failed: {}", e.message);
                    }
                }
                _ = prune.tick() => self.prune_old().await,
            }
        }
    }

    /// Prunes the feed and the idempotency keys past their retention; a failure is logged and
    /// retried at the next tick.
    async fn prune_old(&self) {
        let now = self.state.clock.now();
        if let Err(e) = self.prune_feed(now - self.config.feed_retention).await {
            tracing::warn!("feed pruning failed: {e}");
        }
        let before = now - store::idempotency::IDEMPOTENCY_RETENTION;
        if let Err(e) = self.prune_idempotency(before).await {
            tracing::warn!("idempotency pruning failed: {e}");
        }
    }

    /// Forgets idempotency keys (stored answers, fences) recorded before `before`; how many.
    pub async fn prune_idempotency(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, DbError> {
        self.state
            .db
            .write(move |tx| store::idempotency::prune_before(tx, before).map_err(DbError::from))
            .await
    }

    /// Expires every open job whose time is up (by the server clock); returns how many.
    pub async fn expire_due(&self) -> Result<usize, error::AppError> {
        routes::expire_due(&self.state).await
    }

    /// Forgets changes older than `before`; cursors from before then get "cursor too old".
    pub async fn prune_feed(&self, before: chrono::DateTime<chrono::Utc>) -> Result<i64, DbError> {
        self.state
            .db
            .write(move |tx| store::feed::prune_before(tx, before).map_err(DbError::from))
            .await
    }

    /// How often a waiting long-poll of `account` was woken (targeted wake-ups are testable).
    pub fn wake_count(&self, account: AccountId) -> u64 {
        self.state.notifier.wake_count(account)
    }

    /// Holds every write (requests included) in arrival order until the guard is dropped; for
    /// tests that must interleave requests deterministically. Reads go on.
    pub async fn pause_writes(&self) -> Result<WritePause, DbError> {
        self.state.db.pause_writes().await
    }

    /// How many writes wait (e.g. behind [`Backend::pause_writes`]): for SQLite's writer, or
    /// PostgreSQL sessions of this database waiting for a lock.
    pub async fn queued_writes(&self) -> Result<usize, DbError> {
        self.state.db.queued_writes().await
    }

    /// What the push dispatcher did since start.
    pub fn push_counts(&self) -> push::PushCounts {
        self.state.pusher.stats().counts()
    }

    /// Makes the push dispatcher look at its queue now (commits do this themselves; for tests that
    /// moved the clock past a retry time).
    pub fn kick_push(&self) {
        self.state.pusher.kick();
    }

    /// The push platforms with a configured gateway (the others' pushes are counted, not sent).
    pub fn push_gateways(&self) -> Vec<&'static str> {
        self.state.pusher.configured()
    }

    /// How many pushes wait in the queue, and since when the oldest.
    pub async fn push_queue(
        &self,
    ) -> Result<(u64, Option<chrono::DateTime<chrono::Utc>>), DbError> {
        self.state
            .db
            .read(|tx| store::push::depth(tx).map_err(DbError::from))
            .await
    }

    /// The platforms and device counts registered for `account` (tests, the CLI).
    pub async fn push_devices(
        &self,
        account: AccountId,
    ) -> Result<Vec<(friend_protocol::PushPlatform, String)>, DbError> {
        self.state
            .db
            .read(move |tx| {
                let devices = store::push::devices_of(tx, account).map_err(DbError::from)?;
                Ok(devices
                    .into_iter()
                    .map(|d| (d.platform, push::token_tag(&d.token)))
                    .collect())
            })
            .await
    }

    /// Eligibility checks the long-poll wake-ups have made: what open-job changes cost (the
    /// waiters are indexed by tile and category, so this grows with the Friends near a job, not
    /// with every waiting long-poll).
    pub fn wake_checks(&self) -> u64 {
        self.state.notifier.eligibility_checks()
    }

    /// How many accounts currently have a long-poll waiting.
    pub fn waiting_accounts(&self) -> usize {
        self.state.notifier.waiting_accounts()
    }

    /// Whether `account` has a long-poll waiting now.
    pub fn is_waiting(&self, account: AccountId) -> bool {
        self.state.notifier.is_waiting(account)
    }

    /// Creates a Friend account directly (seeding, tests, the CLI).
    pub async fn create_friend(&self, req: NewFriend) -> Result<CreatedAccount, error::AppError> {
        routes::admin::create_friend_in(&self.state, req).await
    }

    /// Creates a customer account directly.
    pub async fn create_customer(
        &self,
        req: NewCustomer,
    ) -> Result<CreatedAccount, error::AppError> {
        routes::admin::create_customer_in(&self.state, req).await
    }
}

pub use error::AppError;
