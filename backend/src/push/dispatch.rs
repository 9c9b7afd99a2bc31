//! The dispatcher: one task that drains the push queue (SPEC §5, issue 13.4).
//!
//! It reads due pushes, sends up to [`PushSettings::concurrency`] at once through the gateway of
//! each device's platform, and records each outcome in the queue: delivered → removed (unless a
//! newer push with the same collapse key replaced it meanwhile — then that one is sent next);
//! dead token → the device is forgotten with its queued pushes; `Retry-After` (429, 503) → the
//! push waits that long and so does every push of that gateway; our credential refused → the same
//! with [`AUTH_BACKOFF`], and an error log; a transport failure → exponential back-off; anything
//! else → dropped and counted as failed. A push whose expiry passed is dropped unsent.
//!
//! Delivery is at least once: a push leaves the queue only after its gateway accepted it, so a
//! crash between commit and delivery loses nothing; a crash after the gateway accepted it and
//! before the removal committed sends it again, and the collapse key makes the device show it once.
//!
//! With no gateway configured for a platform, its pushes are logged at debug and counted as
//! unsent ([`PushStats::unconfigured`]) — the zero-configuration backend still runs.

use super::apns::{ApnsClient, ApnsConfig};
use super::fcm::{FcmClient, ServiceAccount};
use super::{Outcome, PushError, token_tag};
use crate::clock::Clock;
use crate::database::Database;
use crate::db::DbError;
use crate::pg::lease::Keeper;
use crate::store::push::{self as queue, Queued};
use chrono::{DateTime, Utc};
use friend_protocol::PushPlatform;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// How long a gateway that refused our credential is left alone.
pub const AUTH_BACKOFF: Duration = Duration::from_secs(60);
/// Longest wait between two looks at the queue (a safety net; commits wake the dispatcher).
const IDLE_LOOK: Duration = Duration::from_secs(30);
/// Longest back-off after transport failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Most pushes read from the queue per look.
const BATCH: usize = 256;

/// Production gateways.
pub const FCM_URL: &str = "https://fcm.googleapis.com";
/// APNs production.
pub const APNS_URL: &str = "https://api.push.apple.com";
/// APNs sandbox (development builds).
pub const APNS_SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

/// FCM HTTP v1 settings.
#[derive(Debug, Clone)]
pub struct FcmSettings {
    /// The service-account JSON file.
    pub credentials: PathBuf,
    /// The gateway base URL (tests, staging); production when `None`.
    pub url: Option<String>,
}

/// APNs token-auth settings.
#[derive(Debug, Clone)]
pub struct ApnsSettings {
    /// The `.p8` signing key.
    pub key: PathBuf,
    /// Its key id.
    pub key_id: String,
    /// The team id.
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// The gateway base URL (tests, staging) for both environments; Apple's when `None`.
    pub url: Option<String>,
    /// Send every APNs token to the sandbox (a staging backend whose builds are all development
    /// builds). Otherwise a token goes to the environment it was registered for.
    pub sandbox: bool,
}

/// Push delivery settings. The default sends nothing and counts what it would send.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// FCM, when configured.
    pub fcm: Option<FcmSettings>,
    /// APNs, when configured.
    pub apns: Option<ApnsSettings>,
    /// Most pushes in flight at once.
    pub concurrency: usize,
}

impl Default for PushSettings {
    fn default() -> PushSettings {
        PushSettings {
            fcm: None,
            apns: None,
            concurrency: 64,
        }
    }
}

/// What the dispatcher did since the backend started.
#[derive(Debug, Default)]
pub struct PushStats {
    /// Accepted by a gateway.
    pub sent: AtomicU64,
    /// Refused for good (or unsendable) and dropped.
    pub failed: AtomicU64,
    /// Device tokens a gateway called dead, forgotten.
    pub dead_tokens: AtomicU64,
    /// Attempts postponed (Retry-After, transport failure, refused credential).
    pub retried: AtomicU64,
    /// Dropped unsent because their expiry passed.
    pub expired: AtomicU64,
    /// Dropped because no gateway is configured for the device's platform.
    pub unconfigured: AtomicU64,
}

/// A copy of [`PushStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushCounts {
    /// Accepted by a gateway.
    pub sent: u64,
    /// Refused for good and dropped.
    pub failed: u64,
    /// Dead device tokens forgotten.
    pub dead_tokens: u64,
    /// Attempts postponed.
    pub retried: u64,
    /// Dropped unsent, expired.
    pub expired: u64,
    /// Dropped, no gateway configured.
    pub unconfigured: u64,
}

/// Adds another instance's counts.
impl std::ops::AddAssign for PushCounts {
    fn add_assign(&mut self, o: PushCounts) {
        self.sent += o.sent;
        self.failed += o.failed;
        self.dead_tokens += o.dead_tokens;
        self.retried += o.retried;
        self.expired += o.expired;
        self.unconfigured += o.unconfigured;
    }
}

impl PushStats {
    /// A copy of the counters.
    pub fn counts(&self) -> PushCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PushCounts {
            sent: get(&self.sent),
            failed: get(&self.failed),
            dead_tokens: get(&self.dead_tokens),
            retried: get(&self.retried),
            expired: get(&self.expired),
            unconfigured: get(&self.unconfigured),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The configured gateway clients.
struct Gateways {
    fcm: Option<FcmClient>,
    apns: Option<ApnsClient>,
    apns_sandbox: Option<ApnsClient>,
}

impl Gateways {
    fn build(settings: &PushSettings, clock: &Arc<dyn Clock>) -> Result<Gateways, PushError> {
        let fcm = match &settings.fcm {
            Some(f) => Some(FcmClient::new(
                ServiceAccount::from_file(&f.credentials)?,
                f.url.as_deref().unwrap_or(FCM_URL),
                clock.clone(),
            )?),
            None => None,
        };
        let (apns, apns_sandbox) = match &settings.apns {
            Some(a) => {
                let key_pem = std::fs::read_to_string(&a.key).map_err(|e| {
                    PushError::Credentials(format!("APNs key {}: {e}", a.key.display()))
                })?;
                let client = |base: &str| {
                    ApnsClient::new(
                        ApnsConfig {
                            key_pem: key_pem.clone(),
                            key_id: a.key_id.clone(),
                            team_id: a.team_id.clone(),
                            topic: a.topic.clone(),
                            base_url: a.url.clone().unwrap_or_else(|| base.to_string()),
                        },
                        clock.clone(),
                    )
                };
                let sandbox = client(APNS_SANDBOX_URL)?;
                let production = if a.sandbox {
                    client(APNS_SANDBOX_URL)?
                } else {
                    client(APNS_URL)?
                };
                (Some(production), Some(sandbox))
            }
            None => (None, None),
        };
        Ok(Gateways {
            fcm,
            apns,
            apns_sandbox,
        })
    }

    async fn send(&self, push: &Queued) -> Option<Result<Outcome, PushError>> {
        match push.platform {
            PushPlatform::Fcm => Some(self.fcm.as_ref()?.send(&push.token, &push.message).await),
            PushPlatform::Apns => Some(self.apns.as_ref()?.send(&push.token, &push.message).await),
            PushPlatform::ApnsSandbox => Some(
                self.apns_sandbox
                    .as_ref()?
                    .send(&push.token, &push.message)
                    .await,
            ),
            PushPlatform::Unknown => None,
        }
    }
}

/// The dispatcher's shared state; [`Dispatcher::run`] is its task.
pub struct Dispatcher {
    db: Database,
    /// On PostgreSQL: sends only while this lease is held.
    lease: Option<Arc<Keeper>>,
    clock: Arc<dyn Clock>,
    gateways: Gateways,
    permits: Arc<Semaphore>,
    kick: Notify,
    stats: PushStats,
    /// Pushes being sent (not read again until their outcome is recorded).
    busy: Mutex<HashSet<i64>>,
    /// Gateways that asked us to wait, until when.
    holds: Mutex<HashMap<PushPlatform, DateTime<Utc>>>,
}

const PLATFORMS: [PushPlatform; 3] = [
    PushPlatform::Fcm,
    PushPlatform::Apns,
    PushPlatform::ApnsSandbox,
];

impl Dispatcher {
    /// Builds the gateway clients (reading the credential files); fails on unusable credentials,
    /// so a misconfigured backend does not start.
    /// `lease`: on PostgreSQL, the lease under which one instance sends for all.
    pub fn new(
        db: Database,
        clock: Arc<dyn Clock>,
        settings: &PushSettings,
        lease: Option<Arc<Keeper>>,
    ) -> Result<Dispatcher, PushError> {
        Ok(Dispatcher {
            lease,
            gateways: Gateways::build(settings, &clock)?,
            db,
            clock,
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            kick: Notify::new(),
            stats: PushStats::default(),
            busy: Mutex::new(HashSet::new()),
            holds: Mutex::new(HashMap::new()),
        })
    }

    /// Which platforms have a gateway (for the start-up line).
    pub fn configured(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.gateways.fcm.is_some() {
            out.push("fcm");
        }
        if self.gateways.apns.is_some() {
            out.push("apns");
        }
        out
    }

    /// The counters.
    pub fn stats(&self) -> &PushStats {
        &self.stats
    }

    /// Tells the dispatcher new pushes were committed.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Drains the queue until the task is aborted: a look at the due pushes, their sends spawned,
    /// then a wait for a commit, a finished send or the next due time.
    pub async fn run(self: Arc<Self>) {
        loop {
            // Several instances on one database: only the lease holder sends.
            if let Some(lease) = &self.lease
                && !lease.held().await
            {
                tokio::select! {
                    _ = self.kick.notified() => {}
                    _ = tokio::time::sleep(lease.recheck()) => {}
                }
                continue;
            }
            let wait = match self.look().await {
                Ok(Some(at)) => (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO),
                Ok(None) => IDLE_LOOK,
                Err(e) => {
                    tracing::warn!("push queue: {e}");
                    Duration::from_secs(1)
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = self.kick.notified() => {}
                _ = tokio::time::sleep(wait.min(IDLE_LOOK)) => {}
            }
        }
    }

    /// Starts the sends of due pushes; returns when to look again (`None`: at the next kick — a
    /// commit or a finished send — or after [`IDLE_LOOK`]).
    async fn look(self: &Arc<Self>) -> Result<Option<DateTime<Utc>>, DbError> {
        let now = self.clock.now();
        let (open, held_until) = self.open_platforms(now);
        let room = self.permits.available_permits().min(BATCH);
        let mut started = 0;
        if room > 0 && !open.is_empty() {
            let busy = self.busy.lock().map_err(|_| DbError::Poisoned)?.clone();
            let due = self
                .db
                .read(move |tx| queue::due(tx, now, &open, &busy, room).map_err(DbError::from))
                .await?;
            for push in due {
                let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                    break;
                };
                if let Ok(mut b) = self.busy.lock() {
                    b.insert(push.id);
                }
                started += 1;
                let me = self.clone();
                tokio::spawn(async move {
                    me.deliver(push, permit).await;
                    me.kick();
                });
            }
        }
        let busy = self.busy.lock().map_err(|_| DbError::Poisoned)?.clone();
        let next = self
            .db
            .read(move |tx| queue::next_due(tx, &busy).map_err(DbError::from))
            .await?;
        Ok(match next {
            Some(at) if at > now => Some(at),
            // Due and not started: no permit free (a finished send kicks), a gateway on hold
            // (until the hold ends), or more than one batch was due (look again now).
            Some(_) if self.permits.available_permits() == 0 => None,
            Some(_) => Some(held_until.unwrap_or(if started > 0 {
                now
            } else {
                // Nothing could start although something is due: do not spin.
                now + chrono::Duration::milliseconds(100)
            })),
            None => None,
        })
    }

    /// The platforms not on hold, and the earliest end of a hold.
    fn open_platforms(&self, now: DateTime<Utc>) -> (Vec<PushPlatform>, Option<DateTime<Utc>>) {
        let Ok(mut holds) = self.holds.lock() else {
            return (PLATFORMS.to_vec(), None);
        };
        holds.retain(|_, until| *until > now);
        let open = PLATFORMS
            .iter()
            .copied()
            .filter(|p| !holds.contains_key(p))
            .collect();
        (open, holds.values().min().copied())
    }

    fn hold(&self, platform: PushPlatform, until: DateTime<Utc>) {
        if let Ok(mut holds) = self.holds.lock() {
            let entry = holds.entry(platform).or_insert(until);
            *entry = (*entry).max(until);
        }
    }

    /// Sends one push and records its outcome. The permit bounds sends in flight; it is returned
    /// as soon as the gateway answered, so recording the outcome (a durable write) does not hold
    /// up the next send — the push stays busy until its outcome is recorded.
    async fn deliver(&self, push: Queued, permit: tokio::sync::OwnedSemaphorePermit) {
        let now = self.clock.now();
        let tag = token_tag(&push.token);
        let verdict = if push.expires_at <= now {
            bump(&self.stats.expired);
            Verdict::Done
        } else {
            match self.gateways.send(&push).await {
                None => {
                    tracing::debug!(
                        device = %tag,
                        platform = push.platform.as_str(),
                        collapse_key = %push.message.collapse_key,
                        "no gateway configured for this platform: push not sent"
                    );
                    bump(&self.stats.unconfigured);
                    Verdict::Done
                }
                Some(outcome) => self.judge(&push, &tag, outcome),
            }
        };
        drop(permit);
        self.kick();
        let (id, rev, token) = (push.id, push.rev, push.token.clone());
        let recorded = self
            .db
            .write(move |tx| {
                match verdict {
                    Verdict::Done => {
                        queue::done(tx, id, rev)?;
                    }
                    Verdict::Dead => queue::forget(tx, &token)?,
                    Verdict::RetryAt(at) => queue::retry_at(tx, id, at)?,
                }
                Ok::<_, DbError>(())
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(device = %tag, "recording a push outcome failed: {e}");
        }
        if let Ok(mut b) = self.busy.lock() {
            b.remove(&id);
        }
    }

    /// What a gateway's answer means for the queue.
    fn judge(&self, push: &Queued, tag: &str, outcome: Result<Outcome, PushError>) -> Verdict {
        let now = self.clock.now();
        let later = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or_default();
        match outcome {
            Ok(Outcome::Delivered) => {
                bump(&self.stats.sent);
                Verdict::Done
            }
            Ok(Outcome::DeadToken) => {
                tracing::info!(device = %tag, "the gateway called the device token dead: forgotten");
                bump(&self.stats.dead_tokens);
                Verdict::Dead
            }
            Ok(Outcome::RetryAfter(d)) => {
                bump(&self.stats.retried);
                self.hold(push.platform, later(d));
                Verdict::RetryAt(later(d))
            }
            Ok(Outcome::RetryDevice(d)) => {
                bump(&self.stats.retried);
                Verdict::RetryAt(later(d.unwrap_or_else(|| backoff(push.attempts))))
            }
            Ok(Outcome::AuthFailed) => {
                tracing::error!(
                    platform = push.platform.as_str(),
                    "the gateway refused our credential: pushes wait; check the push configuration"
                );
                bump(&self.stats.retried);
                self.hold(push.platform, later(AUTH_BACKOFF));
                Verdict::RetryAt(later(AUTH_BACKOFF))
            }
            Ok(Outcome::Failed(reason)) => {
                tracing::warn!(device = %tag, "push refused: {reason}");
                bump(&self.stats.failed);
                Verdict::Done
            }
            Err(PushError::Transport(e)) => {
                let backoff = backoff(push.attempts);
                tracing::warn!(device = %tag, "push transport failure, retrying in {backoff:?}: {e}");
                bump(&self.stats.retried);
                Verdict::RetryAt(later(backoff))
            }
            Err(e) => {
                tracing::warn!(device = %tag, code = e.code(), "push not sendable: {e}");
                bump(&self.stats.failed);
                Verdict::Done
            }
        }
    }
}

/// The pause before a push's next attempt after `attempts` failed ones: 1 s, doubling, at most
/// [`MAX_BACKOFF`].
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(16)).min(MAX_BACKOFF)
}

/// What happens to a push's queue row.
enum Verdict {
    /// Remove it (delivered, refused for good, expired, unsendable).
    Done,
    /// Forget the device and its pushes.
    Dead,
    /// Try again then.
    RetryAt(DateTime<Utc>),
}
