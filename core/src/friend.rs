//! [`FriendSession`]: the long-lived object a Friend's app holds for one account.

use crate::error::{CoreError, CoreResult};
use crate::inbox::{Inbox, InboxFilter};
use crate::listeners::{InboxListener, Subscription};
use crate::outbox::{Action, ActionKind, echo};
use crate::secrets::SecretsProvider;
use crate::session::Session;
use crate::session::SessionConfig;
use crate::store::{cache, outbox as rows};
use friend_protocol::lifecycle::{self, Actor, Event, JobFacts};
use friend_protocol::quote::{LineItem, PaymentMethod, Settlement};
use friend_protocol::{
    DeclineReason, GeoPoint, JobDetails, JobId, Ledger, Money, Offer, UnsuccessfulReason,
};
use std::collections::HashSet;
use std::sync::Arc;

/// How an accept ended (SPEC §4).
#[derive(Debug, Clone, PartialEq)]
pub enum AcceptResult {
    /// The caller won; the job with full details is now in their jobs.
    Won(Box<JobDetails>),
    /// Another Friend was first.
    Lost,
    /// The job is gone.
    Gone(GoneReason),
    /// The caller may not take it.
    NotEligible(friend_protocol::NotEligibleReason),
    /// The backend could not be reached. Never queued: the Friend must not believe they hold a job
    /// they do not. If the request may have arrived, the outcome is looked up at the next sync and
    /// reported through the job and inbox listeners.
    Offline,
}

/// Why a job is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// The customer cancelled.
    Cancelled,
    /// Nobody accepted in time.
    Expired,
}

/// A cached job of the Friend with what is still waiting in the outbox for it.
#[derive(Debug, Clone, PartialEq)]
pub struct MyJob {
    /// Full details as last known, with pending local actions already shown (e.g. a queued
    /// check-in shows the job on site).
    pub details: JobDetails,
    /// Kinds of the outbox items not yet acknowledged for this job, oldest first.
    pub pending_actions: Vec<ActionKind>,
}

/// One Friend account on this device: offline cache, sync, inbox, accept and outbox.
///
/// Works fully offline after the first sync. The calls both roles share (sync, outbox, negotiation,
/// status, listeners) are [`Session`]'s, which it dereferences to. Drop it or call
/// [`Session::shutdown`] to stop background work. All methods are safe to abandon midway: durable state is written before any
/// request leaves.
pub struct FriendSession {
    session: Session,
}

impl std::ops::Deref for FriendSession {
    type Target = Session;
    /// The shared session: a Friend is a session plus the calls only Friends make.
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl FriendSession {
    /// Opens the account database at `config.db_path` (creating it), checks the data key, and starts
    /// the outbox timer. Accepts whose outcome was lost are looked up at the next sync. A malformed
    /// token is [`CoreError::InvalidToken`] here; a customer's token is [`CoreError::WrongRole`]
    /// from the first request on, and nothing of that account is synced or cached.
    pub async fn open(
        config: SessionConfig,
        secrets: Arc<dyn SecretsProvider>,
    ) -> CoreResult<FriendSession> {
        let session = Session::open(config, secrets, friend_protocol::Role::Friend).await?;
        Ok(FriendSession { session })
    }

    /// Open offers near `position` within `radius_km`, sorted by distance, from the cache only.
    pub async fn inbox(
        &self,
        position: GeoPoint,
        radius_km: f64,
        filter: InboxFilter,
    ) -> CoreResult<Inbox> {
        // Offers with a queued decline are hidden at once.
        let cipher = self.session.engine.cipher.clone();
        let hidden: HashSet<JobId> = self
            .engine
            .store
            .read_async(move |c| {
                Ok(rows::pending(c, &cipher)?
                    .into_iter()
                    .filter(|i| i.kind == ActionKind::Decline)
                    .map(|i| i.job_id)
                    .collect())
            })
            .await?;
        let items = self
            .engine
            .inbox_items(position, radius_km, filter, hidden)
            .await?;
        Ok(Inbox {
            items,
            cache_age_secs: self.cache_age_secs(),
        })
    }

    /// One cached offer.
    pub async fn offer(&self, job: JobId) -> CoreResult<Option<Offer>> {
        self.session
            .engine
            .store
            .read_async(move |c| cache::offer(c, job))
            .await
    }

    fn cache_age_secs(&self) -> Option<i64> {
        self.session
            .engine
            .status()
            .last_success_ms
            .map(|t| (crate::engine::now_ms() - t) / 1000)
    }

    /// Races to accept an open offer (SPEC §4). Never queued: offline answers [`AcceptResult::Offline`].
    pub async fn accept(&self, job: JobId) -> CoreResult<AcceptResult> {
        self.session.engine.accept(job).await
    }

    /// The Friend's jobs with full details, from the cache, with pending actions shown.
    pub async fn my_jobs(&self) -> CoreResult<Vec<MyJob>> {
        let cipher = self.session.engine.cipher.clone();
        self.session
            .engine
            .store
            .read_async(move |c| {
                let pending = rows::pending(c, &cipher)?;
                let mut out = Vec::new();
                for details in cache::jobs(c, &cipher)? {
                    let mine: Vec<_> = pending.iter().filter(|i| i.job_id == details.id).collect();
                    if let Some(job) = with_local_echo(details, &mine) {
                        out.push(job);
                    }
                }
                Ok(out)
            })
            .await
    }

    /// One of the Friend's jobs, from the cache.
    pub async fn job(&self, job: JobId) -> CoreResult<MyJob> {
        let cipher = self.session.engine.cipher.clone();
        self.session
            .engine
            .store
            .read_async(move |c| {
                let details = cache::job(c, &cipher, job)?
                    .ok_or_else(|| CoreError::NotCached(job.to_string()))?;
                let pending = rows::pending_for_job(c, &cipher, job)?;
                with_local_echo(details, &pending.iter().collect::<Vec<_>>())
                    .ok_or_else(|| CoreError::NotCached(format!("{job} is being released")))
            })
            .await
    }

    /// Declines an open offer with a reason (queued; it leaves the inbox at once).
    pub async fn decline(&self, job: JobId, reason: DeclineReason) -> CoreResult<i64> {
        if reason == DeclineReason::Unknown {
            return Err(CoreError::InvalidInput("decline reason".into()));
        }
        self.session
            .engine
            .enqueue(job, Action::Decline { reason })
            .await
    }

    /// Gives a job back before arriving (queued).
    pub async fn release(&self, job: JobId) -> CoreResult<i64> {
        self.check(job, Event::Release).await?;
        self.session.engine.enqueue(job, Action::Release).await
    }

    /// Checks in on site (queued; works offline).
    pub async fn check_in(&self, job: JobId) -> CoreResult<i64> {
        self.check(job, Event::CheckIn).await?;
        self.session.engine.enqueue(job, Action::CheckIn).await
    }

    /// Asks the shared state machine whether this Friend may apply `event` to the job as this
    /// device shows it (queued actions included), before anything is queued. The server decides
    /// again; this refuses what cannot succeed while offline.
    async fn check(&self, job: JobId, event: Event) -> CoreResult<()> {
        let details = self.job(job).await?.details;
        // The device's jobs are its own: the holder named in them is this Friend.
        let Some(me) = details.friend.as_ref().map(|f| f.id) else {
            return Err(CoreError::InvalidInput(format!(
                "cannot {} a job that is {}",
                event.as_str(),
                details.state.as_str()
            )));
        };
        let facts = JobFacts::of(&details);
        lifecycle::transition(&facts, &Actor::Friend(me), event)
            .map(|_| ())
            .map_err(|refusal| CoreError::InvalidInput(refusal.to_string()))
    }

    /// Proposes a quote (first one, counter-proposal or amendment): validated by the shared rules,
    /// signed and queued. Returns the payload to show as a QR code to the customer's device.
    pub async fn propose(
        &self,
        job: JobId,
        items: Vec<LineItem>,
        reason: Option<String>,
    ) -> CoreResult<String> {
        self.session.propose(job, items, reason).await
    }

    /// Fee and payout for any total before proposing it.
    pub fn settlement_preview(
        &self,
        total: Money,
        payment: PaymentMethod,
    ) -> CoreResult<Settlement> {
        crate::negotiation::settlement(total, payment)
    }

    /// Completes the job at the agreed total (queued; works offline). Returns what is charged, the
    /// platform fee and the payout.
    pub async fn complete(&self, job: JobId, payment: PaymentMethod) -> CoreResult<Settlement> {
        self.session.engine.complete(job, payment).await
    }

    /// Hands the job to the company's field service (queued).
    pub async fn escalate(&self, job: JobId, note: Option<String>) -> CoreResult<i64> {
        self.check(job, Event::Escalate).await?;
        self.session
            .engine
            .enqueue(job, Action::Escalate { note })
            .await
    }

    /// Checks out without success, e.g. the customer is absent (queued).
    pub async fn check_out_unsuccessful(
        &self,
        job: JobId,
        reason: UnsuccessfulReason,
        note: Option<String>,
    ) -> CoreResult<i64> {
        if reason == UnsuccessfulReason::Unknown {
            return Err(CoreError::InvalidInput("unsuccessful reason".into()));
        }
        self.check(job, Event::CheckOutUnsuccessful).await?;
        self.session
            .engine
            .enqueue(job, Action::Unsuccessful { reason, note })
            .await
    }

    /// The Friend's commission ledger (online).
    pub async fn ledger(&self) -> CoreResult<Ledger> {
        self.session.engine.api.get("v1/friend/ledger").await
    }

    /// Subscribes to inbox changes.
    pub fn subscribe_inbox(&self, l: Arc<dyn InboxListener>) -> Subscription {
        self.session.engine.listeners.inbox.add(l)
    }
}

/// The job as this device shows it (see `outbox::echo`); `None` while a queued release hides it.
fn with_local_echo(details: JobDetails, pending: &[&rows::ItemRow]) -> Option<MyJob> {
    let kinds: Vec<_> = pending.iter().map(|i| i.kind).collect();
    let (details, hidden) = echo::shown(details, kinds.iter().copied());
    (!hidden).then_some(MyJob {
        details,
        pending_actions: kinds,
    })
}
