//! After the accept: the winner calls the customer and records the agreed visit — or gives the job
//! back when no time suits both —, taps "on my way" with the core's straight-line estimate from
//! where they are (a second estimate halfway through a long trip), and arrives after the simulated
//! road trip the estimate is measured against. A release starts the job's second search: the
//! backend offers it again and responders are drawn among the Friends who learned of it. The
//! customer's live status is noted each time their phone learns something.

use super::Next;
use crate::sim::devices::{Offline, code};
use crate::sim::driver::Sim;
use crate::sim::events::{Event, VTime};
use crate::sim::ids::{FriendIx, JobIx};
use crate::sim::metrics::{Dev, Phase};
use crate::sim::report::clock;
use crate::sim::world::JobSpec;
use chrono::{DateTime, Utc};
use friend_core::LiveStatus;
use friend_protocol::{GeoPoint, JobId, Place, ReleaseReason};

/// Average speed on the road, km/h: the simulated trip the core's estimate (straight line at
/// 30 km/h plus 5 minutes) is measured against.
const ROAD_KMH: f64 = 28.0;
/// How much longer the road is than the straight line: drawn between these.
const ROAD_FACTOR: (f64, f64) = (1.15, 1.6);
/// A trip longer than this gets a second estimate halfway.
const UPDATE_AFTER: VTime = 20 * 60;

/// When the winner sets off and arrives, virtual seconds.
struct Trip {
    /// Setting off ("on my way"); `None` for remote jobs (nobody travels).
    departure: Option<VTime>,
    /// Reaching the door.
    arrival: VTime,
}

impl Sim {
    /// The winner calls the customer: records the agreed visit (a now-job's arrival window, a
    /// slot job's slot confirmed) and plans the trip — or gives the job back.
    pub(super) async fn appoint(&self, at: VTime, job: JobIx, friend: FriendIx) -> Next {
        if !self.holds(job, friend) {
            return Vec::new();
        }
        if let Some(until) = self.spell_until(friend) {
            return vec![(until + 30, Event::Appoint { job, friend })];
        }
        let (Some(id), Some(spec)) = (self.job_id(job), self.world.job(job)) else {
            return Vec::new();
        };
        let releases = self
            .metrics
            .job(job, |r| r.visit.releases.len())
            .unwrap_or(0);
        if let Some(reason) = spec.behaviour.gives_back
            && releases == 0
        {
            return self.give_back(at, friend, job, id, reason).await;
        }
        let Some(fs) = self.friend_session(friend, "appoint").await else {
            return Vec::new();
        };
        let mut rng = self.rng(job, 20 + releases as u64);
        let trip = self.trip(at, friend, spec, &mut rng);
        let (start, end) = match spec.slot {
            Some((s, len)) => (spec.at + s, spec.at + s + len),
            None => {
                let start = trip.departure.unwrap_or(at + 60);
                (start, trip.arrival.max(start) + 45 * 60)
            }
        };
        let queued = self.queued(
            Dev::Friend(friend),
            "appointment",
            "appointment",
            fs.set_appointment(id, self.server_time(start), self.server_time(end))
                .await,
        );
        if queued.is_some() {
            self.metrics.job(job, |r| r.visit.appointed_at = Some(at));
            self.sync_friend(friend, "appointment.deliver").await;
        }
        let mut next = vec![(trip.arrival, Event::Arrive { job })];
        if let Some(departure) = trip.departure {
            next.push((
                departure,
                Event::OnMyWay {
                    job,
                    friend,
                    update: false,
                },
            ));
            if trip.arrival - departure > UPDATE_AFTER {
                next.push((
                    departure + (trip.arrival - departure) / 2,
                    Event::OnMyWay {
                        job,
                        friend,
                        update: true,
                    },
                ));
            }
        }
        next
    }

    /// The trip to `spec` for a winner calling at `at`: a slot job's arrival just before its slot,
    /// a now-job's after 5–15 minutes to get going; the road is longer and slower than the line.
    fn trip(&self, at: VTime, friend: FriendIx, spec: &JobSpec, rng: &mut fastrand::Rng) -> Trip {
        if spec.place == Place::Remote {
            return Trip {
                departure: None,
                arrival: at + rng.i64(180..600),
            };
        }
        let km = self
            .friend_device(friend)
            .and_then(|d| d.state())
            .map_or(10.0, |s| s.position.distance_m(&spec.location) / 1000.0);
        let factor = ROAD_FACTOR.0 + (ROAD_FACTOR.1 - ROAD_FACTOR.0) * rng.f64();
        let road = ((km * factor / ROAD_KMH * 3600.0) as VTime + rng.i64(60..300)).max(300);
        match spec.slot {
            Some((s, _)) => {
                let arrival = (spec.at + s - rng.i64(0..300)).max(at + 120 + road);
                Trip {
                    departure: Some(arrival - road),
                    arrival,
                }
            }
            None => {
                let departure = at + rng.i64(300..900);
                Trip {
                    departure: Some(departure),
                    arrival: departure + road,
                }
            }
        }
    }

    /// The winner taps "on my way": the core estimates the arrival from the device's position
    /// (which stays on the device). Halfway, the position is halfway too.
    pub(super) async fn on_my_way(
        &self,
        at: VTime,
        job: JobIx,
        friend: FriendIx,
        update: bool,
    ) -> Next {
        let phase = self.metrics.job(job, |r| r.phase).unwrap_or_default();
        if !self.holds(job, friend) || phase != Phase::Assigned {
            return Vec::new();
        }
        let (Some(id), Some(spec), Some(device)) = (
            self.job_id(job),
            self.world.job(job),
            self.friend_device(friend),
        ) else {
            return Vec::new();
        };
        let Some(state) = device.state() else {
            return Vec::new();
        };
        if state.current.is_some_and(|c| c != job)
            || matches!(state.offline, Some(Offline::Basement { .. }))
        {
            // Still busy with another job: no estimate until they really set off.
            self.metrics.count("on_my_way.busy_elsewhere");
            return Vec::new();
        }
        let position = if update {
            midpoint(&state.position, &spec.location).unwrap_or(state.position)
        } else {
            state.position
        };
        let Some(fs) = self.friend_session(friend, "on_my_way").await else {
            return Vec::new();
        };
        if state.offline.is_none() {
            // The app is open: it has just synced, so its idea of the server clock is fresh.
            self.sync_friend(friend, "on_my_way.sync").await;
        }
        let Some(queued) = self.queued(
            Dev::Friend(friend),
            "on_my_way",
            "on_my_way",
            fs.on_my_way_from(id, position).await,
        ) else {
            return Vec::new();
        };
        self.metrics
            .superseding(Dev::Friend(friend), id, queued.outbox_id);
        let eta = self.virtual_second(queued.eta);
        self.metrics.job(job, |r| r.visit.etas.push((at, eta)));
        if update {
            device.update(|s| s.position = position);
        }
        if state.offline.is_none() {
            self.sync_friend(friend, "on_my_way.deliver").await;
        }
        Vec::new()
    }

    /// The winner gives the job back with `reason` before arriving: the backend offers it again
    /// and the second search begins.
    pub(super) async fn give_back(
        &self,
        at: VTime,
        winner: FriendIx,
        job: JobIx,
        id: JobId,
        reason: ReleaseReason,
    ) -> Next {
        let Some(fs) = self.friend_session(winner, "release").await else {
            return Vec::new();
        };
        let queued = self.queued(
            Dev::Friend(winner),
            "release",
            "release",
            fs.release_with_reason(id, Some(reason), None).await,
        );
        if let Some(d) = self.friend_device(winner) {
            d.update(|s| {
                s.slots.retain(|(x, _, _)| *x != job);
                if s.current == Some(job) {
                    s.current = None;
                }
            });
        }
        if queued.is_none() {
            return Vec::new();
        }
        self.metrics.count(&format!("release.{}", reason.as_str()));
        self.sync_friend(winner, "release.deliver").await;
        self.metrics.job(job, |r| {
            r.visit.first_accept = r.visit.first_accept.or(r.accepted.map(|(t, _)| t));
            r.visit.releases.push((at, winner, reason.as_str()));
            r.retries = 0;
            r.phase = Phase::Open;
            r.released = true;
            r.accepted = None;
            r.winners.clear();
            r.closed_at = None;
        });
        self.search_again(at, job, id, winner).await
    }

    /// The second search of a released job: the Friends the backend pushed the re-offer to, and
    /// those with the app open, may respond (the one who gave it back does not).
    async fn search_again(&self, at: VTime, job: JobIx, id: JobId, releaser: FriendIx) -> Next {
        let Some(spec) = self.world.job(job) else {
            return Vec::new();
        };
        if let Err(e) = self.gateway.settle().await {
            tracing::warn!("push gateways: {e}");
            self.metrics.error("release.settle", "timeout");
        }
        let offered = self.gateway.offered_to(id);
        let read = self
            .metrics
            .job(job, |r| {
                std::mem::replace(&mut r.offers_read, offered.len())
            })
            .unwrap_or(0);
        let pushed = offered.get(read..).unwrap_or_default();
        self.metrics.add("reoffer.pushed", pushed.len() as u64);
        let eligible: Vec<FriendIx> = self
            .world
            .eligible(job)
            .into_iter()
            .filter(|f| *f != releaser)
            .collect();
        let mut learned = self.reached(pushed, &eligible);
        learned.retain(|f| *f != releaser);
        self.draw_responders(at, job, spec, &eligible, &learned)
    }

    /// Whether `friend` holds `job` as far as the simulation knows (a step of an earlier winner
    /// does nothing once the job moved on).
    fn holds(&self, job: JobIx, friend: FriendIx) -> bool {
        self.winner(job) == Some(friend)
    }

    /// The server's time at virtual second `t`.
    fn server_time(&self, t: VTime) -> DateTime<Utc> {
        self.backend.clock.origin() + chrono::Duration::seconds(t)
    }

    /// The virtual second of server time `t`.
    fn virtual_second(&self, t: DateTime<Utc>) -> VTime {
        (t - self.backend.clock.origin()).num_seconds()
    }

    /// Notes the live status `job` shows on its customer's phone at `at`, if it changed.
    pub(super) async fn note_status(&self, at: VTime, job: JobIx) {
        let (Some(id), Some(spec)) = (self.job_id(job), self.world.job(job)) else {
            return;
        };
        let Some(cs) = self.customer_session(spec.customer, "status").await else {
            return;
        };
        let status = match cs.job(id).await {
            Ok(j) => j.status,
            Err(e) => {
                self.metrics.error("status", &code(&e));
                return;
            }
        };
        let text = self.status_text(&status);
        self.metrics.job(job, |r| {
            if r.visit
                .timeline
                .last()
                .is_none_or(|(_, last)| *last != text)
            {
                r.visit.timeline.push((at, text));
            }
        });
    }

    /// What the customer's app says, in words, with the virtual day's clock.
    fn status_text(&self, status: &LiveStatus) -> String {
        let hhmm = |t: &DateTime<Utc>| clock(self.virtual_second(*t));
        match status {
            LiveStatus::Queued => "booked offline (queued)".into(),
            LiveStatus::Searching => "searching for a Friend".into(),
            LiveStatus::SearchingAgain => "looking for another Friend".into(),
            LiveStatus::Accepted {
                friend,
                visit: None,
            } => format!("accepted by {friend}"),
            LiveStatus::Accepted {
                friend,
                visit: Some(v),
            } => format!(
                "accepted by {friend}, visit {}–{}",
                hhmm(&v.start),
                hhmm(&v.end)
            ),
            LiveStatus::OnTheWay { friend, eta } => {
                format!("{friend} is on the way, arriving about {}", hhmm(eta))
            }
            LiveStatus::OnSite => "on site".into(),
            LiveStatus::QuotePending { by } => {
                format!("a quote by the {by:?} waits").to_lowercase()
            }
            LiveStatus::Agreed => "price agreed".into(),
            LiveStatus::Completed => "completed".into(),
            LiveStatus::Cancelled => "cancelled".into(),
            LiveStatus::Expired => "expired".into(),
            LiveStatus::Escalated => "handed to the field service".into(),
            LiveStatus::Unsuccessful => "checked out without success".into(),
        }
    }
}

/// Halfway between `a` and `b` (close enough on a city's scale).
fn midpoint(a: &GeoPoint, b: &GeoPoint) -> Option<GeoPoint> {
    GeoPoint::new((a.lat() + b.lat()) / 2.0, (a.lon() + b.lon()) / 2.0).ok()
}
