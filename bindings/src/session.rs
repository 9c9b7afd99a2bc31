//! [`Session`]: the calls both roles share — sync, push wake-ups, the foreground loop, catalog and
//! profile, the price negotiation's answers, the outbox, status, listeners and shutdown — written
//! once over `friend_core::Session`, and the outbox records they return. The role objects
//! ([`crate::FriendSession`], [`crate::CustomerSession`]) keep only their role's calls and hand out
//! their `Session` with `session()`, as the core's role sessions dereference to theirs.
//!
//! Lifetime: the role object owns the account (its [`Account`]); a `Session` only refers to it (a
//! weak reference), so a `Session` handle the app forgets to close cannot keep an account's
//! database open, or its background work running, after the role object is gone. Once the role
//! object is closed every call here fails with `session_closed`, the error the core gives after
//! `shutdown()`.

use crate::config::SessionConfig;
use crate::error::FriendCoreError;
use crate::listeners::{Forward, JobListener, Subscription, SyncStatusListener};
use crate::negotiation::LocalNegotiation;
use crate::rt;
use crate::secrets::{ForeignSecrets, SecretsProvider};
use crate::status::{SyncReport, SyncStatus};
use crate::types::{Catalog, Me, PushPlatform, parse_job_id};
use friend_core::CoreError;
use friend_core::store::outbox::ItemStatus;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Weak};

/// The core session of either role, seen through what both roles are: `friend_core::Session`
/// (`friend_core::FriendSession` and `CustomerSession` dereference to it).
type CoreSession = dyn Deref<Target = friend_core::Session> + Send + Sync;

/// What a role object holds: its role's core session, owned (closing the role object stops it),
/// and the [`Session`] it hands out, which refers to that core session without owning it.
pub(crate) struct Account<C: Deref<Target = friend_core::Session>> {
    core: Arc<C>,
    session: Arc<Session>,
}

impl<C> Account<C>
where
    C: Deref<Target = friend_core::Session> + Send + Sync + 'static,
{
    /// Opens the core session of `role` on the owned runtime with `open` (the core role's `open`).
    pub(crate) async fn open<F, Fut>(
        call: &'static str,
        role: &'static str,
        config: SessionConfig,
        secrets: Arc<dyn SecretsProvider>,
        open: F,
    ) -> Result<Account<C>, FriendCoreError>
    where
        F: FnOnce(friend_core::SessionConfig, Arc<dyn friend_core::SecretsProvider>) -> Fut
            + Send
            + 'static,
        Fut: Future<Output = friend_core::CoreResult<C>> + Send + 'static,
    {
        rt::run(call, async move {
            let config = friend_core::SessionConfig::try_from(config)?;
            let core = Arc::new(open(config, Arc::new(ForeignSecrets(secrets))).await?);
            tracing::info!("{role} session opened");
            let session = Arc::new(Session {
                core: Arc::downgrade(&core) as Weak<CoreSession>,
                role,
            });
            Ok(Account { core, session })
        })
        .await
    }

    /// The role's core session, for its synchronous calls.
    pub(crate) fn core(&self) -> &C {
        &self.core
    }

    /// The shared calls' object: the same one each time.
    pub(crate) fn session(&self) -> Arc<Session> {
        self.session.clone()
    }

    /// Runs `work` on the owned runtime with the role's core session.
    pub(crate) async fn run<T, Fut>(
        &self,
        call: &'static str,
        work: impl FnOnce(Arc<C>) -> Fut,
    ) -> Result<T, FriendCoreError>
    where
        Fut: Future<Output = Result<T, FriendCoreError>> + Send + 'static,
        T: Send + 'static,
    {
        rt::run(call, work(self.core.clone())).await
    }
}

impl<C: Deref<Target = friend_core::Session>> Drop for Account<C> {
    /// Closing the role object closes the account, also for the `Session` handles the app still
    /// holds (they only refer to it). Background work stops here rather than with the last strong
    /// reference, which a call in flight may hold a little longer.
    fn drop(&mut self) {
        self.core.shutdown();
        tracing::info!("{} session closed", self.session.role);
    }
}

/// Delivery state of an outbox item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum OutboxStatus {
    /// Waiting to be delivered (or retried).
    Pending,
    /// The server applied it.
    Applied,
    /// The server refused it for good; set aside with the reason.
    Refused,
}

/// An outbox item with its outcome.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OutboxItem {
    /// Queue position.
    pub id: i64,
    /// The job; the nil UUID (`00000000-0000-0000-0000-000000000000`) for this device's own items
    /// (the push token), which concern no job.
    pub job_id: String,
    /// What it does: `book`, `decline`, `check_in`, `rate`, `push_token`, `push_token_removal`, …
    /// (the core's stable action kind).
    pub kind: String,
    /// Delivery state.
    pub status: OutboxStatus,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Last transient failure.
    pub last_error: Option<String>,
    /// The server's refusal code, for refused items.
    pub refusal_code: Option<String>,
    /// The server's refusal message, for refused items.
    pub refusal_message: Option<String>,
}

impl From<friend_core::OutboxItem> for OutboxItem {
    fn from(i: friend_core::OutboxItem) -> OutboxItem {
        OutboxItem {
            id: i.id,
            job_id: i.job_id.to_string(),
            kind: i.action.kind().as_str().to_owned(),
            status: match i.status {
                ItemStatus::Pending => OutboxStatus::Pending,
                ItemStatus::Applied => OutboxStatus::Applied,
                ItemStatus::Refused => OutboxStatus::Refused,
            },
            attempts: i.attempts,
            last_error: i.last_error,
            refusal_code: i.refusal_code,
            refusal_message: i.refusal_message,
        }
    }
}

/// The push token this device registered last (queued or delivered), as an app may show it: never
/// the token itself.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PushRegistration {
    /// Where it is delivered through.
    pub platform: PushPlatform,
    /// A short tag of the token (8 hex digits of its SHA-256), to tell tokens apart.
    pub tag: String,
}

/// What one account on this device does whatever its role: sync, push wake-ups, the foreground
/// loop, catalog and profile, the answers in the price negotiation, the outbox, status and
/// listeners. Get it from `FriendSession.session()` or `CustomerSession.session()`; code that
/// serves both roles (a settings screen, a status bar) can take a `Session`.
///
/// Lifetime: the role object (`FriendSession`, `CustomerSession`) owns the account, and this object
/// only refers to it.
/// - `close()` on the role object (Kotlin) or releasing its last reference (Swift) stops
///   background work and releases the account's database once calls in flight have ended. From
///   then on every call on this `Session` fails with `session_closed` (`stopForegroundSync()` and
///   `shutdown()` do nothing): it never keeps a closed account alive.
/// - Closing this `Session` (Kotlin `close()`, or releasing it in Swift) releases only this handle:
///   the role object keeps working, and its `session()` hands out the same session again.
/// - `shutdown()` stops background work without closing anything: later calls that need the
///   network fail with `session_closed`, here and on the role object; what is cached still answers.
///
/// Every async call may be cancelled: durable state is written before a request leaves.
#[derive(uniffi::Object)]
pub struct Session {
    core: Weak<CoreSession>,
    /// `friend` or `customer`, for the log lines.
    role: &'static str,
}

impl Session {
    /// The core session while its role object is open; `session_closed` once it is gone.
    fn core(&self) -> Result<Arc<CoreSession>, FriendCoreError> {
        self.core
            .upgrade()
            .ok_or_else(|| FriendCoreError::from(CoreError::Closed))
    }

    /// Runs `work` on the owned runtime with the core session (kept alive until `work` ends), or
    /// fails with `session_closed` when the role object is gone.
    async fn run<T, Fut, W>(&self, call: &'static str, work: W) -> Result<T, FriendCoreError>
    where
        W: FnOnce(Arc<CoreSession>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, FriendCoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let core = self.core();
        rt::run(call, async move { work(core?).await }).await
    }
}

#[uniffi::export]
impl Session {
    /// Delivers the outbox, resolves accepts whose answer was lost and pulls every page of changes.
    pub async fn sync_once(&self) -> Result<SyncReport, FriendCoreError> {
        self.run("Session.sync_once", move |s| async move {
            Ok(s.sync_once().await?.into())
        })
        .await
    }

    /// A platform push woke the app: one batched round (deliver, then pull). Hand it what the push
    /// carried — FCM's data map or APNs' `userInfo` as a JSON object — or an empty string. An
    /// unknown or unreadable payload is a plain sync: the payload never causes an error (offline
    /// and the other sync errors still can).
    pub async fn on_push(&self, payload: String) -> Result<SyncReport, FriendCoreError> {
        self.run("Session.on_push", move |s| async move {
            Ok(s.on_push(&payload).await?.into())
        })
        .await
    }

    /// Registers this device's push token for this account: call it with the token the platform
    /// hands the app (`FirebaseMessaging.getToken()`, `onNewToken`; APNs'
    /// `didRegisterForRemoteNotificationsWithDeviceToken` as hex) at every start and on rotation.
    /// Validated here (`invalid_input`: unknown platform, empty, spaces, too long, an APNs token
    /// that is not hex), then queued in the outbox — it works offline and is delivered in order —
    /// and remembered, sealed: a new token replaces the previous one on the backend, the same token
    /// again sends nothing. Returns the queued outbox item id, or null when nothing was queued.
    pub async fn register_push_token(
        &self,
        platform: PushPlatform,
        token: String,
    ) -> Result<Option<i64>, FriendCoreError> {
        self.run("Session.register_push_token", move |s| async move {
            Ok(s.register_push_token(platform.into(), &token).await?)
        })
        .await
    }

    /// Queues the removal of this device's push token (null, and nothing queued, when none is
    /// registered): call it at sign-out, before closing the role object. Closing alone does not
    /// unregister — a signed-in device keeps its pushes while the app is closed.
    pub async fn unregister_push_token(&self) -> Result<Option<i64>, FriendCoreError> {
        self.run("Session.unregister_push_token", move |s| async move {
            Ok(s.unregister_push_token().await?)
        })
        .await
    }

    /// The push token this device registered last (its platform and a short tag), or null.
    pub async fn push_registration(&self) -> Result<Option<PushRegistration>, FriendCoreError> {
        self.run("Session.push_registration", move |s| async move {
            Ok(s.push_token()
                .await?
                .map(|(platform, tag)| PushRegistration {
                    platform: platform.into(),
                    tag,
                }))
        })
        .await
    }

    /// Starts the foreground loop (long-poll) while the app is visible; changes arrive through the
    /// listeners.
    pub fn start_foreground_sync(&self) -> Result<(), FriendCoreError> {
        let core = self.core()?;
        rt::enter(|| core.start_foreground_sync())
    }

    /// Stops the foreground loop (when the app goes to the background).
    pub fn stop_foreground_sync(&self) {
        if let Some(core) = self.core.upgrade() {
            core.stop_foreground_sync();
        }
    }

    /// The service catalog: fetched when online, the cached copy otherwise.
    pub async fn catalog(&self) -> Result<Catalog, FriendCoreError> {
        self.run("Session.catalog", move |s| async move {
            Ok(s.catalog().await?.into())
        })
        .await
    }

    /// Your own profile (`Me.Friend` or `Me.Customer`): fetched when online, the cached copy
    /// otherwise.
    pub async fn profile(&self) -> Result<Me, FriendCoreError> {
        self.run("Session.profile", move |s| async move {
            Ok(s.profile().await?.into())
        })
        .await
    }

    /// The job's price negotiation as this device knows it (pending local steps included).
    pub async fn negotiation(&self, job_id: String) -> Result<LocalNegotiation, FriendCoreError> {
        self.run("Session.negotiation", move |s| async move {
            Ok(s.negotiation(parse_job_id(&job_id)?).await?.into())
        })
        .await
    }

    /// Accepts the other party's pending proposal `version` (signed, queued); returns the payload
    /// to show to the other device as a QR code when it is offline.
    pub async fn accept_quote(
        &self,
        job_id: String,
        version: u32,
    ) -> Result<String, FriendCoreError> {
        self.run("Session.accept_quote", move |s| async move {
            Ok(s.accept_quote(parse_job_id(&job_id)?, version).await?)
        })
        .await
    }

    /// Rejects the other party's pending proposal `version` (queued). Returns the outbox item id.
    pub async fn reject_quote(&self, job_id: String, version: u32) -> Result<i64, FriendCoreError> {
        self.run("Session.reject_quote", move |s| async move {
            Ok(s.reject_quote(parse_job_id(&job_id)?, version).await?)
        })
        .await
    }

    /// Imports a payload from the other party's device, verified offline: a tampered, foreign or
    /// superseded payload fails with `invalid_consent` and nothing is stored.
    pub async fn import_consent(
        &self,
        job_id: String,
        payload: String,
    ) -> Result<LocalNegotiation, FriendCoreError> {
        self.run("Session.import_consent", move |s| async move {
            Ok(s.import_consent(parse_job_id(&job_id)?, &payload)
                .await?
                .into())
        })
        .await
    }

    /// Every outbox item with its outcome (pending, applied, or refused with the server's reason).
    pub async fn outbox(&self) -> Result<Vec<OutboxItem>, FriendCoreError> {
        self.run("Session.outbox", move |s| async move {
            Ok(s.outbox().await?.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// Delivers due outbox items now (a timer does this by itself). Returns how many were applied.
    pub async fn deliver_outbox(&self) -> Result<u32, FriendCoreError> {
        self.run("Session.deliver_outbox", move |s| async move {
            Ok(s.deliver_outbox().await?)
        })
        .await
    }

    /// The current sync status (in memory).
    pub fn sync_status(&self) -> Result<SyncStatus, FriendCoreError> {
        Ok(self.core()?.sync_status().into())
    }

    /// Server time now (device clock corrected by the offset measured at the last sync), ms since
    /// the epoch: use it for countdowns.
    pub fn server_now_ms(&self) -> Result<i64, FriendCoreError> {
        Ok(self.core()?.server_now_ms())
    }

    /// Calls `listener` whenever one of your jobs changed, until the returned handle is cancelled.
    pub fn subscribe_jobs(
        &self,
        listener: Arc<dyn JobListener>,
    ) -> Result<Arc<Subscription>, FriendCoreError> {
        let core = self.core()?;
        Ok(Subscription::new(
            core.subscribe_jobs(Arc::new(Forward(listener))),
        ))
    }

    /// Calls `listener` whenever the sync status changed, until the returned handle is cancelled.
    pub fn subscribe_sync_status(
        &self,
        listener: Arc<dyn SyncStatusListener>,
    ) -> Result<Arc<Subscription>, FriendCoreError> {
        let core = self.core()?;
        Ok(Subscription::new(
            core.subscribe_sync_status(Arc::new(Forward(listener))),
        ))
    }

    /// Stops background work; later network calls fail with `session_closed` (also those of the
    /// role object), while cached reads still answer. Pending outbox items stay queued for the next
    /// session. Closing the role object does this too.
    pub fn shutdown(&self) {
        if let Some(core) = self.core.upgrade() {
            core.shutdown();
            tracing::info!(role = self.role, "session shut down");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Keys;

    impl SecretsProvider for Keys {
        fn access_token(&self) -> Result<String, FriendCoreError> {
            Ok("dev-friend-test".into())
        }
        fn data_key(&self) -> Result<Vec<u8>, FriendCoreError> {
            Ok(vec![7; 32])
        }
    }

    fn config(dir: &tempfile::TempDir) -> SessionConfig {
        SessionConfig {
            db_path: dir.path().join("a.db").display().to_string(),
            // Nothing listens there: these tests never need the network.
            base_url: "http://127.0.0.1:9".into(),
            pins: vec![],
            connect_timeout_ms: 5000,
            request_timeout_ms: 15000,
            sync_page_limit: 500,
        }
    }

    /// A Friend's account opened on `dir` (no backend needed), and a runtime of the host's own
    /// to call its async functions from, as an app's thread would.
    fn friend_account(
        dir: &tempfile::TempDir,
    ) -> (tokio::runtime::Runtime, Account<friend_core::FriendSession>) {
        let caller = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let account = caller
            .block_on(Account::open(
                "test.open",
                "friend",
                config(dir),
                Arc::new(Keys),
                friend_core::FriendSession::open,
            ))
            .unwrap();
        (caller, account)
    }

    /// The role object's account hands out one session; the session refers to the account and
    /// answers `session_closed` once the account is gone, instead of keeping it open.
    #[test]
    fn a_session_lives_no_longer_than_its_account() {
        let dir = tempfile::tempdir().unwrap();
        let (caller, account) = friend_account(&dir);
        let session = account.session();
        assert!(
            Arc::ptr_eq(&session, &account.session()),
            "the same session"
        );
        assert_eq!(session.sync_status().unwrap().pending_outbox, 0);
        assert!(caller.block_on(session.outbox()).unwrap().is_empty());

        // Dropping a session handle leaves the account and its session working.
        drop(account.session());
        assert!(account.session().sync_status().is_ok());

        drop(account);
        for error in [
            session.sync_status().unwrap_err(),
            session.start_foreground_sync().unwrap_err(),
            caller.block_on(session.outbox()).unwrap_err(),
            caller.block_on(session.sync_once()).unwrap_err(),
        ] {
            assert_eq!(error.code(), "session_closed", "{error}");
        }
        session.stop_foreground_sync();
        session.shutdown();
    }

    /// Push-token calls across the FFI: a bad token or an unknown platform is `invalid_input`
    /// (never a panic), a good one is queued once, and only a tag of it comes back.
    #[test]
    fn push_tokens_are_validated_queued_and_shown_as_a_tag() {
        let dir = tempfile::tempdir().unwrap();
        let (caller, account) = friend_account(&dir);
        let session = account.session();
        for (platform, token) in [
            (PushPlatform::Unknown, "fcm-token"),
            (PushPlatform::Fcm, ""),
            (PushPlatform::Apns, "zz"),
        ] {
            let error = caller
                .block_on(session.register_push_token(platform, token.into()))
                .unwrap_err();
            assert_eq!(error.code(), "invalid_input", "{error}");
        }
        let token = "fcm-token-for-the-ffi-test";
        assert!(
            caller
                .block_on(session.register_push_token(PushPlatform::Fcm, token.into()))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            caller
                .block_on(session.register_push_token(PushPlatform::Fcm, token.into()))
                .unwrap(),
            None
        );
        let shown = caller
            .block_on(session.push_registration())
            .unwrap()
            .unwrap();
        assert_eq!(shown.platform, PushPlatform::Fcm);
        assert_eq!(shown.tag.len(), 8);
        assert!(!token.contains(&shown.tag));
        let items = caller.block_on(session.outbox()).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].kind, "push_token");
        assert!(
            caller
                .block_on(session.unregister_push_token())
                .unwrap()
                .is_some()
        );
        assert_eq!(caller.block_on(session.push_registration()).unwrap(), None);
    }
}
