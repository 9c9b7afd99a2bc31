//! What happens at each event: real calls on the real sessions of the devices involved, and the
//! follow-up events they lead to. After an event that may have committed a change the backend
//! announces, the pushes the gateways accepted become wakes of their devices ([`push`]).
//!
//! One file per phase of a job's day, each an `impl Sim` block: [`booking`] (booking, who learns
//! of the offer, the accept race, the customer cancelling), [`on_site`] (arriving and checking in, or
//! giving the job back), [`visit`] (the appointment, "on my way", the second search after a
//! release), [`negotiation`] (the price agreed on site, online or by payload),
//! [`closing`] (completion, check-out without success, the Friend leaving, the rating),
//! [`connectivity`] (tunnels and coming back online) and [`push`] (the gateways' pushes waking the
//! phones). [`common`] holds what they all look up. This file says which resources an event holds
//! and which step runs it.

mod booking;
mod closing;
mod common;
mod connectivity;
mod negotiation;
mod on_site;
pub(crate) mod push;
mod visit;

use super::driver::Sim;
use super::events::{Event, Mode, Res, VTime};
use super::ids::{CustomerIx, JobIx};

/// Follow-up events.
type Next = Vec<(VTime, Event)>;

/// Virtual seconds from a change to the wake of a device the backend pushed about it (the
/// gateway's and the phone's share; the backend's own is real).
const PUSH_DELAY: VTime = 3;

impl Sim {
    /// The resources `event` holds.
    pub(crate) fn claims(&self, event: &Event) -> Vec<(Res, Mode)> {
        use Mode::{Exclusive, Race};
        let customer_of = |job: JobIx| {
            self.world
                .job(job)
                .map(|s| s.customer)
                .unwrap_or(CustomerIx(0))
        };
        let job_parties = |job: JobIx| {
            let mut v = vec![
                (Res::Job(job), Exclusive),
                (Res::Customer(customer_of(job)), Exclusive),
            ];
            if let Some(winner) = self.winner(job) {
                v.push((Res::Friend(winner), Exclusive));
            }
            v
        };
        match event {
            Event::Book { job } => vec![
                (Res::Job(*job), Exclusive),
                (Res::Customer(customer_of(*job)), Exclusive),
            ],
            Event::PushWake { friend }
            | Event::SpellStart { friend, .. }
            | Event::SpellEnd { friend } => vec![(Res::Friend(*friend), Exclusive)],
            Event::React { job, reaction } => vec![
                (Res::Job(*job), Race),
                (Res::Friend(reaction.friend), Exclusive),
            ],
            Event::CustomerPush { customer } => vec![(Res::Customer(*customer), Exclusive)],
            Event::BackOnline { friend, job } => {
                let mut v = vec![(Res::Friend(*friend), Exclusive)];
                if let Some(job) = job {
                    v.push((Res::Job(*job), Exclusive));
                    v.push((Res::Customer(customer_of(*job)), Exclusive));
                }
                v
            }
            // Every other event is about one job: it holds the job and its parties.
            other => other.job().map(job_parties).unwrap_or_default(),
        }
    }

    /// Runs one event; returns its follow-ups, with the wakes of the devices the backend pushed
    /// about what the event changed.
    pub(crate) async fn handle(&self, at: VTime, event: Event) -> Next {
        self.metrics.count(&format!("event.{}", event.name()));
        if let Some(job) = event.job() {
            self.metrics.job(job, |r| r.news_at = Some(at));
        }
        let announces = event.may_announce();
        let mut next = self.run_step(at, event).await;
        if announces {
            next.extend(self.announced(at).await);
        }
        next
    }

    /// The step that runs `event`.
    async fn run_step(&self, at: VTime, event: Event) -> Next {
        match event {
            Event::Book { job } => self.book(at, job).await,
            Event::PushWake { friend } => self.push_wake(at, friend).await,
            Event::React { job, reaction } => self.react(at, job, reaction).await,
            Event::CustomerPush { customer } => self.customer_push(at, customer).await,
            Event::CancelOpen { job } => self.cancel(at, job, false).await,
            Event::CancelAssigned { job } => self.cancel(at, job, true).await,
            Event::Appoint { job, friend } => self.appoint(at, job, friend).await,
            Event::OnMyWay {
                job,
                friend,
                update,
            } => self.on_my_way(at, job, friend, update).await,
            Event::Arrive { job } => self.arrive(at, job).await,
            Event::NoShow { job } => self.check_out(at, job, false).await,
            Event::Escalate { job } => self.check_out(at, job, true).await,
            Event::Quote { job } => self.quote(at, job).await,
            Event::CustomerAnswer { job } => self.customer_answer(at, job).await,
            Event::FriendAnswer { job } => self.friend_answer(at, job).await,
            Event::Amend { job } => self.amend(at, job).await,
            Event::CustomerAmendAnswer { job } => self.customer_amend_answer(at, job).await,
            Event::Complete { job } => self.complete(at, job).await,
            Event::BackOnline { friend, job } => self.back_online(at, friend, job).await,
            Event::Rate { job } => self.rate(at, job).await,
            Event::SpellStart { friend, secs } => self.spell_start(at, friend, secs),
            Event::SpellEnd { friend } => self.spell_end(friend).await,
        }
    }
}
