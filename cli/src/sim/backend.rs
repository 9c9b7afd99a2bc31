//! The embedded backend of a simulation: the real reference backend on 127.0.0.1:0 over an SQLite
//! file in the run's directory (or several instances on one PostgreSQL database), with a manual clock the simulation moves along its virtual day,
//! expiry only when the simulation asks, the traffic counter and the long-poll observer in front of
//! every route, and its push dispatcher sending to the simulation's fake gateways.

use super::polls::{self, Polls};
use super::traffic::{self, Traffic};
use friend_backend::clock::{Clock, ManualClock};
use friend_backend::push::PushSettings;
use friend_backend::{Backend, Config};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The backend's clock as the simulation drives it: second `t` of the virtual day is
/// `origin + t` on the server, never earlier than the real time (the clock only moves forward).
/// Several instances each have their own clock, moved together.
pub struct VirtualClock {
    clocks: Vec<Arc<ManualClock>>,
    origin: chrono::DateTime<chrono::Utc>,
    /// Serialises check-then-advance, so two callers never advance twice.
    advancing: Mutex<()>,
}

impl VirtualClock {
    /// The server time of second 0.
    pub fn origin(&self) -> chrono::DateTime<chrono::Utc> {
        self.origin
    }

    /// Moves every instance's clock to second `t` of the virtual day (if not there already).
    pub fn set(&self, t: i64) {
        let target = self.origin + chrono::Duration::seconds(t);
        let Ok(_one_at_a_time) = self.advancing.lock() else {
            return;
        };
        for clock in &self.clocks {
            let behind = target - clock.now();
            if behind > chrono::Duration::zero() {
                clock.advance(behind);
            }
        }
    }

    /// The server's current time (the first instance's clock).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clocks
            .first()
            .map_or_else(chrono::Utc::now, |c| c.now())
    }
}

/// One serving instance.
struct Serving {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// The running embedded backend: one instance on SQLite, or several on one PostgreSQL database.
pub struct Embedded {
    /// The first instance's handle (accounts, expiry, metrics).
    pub backend: Backend,
    /// Every instance's handle, the first included.
    pub instances: Vec<Backend>,
    /// `http://127.0.0.1:PORT` of the first instance.
    pub url: String,
    /// Every instance's base URL.
    pub urls: Vec<String>,
    /// Every instance's listening address.
    pub addrs: Vec<std::net::SocketAddr>,
    /// The store: `sqlite` or `postgres`.
    pub store: &'static str,
    /// The virtual clock.
    pub clock: VirtualClock,
    /// Bytes and requests per account (all instances).
    pub traffic: Arc<Traffic>,
    /// Friends' long-polls around each booking (all instances).
    pub polls: Arc<Polls>,
    serving: Vec<Serving>,
}

impl Embedded {
    /// Starts `instances` backends on `db` (a SQLite file, or a PostgreSQL URL for several) with
    /// the catalog seeded, no dev accounts, and pushes delivered as `push` configures.
    pub async fn start(
        db: &Path,
        push: PushSettings,
        instances: usize,
    ) -> Result<Embedded, String> {
        let mut clocks = Vec::new();
        let mut backends = Vec::new();
        for _ in 0..instances.max(1) {
            let clock = Arc::new(ManualClock::new());
            let mut config = Config::new(db);
            config.seed_dev_data = false;
            config.clock = clock.clone();
            config.expiry_interval = None;
            config.push = push.clone();
            backends.push(Backend::open(config).map_err(|e| format!("backend: {e}"))?);
            clocks.push(clock);
        }
        let traffic = Arc::new(Traffic::default());
        let polls = Arc::new(Polls::new(backends.clone()));
        let mut urls = Vec::new();
        let mut addrs = Vec::new();
        let mut serving = Vec::new();
        for backend in &backends {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("bind: {e}"))?;
            let addr = listener.local_addr().map_err(|e| format!("addr: {e}"))?;
            // Served as the backend serves itself — with its push dispatcher — behind the traffic
            // counter. No expiry timer runs (`expiry_interval` is `None`: the simulation expires
            // at its own virtual instants), and feed pruning's first tick is an hour away.
            let app = traffic::layer(
                polls::layer(backend.router(), polls.clone()),
                traffic.clone(),
            );
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let serving_backend = backend.clone();
            let server = tokio::spawn(async move {
                let shutdown = async move {
                    let _ = rx.await;
                };
                if let Err(e) = serving_backend.serve_router(listener, app, shutdown).await {
                    tracing::warn!("embedded backend stopped: {e}");
                }
            });
            urls.push(format!("http://{addr}"));
            addrs.push(addr);
            serving.push(Serving {
                shutdown: Some(tx),
                server: Some(server),
            });
        }
        let origin = clocks.first().map_or_else(chrono::Utc::now, |c| c.now());
        let backend = backends
            .first()
            .cloned()
            .ok_or_else(|| "no instance".to_owned())?;
        Ok(Embedded {
            store: backend.store(),
            backend,
            instances: backends,
            url: urls.first().cloned().unwrap_or_default(),
            urls,
            addrs,
            clock: VirtualClock {
                clocks,
                origin,
                advancing: Mutex::new(()),
            },
            traffic,
            polls,
            serving,
        })
    }

    /// What every instance's push dispatcher did.
    pub fn push_counts(&self) -> friend_backend::push::PushCounts {
        let mut total = friend_backend::push::PushCounts::default();
        for b in &self.instances {
            total += b.push_counts();
        }
        total
    }

    /// Every instance's metrics, in the Prometheus text format.
    pub async fn metrics_texts(&self) -> Vec<String> {
        let mut texts = Vec::new();
        for b in &self.instances {
            if let Ok(t) = b.metrics_text().await {
                texts.push(t);
            }
        }
        texts
    }

    /// Stops serving and waits for open connections to finish.
    pub async fn stop(&mut self) {
        for s in &mut self.serving {
            if let Some(tx) = s.shutdown.take() {
                let _ = tx.send(());
            }
        }
        for s in &mut self.serving {
            if let Some(server) = s.server.take() {
                // Long-polls still open are cut after a moment.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server).await;
            }
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        for s in &mut self.serving {
            if let Some(tx) = s.shutdown.take() {
                let _ = tx.send(());
            }
        }
    }
}
