//! [`CustomerSession`]: the object a customer's app holds for one account, a thin wrapper over
//! `friend_core::CustomerSession` with the calls only customers make — book (offline too, never
//! twice), follow the job live, counter-propose, cancel, rate — on the same runtime, errors, records
//! and listeners as [`crate::FriendSession`]. The calls both roles share are its [`Session`]'s.

use crate::config::SessionConfig;
use crate::error::FriendCoreError;
use crate::negotiation::LocalNegotiation;
use crate::secrets::SecretsProvider;
use crate::session::{Account, Session};
use crate::types::{
    Appointment, BookRequest, CancelPreview, JobDetails, LineItem, Party, parse_job_id,
};
use std::sync::Arc;
use std::time::SystemTime;

type CoreSession = friend_core::CustomerSession;

/// Where a customer's job stands, in the words the app shows.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum LiveStatus {
    /// Booked on this device, not yet received by the server (offline).
    Queued,
    /// Broadcast; waiting for a Friend.
    Searching,
    /// Offered again after a Friend held it (they gave it back, or you declined a moved visit):
    /// "looking for another Friend". How often: `details.visit.reopened`.
    SearchingAgain,
    /// A Friend accepted; `visit` is the agreed visit once they recorded it (one with `moved` set
    /// may be declined: `declineAppointment`).
    Accepted {
        /// The Friend's name.
        friend: String,
        /// The agreed visit, if recorded yet.
        visit: Option<Appointment>,
    },
    /// The Friend is on the way, arriving about `eta` (their latest estimate).
    OnTheWay {
        /// The Friend's name.
        friend: String,
        /// Estimated arrival (server clock).
        eta: SystemTime,
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
    /// Cancelled. A late cancellation's compensation fee is in `details.visit.compensation`.
    Cancelled,
    /// Nobody accepted in time.
    Expired,
    /// Handed to the field service.
    Escalated,
    /// The Friend checked out without success. A no-show's compensation fee is in
    /// `details.visit.compensation`.
    Unsuccessful,
}

impl From<friend_core::LiveStatus> for LiveStatus {
    fn from(s: friend_core::LiveStatus) -> LiveStatus {
        use friend_core::LiveStatus as L;
        match s {
            L::Queued => LiveStatus::Queued,
            L::Searching => LiveStatus::Searching,
            L::SearchingAgain => LiveStatus::SearchingAgain,
            L::Accepted { friend, visit } => LiveStatus::Accepted {
                friend,
                visit: visit.map(Into::into),
            },
            L::OnTheWay { friend, eta } => LiveStatus::OnTheWay {
                friend,
                eta: eta.into(),
            },
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

/// One customer account on this device: booking, live status, counter-proposals, cancel and
/// rating; sync, outbox, status and the other calls both roles share are its `session()`'s.
///
/// Open it once per account and keep it while the user is signed in. It owns the account:
/// `close()` (Kotlin) or releasing the last reference (Swift) stops background work and releases
/// the database, and a `Session` still held from `session()` then fails with `session_closed`.
/// `session().shutdown()` stops background work without closing. Every async call may be
/// cancelled: durable state is written before a request leaves.
#[derive(uniffi::Object)]
pub struct CustomerSession {
    account: Account<CoreSession>,
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
        let account = Account::open(
            "CustomerSession.open",
            "customer",
            config,
            secrets,
            CoreSession::open,
        )
        .await?;
        Ok(Arc::new(CustomerSession { account }))
    }

    /// The calls both roles share: sync, foreground loop, catalog, profile, the answers in the
    /// negotiation, outbox, status, job and status listeners, shutdown. The same session each time;
    /// it refers to this object's account and lives no longer than it (see `Session`).
    pub fn session(&self) -> Arc<Session> {
        self.account.session()
    }

    /// Books a job: validated now, queued, sent when online. Returns the booking's local id; the
    /// same booking again within ten minutes (a double tap, a retry) returns the first one. Look up
    /// the server's id with `booking`.
    pub async fn book(&self, request: BookRequest) -> Result<String, FriendCoreError> {
        self.account
            .run("CustomerSession.book", |s| async move {
                Ok(s.book(request.try_into()?).await?.to_string())
            })
            .await
    }

    /// The server's job id for a booking's local id, once the server has it (none while queued).
    /// A booking the server refused fails with `refused`.
    pub async fn booking(&self, local_id: String) -> Result<Option<String>, FriendCoreError> {
        self.account
            .run("CustomerSession.booking", |s| async move {
                Ok(s.booking(parse_job_id(&local_id)?)
                    .await?
                    .map(|id| id.to_string()))
            })
            .await
    }

    /// Your jobs with live status, from the cache; queued bookings first.
    pub async fn my_jobs(&self) -> Result<Vec<CustomerJob>, FriendCoreError> {
        self.account
            .run("CustomerSession.my_jobs", |s| async move {
                Ok(s.my_jobs().await?.into_iter().map(Into::into).collect())
            })
            .await
    }

    /// One job by its server id, from the cache (`not_found` when it is not cached).
    pub async fn job(&self, job_id: String) -> Result<CustomerJob, FriendCoreError> {
        self.account
            .run("CustomerSession.job", |s| async move {
                Ok(s.job(parse_job_id(&job_id)?).await?.into())
            })
            .await
    }

    /// Cancels a job before the Friend is on site (queued). Returns the outbox item id. Once a
    /// Friend holds the job, a late cancellation owes the compensation fee: show `cancelPreview`
    /// first.
    pub async fn cancel(&self, job_id: String) -> Result<i64, FriendCoreError> {
        self.account
            .run("CustomerSession.cancel", |s| async move {
                Ok(s.cancel(parse_job_id(&job_id)?).await?)
            })
            .await
    }

    /// What cancelling the job now would cost, computed on the device (offline too) by the shared
    /// rule from the cached job, the cached catalog's policy and the server's clock: nothing while
    /// the job is open; once a Friend holds it, the fee for a now-job, and for a slot job less
    /// than 24 h before the visit (`freeUntil` says until when it is free). Changes nothing. A
    /// job that can no longer be cancelled is `invalid_input`.
    pub async fn cancel_preview(&self, job_id: String) -> Result<CancelPreview, FriendCoreError> {
        self.account
            .run("CustomerSession.cancel_preview", |s| async move {
                Ok(s.cancel_preview(parse_job_id(&job_id)?).await?.into())
            })
            .await
    }

    /// Declines the visit the Friend moved away from the booked slot (queued; works offline): the
    /// Friend is released without penalty and the job is offered again (its status shows
    /// `SearchingAgain` at once). Only a moved visit can be declined (`invalid_input` otherwise).
    /// Returns the outbox item id.
    pub async fn decline_appointment(&self, job_id: String) -> Result<i64, FriendCoreError> {
        self.account
            .run("CustomerSession.decline_appointment", |s| async move {
                Ok(s.decline_appointment(parse_job_id(&job_id)?).await?)
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
        self.account
            .run("CustomerSession.rate", |s| async move {
                Ok(s.rate(parse_job_id(&job_id)?, stars, comment).await?)
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
        self.account
            .run("CustomerSession.counter", |s| async move {
                let items = items.into_iter().map(Into::into).collect();
                Ok(s.counter(parse_job_id(&job_id)?, items, reason).await?)
            })
            .await
    }
}
