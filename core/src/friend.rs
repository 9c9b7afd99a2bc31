//! [`FriendSession`]: the long-lived object a Friend's app holds for one account.

use crate::engine::{AcceptResult, Engine, SessionConfig, SyncReport, SyncStatus};
use crate::error::{CoreError, CoreResult};
use crate::inbox::{Inbox, InboxFilter};
use crate::listeners::{InboxListener, JobListener, Subscription, SyncStatusListener};
use crate::negotiation::LocalNegotiation;
use crate::outbox::{Action, OutboxItem};
use crate::secrets::SecretsProvider;
use crate::store::{cache, outbox as rows};
use friend_protocol::negotiation::Party;
use friend_protocol::quote::{LineItem, PaymentMethod, Settlement};
use friend_protocol::{
    Catalog, DeclineReason, GeoPoint, JobDetails, JobId, JobState, Ledger, Me, Money, Offer,
    UnsuccessfulReason,
};
use std::collections::HashSet;
use std::sync::Arc;

/// A cached job of the Friend with what is still waiting in the outbox for it.
#[derive(Debug, Clone, PartialEq)]
pub struct MyJob {
    /// Full details as last known, with pending local actions already shown (e.g. a queued
    /// check-in shows the job on site).
    pub details: JobDetails,
    /// Kinds of the outbox items not yet acknowledged for this job, oldest first.
    pub pending_actions: Vec<String>,
}

/// One Friend account on this device: offline cache, sync, inbox, accept and outbox.
///
/// Works fully offline after the first sync. Drop it or call [`FriendSession::shutdown`] to stop
/// background work. All methods are safe to abandon midway: durable state is written before any
/// request leaves.
pub struct FriendSession {
    engine: Arc<Engine>,
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
        let config = crate::secrets::session_for_role(
            config,
            secrets.as_ref(),
            friend_protocol::Role::Friend,
        )?;
        Ok(FriendSession {
            engine: Engine::open(config, secrets).await?,
        })
    }

    /// Delivers the outbox, resolves pending accepts and pulls every page of changes.
    pub async fn sync_once(&self) -> CoreResult<SyncReport> {
        self.engine.on_push().await
    }

    /// A platform push woke the app: one batched round (deliver the outbox, then pull). The payload
    /// is not needed; it may be empty.
    pub async fn on_push(&self, _payload: &str) -> CoreResult<SyncReport> {
        self.engine.on_push().await
    }

    /// Starts the foreground loop (long-poll) while the app is visible.
    pub fn start_foreground_sync(&self) {
        self.engine.start_foreground();
    }

    /// Stops the foreground loop (when the app goes to the background).
    pub fn stop_foreground_sync(&self) {
        self.engine.stop_foreground();
    }

    /// Open offers near `position` within `radius_km`, sorted by distance, from the cache only.
    pub async fn inbox(
        &self,
        position: GeoPoint,
        radius_km: f64,
        filter: InboxFilter,
    ) -> CoreResult<Inbox> {
        // Offers with a queued decline are hidden at once.
        let cipher = self.engine.cipher.clone();
        let hidden: HashSet<JobId> = self
            .engine
            .store
            .read_async(move |c| {
                Ok(rows::pending(c, &cipher)?
                    .into_iter()
                    .filter(|i| i.kind == "decline")
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
        self.engine
            .store
            .read_async(move |c| cache::offer(c, job))
            .await
    }

    fn cache_age_secs(&self) -> Option<i64> {
        self.engine
            .status()
            .last_success_ms
            .map(|t| (crate::engine::now_ms() - t) / 1000)
    }

    /// Races to accept an open offer (SPEC §4). Never queued: offline answers [`AcceptResult::Offline`].
    pub async fn accept(&self, job: JobId) -> CoreResult<AcceptResult> {
        self.engine.accept(job).await
    }

    /// The Friend's jobs with full details, from the cache, with pending actions shown.
    pub async fn my_jobs(&self) -> CoreResult<Vec<MyJob>> {
        let cipher = self.engine.cipher.clone();
        self.engine
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
        let cipher = self.engine.cipher.clone();
        self.engine
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
        self.engine.enqueue(job, Action::Decline { reason }).await
    }

    /// Gives a job back before arriving (queued).
    pub async fn release(&self, job: JobId) -> CoreResult<i64> {
        self.require_state(job, &[JobState::Assigned]).await?;
        self.engine.enqueue(job, Action::Release).await
    }

    /// Checks in on site (queued; works offline).
    pub async fn check_in(&self, job: JobId) -> CoreResult<i64> {
        self.require_state(job, &[JobState::Assigned]).await?;
        self.engine.enqueue(job, Action::CheckIn).await
    }

    async fn require_state(&self, job: JobId, allowed: &[JobState]) -> CoreResult<()> {
        let current = self.job(job).await?.details.state;
        if allowed.contains(&current) {
            Ok(())
        } else {
            Err(CoreError::InvalidInput(format!(
                "the job is {}",
                current.as_str()
            )))
        }
    }

    /// Every outbox item with its outcome (pending, applied, or refused with the server's reason).
    pub async fn outbox(&self) -> CoreResult<Vec<OutboxItem>> {
        let cipher = self.engine.cipher.clone();
        self.engine
            .store
            .read_async(move |c| {
                rows::all(c, &cipher)?
                    .into_iter()
                    .map(OutboxItem::from_row)
                    .collect()
            })
            .await
    }

    /// Delivers due outbox items now (the timer does this by itself).
    pub async fn deliver_outbox(&self) -> CoreResult<u32> {
        self.engine.deliver_outbox().await
    }

    /// The catalog: fetched when online, the cached copy otherwise.
    pub async fn catalog(&self) -> CoreResult<Catalog> {
        self.engine.catalog().await
    }

    /// The Friend's own profile: fetched when online, the cached copy otherwise.
    pub async fn profile(&self) -> CoreResult<Me> {
        self.engine.profile().await
    }

    /// The job's price negotiation as this device knows it (pending local steps included).
    pub async fn negotiation(&self, job: JobId) -> CoreResult<LocalNegotiation> {
        self.engine.negotiation(job).await
    }

    /// Proposes a quote (first one, counter-proposal or amendment): validated by the shared rules,
    /// signed and queued. Returns the payload to show as a QR code to the customer's device.
    pub async fn propose(
        &self,
        job: JobId,
        items: Vec<LineItem>,
        reason: Option<String>,
    ) -> CoreResult<String> {
        self.engine.propose(job, Party::Friend, items, reason).await
    }

    /// Accepts the customer's pending proposal `version`; returns the signed payload.
    pub async fn accept_quote(&self, job: JobId, version: u32) -> CoreResult<String> {
        self.engine.accept_quote(job, Party::Friend, version).await
    }

    /// Rejects the customer's pending proposal `version` (queued).
    pub async fn reject_quote(&self, job: JobId, version: u32) -> CoreResult<i64> {
        self.engine.reject_quote(job, Party::Friend, version).await
    }

    /// Imports a payload from the customer's device, verified offline (see `LocalNegotiation`).
    pub async fn import_consent(&self, job: JobId, payload: &str) -> CoreResult<LocalNegotiation> {
        self.engine
            .import_consent(job, Party::Friend, payload)
            .await
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
        self.engine.complete(job, payment).await
    }

    /// Hands the job to the company's field service (queued).
    pub async fn escalate(&self, job: JobId, note: Option<String>) -> CoreResult<i64> {
        self.require_state(job, &[JobState::OnSite, JobState::Agreed])
            .await?;
        self.engine.enqueue(job, Action::Escalate { note }).await
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
        self.require_state(job, &[JobState::OnSite, JobState::Agreed])
            .await?;
        self.engine
            .enqueue(job, Action::Unsuccessful { reason, note })
            .await
    }

    /// The Friend's commission ledger (online).
    pub async fn ledger(&self) -> CoreResult<Ledger> {
        self.engine.api.get("v1/friend/ledger").await
    }

    /// The current sync status.
    pub fn sync_status(&self) -> SyncStatus {
        self.engine.status()
    }

    /// Server time now (device clock corrected by the offset measured at the last sync), ms.
    pub fn server_now_ms(&self) -> i64 {
        self.engine.server_now_ms()
    }

    /// Subscribes to inbox changes.
    pub fn subscribe_inbox(&self, l: Arc<dyn InboxListener>) -> Subscription {
        self.engine.listeners.inbox.add(l)
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

impl Drop for FriendSession {
    fn drop(&mut self) {
        self.engine.shutdown();
    }
}

/// Shows queued actions on top of the server's data, which itself is never overwritten by them.
/// A queued release hides the job.
fn with_local_echo(mut details: JobDetails, pending: &[&rows::ItemRow]) -> Option<MyJob> {
    let mut kinds = Vec::new();
    for item in pending {
        match item.kind.as_str() {
            "check_in" if details.state == JobState::Assigned => details.state = JobState::OnSite,
            "release" => return None,
            _ => {}
        }
        kinds.push(item.kind.clone());
    }
    Some(MyJob {
        details,
        pending_actions: kinds,
    })
}
