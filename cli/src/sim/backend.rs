//! The embedded backend of a simulation: the real reference backend on 127.0.0.1:0 over an SQLite
//! file in the run's directory, with a manual clock the simulation moves along its virtual day,
//! expiry only when the simulation asks, and the traffic counter in front of every route.

use super::traffic::{self, Traffic};
use friend_backend::clock::{Clock, ManualClock};
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
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Embedded {
    /// Starts the backend on `db` with the catalog seeded and no dev accounts.
    pub async fn start(db: &Path) -> Result<Embedded, String> {
        let clock = Arc::new(ManualClock::new());
        let mut config = Config::new(db);
        config.seed_dev_data = false;
        config.clock = clock.clone();
        config.expiry_interval = None;
        let backend = Backend::open(config).map_err(|e| format!("backend: {e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("addr: {e}"))?;
        let traffic = Arc::new(Traffic::default());
        // Backend::serve would add its own expiry and pruning timers; the simulation drives
        // expiry itself, so it serves the router directly, behind the traffic counter.
        let app = traffic::layer(backend.router(), traffic.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
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
