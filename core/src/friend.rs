//! [`FriendSession`]: the long-lived object a Friend's app holds for one account.

use crate::error::{CoreError, CoreResult};
use crate::inbox::{Inbox, InboxFilter};
use crate::listeners::{InboxListener, Subscription};
use crate::outbox::{Action, ActionKind, echo};
use crate::secrets::SecretsProvider;
use crate::session::Session;
use crate::session::SessionConfig;
use crate::store::{cache, outbox as rows};
use chrono::{DateTime, Utc};
use friend_protocol::lifecycle::{self, Actor, Event, JobFacts};
use friend_protocol::quote::{LineItem, PaymentMethod, Settlement};
use friend_protocol::visit::{self, AppointmentRequest, OnMyWayRequest};
use friend_protocol::{
    DeclineReason, EscalateRequest, GeoPoint, JobDetails, JobId, Ledger, Money, Offer,
    ReleaseReason, UnsuccessfulReason, UnsuccessfulRequest, validate,
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

/// An "on my way" computed from the device's position and queued
/// ([`FriendSession::on_my_way_from`]): the estimate, never the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedEta {
    /// The outbox item.
    pub outbox_id: i64,
    /// The estimated arrival that was queued (server clock).
    pub eta: DateTime<Utc>,
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

    /// Gives a job back before arriving without saying why (queued); see
    /// [`FriendSession::release_with_reason`].
    pub async fn release(&self, job: JobId) -> CoreResult<i64> {
        self.release_with_reason(job, None, None).await
    }

    /// Gives a job back before arriving, saying why (queued; works offline; it leaves "my jobs"
    /// at once). The job is offered again to the other eligible Friends and the customer sees
    /// "looking for another Friend". `note` is for the platform, never shown to the customer.
    /// Refused before queueing: an unknown reason, a note the shared input rules refuse, a job
    /// the state machine does not let this Friend release (`invalid_input`).
    pub async fn release_with_reason(
        &self,
        job: JobId,
        reason: Option<ReleaseReason>,
        note: Option<String>,
    ) -> CoreResult<i64> {
        if reason == Some(ReleaseReason::Unknown) {
            return Err(CoreError::InvalidInput("release reason".into()));
        }
        validate::note("note", note.as_deref())
            .map_err(|e| CoreError::InvalidInput(e.to_string()))?;
        self.check(job, Event::Release).await?;
        self.session
            .engine
            .enqueue(job, Action::Release { reason, note })
            .await
    }

    /// Records the agreed visit of a job this Friend holds (queued; works offline): a now-job's
    /// arrival window (at most 4 h, ending within 12 h), or a slot job's booked slot confirmed or
    /// moved by agreement (a visit of at most 12 h; the customer may decline a moved one). Checked
    /// before queueing by the state machine and by the protocol's rule
    /// (`friend_protocol::visit::appointment`) on the server's clock as this device knows it;
    /// refused as `invalid_input`. The job shows the visit at once. Returns the outbox item id.
    pub async fn set_appointment(
        &self,
        job: JobId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> CoreResult<i64> {
        let details = self.checked(job, Event::SetAppointment).await?;
        let appointment = visit::appointment(
            &details.timing,
            &AppointmentRequest { start, end },
            self.server_now(),
        )
        .map_err(|e| CoreError::InvalidInput(e.to_string()))?;
        self.session
            .engine
            .enqueue(job, Action::Appointment { appointment })
            .await
    }

    /// "On my way" to a job this Friend holds, arriving about `eta` (server clock; queued, works
    /// offline). Checked before queueing: the state machine (assigned, held by this Friend) and
    /// the protocol's rule (not in the past, at most 6 h ahead). The job shows the estimate at
    /// once; the customer's live status becomes "on the way" once it is delivered.
    ///
    /// A new estimate supersedes an older one still waiting in the outbox for the same job, so
    /// however often the Friend updates while offline, only the latest one is queued — the older
    /// ones are deleted, not queued up. The job's first waiting item is the exception: it may be
    /// on its way to the backend already, so it is sent as it is, and the newer estimate follows
    /// it (the backend keeps the latest). Returns the outbox item id.
    pub async fn on_my_way(&self, job: JobId, eta: DateTime<Utc>) -> CoreResult<i64> {
        self.checked(job, Event::OnMyWay).await?;
        visit::on_my_way(&OnMyWayRequest { eta }, self.server_now())
            .map_err(|e| CoreError::InvalidInput(e.to_string()))?;
        self.session
            .engine
            .enqueue_superseding(job, Action::OnMyWay { eta })
            .await
    }

    /// "On my way", with the arrival estimated from `position`, the device's current position:
    /// the straight line to the job's location at the documented travel speed, plus a margin
    /// (`friend_protocol::visit::straight_line_eta`). The position is used for this computation
    /// only — it is not stored, logged or sent; only the resulting time is queued (as
    /// [`FriendSession::on_my_way`]). A remote job has no place to travel to (`invalid_input`),
    /// nor has a place more than 6 h away.
    pub async fn on_my_way_from(&self, job: JobId, position: GeoPoint) -> CoreResult<QueuedEta> {
        let details = self.checked(job, Event::OnMyWay).await?;
        let Some(place) = details.location else {
            return Err(CoreError::InvalidInput(
                "the job has no location to travel to (remote)".into(),
            ));
        };
        let eta = visit::straight_line_eta(&position, &place, self.server_now());
        let outbox_id = self.on_my_way(job, eta).await?;
        Ok(QueuedEta { outbox_id, eta })
    }

    /// The server's clock as this device knows it (the offset measured at the last sync).
    fn server_now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.session.server_now_ms()).unwrap_or_else(Utc::now)
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
        self.checked(job, event).await.map(|_| ())
    }

    /// [`Self::check`], returning the job as this device shows it.
    async fn checked(&self, job: JobId, event: Event) -> CoreResult<JobDetails> {
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
            .map_err(|refusal| CoreError::InvalidInput(refusal.to_string()))?;
        Ok(details)
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

    /// Hands the job to the company's field service (queued). A note the shared input rules
    /// refuse (`EscalateRequest::validate`) is `invalid_input`, and nothing is queued.
    pub async fn escalate(&self, job: JobId, note: Option<String>) -> CoreResult<i64> {
        EscalateRequest { note: note.clone() }
            .validate()
            .map_err(|e| CoreError::InvalidInput(e.to_string()))?;
        self.check(job, Event::Escalate).await?;
        self.session
            .engine
            .enqueue(job, Action::Escalate { note })
            .await
    }

    /// Checks out without success, e.g. the customer is absent (queued). Reason and note are
    /// checked by the shared input rules first (`UnsuccessfulRequest::validate`: a known reason, a
    /// note of at most 500 characters, required for `Other`); a refusal is `invalid_input`, and
    /// nothing is queued.
    pub async fn check_out_unsuccessful(
        &self,
        job: JobId,
        reason: UnsuccessfulReason,
        note: Option<String>,
    ) -> CoreResult<i64> {
        UnsuccessfulRequest {
            reason,
            note: note.clone(),
        }
        .validate()
        .map_err(|e| CoreError::InvalidInput(e.to_string()))?;
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
    let (details, hidden) = echo::shown(details, pending.iter().copied());
    (!hidden).then_some(MyJob {
        details,
        pending_actions: kinds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StaticSecrets;
    use crate::store::cache::tests::{held, new_job};
    use chrono::Duration;
    use friend_protocol::JobState;

    /// A Friend session whose backend is a closed loopback port, with its outbox timer stopped (so
    /// nothing is attempted behind the test's back), holding `job` in its cache.
    async fn offline_holding(dir: &tempfile::TempDir, job: &JobDetails) -> FriendSession {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let secrets = Arc::new(StaticSecrets::new("dev-friend-x", [4u8; 32]));
        let s = FriendSession::open(
            SessionConfig::new(dir.path().join("f.db"), "http://127.0.0.1:9"),
            secrets,
        )
        .await
        .unwrap();
        s.engine.shutdown_timer_for_test();
        let (cipher, job) = (s.engine.cipher.clone(), job.clone());
        s.engine
            .store
            .write_async(move |tx| cache::store_job(tx, &cipher, &job, 1))
            .await
            .unwrap();
        s
    }

    async fn waiting(s: &FriendSession) -> Vec<Action> {
        s.outbox()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.action)
            .collect()
    }

    #[tokio::test]
    async fn a_newer_estimate_supersedes_the_waiting_one_but_not_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let job = held(JobState::Assigned);
        let s = offline_holding(&dir, &job).await;
        let now = Utc::now();
        let eta = |min| visit::to_millis(now + Duration::minutes(min));
        // The first may be on its way (the job's first waiting item): it stays.
        let first = s.on_my_way(job.id, eta(30)).await.unwrap();
        s.on_my_way(job.id, eta(28)).await.unwrap();
        let newest = s.on_my_way(job.id, eta(25)).await.unwrap();
        assert_eq!(
            waiting(&s).await,
            [
                Action::OnMyWay { eta: eta(30) },
                Action::OnMyWay { eta: eta(25) }
            ]
        );
        let ids: Vec<_> = s.outbox().await.unwrap().iter().map(|i| i.id).collect();
        assert_eq!(ids, [first, newest]);
        assert_eq!(s.sync_status().pending_outbox, 2);
        // Other kinds are never superseded; an estimate queued behind them replaces only the older
        // estimate.
        s.set_appointment(
            job.id,
            now + Duration::minutes(20),
            now + Duration::minutes(60),
        )
        .await
        .unwrap();
        s.on_my_way(job.id, eta(24)).await.unwrap();
        let kinds: Vec<_> = waiting(&s).await.iter().map(Action::kind).collect();
        assert_eq!(
            kinds,
            [
                ActionKind::OnMyWay,
                ActionKind::Appointment,
                ActionKind::OnMyWay
            ]
        );
        // The job shows the latest estimate and the visit at once.
        let shown = s.job(job.id).await.unwrap().details;
        assert_eq!(shown.visit.en_route.map(|r| r.eta), Some(eta(24)));
        assert!(shown.visit.appointment.is_some());
        // Another job's estimates are its own.
        let other = new_job(2, 3, JobState::Assigned);
        let mut other = other;
        other.friend = job.friend.clone();
        let (cipher, o) = (s.engine.cipher.clone(), other.clone());
        s.engine
            .store
            .write_async(move |tx| cache::store_job(tx, &cipher, &o, 1))
            .await
            .unwrap();
        s.on_my_way(other.id, eta(40)).await.unwrap();
        assert_eq!(s.outbox().await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn visit_steps_are_checked_before_anything_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let job = held(JobState::Assigned);
        let s = offline_holding(&dir, &job).await;
        let now = Utc::now();
        let refused = |r: CoreResult<i64>| r.unwrap_err().code();
        // The protocol's rules: a now-job's window at most 4 h, an estimate not in the past.
        assert_eq!(
            refused(
                s.set_appointment(job.id, now, now + Duration::hours(5))
                    .await
            ),
            "invalid_input"
        );
        assert_eq!(
            refused(
                s.set_appointment(job.id, now + Duration::hours(2), now + Duration::hours(1))
                    .await
            ),
            "invalid_input"
        );
        assert_eq!(
            refused(s.on_my_way(job.id, now - Duration::hours(1)).await),
            "invalid_input"
        );
        assert_eq!(
            refused(s.on_my_way(job.id, now + Duration::hours(7)).await),
            "invalid_input"
        );
        assert_eq!(
            refused(
                s.release_with_reason(job.id, Some(ReleaseReason::Unknown), None)
                    .await
            ),
            "invalid_input"
        );
        assert!(s.outbox().await.unwrap().is_empty());
        // The state machine: once a check-in is queued the job shows on site, and an estimate or
        // a visit is refused.
        s.check_in(job.id).await.unwrap();
        assert_eq!(
            refused(s.on_my_way(job.id, now + Duration::minutes(10)).await),
            "invalid_input"
        );
        assert_eq!(
            refused(
                s.set_appointment(job.id, now, now + Duration::hours(1))
                    .await
            ),
            "invalid_input"
        );
        assert_eq!(s.outbox().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn escalation_and_unsuccessful_notes_are_checked_before_queueing() {
        let dir = tempfile::tempdir().unwrap();
        let job = held(JobState::OnSite);
        let s = offline_holding(&dir, &job).await;
        let long = "x".repeat(501);
        let refused = |r: CoreResult<i64>| r.unwrap_err().code();
        assert_eq!(
            refused(s.escalate(job.id, Some(long.clone())).await),
            "invalid_input"
        );
        assert_eq!(
            refused(s.escalate(job.id, Some("line\u{0}break".into())).await),
            "invalid_input"
        );
        for (reason, note) in [
            (UnsuccessfulReason::Other, None),
            (UnsuccessfulReason::Other, Some("   ".to_owned())),
            (UnsuccessfulReason::CustomerAbsent, Some(long.clone())),
            (UnsuccessfulReason::Unknown, None),
        ] {
            assert_eq!(
                refused(s.check_out_unsuccessful(job.id, reason, note.clone()).await),
                "invalid_input",
                "{reason:?} {note:?}"
            );
        }
        assert!(s.outbox().await.unwrap().is_empty(), "nothing queued");
        // At the limit, and Other with a note, they are queued.
        s.check_out_unsuccessful(job.id, UnsuccessfulReason::Other, Some("x".repeat(500)))
            .await
            .unwrap();
        assert_eq!(s.outbox().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_settlement_preview_out_of_bounds_is_an_invalid_quote() {
        let dir = tempfile::tempdir().unwrap();
        let s = offline_holding(&dir, &held(JobState::OnSite)).await;
        let max = crate::negotiation::policy().max_total_minor;
        for (minor, code) in [
            (-1, "negative_total"),
            (i64::MIN, "negative_total"),
            (max + 1, "amount_too_large"),
            (i64::MAX, "amount_too_large"),
        ] {
            for payment in [PaymentMethod::Online, PaymentMethod::Cash] {
                match s.settlement_preview(Money::chf(minor), payment) {
                    Err(CoreError::InvalidQuote { code: found, .. }) => {
                        assert_eq!(found, code, "{minor} {payment:?}")
                    }
                    other => panic!("{minor} {payment:?}: {other:?}"),
                }
            }
        }
        let top = s
            .settlement_preview(Money::chf(max), PaymentMethod::Online)
            .unwrap();
        assert_eq!(top.fee.minor + top.payout.minor, max);
        let zero = s
            .settlement_preview(Money::chf(0), PaymentMethod::Cash)
            .unwrap();
        assert_eq!(zero.payout, Money::chf(0));
    }

    #[tokio::test]
    async fn two_concurrent_proposals_get_two_versions() {
        let dir = tempfile::tempdir().unwrap();
        let job = held(JobState::OnSite);
        let s = offline_holding(&dir, &job).await;
        let items = |minor| {
            vec![LineItem {
                kind: friend_protocol::quote::LineItemKind::Service,
                description: "Router setup".into(),
                quantity: 1,
                unit_price: Money::chf(minor),
            }]
        };
        let (a, b) = tokio::join!(
            s.propose(job.id, items(8900), None),
            s.propose(job.id, items(9500), None)
        );
        let mut versions: Vec<u32> = [a.unwrap(), b.unwrap()]
            .iter()
            .map(|p| {
                friend_protocol::consent::ConsentPayload::decode(p)
                    .unwrap()
                    .quote()
                    .version
            })
            .collect();
        versions.sort();
        assert_eq!(versions, [1, 2], "never the same version twice");
        assert_eq!(s.negotiation(job.id).await.unwrap().unsent_steps, 2);
    }

    #[tokio::test]
    async fn an_estimate_from_a_position_queues_only_the_time() {
        let dir = tempfile::tempdir().unwrap();
        let job = held(JobState::Assigned);
        let s = offline_holding(&dir, &job).await;
        // ~3.7 km from the job (Oerlikon) at Zürich main station: 8 minutes plus the margin.
        let here = GeoPoint::new(47.3779, 8.5403).unwrap();
        let before = Utc::now();
        let queued = s.on_my_way_from(job.id, here).await.unwrap();
        let minutes = (queued.eta - before).num_minutes();
        assert!((12..=14).contains(&minutes), "{minutes} min");
        let [item] = s.outbox().await.unwrap().try_into().unwrap();
        assert_eq!(item.id, queued.outbox_id);
        assert_eq!(item.action, Action::OnMyWay { eta: queued.eta });
        let sent = item.action.body().to_string();
        assert!(!sent.contains("47.37") && !sent.contains("8.54"), "{sent}");
        // A remote job has nowhere to travel to.
        let mut remote = new_job(3, 3, JobState::Assigned);
        remote.friend = job.friend.clone();
        remote.location = None;
        remote.place = friend_protocol::Place::Remote;
        let (cipher, r) = (s.engine.cipher.clone(), remote.clone());
        s.engine
            .store
            .write_async(move |tx| cache::store_job(tx, &cipher, &r, 1))
            .await
            .unwrap();
        assert_eq!(
            s.on_my_way_from(remote.id, here).await.unwrap_err().code(),
            "invalid_input"
        );
    }
}
