//! What every phase looks up or does the same way: where a job stands (its winner, server id,
//! expiry), whether a Friend is offline, the per-job random draws, the devices' sessions and
//! syncs, counting a queued action, retrying a step that waits for the other side, and freeing
//! the Friend when a job is done.

use super::Next;
use crate::sim::devices::{Offline, code};
use crate::sim::driver::Sim;
use crate::sim::events::{Event, VTime};
use crate::sim::ids::{CustomerIx, FriendIx, JobIx};
use crate::sim::metrics::{Dev, Phase};
use friend_core::{CoreError, CustomerSession, FriendSession};
use friend_protocol::{JobId, Place};
use std::sync::Arc;

/// How often a step waits for the other side before giving up.
const MAX_RETRIES: u32 = 6;

impl Sim {
    /// The Friend who won `job`, as far as the simulation knows.
    pub(super) fn winner(&self, job: JobIx) -> Option<FriendIx> {
        self.metrics
            .job(job, |r| r.accepted.map(|(_, friend)| friend))
            .flatten()
    }

    /// The server's id of `job`, once it is booked.
    pub(super) fn job_id(&self, job: JobIx) -> Option<JobId> {
        self.metrics.job(job, |r| r.id).flatten()
    }

    /// When the open job expires on the server (virtual seconds).
    pub(super) fn expires_at(&self, job: JobIx) -> Option<VTime> {
        let spec = self.world.job(job)?;
        let (booked, reopened) = self
            .metrics
            .job(job, |r| (r.booked_at, r.visit.releases.last().map(|x| x.0)))?;
        Some(match spec.slot {
            Some((start, _)) => spec.at + start,
            // A released now-job gets a fresh three hours.
            None => reopened.unwrap_or(booked?) + 3 * 3600,
        })
    }

    /// When the Friend's tunnel ends, if they are in one.
    pub(super) fn spell_until(&self, friend: FriendIx) -> Option<VTime> {
        match self.friend_device(friend)?.state()?.offline? {
            Offline::Spell { until } => Some(until),
            Offline::Basement { .. } => None,
        }
    }

    /// The Friend works without signal on site (a basement).
    pub(super) fn offline_on_job(&self, friend: FriendIx) -> bool {
        self.friend_device(friend)
            .and_then(|d| d.state())
            .is_some_and(|s| matches!(s.offline, Some(Offline::Basement { .. })))
    }

    /// The random draws of one step of `job`: seeded by the run's seed, the job and `salt`, so
    /// they do not depend on the order in which concurrent events ran.
    pub(super) fn rng(&self, job: JobIx, salt: u64) -> fastrand::Rng {
        let mix = (job.0 as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        fastrand::Rng::with_seed(self.config.seed ^ mix)
    }

    /// The Friend's session (opened if it was closed); a failure is recorded under `during`.
    pub(super) async fn friend_session(
        &self,
        friend: FriendIx,
        during: &str,
    ) -> Option<Arc<FriendSession>> {
        match self.friend_device(friend)?.session().await {
            Ok(s) => Some(s),
            Err(e) => {
                self.metrics.error(during, &code(&e));
                None
            }
        }
    }

    /// The customer's session (opened if it was closed); a failure is recorded under `during`.
    pub(super) async fn customer_session(
        &self,
        customer: CustomerIx,
        during: &str,
    ) -> Option<Arc<CustomerSession>> {
        match self.customer_device(customer)?.session().await {
            Ok(s) => Some(s),
            Err(e) => {
                self.metrics.error(during, &code(&e));
                None
            }
        }
    }

    /// Delivers and pulls on the Friend's device; a failure is recorded under `during`.
    pub(super) async fn sync_friend(&self, friend: FriendIx, during: &str) {
        if let Some(d) = self.friend_device(friend)
            && let Err(e) = d.sync().await
        {
            self.metrics.error(during, &code(&e));
        }
    }

    /// Delivers and pulls on the customer's device; a failure is recorded under `during`.
    pub(super) async fn sync_customer(&self, customer: CustomerIx, during: &str) {
        if let Some(d) = self.customer_device(customer)
            && let Err(e) = d.sync().await
        {
            self.metrics.error(during, &code(&e));
        }
    }

    /// Counts a successful queued action, or records the failure.
    pub(super) fn queued<T>(
        &self,
        dev: Dev,
        kind: &'static str,
        during: &str,
        r: Result<T, CoreError>,
    ) -> Option<T> {
        match r {
            Ok(v) => {
                self.metrics.queued(dev, kind);
                Some(v)
            }
            Err(e) => {
                self.metrics.error(during, &code(&e));
                None
            }
        }
    }

    /// Tries `event` again in a minute while the other side has not answered; after
    /// [`MAX_RETRIES`] a Friend on site escalates instead, anything else gives up.
    pub(super) fn retry(&self, at: VTime, job: JobIx, event: Event, what: &str) -> Next {
        let tries = self
            .metrics
            .job(job, |r| {
                r.retries += 1;
                r.retries
            })
            .unwrap_or(MAX_RETRIES + 1);
        if tries > MAX_RETRIES {
            self.metrics.count(&format!("{what}.gave_up"));
            // A Friend stuck on site hands the job over rather than leaving it hanging.
            let on_site = self
                .metrics
                .job(job, |r| r.phase == Phase::OnSite)
                .unwrap_or(false);
            if on_site && !matches!(event, Event::Rate { .. }) {
                self.metrics.job(job, |r| r.retries = 0);
                return vec![(at + 60, Event::Escalate { job })];
            }
            return Vec::new();
        }
        self.metrics.count(what);
        vec![(at + 60, event)]
    }

    /// The Friend is done with `job` and stays at its place.
    pub(super) fn release_friend(&self, friend: FriendIx, job: JobIx) {
        let place = self
            .world
            .job(job)
            .filter(|s| s.place == Place::OnSite)
            .map(|s| s.location);
        if let Some(d) = self.friend_device(friend) {
            d.update(|s| {
                if s.current == Some(job) {
                    s.current = None;
                }
                s.slots.retain(|(x, _, _)| *x != job);
                if let Some(p) = place {
                    s.position = p;
                }
            });
        }
    }

    /// How long the work on `job` takes, virtual seconds (at least ten minutes).
    pub(super) fn work_secs(&self, job: JobIx) -> VTime {
        self.world
            .job(job)
            .map(|s| {
                (f64::from(s.service.duration_minutes) * 60.0 * s.behaviour.work_factor) as VTime
            })
            .unwrap_or(3600)
            .max(600)
    }
}
