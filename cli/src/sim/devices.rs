//! The simulated phones: each Friend and customer has its own SQLite file and its own session of
//! the real core; each Friend talks through its own fault-injecting proxy so it can lose its
//! connection. Sessions open lazily and idle ones are closed when too many are open, so a run with
//! thousands of devices keeps memory and file handles bounded (a closed session keeps its outbox
//! on disk, exactly like an app the OS killed).

use super::events::VTime;
use super::ids::JobIx;
use friend_core::{
    CoreError, CoreResult, CustomerSession, FriendSession, InboxListener, SessionConfig,
    StaticSecrets, Subscription,
};
use friend_faultproxy::FaultProxy;
use friend_protocol::GeoPoint;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// Why a Friend is offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offline {
    /// A tunnel: back at second `until`.
    Spell {
        /// End of the spell.
        until: VTime,
    },
    /// No signal on site while working on a job.
    Basement {
        /// The job.
        job: JobIx,
    },
}

/// A Friend's changing situation.
#[derive(Debug, Clone)]
pub struct FriendState {
    /// Where the Friend is (home, or the last job's place).
    pub position: GeoPoint,
    /// Offline, and why.
    pub offline: Option<Offline>,
    /// The job the Friend is travelling to or working on.
    pub current: Option<JobIx>,
    /// Slot jobs held for later: (job, start, end) in virtual seconds.
    pub slots: Vec<(JobIx, VTime, VTime)>,
}

/// Records when a long-polling Friend's inbox changed (for push-to-cache latency).
struct InboxWatch(watch::Sender<Option<Instant>>);

impl InboxListener for InboxWatch {
    fn on_inbox_changed(&self) {
        self.0.send_replace(Some(Instant::now()));
    }
}

/// One simulated Friend phone.
pub struct FriendDevice {
    /// Bearer token.
    token: String,
    /// Data key.
    key: [u8; 32],
    /// The device database.
    db: PathBuf,
    /// The Friend's own proxy to the backend.
    pub proxy: FaultProxy,
    /// Long-polls all day.
    pub foreground: bool,
    /// The foreground loop is running now.
    pub foreground_running: AtomicBool,
    session: tokio::sync::Mutex<Option<Arc<FriendSession>>>,
    subscription: Mutex<Option<Subscription>>,
    inbox_changed: watch::Sender<Option<Instant>>,
    /// The changing situation.
    pub state: Mutex<FriendState>,
    /// Events dispatched and not finished (a session is closed only at 0).
    pub in_flight: AtomicU32,
    /// Dispatch tick of the last use (for closing the least recently used).
    pub last_used: AtomicU64,
    open: AtomicBool,
}

impl FriendDevice {
    /// A device for an account.
    pub fn new(
        token: String,
        key: [u8; 32],
        db: PathBuf,
        proxy: FaultProxy,
        foreground: bool,
        home: GeoPoint,
    ) -> FriendDevice {
        FriendDevice {
            token,
            key,
            db,
            proxy,
            foreground,
            foreground_running: AtomicBool::new(false),
            session: tokio::sync::Mutex::new(None),
            subscription: Mutex::new(None),
            inbox_changed: watch::channel(None).0,
            state: Mutex::new(FriendState {
                position: home,
                offline: None,
                current: None,
                slots: Vec::new(),
            }),
            in_flight: AtomicU32::new(0),
            last_used: AtomicU64::new(0),
            open: AtomicBool::new(false),
        }
    }

    /// The session, opened on first use.
    pub async fn session(&self) -> CoreResult<Arc<FriendSession>> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let secrets = Arc::new(StaticSecrets::new(self.token.clone(), self.key));
        let session = Arc::new(
            FriendSession::open(SessionConfig::new(&self.db, self.proxy.url()), secrets).await?,
        );
        if self.foreground {
            let sub = session.subscribe_inbox(Arc::new(InboxWatch(self.inbox_changed.clone())));
            if let Ok(mut s) = self.subscription.lock() {
                *s = Some(sub);
            }
        }
        *slot = Some(session.clone());
        self.open.store(true, Ordering::Relaxed);
        Ok(session)
    }

    /// Whether a session is open.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Closes the session (its outbox stays on disk).
    pub async fn close(&self) {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.take() {
            s.shutdown();
            close_in_background(s);
        }
        if let Ok(mut sub) = self.subscription.lock() {
            sub.take();
        }
        self.foreground_running.store(false, Ordering::Relaxed);
        self.open.store(false, Ordering::Relaxed);
    }

    /// Starts the long-poll loop (foreground Friends).
    pub async fn start_foreground(&self) -> CoreResult<()> {
        let s = self.session().await?;
        s.start_foreground_sync();
        self.foreground_running.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Stops the long-poll loop.
    pub async fn stop_foreground(&self) {
        if let Some(s) = self.session.lock().await.as_ref() {
            s.stop_foreground_sync();
        }
        self.foreground_running.store(false, Ordering::Relaxed);
    }

    /// Deliver and pull now. A long-polling session is paused for it (its long-poll holds the
    /// sync lock for up to 25 s otherwise) and resumed after.
    pub async fn sync(&self) -> CoreResult<()> {
        let s = self.session().await?;
        let running = self.foreground_running.load(Ordering::Relaxed);
        if running {
            s.stop_foreground_sync();
        }
        let result = s.sync_once().await.map(|_| ());
        if running {
            s.start_foreground_sync();
        }
        result
    }

    /// The app hands a push's data (`payload`, JSON) to the core: one sync round. A long-polling
    /// session is paused for it, as for [`FriendDevice::sync`].
    pub async fn on_push(&self, payload: &str) -> CoreResult<Arc<FriendSession>> {
        let s = self.session().await?;
        let running = self.foreground_running.load(Ordering::Relaxed);
        if running {
            s.stop_foreground_sync();
        }
        let result = s.on_push(payload).await.map(|_| ());
        if running {
            s.start_foreground_sync();
        }
        result.map(|()| s)
    }

    /// A receiver of inbox-change instants, marked as seen now.
    pub fn inbox_watch(&self) -> watch::Receiver<Option<Instant>> {
        self.inbox_changed.subscribe()
    }

    /// A copy of the situation.
    pub fn state(&self) -> Option<FriendState> {
        self.state.lock().ok().map(|s| s.clone())
    }

    /// Changes the situation.
    pub fn update<T>(&self, f: impl FnOnce(&mut FriendState) -> T) -> Option<T> {
        self.state.lock().ok().map(|mut s| f(&mut s))
    }
}

/// One simulated customer phone (talking to the backend directly: customers stay online).
pub struct CustomerDevice {
    token: String,
    key: [u8; 32],
    db: PathBuf,
    url: String,
    session: tokio::sync::Mutex<Option<Arc<CustomerSession>>>,
    /// Events dispatched and not finished.
    pub in_flight: AtomicU32,
    /// Dispatch tick of the last use.
    pub last_used: AtomicU64,
    open: AtomicBool,
}

impl CustomerDevice {
    /// A device for an account.
    pub fn new(token: String, key: [u8; 32], db: PathBuf, url: String) -> CustomerDevice {
        CustomerDevice {
            token,
            key,
            db,
            url,
            session: tokio::sync::Mutex::new(None),
            in_flight: AtomicU32::new(0),
            last_used: AtomicU64::new(0),
            open: AtomicBool::new(false),
        }
    }

    /// The session, opened on first use.
    pub async fn session(&self) -> CoreResult<Arc<CustomerSession>> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let secrets = Arc::new(StaticSecrets::new(self.token.clone(), self.key));
        let session = Arc::new(
            CustomerSession::open(SessionConfig::new(&self.db, &self.url), secrets).await?,
        );
        *slot = Some(session.clone());
        self.open.store(true, Ordering::Relaxed);
        Ok(session)
    }

    /// Whether a session is open.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Closes the session.
    pub async fn close(&self) {
        if let Some(s) = self.session.lock().await.take() {
            s.shutdown();
            close_in_background(s);
        }
        self.open.store(false, Ordering::Relaxed);
    }

    /// Deliver and pull now.
    pub async fn sync(&self) -> CoreResult<()> {
        self.session().await?.sync_once().await.map(|_| ())
    }

    /// The app hands a push's data (`payload`, JSON) to the core: one sync round.
    pub async fn on_push(&self, payload: &str) -> CoreResult<()> {
        self.session().await?.on_push(payload).await.map(|_| ())
    }
}

/// Drops a session on the blocking pool: closing its SQLite connection checkpoints the WAL and
/// syncs the file, which must not stall the dispatcher (it was most of a large run's time there).
fn close_in_background<T: Send + Sync + 'static>(session: Arc<T>) {
    drop(tokio::task::spawn_blocking(move || drop(session)));
}

/// A short code for an error in counters.
pub fn code(e: &CoreError) -> String {
    match e {
        CoreError::Refused { code, .. } => format!("refused/{}", code.as_str()),
        CoreError::InvalidConsent { code, .. }
        | CoreError::InvalidQuote { code, .. }
        | CoreError::Negotiation { code, .. } => format!("{}/{code}", e.code()),
        other => other.code().to_owned(),
    }
}
