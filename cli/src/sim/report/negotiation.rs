//! On-site negotiation: how prices were agreed (first proposal, counter, rejection, amendment,
//! offline exchange), how they ended against the orientation price, payment and ratings.

use super::{mean, quantile, sorted};
use crate::sim::metrics::JobRun;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

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

impl Negotiation {
    /// From the jobs' runs; ratings from the `rating.*` counters.
    pub(crate) fn build(runs: &[JobRun], counters: &BTreeMap<String, u64>) -> Negotiation {
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
        Negotiation {
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
        }
    }

    /// The section for people.
    pub(crate) fn write_text(&self, o: &mut String) {
        let n = self;
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
    }
}
