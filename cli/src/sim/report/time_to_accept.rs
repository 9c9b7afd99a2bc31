//! Time from booking to accept: the share of jobs accepted within each published time next to
//! the published figure, median and p90, which attention mode won, and the samples for the chart.

use super::{duration, pct, quantile};
use crate::sim::audit::Audit;
use crate::sim::ids::JobIx;
use crate::sim::metrics::{JobRun, Phase};
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

impl TimeToAccept {
    /// From the jobs' runs and the server's final states (a job the customer cancelled before
    /// anyone accepted is left out); the winners' attention modes from the `accept.won.*` counters.
    pub(crate) fn build(
        runs: &[JobRun],
        audit: &Audit,
        counters: &BTreeMap<String, u64>,
    ) -> TimeToAccept {
        let mut samples: Vec<i64> = Vec::new();
        let mut never = 0;
        let mut never_alone = 0;
        let mut cancelled_first = 0;
        for (job, run) in JobIx::all(runs.len()).zip(runs) {
            let Some(booked) = run.booked_at else {
                continue;
            };
            // A released job's first search counts (its second one is in the visit section).
            match run.visit.first_accept.or(run.accepted.map(|(at, _)| at)) {
                Some(at) => samples.push(at - booked),
                None => {
                    let server = audit.server_job(job).map(|d| d.state);
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
        TimeToAccept {
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
            samples_secs: samples,
        }
    }

    /// The section for people.
    pub(crate) fn write_text(&self, o: &mut String) {
        let t = self;
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
    }
}
