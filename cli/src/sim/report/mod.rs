//! The simulation's report: computed from what the run observed and from the server's final
//! answer, as JSON (for machines) and as text (for people). Each section has its own builder and
//! its own text in a file of its own; this one puts them together and adds the setup, the final
//! states, the activity counters and the invariants.

mod negotiation;
mod outbox;
mod push;
mod race;
mod scrape;
mod time_to_accept;
mod traffic;
mod visit;

pub use negotiation::{Deviation, Negotiation};
pub use outbox::{KindRow, Outbox};
pub use push::Push;
pub use race::Race;
pub use scrape::{Pair, Scrape};
pub use time_to_accept::{Bucket, PUBLISHED, TimeToAccept};
pub use traffic::{Http, PushToCache, SyncBytes};
pub use visit::{EtaAccuracy, Fees, Visit};

use super::audit::Audit;
use super::driver::{Outcome, Sim};
use super::events::VTime;
use super::ids::JobIx;
use super::metrics::JobRun;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

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
    /// The push path: the backend's pushes through the fake gateways.
    pub push: Push,
    /// On-site negotiation.
    pub negotiation: Negotiation,
    /// After the accept: visits, arrival estimates, fees, releases.
    pub visit: Visit,
    /// The backend's `/metrics` against the simulation's counts.
    pub scrape: Scrape,
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
    /// The backend's store: `sqlite` or `postgres`.
    pub store: String,
    /// Backend instances the devices were spread over.
    pub instances: usize,
}

impl Setup {
    /// The world as drawn, and the virtual time of the last event.
    fn build(sim: &Sim, virtual_end: VTime) -> Setup {
        Setup {
            friends: sim.world.friends.len(),
            foreground_friends: sim.world.friends.iter().filter(|f| f.foreground).count(),
            flaky_friends: sim.world.friends.iter().filter(|f| f.flaky).count(),
            customers: sim.world.customers.len(),
            jobs: sim.world.jobs.len(),
            booking_window: "07:00–22:00".into(),
            virtual_end: clock(virtual_end),
            store: sim.backend.store.into(),
            instances: sim.backend.instances.len(),
        }
    }
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
    /// Offer pushes to long-polling or ineligible Friends (must be 0).
    pub misdirected_pushes: u64,
    /// Dead-token answers the backend did not count as removals, removals it did not count, and
    /// dead tokens pushed to yet still registered (must be 0).
    pub dead_token_mismatches: u64,
    /// All hold.
    pub ok: bool,
}

impl Invariants {
    /// From the race's checks, the audit's lost writes and the server's final states.
    fn build(race: &Race, audit: &Audit, final_states: &BTreeMap<String, u64>) -> Invariants {
        let left_open: usize = ["open", "on_site", "agreed", "unknown"]
            .iter()
            .map(|s| final_states.get(*s).copied().unwrap_or(0) as usize)
            .sum();
        let not_booked = final_states.get("not_booked").copied().unwrap_or(0) as usize;
        let doubles = race.double_assignments + race.winner_mismatches;
        let misdirected = audit.push.misdirected();
        let dead = audit.push.dead_token_mismatch();
        Invariants {
            double_assignments: doubles,
            lost_writes: audit.lost_writes,
            jobs_left_open: left_open,
            jobs_not_booked: not_booked,
            misdirected_pushes: misdirected,
            dead_token_mismatches: dead,
            ok: doubles == 0
                && audit.lost_writes == 0
                && left_open == 0
                && misdirected == 0
                && dead == 0,
        }
    }
}

/// Jobs by final state on the server ("not_booked", "unknown" when the lookup failed).
fn final_states(runs: &[JobRun], audit: &Audit) -> BTreeMap<String, u64> {
    let mut final_states: BTreeMap<String, u64> = BTreeMap::new();
    for (job, run) in JobIx::all(runs.len()).zip(runs) {
        let state = match (run.id, audit.server_job(job)) {
            (None, _) => "not_booked".to_owned(),
            (Some(_), None) => "unknown".to_owned(),
            (Some(_), Some(d)) => d.state.as_str().to_owned(),
        };
        *final_states.entry(state).or_default() += 1;
    }
    final_states
}

/// The named counters (ratings are in the negotiation section) and the expiries.
fn activity(counters: BTreeMap<String, u64>, outcome: &Outcome) -> BTreeMap<String, u64> {
    let audit = &outcome.audit;
    let mut activity: BTreeMap<String, u64> = counters
        .into_iter()
        .filter(|(k, _)| !k.starts_with("rating."))
        .collect();
    activity.insert("expired_by_sweeps".into(), outcome.expired_by_sweeps as u64);
    activity.insert("expired_at_the_end".into(), audit.final_expired as u64);
    activity
}

/// Builds the report of a finished run.
pub(crate) fn build(outcome: &Outcome) -> Report {
    let sim = &outcome.sim;
    let audit = &outcome.audit;
    let runs = sim.metrics.job_runs();
    let counters = sim.metrics.counters();
    let wall = outcome.wall.as_secs_f64();
    let final_states = final_states(&runs, audit);
    let race = Race::build(sim, &runs, audit);
    let invariants = Invariants::build(&race, audit, &final_states);
    let time_to_accept = TimeToAccept::build(&runs, audit, &counters);
    let visit = Visit::build(&runs, audit);
    let push = Push::build(
        &audit.push,
        &runs,
        &sim.metrics,
        &counters,
        sim.config.push_coalesce_secs,
    );
    let booked = runs.iter().filter(|r| r.id.is_some()).count();
    let scrape = Scrape::build(
        &audit.metrics_texts,
        booked,
        &time_to_accept,
        &visit,
        &race,
        &push,
    );
    Report {
        seed: sim.config.seed,
        setup: Setup::build(sim, outcome.virtual_end),
        wall_secs: wall,
        http: Http::build(&sim.backend.traffic.total.snapshot(), wall),
        time_to_accept,
        race,
        outbox: Outbox::build(audit),
        sync_bytes: SyncBytes::build(sim),
        push_to_cache: PushToCache::build(&sim.metrics),
        push,
        negotiation: Negotiation::build(&runs, &counters),
        visit,
        scrape,
        final_states,
        activity: activity(counters, outcome),
        errors: sim.metrics.errors(),
        invariants,
    }
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
        let _ = match s.instances {
            1 => writeln!(o, "  backend: {} (1 instance)", s.store),
            n => writeln!(
                o,
                "  backend: {} ({n} instances, devices spread over them)",
                s.store
            ),
        };
        let _ = writeln!(
            o,
            "  wall time {:.1} s · {} HTTP requests ({:.0}/s) · {} down, {} up",
            self.wall_secs,
            self.http.requests,
            self.http.per_sec,
            kb(self.http.down_bytes as f64),
            kb(self.http.up_bytes as f64)
        );
        self.time_to_accept.write_text(&mut o);
        self.race
            .write_text(&mut o, self.invariants.double_assignments);
        self.outbox.write_text(&mut o);
        self.sync_bytes.write_text(&mut o);
        self.push_to_cache.write_text(&mut o);
        self.push.write_text(&mut o);
        self.negotiation.write_text(&mut o);
        self.visit.write_text(&mut o);
        self.scrape.write_text(&mut o);
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
            "\nInvariants: {} — {} double assignments, {} lost writes, {} jobs left neither terminal nor assigned, {} misdirected pushes, {} dead-token mismatches",
            if i.ok { "OK" } else { "BROKEN" },
            i.double_assignments,
            i.lost_writes,
            i.jobs_left_open,
            i.misdirected_pushes,
            i.dead_token_mismatches
        );
        o
    }
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

/// Virtual second `t` as the day's clock ("07:00" is second 0).
pub(crate) fn clock(t: i64) -> String {
    let minutes = 7 * 60 + t.div_euclid(60);
    let (day, minutes) = (minutes / (24 * 60), minutes % (24 * 60));
    let suffix = if day > 0 {
        format!(" (+{day} d)")
    } else {
        String::new()
    };
    format!("{:02}:{:02}{suffix}", minutes / 60, minutes % 60)
}

/// The mean (0 for none).
fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
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
