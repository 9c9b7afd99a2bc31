//! Booking and the race: the customer books, the backend pushes the offer to the eligible Friends
//! who are not long-polling, the responders drawn among the Friends who learned of it look at the
//! offer and accept or decline, the winner sets off — or the customer cancels first.

use super::Next;
use crate::sim::devices::{Offline, code};
use crate::sim::driver::Sim;
use crate::sim::events::{Event, VTime};
use crate::sim::ids::{FriendIx, JobIx};
use crate::sim::metrics::{AcceptKind, Dev, Phase};
use crate::sim::model::{self, Candidate, Decision, Reaction};
use crate::sim::world::JobSpec;
use friend_core::{AcceptResult, CustomerSession, InboxFilter};
use friend_protocol::{JobId, JobState, Place};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// How long reactions are still played after the job left the inbox (people who open the app
/// and find it gone cost a sync; later ones are not simulated).
const REACT_AFTER_CLOSE: VTime = 120;

impl Sim {
    /// The customer books `job`; the backend's pushes and the drawn responders follow.
    pub(super) async fn book(&self, at: VTime, job: JobIx) -> Next {
        let Some(spec) = self.world.job(job) else {
            return Vec::new();
        };
        let customer = spec.customer;
        let Some(cs) = self.customer_session(customer, "book").await else {
            return Vec::new();
        };
        let Some(customer_spec) = self.world.customer(customer) else {
            return Vec::new();
        };
        let request = spec.request(job, customer_spec, self.backend.clock.origin());
        let eligible = self.world.eligible(job);
        // Long-polling Friends this job will reach: watch their inbox from before the booking.
        let watchers: Vec<_> = eligible
            .iter()
            .filter(|friend| self.long_polling(**friend))
            .filter_map(|friend| Some((*friend, self.friend_device(*friend)?.inbox_watch())))
            .collect();
        let started = Instant::now();
        let Some(local) = self.queued(
            Dev::Customer(customer),
            "book",
            "book",
            cs.book(request).await,
        ) else {
            return Vec::new();
        };
        let Some(id) = self.booking_id(&cs, local).await else {
            self.metrics.count("book.not_delivered");
            return Vec::new();
        };
        let answered = Instant::now();
        self.metrics.booked.fetch_add(1, Ordering::Relaxed);
        self.metrics.booked(job, id);
        self.metrics.job(job, |r| {
            r.id = Some(id);
            r.booked_at = Some(at);
            r.phase = Phase::Open;
            r.negotiation.orientation = spec.service.orientation_price.minor;
        });
        self.note_status(at, job).await;
        for (friend, rx) in watchers {
            self.watch_offer(friend, id, rx, started, answered).await;
        }
        let learned = self.learned(job, id, &eligible).await;
        self.draw_responders(at, job, spec, &eligible, &learned)
    }

    /// Whether the Friend's app is in the foreground, long-polling (online, its loop running).
    fn long_polling(&self, friend: FriendIx) -> bool {
        self.friend_device(friend).is_some_and(|d| {
            d.foreground
                && d.foreground_running.load(Ordering::Relaxed)
                && d.state().is_some_and(|s| s.offline.is_none())
        })
    }

    /// The Friends who learned of the new offer `id`: those the backend pushed it to (read at the
    /// gateways once they answered everything queued), and the eligible ones whose app is open
    /// (long-polling, or about to poll again).
    async fn learned(&self, job: JobIx, id: JobId, eligible: &[FriendIx]) -> Vec<FriendIx> {
        if let Err(e) = self.gateway.settle().await {
            tracing::warn!("push gateways: {e}");
            self.metrics.error("book.settle", "timeout");
        }
        let pushed = self.gateway.offered_to(id);
        let learned = self.reached(&pushed, eligible);
        self.metrics.add("offer.pushed", pushed.len() as u64);
        self.metrics.job(job, |r| {
            r.learned = learned.len();
            r.offers_read = pushed.len();
            r.pushed = pushed;
        });
        learned
    }

    /// The Friends who learned of an offer: those it was `pushed` to, and the `eligible` ones
    /// whose app is open (long-polling, or about to poll again).
    pub(super) fn reached(&self, pushed: &[FriendIx], eligible: &[FriendIx]) -> Vec<FriendIx> {
        let open_app = eligible.iter().copied().filter(|f| {
            self.friend_device(*f)
                .is_some_and(|d| d.foreground && d.state().is_some_and(|s| s.offline.is_none()))
        });
        let mut learned: Vec<FriendIx> = pushed.iter().copied().chain(open_app).collect();
        learned.sort_unstable();
        learned.dedup();
        learned
    }

    /// The server's id of the booking queued as `local`: a few syncs to deliver it.
    async fn booking_id(&self, cs: &CustomerSession, local: JobId) -> Option<JobId> {
        for _ in 0..3 {
            if let Err(e) = cs.sync_once().await {
                self.metrics.error("book.sync", &code(&e));
            }
            match cs.booking(local).await {
                Ok(Some(server)) => return Some(server),
                Ok(None) => continue,
                Err(e) => {
                    self.metrics.error("book.booking", &code(&e));
                    return None;
                }
            }
        }
        None
    }

    /// Who looks at the new offer, when, and what they decide: drawn among the Friends who
    /// `learned` of it.
    pub(super) fn draw_responders(
        &self,
        at: VTime,
        job: JobIx,
        spec: &JobSpec,
        eligible: &[FriendIx],
        learned: &[FriendIx],
    ) -> Next {
        let slot = spec.slot.map(|(s, len)| (spec.at + s, spec.at + s + len));
        // Available now, and the offer is in their inbox: within their radius of where they are.
        let candidates: Vec<_> = learned
            .iter()
            .filter(|friend| self.available(**friend, at, slot))
            .filter_map(|friend| {
                let state = self.friend_device(*friend)?.state()?;
                let friend_spec = self.world.friend(*friend)?;
                let km = state.position.distance_m(&spec.location) / 1000.0;
                let in_inbox =
                    spec.place == Place::Remote || km <= f64::from(friend_spec.new.radius_km);
                in_inbox.then_some(Candidate {
                    friend: *friend,
                    distance_km: if spec.place == Place::Remote { 0.0 } else { km },
                    foreground: friend_spec.foreground,
                })
            })
            .collect();
        self.metrics.add("offer.eligible", eligible.len() as u64);
        self.metrics.add("offer.learned", learned.len() as u64);
        self.metrics.add("offer.available", candidates.len() as u64);
        // The nearest hundred are enough to stand in for busy responders.
        let mut nearest: Vec<(FriendIx, f64)> = candidates
            .iter()
            .map(|c| (c.friend, c.distance_km))
            .collect();
        nearest.sort_by(|a, b| a.1.total_cmp(&b.1));
        nearest.truncate(100);
        self.metrics.job(job, |r| {
            r.free_friends = candidates.len();
            r.candidates = nearest;
        });
        let mut rng = self.rng(job, 1);
        model::draw_reactions(&candidates, &mut rng)
            .into_iter()
            .map(|reaction| (at + reaction.delay_secs, Event::React { job, reaction }))
            .collect()
    }

    /// Free for a new job at `at`: on duty, not travelling or working, no slot soon (for
    /// now-jobs) or overlapping (for slot jobs), not in a basement.
    fn available(&self, friend: FriendIx, at: VTime, slot: Option<(VTime, VTime)>) -> bool {
        let (Some(spec), Some(state)) = (
            self.world.friend(friend),
            self.friend_device(friend).and_then(|d| d.state()),
        ) else {
            return false;
        };
        if !spec.on_duty(at) || matches!(state.offline, Some(Offline::Basement { .. })) {
            return false;
        }
        match slot {
            None => {
                state.current.is_none() && state.slots.iter().all(|(_, s, _)| *s > at + 2 * 3600)
            }
            Some((start, end)) => state
                .slots
                .iter()
                .all(|(_, s, e)| *e + 3600 <= start || *s >= end + 3600),
        }
    }

    /// Measures booking → offer in a long-polling Friend's cache, from the inbox listener.
    async fn watch_offer(
        &self,
        friend: FriendIx,
        job: JobId,
        mut rx: tokio::sync::watch::Receiver<Option<Instant>>,
        started: Instant,
        answered: Instant,
    ) {
        let Some(session) = self.friend_session(friend, "watch_offer").await else {
            return;
        };
        let metrics = self.metrics.clone();
        let handle = tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = session.offer(job).await {
                    let seen = (*rx.borrow()).unwrap_or_else(Instant::now);
                    let from_call = seen.saturating_duration_since(started).as_secs_f64() * 1000.0;
                    let from_answer = if seen >= answered {
                        seen.duration_since(answered).as_secs_f64() * 1000.0
                    } else {
                        -(answered.duration_since(seen).as_secs_f64() * 1000.0)
                    };
                    metrics.push_latency(from_call, from_answer);
                    return;
                }
                match tokio::time::timeout_at(deadline, rx.changed()).await {
                    Ok(Ok(())) => {}
                    _ => {
                        metrics.push_missed();
                        return;
                    }
                }
            }
        });
        if let Ok(mut w) = self.waiters.lock() {
            w.push(handle);
        }
    }

    /// A Friend looks at the offer (or a free Friend stands in for a busy one) and declines it or
    /// races to accept it.
    pub(super) async fn react(&self, at: VTime, job: JobIx, r: Reaction) -> Next {
        let Some(id) = self.job_id(job) else {
            return Vec::new();
        };
        let closed = self.metrics.job(job, |run| run.closed_at).flatten();
        if closed.is_some_and(|c| at > c + REACT_AFTER_CLOSE)
            || self.expires_at(job).is_some_and(|e| at >= e)
        {
            self.metrics.count("react.after_close");
            return Vec::new();
        }
        let Some(friend) = self.responder(job, r.friend, at) else {
            self.metrics.count("react.busy");
            return Vec::new();
        };
        if friend != r.friend {
            self.metrics.count("react.stood_in");
        }
        if let Some(until) = self.spell_until(friend) {
            // No signal: the notification arrives when the tunnel ends.
            self.metrics.count("react.delayed_by_spell");
            self.metrics
                .job(job, |run| run.responded.retain(|x| *x != friend));
            let reaction = Reaction { friend, ..r };
            return vec![(until + 5, Event::React { job, reaction })];
        }
        let (Some(device), Some(spec)) = (self.friend_device(friend), self.world.job(job)) else {
            return Vec::new();
        };
        let Some(s) = self.friend_session(friend, "react").await else {
            return Vec::new();
        };
        let foreground = device.foreground_running.load(Ordering::Relaxed);
        if !foreground && !r.from_notification {
            // Opening the app from the notification refreshes it first.
            if let Err(e) = s.on_push("").await {
                self.metrics.error("react.sync", &code(&e));
            }
        }
        let Some((position, radius)) = device.state().map(|st| {
            (
                st.position,
                self.world
                    .friend(friend)
                    .map(|x| x.new.radius_km)
                    .unwrap_or(30),
            )
        }) else {
            return Vec::new();
        };
        let present = match s
            .inbox(position, f64::from(radius), InboxFilter::default())
            .await
        {
            Ok(inbox) => inbox.items.iter().any(|i| i.offer.id == id),
            Err(e) => {
                self.metrics.error("react.inbox", &code(&e));
                false
            }
        };
        match r.decision {
            Decision::Decline(reason) => {
                if present {
                    self.metrics
                        .count(&format!("react.decline.{}", r.attention.as_str()));
                    self.queued(
                        Dev::Friend(friend),
                        "decline",
                        "decline",
                        s.decline(id, reason).await,
                    );
                } else {
                    self.metrics.count("react.found_gone");
                }
                Vec::new()
            }
            Decision::Accept if !present && !r.from_notification => {
                self.metrics.count("react.found_gone");
                Vec::new()
            }
            Decision::Accept => {
                self.metrics.job(job, |run| run.attempts.push((at, friend)));
                let outcome = s.accept(id).await;
                let kind = match &outcome {
                    Ok(AcceptResult::Won(_)) => AcceptKind::Won,
                    Ok(AcceptResult::Lost) => AcceptKind::Lost,
                    Ok(AcceptResult::Gone(_)) => AcceptKind::Gone,
                    Ok(AcceptResult::NotEligible(_)) => AcceptKind::NotEligible,
                    Ok(AcceptResult::Offline) => AcceptKind::Offline,
                    Err(e) => {
                        self.metrics.error("accept", &code(e));
                        AcceptKind::Error
                    }
                };
                self.metrics
                    .job(job, |run| run.outcomes.push((friend, kind)));
                if kind != AcceptKind::Won {
                    return Vec::new();
                }
                self.metrics
                    .count(&format!("accept.won.{}", r.attention.as_str()));
                self.won(at, job, friend, spec)
            }
        }
    }

    /// Who reacts: the drawn Friend if they are free now, else another free Friend who had the
    /// offer in their inbox at booking and has not reacted yet, chosen by proximity — the job
    /// keeps its calibrated number of responses when Friends got busy meanwhile.
    fn responder(&self, job: JobIx, drawn: FriendIx, at: VTime) -> Option<FriendIx> {
        let free = |friend: FriendIx| {
            self.friend_device(friend)
                .and_then(|d| d.state())
                .is_some_and(|s| {
                    s.current.is_none() && !matches!(s.offline, Some(Offline::Basement { .. }))
                })
                && self
                    .world
                    .friend(friend)
                    .is_some_and(|x| x.on_duty(at) || x.foreground)
        };
        let mut rng = self.rng(job, 100 + at as u64);
        self.metrics
            .job(job, |run| {
                let chosen = if free(drawn) && !run.responded.contains(&drawn) {
                    Some(drawn)
                } else {
                    let options: Vec<(FriendIx, f64)> = run
                        .candidates
                        .iter()
                        .filter(|(other, _)| {
                            *other != drawn && !run.responded.contains(other) && free(*other)
                        })
                        .map(|(other, km)| (*other, (-km / model::PROXIMITY_KM).exp()))
                        .collect();
                    let total: f64 = options.iter().map(|(_, w)| w).sum();
                    let mut pick = rng.f64() * total;
                    let mut chosen = None;
                    for (friend, weight) in options {
                        pick -= weight;
                        chosen = Some(friend);
                        if pick <= 0.0 {
                            break;
                        }
                    }
                    chosen
                };
                if let Some(friend) = chosen {
                    run.responded.push(friend);
                }
                chosen
            })
            .flatten()
    }

    /// `friend` got `Won` for `job`: they hold it (now, or for its slot) and set off.
    fn won(&self, at: VTime, job: JobIx, friend: FriendIx, spec: &JobSpec) -> Next {
        let first = self
            .metrics
            .job(job, |run| {
                run.winners.push(friend);
                if run.accepted.is_some() {
                    return false;
                }
                run.accepted = Some((at, friend));
                run.closed_at = Some(at);
                run.phase = Phase::Assigned;
                true
            })
            .unwrap_or(false);
        if !first {
            // A second "Won" for one job: the report counts it as a double assignment.
            return Vec::new();
        }
        self.metrics.accepted.fetch_add(1, Ordering::Relaxed);
        self.metrics.job(job, |run| {
            // After a release: how long the second search took.
            if let Some((released, _, _)) = run.visit.releases.last() {
                run.visit.second_searches.push(at - released);
            }
        });
        let slot = spec.slot.map(|(s, len)| (spec.at + s, spec.at + s + len));
        if let Some(d) = self.friend_device(friend) {
            d.update(|s| match slot {
                Some((start, end)) => s.slots.push((job, start, end)),
                None => s.current = Some(job),
            });
        }
        // The winner calls the customer within a few minutes ([`Sim::appoint`]).
        let mut rng = self.rng(job, 2);
        let mut next = vec![(at + rng.i64(60..300), Event::Appoint { job, friend })];
        if spec.behaviour.cancel_when_assigned {
            next.push((at + rng.i64(120..600), Event::CancelAssigned { job }));
        }
        next
    }

    /// The customer cancels `job`: while it is open (tired of waiting) or once it is `assigned`.
    pub(super) async fn cancel(&self, at: VTime, job: JobIx, assigned: bool) -> Next {
        let Some(id) = self.job_id(job) else {
            return Vec::new();
        };
        let phase = self.metrics.job(job, |r| r.phase).unwrap_or_default();
        let wanted = if assigned {
            Phase::Assigned
        } else {
            Phase::Open
        };
        if phase != wanted || (!assigned && self.expires_at(job).is_some_and(|e| at >= e)) {
            return Vec::new();
        }
        let Some(spec) = self.world.job(job) else {
            return Vec::new();
        };
        let customer = spec.customer;
        let Some(cs) = self.customer_session(customer, "cancel").await else {
            return Vec::new();
        };
        self.sync_customer(customer, "cancel.sync").await;
        let state = cs
            .job(id)
            .await
            .ok()
            .and_then(|cj| cj.details.map(|d| d.state));
        let allowed = if assigned {
            JobState::Assigned
        } else {
            JobState::Open
        };
        if state != Some(allowed) {
            return Vec::new();
        }
        let kind = if assigned {
            // The app shows what cancelling costs now before the customer confirms.
            match cs.cancel_preview(id).await {
                Ok(preview) => {
                    let fee = preview.fee.map_or(0, |m| m.minor);
                    self.metrics
                        .job(job, |r| r.visit.cancel_preview = Some(fee));
                }
                Err(e) => self.metrics.error("cancel.preview", &code(&e)),
            }
            "cancel.assigned"
        } else {
            "cancel.open"
        };
        if self
            .queued(Dev::Customer(customer), "cancel", kind, cs.cancel(id).await)
            .is_some()
        {
            self.metrics.count(kind);
            self.metrics.job(job, |r| {
                r.phase = Phase::Cancelled;
                r.closed_at.get_or_insert(at);
            });
            self.sync_customer(customer, "cancel.deliver").await;
            self.note_status(at, job).await;
        }
        Vec::new()
    }
}
