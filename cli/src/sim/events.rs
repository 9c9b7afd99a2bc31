//! The discrete-event machinery: what can happen ([`Event`]), the agenda ordered by virtual time,
//! and the [`Sequencer`] that lets independent events run at the same time while events on the
//! same device or job run strictly in virtual-time order.
//!
//! Events touch resources (a Friend's device, a customer's device, a job). Two events that share a
//! resource run one after the other, in the order they were dispatched — except accepts of the same
//! job at the same virtual second, which join one *race group* and really run concurrently: that
//! is the accept race.

use super::ids::{CustomerIx, FriendIx, JobIx};
use super::model::Reaction;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use tokio::sync::watch;

/// Seconds since 07:00 of the virtual day.
pub type VTime = i64;

/// Something that happens at a virtual instant.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A customer books job `job`.
    Book {
        /// Job index.
        job: JobIx,
    },
    /// A push reached a Friend's phone: the app hands it to the core (one sync). The pushes are
    /// the ones the gateways accepted for this device since its last wake.
    PushWake {
        /// Friend index.
        friend: FriendIx,
    },
    /// A Friend looks at an offer and accepts or declines it.
    React {
        /// Job index.
        job: JobIx,
        /// Who, how and what.
        reaction: Reaction,
    },
    /// A push reached a customer's phone: the app hands it to the core (one sync).
    CustomerPush {
        /// Customer index.
        customer: CustomerIx,
    },
    /// The customer gives up waiting and cancels the open job.
    CancelOpen {
        /// Job index.
        job: JobIx,
    },
    /// The customer cancels after a Friend accepted.
    CancelAssigned {
        /// Job index.
        job: JobIx,
    },
    /// The winner calls the customer and records the agreed visit (or gives the job back when
    /// no time fits); then sets off.
    Appoint {
        /// Job index.
        job: JobIx,
        /// The winner this step belongs to (a later winner's steps are their own).
        friend: FriendIx,
    },
    /// The winner taps "on my way" with an estimate from their position; `update` is the new
    /// estimate sent halfway through a long trip.
    OnMyWay {
        /// Job index.
        job: JobIx,
        /// The winner this step belongs to.
        friend: FriendIx,
        /// A second estimate on the way.
        update: bool,
    },
    /// The Friend arrives and checks in.
    Arrive {
        /// Job index.
        job: JobIx,
    },
    /// Nobody opened: check out unsuccessful.
    NoShow {
        /// Job index.
        job: JobIx,
    },
    /// Too complex: escalate.
    Escalate {
        /// Job index.
        job: JobIx,
    },
    /// The Friend proposes the first quote.
    Quote {
        /// Job index.
        job: JobIx,
    },
    /// The customer answers a proposal.
    CustomerAnswer {
        /// Job index.
        job: JobIx,
    },
    /// The Friend answers the customer's counter or rejection.
    FriendAnswer {
        /// Job index.
        job: JobIx,
    },
    /// More work found: the Friend proposes an amendment.
    Amend {
        /// Job index.
        job: JobIx,
    },
    /// The customer answers the amendment.
    CustomerAmendAnswer {
        /// Job index.
        job: JobIx,
    },
    /// The Friend completes the job.
    Complete {
        /// Job index.
        job: JobIx,
    },
    /// The Friend's phone has signal again and replays its outbox.
    BackOnline {
        /// Friend index.
        friend: FriendIx,
        /// The job worked on offline, if any.
        job: Option<JobIx>,
    },
    /// The customer rates the job.
    Rate {
        /// Job index.
        job: JobIx,
    },
    /// A Friend loses connectivity for `secs` (a tunnel).
    SpellStart {
        /// Friend index.
        friend: FriendIx,
        /// How long.
        secs: i64,
    },
    /// The spell ends.
    SpellEnd {
        /// Friend index.
        friend: FriendIx,
    },
}

impl Event {
    /// The job the event is about, if one.
    pub fn job(&self) -> Option<JobIx> {
        match self {
            Event::Book { job }
            | Event::React { job, .. }
            | Event::CancelOpen { job }
            | Event::CancelAssigned { job }
            | Event::Appoint { job, .. }
            | Event::OnMyWay { job, .. }
            | Event::Arrive { job }
            | Event::NoShow { job }
            | Event::Escalate { job }
            | Event::Quote { job }
            | Event::CustomerAnswer { job }
            | Event::FriendAnswer { job }
            | Event::Amend { job }
            | Event::CustomerAmendAnswer { job }
            | Event::Complete { job }
            | Event::Rate { job } => Some(*job),
            Event::BackOnline { job, .. } => *job,
            Event::PushWake { .. }
            | Event::CustomerPush { .. }
            | Event::SpellStart { .. }
            | Event::SpellEnd { .. } => None,
        }
    }

    /// Whether the event may commit a change the backend announces by push (its devices
    /// deliver actions or accept); after such an event the simulation reads the gateways.
    pub fn may_announce(&self) -> bool {
        !matches!(
            self,
            Event::PushWake { .. } | Event::CustomerPush { .. } | Event::SpellStart { .. }
        )
    }

    /// Stable name for logs and counters.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Book { .. } => "book",
            Event::PushWake { .. } => "push_wake",
            Event::React { .. } => "react",
            Event::CustomerPush { .. } => "customer_push",
            Event::CancelOpen { .. } => "cancel_open",
            Event::CancelAssigned { .. } => "cancel_assigned",
            Event::Appoint { .. } => "appoint",
            Event::OnMyWay { .. } => "on_my_way",
            Event::Arrive { .. } => "arrive",
            Event::NoShow { .. } => "no_show",
            Event::Escalate { .. } => "escalate",
            Event::Quote { .. } => "quote",
            Event::CustomerAnswer { .. } => "customer_answer",
            Event::FriendAnswer { .. } => "friend_answer",
            Event::Amend { .. } => "amend",
            Event::CustomerAmendAnswer { .. } => "customer_amend_answer",
            Event::Complete { .. } => "complete",
            Event::BackOnline { .. } => "back_online",
            Event::Rate { .. } => "rate",
            Event::SpellStart { .. } => "spell_start",
            Event::SpellEnd { .. } => "spell_end",
        }
    }
}

/// An event on the agenda.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// When.
    pub at: VTime,
    /// Insertion order (ties run in the order they were scheduled).
    pub seq: u64,
    /// What.
    pub event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: the BinaryHeap is a max-heap and the earliest event must come out first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The events still to happen, earliest first.
#[derive(Debug, Default)]
pub struct Agenda {
    heap: BinaryHeap<Scheduled>,
    next_seq: u64,
}

impl Agenda {
    /// Schedules `event` at `at`.
    pub fn push(&mut self, at: VTime, event: Event) {
        self.next_seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.next_seq,
            event,
        });
    }

    /// When the next event happens.
    pub fn next_at(&self) -> Option<VTime> {
        self.heap.peek().map(|s| s.at)
    }

    /// Takes the next event if it happens no later than `limit`.
    pub fn pop_until(&mut self, limit: VTime) -> Option<Scheduled> {
        if self.heap.peek()?.at <= limit {
            self.heap.pop()
        } else {
            None
        }
    }

    /// Events still waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Nothing left.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// A resource events contend for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Res {
    /// A Friend's device.
    Friend(FriendIx),
    /// A customer's device.
    Customer(CustomerIx),
    /// A job.
    Job(JobIx),
}

/// How an event holds a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Alone, in order.
    Exclusive,
    /// Together with the other racers of the same virtual second, in order otherwise.
    Race,
}

/// Signals "done" when dropped (also when the event's task panics or is cancelled).
pub struct Done(watch::Sender<bool>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// Waits for an earlier event to be done.
#[derive(Clone)]
pub struct Wait(watch::Receiver<bool>);

impl Wait {
    fn is_done(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the event is done.
    pub async fn done(mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

#[derive(Default)]
struct Chain {
    time: VTime,
    race: bool,
    /// What the current group waits for (a late racer of the same group waits for it too).
    before: Vec<Wait>,
    /// The current group's members.
    current: Vec<Wait>,
}

/// Orders events on shared resources (see the module documentation).
#[derive(Default)]
pub struct Sequencer {
    chains: HashMap<Res, Chain>,
    entered: u64,
}

impl Sequencer {
    /// Registers an event at `at` holding `claims`; returns what it must wait for and its done
    /// signal. Call in dispatch order.
    pub fn enter(&mut self, at: VTime, claims: &[(Res, Mode)]) -> (Vec<Wait>, Done) {
        let (tx, rx) = watch::channel(false);
        let me = Wait(rx);
        let mut waits = Vec::new();
        for (res, mode) in claims {
            let chain = self.chains.entry(*res).or_default();
            let race = *mode == Mode::Race;
            if race && chain.race && chain.time == at && !chain.current.is_empty() {
                waits.extend(chain.before.iter().cloned());
                chain.current.push(me.clone());
            } else {
                let previous = std::mem::take(&mut chain.current);
                waits.extend(previous.iter().cloned());
                chain.before = previous;
                chain.current = vec![me.clone()];
                chain.time = at;
                chain.race = race;
            }
        }
        self.entered += 1;
        if self.entered.is_multiple_of(4096) {
            self.prune();
        }
        waits.retain(|w| !w.is_done());
        (waits, Done(tx))
    }

    /// Forgets chains whose events are all done.
    fn prune(&mut self) {
        self.chains
            .retain(|_, c| c.current.iter().chain(&c.before).any(|w| !w.is_done()));
        for c in self.chains.values_mut() {
            c.before.retain(|w| !w.is_done());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agenda_is_earliest_first_then_fifo() {
        let mut a = Agenda::default();
        a.push(
            5,
            Event::SpellEnd {
                friend: FriendIx(1),
            },
        );
        a.push(
            3,
            Event::SpellEnd {
                friend: FriendIx(2),
            },
        );
        a.push(
            5,
            Event::SpellEnd {
                friend: FriendIx(3),
            },
        );
        assert_eq!(a.pop_until(4).map(|s| s.at), Some(3));
        assert!(a.pop_until(4).is_none());
        let order: Vec<_> = std::iter::from_fn(|| a.pop_until(10))
            .map(|s| s.event)
            .collect();
        assert_eq!(
            order,
            vec![
                Event::SpellEnd {
                    friend: FriendIx(1)
                },
                Event::SpellEnd {
                    friend: FriendIx(3)
                }
            ]
        );
    }

    #[test]
    fn racers_of_one_second_run_together_and_others_in_order() {
        let mut s = Sequencer::default();
        let job = (Res::Job(JobIx(1)), Mode::Race);
        let (w0, d0) = s.enter(10, &[(Res::Job(JobIx(1)), Mode::Exclusive)]);
        assert!(w0.is_empty());
        let (w1, d1) = s.enter(20, &[job, (Res::Friend(FriendIx(1)), Mode::Exclusive)]);
        let (w2, d2) = s.enter(20, &[job, (Res::Friend(FriendIx(2)), Mode::Exclusive)]);
        assert_eq!(
            (w1.len(), w2.len()),
            (1, 1),
            "both racers wait for the booking only"
        );
        let (w3, _d3) = s.enter(21, &[job, (Res::Friend(FriendIx(3)), Mode::Exclusive)]);
        assert_eq!(w3.len(), 2, "a later racer waits for both");
        drop(d0);
        assert!(w1[0].is_done());
        drop((d1, d2));
        assert!(w3.iter().all(Wait::is_done));
    }
}
