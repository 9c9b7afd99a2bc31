//! [`Session`]: what one account on a device does whatever its role — sync, push wake-ups, the
//! outbox, the price negotiation, the cached catalog and profile, status and listeners. The
//! Friend's and the customer's sessions are a [`Session`] plus their role's calls (they dereference
//! to it), so each shared call is written once here, and code that serves both roles (the CLI's
//! device commands, an app's settings screen) takes a `&Session`.

use crate::api::ApiConfig;
use crate::engine::{Engine, SYNC_PAGE_LIMIT};
use crate::error::CoreResult;
use crate::listeners::{JobListener, Subscription, SyncStatusListener};
use crate::negotiation::LocalNegotiation;
use crate::outbox::OutboxItem;
use crate::secrets::SecretsProvider;
use crate::store::outbox as rows;
use friend_protocol::negotiation::Party;
use friend_protocol::push::{PushPayload, PushPlatform};
use friend_protocol::quote::LineItem;
use friend_protocol::{Catalog, JobId, Me, Role};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a session keeps its data and how it reaches the backend.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The account database file, chosen by the host app (one per account).
    pub db_path: PathBuf,
    /// The backend.
    pub api: ApiConfig,
    /// Most changes per sync page (1…1000).
    pub sync_page_limit: u32,
}

impl SessionConfig {
    /// A config with default timeouts and no pins.
    pub fn new(db_path: impl Into<PathBuf>, base_url: impl Into<String>) -> SessionConfig {
        SessionConfig {
            db_path: db_path.into(),
            api: ApiConfig::new(base_url),
            sync_page_limit: SYNC_PAGE_LIMIT,
        }
    }
}

/// The observable sync state (SPEC §5).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncStatus {
    /// The last request reached the backend.
    pub connected: bool,
    /// Device time (ms) of the last successful sync.
    pub last_success_ms: Option<i64>,
    /// Outbox items waiting for delivery.
    pub pending_outbox: u32,
    /// Outbox items the server refused (set aside; the app can show them).
    pub refused_outbox: u32,
    /// The last failure: code and message.
    pub last_error: Option<(String, String)>,
    /// A snapshot (first sync or full resync) is in progress.
    pub snapshot_in_progress: bool,
    /// Items received by the snapshot in progress so far.
    pub snapshot_items: u64,
    /// Server clock minus device clock, ms.
    pub clock_offset_ms: i64,
    /// Response bytes received from the backend since the session opened (bodies as sent, gzip
    /// decoded): what the app's data-usage screen or a sync-efficiency check needs.
    pub bytes_received: u64,
    /// Set when this session found its database corrupt at open and rebuilt it (the damaged file
    /// kept aside, the undelivered outbox carried over): the app may tell the user or report it.
    pub cache_recovery: Option<crate::store::Recovery>,
}

/// What a sync run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// Pages applied.
    pub pages: u32,
    /// Changes applied.
    pub changes: u64,
    /// The run ended with a full snapshot replacing the cache.
    pub replaced_cache: bool,
}

/// One account on this device, either role. Obtained through [`crate::FriendSession`] or
/// [`crate::CustomerSession`]; background work stops when it is dropped or shut down.
pub struct Session {
    pub(crate) engine: Arc<Engine>,
    party: Party,
}

impl Session {
    /// Opens the account database for a session of `role`: a malformed token is refused here, a
    /// token of the other role from the first request on (nothing of that account is cached).
    pub(crate) async fn open(
        config: SessionConfig,
        secrets: Arc<dyn SecretsProvider>,
        role: Role,
    ) -> CoreResult<Session> {
        let config = crate::secrets::session_for_role(config, secrets.as_ref(), role)?;
        let party = match role {
            Role::Customer => Party::Customer,
            _ => Party::Friend,
        };
        Ok(Session {
            engine: Engine::open(config, secrets).await?,
            party,
        })
    }

    /// Delivers the outbox, resolves accepts whose answer was lost, and pulls every page of
    /// changes.
    pub async fn sync_once(&self) -> CoreResult<SyncReport> {
        self.engine.on_push().await
    }

    /// A platform push woke the app: one batched round, as [`Session::sync_once`] (deliver the
    /// outbox, resolve accepts whose answer was lost, pull every page — the job the push names
    /// arrives with it). `payload` is whatever the app received (FCM's data map or APNs'
    /// `userInfo` as JSON; see [`PushPayload::parse`]); it is untrusted and only read for a log
    /// line: an empty, unknown or garbage payload is a plain sync and never the cause of an error.
    pub async fn on_push(&self, payload: &str) -> CoreResult<SyncReport> {
        let push = PushPayload::parse(payload);
        // Only what parsing accepted is logged (a known kind, a well-formed id), never the payload.
        tracing::debug!(
            kind = push.kind.map(|k| k.as_str()),
            job = push.job.map(|j| j.to_string()),
            "push received: one sync round"
        );
        self.engine.on_push().await
    }

    /// Registers this device's push token (`platform`: FCM, or APNs production or sandbox) with the
    /// backend, for this account. Validated by the shared rule (`invalid_input` otherwise), then
    /// queued in the outbox — works offline, delivered in order with its own idempotency key,
    /// sealed at rest — and remembered (sealed): a later registration of a new token replaces this
    /// one on the backend, and registering the same token again queues nothing. A newer
    /// registration supersedes an older one still waiting in the outbox. Returns the queued outbox
    /// item, or `None` when there was nothing to send. Call it whenever the platform hands the app
    /// a token (at start and on rotation).
    pub async fn register_push_token(
        &self,
        platform: PushPlatform,
        token: &str,
    ) -> CoreResult<Option<i64>> {
        self.engine
            .register_push_token(platform, token.to_owned())
            .await
    }

    /// Queues the removal of the push token this device registered (a no-op returning `None` when
    /// there is none) and forgets it: call it at sign-out. Closing or shutting down a session does
    /// not unregister — a device keeps receiving the pushes of the account it is signed in to
    /// while the app is closed. The removal is queued like a registration, so a device offline at
    /// sign-out sends it when a session of the account is next online.
    pub async fn unregister_push_token(&self) -> CoreResult<Option<i64>> {
        self.engine.unregister_push_token().await
    }

    /// The short tag ([`crate::outbox::push::token_tag`]) and platform of the push token this
    /// device registered last (queued or delivered), if any — never the token itself.
    pub async fn push_token(&self) -> CoreResult<Option<(PushPlatform, String)>> {
        let cipher = self.engine.cipher.clone();
        Ok(self
            .engine
            .store
            .read_async(move |c| crate::outbox::push::registered(c, &cipher))
            .await?
            .map(|r| (r.platform, r.token.tag())))
    }

    /// Starts the foreground loop (long-poll) while the app is visible.
    pub fn start_foreground_sync(&self) {
        self.engine.start_foreground();
    }

    /// Stops the foreground loop (when the app goes to the background).
    pub fn stop_foreground_sync(&self) {
        self.engine.stop_foreground();
    }

    /// The catalog: fetched when online (and cached), the cached copy otherwise.
    pub async fn catalog(&self) -> CoreResult<Catalog> {
        self.engine.catalog().await
    }

    /// The account's own profile: fetched when online (and cached sealed), the cached copy
    /// otherwise.
    pub async fn profile(&self) -> CoreResult<Me> {
        self.engine.profile().await
    }

    /// The job's price negotiation as this device knows it (pending local steps included).
    pub async fn negotiation(&self, job: JobId) -> CoreResult<LocalNegotiation> {
        self.engine.negotiation(job).await
    }

    /// Proposes a quote (the Friend's first quote or amendment, the customer's counter-proposal):
    /// validated by the shared rules, signed and queued. Returns the payload to show as a QR code
    /// to the other device.
    pub(crate) async fn propose(
        &self,
        job: JobId,
        items: Vec<LineItem>,
        reason: Option<String>,
    ) -> CoreResult<String> {
        self.engine.propose(job, self.party, items, reason).await
    }

    /// Accepts the other party's pending proposal `version`: signed and queued. Returns the payload
    /// to show to the other device when it is offline.
    pub async fn accept_quote(&self, job: JobId, version: u32) -> CoreResult<String> {
        self.engine.accept_quote(job, self.party, version).await
    }

    /// Rejects the other party's pending proposal `version` (queued); returns the outbox item id.
    pub async fn reject_quote(&self, job: JobId, version: u32) -> CoreResult<i64> {
        self.engine.reject_quote(job, self.party, version).await
    }

    /// Imports a payload the other party's device showed, verified offline.
    pub async fn import_consent(&self, job: JobId, payload: &str) -> CoreResult<LocalNegotiation> {
        self.engine.import_consent(job, self.party, payload).await
    }

    /// Every outbox item with its outcome (pending, applied, or refused with the server's reason).
    /// An item this version cannot read is left out; delivery sets it aside as refused
    /// (`unreadable_item`), so it is counted in [`SyncStatus::refused_outbox`].
    pub async fn outbox(&self) -> CoreResult<Vec<OutboxItem>> {
        let cipher = self.engine.cipher.clone();
        self.engine
            .store
            .read_async(move |c| {
                Ok(rows::all(c, &cipher)?
                    .into_iter()
                    .filter_map(|row| OutboxItem::from_row(row).ok())
                    .collect())
            })
            .await
    }

    /// Delivers due outbox items now (the timer does this by itself).
    pub async fn deliver_outbox(&self) -> CoreResult<u32> {
        self.engine.deliver_outbox().await
    }

    /// The current sync status.
    pub fn sync_status(&self) -> SyncStatus {
        self.engine.status()
    }

    /// Server time now (device clock corrected by the offset measured at the last sync), ms.
    pub fn server_now_ms(&self) -> i64 {
        self.engine.server_now_ms()
    }

    /// Subscribes to job changes.
    pub fn subscribe_jobs(&self, l: Arc<dyn JobListener>) -> Subscription {
        self.engine.listeners.jobs.add(l)
    }

    /// Subscribes to sync-status changes.
    pub fn subscribe_sync_status(&self, l: Arc<dyn SyncStatusListener>) -> Subscription {
        self.engine.listeners.status.add(l)
    }

    /// Stops background work. Pending outbox items stay queued for the next session.
    pub fn shutdown(&self) {
        self.engine.shutdown();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.engine.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use crate::outbox::push::{DEVICE_QUEUE, token_tag};
    use crate::store::outbox::ItemStatus;
    use crate::{
        ActionKind, CustomerSession, FriendSession, JobListener, SessionConfig, StaticSecrets,
    };
    use friend_protocol::JobId;
    use friend_protocol::push::PushPlatform;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A Friend session whose backend is a closed loopback port (every request fails at once).
    async fn offline_friend(dir: &tempfile::TempDir) -> FriendSession {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let secrets = Arc::new(StaticSecrets::new("dev-friend-x", [2u8; 32]));
        FriendSession::open(
            SessionConfig::new(dir.path().join("f.db"), "http://127.0.0.1:9"),
            secrets,
        )
        .await
        .unwrap()
    }

    struct CountJobs(AtomicUsize);

    impl JobListener for CountJobs {
        fn on_job_changed(&self, _job: JobId) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_push_token_is_validated_queued_offline_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let s = offline_friend(&dir).await;
        let jobs = Arc::new(CountJobs(AtomicUsize::new(0)));
        let _sub = s.subscribe_jobs(jobs.clone());
        for (platform, token) in [
            (PushPlatform::Unknown, "tok"),
            (PushPlatform::Fcm, ""),
            (PushPlatform::Fcm, "with space"),
            (PushPlatform::Apns, "not-hex"),
        ] {
            let e = s.register_push_token(platform, token).await.unwrap_err();
            assert_eq!(e.code(), "invalid_input", "{platform:?} {token:?}");
            assert!(token.is_empty() || !e.to_string().contains(token));
        }
        assert!(s.outbox().await.unwrap().is_empty(), "nothing queued");

        let first = s
            .register_push_token(PushPlatform::Fcm, "fcm-token-1")
            .await;
        assert!(first.unwrap().is_some());
        assert_eq!(
            s.register_push_token(PushPlatform::Fcm, "fcm-token-1")
                .await
                .unwrap(),
            None,
            "the same token again is a no-op"
        );
        s.register_push_token(PushPlatform::Fcm, "fcm-token-2")
            .await
            .unwrap()
            .unwrap();
        let items = s.outbox().await.unwrap();
        let kinds: Vec<_> = items.iter().map(|i| i.action.kind()).collect();
        assert_eq!(kinds, [ActionKind::PushToken, ActionKind::PushToken]);
        assert!(
            items
                .iter()
                .all(|i| i.job_id == DEVICE_QUEUE && i.status == ItemStatus::Pending)
        );
        assert_eq!(s.sync_status().pending_outbox, 2);
        assert_eq!(
            s.push_token().await.unwrap(),
            Some((PushPlatform::Fcm, token_tag("fcm-token-2")))
        );

        // Unregistering supersedes the second registration (it never left); the first may be on
        // its way and stays.
        assert!(s.unregister_push_token().await.unwrap().is_some());
        assert_eq!(s.unregister_push_token().await.unwrap(), None);
        let kinds: Vec<_> = s
            .outbox()
            .await
            .unwrap()
            .iter()
            .map(|i| i.action.kind())
            .collect();
        assert_eq!(kinds, [ActionKind::PushToken, ActionKind::PushTokenRemoval]);
        assert_eq!(s.push_token().await.unwrap(), None);

        // An offline delivery round keeps them; no job listener hears of the device's queue.
        assert_eq!(s.deliver_outbox().await.unwrap(), 0);
        assert_eq!(s.sync_status().pending_outbox, 2);
        assert_eq!(jobs.0.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_garbage_push_is_a_plain_sync() {
        let dir = tempfile::tempdir().unwrap();
        let s = offline_friend(&dir).await;
        let plain = s.sync_once().await.unwrap_err().code();
        let job = JobId::random();
        for payload in [
            String::new(),
            "{".into(),
            "null".into(),
            "\u{0}\u{ffff}".into(),
            r#"{"kind":"party","job_id":17}"#.into(),
            format!(r#"{{"kind":"offer","job_id":"{job}"}}"#),
            format!(r#"{{"data":{{"kind":"job","job_id":"{job}"}}}}"#),
        ] {
            // Offline here: the round fails as a plain sync does, never because of the payload.
            let e = s.on_push(&payload).await.unwrap_err();
            assert_eq!(e.code(), plain, "{payload:?}");
        }
    }

    #[tokio::test]
    async fn a_rebuilt_cache_is_reported_in_the_status() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let secrets = Arc::new(StaticSecrets::new(
            String::from("dev-customer-x"),
            [1u8; 32],
        ));
        let session =
            CustomerSession::open(SessionConfig::new(&path, "http://127.0.0.1:9"), secrets)
                .await
                .unwrap();
        let recovery = session.sync_status().cache_recovery.expect("reported");
        assert!(recovery.kept_at.exists(), "the damaged file is kept");
        assert!(!recovery.problem.is_empty());
        // A healthy cache reopens without a report.
        drop(session);
        let secrets = Arc::new(StaticSecrets::new(
            String::from("dev-customer-x"),
            [1u8; 32],
        ));
        let again = CustomerSession::open(SessionConfig::new(&path, "http://127.0.0.1:9"), secrets)
            .await
            .unwrap();
        assert!(again.sync_status().cache_recovery.is_none());
    }
}
