//! How a job ends: completed at the agreed price, checked out unsuccessful (nobody opened) or
//! escalated to the field service; the Friend leaves (delivering at once, or later when back
//! online), and the customer rates.

use super::Next;
use crate::sim::driver::Sim;
use crate::sim::events::{Event, VTime};
use crate::sim::ids::{FriendIx, JobIx};
use crate::sim::metrics::{Dev, Phase};
use friend_protocol::{JobState, PaymentMethod, UnsuccessfulReason};

impl Sim {
    /// The Friend completes `job` at the agreed total, once nothing waits for an answer.
    pub(super) async fn complete(&self, at: VTime, job: JobIx) -> Next {
        let (Some(winner), Some(id), Some(spec)) =
            (self.winner(job), self.job_id(job), self.world.job(job))
        else {
            return Vec::new();
        };
        if let Some(until) = self.spell_until(winner) {
            return vec![(until + 30, Event::Complete { job })];
        }
        let Some(fs) = self.friend_session(winner, "complete").await else {
            return Vec::new();
        };
        let offline = self.offline_on_job(winner);
        if !offline {
            self.sync_friend(winner, "complete.sync").await;
        }
        let agreed = fs.negotiation(id).await.ok().and_then(|n| {
            n.pending()
                .is_none()
                .then_some(n.agreed.map(|q| q.quote.total.minor))
                .flatten()
        });
        let Some(total) = agreed else {
            return self.retry(at, job, Event::Complete { job }, "complete.waiting");
        };
        let payment = if spec.behaviour.cash {
            PaymentMethod::Cash
        } else {
            PaymentMethod::Online
        };
        if self
            .queued(
                Dev::Friend(winner),
                "complete",
                "complete",
                fs.complete(id, payment).await,
            )
            .is_none()
        {
            return self.retry(at, job, Event::Complete { job }, "complete.refused_locally");
        }
        self.metrics.job(job, |r| {
            r.retries = 0;
            r.phase = Phase::Finished;
            r.negotiation.final_total = Some(total);
            r.negotiation.cash = Some(spec.behaviour.cash);
        });
        let rating = spec.behaviour.rating.map(|(_, delay)| delay);
        self.leave(at, winner, job, rating).await
    }

    /// Unsuccessful (nobody there) or escalated.
    pub(super) async fn check_out(&self, at: VTime, job: JobIx, escalate: bool) -> Next {
        let (Some(winner), Some(id)) = (self.winner(job), self.job_id(job)) else {
            return Vec::new();
        };
        if let Some(until) = self.spell_until(winner) {
            let event = if escalate {
                Event::Escalate { job }
            } else {
                Event::NoShow { job }
            };
            return vec![(until + 30, event)];
        }
        let Some(fs) = self.friend_session(winner, "check_out").await else {
            return Vec::new();
        };
        let done = if escalate {
            let note = Some("Wiring behind the wall needs the field service".to_owned());
            self.queued(
                Dev::Friend(winner),
                "escalate",
                "escalate",
                fs.escalate(id, note).await,
            )
        } else {
            let note = Some("Waited 10 minutes and called twice".to_owned());
            self.queued(
                Dev::Friend(winner),
                "unsuccessful",
                "unsuccessful",
                fs.check_out_unsuccessful(id, UnsuccessfulReason::CustomerAbsent, note)
                    .await,
            )
        };
        self.metrics.count(if escalate {
            "onsite.escalated"
        } else {
            "onsite.customer_absent"
        });
        if done.is_some() {
            self.metrics.job(job, |r| r.phase = Phase::Finished);
        }
        self.leave(at, winner, job, None).await
    }

    /// The Friend leaves the job: release it; online, deliver (the backend tells the customer);
    /// offline, come back online a little later.
    async fn leave(&self, at: VTime, winner: FriendIx, job: JobIx, rating: Option<i64>) -> Next {
        self.release_friend(winner, job);
        if self.offline_on_job(winner) {
            let mut rng = self.rng(job, 4);
            return vec![(
                at + rng.i64(300..1200),
                Event::BackOnline {
                    friend: winner,
                    job: Some(job),
                },
            )];
        }
        self.sync_friend(winner, "leave.deliver").await;
        let mut next = Vec::new();
        if let Some(delay) = rating {
            next.push((at + delay, Event::Rate { job }));
        }
        next
    }

    /// The customer rates the completed job (waiting until their phone knows it is completed).
    pub(super) async fn rate(&self, at: VTime, job: JobIx) -> Next {
        let (Some(id), Some(spec)) = (self.job_id(job), self.world.job(job)) else {
            return Vec::new();
        };
        let Some((stars, _)) = spec.behaviour.rating else {
            return Vec::new();
        };
        let customer = spec.customer;
        let Some(cs) = self.customer_session(customer, "rate").await else {
            return Vec::new();
        };
        self.sync_customer(customer, "rate.sync").await;
        let state = cs
            .job(id)
            .await
            .ok()
            .and_then(|cj| cj.details.map(|d| d.state));
        if state != Some(JobState::Completed) {
            return self.retry(at, job, Event::Rate { job }, "rate.waiting");
        }
        let comment = (stars >= 4).then(|| "Fast and friendly".to_owned());
        if self
            .queued(
                Dev::Customer(customer),
                "rate",
                "rate",
                cs.rate(id, stars, comment).await,
            )
            .is_some()
        {
            self.metrics.add("rating.stars", u64::from(stars));
            self.metrics.count("rating.count");
        }
        self.sync_customer(customer, "rate.deliver").await;
        Vec::new()
    }
}
