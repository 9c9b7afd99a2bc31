//! [`CustomerSession`]: the customer's app on the same store, sync and outbox machinery as the
//! Friend's — book (offline too, never twice), follow the job live, negotiate the price, cancel, rate.

use crate::crypto::FieldCipher;
use crate::engine::now_ms;
use crate::error::{CoreError, CoreResult};
use crate::negotiation::{LocalNegotiation, local_view};
use crate::outbox::delivery::enqueue_in;
use crate::outbox::{Action, ActionKind, echo};
use crate::secrets::SecretsProvider;
use crate::session::Session;
use crate::session::SessionConfig;
use crate::store::outbox::ItemStatus;
use crate::store::{cache, meta, outbox as rows};
use chrono::{DateTime, Utc};
use friend_protocol::lifecycle::{self, Actor, Event, JobFacts};
use friend_protocol::negotiation::{Answer, Party};
use friend_protocol::quote::LineItem;
use friend_protocol::visit;
use friend_protocol::{
    Appointment, BookRequest, CancelPreview, Catalog, JobDetails, JobId, JobState, validate,
};
use rusqlite::Connection;
use std::sync::Arc;

/// A double tap or a repeated call with the same booking within this window returns the first one.
pub const BOOKING_DEDUP_WINDOW_MS: i64 = 10 * 60 * 1000;

/// Where a customer's job stands, in the words the app shows.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveStatus {
    /// Booked on this device, not yet received by the server (offline).
    Queued,
    /// Broadcast; waiting for a Friend.
    Searching,
    /// Offered again after a Friend held it (they gave it back, or the customer declined a moved
    /// visit): "looking for another Friend". How often: `details.visit.reopened`.
    SearchingAgain,
    /// A Friend accepted; `visit` is the agreed visit once they recorded it (a slot job's visit
    /// with `moved` set may be declined: [`CustomerSession::decline_appointment`]).
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
        eta: DateTime<Utc>,
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

/// A customer's job: the server's details once known, the live status, and pending actions.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerJob {
    /// The job id (a local id while the booking is queued; see [`CustomerSession::booking`]).
    pub id: JobId,
    /// Where it stands.
    pub status: LiveStatus,
    /// The server's details (none while the booking is queued).
    pub details: Option<JobDetails>,
    /// The negotiation as this device knows it.
    pub negotiation: LocalNegotiation,
    /// Kinds of outbox items not yet acknowledged for this job.
    pub pending_actions: Vec<ActionKind>,
}

/// One customer account on this device. The calls both roles share (sync, outbox, negotiation,
/// status, listeners) are [`Session`]'s, which it dereferences to.
pub struct CustomerSession {
    session: Session,
}

impl std::ops::Deref for CustomerSession {
    type Target = Session;
    /// The shared session: a customer is a session plus the calls only customers make.
    fn deref(&self) -> &Session {
        &self.session
    }
}

fn live_status(details: &JobDetails, negotiation: &LocalNegotiation) -> LiveStatus {
    match details.state {
        JobState::Open if details.visit.reopened > 0 => LiveStatus::SearchingAgain,
        JobState::Open | JobState::Unknown => LiveStatus::Searching,
        JobState::Assigned => {
            let friend = details
                .friend
                .as_ref()
                .map(|f| f.name.clone())
                .unwrap_or_default();
            match details.visit.en_route {
                Some(r) => LiveStatus::OnTheWay { friend, eta: r.eta },
                None => LiveStatus::Accepted {
                    friend,
                    visit: details.visit.appointment,
                },
            }
        }
        JobState::OnSite | JobState::Agreed => match negotiation.latest.as_ref() {
            Some(q) if q.answer == Answer::Pending => {
                LiveStatus::QuotePending { by: q.proposed_by }
            }
            _ if negotiation.agreed.is_some() => LiveStatus::Agreed,
            _ => LiveStatus::OnSite,
        },
        JobState::Completed => LiveStatus::Completed,
        JobState::Cancelled => LiveStatus::Cancelled,
        JobState::Expired => LiveStatus::Expired,
        JobState::Escalated => LiveStatus::Escalated,
        JobState::Unsuccessful => LiveStatus::Unsuccessful,
    }
}

impl CustomerSession {
    /// Opens the account database at `config.db_path` and starts the outbox timer. A malformed token
    /// is [`CoreError::InvalidToken`] here; a Friend's token is [`CoreError::WrongRole`] from the
    /// first request on, and nothing of that account is synced or cached.
    pub async fn open(
        config: SessionConfig,
        secrets: Arc<dyn SecretsProvider>,
    ) -> CoreResult<CustomerSession> {
        let session = Session::open(config, secrets, friend_protocol::Role::Customer).await?;
        Ok(CustomerSession { session })
    }

    /// Books a job: validated now by the shared rules, queued, sent when online. Returns the local
    /// id of the booking; the same booking again (a double tap, a retry) within
    /// [`BOOKING_DEDUP_WINDOW_MS`] returns the first one instead of booking twice.
    pub async fn book(&self, request: BookRequest) -> CoreResult<JobId> {
        validate::book_request(&request, chrono::Utc::now())
            .map_err(|e| CoreError::InvalidInput(e.to_string()))?;
        let action = Action::Book {
            request: Box::new(request),
        };
        let payload = action.to_payload()?;
        let since = now_ms() - BOOKING_DEDUP_WINDOW_MS;
        let cipher = self.session.engine.cipher.clone();
        let fresh = JobId::random();
        // The look for the first booking and the queueing are one transaction: two concurrent
        // calls (a double tap) cannot both find nothing and both queue.
        let (local, queued) = self
            .session
            .engine
            .store
            .write_async(move |tx| {
                if let Some(first) =
                    rows::find_recent(tx, &cipher, ActionKind::Book, &payload, since)?
                {
                    return Ok((first.job_id, false));
                }
                enqueue_in(tx, &cipher, fresh, &action)?;
                Ok((fresh, true))
            })
            .await?;
        if queued {
            self.session.engine.queued(local).await;
        }
        Ok(local)
    }

    /// The server's job id for a booking's local id, once the server has it: `None` while the
    /// booking is on its way — and also once its delivered outbox item was pruned
    /// (`store::outbox::APPLIED_KEPT_MS` after delivery); the job is in [`Self::my_jobs`] by then.
    pub async fn booking(&self, local: JobId) -> CoreResult<Option<JobId>> {
        let cipher = self.session.engine.cipher.clone();
        self.session
            .engine
            .store
            .read_async(move |c| {
                let Some(item) = rows::booking(c, &cipher, local)? else {
                    return Ok(None);
                };
                match (item.status, item.server_job_id) {
                    (ItemStatus::Applied, Some(job)) => Ok(Some(job)),
                    (ItemStatus::Refused, _) => Err(CoreError::from_refusal(
                        item.outcome_code.as_deref(),
                        item.outcome_message.unwrap_or_default(),
                    )),
                    _ => Ok(None),
                }
            })
            .await
    }

    /// The customer's jobs with live status, from the cache; queued bookings first.
    pub async fn my_jobs(&self) -> CoreResult<Vec<CustomerJob>> {
        let cipher = self.session.engine.cipher.clone();
        self.session
            .engine
            .store
            .read_async(move |c| {
                let pending = rows::pending(c, &cipher)?;
                let mut out: Vec<CustomerJob> = pending
                    .iter()
                    .filter(|i| i.kind == ActionKind::Book)
                    .map(|i| CustomerJob {
                        id: i.job_id,
                        status: LiveStatus::Queued,
                        details: None,
                        negotiation: LocalNegotiation::default(),
                        pending_actions: vec![ActionKind::Book],
                    })
                    .collect();
                for details in cache::jobs(c, &cipher)? {
                    let mine: Vec<_> = pending
                        .iter()
                        .filter(|i| i.job_id == details.id)
                        .cloned()
                        .collect();
                    out.push(customer_job(details, &mine));
                }
                Ok(out)
            })
            .await
    }

    /// One job by its server id, from the cache.
    pub async fn job(&self, job: JobId) -> CoreResult<CustomerJob> {
        let cipher = self.session.engine.cipher.clone();
        self.session
            .engine
            .store
            .read_async(move |c| cached_job(c, &cipher, job))
            .await
    }

    /// Cancels a job before the Friend is on site (queued). Once a Friend holds it, a late
    /// cancellation owes the compensation fee: show [`Self::cancel_preview`] first.
    pub async fn cancel(&self, job: JobId) -> CoreResult<i64> {
        self.cancellable(job).await?;
        self.session.engine.enqueue(job, Action::Cancel).await
    }

    /// The job as this device shows it, if the customer may cancel it: the shared state machine
    /// decides, on the job as this device shows it (a queued cancel included); the server decides
    /// again.
    async fn cancellable(&self, job: JobId) -> CoreResult<JobDetails> {
        self.allowed(job, Event::Cancel).await
    }

    /// The job as this device shows it, if the state machine lets the customer do `event` on it
    /// (`invalid_input` if not; `not_cached` for a job this device does not know).
    async fn allowed(&self, job: JobId, event: Event) -> CoreResult<JobDetails> {
        let details = self
            .job(job)
            .await?
            .details
            .ok_or_else(|| CoreError::NotCached(job.to_string()))?;
        let facts = JobFacts::of(&details);
        lifecycle::transition(&facts, &Actor::Customer(details.customer_id), event)
            .map_err(|refusal| CoreError::InvalidInput(refusal.to_string()))?;
        Ok(details)
    }

    /// What cancelling the job now would cost, computed on the device — offline too — with the
    /// protocol's rule (`friend_protocol::visit::cancel_preview`) on the job as this device shows
    /// it, the compensation policy of the cached catalog (the protocol's default when none is
    /// cached) and the server's clock as this device knows it: nothing while the job is open; once
    /// a Friend holds it, the fee for a now-job, and for a slot job less than 24 h before the
    /// visit (`free_until` says until when it is free). A job that can no longer be cancelled is
    /// `invalid_input`, as [`Self::cancel`] refuses it. Changes nothing.
    pub async fn cancel_preview(&self, job: JobId) -> CoreResult<CancelPreview> {
        let details = self.cancellable(job).await?;
        let cipher = self.session.engine.cipher.clone();
        let policy = self
            .session
            .engine
            .store
            .read_async(move |c| meta::get_sealed(c, &cipher, meta::CATALOG))
            .await?
            .and_then(|json| serde_json::from_str::<Catalog>(&json).ok())
            .map(|catalog| catalog.compensation)
            .unwrap_or_default();
        let now =
            DateTime::from_timestamp_millis(self.session.server_now_ms()).unwrap_or_else(Utc::now);
        Ok(visit::cancel_preview(
            details.state == JobState::Assigned,
            &details.timing,
            details.visit.appointment.as_ref(),
            now,
            &policy,
        ))
    }

    /// Declines the visit the Friend moved away from the booked slot (queued; works offline): the
    /// Friend is released without penalty and the job is offered again — it shows "looking for
    /// another Friend" at once. Only a moved visit of an assigned job can be declined
    /// (`invalid_input` otherwise, checked by the state machine before queueing). Returns the
    /// outbox item id.
    pub async fn decline_appointment(&self, job: JobId) -> CoreResult<i64> {
        let details = self.allowed(job, Event::DeclineAppointment).await?;
        if !details.visit.appointment.is_some_and(|a| a.moved) {
            return Err(CoreError::InvalidInput(
                "only a visit the Friend moved away from the booked slot can be declined".into(),
            ));
        }
        self.session
            .engine
            .enqueue(job, Action::DeclineAppointment)
            .await
    }

    /// Rates a completed job, 1–5 stars, once (queued).
    pub async fn rate(&self, job: JobId, stars: u8, comment: Option<String>) -> CoreResult<i64> {
        let request = friend_protocol::RateRequest {
            stars,
            comment: comment.clone(),
        };
        request
            .validate()
            .map_err(|e| CoreError::InvalidInput(e.to_string()))?;
        let cipher = self.session.engine.cipher.clone();
        // Checked and queued in one transaction: of two concurrent ratings, the second finds the
        // first queued and is refused, as it would be one after the other.
        let id = self
            .session
            .engine
            .store
            .write_async(move |tx| {
                let current = cached_job(tx, &cipher, job)?;
                if current.details.as_ref().map(|d| d.state) != Some(JobState::Completed) {
                    return Err(CoreError::InvalidInput(
                        "only completed jobs can be rated".into(),
                    ));
                }
                if current.details.as_ref().and_then(|d| d.rating).is_some()
                    || current.pending_actions.contains(&ActionKind::Rate)
                {
                    return Err(CoreError::InvalidInput("this job is already rated".into()));
                }
                enqueue_in(tx, &cipher, job, &Action::Rate { stars, comment })
            })
            .await?;
        self.session.engine.queued(job).await;
        Ok(id)
    }

    /// Counter-proposes a quote: validated, signed, queued; returns the payload.
    pub async fn counter(
        &self,
        job: JobId,
        items: Vec<LineItem>,
        reason: Option<String>,
    ) -> CoreResult<String> {
        self.session.propose(job, items, reason).await
    }
}

/// One job by its server id, from the cache, with this device's pending actions.
fn cached_job(c: &Connection, cipher: &FieldCipher, job: JobId) -> CoreResult<CustomerJob> {
    let details =
        cache::job(c, cipher, job)?.ok_or_else(|| CoreError::NotCached(job.to_string()))?;
    Ok(customer_job(
        details,
        &rows::pending_for_job(c, cipher, job)?,
    ))
}

fn customer_job(details: JobDetails, pending: &[rows::ItemRow]) -> CustomerJob {
    let negotiation = local_view(&details, pending);
    // A customer queues nothing that hides a job.
    let (details, _hidden) = echo::shown(details, pending);
    let status = live_status(&details, &negotiation);
    CustomerJob {
        id: details.id,
        status,
        details: Some(details),
        negotiation,
        pending_actions: pending.iter().map(|i| i.kind).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cache::tests::{held, new_job};
    use chrono::Duration;
    use friend_protocol::EnRoute;

    /// A customer session whose backend is a closed loopback port, with its outbox timer stopped
    /// (nothing is attempted behind the test's back).
    async fn offline_customer(dir: &tempfile::TempDir) -> CustomerSession {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let secrets = Arc::new(crate::StaticSecrets::new("dev-customer-x", [8u8; 32]));
        let s = CustomerSession::open(
            SessionConfig::new(dir.path().join("c.db"), "http://127.0.0.1:9"),
            secrets,
        )
        .await
        .unwrap();
        s.engine.shutdown_timer_for_test();
        s
    }

    fn booking() -> BookRequest {
        BookRequest {
            service_id: "network.router_setup".into(),
            description: "Wi-Fi does not reach the bedroom".into(),
            timing: friend_protocol::Timing::Now,
            place: friend_protocol::Place::OnSite,
            location: Some(friend_protocol::GeoPoint::new(47.4111, 8.5441).unwrap()),
            address: Some(friend_protocol::Address {
                street: "Quarzgasse 17".into(),
                postal_code: "8050".into(),
                city: "Zürich".into(),
            }),
            contact: friend_protocol::Contact {
                name: "Erika Muster".into(),
                phone: "+41 79 555 00 00".into(),
            },
            access_notes: None,
            brand: None,
            radius_km: None,
        }
    }

    #[tokio::test]
    async fn a_double_tap_on_book_queues_one_booking() {
        let dir = tempfile::tempdir().unwrap();
        let s = offline_customer(&dir).await;
        let (first, second) = tokio::join!(s.book(booking()), s.book(booking()));
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first, second, "the second tap returns the first booking");
        let books: Vec<_> = s
            .outbox()
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.action.kind() == ActionKind::Book)
            .map(|i| i.job_id)
            .collect();
        assert_eq!(books, [first], "one Book queued");
        // Another booking is booked.
        let mut other = booking();
        other.description = "The printer is offline".into();
        assert_ne!(s.book(other).await.unwrap(), first);
    }

    #[tokio::test]
    async fn two_concurrent_ratings_queue_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = offline_customer(&dir).await;
        let job = held(JobState::Completed);
        let (cipher, stored) = (s.engine.cipher.clone(), job.clone());
        s.engine
            .store
            .write_async(move |tx| cache::store_job(tx, &cipher, &stored, 1))
            .await
            .unwrap();
        let (a, b) = tokio::join!(s.rate(job.id, 5, None), s.rate(job.id, 4, None));
        let codes: Vec<_> = [&a, &b]
            .iter()
            .map(|r| r.as_ref().map(|_| "queued").unwrap_or_else(|e| e.code()))
            .collect();
        assert!(
            codes == ["queued", "invalid_input"] || codes == ["invalid_input", "queued"],
            "one is queued, the other refused as already rated: {codes:?}"
        );
        let rates = s
            .outbox()
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.action.kind() == ActionKind::Rate)
            .count();
        assert_eq!(rates, 1);
    }

    #[test]
    fn the_live_status_follows_the_visit() {
        let none = LocalNegotiation::default();
        let now = Utc::now();
        let mut job = held(JobState::Assigned);
        assert_eq!(
            live_status(&job, &none),
            LiveStatus::Accepted {
                friend: "Anna".into(),
                visit: None
            }
        );
        let visit = Appointment {
            start: now + Duration::minutes(20),
            end: now + Duration::minutes(50),
            moved: false,
        };
        job.visit.appointment = Some(visit);
        assert_eq!(
            live_status(&job, &none),
            LiveStatus::Accepted {
                friend: "Anna".into(),
                visit: Some(visit)
            }
        );
        let eta = now + Duration::minutes(25);
        job.visit.en_route = Some(EnRoute { eta, sent_at: now });
        assert_eq!(
            live_status(&job, &none),
            LiveStatus::OnTheWay {
                friend: "Anna".into(),
                eta
            }
        );
        // Offered again after a Friend held it: "looking for another Friend".
        let mut open = new_job(2, 5, JobState::Open);
        assert_eq!(live_status(&open, &none), LiveStatus::Searching);
        open.visit.reopened = 1;
        assert_eq!(live_status(&open, &none), LiveStatus::SearchingAgain);
    }
}
