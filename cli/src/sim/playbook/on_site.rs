//! On site: the winner arrives and checks in (learning of a cancellation only then), waits while
//! another job runs long or gives the job back ([`Sim::give_back`]), and may lose the signal in
//! the basement; what follows is the quote, a no-show or an escalation.

use super::Next;
use crate::sim::devices::Offline;
use crate::sim::driver::Sim;
use crate::sim::events::{Event, VTime};
use crate::sim::ids::JobIx;
use crate::sim::metrics::{Dev, Phase};
use friend_protocol::{JobState, Place, ReleaseReason};

/// How often an arrival waits ten minutes for the Friend's previous job before giving this one
/// back (two hours).
const MAX_ARRIVAL_WAITS: u32 = 12;

impl Sim {
    /// The winner arrives at `job` and checks in.
    pub(super) async fn arrive(&self, at: VTime, job: JobIx) -> Next {
        let (Some(winner), Some(id), Some(spec)) =
            (self.winner(job), self.job_id(job), self.world.job(job))
        else {
            return Vec::new();
        };
        if let Some(until) = self.spell_until(winner) {
            return vec![(until + 30, Event::Arrive { job })];
        }
        let Some(device) = self.friend_device(winner) else {
            return Vec::new();
        };
        // Still on another job (a slot job's time came while a now-job ran long): wait, and
        // after two hours give the job back, so it is not left hanging.
        let busy_elsewhere = device.state().is_some_and(|s| {
            s.current.is_some_and(|current| current != job) || s.offline.is_some()
        });
        if busy_elsewhere {
            let tries = self.metrics.job(job, |r| {
                r.retries += 1;
                r.retries
            });
            if tries.unwrap_or(0) <= MAX_ARRIVAL_WAITS {
                return vec![(at + 600, Event::Arrive { job })];
            }
            return self
                .give_back(at, winner, job, id, ReleaseReason::CannotCome)
                .await;
        }
        self.metrics.job(job, |r| {
            r.retries = 0;
            r.visit.arrived_at.get_or_insert(at);
        });
        let Some(fs) = self.friend_session(winner, "arrive").await else {
            return Vec::new();
        };
        self.sync_friend(winner, "arrive.sync").await;
        let state = fs.job(id).await.ok().map(|mj| mj.details.state);
        if state != Some(JobState::Assigned) {
            // Cancelled meanwhile (the Friend learns it here).
            self.metrics.count("arrive.job_gone");
            self.release_friend(winner, job);
            self.metrics.job(job, |r| r.phase = Phase::Cancelled);
            return Vec::new();
        }
        if self
            .queued(
                Dev::Friend(winner),
                "check_in",
                "check_in",
                fs.check_in(id).await,
            )
            .is_none()
        {
            self.release_friend(winner, job);
            return Vec::new();
        }
        self.sync_friend(winner, "check_in.deliver").await;
        device.update(|s| s.current = Some(job));
        self.metrics.job(job, |r| r.phase = Phase::OnSite);
        let b = &spec.behaviour;
        let mut rng = self.rng(job, 3);
        let mut next = Vec::new();
        if b.customer_absent {
            next.push((at + 600, Event::NoShow { job }));
        } else if b.escalate {
            next.push((at + rng.i64(600..1500), Event::Escalate { job }));
        } else {
            next.push((at + rng.i64(300..720), Event::Quote { job }));
        }
        if b.basement && spec.place == Place::OnSite {
            // Down to the basement: the signal goes at the door.
            self.metrics.count("offline.basement");
            if device.foreground {
                device.stop_foreground().await;
            }
            device.proxy.go_offline();
            device.update(|s| s.offline = Some(Offline::Basement { job }));
        }
        next
    }
}
