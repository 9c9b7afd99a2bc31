//! The job state machine of SPEC §3, defined once: [`transition`] decides every state change and who
//! may make it. The backend applies it inside its write transactions; the client core uses it to
//! refuse impossible actions before they are queued.

use crate::{AccountId, JobState};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Who attempts a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// The customer with this account id.
    Customer(AccountId),
    /// The Friend (or Pro) with this account id.
    Friend(AccountId),
    /// The server's clock (expiry).
    Server,
}

impl Actor {
    fn role(&self) -> &'static str {
        match self {
            Actor::Customer(_) => "customer",
            Actor::Friend(_) => "friend",
            Actor::Server => "server",
        }
    }
}

/// A transition request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Event {
    /// A Friend takes an open job (first wins).
    Accept,
    /// The holding Friend gives an assigned job back before arriving.
    Release,
    /// The holding Friend arrives.
    CheckIn,
    /// Either party accepts the latest price proposal (first agreement or an amendment).
    AgreePrice,
    /// The holding Friend completes an agreed job.
    Complete,
    /// The customer cancels before the Friend is on site.
    Cancel,
    /// The server expires an open job nobody accepted in time.
    Expire,
    /// The holding Friend hands the job to the field service.
    Escalate,
    /// The holding Friend checks out without success (customer absent, cannot help).
    CheckOutUnsuccessful,
    /// The holding Friend records the agreed visit (the job stays assigned).
    SetAppointment,
    /// The holding Friend is on the way, with an arrival estimate (the job stays assigned).
    OnMyWay,
    /// The customer declines a moved visit: the Friend is released without penalty and the job is
    /// open again.
    DeclineAppointment,
}

impl Event {
    /// Every event.
    pub const ALL: [Event; 12] = [
        Event::Accept,
        Event::Release,
        Event::CheckIn,
        Event::AgreePrice,
        Event::Complete,
        Event::Cancel,
        Event::Expire,
        Event::Escalate,
        Event::CheckOutUnsuccessful,
        Event::SetAppointment,
        Event::OnMyWay,
        Event::DeclineAppointment,
    ];

    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Accept => "accept",
            Event::Release => "release",
            Event::CheckIn => "check_in",
            Event::AgreePrice => "agree_price",
            Event::Complete => "complete",
            Event::Cancel => "cancel",
            Event::Expire => "expire",
            Event::Escalate => "escalate",
            Event::CheckOutUnsuccessful => "check_out_unsuccessful",
            Event::SetAppointment => "set_appointment",
            Event::OnMyWay => "on_my_way",
            Event::DeclineAppointment => "decline_appointment",
        }
    }
}

/// The facts about a job the state machine decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobFacts {
    /// Current state.
    pub state: JobState,
    /// The booking customer.
    pub customer: AccountId,
    /// The Friend holding the job, if any.
    pub friend: Option<AccountId>,
}

impl JobFacts {
    /// The facts of a job as its customer or holding Friend sees it.
    pub fn of(job: &crate::JobDetails) -> JobFacts {
        JobFacts {
            state: job.state,
            customer: job.customer_id,
            friend: job.friend.as_ref().map(|f| f.id),
        }
    }
}

/// Why a transition was refused. Every refusal names its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refusal {
    /// This kind of actor may never make this transition.
    #[error("a {role} may not {event}")]
    WrongRole {
        /// The actor's role.
        role: &'static str,
        /// The attempted event.
        event: &'static str,
    },
    /// The customer does not own the job.
    #[error("this job belongs to another customer")]
    NotYourJob,
    /// The Friend does not hold the job.
    #[error("this job is not assigned to you")]
    NotAssignedToYou,
    /// The event is impossible in the job's current state.
    #[error("cannot {event} a job that is {state}")]
    InvalidState {
        /// The attempted event.
        event: &'static str,
        /// The job's state.
        state: &'static str,
    },
}

impl Refusal {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::WrongRole { .. } => "wrong_role",
            Refusal::NotYourJob => "not_your_job",
            Refusal::NotAssignedToYou => "not_assigned_to_you",
            Refusal::InvalidState { .. } => "invalid_transition",
        }
    }
}

/// Whether `event` by `actor` has already taken effect: the holding Friend's check-in arriving
/// after the job moved past it without them. That happens when the Friend checked in and proposed
/// a price offline, and the customer uploaded the signed proposal first (the signature proves the
/// arrival, so the server applies the check-in then). Such a request changes nothing and is
/// answered with the job as it is, so the Friend's replayed outbox is not refused.
pub fn already_done(job: &JobFacts, actor: &Actor, event: Event) -> bool {
    matches!(
        (event, actor, job.state),
        (Event::CheckIn, Actor::Friend(f), JobState::OnSite | JobState::Agreed)
            if job.friend == Some(*f)
    )
}

/// Decides one transition: the job's facts after `event` by `actor`, or why it is refused.
///
/// Checks run in a fixed order — role, then ownership, then state — so a stranger learns nothing
/// about a job's state from the refusal.
pub fn transition(job: &JobFacts, actor: &Actor, event: Event) -> Result<JobFacts, Refusal> {
    use JobState::*;
    let wrong_role = || Refusal::WrongRole {
        role: actor.role(),
        event: event.as_str(),
    };
    let invalid = || Refusal::InvalidState {
        event: event.as_str(),
        state: job.state.as_str(),
    };

    // Who may attempt the event at all, and whether they are the right customer/Friend.
    match (event, actor) {
        (Event::Accept, Actor::Friend(_)) => {}
        (Event::Expire, Actor::Server) => {}
        (Event::Cancel, Actor::Customer(c)) => {
            if *c != job.customer {
                return Err(Refusal::NotYourJob);
            }
        }
        (Event::AgreePrice | Event::DeclineAppointment, Actor::Customer(c)) => {
            if *c != job.customer {
                return Err(Refusal::NotYourJob);
            }
        }
        (
            Event::Release
            | Event::CheckIn
            | Event::AgreePrice
            | Event::Complete
            | Event::Escalate
            | Event::CheckOutUnsuccessful
            | Event::SetAppointment
            | Event::OnMyWay,
            Actor::Friend(f),
        ) => {
            if job.friend != Some(*f) || !(job.state.is_held() || job.state.is_terminal()) {
                return Err(Refusal::NotAssignedToYou);
            }
        }
        _ => return Err(wrong_role()),
    }

    let (state, friend) = match (event, job.state) {
        (Event::Accept, Open) => match actor {
            Actor::Friend(f) => (Assigned, Some(*f)),
            _ => return Err(wrong_role()),
        },
        (Event::Release, Assigned) => (Open, None),
        (Event::CheckIn, Assigned) => (OnSite, job.friend),
        (Event::AgreePrice, OnSite | Agreed) => (Agreed, job.friend),
        (Event::Complete, Agreed) => (Completed, job.friend),
        (Event::Cancel, Open | Assigned) => (Cancelled, job.friend),
        (Event::Expire, Open) => (Expired, None),
        (Event::Escalate, OnSite | Agreed) => (Escalated, job.friend),
        (Event::CheckOutUnsuccessful, OnSite | Agreed) => (Unsuccessful, job.friend),
        (Event::SetAppointment | Event::OnMyWay, Assigned) => (Assigned, job.friend),
        (Event::DeclineAppointment, Assigned) => (Open, None),
        _ => return Err(invalid()),
    };
    Ok(JobFacts {
        state,
        customer: job.customer,
        friend,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn id(n: u128) -> AccountId {
        AccountId(Uuid::from_u128(n))
    }

    fn open() -> JobFacts {
        JobFacts {
            state: JobState::Open,
            customer: id(1),
            friend: None,
        }
    }

    #[test]
    fn happy_path() {
        let f = Actor::Friend(id(10));
        let c = Actor::Customer(id(1));
        let j = transition(&open(), &f, Event::Accept).unwrap();
        assert_eq!((j.state, j.friend), (JobState::Assigned, Some(id(10))));
        let j = transition(&j, &f, Event::CheckIn).unwrap();
        let j = transition(&j, &c, Event::AgreePrice).unwrap();
        let j = transition(&j, &f, Event::AgreePrice).unwrap(); // amendment
        let j = transition(&j, &f, Event::Complete).unwrap();
        assert_eq!(j.state, JobState::Completed);
    }

    #[test]
    fn a_late_check_in_is_already_done_only_for_the_holder() {
        let f = Actor::Friend(id(10));
        let assigned = transition(&open(), &f, Event::Accept).unwrap();
        assert!(!already_done(&assigned, &f, Event::CheckIn));
        let on_site = transition(&assigned, &f, Event::CheckIn).unwrap();
        let agreed = transition(&on_site, &Actor::Customer(id(1)), Event::AgreePrice).unwrap();
        for j in [&on_site, &agreed] {
            assert!(already_done(j, &f, Event::CheckIn));
            assert!(!already_done(j, &Actor::Friend(id(11)), Event::CheckIn));
            assert!(!already_done(j, &f, Event::Complete));
        }
        let done = transition(&agreed, &f, Event::Complete).unwrap();
        assert!(!already_done(&done, &f, Event::CheckIn));
    }

    #[test]
    fn second_accept_is_refused() {
        let j = transition(&open(), &Actor::Friend(id(10)), Event::Accept).unwrap();
        let err = transition(&j, &Actor::Friend(id(11)), Event::Accept).unwrap_err();
        assert_eq!(err.code(), "invalid_transition");
    }

    #[test]
    fn strangers_are_refused_before_state_is_revealed() {
        let j = transition(&open(), &Actor::Friend(id(10)), Event::Accept).unwrap();
        assert_eq!(
            transition(&j, &Actor::Friend(id(11)), Event::CheckIn),
            Err(Refusal::NotAssignedToYou)
        );
        assert_eq!(
            transition(&j, &Actor::Customer(id(2)), Event::Cancel),
            Err(Refusal::NotYourJob)
        );
        assert_eq!(
            transition(&j, &Actor::Server, Event::Cancel)
                .unwrap_err()
                .code(),
            "wrong_role"
        );
    }

    #[test]
    fn release_reopens() {
        let f = Actor::Friend(id(10));
        let j = transition(&open(), &f, Event::Accept).unwrap();
        let j = transition(&j, &f, Event::Release).unwrap();
        assert_eq!(j, open());
    }

    fn actor() -> impl Strategy<Value = Actor> {
        prop_oneof![
            (1u128..=2).prop_map(|n| Actor::Customer(id(n))),
            (10u128..=13).prop_map(|n| Actor::Friend(id(n))),
            Just(Actor::Server),
        ]
    }

    proptest! {
        /// Whatever happens, a job is held by at most one Friend, only held states have one,
        /// terminal states never change, and every refusal names its reason.
        #[test]
        fn invariants_hold_for_any_sequence(
            steps in proptest::collection::vec((actor(), proptest::sample::select(Event::ALL.to_vec())), 0..40)
        ) {
            let mut job = open();
            for (actor, event) in steps {
                let before = job;
                match transition(&job, &actor, event) {
                    Ok(next) => {
                        prop_assert!(!before.state.is_terminal(), "left terminal state {:?}", before.state);
                        prop_assert_eq!(next.customer, before.customer);
                        if let (Some(a), Some(b)) = (before.friend, next.friend) {
                            prop_assert_eq!(a, b, "holder changed without release");
                        }
                        if next.state.is_held() {
                            prop_assert!(next.friend.is_some());
                        }
                        if next.state == JobState::Open {
                            prop_assert!(next.friend.is_none());
                        }
                        job = next;
                    }
                    Err(refusal) => {
                        prop_assert!(!refusal.code().is_empty());
                        prop_assert!(!refusal.to_string().is_empty());
                    }
                }
            }
        }
    }
}
