//! What happens at each event: real calls on the real sessions of the devices involved, and the
//! follow-up events they lead to. The push service is played here too (wake the Friends a job
//! concerns, wake a customer when their job moved).

use super::devices::{Offline, code};
use super::driver::Sim;
use super::events::{Event, Mode, Res, VTime};
use super::metrics::{AcceptKind, Dev, Phase};
use super::model::{self, Answer, Candidate, Decision, Reaction};
use super::quotes;
use friend_core::{AcceptResult, CoreError, CustomerSession, FriendSession, InboxFilter};
use friend_protocol::negotiation::{Answer as QuoteAnswer, Party};
use friend_protocol::{JobId, JobState, PaymentMethod, Place, UnsuccessfulReason};
use std::sync::Arc;
use std::time::Instant;

/// Follow-up events.
type Next = Vec<(VTime, Event)>;

/// The push service's delay from a change to the wake-up.
const PUSH_DELAY: VTime = 3;
/// How long reactions are still played after the job left the inbox (people who open the app
/// and find it gone cost a sync; later ones are not simulated).
const REACT_AFTER_CLOSE: VTime = 120;
/// How often a step waits for the other side before giving up.
const MAX_RETRIES: u32 = 6;

impl Sim {
    /// The resources `event` holds.
    pub(crate) fn claims(&self, event: &Event) -> Vec<(Res, Mode)> {
        use Mode::{Exclusive, Race};
        let customer_of = |j: usize| self.world.jobs.get(j).map(|s| s.customer).unwrap_or(0);
        let job_parties = |j: usize| {
            let mut v = vec![
                (Res::Job(j), Exclusive),
                (Res::Customer(customer_of(j)), Exclusive),
            ];
            if let Some(w) = self.winner(j) {
                v.push((Res::Friend(w), Exclusive));
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
                if let Some(j) = job {
                    v.push((Res::Job(*j), Exclusive));
                    v.push((Res::Customer(customer_of(*j)), Exclusive));
                }
                v
            }
            Event::CancelOpen { job }
            | Event::CancelAssigned { job }
            | Event::Arrive { job }
            | Event::NoShow { job }
            | Event::Escalate { job }
            | Event::Quote { job }
            | Event::CustomerAnswer { job }
            | Event::FriendAnswer { job }
            | Event::Amend { job }
            | Event::CustomerAmendAnswer { job }
            | Event::Complete { job }
            | Event::Rate { job } => job_parties(*job),
        }
    }

    /// Runs one event; returns its follow-ups.
    pub(crate) async fn handle(&self, at: VTime, event: Event) -> Next {
        self.metrics.count(&format!("event.{}", event.name()));
        match event {
            Event::Book { job } => self.book(at, job).await,
            Event::PushWake { friend } => self.push_wake(at, friend).await,
            Event::React { job, reaction } => self.react(at, job, reaction).await,
            Event::CustomerPush { customer } => {
                if let Some(c) = self.customers.get(customer)
                    && let Err(e) = c.sync().await
                {
                    self.metrics.error("customer_push", &code(&e));
                }
                Vec::new()
            }
            Event::CancelOpen { job } => self.cancel(at, job, false).await,
            Event::CancelAssigned { job } => self.cancel(at, job, true).await,
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

    // ---- helpers ---------------------------------------------------------------------------

    pub(crate) fn winner(&self, j: usize) -> Option<usize> {
        self.metrics
            .job(j, |r| r.accepted.map(|(_, f)| f))
            .flatten()
    }

    fn job_id(&self, j: usize) -> Option<JobId> {
        self.metrics.job(j, |r| r.id).flatten()
    }

    /// When the open job expires on the server (virtual seconds).
    fn expires_at(&self, j: usize) -> Option<VTime> {
        let spec = self.world.jobs.get(j)?;
        let booked = self.metrics.job(j, |r| r.booked_at).flatten()?;
        Some(match spec.slot {
            Some((start, _)) => spec.at + start,
            None => booked + 3 * 3600,
        })
    }

    fn spell_until(&self, f: usize) -> Option<VTime> {
        match self.friends.get(f)?.state()?.offline? {
            Offline::Spell { until } => Some(until),
            Offline::Basement { .. } => None,
        }
    }

    fn offline_on_job(&self, f: usize) -> bool {
        self.friends
            .get(f)
            .and_then(|d| d.state())
            .is_some_and(|s| matches!(s.offline, Some(Offline::Basement { .. })))
    }

    fn rng(&self, j: usize, salt: u64) -> fastrand::Rng {
        let mix = (j as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        fastrand::Rng::with_seed(self.config.seed ^ mix)
    }

    async fn friend(&self, f: usize, during: &str) -> Option<Arc<FriendSession>> {
        match self.friends.get(f)?.session().await {
            Ok(s) => Some(s),
            Err(e) => {
                self.metrics.error(during, &code(&e));
                None
            }
        }
    }

    async fn customer(&self, c: usize, during: &str) -> Option<Arc<CustomerSession>> {
        match self.customers.get(c)?.session().await {
            Ok(s) => Some(s),
            Err(e) => {
                self.metrics.error(during, &code(&e));
                None
            }
        }
    }

    async fn sync_friend(&self, f: usize, during: &str) {
        if let Some(d) = self.friends.get(f)
            && let Err(e) = d.sync().await
        {
            self.metrics.error(during, &code(&e));
        }
    }

    async fn sync_customer(&self, c: usize, during: &str) {
        if let Some(d) = self.customers.get(c)
            && let Err(e) = d.sync().await
        {
            self.metrics.error(during, &code(&e));
        }
    }

    /// Counts a successful queued action, or records the failure.
    fn queued<T>(
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

    /// The Friend is done with job `j` and stays at its place.
    fn release_friend(&self, f: usize, j: usize) {
        let place = self
            .world
            .jobs
            .get(j)
            .filter(|s| s.place == Place::OnSite)
            .map(|s| s.location);
        if let Some(d) = self.friends.get(f) {
            d.update(|s| {
                if s.current == Some(j) {
                    s.current = None;
                }
                s.slots.retain(|(x, _, _)| *x != j);
                if let Some(p) = place {
                    s.position = p;
                }
            });
        }
    }

    /// Free for a new job at `at`: on duty, not travelling or working, no slot soon (for
    /// now-jobs) or overlapping (for slot jobs), not in a basement.
    fn available(&self, f: usize, at: VTime, slot: Option<(VTime, VTime)>) -> bool {
        let (Some(spec), Some(state)) = (
            self.world.friends.get(f),
            self.friends.get(f).and_then(|d| d.state()),
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

    /// Who reacts: the drawn Friend if they are free now, else another free Friend who had the
    /// offer in their inbox at booking and has not reacted yet, chosen by proximity — the job
    /// keeps its calibrated number of responses when Friends got busy meanwhile.
    fn responder(&self, j: usize, drawn: usize, at: VTime) -> Option<usize> {
        let free = |f: usize| {
            self.friends
                .get(f)
                .and_then(|d| d.state())
                .is_some_and(|s| {
                    s.current.is_none() && !matches!(s.offline, Some(Offline::Basement { .. }))
                })
                && self
                    .world
                    .friends
                    .get(f)
                    .is_some_and(|x| x.on_duty(at) || x.foreground)
        };
        let mut rng = self.rng(j, 100 + at as u64);
        self.metrics
            .job(j, |run| {
                let chosen = if free(drawn) && !run.responded.contains(&drawn) {
                    Some(drawn)
                } else {
                    let options: Vec<(usize, f64)> = run
                        .candidates
                        .iter()
                        .filter(|(f, _)| *f != drawn && !run.responded.contains(f) && free(*f))
                        .map(|(f, km)| (*f, (-km / model::PROXIMITY_KM).exp()))
                        .collect();
                    let total: f64 = options.iter().map(|(_, w)| w).sum();
                    let mut pick = rng.f64() * total;
                    let mut chosen = None;
                    for (f, w) in options {
                        pick -= w;
                        chosen = Some(f);
                        if pick <= 0.0 {
                            break;
                        }
                    }
                    chosen
                };
                if let Some(f) = chosen {
                    run.responded.push(f);
                }
                chosen
            })
            .flatten()
    }

    // ---- booking and the push service -------------------------------------------------------

    async fn book(&self, at: VTime, j: usize) -> Next {
        let Some(spec) = self.world.jobs.get(j) else {
            return Vec::new();
        };
        let c = spec.customer;
        let Some(cs) = self.customer(c, "book").await else {
            return Vec::new();
        };
        let Some(customer) = self.world.customers.get(c) else {
            return Vec::new();
        };
        let request = spec.request(j, customer, self.backend.clock.origin());
        let eligible = self.world.eligible(j);
        // Long-polling Friends this job will reach: watch their inbox from before the booking.
        let watchers: Vec<_> = eligible
            .iter()
            .filter_map(|f| {
                let d = self.friends.get(*f)?;
                let watching = d.foreground
                    && d.foreground_running
                        .load(std::sync::atomic::Ordering::Relaxed)
                    && d.state().is_some_and(|s| s.offline.is_none());
                watching.then(|| (*f, d.inbox_watch()))
            })
            .collect();
        let started = Instant::now();
        let Some(local) = self.queued(Dev::Customer(c), "book", "book", cs.book(request).await)
        else {
            return Vec::new();
        };
        let mut id = None;
        for _ in 0..3 {
            if let Err(e) = cs.sync_once().await {
                self.metrics.error("book.sync", &code(&e));
            }
            match cs.booking(local).await {
                Ok(Some(server)) => {
                    id = Some(server);
                    break;
                }
                Ok(None) => continue,
                Err(e) => {
                    self.metrics.error("book.booking", &code(&e));
                    break;
                }
            }
        }
        let Some(id) = id else {
            self.metrics.count("book.not_delivered");
            return Vec::new();
        };
        let answered = Instant::now();
        self.metrics
            .booked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics.job(j, |r| {
            r.id = Some(id);
            r.booked_at = Some(at);
            r.phase = Phase::Open;
            r.negotiation.orientation = spec.service.orientation_price.minor;
        });
        for (f, rx) in watchers {
            self.watch_offer(f, id, rx, started, answered).await;
        }
        let mut next = Vec::new();
        // The push service: wake the background Friends the job concerns (collapsed per device).
        for f in &eligible {
            let (Some(d), Some(fs)) = (self.friends.get(*f), self.world.friends.get(*f)) else {
                continue;
            };
            if d.foreground || !fs.on_duty(at) {
                continue;
            }
            let when = d.update(|s| {
                if s.offline.is_some() || s.push_pending {
                    return None;
                }
                s.push_pending = true;
                Some((at + PUSH_DELAY).max(s.last_push + self.config.push_coalesce_secs))
            });
            if let Some(Some(when)) = when {
                next.push((when, Event::PushWake { friend: *f }));
            }
        }
        // Who looks at it, when, and what they decide.
        let slot = spec.slot.map(|(s, len)| (spec.at + s, spec.at + s + len));
        // Available now, and the offer is in their inbox: within their radius of where they are.
        let candidates: Vec<_> = eligible
            .iter()
            .filter(|f| self.available(**f, at, slot))
            .filter_map(|f| {
                let state = self.friends.get(*f)?.state()?;
                let friend = self.world.friends.get(*f)?;
                let km = state.position.distance_m(&spec.location) / 1000.0;
                let in_inbox = spec.place == Place::Remote || km <= f64::from(friend.new.radius_km);
                in_inbox.then_some(Candidate {
                    friend: *f,
                    distance_km: if spec.place == Place::Remote { 0.0 } else { km },
                    foreground: friend.foreground,
                })
            })
            .collect();
        self.metrics.add("offer.eligible", eligible.len() as u64);
        self.metrics.add("offer.available", candidates.len() as u64);
        // The nearest hundred are enough to stand in for busy responders.
        let mut nearest: Vec<(usize, f64)> = candidates
            .iter()
            .map(|c| (c.friend, c.distance_km))
            .collect();
        nearest.sort_by(|a, b| a.1.total_cmp(&b.1));
        nearest.truncate(100);
        self.metrics.job(j, |r| {
            r.free_friends = candidates.len();
            r.candidates = nearest;
        });
        let mut rng = self.rng(j, 1);
        for reaction in model::draw_reactions(&candidates, &mut rng) {
            next.push((at + reaction.delay_secs, Event::React { job: j, reaction }));
        }
        next
    }

    /// Measures booking → offer in a long-polling Friend's cache, from the inbox listener.
    async fn watch_offer(
        &self,
        f: usize,
        job: JobId,
        mut rx: tokio::sync::watch::Receiver<Option<Instant>>,
        started: Instant,
        answered: Instant,
    ) {
        let Some(session) = self.friend(f, "watch_offer").await else {
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

    async fn push_wake(&self, at: VTime, f: usize) -> Next {
        let Some(d) = self.friends.get(f) else {
            return Vec::new();
        };
        let offline = d.update(|s| {
            s.push_pending = false;
            s.last_push = at;
            s.offline.is_some()
        });
        if offline != Some(false) {
            self.metrics.count("push.unreachable");
            return Vec::new();
        }
        self.metrics.count("push.delivered");
        if let Some(s) = self.friend(f, "push").await
            && let Err(e) = s.on_push("").await
        {
            self.metrics.error("push", &code(&e));
        }
        Vec::new()
    }

    // ---- the race ------------------------------------------------------------------------------

    async fn react(&self, at: VTime, j: usize, r: Reaction) -> Next {
        let Some(id) = self.job_id(j) else {
            return Vec::new();
        };
        let closed = self.metrics.job(j, |run| run.closed_at).flatten();
        if closed.is_some_and(|c| at > c + REACT_AFTER_CLOSE)
            || self.expires_at(j).is_some_and(|e| at >= e)
        {
            self.metrics.count("react.after_close");
            return Vec::new();
        }
        let Some(f) = self.responder(j, r.friend, at) else {
            self.metrics.count("react.busy");
            return Vec::new();
        };
        if f != r.friend {
            self.metrics.count("react.stood_in");
        }
        if let Some(until) = self.spell_until(f) {
            // No signal: the notification arrives when the tunnel ends.
            self.metrics.count("react.delayed_by_spell");
            self.metrics.job(j, |run| run.responded.retain(|x| *x != f));
            let reaction = Reaction { friend: f, ..r };
            return vec![(until + 5, Event::React { job: j, reaction })];
        }
        let (Some(device), Some(spec)) = (self.friends.get(f), self.world.jobs.get(j)) else {
            return Vec::new();
        };
        let Some(s) = self.friend(f, "react").await else {
            return Vec::new();
        };
        let foreground = device
            .foreground_running
            .load(std::sync::atomic::Ordering::Relaxed);
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
                    .friends
                    .get(f)
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
                        Dev::Friend(f),
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
                self.metrics.job(j, |run| run.attempts.push((at, f)));
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
                self.metrics.job(j, |run| run.outcomes.push((f, kind)));
                if kind != AcceptKind::Won {
                    return Vec::new();
                }
                self.metrics
                    .count(&format!("accept.won.{}", r.attention.as_str()));
                self.won(at, j, f, spec)
            }
        }
    }

    fn won(&self, at: VTime, j: usize, f: usize, spec: &super::world::JobSpec) -> Next {
        let first = self
            .metrics
            .job(j, |run| {
                run.winners.push(f);
                if run.accepted.is_some() {
                    return false;
                }
                run.accepted = Some((at, f));
                run.closed_at = Some(at);
                run.phase = Phase::Assigned;
                true
            })
            .unwrap_or(false);
        if !first {
            // A second "Won" for one job: the report counts it as a double assignment.
            return Vec::new();
        }
        self.metrics
            .accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut rng = self.rng(j, 2);
        let position = self
            .friends
            .get(f)
            .and_then(|d| d.state())
            .map(|s| s.position);
        let km = position
            .map(|p| p.distance_m(&spec.location) / 1000.0)
            .unwrap_or(10.0);
        let slot = spec.slot.map(|(s, len)| (spec.at + s, spec.at + s + len));
        if let Some(d) = self.friends.get(f) {
            d.update(|s| match slot {
                Some((start, end)) => s.slots.push((j, start, end)),
                None => s.current = Some(j),
            });
        }
        let arrive = match (slot, spec.place) {
            (Some((start, _)), _) => (start - rng.i64(0..300)).max(at + 60),
            (None, Place::Remote) => at + rng.i64(180..600),
            (None, _) => at + ((km / 25.0 * 3600.0) as i64 + rng.i64(300..900)).clamp(600, 3600),
        };
        let mut next = vec![
            (
                at + PUSH_DELAY,
                Event::CustomerPush {
                    customer: spec.customer,
                },
            ),
            (arrive, Event::Arrive { job: j }),
        ];
        if spec.behaviour.cancel_when_assigned {
            next.push((at + (arrive - at) / 2 + 1, Event::CancelAssigned { job: j }));
        }
        next
    }

    // ---- the customer cancels ----------------------------------------------------------------

    async fn cancel(&self, at: VTime, j: usize, assigned: bool) -> Next {
        let Some(id) = self.job_id(j) else {
            return Vec::new();
        };
        let phase = self.metrics.job(j, |r| r.phase).unwrap_or_default();
        let wanted = if assigned {
            Phase::Assigned
        } else {
            Phase::Open
        };
        if phase != wanted || (!assigned && self.expires_at(j).is_some_and(|e| at >= e)) {
            return Vec::new();
        }
        let Some(spec) = self.world.jobs.get(j) else {
            return Vec::new();
        };
        let Some(cs) = self.customer(spec.customer, "cancel").await else {
            return Vec::new();
        };
        self.sync_customer(spec.customer, "cancel.sync").await;
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
            "cancel.assigned"
        } else {
            "cancel.open"
        };
        if self
            .queued(
                Dev::Customer(spec.customer),
                "cancel",
                kind,
                cs.cancel(id).await,
            )
            .is_some()
        {
            self.metrics.count(kind);
            self.metrics.job(j, |r| {
                r.phase = Phase::Cancelled;
                r.closed_at.get_or_insert(at);
            });
            self.sync_customer(spec.customer, "cancel.deliver").await;
        }
        Vec::new()
    }

    // ---- on site ----------------------------------------------------------------------------------

    async fn arrive(&self, at: VTime, j: usize) -> Next {
        let (Some(w), Some(id), Some(spec)) =
            (self.winner(j), self.job_id(j), self.world.jobs.get(j))
        else {
            return Vec::new();
        };
        if let Some(until) = self.spell_until(w) {
            return vec![(until + 30, Event::Arrive { job: j })];
        }
        let Some(device) = self.friends.get(w) else {
            return Vec::new();
        };
        // Still on another job (a slot job's time came while a now-job ran long): wait, and
        // after two hours give the job back, so it is not left hanging.
        let busy_elsewhere = device
            .state()
            .is_some_and(|s| s.current.is_some_and(|c| c != j) || s.offline.is_some());
        if busy_elsewhere {
            let tries = self.metrics.job(j, |r| {
                r.retries += 1;
                r.retries
            });
            if tries.unwrap_or(0) <= 12 {
                return vec![(at + 600, Event::Arrive { job: j })];
            }
            return self.give_back(w, j, id).await;
        }
        self.metrics.job(j, |r| r.retries = 0);
        let Some(fs) = self.friend(w, "arrive").await else {
            return Vec::new();
        };
        self.sync_friend(w, "arrive.sync").await;
        let state = fs.job(id).await.ok().map(|mj| mj.details.state);
        if state != Some(JobState::Assigned) {
            // Cancelled meanwhile (the Friend learns it here).
            self.metrics.count("arrive.job_gone");
            self.release_friend(w, j);
            self.metrics.job(j, |r| r.phase = Phase::Cancelled);
            return Vec::new();
        }
        if self
            .queued(
                Dev::Friend(w),
                "check_in",
                "check_in",
                fs.check_in(id).await,
            )
            .is_none()
        {
            self.release_friend(w, j);
            return Vec::new();
        }
        self.sync_friend(w, "check_in.deliver").await;
        device.update(|s| s.current = Some(j));
        self.metrics.job(j, |r| r.phase = Phase::OnSite);
        let b = &spec.behaviour;
        let mut rng = self.rng(j, 3);
        let mut next = vec![(
            at + PUSH_DELAY,
            Event::CustomerPush {
                customer: spec.customer,
            },
        )];
        if b.customer_absent {
            next.push((at + 600, Event::NoShow { job: j }));
        } else if b.escalate {
            next.push((at + rng.i64(600..1500), Event::Escalate { job: j }));
        } else {
            next.push((at + rng.i64(300..720), Event::Quote { job: j }));
        }
        if b.basement && spec.place == Place::OnSite {
            // Down to the basement: the signal goes at the door.
            self.metrics.count("offline.basement");
            if device.foreground {
                device.stop_foreground().await;
            }
            device.proxy.go_offline();
            device.update(|s| s.offline = Some(Offline::Basement { job: j }));
        }
        next
    }

    /// The Friend cannot make it and releases the job (it is open again until it expires).
    async fn give_back(&self, w: usize, j: usize, id: JobId) -> Next {
        let Some(fs) = self.friend(w, "release").await else {
            return Vec::new();
        };
        if self
            .queued(Dev::Friend(w), "release", "release", fs.release(id).await)
            .is_some()
        {
            self.metrics.count("arrive.released");
            self.sync_friend(w, "release.deliver").await;
        }
        if let Some(d) = self.friends.get(w) {
            d.update(|s| s.slots.retain(|(x, _, _)| *x != j));
        }
        self.metrics.job(j, |r| {
            r.retries = 0;
            r.phase = Phase::Open;
            r.released = true;
        });
        Vec::new()
    }

    /// Unsuccessful (nobody there) or escalated.
    async fn check_out(&self, at: VTime, j: usize, escalate: bool) -> Next {
        let (Some(w), Some(id), Some(spec)) =
            (self.winner(j), self.job_id(j), self.world.jobs.get(j))
        else {
            return Vec::new();
        };
        if let Some(until) = self.spell_until(w) {
            let event = if escalate {
                Event::Escalate { job: j }
            } else {
                Event::NoShow { job: j }
            };
            return vec![(until + 30, event)];
        }
        let Some(fs) = self.friend(w, "check_out").await else {
            return Vec::new();
        };
        let done = if escalate {
            let note = Some("Wiring behind the wall needs the field service".to_owned());
            self.queued(
                Dev::Friend(w),
                "escalate",
                "escalate",
                fs.escalate(id, note).await,
            )
        } else {
            let note = Some("Waited 10 minutes and called twice".to_owned());
            self.queued(
                Dev::Friend(w),
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
            self.metrics.job(j, |r| r.phase = Phase::Finished);
        }
        self.leave(at, w, j, spec.customer, None).await
    }

    /// The Friend leaves the job: release it; online, deliver and tell the customer; offline,
    /// come back online a little later.
    async fn leave(
        &self,
        at: VTime,
        w: usize,
        j: usize,
        customer: usize,
        rating: Option<i64>,
    ) -> Next {
        self.release_friend(w, j);
        if self.offline_on_job(w) {
            let mut rng = self.rng(j, 4);
            return vec![(
                at + rng.i64(300..1200),
                Event::BackOnline {
                    friend: w,
                    job: Some(j),
                },
            )];
        }
        self.sync_friend(w, "leave.deliver").await;
        let mut next = vec![(at + PUSH_DELAY, Event::CustomerPush { customer })];
        if let Some(delay) = rating {
            next.push((at + delay, Event::Rate { job: j }));
        }
        next
    }

    async fn quote(&self, at: VTime, j: usize) -> Next {
        let (Some(w), Some(id), Some(spec)) =
            (self.winner(j), self.job_id(j), self.world.jobs.get(j))
        else {
            return Vec::new();
        };
        if let Some(until) = self.spell_until(w) {
            return vec![(until + 30, Event::Quote { job: j })];
        }
        let Some(fs) = self.friend(w, "quote").await else {
            return Vec::new();
        };
        let items = quotes::first(&spec.service, &spec.behaviour.quote);
        let reason = quotes::reason_for(&items, &spec.service);
        let first_total = quotes::total(&items);
        let Some(payload) = self.queued(
            Dev::Friend(w),
            "consent",
            "propose",
            fs.propose(id, items, reason).await,
        ) else {
            return Vec::new();
        };
        self.metrics.job(j, |r| {
            r.negotiation.proposals += 1;
            r.negotiation.first_total = Some(first_total);
        });
        let mut rng = self.rng(j, 5);
        if self.offline_on_job(w) {
            let Some(cs) = self.customer(spec.customer, "quote.offline").await else {
                return Vec::new();
            };
            match self.exchange_offline(j, w, id, &fs, &cs, payload).await {
                Ok(()) => {
                    self.metrics.job(j, |r| r.negotiation.offline = true);
                    self.metrics.count("negotiation.offline_exchange");
                }
                Err(e) => self.metrics.error("offline_exchange", &code(&e)),
            }
            return vec![(at + self.work_secs(j), Event::Complete { job: j })];
        }
        self.sync_friend(w, "quote.deliver").await;
        vec![(at + rng.i64(60..240), Event::CustomerAnswer { job: j })]
    }

    fn work_secs(&self, j: usize) -> VTime {
        self.world
            .jobs
            .get(j)
            .map(|s| {
                (f64::from(s.service.duration_minutes) * 60.0 * s.behaviour.work_factor) as VTime
            })
            .unwrap_or(3600)
            .max(600)
    }

    /// Consent by payload exchange with the Friend offline: the devices show each other QR codes;
    /// the customer's phone (online) uploads what it imports, the Friend's replays later.
    async fn exchange_offline(
        &self,
        j: usize,
        w: usize,
        id: JobId,
        fs: &FriendSession,
        cs: &CustomerSession,
        proposal: String,
    ) -> Result<(), CoreError> {
        let Some(spec) = self.world.jobs.get(j) else {
            return Ok(());
        };
        let c = spec.customer;
        let (fd, cd) = (Dev::Friend(w), Dev::Customer(c));
        let pending_version =
            |n: &friend_core::LocalNegotiation| n.pending().map(|q| q.quote.version).unwrap_or(0);
        let seen = cs.import_consent(id, &proposal).await?;
        self.metrics.queued(cd, "consent");
        let v1 = pending_version(&seen);
        let first = seen
            .pending()
            .map(|q| q.quote.items.clone())
            .unwrap_or_else(|| quotes::bare(&spec.service));
        // The customer's answer, then the Friend's, each by payload.
        let (friend_side, customer_answers) = match spec.behaviour.answer {
            Answer::Accept => (None, true),
            Answer::Counter(percent) => {
                self.metrics.job(j, |r| r.negotiation.countered = true);
                let items = quotes::discounted(&first, percent, "Counter-offer");
                let reason = quotes::reason_for(&items, &spec.service);
                let counter = cs.counter(id, items, reason).await?;
                self.metrics.queued(cd, "consent");
                let mine = fs.import_consent(id, &counter).await?;
                self.metrics.queued(fd, "consent");
                if spec.behaviour.friend_takes_counter {
                    let acceptance = fs.accept_quote(id, pending_version(&mine)).await?;
                    self.metrics.queued(fd, "consent");
                    (Some(acceptance), false)
                } else {
                    let items = quotes::discounted(&first, percent / 2, "Meet in the middle");
                    let reason = quotes::reason_for(&items, &spec.service);
                    let middle = fs.propose(id, items, reason).await?;
                    self.metrics.queued(fd, "consent");
                    cs.import_consent(id, &middle).await?;
                    self.metrics.queued(cd, "consent");
                    (None, true)
                }
            }
            Answer::Reject => {
                // Said, not signed: the Friend offers the bare service instead.
                self.metrics.job(j, |r| r.negotiation.rejected = true);
                let bare = fs.propose(id, quotes::bare(&spec.service), None).await?;
                self.metrics.queued(fd, "consent");
                cs.import_consent(id, &bare).await?;
                self.metrics.queued(cd, "consent");
                (None, true)
            }
        };
        if let Some(acceptance) = friend_side {
            cs.import_consent(id, &acceptance).await?;
            self.metrics.queued(cd, "consent");
        }
        if customer_answers {
            let n = cs.negotiation(id).await?;
            let version = if n.pending().is_some() {
                pending_version(&n)
            } else {
                v1
            };
            let acceptance = cs.accept_quote(id, version).await?;
            self.metrics.queued(cd, "consent");
            fs.import_consent(id, &acceptance).await?;
            self.metrics.queued(fd, "consent");
        }
        self.metrics.job(j, |r| r.negotiation.proposals += 1);
        Ok(())
    }

    async fn customer_answer(&self, at: VTime, j: usize) -> Next {
        let (Some(id), Some(spec)) = (self.job_id(j), self.world.jobs.get(j)) else {
            return Vec::new();
        };
        let c = spec.customer;
        let Some(cs) = self.customer(c, "customer_answer").await else {
            return Vec::new();
        };
        self.sync_customer(c, "customer_answer.sync").await;
        let n = match cs.negotiation(id).await {
            Ok(n) => n,
            Err(e) => {
                self.metrics.error("customer_answer", &code(&e));
                return Vec::new();
            }
        };
        let Some(pending) = n
            .pending()
            .filter(|q| q.proposed_by == Party::Friend)
            .cloned()
        else {
            return self.retry(
                at,
                j,
                Event::CustomerAnswer { job: j },
                "customer_answer.waiting",
            );
        };
        let round = self.metrics.job(j, |r| {
            r.retries = 0;
            r.round += 1;
            r.round - 1
        });
        let mut rng = self.rng(j, 6 + u64::from(round.unwrap_or(0)));
        let version = pending.quote.version;
        let answer = if round == Some(0) {
            spec.behaviour.answer
        } else {
            Answer::Accept
        };
        match answer {
            Answer::Accept => {
                if self
                    .queued(
                        Dev::Customer(c),
                        "consent",
                        "customer_accept",
                        cs.accept_quote(id, version).await,
                    )
                    .is_none()
                {
                    return Vec::new();
                }
                self.sync_customer(c, "customer_accept.deliver").await;
                let amend = spec.behaviour.amendment.is_some()
                    && self
                        .metrics
                        .job(j, |r| r.negotiation.amendment.is_none())
                        .unwrap_or(false);
                if amend {
                    vec![(at + rng.i64(600..1800), Event::Amend { job: j })]
                } else {
                    vec![(at + self.work_secs(j), Event::Complete { job: j })]
                }
            }
            Answer::Counter(percent) => {
                self.metrics.job(j, |r| r.negotiation.countered = true);
                let items = quotes::discounted(&pending.quote.items, percent, "Counter-offer");
                let reason = quotes::reason_for(&items, &spec.service);
                self.queued(
                    Dev::Customer(c),
                    "consent",
                    "counter",
                    cs.counter(id, items, reason).await,
                );
                self.sync_customer(c, "counter.deliver").await;
                vec![(at + rng.i64(60..180), Event::FriendAnswer { job: j })]
            }
            Answer::Reject => {
                self.metrics.job(j, |r| r.negotiation.rejected = true);
                self.queued(
                    Dev::Customer(c),
                    "reject",
                    "reject",
                    cs.reject_quote(id, version).await,
                );
                self.sync_customer(c, "reject.deliver").await;
                vec![(at + rng.i64(60..180), Event::FriendAnswer { job: j })]
            }
        }
    }

    fn retry(&self, at: VTime, j: usize, event: Event, what: &str) -> Next {
        let tries = self
            .metrics
            .job(j, |r| {
                r.retries += 1;
                r.retries
            })
            .unwrap_or(MAX_RETRIES + 1);
        if tries > MAX_RETRIES {
            self.metrics.count(&format!("{what}.gave_up"));
            // A Friend stuck on site hands the job over rather than leaving it hanging.
            let on_site = self
                .metrics
                .job(j, |r| r.phase == Phase::OnSite)
                .unwrap_or(false);
            if on_site && !matches!(event, Event::Rate { .. }) {
                self.metrics.job(j, |r| r.retries = 0);
                return vec![(at + 60, Event::Escalate { job: j })];
            }
            return Vec::new();
        }
        self.metrics.count(what);
        vec![(at + 60, event)]
    }

    async fn friend_answer(&self, at: VTime, j: usize) -> Next {
        let (Some(w), Some(id), Some(spec)) =
            (self.winner(j), self.job_id(j), self.world.jobs.get(j))
        else {
            return Vec::new();
        };
        if let Some(until) = self.spell_until(w) {
            return vec![(until + 30, Event::FriendAnswer { job: j })];
        }
        let Some(fs) = self.friend(w, "friend_answer").await else {
            return Vec::new();
        };
        self.sync_friend(w, "friend_answer.sync").await;
        let n = match fs.negotiation(id).await {
            Ok(n) => n,
            Err(e) => {
                self.metrics.error("friend_answer", &code(&e));
                return Vec::new();
            }
        };
        let mut rng = self.rng(j, 20);
        if let Some(counter) = n
            .pending()
            .filter(|q| q.proposed_by == Party::Customer)
            .cloned()
        {
            self.metrics.job(j, |r| r.retries = 0);
            if spec.behaviour.friend_takes_counter {
                let version = counter.quote.version;
                if self
                    .queued(
                        Dev::Friend(w),
                        "consent",
                        "friend_accept",
                        fs.accept_quote(id, version).await,
                    )
                    .is_some()
                {
                    self.sync_friend(w, "friend_accept.deliver").await;
                    return vec![(at + self.work_secs(j), Event::Complete { job: j })];
                }
                return Vec::new();
            }
            let percent = match spec.behaviour.answer {
                Answer::Counter(p) => p / 2,
                _ => 5,
            };
            let first = quotes::first(&spec.service, &spec.behaviour.quote);
            let middle = quotes::discounted(&first, percent, "Meet in the middle");
            let reason = quotes::reason_for(&middle, &spec.service);
            self.queued(
                Dev::Friend(w),
                "consent",
                "propose_middle",
                fs.propose(id, middle, reason).await,
            );
            self.metrics.job(j, |r| r.negotiation.proposals += 1);
            self.sync_friend(w, "propose_middle.deliver").await;
            return vec![(at + rng.i64(60..180), Event::CustomerAnswer { job: j })];
        }
        let rejected = n
            .latest
            .as_ref()
            .is_some_and(|q| q.answer == QuoteAnswer::Rejected);
        if rejected {
            self.metrics.job(j, |r| r.retries = 0);
            self.queued(
                Dev::Friend(w),
                "consent",
                "propose_bare",
                fs.propose(id, quotes::bare(&spec.service), None).await,
            );
            self.metrics.job(j, |r| r.negotiation.proposals += 1);
            self.sync_friend(w, "propose_bare.deliver").await;
            return vec![(at + rng.i64(60..180), Event::CustomerAnswer { job: j })];
        }
        self.retry(
            at,
            j,
            Event::FriendAnswer { job: j },
            "friend_answer.waiting",
        )
    }

    async fn amend(&self, at: VTime, j: usize) -> Next {
        let (Some(w), Some(id)) = (self.winner(j), self.job_id(j)) else {
            return Vec::new();
        };
        if let Some(until) = self.spell_until(w) {
            return vec![(until + 30, Event::Amend { job: j })];
        }
        let Some(fs) = self.friend(w, "amend").await else {
            return Vec::new();
        };
        self.sync_friend(w, "amend.sync").await;
        let agreed = match fs.negotiation(id).await {
            Ok(n) => n.agreed.map(|q| q.quote.items),
            Err(e) => {
                self.metrics.error("amend", &code(&e));
                None
            }
        };
        let Some(agreed) = agreed else {
            return self.retry(at, j, Event::Amend { job: j }, "amend.waiting");
        };
        let (items, reason) = quotes::amended(&agreed);
        if self
            .queued(
                Dev::Friend(w),
                "consent",
                "amend",
                fs.propose(id, items, Some(reason)).await,
            )
            .is_none()
        {
            return vec![(at + self.work_secs(j), Event::Complete { job: j })];
        }
        self.metrics.job(j, |r| {
            r.retries = 0;
            r.negotiation.proposals += 1;
            r.negotiation.amendment = Some(false);
        });
        self.sync_friend(w, "amend.deliver").await;
        let mut rng = self.rng(j, 30);
        vec![(at + rng.i64(60..180), Event::CustomerAmendAnswer { job: j })]
    }

    async fn customer_amend_answer(&self, at: VTime, j: usize) -> Next {
        let (Some(id), Some(spec)) = (self.job_id(j), self.world.jobs.get(j)) else {
            return Vec::new();
        };
        let c = spec.customer;
        let Some(cs) = self.customer(c, "amend_answer").await else {
            return Vec::new();
        };
        self.sync_customer(c, "amend_answer.sync").await;
        let pending = match cs.negotiation(id).await {
            Ok(n) => n
                .pending()
                .filter(|q| q.proposed_by == Party::Friend)
                .map(|q| q.quote.version),
            Err(e) => {
                self.metrics.error("amend_answer", &code(&e));
                None
            }
        };
        let Some(version) = pending else {
            return self.retry(
                at,
                j,
                Event::CustomerAmendAnswer { job: j },
                "amend_answer.waiting",
            );
        };
        self.metrics.job(j, |r| r.retries = 0);
        if spec.behaviour.amendment == Some(true) {
            if self
                .queued(
                    Dev::Customer(c),
                    "consent",
                    "amend_accept",
                    cs.accept_quote(id, version).await,
                )
                .is_some()
            {
                self.metrics
                    .job(j, |r| r.negotiation.amendment = Some(true));
            }
        } else {
            self.queued(
                Dev::Customer(c),
                "reject",
                "amend_reject",
                cs.reject_quote(id, version).await,
            );
        }
        self.sync_customer(c, "amend_answer.deliver").await;
        vec![(at + self.work_secs(j) / 2, Event::Complete { job: j })]
    }

    async fn complete(&self, at: VTime, j: usize) -> Next {
        let (Some(w), Some(id), Some(spec)) =
            (self.winner(j), self.job_id(j), self.world.jobs.get(j))
        else {
            return Vec::new();
        };
        if let Some(until) = self.spell_until(w) {
            return vec![(until + 30, Event::Complete { job: j })];
        }
        let Some(fs) = self.friend(w, "complete").await else {
            return Vec::new();
        };
        let offline = self.offline_on_job(w);
        if !offline {
            self.sync_friend(w, "complete.sync").await;
        }
        let agreed = fs.negotiation(id).await.ok().and_then(|n| {
            n.pending()
                .is_none()
                .then_some(n.agreed.map(|q| q.quote.total.minor))
                .flatten()
        });
        let Some(total) = agreed else {
            return self.retry(at, j, Event::Complete { job: j }, "complete.waiting");
        };
        let payment = if spec.behaviour.cash {
            PaymentMethod::Cash
        } else {
            PaymentMethod::Online
        };
        if self
            .queued(
                Dev::Friend(w),
                "complete",
                "complete",
                fs.complete(id, payment).await,
            )
            .is_none()
        {
            return self.retry(
                at,
                j,
                Event::Complete { job: j },
                "complete.refused_locally",
            );
        }
        self.metrics.job(j, |r| {
            r.retries = 0;
            r.phase = Phase::Finished;
            r.negotiation.final_total = Some(total);
            r.negotiation.cash = Some(spec.behaviour.cash);
        });
        let rating = spec.behaviour.rating.map(|(_, delay)| delay);
        self.leave(at, w, j, spec.customer, rating).await
    }

    async fn back_online(&self, at: VTime, f: usize, job: Option<usize>) -> Next {
        let Some(device) = self.friends.get(f) else {
            return Vec::new();
        };
        device.update(|s| s.offline = None);
        device.proxy.go_online();
        self.metrics.count("offline.back_online");
        if let Some(fs) = self.friend(f, "back_online").await {
            if let Ok(items) = fs.outbox().await {
                let pending = items
                    .iter()
                    .filter(|i| i.status == friend_core::store::outbox::ItemStatus::Pending)
                    .map(|i| i.id);
                self.metrics.replayed(Dev::Friend(f), pending);
            }
            self.sync_friend(f, "back_online.replay").await;
        }
        if device.foreground
            && let Err(e) = device.start_foreground().await
        {
            self.metrics.error("back_online.foreground", &code(&e));
        }
        let Some(j) = job else { return Vec::new() };
        let Some(spec) = self.world.jobs.get(j) else {
            return Vec::new();
        };
        let mut next = vec![(
            at + PUSH_DELAY,
            Event::CustomerPush {
                customer: spec.customer,
            },
        )];
        let completed = self
            .metrics
            .job(j, |r| r.negotiation.final_total.is_some())
            .unwrap_or(false);
        if completed && let Some((_, delay)) = spec.behaviour.rating {
            next.push((at + delay, Event::Rate { job: j }));
        }
        next
    }

    async fn rate(&self, at: VTime, j: usize) -> Next {
        let (Some(id), Some(spec)) = (self.job_id(j), self.world.jobs.get(j)) else {
            return Vec::new();
        };
        let Some((stars, _)) = spec.behaviour.rating else {
            return Vec::new();
        };
        let c = spec.customer;
        let Some(cs) = self.customer(c, "rate").await else {
            return Vec::new();
        };
        self.sync_customer(c, "rate.sync").await;
        let state = cs
            .job(id)
            .await
            .ok()
            .and_then(|cj| cj.details.map(|d| d.state));
        if state != Some(JobState::Completed) {
            return self.retry(at, j, Event::Rate { job: j }, "rate.waiting");
        }
        let comment = (stars >= 4).then(|| "Fast and friendly".to_owned());
        if self
            .queued(
                Dev::Customer(c),
                "rate",
                "rate",
                cs.rate(id, stars, comment).await,
            )
            .is_some()
        {
            self.metrics.add("rating.stars", u64::from(stars));
            self.metrics.count("rating.count");
        }
        self.sync_customer(c, "rate.deliver").await;
        Vec::new()
    }

    // ---- connectivity ------------------------------------------------------------------------------

    fn spell_start(&self, at: VTime, f: usize, secs: i64) -> Next {
        let Some(device) = self.friends.get(f) else {
            return Vec::new();
        };
        let started = device.update(|s| {
            if s.offline.is_some() {
                return false;
            }
            s.offline = Some(Offline::Spell { until: at + secs });
            true
        });
        if started != Some(true) {
            return Vec::new();
        }
        device.proxy.go_offline();
        self.metrics.count("offline.spells");
        vec![(at + secs, Event::SpellEnd { friend: f })]
    }

    async fn spell_end(&self, f: usize) -> Next {
        let Some(device) = self.friends.get(f) else {
            return Vec::new();
        };
        let ended = device.update(|s| {
            if matches!(s.offline, Some(Offline::Spell { .. })) {
                s.offline = None;
                true
            } else {
                false
            }
        });
        if ended != Some(true) {
            return Vec::new();
        }
        device.proxy.go_online();
        if device.is_open() {
            if let Some(fs) = self.friend(f, "spell_end").await
                && let Ok(items) = fs.outbox().await
            {
                let pending = items
                    .iter()
                    .filter(|i| i.status == friend_core::store::outbox::ItemStatus::Pending)
                    .map(|i| i.id);
                self.metrics.replayed(Dev::Friend(f), pending);
            }
            self.sync_friend(f, "spell_end.replay").await;
        }
        Vec::new()
    }
}
