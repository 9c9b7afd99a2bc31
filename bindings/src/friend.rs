//! [`FriendSession`]: the object a Friend's app holds for one account, a thin wrapper over
//! `friend_core::FriendSession`, and the records its calls return. Every method that touches the
//! network or the disk is async and runs on the owned runtime (`crate::rt`); the few synchronous
//! ones read in-memory state.

use crate::config::SessionConfig;
use crate::error::FriendCoreError;
use crate::listeners::{Forward, InboxListener, JobListener, Subscription, SyncStatusListener};
use crate::negotiation::LocalNegotiation;
use crate::rt;
use crate::secrets::{ForeignSecrets, SecretsProvider};
use crate::status::{SyncReport, SyncStatus};
use crate::types::{
    Catalog, Category, DeclineReason, GeoPoint, JobDetails, LineItem, Me, Money, NotEligibleReason,
    Offer, PaymentMethod, Settlement, UnsuccessfulReason, parse_job_id,
};
use friend_core::store::outbox::ItemStatus;
use std::borrow::Borrow;
use std::future::Future;
use std::sync::Arc;

type CoreSession = friend_core::FriendSession;

/// Narrows the inbox.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct InboxFilter {
    /// Only these categories (empty: all).
    #[uniffi(default = [])]
    pub categories: Vec<Category>,
    /// Include remote offers (listed after the on-site ones).
    #[uniffi(default = true)]
    pub include_remote: bool,
    /// At most this many offers.
    #[uniffi(default = None)]
    pub limit: Option<u32>,
}

impl From<InboxFilter> for friend_core::InboxFilter {
    fn from(f: InboxFilter) -> friend_core::InboxFilter {
        friend_core::InboxFilter {
            categories: f.categories.into_iter().map(Into::into).collect(),
            include_remote: f.include_remote,
            limit: f.limit,
        }
    }
}

/// One offer in the inbox.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct InboxItem {
    /// The offer (approximate location, no personal data).
    pub offer: Offer,
    /// Great-circle distance from the given position to the approximate point, metres; none for
    /// remote offers.
    pub distance_m: Option<f64>,
    /// Seconds until the offer expires, by the server's clock.
    pub expires_in_secs: i64,
}

/// The inbox as cached.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Inbox {
    /// Offers sorted by distance, remote ones last.
    pub items: Vec<InboxItem>,
    /// Seconds since the last successful sync (none: never synced).
    pub cache_age_secs: Option<i64>,
}

impl From<friend_core::Inbox> for Inbox {
    fn from(i: friend_core::Inbox) -> Inbox {
        Inbox {
            items: i
                .items
                .into_iter()
                .map(|item| InboxItem {
                    // The core may share offers (Arc) with its index; works either way.
                    offer: Borrow::<friend_protocol::Offer>::borrow(&item.offer)
                        .clone()
                        .into(),
                    distance_m: item.distance_m,
                    expires_in_secs: item.expires_in_secs,
                })
                .collect(),
            cache_age_secs: i.cache_age_secs,
        }
    }
}

/// Why a job is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum GoneReason {
    /// The customer cancelled.
    Cancelled,
    /// Nobody accepted in time.
    Expired,
}

/// How an accept ended. Losing the race is an answer, not an error.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
// Handed across the boundary once and serialized there: boxing the big variant would buy nothing
// (and uniffi records cannot hold a Box).
#[allow(clippy::large_enum_variant)]
pub enum AcceptResult {
    /// You won; the job with full details is now among your jobs.
    Won {
        /// The job, assigned to you.
        job: JobDetails,
    },
    /// Another Friend was first. The offer has left your inbox.
    Lost,
    /// The job is gone.
    Gone {
        /// Why.
        reason: GoneReason,
    },
    /// You may not take this job.
    NotEligible {
        /// Why.
        reason: NotEligibleReason,
    },
    /// The backend could not be reached. Never queued; if the request may have arrived, its outcome
    /// is looked up at the next sync and reported through the job and inbox listeners.
    Offline,
}

impl From<friend_core::AcceptResult> for AcceptResult {
    fn from(r: friend_core::AcceptResult) -> AcceptResult {
        use friend_core::{AcceptResult as A, GoneReason as G};
        match r {
            A::Won(job) => AcceptResult::Won { job: (*job).into() },
            A::Lost => AcceptResult::Lost,
            A::Gone(G::Cancelled) => AcceptResult::Gone {
                reason: GoneReason::Cancelled,
            },
            A::Gone(G::Expired) => AcceptResult::Gone {
                reason: GoneReason::Expired,
            },
            A::NotEligible(reason) => AcceptResult::NotEligible {
                reason: reason.into(),
            },
            A::Offline => AcceptResult::Offline,
        }
    }
}

/// One of the Friend's jobs with what is still waiting in the outbox for it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct MyJob {
    /// Full details as last known, with pending local actions already shown (a queued check-in
    /// shows the job on site).
    pub details: JobDetails,
    /// Kinds of the outbox items not yet acknowledged for this job (`check_in`, …), oldest first.
    pub pending_actions: Vec<String>,
}

impl From<friend_core::MyJob> for MyJob {
    fn from(j: friend_core::MyJob) -> MyJob {
        MyJob {
            details: j.details.into(),
            pending_actions: j
                .pending_actions
                .into_iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
        }
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
    /// The job.
    pub job_id: String,
    /// What it does: `decline`, `release`, `check_in`, … (the core's stable action kind).
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
            kind: i.action.kind().to_owned(),
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

/// One Friend account on this device: offline cache, sync, inbox, accept and outbox.
///
/// Open it once per account and keep it while the user is signed in. Works fully offline after the
/// first sync. `close()` (Kotlin) or releasing the last reference (Swift) stops background work, as
/// does `shutdown()`. Every async call may be cancelled: durable state is written before a request
/// leaves, so a cancelled call never leaves the session inconsistent.
#[derive(uniffi::Object)]
pub struct FriendSession {
    inner: Arc<CoreSession>,
}

impl FriendSession {
    /// Runs `work` on the owned runtime with the core session.
    async fn run<T, Fut>(
        &self,
        call: &'static str,
        work: impl FnOnce(Arc<CoreSession>) -> Fut,
    ) -> Result<T, FriendCoreError>
    where
        Fut: Future<Output = Result<T, FriendCoreError>> + Send + 'static,
        T: Send + 'static,
    {
        rt::run(call, work(self.inner.clone())).await
    }
}

#[uniffi::export]
impl FriendSession {
    /// Opens the account database at `config.db_path` (creating it), checks the data key from
    /// `secrets` against it and starts the outbox timer.
    #[uniffi::constructor]
    pub async fn open(
        config: SessionConfig,
        secrets: Arc<dyn SecretsProvider>,
    ) -> Result<Arc<FriendSession>, FriendCoreError> {
        rt::run("open", async move {
            let config = friend_core::SessionConfig::try_from(config)?;
            let inner = CoreSession::open(config, Arc::new(ForeignSecrets(secrets))).await?;
            tracing::info!("friend session opened");
            Ok(Arc::new(FriendSession {
                inner: Arc::new(inner),
            }))
        })
        .await
    }

    /// Delivers the outbox, resolves accepts whose answer was lost and pulls every page of changes.
    pub async fn sync_once(&self) -> Result<SyncReport, FriendCoreError> {
        self.run(
            "sync_once",
            |s| async move { Ok(s.sync_once().await?.into()) },
        )
        .await
    }

    /// A platform push woke the app: one batched round (deliver, then pull). The payload may be
    /// empty.
    pub async fn on_push(&self, payload: String) -> Result<SyncReport, FriendCoreError> {
        self.run("on_push", |s| async move {
            Ok(s.on_push(&payload).await?.into())
        })
        .await
    }

    /// Starts the foreground loop (long-poll) while the app is visible; changes arrive through the
    /// listeners.
    pub fn start_foreground_sync(&self) -> Result<(), FriendCoreError> {
        rt::enter(|| self.inner.start_foreground_sync())
    }

    /// Stops the foreground loop (when the app goes to the background).
    pub fn stop_foreground_sync(&self) {
        self.inner.stop_foreground_sync();
    }

    /// Open offers within `radius_km` of `position` (the device's live position, which never leaves
    /// the device), sorted by distance, from the cache only.
    pub async fn inbox(
        &self,
        position: GeoPoint,
        radius_km: f64,
        filter: InboxFilter,
    ) -> Result<Inbox, FriendCoreError> {
        self.run("inbox", |s| async move {
            let position = position.try_into()?;
            Ok(s.inbox(position, radius_km, filter.into()).await?.into())
        })
        .await
    }

    /// One cached offer, if it is still open.
    pub async fn offer(&self, job_id: String) -> Result<Option<Offer>, FriendCoreError> {
        self.run("offer", |s| async move {
            Ok(s.offer(parse_job_id(&job_id)?).await?.map(Into::into))
        })
        .await
    }

    /// Races to accept an open offer. Never queued: offline answers `AcceptResult.Offline`.
    pub async fn accept(&self, job_id: String) -> Result<AcceptResult, FriendCoreError> {
        self.run("accept", |s| async move {
            Ok(s.accept(parse_job_id(&job_id)?).await?.into())
        })
        .await
    }

    /// Your jobs with full details, from the cache, with pending actions shown.
    pub async fn my_jobs(&self) -> Result<Vec<MyJob>, FriendCoreError> {
        self.run("my_jobs", |s| async move {
            Ok(s.my_jobs().await?.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// One of your jobs, from the cache (`not_found` when it is not cached).
    pub async fn job(&self, job_id: String) -> Result<MyJob, FriendCoreError> {
        self.run("job", |s| async move {
            Ok(s.job(parse_job_id(&job_id)?).await?.into())
        })
        .await
    }

    /// Declines an open offer (queued; it leaves the inbox at once). Returns the outbox item id.
    pub async fn decline(
        &self,
        job_id: String,
        reason: DeclineReason,
    ) -> Result<i64, FriendCoreError> {
        self.run("decline", |s| async move {
            Ok(s.decline(parse_job_id(&job_id)?, reason.into()).await?)
        })
        .await
    }

    /// Gives an assigned job back before arriving (queued). Returns the outbox item id.
    pub async fn release(&self, job_id: String) -> Result<i64, FriendCoreError> {
        self.run("release", |s| async move {
            Ok(s.release(parse_job_id(&job_id)?).await?)
        })
        .await
    }

    /// Checks in on site (queued; works offline). Returns the outbox item id.
    pub async fn check_in(&self, job_id: String) -> Result<i64, FriendCoreError> {
        self.run("check_in", |s| async move {
            Ok(s.check_in(parse_job_id(&job_id)?).await?)
        })
        .await
    }

    /// Every outbox item with its outcome (pending, applied, or refused with the server's reason).
    pub async fn outbox(&self) -> Result<Vec<OutboxItem>, FriendCoreError> {
        self.run("outbox", |s| async move {
            Ok(s.outbox().await?.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// Delivers due outbox items now (a timer does this by itself). Returns how many were applied.
    pub async fn deliver_outbox(&self) -> Result<u32, FriendCoreError> {
        self.run("deliver_outbox", |s| async move {
            Ok(s.deliver_outbox().await?)
        })
        .await
    }

    /// The service catalog: fetched when online, the cached copy otherwise.
    pub async fn catalog(&self) -> Result<Catalog, FriendCoreError> {
        self.run("catalog", |s| async move { Ok(s.catalog().await?.into()) })
            .await
    }

    /// Your own profile: fetched when online, the cached copy otherwise.
    pub async fn profile(&self) -> Result<Me, FriendCoreError> {
        self.run("profile", |s| async move { Ok(s.profile().await?.into()) })
            .await
    }

    /// The job's price negotiation as this device knows it (pending local steps included).
    pub async fn negotiation(&self, job_id: String) -> Result<LocalNegotiation, FriendCoreError> {
        self.run("negotiation", |s| async move {
            Ok(s.negotiation(parse_job_id(&job_id)?).await?.into())
        })
        .await
    }

    /// Proposes a quote (first one, counter-proposal or amendment): validated by the shared rules,
    /// signed and queued. Returns the payload to show as a QR code to the customer's device.
    pub async fn propose(
        &self,
        job_id: String,
        items: Vec<LineItem>,
        reason: Option<String>,
    ) -> Result<String, FriendCoreError> {
        self.run("propose", |s| async move {
            let items = items.into_iter().map(Into::into).collect();
            Ok(s.propose(parse_job_id(&job_id)?, items, reason).await?)
        })
        .await
    }

    /// Accepts the customer's pending proposal `version` (queued); returns the signed payload.
    pub async fn accept_quote(
        &self,
        job_id: String,
        version: u32,
    ) -> Result<String, FriendCoreError> {
        self.run("accept_quote", |s| async move {
            Ok(s.accept_quote(parse_job_id(&job_id)?, version).await?)
        })
        .await
    }

    /// Rejects the customer's pending proposal `version` (queued). Returns the outbox item id.
    pub async fn reject_quote(&self, job_id: String, version: u32) -> Result<i64, FriendCoreError> {
        self.run("reject_quote", |s| async move {
            Ok(s.reject_quote(parse_job_id(&job_id)?, version).await?)
        })
        .await
    }

    /// Imports a payload from the customer's device, verified offline: a tampered, foreign or
    /// superseded payload fails with `invalid_consent` and nothing is stored.
    pub async fn import_consent(
        &self,
        job_id: String,
        payload: String,
    ) -> Result<LocalNegotiation, FriendCoreError> {
        self.run("import_consent", |s| async move {
            Ok(s.import_consent(parse_job_id(&job_id)?, &payload)
                .await?
                .into())
        })
        .await
    }

    /// Fee and payout for any total before proposing it (computed locally).
    pub fn settlement_preview(
        &self,
        total: Money,
        payment: PaymentMethod,
    ) -> Result<Settlement, FriendCoreError> {
        Ok(self
            .inner
            .settlement_preview(total.into(), payment.into())?
            .into())
    }

    /// Completes the job at the agreed total (queued; works offline). Returns what is charged, the
    /// platform fee and the payout.
    pub async fn complete(
        &self,
        job_id: String,
        payment: PaymentMethod,
    ) -> Result<Settlement, FriendCoreError> {
        self.run("complete", |s| async move {
            Ok(s.complete(parse_job_id(&job_id)?, payment.into())
                .await?
                .into())
        })
        .await
    }

    /// Hands the job to the company's field service (queued). Returns the outbox item id.
    pub async fn escalate(
        &self,
        job_id: String,
        note: Option<String>,
    ) -> Result<i64, FriendCoreError> {
        self.run("escalate", |s| async move {
            Ok(s.escalate(parse_job_id(&job_id)?, note).await?)
        })
        .await
    }

    /// Checks out without success, e.g. the customer is absent (queued). Returns the outbox item
    /// id.
    pub async fn check_out_unsuccessful(
        &self,
        job_id: String,
        reason: UnsuccessfulReason,
        note: Option<String>,
    ) -> Result<i64, FriendCoreError> {
        self.run("check_out_unsuccessful", |s| async move {
            Ok(
                s.check_out_unsuccessful(parse_job_id(&job_id)?, reason.into(), note)
                    .await?,
            )
        })
        .await
    }

    /// The current sync status (in memory).
    pub fn sync_status(&self) -> SyncStatus {
        self.inner.sync_status().into()
    }

    /// Server time now (device clock corrected by the offset measured at the last sync), ms since
    /// the epoch: use it for offer countdowns.
    pub fn server_now_ms(&self) -> i64 {
        self.inner.server_now_ms()
    }

    /// Calls `listener` whenever the inbox changed, until the returned handle is cancelled.
    pub fn subscribe_inbox(&self, listener: Arc<dyn InboxListener>) -> Arc<Subscription> {
        Subscription::new(self.inner.subscribe_inbox(Arc::new(Forward(listener))))
    }

    /// Calls `listener` whenever one of your jobs changed, until the handle is cancelled.
    pub fn subscribe_jobs(&self, listener: Arc<dyn JobListener>) -> Arc<Subscription> {
        Subscription::new(self.inner.subscribe_jobs(Arc::new(Forward(listener))))
    }

    /// Calls `listener` whenever the sync status changed, until the handle is cancelled.
    pub fn subscribe_sync_status(
        &self,
        listener: Arc<dyn SyncStatusListener>,
    ) -> Arc<Subscription> {
        Subscription::new(
            self.inner
                .subscribe_sync_status(Arc::new(Forward(listener))),
        )
    }

    /// Stops background work; later network calls fail with `session_closed`. Pending outbox items
    /// stay queued for the next session.
    pub fn shutdown(&self) {
        self.inner.shutdown();
        tracing::info!("friend session shut down");
    }
}
