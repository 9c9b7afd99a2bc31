//! The embedded backend of a simulation: the real reference backend on 127.0.0.1:0 over an SQLite
//! file in the run's directory, with a manual clock the simulation moves along its virtual day,
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
pub struct VirtualClock {
    clock: Arc<ManualClock>,
    origin: chrono::DateTime<chrono::Utc>,
    /// Serialises check-then-advance, so two callers never advance twice.
    advancing: Mutex<()>,
}

impl VirtualClock {
    /// The server time of second 0.
    pub fn origin(&self) -> chrono::DateTime<chrono::Utc> {
        self.origin
    }

    /// Moves the server clock to second `t` of the virtual day (if it is not there already).
    pub fn set(&self, t: i64) {
        let target = self.origin + chrono::Duration::seconds(t);
        let Ok(_one_at_a_time) = self.advancing.lock() else {
            return;
        };
        let behind = target - self.clock.now();
        if behind > chrono::Duration::zero() {
            self.clock.advance(behind);
        }
    }

    /// The server's current time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// The running embedded backend.
pub struct Embedded {
    /// The backend handle (accounts, expiry).
    pub backend: Backend,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The listening address.
    pub addr: std::net::SocketAddr,
    /// The virtual clock.
    pub clock: VirtualClock,
    /// Bytes and requests per account.
    pub traffic: Arc<Traffic>,
    /// Friends' long-polls around each booking.
    pub polls: Arc<Polls>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Embedded {
    /// Starts the backend on `db` with the catalog seeded, no dev accounts, and pushes delivered
    /// as `push` configures.
    pub async fn start(db: &Path, push: PushSettings) -> Result<Embedded, String> {
        let clock = Arc::new(ManualClock::new());
        let mut config = Config::new(db);
        config.seed_dev_data = false;
        config.clock = clock.clone();
        config.expiry_interval = None;
        config.push = push;
        let backend = Backend::open(config).map_err(|e| format!("backend: {e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("addr: {e}"))?;
        let traffic = Arc::new(Traffic::default());
        // Served as the backend serves itself — with its push dispatcher — behind the traffic
        // counter. No expiry timer runs (`expiry_interval` is `None`: the simulation expires at
        // its own virtual instants), and feed pruning's first tick is an hour of wall time away.
        let polls = Arc::new(Polls::new(backend.clone()));
        let app = traffic::layer(
            polls::layer(backend.router(), polls.clone()),
            traffic.clone(),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = backend.clone();
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(e) = serving.serve_router(listener, app, shutdown).await {
                tracing::warn!("embedded backend stopped: {e}");
            }
        });
        let origin = clock.now();
        Ok(Embedded {
            backend,
            url: format!("http://{addr}"),
            addr,
            clock: VirtualClock {
                clock,
                origin,
                advancing: Mutex::new(()),
            },
            traffic,
            polls,
            shutdown: Some(tx),
            server: Some(server),
        })
    }

    /// Stops serving and waits for open connections to finish.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            // Long-polls still open are cut after a moment.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server).await;
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
