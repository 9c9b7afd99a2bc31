//! After the accept: appointments and "on my way" estimates, how close the estimates came to the
//! simulated arrival, the compensation fees of late cancellations and no-shows (as the server
//! charged them, next to what the customer's app showed before cancelling), the releases and the
//! second searches, and the live status of one sample job as its customer's phone showed it.

use super::{clock, quantile, sorted};
use crate::sim::audit::Audit;
use crate::sim::ids::JobIx;
use crate::sim::metrics::JobRun;
use friend_protocol::{CompensationCause, JobState};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Arrival estimates against the simulated arrivals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EtaAccuracy {
    /// Jobs with an estimate and an arrival.
    pub jobs: usize,
    /// Median of |arrival − estimate|, minutes.
    pub median_abs_min: Option<f64>,
    /// 90th percentile of |arrival − estimate|, minutes.
    pub p90_abs_min: Option<f64>,
    /// Share within ten minutes, percent.
    pub within_10_min_pct: Option<f64>,
    /// Mean of arrival − estimate, minutes (positive: later than estimated).
    pub mean_signed_min: Option<f64>,
}

impl EtaAccuracy {
    fn of(errors_secs: &[i64]) -> EtaAccuracy {
        if errors_secs.is_empty() {
            return EtaAccuracy::default();
        }
        let n = errors_secs.len() as f64;
        let abs = sorted(errors_secs.iter().map(|e| e.abs() as f64 / 60.0).collect());
        let within = errors_secs.iter().filter(|e| e.abs() <= 600).count() as f64;
        EtaAccuracy {
            jobs: errors_secs.len(),
            median_abs_min: quantile(&abs, 0.5),
            p90_abs_min: quantile(&abs, 0.9),
            within_10_min_pct: Some(100.0 * within / n),
            mean_signed_min: Some(errors_secs.iter().sum::<i64>() as f64 / n / 60.0),
        }
    }

    fn write_text(&self, o: &mut String, what: &str) {
        let f = |x: Option<f64>| x.map_or("–".into(), |v| format!("{v:.1}"));
        let _ = writeln!(
            o,
            "  {what}: {} jobs · median |error| {} min · p90 {} min · {}% within 10 min · mean {} min (+ = later)",
            self.jobs,
            f(self.median_abs_min),
            f(self.p90_abs_min),
            self.within_10_min_pct
                .map_or("–".into(), |v| format!("{v:.0}")),
            f(self.mean_signed_min)
        );
    }
}

/// Compensation fees of one cause, as the server charged them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fees {
    /// Jobs charged.
    pub jobs: usize,
    /// Charged to the customers, Rappen.
    pub charged: i64,
    /// The Friends' payout, Rappen.
    pub payout: i64,
    /// The platform's commission, Rappen.
    pub commission: i64,
}

/// The steps after the accept.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Visit {
    /// Accepts (second searches included).
    pub accepts: usize,
    /// Agreed visits recorded by the winners.
    pub appointments: usize,
    /// "On my way" taps (first estimates).
    pub on_my_way: usize,
    /// Second estimates halfway through a long trip.
    pub eta_updates: usize,
    /// Estimates a newer one replaced in the outbox while they waited.
    pub superseded: u64,
    /// The first estimate against the arrival.
    pub first_estimate: EtaAccuracy,
    /// The latest estimate against the arrival.
    pub latest_estimate: EtaAccuracy,
    /// Late cancellations (after the accept, less than 24 h before the visit).
    pub late_cancellations: Fees,
    /// No-shows (checked out unsuccessful, customer absent).
    pub no_shows: Fees,
    /// Cancellations after the accept that cost nothing (24 h or more before the visit).
    pub free_cancellations_after_accept: usize,
    /// Cancellations whose fee differed from the one the app previewed (must be 0).
    pub preview_mismatches: usize,
    /// Releases before arrival, by reason.
    pub releases: BTreeMap<String, u64>,
    /// Released jobs a second Friend accepted.
    pub found_again: usize,
    /// Median of release → next accept, seconds.
    pub second_search_p50_s: Option<f64>,
    /// Longest, seconds.
    pub second_search_max_s: Option<f64>,
    /// One job's live status on its customer's phone: (virtual time, text).
    pub sample: Option<(usize, Vec<(String, String)>)>,
}

impl Visit {
    /// From the runs and the server's final answer.
    pub fn build(runs: &[JobRun], audit: &Audit) -> Visit {
        let mut v = Visit {
            superseded: audit.superseded,
            ..Visit::default()
        };
        let (mut first, mut latest, mut searches) = (Vec::new(), Vec::new(), Vec::new());
        for (job, run) in JobIx::all(runs.len()).zip(runs) {
            let visit = &run.visit;
            v.accepts += visit.releases.len() + usize::from(run.accepted.is_some());
            v.appointments += usize::from(visit.appointed_at.is_some());
            v.on_my_way += usize::from(!visit.etas.is_empty());
            v.eta_updates += visit.etas.len().saturating_sub(1);
            if let Some(arrived) = visit.arrived_at {
                // The estimates of the trip that arrived (sent before the arrival).
                let sent: Vec<_> = visit.etas.iter().filter(|(t, _)| *t <= arrived).collect();
                if let (Some((_, f)), Some((_, l))) = (sent.first(), sent.last()) {
                    first.push(arrived - f);
                    latest.push(arrived - l);
                }
            }
            for (_, _, reason) in &visit.releases {
                *v.releases.entry((*reason).to_owned()).or_default() += 1;
            }
            v.found_again += visit.second_searches.len();
            searches.extend(visit.second_searches.iter().map(|s| *s as f64));
            let Some(server) = audit.server_job(job) else {
                continue;
            };
            let fee = server.visit.compensation.as_ref();
            if let Some(c) = fee {
                let fees = match c.cause {
                    CompensationCause::NoShow => &mut v.no_shows,
                    _ => &mut v.late_cancellations,
                };
                fees.jobs += 1;
                fees.charged += c.settlement.charged.minor;
                fees.payout += c.settlement.payout.minor;
                fees.commission += c.settlement.fee.minor;
            } else if server.state == JobState::Cancelled && visit.cancel_preview.is_some() {
                v.free_cancellations_after_accept += 1;
            }
            if let Some(shown) = visit.cancel_preview
                && server.state == JobState::Cancelled
                && shown != fee.map_or(0, |c| c.settlement.charged.minor)
            {
                v.preview_mismatches += 1;
            }
        }
        v.first_estimate = EtaAccuracy::of(&first);
        v.latest_estimate = EtaAccuracy::of(&latest);
        let searches = sorted(searches);
        v.second_search_p50_s = quantile(&searches, 0.5);
        v.second_search_max_s = searches.last().copied();
        v.sample = sample(runs);
        v
    }

    /// The section for people.
    pub(crate) fn write_text(&self, o: &mut String) {
        let chf = |rappen: i64| format!("CHF {}.{:02}", rappen / 100, rappen % 100);
        let _ = writeln!(o, "\nAfter the accept");
        let _ = writeln!(
            o,
            "  {} accepts · {} visits agreed · {} \"on my way\" (+{} halfway updates, {} superseded while waiting)",
            self.accepts, self.appointments, self.on_my_way, self.eta_updates, self.superseded
        );
        self.first_estimate
            .write_text(o, "first estimate vs arrival");
        self.latest_estimate
            .write_text(o, "latest estimate vs arrival");
        for (what, fees) in [
            ("late cancellations", &self.late_cancellations),
            ("no-shows", &self.no_shows),
        ] {
            let _ = writeln!(
                o,
                "  {what} {}: charged {} · Friends' payout {} · commission {}",
                fees.jobs,
                chf(fees.charged),
                chf(fees.payout),
                chf(fees.commission)
            );
        }
        let _ = writeln!(
            o,
            "  free cancellations after the accept {} · fee differing from the preview {}",
            self.free_cancellations_after_accept, self.preview_mismatches
        );
        let reasons = self
            .releases
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let secs = |s: Option<f64>| s.map_or("–".into(), |s| format!("{:.1} min", s / 60.0));
        let _ = writeln!(
            o,
            "  releases {} ({}) · found another Friend {} · second search median {}, longest {}",
            self.releases.values().sum::<u64>(),
            if reasons.is_empty() { "none" } else { &reasons },
            self.found_again,
            secs(self.second_search_p50_s),
            secs(self.second_search_max_s)
        );
        if let Some((job, timeline)) = &self.sample {
            let _ = writeln!(o, "  live status of job {job} on the customer's phone:");
            for (at, text) in timeline {
                let _ = writeln!(o, "    {at}  {text}");
            }
        }
    }
}

/// The sample job: the first whose customer saw the Friend on the way and the job completed
/// (else the first that saw the Friend on the way, else the longest story).
fn sample(runs: &[JobRun]) -> Option<(usize, Vec<(String, String)>)> {
    let on_the_way = |r: &&JobRun| {
        r.visit
            .timeline
            .iter()
            .any(|(_, t)| t.contains("on the way"))
    };
    let completed = |r: &&JobRun| {
        r.visit
            .timeline
            .last()
            .is_some_and(|(_, t)| t == "completed")
    };
    let pick = runs
        .iter()
        .position(|r| on_the_way(&r) && completed(&r))
        .or_else(|| runs.iter().position(|r| on_the_way(&r)))
        .or_else(|| {
            runs.iter()
                .enumerate()
                .max_by_key(|(_, r)| r.visit.timeline.len())
                .map(|(i, _)| i)
        })?;
    let timeline = &runs.get(pick)?.visit.timeline;
    (!timeline.is_empty()).then(|| {
        (
            pick,
            timeline
                .iter()
                .map(|(at, text)| (clock(*at), text.clone()))
                .collect(),
        )
    })
}
