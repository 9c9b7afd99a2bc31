//! [`FriendSession`]: the object a Friend's app holds for one account, a thin wrapper over
//! `friend_core::FriendSession` with the calls only Friends make, and the records they return. The
//! calls both roles share are its [`Session`]'s (`session()`). Every method that touches the
//! network or the disk is async and runs on the owned runtime (`crate::rt`); the few synchronous
//! ones read in-memory state.

use crate::config::SessionConfig;
use crate::error::FriendCoreError;
use crate::listeners::{Forward, InboxListener, Subscription};
use crate::secrets::SecretsProvider;
use crate::session::{Account, Session};
use crate::types::{
    Category, DeclineReason, GeoPoint, JobDetails, LineItem, Money, NotEligibleReason, Offer,
    PaymentMethod, ReleaseReason, Settlement, UnsuccessfulReason, parse_job_id, utc_time,
};
use std::borrow::Borrow;
use std::sync::Arc;
use std::time::SystemTime;

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

/// An "on my way" whose estimate the core computed from the device's position (never sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct QueuedEta {
    /// The outbox item.
    pub outbox_id: i64,
    /// The estimated arrival that was queued (server clock).
    pub eta: SystemTime,
}

impl From<friend_core::QueuedEta> for QueuedEta {
    fn from(q: friend_core::QueuedEta) -> QueuedEta {
        QueuedEta {
            outbox_id: q.outbox_id,
            eta: q.eta.into(),
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

/// One Friend account on this device: the inbox, the accept race, the on-site steps and the
/// quote; sync, outbox, status and the other calls both roles share are its `session()`'s.
///
/// Open it once per account and keep it while the user is signed in. Works fully offline after the
/// first sync. It owns the account: `close()` (Kotlin) or releasing the last reference (Swift)
/// stops background work and releases the database, and a `Session` still held from `session()`
/// then fails with `session_closed`. `session().shutdown()` stops background work without closing.
/// Every async call may be cancelled: durable state is written before a request leaves, so a
/// cancelled call never leaves the session inconsistent.
#[derive(uniffi::Object)]
pub struct FriendSession {
    account: Account<CoreSession>,
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
        let account = Account::open(
            "FriendSession.open",
            "friend",
            config,
            secrets,
            CoreSession::open,
        )
        .await?;
        Ok(Arc::new(FriendSession { account }))
    }

    /// The calls both roles share: sync, foreground loop, catalog, profile, the answers in the
    /// negotiation, outbox, status, job and status listeners, shutdown. The same session each time;
    /// it refers to this object's account and lives no longer than it (see `Session`).
    pub fn session(&self) -> Arc<Session> {
        self.account.session()
    }

    /// Open offers within `radius_km` of `position` (the device's live position, which never leaves
    /// the device), sorted by distance, from the cache only.
    pub async fn inbox(
        &self,
        position: GeoPoint,
        radius_km: f64,
        filter: InboxFilter,
    ) -> Result<Inbox, FriendCoreError> {
        self.account
            .run("FriendSession.inbox", |s| async move {
                let position = position.try_into()?;
                Ok(s.inbox(position, radius_km, filter.into()).await?.into())
            })
            .await
    }

    /// One cached offer, if it is still open.
    pub async fn offer(&self, job_id: String) -> Result<Option<Offer>, FriendCoreError> {
        self.account
            .run("FriendSession.offer", |s| async move {
                Ok(s.offer(parse_job_id(&job_id)?).await?.map(Into::into))
            })
            .await
    }

    /// Races to accept an open offer. Never queued: offline answers `AcceptResult.Offline`.
    pub async fn accept(&self, job_id: String) -> Result<AcceptResult, FriendCoreError> {
        self.account
            .run("FriendSession.accept", |s| async move {
                Ok(s.accept(parse_job_id(&job_id)?).await?.into())
            })
            .await
    }

    /// Your jobs with full details, from the cache, with pending actions shown.
    pub async fn my_jobs(&self) -> Result<Vec<MyJob>, FriendCoreError> {
        self.account
            .run("FriendSession.my_jobs", |s| async move {
                Ok(s.my_jobs().await?.into_iter().map(Into::into).collect())
            })
            .await
    }

    /// One of your jobs, from the cache (`not_found` when it is not cached).
    pub async fn job(&self, job_id: String) -> Result<MyJob, FriendCoreError> {
        self.account
            .run("FriendSession.job", |s| async move {
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
        self.account
            .run("FriendSession.decline", |s| async move {
                Ok(s.decline(parse_job_id(&job_id)?, reason.into()).await?)
            })
            .await
    }

    /// Gives an assigned job back before arriving, saying why (queued; it leaves your jobs at
    /// once). The job is offered again to the other Friends and the customer sees "looking for
    /// another Friend". `note` is for the platform, never shown to the customer. Returns the
    /// outbox item id.
    #[uniffi::method(default(reason = None, note = None))]
    pub async fn release(
        &self,
        job_id: String,
        reason: Option<ReleaseReason>,
        note: Option<String>,
    ) -> Result<i64, FriendCoreError> {
        self.account
            .run("FriendSession.release", |s| async move {
                Ok(
                    s.release_with_reason(parse_job_id(&job_id)?, reason.map(Into::into), note)
                        .await?,
                )
            })
            .await
    }

    /// Records the agreed visit (queued; works offline): a now-job's arrival window (at most 4 h,
    /// ending within 12 h), or a slot job's slot confirmed or moved by agreement (at most 12 h;
    /// the customer may decline a moved one). Checked before queueing (`invalid_input`). Returns
    /// the outbox item id.
    pub async fn set_appointment(
        &self,
        job_id: String,
        start: SystemTime,
        end: SystemTime,
    ) -> Result<i64, FriendCoreError> {
        self.account
            .run("FriendSession.set_appointment", |s| async move {
                let (start, end) = (utc_time("start", start)?, utc_time("end", end)?);
                Ok(s.set_appointment(parse_job_id(&job_id)?, start, end)
                    .await?)
            })
            .await
    }

    /// "On my way", arriving about `eta` (server clock; not in the past, at most 6 h ahead;
    /// queued, works offline). The customer's status becomes "on the way" and they are pushed. A
    /// newer estimate replaces an older one still waiting in the outbox. Returns the outbox item
    /// id.
    pub async fn on_my_way(&self, job_id: String, eta: SystemTime) -> Result<i64, FriendCoreError> {
        self.account
            .run("FriendSession.on_my_way", |s| async move {
                Ok(s.on_my_way(parse_job_id(&job_id)?, utc_time("eta", eta)?)
                    .await?)
            })
            .await
    }

    /// "On my way", with the arrival estimated on the device from `position` (its current
    /// position) in a straight line to the job at the documented travel speed. The position is
    /// used for this computation only — never stored or sent; only the estimate is queued, as
    /// with `onMyWay`. Returns the estimate and the outbox item.
    pub async fn on_my_way_from(
        &self,
        job_id: String,
        position: GeoPoint,
    ) -> Result<QueuedEta, FriendCoreError> {
        self.account
            .run("FriendSession.on_my_way_from", |s| async move {
                let position = position.try_into()?;
                Ok(s.on_my_way_from(parse_job_id(&job_id)?, position)
                    .await?
                    .into())
            })
            .await
    }

    /// Checks in on site (queued; works offline). Returns the outbox item id.
    pub async fn check_in(&self, job_id: String) -> Result<i64, FriendCoreError> {
        self.account
            .run("FriendSession.check_in", |s| async move {
                Ok(s.check_in(parse_job_id(&job_id)?).await?)
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
        self.account
            .run("FriendSession.propose", |s| async move {
                let items = items.into_iter().map(Into::into).collect();
                Ok(s.propose(parse_job_id(&job_id)?, items, reason).await?)
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
            .account
            .core()
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
        self.account
            .run("FriendSession.complete", |s| async move {
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
        self.account
            .run("FriendSession.escalate", |s| async move {
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
        self.account
            .run("FriendSession.check_out_unsuccessful", |s| async move {
                Ok(
                    s.check_out_unsuccessful(parse_job_id(&job_id)?, reason.into(), note)
                        .await?,
                )
            })
            .await
    }

    /// Calls `listener` whenever the inbox changed, until the returned handle is cancelled.
    pub fn subscribe_inbox(&self, listener: Arc<dyn InboxListener>) -> Arc<Subscription> {
        Subscription::new(
            self.account
                .core()
                .subscribe_inbox(Arc::new(Forward(listener))),
        )
    }
}
