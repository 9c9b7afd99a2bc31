//! Pushes as the phones get them. The backend decides who is pushed and sends through the fake
//! gateways ([`crate::sim::gateway`]); after every event that may have committed a change the
//! backend announces, the simulation waits until the gateways answered everything queued and
//! turns each push they accepted into a wake of the device it was addressed to: the app hands
//! the push's data to the core's `on_push` — one sync.
//!
//! A wake comes [`PUSH_DELAY`] virtual seconds after the change the push is about. Pushes that
//! reach a device while its wake is still due join that wake, and a device woken less than
//! `push_coalesce_secs` ago is woken again only when that time is up (one sync then serves all
//! its pushes): the app's own debounce, which keeps a day's syncs affordable. A phone without
//! signal gets its pushes with the next sync after the tunnel (nothing to do here).

use super::{Next, PUSH_DELAY};
use crate::sim::devices::code;
use crate::sim::driver::Sim;
use crate::sim::events::{Event, VTime};
use crate::sim::gateway::{Arrival, PushKind};
use crate::sim::ids::{CustomerIx, FriendIx};
use crate::sim::metrics::Dev;

/// A device's wake-ups.
#[derive(Debug, Default)]
pub(crate) struct WakeState {
    /// Pushes for the next wake; `true` for the one that woke the device at once.
    pending: Vec<(Arrival, bool)>,
    /// A wake is due.
    scheduled: bool,
    /// Virtual second of the last wake.
    last: Option<VTime>,
}

impl Sim {
    /// After an event at `at` that may have committed an announced change: waits until the
    /// gateways answered every queued push, and wakes the devices the new ones were sent to.
    pub(super) async fn announced(&self, at: VTime) -> Next {
        if let Err(e) = self.gateway.settle().await {
            tracing::warn!("push gateways: {e}");
            self.metrics.error("push.settle", "timeout");
        }
        self.wakes_for(at, self.gateway.take_new())
    }

    /// The wakes for `arrivals`, read after an event at `at`.
    fn wakes_for(&self, at: VTime, arrivals: Vec<Arrival>) -> Next {
        let mut next = Vec::new();
        let Ok(mut wakes) = self.wakes.lock() else {
            return next;
        };
        for arrival in arrivals {
            let Some(device) = arrival.device else {
                continue;
            };
            let news = arrival
                .job
                .and_then(|id| self.metrics.job_of(id))
                .and_then(|job| self.metrics.job(job, |r| r.news_at).flatten())
                .unwrap_or(at);
            let due = news + PUSH_DELAY;
            let w = wakes.entry(device).or_default();
            if w.scheduled {
                self.metrics.count("push.debounced");
                w.pending.push((arrival, false));
                continue;
            }
            let when = match w.last {
                Some(last) => due.max(last + self.config.push_coalesce_secs),
                None => due,
            };
            let prompt = when == due;
            self.metrics.count(if prompt {
                "push.prompt"
            } else {
                "push.debounced"
            });
            w.pending.push((arrival, prompt));
            w.scheduled = true;
            w.last = Some(when);
            let event = match device {
                Dev::Friend(friend) => Event::PushWake { friend },
                Dev::Customer(customer) => Event::CustomerPush { customer },
            };
            next.push((when, event));
        }
        next
    }

    /// The pushes a device's wake at `at` hands to its core.
    fn take_wake(&self, device: Dev, at: VTime) -> Vec<(Arrival, bool)> {
        let Ok(mut wakes) = self.wakes.lock() else {
            return Vec::new();
        };
        let w = wakes.entry(device).or_default();
        w.scheduled = false;
        w.last = Some(at);
        std::mem::take(&mut w.pending)
    }

    /// Pushes reached a Friend's phone: the app hands them to the core (one sync), unless the
    /// phone has no signal. An offer push that woke the phone at once is timed from the
    /// gateway's receipt to the offer in the cache.
    pub(super) async fn push_wake(&self, at: VTime, friend: FriendIx) -> Next {
        let pushes = self.take_wake(Dev::Friend(friend), at);
        let (Some(d), Some((first, _))) = (self.friend_device(friend), pushes.first()) else {
            return Vec::new();
        };
        if d.state().is_none_or(|s| s.offline.is_some()) {
            self.metrics.count("push.no_signal");
            return Vec::new();
        }
        self.metrics.count("push.woke_friend");
        let session = match d.on_push(&first.payload).await {
            Ok(s) => s,
            Err(e) => {
                self.metrics.error("push", &code(&e));
                return Vec::new();
            }
        };
        // The push that woke the phone at once: is its offer in the cache now?
        let timed = pushes
            .iter()
            .filter(|(a, prompt)| *prompt && a.kind == PushKind::Offer)
            .filter_map(|(a, _)| Some((a.job?, a.received_at)));
        for (job, received_at) in timed {
            match session.offer(job).await {
                Ok(Some(_)) => {
                    let us = (chrono::Utc::now() - received_at).num_microseconds();
                    self.metrics
                        .gateway_to_cache(us.unwrap_or(i64::MAX) as f64 / 1000.0);
                }
                Ok(None) => self.metrics.count("push.offer_gone_at_wake"),
                Err(e) => self.metrics.error("push.offer", &code(&e)),
            }
        }
        Vec::new()
    }

    /// Pushes reached a customer's phone: the app hands them to the core (one sync).
    pub(super) async fn customer_push(&self, at: VTime, customer: CustomerIx) -> Next {
        let pushes = self.take_wake(Dev::Customer(customer), at);
        let (Some(d), Some((first, _))) = (self.customer_device(customer), pushes.first()) else {
            return Vec::new();
        };
        self.metrics.count("push.woke_customer");
        if let Err(e) = d.on_push(&first.payload).await {
            self.metrics.error("customer_push", &code(&e));
        }
        let mut jobs: Vec<_> = pushes
            .iter()
            .filter_map(|(a, _)| self.metrics.job_of(a.job?))
            .collect();
        jobs.dedup();
        for job in jobs {
            self.note_status(at, job).await;
        }
        Vec::new()
    }
}
