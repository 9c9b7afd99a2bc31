//! The simulation's report: computed from what the run observed and from the server's final
//! answer, as JSON (for machines) and as text (for people).

use super::audit::KindCount;
use super::driver::Outcome;
use super::metrics::{AcceptKind, Phase};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The published dispatch figures (SPEC §2): share of jobs accepted within a time.
pub const PUBLISHED: [(i64, &str, f64, &str); 4] = [
    (60, "1 min", 0.40, "over 40 %"),
    (600, "10 min", 0.70, "70 %"),
    (3600, "1 h", 0.90, "over 90 %"),
    (10_800, "3 h", 0.98, "98 %"),
];

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The seed of every draw.
    pub seed: u64,
    /// What was simulated.
    pub setup: Setup,
    /// Wall time of the run, seconds.
    pub wall_secs: f64,
    /// HTTP traffic at the backend.
    pub http: Http,
    /// Time from booking to accept.
    pub time_to_accept: TimeToAccept,
    /// The accept race.
    pub race: Race,
    /// Outbox items and their outcomes.
    pub outbox: Outbox,
    /// Bytes each Friend's device received.
    pub sync_bytes: SyncBytes,
    /// Booking → offer in a long-polling Friend's cache.
    pub push_to_cache: PushToCache,
    /// On-site negotiation.
    pub negotiation: Negotiation,
    /// Jobs by final state on the server.
    pub final_states: BTreeMap<String, u64>,
    /// Counters of what happened.
    pub activity: BTreeMap<String, u64>,
    /// Steps that failed unexpectedly, by "step: code".
    pub errors: BTreeMap<String, u64>,
    /// The invariants.
    pub invariants: Invariants,
}

/// What was simulated.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Friends.
    pub friends: usize,
    /// Of which long-polling all day.
    pub foreground_friends: usize,
    /// Of which with offline spells.
    pub flaky_friends: usize,
    /// Customers.
    pub customers: usize,
    /// Jobs booked over the day.
    pub jobs: usize,
    /// The booking window of the virtual day.
    pub booking_window: String,
    /// Virtual time when the last event happened.
    pub virtual_end: String,
}

/// HTTP traffic at the backend.
#[derive(Debug, Clone, Serialize)]
pub struct Http {
    /// Requests.
    pub requests: u64,
    /// Requests per wall-clock second.
    pub per_sec: f64,
    /// Response body bytes.
    pub down_bytes: u64,
    /// Request body bytes.
    pub up_bytes: u64,
}

/// One published figure next to the simulated one.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// "1 min", …
    pub within: String,
    /// The limit in seconds.
    pub secs: i64,
    /// Simulated share of jobs accepted within it.
    pub simulated: f64,
    /// The published share.
    pub published: f64,
    /// The published wording.
    pub published_text: String,
}

/// Time from booking to accept.
#[derive(Debug, Clone, Serialize)]
pub struct TimeToAccept {
    /// Jobs counted: accepted, or never accepted (expired).
    pub considered: usize,
    /// Of which accepted.
    pub accepted: usize,
    /// Of which never accepted.
    pub never_accepted: usize,
    /// Of those, jobs no free Friend had in their inbox when booked.
    pub never_accepted_no_free_friend: usize,
    /// Free Friends with the offer in their inbox at booking, mean per job.
    pub mean_free_friends: f64,
    /// Cancelled by the customer before anyone accepted (left out).
    pub cancelled_before_accept: usize,
    /// The buckets.
    pub buckets: Vec<Bucket>,
    /// Median of accepted jobs, seconds.
    pub median_secs: Option<i64>,
    /// 90th percentile of accepted jobs, seconds.
    pub p90_secs: Option<i64>,
    /// Winning accepts by the winner's attention mode.
    pub winners_by_attention: BTreeMap<String, u64>,
    /// Every accepted job's time to accept, seconds, sorted (for the chart).
    pub samples_secs: Vec<i64>,
}

/// The accept race.
#[derive(Debug, Clone, Serialize)]
pub struct Race {
    /// Accept requests sent.
    pub accept_attempts: usize,
    /// Jobs with more than one accept attempt.
    pub contested_jobs: usize,
    /// Jobs where accepts of the same virtual second ran concurrently.
    pub same_instant_contests: usize,
    /// Accepts that took part in such a same-instant race.
    pub same_instant_accepts: usize,
    /// `Lost`: another Friend was first.
    pub race_losers: usize,
    /// `Gone`: cancelled or expired.
    pub gone: usize,
    /// `NotEligible` (overlapping slot jobs).
    pub not_eligible: usize,
    /// `Offline`.
    pub offline: usize,
    /// Core errors.
    pub errors: usize,
    /// Jobs where more than one device got `Won`.
    pub double_assignments: usize,
    /// Jobs whose winner (by `Won`) is not the server's assigned Friend.
    pub winner_mismatches: usize,
    /// Jobs no device saw `Won` for because the winner's answer was lost (their accept ended
    /// `Offline`) while the server assigned exactly that Friend: one holder, learnt by the device
    /// at its next sync through the pending-accept lookup. Not a double assignment.
    pub answers_lost: usize,
    /// Jobs checked against the server.
    pub checked_jobs: usize,
}

/// One kind of outbox item.
#[derive(Debug, Clone, Serialize)]
pub struct KindRow {
    /// Queued by the simulation.
    pub queued: u64,
    /// Applied.
    pub applied: u64,
    /// Refused.
    pub refused: u64,
    /// Still pending.
    pub pending: u64,
    /// Refusal codes.
    pub refusal_codes: BTreeMap<String, u64>,
}

impl From<&KindCount> for KindRow {
    fn from(k: &KindCount) -> KindRow {
        KindRow {
            queued: k.queued,
            applied: k.applied,
            refused: k.refused,
            pending: k.pending,
            refusal_codes: k.refusal_codes.clone(),
        }
    }
}

/// Outbox items and their outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct Outbox {
    /// Queued by the simulation.
    pub queued: u64,
    /// Applied.
    pub applied: u64,
    /// Refused (with a reason).
    pub refused: u64,
    /// Still pending at the end.
    pub pending: u64,
    /// Queued actions not found applied or refused in their device's outbox.
    pub lost_writes: u64,
    /// Items the simulation did not queue.
    pub unexpected_items: u64,
    /// By kind.
    pub by_kind: BTreeMap<String, KindRow>,
    /// Items queued offline and replayed when the device was back online.
    pub replayed: u64,
    /// Their outcomes by kind.
    pub replayed_by_kind: BTreeMap<String, KindRow>,
}

/// Bytes each Friend's device received (response bodies, measured at the backend).
#[derive(Debug, Clone, Serialize)]
pub struct SyncBytes {
    /// Friends.
    pub friends: usize,
    /// Mean sync bytes per Friend.
    pub mean_per_friend: f64,
    /// Median.
    pub p50_per_friend: f64,
    /// 95th percentile.
    pub p95_per_friend: f64,
    /// Largest.
    pub max_per_friend: f64,
    /// All API bytes per Friend (sync and everything else), mean.
    pub mean_all_per_friend: f64,
    /// Sync requests of all Friends.
    pub sync_requests: u64,
    /// Mean body of a sync response.
    pub mean_sync_response_bytes: f64,
}

/// Booking → offer in a long-polling Friend's cache (wall clock).
#[derive(Debug, Clone, Serialize)]
pub struct PushToCache {
    /// Measurements.
    pub samples: usize,
    /// Watched offers never seen (taken first, or missed).
    pub missed: u64,
    /// From the customer's booking call: median, ms.
    pub p50_ms: Option<f64>,
    /// 90th percentile, ms.
    pub p90_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Largest, ms.
    pub max_ms: Option<f64>,
    /// From the customer's booking response (negative: the offer arrived first): median, ms.
    pub after_response_p50_ms: Option<f64>,
    /// The same, 99th percentile.
    pub after_response_p99_ms: Option<f64>,
    /// Share of offers in the Friend's cache before the customer's app had the booking response.
    pub before_response_share: Option<f64>,
}

/// Price deviations from the orientation price.
#[derive(Debug, Clone, Serialize)]
pub struct Deviation {
    /// Completed jobs with a final price.
    pub jobs: usize,
    /// Mean deviation, percent.
    pub mean_pct: Option<f64>,
    /// Median deviation, percent.
    pub median_pct: Option<f64>,
    /// 10th percentile, percent.
    pub p10_pct: Option<f64>,
    /// 90th percentile, percent.
    pub p90_pct: Option<f64>,
    /// Above the orientation price.
    pub above: usize,
    /// At it.
    pub equal: usize,
    /// Below it.
    pub below: usize,
}

/// On-site negotiation.
#[derive(Debug, Clone, Serialize)]
pub struct Negotiation {
    /// Jobs with at least one proposal.
    pub negotiated: usize,
    /// Agreed on the Friend's first proposal.
    pub agreed_first_proposal: usize,
    /// The customer counter-proposed.
    pub countered: usize,
    /// The customer rejected the first proposal.
    pub rejected: usize,
    /// Amendments proposed after agreement.
    pub amendments_proposed: usize,
    /// …and accepted.
    pub amendments_accepted: usize,
    /// Agreed by payload exchange with the Friend offline.
    pub offline_exchanges: usize,
    /// Completed, paid online.
    pub paid_online: usize,
    /// Completed, paid in cash.
    pub paid_cash: usize,
    /// Final price vs orientation price.
    pub deviation: Deviation,
    /// Ratings given.
    pub ratings: usize,
    /// Mean stars.
    pub mean_stars: Option<f64>,
}

/// The invariants.
#[derive(Debug, Clone, Serialize)]
pub struct Invariants {
    /// Jobs with more than one `Won` or whose `Won` differs from the server (must be 0).
    pub double_assignments: usize,
    /// Queued actions lost (must be 0).
    pub lost_writes: u64,
    /// Booked jobs neither terminal nor assigned at the end (must be 0).
    pub jobs_left_open: usize,
    /// Jobs whose booking never reached the server.
    pub jobs_not_booked: usize,
    /// All hold.
    pub ok: bool,
}

/// `q`-quantile (0…1) of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(idx.min(sorted.len() - 1)).copied()
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn clock(t: i64) -> String {
    let minutes = 7 * 60 + t.div_euclid(60);
    let (day, minutes) = (minutes / (24 * 60), minutes % (24 * 60));
    let suffix = if day > 0 {
        format!(" (+{day} d)")
    } else {
        String::new()
    };
    format!("{:02}:{:02}{suffix}", minutes / 60, minutes % 60)
}

/// Builds the report of a finished run.
pub(crate) fn build(outcome: &Outcome) -> Report {
    let sim = &outcome.sim;
    let audit = &outcome.audit;
    let runs = sim.metrics.job_runs();
    let counters = sim.metrics.counters();
    let wall = outcome.wall.as_secs_f64();

    // Final states on the server.
    let mut final_states: BTreeMap<String, u64> = BTreeMap::new();
    for (j, run) in runs.iter().enumerate() {
        let state = match (run.id, audit.server.get(j).and_then(|d| d.as_ref())) {
            (None, _) => "not_booked".to_owned(),
            (Some(_), None) => "unknown".to_owned(),
            (Some(_), Some(d)) => d.state.as_str().to_owned(),
        };
        *final_states.entry(state).or_default() += 1;
    }

    // Time to accept.
    let mut samples: Vec<i64> = Vec::new();
    let mut never = 0;
    let mut never_alone = 0;
    let mut cancelled_first = 0;
    for (j, run) in runs.iter().enumerate() {
        let Some(booked) = run.booked_at else {
            continue;
        };
        match run.accepted {
            Some((at, _)) => samples.push(at - booked),
            None => {
                let server = audit
                    .server
                    .get(j)
                    .and_then(|d| d.as_ref())
                    .map(|d| d.state);
                if run.phase == Phase::Cancelled
                    || server == Some(friend_protocol::JobState::Cancelled)
                {
                    cancelled_first += 1;
                } else {
                    never += 1;
                    if run.free_friends == 0 {
                        never_alone += 1;
                    }
                }
            }
        }
    }
    samples.sort_unstable();
    let considered = samples.len() + never;
    let buckets = PUBLISHED
        .iter()
        .map(|(secs, label, published, text)| Bucket {
            within: (*label).to_owned(),
            secs: *secs,
            simulated: if considered == 0 {
                0.0
            } else {
                samples.iter().filter(|s| **s <= *secs).count() as f64 / considered as f64
            },
            published: *published,
            published_text: (*text).to_owned(),
        })
        .collect();
    let as_f64: Vec<f64> = samples.iter().map(|s| *s as f64).collect();
    let mut winners_by_attention = BTreeMap::new();
    for mode in ["glance", "soon", "later"] {
        winners_by_attention.insert(
            mode.to_owned(),
            counters
                .get(&format!("accept.won.{mode}"))
                .copied()
                .unwrap_or(0),
        );
    }
    let time_to_accept = TimeToAccept {
        considered,
        accepted: samples.len(),
        never_accepted: never,
        never_accepted_no_free_friend: never_alone,
        mean_free_friends: {
            let booked: Vec<_> = runs.iter().filter(|r| r.booked_at.is_some()).collect();
            if booked.is_empty() {
                0.0
            } else {
                booked.iter().map(|r| r.free_friends as f64).sum::<f64>() / booked.len() as f64
            }
        },
        cancelled_before_accept: cancelled_first,
        buckets,
        median_secs: quantile(&as_f64, 0.5).map(|x| x as i64),
        p90_secs: quantile(&as_f64, 0.9).map(|x| x as i64),
        winners_by_attention,
        samples_secs: samples.clone(),
    };

    // The race and the invariants it checks.
    let mut race = Race {
        accept_attempts: 0,
        contested_jobs: 0,
        same_instant_contests: 0,
        same_instant_accepts: 0,
        race_losers: 0,
        gone: 0,
        not_eligible: 0,
        offline: 0,
        errors: 0,
        double_assignments: 0,
        winner_mismatches: 0,
        answers_lost: 0,
        checked_jobs: 0,
    };
    for (j, run) in runs.iter().enumerate() {
        race.accept_attempts += run.attempts.len();
        if run.attempts.len() > 1 {
            race.contested_jobs += 1;
        }
        let same = run.same_instant_attempts();
        if same > 0 {
            race.same_instant_contests += 1;
            race.same_instant_accepts += same;
        }
        for (_, kind) in &run.outcomes {
            match kind {
                AcceptKind::Lost => race.race_losers += 1,
                AcceptKind::Gone => race.gone += 1,
                AcceptKind::NotEligible => race.not_eligible += 1,
                AcceptKind::Offline => race.offline += 1,
                AcceptKind::Error => race.errors += 1,
                AcceptKind::Won => {}
            }
        }
        if run.winners.len() > 1 {
            race.double_assignments += 1;
        }
        if run.id.is_none() {
            continue;
        }
        let Some(server) = audit.server.get(j).and_then(|d| d.as_ref()) else {
            continue;
        };
        race.checked_jobs += 1;
        let server_friend = server.friend.as_ref().map(|f| f.id);
        let sim_friend = run
            .accepted
            .and_then(|(_, f)| f.of(&sim.friend_ids).copied());
        // A released job may show no Friend any more; otherwise the server's Friend is the winner.
        let matches = server_friend == sim_friend || (run.released && server_friend.is_none());
        let answer_lost = sim_friend.is_none()
            && server_friend.is_some_and(|holder| {
                run.outcomes.iter().any(|(f, kind)| {
                    *kind == AcceptKind::Offline && f.of(&sim.friend_ids) == Some(&holder)
                })
            });
        if answer_lost {
            race.answers_lost += 1;
        } else if !matches {
            race.winner_mismatches += 1;
        }
    }

    // Outbox.
    let sum =
        |f: fn(&KindCount) -> u64, m: &BTreeMap<String, KindCount>| m.values().map(f).sum::<u64>();
    let outbox = Outbox {
        queued: sum(|k| k.queued, &audit.outbox),
        applied: sum(|k| k.applied, &audit.outbox),
        refused: sum(|k| k.refused, &audit.outbox),
        pending: sum(|k| k.pending, &audit.outbox),
        lost_writes: audit.lost_writes,
        unexpected_items: audit.unexpected_items,
        by_kind: audit
            .outbox
            .iter()
            .map(|(k, v)| (k.clone(), v.into()))
            .collect(),
        replayed: sum(|k| k.queued, &audit.replayed),
        replayed_by_kind: audit
            .replayed
            .iter()
            .map(|(k, v)| (k.clone(), v.into()))
            .collect(),
    };

    // Bytes per Friend.
    let snaps: Vec<_> = sim.friend_traffic.iter().map(|c| c.snapshot()).collect();
    let per_friend = sorted(snaps.iter().map(|s| s.sync_down_bytes as f64).collect());
    let all_per_friend: Vec<f64> = snaps.iter().map(|s| s.down_bytes as f64).collect();
    let sync_requests: u64 = snaps.iter().map(|s| s.sync_requests).sum();
    let sync_bytes_total: u64 = snaps.iter().map(|s| s.sync_down_bytes).sum();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let sync_bytes = SyncBytes {
        friends: snaps.len(),
        mean_per_friend: mean(&per_friend),
        p50_per_friend: quantile(&per_friend, 0.5).unwrap_or(0.0),
        p95_per_friend: quantile(&per_friend, 0.95).unwrap_or(0.0),
        max_per_friend: per_friend.last().copied().unwrap_or(0.0),
        mean_all_per_friend: mean(&all_per_friend),
        sync_requests,
        mean_sync_response_bytes: if sync_requests == 0 {
            0.0
        } else {
            sync_bytes_total as f64 / sync_requests as f64
        },
    };

    // Push to cache.
    let from_call = sorted(
        sim.metrics
            .push_to_cache_ms
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default(),
    );
    let after = sorted(
        sim.metrics
            .push_after_response_ms
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default(),
    );
    let push_to_cache = PushToCache {
        samples: from_call.len(),
        missed: sim
            .metrics
            .push_missed
            .load(std::sync::atomic::Ordering::Relaxed),
        p50_ms: quantile(&from_call, 0.5),
        p90_ms: quantile(&from_call, 0.9),
        p99_ms: quantile(&from_call, 0.99),
        max_ms: from_call.last().copied(),
        after_response_p50_ms: quantile(&after, 0.5),
        after_response_p99_ms: quantile(&after, 0.99),
        before_response_share: (!after.is_empty())
            .then(|| after.iter().filter(|x| **x < 0.0).count() as f64 / after.len() as f64),
    };

    // Negotiation.
    let negotiated: Vec<_> = runs
        .iter()
        .filter(|r| r.negotiation.proposals > 0)
        .collect();
    let finals: Vec<_> = runs
        .iter()
        .filter_map(|r| {
            let total = r.negotiation.final_total?;
            (r.negotiation.orientation > 0).then(|| {
                (total - r.negotiation.orientation) as f64 * 100.0
                    / r.negotiation.orientation as f64
            })
        })
        .collect();
    let dev_sorted = sorted(finals.clone());
    let ratings = counters.get("rating.count").copied().unwrap_or(0);
    let stars = counters.get("rating.stars").copied().unwrap_or(0);
    let negotiation = Negotiation {
        negotiated: negotiated.len(),
        agreed_first_proposal: negotiated
            .iter()
            .filter(|r| {
                !r.negotiation.countered
                    && !r.negotiation.rejected
                    && r.negotiation.final_total.is_some()
            })
            .count(),
        countered: negotiated
            .iter()
            .filter(|r| r.negotiation.countered)
            .count(),
        rejected: negotiated.iter().filter(|r| r.negotiation.rejected).count(),
        amendments_proposed: negotiated
            .iter()
            .filter(|r| r.negotiation.amendment.is_some())
            .count(),
        amendments_accepted: negotiated
            .iter()
            .filter(|r| r.negotiation.amendment == Some(true))
            .count(),
        offline_exchanges: negotiated.iter().filter(|r| r.negotiation.offline).count(),
        paid_online: runs
            .iter()
            .filter(|r| r.negotiation.cash == Some(false))
            .count(),
        paid_cash: runs
            .iter()
            .filter(|r| r.negotiation.cash == Some(true))
            .count(),
        deviation: Deviation {
            jobs: finals.len(),
            mean_pct: (!finals.is_empty()).then(|| mean(&finals)),
            median_pct: quantile(&dev_sorted, 0.5),
            p10_pct: quantile(&dev_sorted, 0.1),
            p90_pct: quantile(&dev_sorted, 0.9),
            above: finals.iter().filter(|d| **d > 0.0).count(),
            equal: finals.iter().filter(|d| **d == 0.0).count(),
            below: finals.iter().filter(|d| **d < 0.0).count(),
        },
        ratings: ratings as usize,
        mean_stars: (ratings > 0).then(|| stars as f64 / ratings as f64),
    };

    let left_open: usize = ["open", "on_site", "agreed", "unknown"]
        .iter()
        .map(|s| final_states.get(*s).copied().unwrap_or(0) as usize)
        .sum();
    let not_booked = final_states.get("not_booked").copied().unwrap_or(0) as usize;
    let doubles = race.double_assignments + race.winner_mismatches;
    let invariants = Invariants {
        double_assignments: doubles,
        lost_writes: audit.lost_writes,
        jobs_left_open: left_open,
        jobs_not_booked: not_booked,
        ok: doubles == 0 && audit.lost_writes == 0 && left_open == 0,
    };
    let total = sim.backend.traffic.total.snapshot();
    let mut activity: BTreeMap<String, u64> = counters
        .into_iter()
        .filter(|(k, _)| !k.starts_with("rating."))
        .collect();
    activity.insert("expired_by_sweeps".into(), outcome.expired_by_sweeps as u64);
    activity.insert("expired_at_the_end".into(), audit.final_expired as u64);
    Report {
        seed: sim.config.seed,
        setup: Setup {
            friends: sim.world.friends.len(),
            foreground_friends: sim.world.friends.iter().filter(|f| f.foreground).count(),
            flaky_friends: sim.world.friends.iter().filter(|f| f.flaky).count(),
            customers: sim.world.customers.len(),
            jobs: sim.world.jobs.len(),
            booking_window: "07:00–22:00".into(),
            virtual_end: clock(outcome.virtual_end),
        },
        wall_secs: wall,
        http: Http {
            requests: total.requests,
            per_sec: if wall > 0.0 {
                total.requests as f64 / wall
            } else {
                0.0
            },
            down_bytes: total.down_bytes,
            up_bytes: total.up_bytes,
        },
        time_to_accept,
        race,
        outbox,
        sync_bytes,
        push_to_cache,
        negotiation,
        final_states,
        activity,
        errors: sim.metrics.errors(),
        invariants,
    }
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn kb(bytes: f64) -> String {
    if bytes >= 1_000_000.0 {
        format!("{:.1} MB", bytes / 1_000_000.0)
    } else {
        format!("{:.1} kB", bytes / 1000.0)
    }
}

fn ms(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.1} ms"))
        .unwrap_or_else(|| "–".into())
}

fn duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{:.1} min", s as f64 / 60.0),
        s => format!("{:.1} h", s as f64 / 3600.0),
    }
}

fn kinds(map: &BTreeMap<String, KindRow>) -> String {
    map.iter()
        .map(|(k, v)| {
            let codes = if v.refusal_codes.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    v.refusal_codes
                        .iter()
                        .map(|(c, n)| format!("{c} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            format!(
                "    {k:<22} {:>6} queued {:>6} applied {:>5} refused{codes}{}",
                v.queued,
                v.applied,
                v.refused,
                if v.pending > 0 {
                    format!(" {:>4} pending", v.pending)
                } else {
                    String::new()
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Report {
    /// The report for people.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let s = &self.setup;
        let _ = writeln!(o, "FriendCore marketplace simulation — seed {}", self.seed);
        let _ = writeln!(
            o,
            "  {} Friends ({} long-polling, {} with flaky connectivity), {} customers, {} jobs booked {} (virtual), last event {}",
            s.friends,
            s.foreground_friends,
            s.flaky_friends,
            s.customers,
            s.jobs,
            s.booking_window,
            s.virtual_end
        );
        let _ = writeln!(
            o,
            "  wall time {:.1} s · {} HTTP requests ({:.0}/s) · {} down, {} up",
            self.wall_secs,
            self.http.requests,
            self.http.per_sec,
            kb(self.http.down_bytes as f64),
            kb(self.http.up_bytes as f64)
        );
        let t = &self.time_to_accept;
        let _ = writeln!(
            o,
            "\nTime to accept ({} jobs: {} accepted, {} never; {} cancelled before an accept left out)",
            t.considered, t.accepted, t.never_accepted, t.cancelled_before_accept
        );
        let _ = writeln!(o, "  within     simulated   published");
        for b in &t.buckets {
            let _ = writeln!(
                o,
                "  {:<8} {:>10}   {}",
                b.within,
                pct(b.simulated),
                b.published_text
            );
        }
        let _ = writeln!(
            o,
            "  never accepted {} ({} had no free Friend in reach when booked) · {:.1} free Friends per offer on average",
            t.never_accepted, t.never_accepted_no_free_friend, t.mean_free_friends
        );
        let _ = writeln!(
            o,
            "  median {} · p90 {} · winners by attention: {}",
            t.median_secs.map(duration).unwrap_or_else(|| "–".into()),
            t.p90_secs.map(duration).unwrap_or_else(|| "–".into()),
            t.winners_by_attention
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let r = &self.race;
        let _ = writeln!(o, "\nThe race");
        let _ = writeln!(
            o,
            "  {} accept requests · {} contested jobs · {} same-instant races ({} accepts run concurrently) · {} race losers",
            r.accept_attempts,
            r.contested_jobs,
            r.same_instant_contests,
            r.same_instant_accepts,
            r.race_losers
        );
        let _ = writeln!(
            o,
            "  gone {} · not eligible {} · offline {} · errors {}",
            r.gone, r.not_eligible, r.offline, r.errors
        );
        let _ = writeln!(
            o,
            "  double assignments: {} (Won twice: {}, Won ≠ server's Friend: {}, of {} jobs checked) · winner's answer lost, server holds them: {}",
            self.invariants.double_assignments,
            r.double_assignments,
            r.winner_mismatches,
            r.checked_jobs,
            r.answers_lost
        );
        let b = &self.outbox;
        let _ = writeln!(o, "\nOutbox");
        let _ = writeln!(
            o,
            "  {} queued · {} applied · {} refused · {} pending · lost writes {}{}",
            b.queued,
            b.applied,
            b.refused,
            b.pending,
            b.lost_writes,
            if b.unexpected_items > 0 {
                format!(" · {} unexpected", b.unexpected_items)
            } else {
                String::new()
            }
        );
        let _ = writeln!(o, "{}", kinds(&b.by_kind));
        let _ = writeln!(o, "  replayed after offline work: {} items", b.replayed);
        if !b.replayed_by_kind.is_empty() {
            let _ = writeln!(o, "{}", kinds(&b.replayed_by_kind));
        }
        let y = &self.sync_bytes;
        let _ = writeln!(
            o,
            "\nSync bytes per Friend (response bodies at the backend, whole day)"
        );
        let _ = writeln!(
            o,
            "  mean {} · p50 {} · p95 {} · max {} · all API traffic mean {} · {} sync requests, {:.0} B each on average",
            kb(y.mean_per_friend),
            kb(y.p50_per_friend),
            kb(y.p95_per_friend),
            kb(y.max_per_friend),
            kb(y.mean_all_per_friend),
            y.sync_requests,
            y.mean_sync_response_bytes
        );
        let p = &self.push_to_cache;
        let _ = writeln!(
            o,
            "\nPush to cache (long-polling Friends, wall clock, from the customer's booking call)"
        );
        let _ = writeln!(
            o,
            "  {} offers · p50 {} · p90 {} · p99 {} · max {} · {} not seen",
            p.samples,
            ms(p.p50_ms),
            ms(p.p90_ms),
            ms(p.p99_ms),
            ms(p.max_ms),
            p.missed
        );
        let _ = writeln!(
            o,
            "  after the booking response: p50 {} · p99 {} · in the cache before the response: {}",
            ms(p.after_response_p50_ms),
            ms(p.after_response_p99_ms),
            p.before_response_share
                .map(pct)
                .unwrap_or_else(|| "–".into())
        );
        let n = &self.negotiation;
        let _ = writeln!(o, "\nNegotiation");
        let _ = writeln!(
            o,
            "  {} negotiated · {} agreed on the first proposal · {} countered · {} rejected · amendments {} ({} accepted) · {} by payload exchange offline",
            n.negotiated,
            n.agreed_first_proposal,
            n.countered,
            n.rejected,
            n.amendments_proposed,
            n.amendments_accepted,
            n.offline_exchanges
        );
        let d = &n.deviation;
        let f = |x: Option<f64>| {
            x.map(|v| format!("{v:+.1} %"))
                .unwrap_or_else(|| "–".into())
        };
        let _ = writeln!(
            o,
            "  final vs orientation price ({} jobs): mean {} · median {} · p10 {} · p90 {} · above {} / equal {} / below {}",
            d.jobs,
            f(d.mean_pct),
            f(d.median_pct),
            f(d.p10_pct),
            f(d.p90_pct),
            d.above,
            d.equal,
            d.below
        );
        let _ = writeln!(
            o,
            "  paid online {} · cash {} · {} ratings, mean {}",
            n.paid_online,
            n.paid_cash,
            n.ratings,
            n.mean_stars
                .map(|m| format!("{m:.2} ★"))
                .unwrap_or_else(|| "–".into())
        );
        let _ = writeln!(o, "\nFinal states (server)");
        let _ = writeln!(
            o,
            "  {}",
            self.final_states
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(" · ")
        );
        if !self.errors.is_empty() {
            let _ = writeln!(o, "\nSteps that failed (the simulation carried on)");
            for (k, v) in &self.errors {
                let _ = writeln!(o, "  {k}: {v}");
            }
        }
        let i = &self.invariants;
        let _ = writeln!(
            o,
            "\nInvariants: {} — {} double assignments, {} lost writes, {} jobs left neither terminal nor assigned",
            if i.ok { "OK" } else { "BROKEN" },
            i.double_assignments,
            i.lost_writes,
            i.jobs_left_open
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_clock() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.5), Some(3.0));
        assert_eq!(quantile(&v, 1.0), Some(5.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(clock(0), "07:00");
        assert_eq!(clock(17 * 3600 + 60), "00:01 (+1 d)");
    }
}
