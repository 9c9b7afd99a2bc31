//! What went over the wire: HTTP traffic at the backend, the bytes each Friend's device received,
//! and how fast a new offer reached long-polling Friends' caches (the pushed ones are in
//! [`super::push`]).

use super::{kb, mean, ms, pct, quantile, sorted};
use crate::sim::driver::Sim;
use crate::sim::metrics::Metrics;
use crate::sim::traffic::Snapshot;
use serde::Serialize;
use std::fmt::Write as _;

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

impl Http {
    /// The backend's totals over `wall` seconds.
    pub(crate) fn build(total: &Snapshot, wall: f64) -> Http {
        Http {
            requests: total.requests,
            per_sec: if wall > 0.0 {
                total.requests as f64 / wall
            } else {
                0.0
            },
            down_bytes: total.down_bytes,
            up_bytes: total.up_bytes,
        }
    }
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

impl SyncBytes {
    /// From each Friend's traffic as the backend counted it.
    pub(crate) fn build(sim: &Sim) -> SyncBytes {
        let snaps: Vec<_> = sim.friend_traffic.iter().map(|c| c.snapshot()).collect();
        let per_friend = sorted(snaps.iter().map(|s| s.sync_down_bytes as f64).collect());
        let all_per_friend: Vec<f64> = snaps.iter().map(|s| s.down_bytes as f64).collect();
        let sync_requests: u64 = snaps.iter().map(|s| s.sync_requests).sum();
        let sync_bytes_total: u64 = snaps.iter().map(|s| s.sync_down_bytes).sum();
        SyncBytes {
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
        }
    }

    /// The section for people.
    pub(crate) fn write_text(&self, o: &mut String) {
        let y = self;
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
    }
}

impl PushToCache {
    /// From the inbox listeners' measurements.
    pub(crate) fn build(metrics: &Metrics) -> PushToCache {
        let from_call = sorted(
            metrics
                .push_to_cache_ms
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
        );
        let after = sorted(
            metrics
                .push_after_response_ms
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
        );
        PushToCache {
            samples: from_call.len(),
            missed: metrics
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
        }
    }

    /// The section for people.
    pub(crate) fn write_text(&self, o: &mut String) {
        let p = self;
        let _ = writeln!(
            o,
            "\nLong-poll to cache (foreground Friends, wall clock, from the customer's booking call)"
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
    }
}
