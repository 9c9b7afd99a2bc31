//! What an operator scrapes: `GET /metrics` (admin token) in the Prometheus text format
//! (OpenMetrics), through the Prometheus project's own Rust client. Counters are counted where
//! the thing happens (the request layer, the accept route, the idempotency wrapper, the sync
//! route); gauges that are state — waiting long-polls, the change-log head, the push queue, the
//! writer's queue — are read at scrape time, so they cannot drift. Names follow the Prometheus
//! conventions: a `friend_` prefix, base units (seconds), `_total` on counters.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicI64, AtomicU64};

/// A request's route (the matched path template, never the concrete path: ids would explode the
/// label set), method and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route template, e.g. `/v1/friend/jobs/{id}/accept`; `unmatched` for 404s.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// HTTP status code.
    pub status: u16,
}

/// A route and method, for latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route template.
    pub route: String,
    /// HTTP method.
    pub method: String,
}

/// What kind of thing was counted (a sync page's kind).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The value.
    pub kind: &'static str,
}

/// How something ended (an accept's outcome).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// The value.
    pub outcome: &'static str,
}

/// Every metric the backend exports, registered once.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by route and method (long-polls include their wait).
    pub latency: Family<RouteLabels, Histogram>,
    /// Bookings made (not replayed).
    pub bookings: Counter,
    /// Accept answers by outcome (`won`, `taken`, `cancelled`, `expired`, `not_eligible`).
    pub accepts: Family<OutcomeLabel, Counter>,
    /// Idempotent requests answered from the stored outcome.
    pub replays: Counter,
    /// Open jobs this instance's expiry sweeps expired.
    pub expired: Counter,
    /// Sync pages served, by kind (`snapshot`, `delta`).
    pub sync_pages: Family<KindLabel, Counter>,
    /// Long-polls waiting now (set at scrape).
    pub long_polls_waiting: Gauge,
    /// Long-poll wake-ups (set at scrape from the notifier's total).
    pub wakeups: Counter<u64, AtomicU64>,
    /// Eligibility checks made by wake-ups (set at scrape).
    pub wake_checks: Counter<u64, AtomicU64>,
    /// The change log's newest sequence number (set at scrape).
    pub change_log_head: Gauge<i64, AtomicI64>,
    /// Pushes waiting in the queue (set at scrape).
    pub push_queue_depth: Gauge,
    /// Age of the oldest queued push, seconds (set at scrape; 0 when empty).
    pub push_queue_oldest_age: Gauge<f64, AtomicU64>,
    /// Pushes a gateway accepted (set at scrape from the dispatcher).
    pub push_sent: Counter<u64, AtomicU64>,
    /// Pushes refused for good.
    pub push_failed: Counter<u64, AtomicU64>,
    /// Dead device tokens removed.
    pub push_dead_tokens: Counter<u64, AtomicU64>,
    /// Push attempts postponed (Retry-After, transport failures).
    pub push_retried: Counter<u64, AtomicU64>,
    /// Writes queued for the SQLite writer and not yet taken (set at scrape).
    pub db_queued_writes: Gauge,
    /// PostgreSQL: pooled connections lent out now (set at scrape).
    pub db_pool_in_use: Gauge,
    /// PostgreSQL: requests waiting for a pooled connection (set at scrape).
    pub db_pool_waiting: Gauge,
    /// 1 while the instance drains.
    pub draining: Gauge,
}

impl Metrics {
    /// Registers every metric, with the store's own: the SQLite writer's commit-group sizes, or
    /// PostgreSQL's transactions run again after a serialization failure or a deadlock.
    pub(crate) fn new(db: &crate::database::Database) -> Metrics {
        let mut registry = Registry::with_prefix("friend");
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| {
                // 1 ms … ~33 s: fast reads to a full long-poll.
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            bookings: Counter::default(),
            accepts: Family::default(),
            replays: Counter::default(),
            expired: Counter::default(),
            sync_pages: Family::default(),
            long_polls_waiting: Gauge::default(),
            wakeups: Counter::default(),
            wake_checks: Counter::default(),
            change_log_head: Gauge::default(),
            push_queue_depth: Gauge::default(),
            push_queue_oldest_age: Gauge::default(),
            push_sent: Counter::default(),
            push_failed: Counter::default(),
            push_dead_tokens: Counter::default(),
            push_retried: Counter::default(),
            db_queued_writes: Gauge::default(),
            db_pool_in_use: Gauge::default(),
            db_pool_waiting: Gauge::default(),
            draining: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            m.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template and method (long-polls include their wait)",
            m.latency.clone(),
        );
        r.register(
            "bookings",
            "Bookings made (replays not counted)",
            m.bookings.clone(),
        );
        r.register(
            "accepts",
            "Accept answers decided, by outcome (replays not counted)",
            m.accepts.clone(),
        );
        r.register(
            "jobs_expired",
            "Open jobs this instance's expiry sweeps expired",
            m.expired.clone(),
        );
        r.register(
            "idempotent_replays",
            "Idempotent requests answered from their stored outcome",
            m.replays.clone(),
        );
        r.register(
            "sync_pages",
            "Sync pages served, by kind",
            m.sync_pages.clone(),
        );
        r.register(
            "long_polls_waiting",
            "Long-polls waiting on this instance",
            m.long_polls_waiting.clone(),
        );
        r.register(
            "long_poll_wakeups",
            "Waiting long-polls woken by a committed change",
            m.wakeups.clone(),
        );
        r.register(
            "long_poll_wake_checks",
            "Eligibility checks made to decide wake-ups (grows with the Friends near changed jobs)",
            m.wake_checks.clone(),
        );
        r.register(
            "change_log_head",
            "Newest change-log sequence number",
            m.change_log_head.clone(),
        );
        r.register(
            "push_queue_depth",
            "Pushes waiting to be sent",
            m.push_queue_depth.clone(),
        );
        r.register(
            "push_queue_oldest_age_seconds",
            "Age of the oldest waiting push",
            m.push_queue_oldest_age.clone(),
        );
        r.register(
            "push_sent",
            "Pushes accepted by a gateway",
            m.push_sent.clone(),
        );
        r.register(
            "push_failed",
            "Pushes refused for good",
            m.push_failed.clone(),
        );
        r.register(
            "push_dead_tokens_removed",
            "Device tokens removed after the gateway called them dead",
            m.push_dead_tokens.clone(),
        );
        r.register(
            "push_retried",
            "Push attempts postponed (Retry-After, transport failures)",
            m.push_retried.clone(),
        );
        r.register(
            "db_queued_writes",
            "Writes waiting for the SQLite writer",
            m.db_queued_writes.clone(),
        );
        if let Some(groups) = db.commit_groups() {
            r.register(
                "db_commit_group_size",
                "Writes committed together by the SQLite writer (group commit)",
                groups,
            );
        }
        if let Some(pg) = db.postgres() {
            r.register(
                "db_pool_in_use",
                "PostgreSQL connections of this instance's pool lent out",
                m.db_pool_in_use.clone(),
            );
            r.register(
                "db_pool_waiting",
                "Requests waiting for a PostgreSQL connection of this instance's pool",
                m.db_pool_waiting.clone(),
            );
            r.register(
                "db_retried_transactions",
                "PostgreSQL transactions run again after a serialization failure or deadlock",
                pg.retried.clone(),
            );
        }
        r.register(
            "draining",
            "1 while this instance drains",
            m.draining.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts an accept answer.
    pub fn accept(&self, outcome: &'static str) {
        self.accepts.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Counts a sync page.
    pub fn sync_page(&self, snapshot: bool) {
        let kind = if snapshot { "snapshot" } else { "delta" };
        self.sync_pages.get_or_create(&KindLabel { kind }).inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The value of the sample named exactly `series` (name and labels, as exposed) in a scrape's
/// text; for the checks that read the metrics back (the simulation, the tests).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Sets a counter that mirrors a total kept elsewhere (monotonic by construction there).
pub fn mirror(counter: &Counter<u64, AtomicU64>, total: u64) {
    counter
        .inner()
        .store(total, std::sync::atomic::Ordering::Relaxed);
}

/// The SQLite writer's histogram of commit-group sizes (1 … 128).
pub fn commit_group_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 8))
}
