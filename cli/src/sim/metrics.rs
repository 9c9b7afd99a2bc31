//! What the simulation observes while it runs: per job (booking, accept attempts and outcomes,
//! negotiation), per device (every action it queued, items queued while offline), latencies and
//! counters. The report is computed from these and from the server's final answer.

use super::events::VTime;
use super::ids::{CustomerIx, FriendIx, JobIx};
use friend_protocol::JobId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A device of the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dev {
    /// A Friend's phone.
    Friend(FriendIx),
    /// A customer's phone.
    Customer(CustomerIx),
}

/// How one accept attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AcceptKind {
    /// Won the race.
    Won,
    /// Another Friend was first.
    Lost,
    /// Cancelled or expired.
    Gone,
    /// Not eligible (e.g. an overlapping slot).
    NotEligible,
    /// No connection.
    Offline,
    /// An error from the core.
    Error,
}

/// Where a job stands as the simulation believes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Not booked (yet, or the booking failed).
    #[default]
    Unbooked,
    /// Open.
    Open,
    /// A Friend won it.
    Assigned,
    /// The Friend checked in.
    OnSite,
    /// Cancelled by the customer (as far as the simulation knows).
    Cancelled,
    /// Completed, escalated or unsuccessful: the Friend is done.
    Finished,
}

/// The negotiation of one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NegotiationRecord {
    /// Proposals made (either side).
    pub proposals: u32,
    /// The customer counter-proposed.
    pub countered: bool,
    /// The customer rejected the first quote.
    pub rejected: bool,
    /// An amendment was proposed; `Some(true)` when it was accepted.
    pub amendment: Option<bool>,
    /// Consent was exchanged by payload with the Friend offline.
    pub offline: bool,
    /// The Friend's first proposal's total, Rappen.
    pub first_total: Option<i64>,
    /// The total the job was completed at, Rappen.
    pub final_total: Option<i64>,
    /// The service's orientation price, Rappen.
    pub orientation: i64,
    /// Paid in cash.
    pub cash: Option<bool>,
}

/// What happened between the accept and the arrival, and after a release.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VisitRecord {
    /// When the first search ended with an accept (a release starts a second one).
    pub first_accept: Option<VTime>,
    /// When the winner recorded the agreed visit.
    pub appointed_at: Option<VTime>,
    /// The arrival estimates sent: (sent at, estimated arrival), virtual seconds.
    pub etas: Vec<(VTime, VTime)>,
    /// When the winner reached the door (the simulated arrival the estimates are measured by).
    pub arrived_at: Option<VTime>,
    /// The fee the customer's app showed before a cancellation after the accept, Rappen (0: free).
    pub cancel_preview: Option<i64>,
    /// Releases: when, by whom, why.
    pub releases: Vec<(VTime, FriendIx, &'static str)>,
    /// Seconds from the latest release to the next accept (the second search), per release that
    /// found a new Friend.
    pub second_searches: Vec<VTime>,
    /// The customer's live status each time it changed on their phone: (virtual second, text).
    pub timeline: Vec<(VTime, String)>,
}

/// One job's run.
#[derive(Debug, Clone, Default)]
pub struct JobRun {
    /// The server's id.
    pub id: Option<JobId>,
    /// Booking second.
    pub booked_at: Option<VTime>,
    /// Where it stands.
    pub phase: Phase,
    /// When it stopped being open (won or cancelled), as far as the simulation knows.
    pub closed_at: Option<VTime>,
    /// Accept attempts: when and by whom.
    pub attempts: Vec<(VTime, FriendIx)>,
    /// Their outcomes.
    pub outcomes: Vec<(FriendIx, AcceptKind)>,
    /// Every Friend that got `Won` (more than one would be a double assignment).
    pub winners: Vec<FriendIx>,
    /// The first winner and when.
    pub accepted: Option<(VTime, FriendIx)>,
    /// The negotiation.
    pub negotiation: NegotiationRecord,
    /// How many times the current step was retried (waiting for the other side).
    pub retries: u32,
    /// Negotiation round (0: first answer).
    pub round: u32,
    /// Free Friends with the offer in their inbox at booking.
    pub free_friends: usize,
    /// The nearest of them (at most 100): (Friend, km away).
    pub candidates: Vec<(FriendIx, f64)>,
    /// Friends who reacted (or stood in for a busy one).
    pub responded: Vec<FriendIx>,
    /// The winner gave the job back (released it) before arriving.
    pub released: bool,
    /// Virtual second of the job's latest event (a push about the job wakes its device a few
    /// seconds after it).
    pub news_at: Option<VTime>,
    /// Friends whose app learned of the offer when it was booked: pushed, or long-polling.
    pub learned: usize,
    /// The Friends the backend pushed the offer to when it was booked.
    pub pushed: Vec<FriendIx>,
    /// Offer pushes of this job read so far (a re-offer's pushes come after them).
    pub offers_read: usize,
    /// The steps after the accept.
    pub visit: VisitRecord,
}

impl JobRun {
    /// Accepts that ran in the same virtual second as another accept of this job.
    pub fn same_instant_attempts(&self) -> usize {
        let mut per_second: HashMap<VTime, usize> = HashMap::new();
        for (t, _) in &self.attempts {
            *per_second.entry(*t).or_default() += 1;
        }
        per_second.values().filter(|n| **n > 1).sum()
    }
}

/// Everything observed.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per job.
    pub jobs: Vec<Mutex<JobRun>>,
    /// Actions queued per device and kind.
    queued: Mutex<BTreeMap<Dev, BTreeMap<&'static str, u64>>>,
    /// Outbox ids found pending when a device came back online (replayed afterwards).
    replayed: Mutex<BTreeMap<Dev, Vec<i64>>>,
    /// Outbox ids of "on my way" items per device and job, in queueing order: a newer one
    /// supersedes an older one still waiting, which leaves the outbox (not a lost write).
    superseding: Mutex<BTreeMap<Dev, Vec<(JobId, i64)>>>,
    /// Booking → offer in a long-polling Friend's cache, ms (from the booking call).
    pub push_to_cache_ms: Mutex<Vec<f64>>,
    /// The same, from the customer's booking response (negative: the offer was first).
    pub push_after_response_ms: Mutex<Vec<f64>>,
    /// Watched offers never seen (taken before the check, or a missed wake-up).
    pub push_missed: AtomicU64,
    /// An offer push received at the gateway → the offer in the woken device's cache, ms (wall
    /// clock; pushes that woke their device at once).
    pub gateway_to_cache_ms: Mutex<Vec<f64>>,
    /// The job of each server id.
    ids: Mutex<HashMap<JobId, JobIx>>,
    /// Named counters (events, skipped reactions, pushes, …).
    counters: Mutex<BTreeMap<String, u64>>,
    /// Unexpected errors by "event: code".
    errors: Mutex<BTreeMap<String, u64>>,
    /// Jobs booked so far (for progress).
    pub booked: AtomicU64,
    /// Jobs accepted so far (for progress).
    pub accepted: AtomicU64,
}

impl Metrics {
    /// Metrics for `jobs` jobs.
    pub fn new(jobs: usize) -> Metrics {
        Metrics {
            jobs: (0..jobs).map(|_| Mutex::new(JobRun::default())).collect(),
            ..Metrics::default()
        }
    }

    /// Runs `f` on `job`'s record.
    pub fn job<T>(&self, job: JobIx, f: impl FnOnce(&mut JobRun) -> T) -> Option<T> {
        let mut guard = job.of(&self.jobs)?.lock().ok()?;
        Some(f(&mut guard))
    }

    /// Records the server's id of `job`.
    pub fn booked(&self, job: JobIx, id: JobId) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(id, job);
        }
    }

    /// The job with the server's id `id`.
    pub fn job_of(&self, id: JobId) -> Option<JobIx> {
        self.ids.lock().ok()?.get(&id).copied()
    }

    /// A copy of every job's record.
    pub fn job_runs(&self) -> Vec<JobRun> {
        self.jobs
            .iter()
            .map(|m| m.lock().map(|g| g.clone()).unwrap_or_default())
            .collect()
    }

    /// Counts an action `dev` queued successfully.
    pub fn queued(&self, dev: Dev, kind: &'static str) {
        if let Ok(mut q) = self.queued.lock() {
            *q.entry(dev).or_default().entry(kind).or_default() += 1;
        }
    }

    /// Every device's queued actions by kind.
    pub fn queued_by_device(&self) -> BTreeMap<Dev, BTreeMap<&'static str, u64>> {
        self.queued.lock().map(|q| q.clone()).unwrap_or_default()
    }

    /// Records outbox items found pending when `dev` came back online.
    pub fn replayed(&self, dev: Dev, ids: impl IntoIterator<Item = i64>) {
        if let Ok(mut r) = self.replayed.lock() {
            r.entry(dev).or_default().extend(ids);
        }
    }

    /// Records the outbox id of an item a later one of the same job may supersede.
    pub fn superseding(&self, dev: Dev, job: JobId, outbox_id: i64) {
        if let Ok(mut m) = self.superseding.lock() {
            m.entry(dev).or_default().push((job, outbox_id));
        }
    }

    /// Every device's supersedable item ids, in queueing order.
    pub fn superseding_by_device(&self) -> BTreeMap<Dev, Vec<(JobId, i64)>> {
        self.superseding
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Every device's replayed item ids.
    pub fn replayed_by_device(&self) -> BTreeMap<Dev, Vec<i64>> {
        self.replayed.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Adds one to a named counter.
    pub fn count(&self, name: &str) {
        self.add(name, 1);
    }

    /// Adds `n` to a named counter.
    pub fn add(&self, name: &str, n: u64) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry(name.to_owned()).or_default() += n;
        }
    }

    /// A named counter.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .ok()
            .and_then(|c| c.get(name).copied())
            .unwrap_or(0)
    }

    /// Every counter.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.counters.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Records an unexpected error.
    pub fn error(&self, during: &str, code: &str) {
        tracing::debug!(during, code, "simulation step failed");
        if let Ok(mut e) = self.errors.lock() {
            *e.entry(format!("{during}: {code}")).or_default() += 1;
        }
    }

    /// Every unexpected error by "event: code".
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Records a booking → cache latency.
    pub fn push_latency(&self, from_call_ms: f64, from_response_ms: f64) {
        if let Ok(mut v) = self.push_to_cache_ms.lock() {
            v.push(from_call_ms);
        }
        if let Ok(mut v) = self.push_after_response_ms.lock() {
            v.push(from_response_ms);
        }
    }

    /// Records an offer push's gateway → cache latency.
    pub fn gateway_to_cache(&self, ms: f64) {
        if let Ok(mut v) = self.gateway_to_cache_ms.lock() {
            v.push(ms);
        }
    }

    /// A watched offer was never seen.
    pub fn push_missed(&self) {
        self.push_missed.fetch_add(1, Ordering::Relaxed);
    }
}
