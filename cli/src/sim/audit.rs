//! The end of the day and the checks: everyone back online, what is due expired, every device's
//! outbox delivered, every queued push answered; then every queued action looked up in its
//! device's outbox (lost writes), the items replayed after an offline spell and their outcomes,
//! each job as the server has it, and the pushes: none to a long-polling or ineligible Friend,
//! every dead token the backend pushed to forgotten.

use super::driver::Sim;
use super::gateway::GatewayTally;
use super::ids::{CustomerIx, FriendIx, JobIx};
use super::metrics::Dev;
use friend_core::api::Api;
use friend_core::store::outbox::ItemStatus;
use friend_core::{ActionKind, ApiConfig, StaticSecrets};
use friend_protocol::{JobDetails, JobId};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How many devices wind down at once.
const PARALLEL: usize = 16;

/// One kind of outbox item across all devices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindCount {
    /// Queued by the simulation.
    pub queued: u64,
    /// Applied by the server.
    pub applied: u64,
    /// Refused by the server, with the reason codes.
    pub refused: u64,
    /// Still pending after the final delivery.
    pub pending: u64,
    /// Refusal codes.
    pub refusal_codes: BTreeMap<String, u64>,
}

/// The push path's checks.
#[derive(Debug, Clone, Default)]
pub struct PushAudit {
    /// What the gateways saw.
    pub tally: GatewayTally,
    /// What the backend's dispatcher counted.
    pub counts: friend_backend::push::PushCounts,
    /// Offer pushes of a booking to Friends who were long-polling when it was committed (must
    /// be 0; see [`super::polls`]).
    pub to_long_polling: u64,
    /// Offer pushes to Friends the eligibility rule does not offer the job to (must be 0).
    pub to_ineligible: u64,
    /// Dead tokens the backend pushed to and still lists for their Friend (must be 0).
    pub dead_still_registered: usize,
    /// Why the gateways were not all answered at the end, if they were not.
    pub unsettled: Option<String>,
    /// Times the dispatcher sat idle with pushes queued and had to be asked to look.
    pub nudges: u64,
}

impl PushAudit {
    /// Offer pushes to long-polling or ineligible Friends.
    pub fn misdirected(&self) -> u64 {
        self.to_long_polling + self.to_ineligible
    }

    /// Dead-token answers the backend did not count as removals, and removals it did not make.
    pub fn dead_token_mismatch(&self) -> u64 {
        self.tally.dead_answers.abs_diff(self.counts.dead_tokens)
            + self.dead_still_registered as u64
    }
}

/// The final checks.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Outbox items by device role and kind ("friend consent").
    pub outbox: BTreeMap<String, KindCount>,
    /// Actions the simulation queued that are not in their device's outbox as applied or refused.
    pub lost_writes: u64,
    /// Items in an outbox the simulation did not queue.
    pub unexpected_items: u64,
    /// "On my way" items a newer estimate replaced while they waited (left the outbox by design).
    pub superseded: u64,
    /// Items replayed after being queued offline, by kind.
    pub replayed: BTreeMap<String, KindCount>,
    /// Each job as the server has it, by [`JobIx`] (none: never booked, or the lookup failed).
    pub server: Vec<Option<JobDetails>>,
    /// Server lookups that failed.
    pub server_errors: u64,
    /// Jobs expired by the final sweep.
    pub final_expired: usize,
    /// Devices whose outbox could not be read.
    pub unreadable_outboxes: u64,
    /// The pushes.
    pub push: PushAudit,
    /// The backend's `/metrics` text at the end (none: the scrape failed).
    pub metrics_texts: Vec<String>,
}

impl Audit {
    /// `job` as the server has it.
    pub fn server_job(&self, job: JobIx) -> Option<&JobDetails> {
        job.of(&self.server)?.as_ref()
    }
}

/// Winds the day down and audits it.
pub(crate) async fn wind_down(sim: &Arc<Sim>) -> Audit {
    let waiters = sim
        .waiters
        .lock()
        .map(|mut w| std::mem::take(&mut *w))
        .unwrap_or_default();
    for w in waiters {
        let _ = w.await;
    }
    for d in &sim.friends {
        d.proxy.go_online();
        d.update(|s| s.offline = None);
        if d.foreground {
            d.stop_foreground().await;
        }
    }
    // Whatever is still open expires now: the clock moves past every job's expiry.
    let last_expiry = sim
        .world
        .jobs
        .iter()
        .map(|j| j.at + j.slot.map(|(s, _)| s).unwrap_or(3 * 3600))
        .max()
        .unwrap_or(0);
    sim.backend.clock.set(last_expiry + 120);
    let final_expired = sim.backend.backend.expire_due().await.unwrap_or(0);

    let queued = sim.metrics.queued_by_device();
    let devices: Vec<Dev> = queued.keys().copied().collect();
    deliver_all(sim, &devices).await;
    let mut audit = Audit {
        final_expired,
        ..Audit::default()
    };
    read_outboxes(sim, &queued, &mut audit).await;
    read_server(sim, &mut audit).await;
    audit.push = check_pushes(sim).await;
    audit.metrics_texts = sim.backend.metrics_texts().await;
    audit
}

/// Once every queued push is answered: the offers against the eligibility rule and the
/// long-polling Friends of each booking, and the dead tokens against the backend's devices.
async fn check_pushes(sim: &Arc<Sim>) -> PushAudit {
    let unsettled = sim.gateway.settle().await.err();
    let mut to_ineligible = 0;
    for (id, friends) in sim.gateway.offers() {
        let Some(job) = sim.metrics.job_of(id) else {
            to_ineligible += friends.len() as u64;
            continue;
        };
        let eligible: HashSet<FriendIx> = sim.world.eligible(job).into_iter().collect();
        to_ineligible += friends.iter().filter(|f| !eligible.contains(f)).count() as u64;
    }
    let to_long_polling = sim
        .metrics
        .job_runs()
        .iter()
        .filter_map(|r| {
            let polling = sim.backend.polls.long_polling_at(r.id?);
            Some(r.pushed.iter().filter(|f| polling.contains(f)).count() as u64)
        })
        .sum();
    let mut dead_still_registered = 0;
    for friend in sim.gateway.dead_pushed() {
        let Some(account) = friend.of(&sim.friend_ids) else {
            continue;
        };
        // A lookup that fails counts as still registered: the check must not pass unread.
        let registered = sim
            .backend
            .backend
            .push_devices(*account)
            .await
            .map_or(true, |d| !d.is_empty());
        if registered {
            dead_still_registered += 1;
        }
    }
    PushAudit {
        tally: sim.gateway.tally(),
        counts: sim.backend.push_counts(),
        to_long_polling,
        to_ineligible,
        dead_still_registered,
        unsettled,
        nudges: sim.gateway.nudges(),
    }
}

/// Delivers every device's outbox (a few rounds; a closed session is reopened from its file).
async fn deliver_all(sim: &Arc<Sim>, devices: &[Dev]) {
    let mut set = JoinSet::new();
    for dev in devices.iter().copied() {
        if set.len() >= PARALLEL {
            let _ = set.join_next().await;
        }
        let sim = sim.clone();
        set.spawn(async move {
            for attempt in 0..5u64 {
                let pending = match dev {
                    Dev::Friend(f) => match sim.friend_device(f) {
                        Some(d) => pending_after_sync(d.session().await).await,
                        None => 0,
                    },
                    Dev::Customer(c) => match sim.customer_device(c) {
                        Some(d) => pending_after_sync(d.session().await).await,
                        None => 0,
                    },
                };
                if pending == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
            }
        });
    }
    while set.join_next().await.is_some() {}
}

async fn outbox_of(sim: &Sim, dev: Dev) -> Option<Vec<friend_core::OutboxItem>> {
    let items = match dev {
        Dev::Friend(f) => sim.friend_device(f)?.session().await.ok()?.outbox().await,
        Dev::Customer(c) => sim.customer_device(c)?.session().await.ok()?.outbox().await,
    };
    items.ok()
}

/// "friend check_in", "customer consent", …: who queued it and what.
fn keyed(dev: Dev, kind: &str) -> String {
    match dev {
        Dev::Friend(_) => format!("friend {kind}"),
        Dev::Customer(_) => format!("customer {kind}"),
    }
}

fn tally(count: &mut KindCount, item: &friend_core::OutboxItem) {
    match item.status {
        ItemStatus::Applied => count.applied += 1,
        ItemStatus::Refused => {
            count.refused += 1;
            *count
                .refusal_codes
                .entry(item.refusal_code.clone().unwrap_or_else(|| "?".into()))
                .or_default() += 1;
        }
        ItemStatus::Pending => count.pending += 1,
    }
}

async fn read_outboxes(
    sim: &Arc<Sim>,
    queued: &BTreeMap<Dev, BTreeMap<&'static str, u64>>,
    audit: &mut Audit,
) {
    let replayed = sim.metrics.replayed_by_device();
    let superseding = sim.metrics.superseding_by_device();
    let mut set = JoinSet::new();
    let mut results = Vec::new();
    for dev in queued.keys().copied() {
        if set.len() >= PARALLEL
            && let Some(Ok(r)) = set.join_next().await
        {
            results.push(r);
        }
        let sim = sim.clone();
        set.spawn(async move { (dev, outbox_of(&sim, dev).await) });
    }
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            results.push(r);
        }
    }
    for (dev, items) in results {
        let Some(items) = items else {
            audit.unreadable_outboxes += 1;
            continue;
        };
        let mut found: BTreeMap<&str, KindCount> = BTreeMap::new();
        for item in &items {
            tally(found.entry(item.action.kind().as_str()).or_default(), item);
        }
        let superseded = superseded(superseding.get(&dev), &items);
        audit.superseded += superseded;
        let mut wanted = queued.get(&dev).cloned().unwrap_or_default();
        if let Some(q) = wanted.get_mut(ActionKind::OnMyWay.as_str()) {
            *q = q.saturating_sub(superseded);
        }
        let kinds: HashSet<&str> = wanted
            .keys()
            .copied()
            .chain(found.keys().copied())
            .collect();
        for kind in kinds {
            let q = wanted.get(kind).copied().unwrap_or(0);
            let f = found.get(kind).cloned().unwrap_or_default();
            let settled = f.applied + f.refused;
            audit.lost_writes += q.saturating_sub(settled);
            audit.unexpected_items += (settled + f.pending).saturating_sub(q);
            let total = audit.outbox.entry(keyed(dev, kind)).or_default();
            total.queued += q;
            total.applied += f.applied;
            total.refused += f.refused;
            total.pending += f.pending;
            for (code, n) in f.refusal_codes {
                *total.refusal_codes.entry(code).or_default() += n;
            }
        }
        if let Some(ids) = replayed.get(&dev) {
            let ids: HashSet<i64> = ids.iter().copied().collect();
            for item in items.iter().filter(|i| ids.contains(&i.id)) {
                let count = audit
                    .replayed
                    .entry(keyed(dev, item.action.kind().as_str()))
                    .or_default();
                count.queued += 1;
                tally(count, item);
            }
        }
    }
}

/// The items of `queued` (job, outbox id) missing from the outbox that a later item of the same
/// job followed: superseded while they waited. The last one of a job missing is a lost write.
fn superseded(queued: Option<&Vec<(JobId, i64)>>, items: &[friend_core::OutboxItem]) -> u64 {
    let Some(queued) = queued else {
        return 0;
    };
    let present: HashSet<i64> = items.iter().map(|i| i.id).collect();
    queued
        .iter()
        .enumerate()
        .filter(|(n, (job, id))| {
            !present.contains(id) && queued[n + 1..].iter().any(|(later, _)| later == job)
        })
        .count() as u64
}

/// Each booked job as the server has it, asked with its customer's token.
async fn read_server(sim: &Arc<Sim>, audit: &mut Audit) {
    let runs = sim.metrics.job_runs();
    audit.server = vec![None; runs.len()];
    let mut set: JoinSet<(JobIx, Option<JobDetails>)> = JoinSet::new();
    let mut apis: BTreeMap<CustomerIx, Arc<Api>> = BTreeMap::new();
    let mut results = Vec::new();
    for (job, run) in JobIx::all(runs.len()).zip(&runs) {
        let (Some(id), Some(spec)) = (run.id, sim.world.job(job)) else {
            continue;
        };
        let api = match apis.get(&spec.customer) {
            Some(a) => a.clone(),
            None => {
                let token = spec
                    .customer
                    .of(&sim.customer_tokens)
                    .cloned()
                    .unwrap_or_default();
                let secrets = Arc::new(StaticSecrets::new(token, [0u8; 32]));
                match Api::new(&ApiConfig::new(&sim.backend.url), secrets) {
                    Ok(a) => {
                        let a = Arc::new(a);
                        apis.insert(spec.customer, a.clone());
                        a
                    }
                    Err(_) => {
                        audit.server_errors += 1;
                        continue;
                    }
                }
            }
        };
        if set.len() >= PARALLEL * 2
            && let Some(Ok(r)) = set.join_next().await
        {
            results.push(r);
        }
        set.spawn(async move { (job, fetch(&api, id).await) });
    }
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            results.push(r);
        }
    }
    for (job, details) in results {
        if details.is_none() {
            audit.server_errors += 1;
        }
        if let Some(slot) = audit.server.get_mut(job.0) {
            *slot = details;
        }
    }
}

async fn fetch(api: &Api, id: JobId) -> Option<JobDetails> {
    api.get::<JobDetails>(&format!("v1/customer/jobs/{id}"))
        .await
        .ok()
}

/// Syncs a device once and tells how many outbox items it still holds (none for a device that
/// cannot open its session: nothing of it can be delivered).
async fn pending_after_sync<S: std::ops::Deref<Target = friend_core::Session>>(
    session: friend_core::CoreResult<std::sync::Arc<S>>,
) -> u32 {
    let Ok(s) = session else { return 0 };
    let _ = s.sync_once().await;
    s.sync_status().pending_outbox
}
