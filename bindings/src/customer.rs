//! [`CustomerSession`]: the object a customer's app holds for one account, a thin wrapper over
//! `friend_core::CustomerSession` on the same runtime, errors, records and listeners as
//! [`crate::FriendSession`]. Book (offline too, never twice), follow the job live, negotiate the
//! price, cancel, rate.

use crate::config::SessionConfig;
use crate::error::FriendCoreError;
use crate::friend::OutboxItem;
use crate::listeners::{Forward, JobListener, Subscription, SyncStatusListener};
use crate::negotiation::LocalNegotiation;
use crate::rt;
use crate::secrets::{ForeignSecrets, SecretsProvider};
use crate::status::{SyncReport, SyncStatus};
use crate::types::{BookRequest, Catalog, JobDetails, LineItem, Me, Party, parse_job_id};
use std::future::Future;
use std::sync::Arc;

type CoreSession = friend_core::CustomerSession;

/// Where a customer's job stands, in the words the app shows.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum LiveStatus {
    /// Booked on this device, not yet received by the server (offline).
    Queued,
    /// Broadcast; waiting for a Friend.
    Searching,
    /// A Friend accepted and is on the way.
    Accepted {
        /// The Friend's name.
        friend: String,
    },
    /// The Friend is on site.
    OnSite,
    /// A quote waits for an answer.
    QuotePending {
        /// Who proposed it.
        by: Party,
    },
    /// The price is agreed.
    Agreed,
    /// Done (and paid).
    Completed,
    /// Cancelled.
    Cancelled,
    /// Nobody accepted in time.
    Expired,
    /// Handed to the field service.
    Escalated,
    /// The Friend checked out without success.
    Unsuccessful,
}

impl From<friend_core::LiveStatus> for LiveStatus {
    fn from(s: friend_core::LiveStatus) -> LiveStatus {
        use friend_core::LiveStatus as L;
        match s {
            L::Queued => LiveStatus::Queued,
            L::Searching => LiveStatus::Searching,
            L::Accepted { friend } => LiveStatus::Accepted { friend },
            L::OnSite => LiveStatus::OnSite,
            L::QuotePending { by } => LiveStatus::QuotePending { by: by.into() },
            L::Agreed => LiveStatus::Agreed,
            L::Completed => LiveStatus::Completed,
            L::Cancelled => LiveStatus::Cancelled,
            L::Expired => LiveStatus::Expired,
            L::Escalated => LiveStatus::Escalated,
            L::Unsuccessful => LiveStatus::Unsuccessful,
        }
    }
}

/// A customer's job: the server's details once known, the live status, and pending actions.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CustomerJob {
    /// The job id (the local id while the booking is queued; see `CustomerSession.booking`).
    pub id: String,
    /// Where it stands.
    pub status: LiveStatus,
    /// The server's details (none while the booking is queued).
    pub details: Option<JobDetails>,
    /// The negotiation as this device knows it.
    pub negotiation: LocalNegotiation,
    /// Kinds of the outbox items not yet acknowledged for this job (`book`, `cancel`, …).
    pub pending_actions: Vec<String>,
}

impl From<friend_core::CustomerJob> for CustomerJob {
    fn from(j: friend_core::CustomerJob) -> CustomerJob {
        CustomerJob {
            id: j.id.to_string(),
            status: j.status.into(),
            details: j.details.map(Into::into),
            negotiation: j.negotiation.into(),
            pending_actions: j
                .pending_actions
                .into_iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
        }
    }
}

/// One customer account on this device: offline cache, sync, booking, live status, negotiation,
/// cancel and rating.
///
/// Open it once per account and keep it while the user is signed in. `close()` (Kotlin) or
/// releasing the last reference (Swift) stops background work, as does `shutdown()`. Every async
/// call may be cancelled: durable state is written before a request leaves.
#[derive(uniffi::Object)]
pub struct CustomerSession {
    inner: Arc<CoreSession>,
}

impl CustomerSession {
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
impl CustomerSession {
    /// Opens the account database at `config.db_path` (creating it), checks the data key from
    /// `secrets` against it and starts the outbox timer.
    #[uniffi::constructor]
    pub async fn open(
        config: SessionConfig,
        secrets: Arc<dyn SecretsProvider>,
    ) -> Result<Arc<CustomerSession>, FriendCoreError> {
        rt::run("customer_open", async move {
            let config = friend_core::SessionConfig::try_from(config)?;
            let inner = CoreSession::open(config, Arc::new(ForeignSecrets(secrets))).await?;
            tracing::info!("customer session opened");
            Ok(Arc::new(CustomerSession {
                inner: Arc::new(inner),
            }))
        })
        .await
    }

    /// Delivers the outbox (queued bookings included) and pulls every page of changes.
    pub async fn sync_once(&self) -> Result<SyncReport, FriendCoreError> {
        self.run("customer_sync_once", |s| async move {
            Ok(s.sync_once().await?.into())
        })
        .await
    }

    /// A platform push woke the app: one batched round (deliver, then pull). The payload may be
    /// empty.
    pub async fn on_push(&self, payload: String) -> Result<SyncReport, FriendCoreError> {
        self.run("customer_on_push", |s| async move {
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

    /// The service catalog: fetched when online, the cached copy otherwise.
    pub async fn catalog(&self) -> Result<Catalog, FriendCoreError> {
        self.run("customer_catalog", |s| async move {
            Ok(s.catalog().await?.into())
        })
        .await
    }

    /// Your own profile: fetched when online, the cached copy otherwise.
    pub async fn profile(&self) -> Result<Me, FriendCoreError> {
        self.run("customer_profile", |s| async move {
            Ok(s.profile().await?.into())
        })
        .await
    }

    /// Books a job: validated now, queued, sent when online. Returns the booking's local id; the
    /// same booking again within ten minutes (a double tap, a retry) returns the first one. Look up
    /// the server's id with `booking`.
    pub async fn book(&self, request: BookRequest) -> Result<String, FriendCoreError> {
        self.run("book", |s| async move {
            Ok(s.book(request.try_into()?).await?.to_string())
        })
        .await
    }

    /// The server's job id for a booking's local id, once the server has it (none while queued).
    /// A booking the server refused fails with `refused`.
    pub async fn booking(&self, local_id: String) -> Result<Option<String>, FriendCoreError> {
        self.run("booking", |s| async move {
            Ok(s.booking(parse_job_id(&local_id)?)
                .await?
                .map(|id| id.to_string()))
        })
        .await
    }

    /// Your jobs with live status, from the cache; queued bookings first.
    pub async fn my_jobs(&self) -> Result<Vec<CustomerJob>, FriendCoreError> {
        self.run("customer_my_jobs", |s| async move {
            Ok(s.my_jobs().await?.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// One job by its server id, from the cache (`not_found` when it is not cached).
    pub async fn job(&self, job_id: String) -> Result<CustomerJob, FriendCoreError> {
        self.run("customer_job", |s| async move {
            Ok(s.job(parse_job_id(&job_id)?).await?.into())
        })
        .await
    }

    /// Cancels a job before the Friend is on site (queued). Returns the outbox item id.
    pub async fn cancel(&self, job_id: String) -> Result<i64, FriendCoreError> {
        self.run("cancel", |s| async move {
            Ok(s.cancel(parse_job_id(&job_id)?).await?)
        })
        .await
    }

    /// Rates a completed job, 1–5 stars, once (queued). Returns the outbox item id.
    pub async fn rate(
        &self,
        job_id: String,
        stars: u8,
        comment: Option<String>,
    ) -> Result<i64, FriendCoreError> {
        self.run("rate", |s| async move {
            Ok(s.rate(parse_job_id(&job_id)?, stars, comment).await?)
        })
        .await
    }

    /// The job's price negotiation as this device knows it (pending local steps included).
    pub async fn negotiation(&self, job_id: String) -> Result<LocalNegotiation, FriendCoreError> {
        self.run("customer_negotiation", |s| async move {
            Ok(s.negotiation(parse_job_id(&job_id)?).await?.into())
        })
        .await
    }

    /// Accepts the Friend's pending proposal `version` (signed, queued); returns the payload to
    /// show to the Friend's device as a QR code when it is offline.
    pub async fn accept_quote(
        &self,
        job_id: String,
        version: u32,
    ) -> Result<String, FriendCoreError> {
        self.run("customer_accept_quote", |s| async move {
            Ok(s.accept_quote(parse_job_id(&job_id)?, version).await?)
        })
        .await
    }

    /// Rejects the Friend's pending proposal `version` (queued). Returns the outbox item id.
    pub async fn reject_quote(&self, job_id: String, version: u32) -> Result<i64, FriendCoreError> {
        self.run("customer_reject_quote", |s| async move {
            Ok(s.reject_quote(parse_job_id(&job_id)?, version).await?)
        })
        .await
    }

    /// Counter-proposes a quote: validated, signed, queued; returns the payload.
    pub async fn counter(
        &self,
        job_id: String,
        items: Vec<LineItem>,
        reason: Option<String>,
    ) -> Result<String, FriendCoreError> {
        self.run("counter", |s| async move {
            let items = items.into_iter().map(Into::into).collect();
            Ok(s.counter(parse_job_id(&job_id)?, items, reason).await?)
        })
        .await
    }

    /// Imports a payload from the Friend's device, verified offline: a tampered, foreign or
    /// superseded payload fails with `invalid_consent` and nothing is stored.
    pub async fn import_consent(
        &self,
        job_id: String,
        payload: String,
    ) -> Result<LocalNegotiation, FriendCoreError> {
        self.run("customer_import_consent", |s| async move {
            Ok(s.import_consent(parse_job_id(&job_id)?, &payload)
                .await?
                .into())
        })
        .await
    }

    /// Every outbox item with its outcome (pending, applied, or refused with the server's reason).
    pub async fn outbox(&self) -> Result<Vec<OutboxItem>, FriendCoreError> {
        self.run("customer_outbox", |s| async move {
            Ok(s.outbox().await?.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// Delivers due outbox items now (a timer does this by itself). Returns how many were applied.
    pub async fn deliver_outbox(&self) -> Result<u32, FriendCoreError> {
        self.run("customer_deliver_outbox", |s| async move {
            Ok(s.deliver_outbox().await?)
        })
        .await
    }

    /// The current sync status (in memory).
    pub fn sync_status(&self) -> SyncStatus {
        self.inner.sync_status().into()
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
        tracing::info!("customer session shut down");
    }
}
