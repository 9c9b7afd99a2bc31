//! The local echo: a job as this device shows it, the server's details with the still-queued
//! actions laid on top — moved as the shared state machine would move them — without ever
//! overwriting what the server said. A queued check-in shows the job on site, a queued cancel shows
//! it cancelled, a queued release hides it, a queued appointment or "on my way" shows the agreed
//! visit or the estimate, a queued decline of a moved visit shows the job searching again (the
//! negotiation's pending steps are echoed by `crate::negotiation::local_view`, a decline of an
//! offer by the inbox hiding it).

use super::table::ItemRow;
use super::{Action, ActionKind};
use chrono::DateTime;
use friend_protocol::lifecycle::{self, Actor, Event, JobFacts};
use friend_protocol::{EnRoute, JobDetails};

/// `details` with the `pending` items (oldest first) applied, and whether one hides the job. A
/// queued action the job is already past changes nothing (the server will answer it). An item
/// whose payload does not read is shown by its kind alone (the visit's annotations need it).
pub(crate) fn shown<'a>(
    mut details: JobDetails,
    pending: impl IntoIterator<Item = &'a ItemRow>,
) -> (JobDetails, bool) {
    let mut hidden = false;
    for item in pending {
        let holder = details.friend.as_ref().map(|f| Actor::Friend(f.id));
        let customer = Actor::Customer(details.customer_id);
        let (actor, event) = match (item.kind, holder) {
            (ActionKind::Release, _) => {
                hidden = true;
                continue;
            }
            (ActionKind::CheckIn, Some(h)) => (h, Event::CheckIn),
            (ActionKind::Appointment, Some(h)) => (h, Event::SetAppointment),
            (ActionKind::OnMyWay, Some(h)) => (h, Event::OnMyWay),
            (ActionKind::Cancel, _) => (customer, Event::Cancel),
            // Only a moved visit can be declined (the server's rule too).
            (ActionKind::DeclineAppointment, _)
                if details.visit.appointment.is_some_and(|a| a.moved) =>
            {
                (customer, Event::DeclineAppointment)
            }
            _ => continue,
        };
        let Ok(next) = lifecycle::transition(&JobFacts::of(&details), &actor, event) else {
            continue;
        };
        details.state = next.state;
        match (event, Action::from_payload(&item.payload)) {
            (Event::SetAppointment, Ok(Action::Appointment { appointment })) => {
                details.visit.appointment = Some(appointment);
            }
            (Event::OnMyWay, Ok(Action::OnMyWay { eta })) => {
                details.visit.en_route = Some(EnRoute {
                    eta,
                    // When it was queued (device clock): the server stamps its own time.
                    sent_at: DateTime::from_timestamp_millis(item.created_at_ms).unwrap_or(eta),
                });
            }
            (Event::DeclineAppointment, _) => {
                // As the server reopens it: the visit and the estimate forgotten, counted.
                details.visit.appointment = None;
                details.visit.en_route = None;
                details.visit.reopened += 1;
                details.friend = None;
            }
            _ => {}
        }
    }
    (details, hidden)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::cache::tests::held;
    use crate::store::outbox::ItemStatus;
    use chrono::{Duration, Utc};
    use friend_protocol::{Appointment, JobState};

    /// A pending outbox row of `action`, queued at `at_ms`.
    pub(crate) fn row(action: &Action, at_ms: i64) -> ItemRow {
        ItemRow {
            id: at_ms,
            job_id: friend_protocol::JobId::random(),
            kind: action.kind(),
            payload: action.to_payload().unwrap(),
            key: format!("key-{at_ms}"),
            status: ItemStatus::Pending,
            attempts: 0,
            next_attempt_at_ms: at_ms,
            created_at_ms: at_ms,
            last_error: None,
            outcome_code: None,
            outcome_message: None,
            server_job_id: None,
        }
    }

    fn show(job: JobDetails, actions: &[Action]) -> (JobDetails, bool) {
        let rows: Vec<_> = actions.iter().map(|a| row(a, 1_000)).collect();
        shown(job, &rows)
    }

    #[test]
    fn queued_actions_move_the_shown_state_as_the_state_machine_would() {
        let (job, hidden) = show(held(JobState::Assigned), &[Action::CheckIn]);
        assert_eq!((job.state, hidden), (JobState::OnSite, false));
        // Already past it (the customer uploaded the signed proposal first): nothing changes.
        let (job, _) = show(held(JobState::Agreed), &[Action::CheckIn]);
        assert_eq!(job.state, JobState::Agreed);
        // The customer's cancel, before and after the Friend arrived.
        assert_eq!(
            show(held(JobState::Assigned), &[Action::Cancel]).0.state,
            JobState::Cancelled
        );
        assert_eq!(
            show(held(JobState::OnSite), &[Action::Cancel]).0.state,
            JobState::OnSite
        );
        // A release hides the job; other kinds leave it as the server said.
        let release = Action::Release {
            reason: None,
            note: None,
        };
        assert!(show(held(JobState::Assigned), &[release]).1);
        let (job, hidden) = show(
            held(JobState::OnSite),
            &[
                Action::Consent {
                    payload: "p".into(),
                },
                Action::Reject { version: 1 },
            ],
        );
        assert_eq!((job.state, hidden), (JobState::OnSite, false));
        assert_eq!(job, held(JobState::OnSite), "nothing else is touched");
    }

    #[test]
    fn a_queued_visit_and_estimate_show_at_once_and_the_latest_estimate_wins() {
        let now = Utc::now();
        let appointment = Appointment {
            start: now + Duration::minutes(20),
            end: now + Duration::minutes(50),
            moved: false,
        };
        let (job, _) = show(
            held(JobState::Assigned),
            &[
                Action::Appointment { appointment },
                Action::OnMyWay {
                    eta: now + Duration::minutes(30),
                },
                Action::OnMyWay {
                    eta: now + Duration::minutes(25),
                },
            ],
        );
        assert_eq!(job.state, JobState::Assigned);
        assert_eq!(job.visit.appointment, Some(appointment));
        assert_eq!(
            job.visit.en_route.map(|r| r.eta),
            Some(now + Duration::minutes(25))
        );
        // On site already: an estimate queued before the check-in was answered shows nothing.
        let (job, _) = show(
            held(JobState::OnSite),
            &[Action::OnMyWay {
                eta: now + Duration::minutes(25),
            }],
        );
        assert_eq!(job.visit.en_route, None);
    }

    #[test]
    fn a_queued_decline_of_a_moved_visit_shows_the_job_searching_again() {
        let now = Utc::now();
        let mut job = held(JobState::Assigned);
        job.visit.appointment = Some(Appointment {
            start: now + Duration::hours(30),
            end: now + Duration::hours(31),
            moved: true,
        });
        let (shown_job, _) = show(job.clone(), &[Action::DeclineAppointment]);
        assert_eq!(shown_job.state, JobState::Open);
        assert_eq!(
            (shown_job.visit.appointment, shown_job.visit.reopened),
            (None, 1)
        );
        assert_eq!(shown_job.friend, None);
        // A confirmed slot cannot be declined: the job stays as the server said.
        if let Some(a) = job.visit.appointment.as_mut() {
            a.moved = false;
        }
        assert_eq!(show(job.clone(), &[Action::DeclineAppointment]).0, job);
    }
}
