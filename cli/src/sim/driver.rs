//! Runs a simulation: sets up the fake push gateways, the embedded backend, the accounts and the
//! devices (each registering its push token), drives the agenda over the virtual clock
//! (dispatching independent events concurrently, see [`super::events`]), and winds down: everyone
//! back online, due expiries, every outbox delivered.
//!
//! The dispatcher looks ahead [`LOOKAHEAD`] virtual seconds past the earliest unfinished event,
//! so work on different devices overlaps in real time while each device and each job still sees
//! its events in virtual-time order. The server clock follows the furthest dispatched event; every five
//! virtual minutes the backend is asked to expire what is due.

use super::audit::{self, Audit};
use super::backend::Embedded;
use super::devices::{CustomerDevice, FriendDevice};
use super::events::{Agenda, Event, Res, Sequencer, VTime};
use super::gateway::Gateway;
use super::ids::{CustomerIx, FriendIx, JobIx};
use super::metrics::{Dev, Metrics};
use super::playbook::push::WakeState;
use super::traffic::Counters;
use super::world::World;
use super::{Progress, ProgressInfo, SimConfig, SimError};
use friend_faultproxy::FaultProxy;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::{JoinHandle, JoinSet};

/// How far past the earliest unfinished event the dispatcher may start events, virtual seconds.
/// Events on one device or job still run in dispatch order; a follow-up scheduled closer than
/// this (a reaction, a push) may run after a later event of the same device, which changes
/// nothing that matters (a push before a reaction, two reactions of one Friend swapped). The
/// server clock may run up to this far ahead of an event, so expiry can come that much early.
pub const LOOKAHEAD: VTime = 300;
/// How often the backend is asked to expire due jobs, virtual seconds (accepts check expiry
/// themselves, so this only decides how soon an expired offer leaves the inboxes).
const SWEEP_EVERY: VTime = 300;

/// The running simulation: the world, the backend, the devices and what was observed.
pub(crate) struct Sim {
    /// The configuration.
    pub config: SimConfig,
    /// People and jobs, drawn from the seed.
    pub world: World,
    /// The embedded backend.
    pub backend: Embedded,
    /// One device per Friend.
    pub friends: Vec<FriendDevice>,
    /// One device per customer.
    pub customers: Vec<CustomerDevice>,
    /// Customers' tokens (for the final look at the server's truth).
    pub customer_tokens: Vec<String>,
    /// Friends' account ids.
    pub friend_ids: Vec<friend_protocol::AccountId>,
    /// Friends' traffic at the backend.
    pub friend_traffic: Vec<Arc<Counters>>,
    /// Observations.
    pub metrics: Arc<Metrics>,
    /// Push-to-cache measurements still running.
    pub waiters: Mutex<Vec<JoinHandle<()>>>,
    /// The fake push gateways and the devices' tokens.
    pub gateway: Gateway,
    /// Each device's wake-ups by push.
    pub wakes: Mutex<HashMap<Dev, WakeState>>,
}

/// What a finished run hands to the report.
pub(crate) struct Outcome {
    /// The simulation.
    pub sim: Arc<Sim>,
    /// The final checks.
    pub audit: Audit,
    /// Last virtual second reached.
    pub virtual_end: VTime,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// Jobs the backend expired in its sweeps.
    pub expired_by_sweeps: usize,
}

/// Sets up, runs and winds down one simulation.
pub(crate) async fn run(
    config: SimConfig,
    backend_dir: &std::path::Path,
    dir: &std::path::Path,
    progress: &dyn Progress,
) -> Result<Outcome, SimError> {
    let started = Instant::now();
    crate::commands::device::install_crypto_provider();
    let catalog = friend_backend::seed::default_catalog();
    let world = World::draw(config.seed, config.size, &catalog);
    let background: Vec<FriendIx> = FriendIx::all(world.friends.len())
        .filter(|f| world.friend(*f).is_some_and(|s| !s.foreground))
        .collect();
    let mut gateway = Gateway::start(
        backend_dir,
        config.seed,
        world.friends.len(),
        world.customers.len(),
        &background,
    )
    .await
    .map_err(SimError::Setup)?;
    let db = match &config.db {
        Some(url) => std::path::PathBuf::from(url),
        None => backend_dir.join("backend.db"),
    };
    let backend = Embedded::start(&db, gateway.settings(), config.instances)
        .await
        .map_err(SimError::Setup)?;
    if backend.store == "postgres" && !backend.backend.is_empty().await.unwrap_or(false) {
        return Err(SimError::Setup(
            "the PostgreSQL database is not empty: the simulation needs a database of its own"
                .into(),
        ));
    }
    gateway.watch_queue(backend.instances.clone());
    progress.update(&ProgressInfo::phase("creating accounts", world.jobs.len()));
    let mut friends = Vec::with_capacity(world.friends.len());
    let mut friend_traffic = Vec::with_capacity(world.friends.len());
    let mut friend_ids = Vec::with_capacity(world.friends.len());
    for (i, f) in world.friends.iter().enumerate() {
        let created = backend
            .backend
            .create_friend(f.new.clone())
            .await
            .map_err(|e| SimError::Setup(format!("creating Friend {i}: {e:?}")))?;
        // Devices are spread over the instances (a load balancer's round robin).
        let proxy = FaultProxy::bind(backend.addrs[i % backend.addrs.len()])
            .await
            .map_err(|e| SimError::Setup(format!("fault proxy for Friend {i}: {e}")))?;
        friend_ids.push(created.id);
        friend_traffic.push(backend.traffic.register(&created.token));
        backend
            .polls
            .register(&created.token, FriendIx(i), created.id);
        friends.push(FriendDevice::new(
            created.token,
            f.key,
            dir.join(format!("friend-{i}.db")),
            proxy,
            f.foreground,
            f.new.home,
        ));
    }
    let mut customers = Vec::with_capacity(world.customers.len());
    let mut customer_tokens = Vec::with_capacity(world.customers.len());
    for (i, c) in world.customers.iter().enumerate() {
        let created = backend
            .backend
            .create_customer(friend_protocol::NewCustomer {
                name: c.name.clone(),
            })
            .await
            .map_err(|e| SimError::Setup(format!("creating customer {i}: {e:?}")))?;
        backend.traffic.register(&created.token);
        customer_tokens.push(created.token.clone());
        customers.push(CustomerDevice::new(
            created.token,
            c.key,
            dir.join(format!("customer-{i}.db")),
            backend.urls[i % backend.urls.len()].clone(),
        ));
    }
    let sim = Arc::new(Sim {
        metrics: Arc::new(Metrics::new(world.jobs.len())),
        config,
        world,
        backend,
        friends,
        customers,
        customer_tokens,
        friend_ids,
        friend_traffic,
        waiters: Mutex::new(Vec::new()),
        gateway,
        wakes: Mutex::new(HashMap::new()),
    });
    progress.update(&ProgressInfo::phase(
        "registering push tokens",
        sim.world.jobs.len(),
    ));
    register_push_tokens(&sim).await?;
    for d in sim.friends.iter().filter(|d| d.foreground) {
        d.start_foreground()
            .await
            .map_err(|e| SimError::Setup(format!("foreground session: {e}")))?;
    }
    let mut agenda = Agenda::default();
    for (job, spec) in JobIx::all(sim.world.jobs.len()).zip(&sim.world.jobs) {
        agenda.push(spec.at, Event::Book { job });
        if let Some(after) = spec.behaviour.cancel_if_open_after {
            agenda.push(spec.at + after, Event::CancelOpen { job });
        }
    }
    for (friend, spec) in FriendIx::all(sim.world.friends.len()).zip(&sim.world.friends) {
        for (start, secs) in &spec.spells {
            agenda.push(
                *start,
                Event::SpellStart {
                    friend,
                    secs: *secs,
                },
            );
        }
    }
    let (virtual_end, expired_by_sweeps) = dispatch(&sim, agenda, progress).await;
    progress.update(&ProgressInfo::phase("winding down", sim.world.jobs.len()));
    let audit = audit::wind_down(&sim).await;
    for d in &sim.friends {
        d.close().await;
    }
    for d in &sim.customers {
        d.close().await;
    }
    Ok(Outcome {
        sim,
        audit,
        virtual_end,
        wall: started.elapsed(),
        expired_by_sweeps,
    })
}

/// How many devices register their push token at once.
const REGISTERING: usize = 16;

/// Every device registers its push token through its core (queued in the outbox) and delivers it.
async fn register_push_tokens(sim: &Arc<Sim>) -> Result<(), SimError> {
    let devices: Vec<Dev> = FriendIx::all(sim.friends.len())
        .map(Dev::Friend)
        .chain(CustomerIx::all(sim.customers.len()).map(Dev::Customer))
        .collect();
    let mut set: JoinSet<Result<(), String>> = JoinSet::new();
    let mut results = Vec::new();
    for dev in devices {
        if set.len() >= REGISTERING
            && let Some(r) = set.join_next().await
        {
            results.push(r);
        }
        let sim = sim.clone();
        set.spawn(async move { sim.register_push_token(dev).await });
    }
    while let Some(r) = set.join_next().await {
        results.push(r);
    }
    for r in results {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(SimError::Setup(e)),
            Err(e) => return Err(SimError::Setup(format!("registering a push token: {e}"))),
        }
    }
    Ok(())
}

impl Sim {
    /// `dev` registers its push token and delivers the registration (one sync).
    async fn register_push_token(&self, dev: Dev) -> Result<(), String> {
        let Some((platform, token)) = self.gateway.token_of(dev).cloned() else {
            return Ok(());
        };
        let failed = |e: friend_core::CoreError| format!("push token of {dev:?}: {e}");
        let queued = match dev {
            Dev::Friend(f) => {
                let Some(d) = self.friend_device(f) else {
                    return Ok(());
                };
                let s = d.session().await.map_err(failed)?;
                let queued = s.register_push_token(platform, &token).await;
                s.sync_once().await.map_err(failed)?;
                queued
            }
            Dev::Customer(c) => {
                let Some(d) = self.customer_device(c) else {
                    return Ok(());
                };
                let s = d.session().await.map_err(failed)?;
                let queued = s.register_push_token(platform, &token).await;
                s.sync_once().await.map_err(failed)?;
                queued
            }
        };
        if queued.map_err(failed)?.is_some() {
            self.metrics.queued(dev, "push_token");
        }
        Ok(())
    }

    /// A Friend's phone.
    pub fn friend_device(&self, friend: FriendIx) -> Option<&FriendDevice> {
        friend.of(&self.friends)
    }

    /// A customer's phone.
    pub fn customer_device(&self, customer: CustomerIx) -> Option<&CustomerDevice> {
        customer.of(&self.customers)
    }

    fn touch(&self, res: Res, tick: u64) {
        match res {
            Res::Friend(f) => {
                if let Some(d) = self.friend_device(f) {
                    d.in_flight.fetch_add(1, Ordering::Relaxed);
                    d.last_used.store(tick, Ordering::Relaxed);
                }
            }
            Res::Customer(c) => {
                if let Some(d) = self.customer_device(c) {
                    d.in_flight.fetch_add(1, Ordering::Relaxed);
                    d.last_used.store(tick, Ordering::Relaxed);
                }
            }
            Res::Job(_) => {}
        }
    }

    fn untouch(&self, res: Res) {
        match res {
            Res::Friend(f) => {
                if let Some(d) = self.friend_device(f) {
                    d.in_flight.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Res::Customer(c) => {
                if let Some(d) = self.customer_device(c) {
                    d.in_flight.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Res::Job(_) => {}
        }
    }

    /// Closes the least recently used idle sessions when too many are open. Only the dispatcher
    /// calls it, between dispatches: a device with nothing in flight cannot be in use.
    async fn close_idle_sessions(&self) {
        let open = self.friends.iter().filter(|d| d.is_open()).count()
            + self.customers.iter().filter(|d| d.is_open()).count();
        let cap = self.config.max_open_sessions.max(8);
        if open <= cap {
            return;
        }
        let mut idle: Vec<(u64, Res)> = self
            .friends
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.is_open() && !d.foreground && d.in_flight.load(Ordering::Relaxed) == 0
            })
            .map(|(i, d)| {
                (
                    d.last_used.load(Ordering::Relaxed),
                    Res::Friend(FriendIx(i)),
                )
            })
            .chain(
                self.customers
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.is_open() && d.in_flight.load(Ordering::Relaxed) == 0)
                    .map(|(i, d)| {
                        (
                            d.last_used.load(Ordering::Relaxed),
                            Res::Customer(CustomerIx(i)),
                        )
                    }),
            )
            .collect();
        idle.sort_unstable_by_key(|(t, _)| *t);
        let excess = open - cap * 4 / 5;
        for (_, res) in idle.into_iter().take(excess) {
            match res {
                Res::Friend(f) => {
                    if let Some(d) = self.friend_device(f) {
                        d.close().await;
                    }
                }
                Res::Customer(c) => {
                    if let Some(d) = self.customer_device(c) {
                        d.close().await;
                    }
                }
                Res::Job(_) => {}
            }
            self.metrics.count("sessions.closed_idle");
        }
    }

    fn progress_info(&self, phase: &'static str, at: VTime, in_flight: usize) -> ProgressInfo {
        ProgressInfo {
            phase,
            virtual_secs: at,
            jobs: self.world.jobs.len(),
            booked: self.metrics.booked.load(Ordering::Relaxed) as usize,
            accepted: self.metrics.accepted.load(Ordering::Relaxed) as usize,
            in_flight,
            requests: self.backend.traffic.total.snapshot().requests,
        }
    }
}

/// Drives the agenda to the end; returns the last virtual second and how many jobs the sweeps
/// expired.
async fn dispatch(sim: &Arc<Sim>, mut agenda: Agenda, progress: &dyn Progress) -> (VTime, usize) {
    type Done = Vec<(VTime, Event)>;
    let mut sequencer = Sequencer::default();
    let mut running: JoinSet<Done> = JoinSet::new();
    let mut unfinished: BTreeSet<(VTime, u64)> = BTreeSet::new();
    let mut tasks: HashMap<tokio::task::Id, ((VTime, u64), Vec<Res>)> = HashMap::new();
    let mut frontier: VTime = 0;
    let mut next_sweep: VTime = SWEEP_EVERY;
    let mut expired = 0usize;
    let mut tick: u64 = 0;
    let mut last_progress = Instant::now();
    loop {
        let earliest = unfinished
            .first()
            .map(|(t, _)| *t)
            .or_else(|| agenda.next_at());
        let Some(earliest) = earliest else { break };
        while running.len() < sim.config.max_in_flight.max(1) {
            let Some(item) = agenda.pop_until(earliest + LOOKAHEAD) else {
                break;
            };
            if item.at > frontier {
                frontier = item.at;
                sim.backend.clock.set(frontier);
                while next_sweep <= frontier {
                    match sim.backend.backend.expire_due().await {
                        Ok(n) => expired += n,
                        Err(e) => sim.metrics.error("expire_due", &format!("{e:?}")),
                    }
                    next_sweep += SWEEP_EVERY;
                }
            }
            let claims = sim.claims(&item.event);
            let devices: Vec<Res> = claims
                .iter()
                .map(|(r, _)| *r)
                .filter(|r| !matches!(r, Res::Job(_)))
                .collect();
            tick += 1;
            for d in &devices {
                sim.touch(*d, tick);
            }
            let (waits, done) = sequencer.enter(item.at, &claims);
            let task_sim = sim.clone();
            let (at, event) = (item.at, item.event);
            let handle = running.spawn(async move {
                for w in waits {
                    w.done().await;
                }
                let next = task_sim.handle(at, event).await;
                drop(done);
                next
            });
            unfinished.insert((at, item.seq));
            tasks.insert(handle.id(), ((at, item.seq), devices));
            if tick.is_multiple_of(64) {
                sim.close_idle_sessions().await;
            }
        }
        if last_progress.elapsed() >= Duration::from_millis(100) {
            progress.update(&sim.progress_info("simulating", frontier, running.len()));
            last_progress = Instant::now();
        }
        let Some(joined) = running.join_next_with_id().await else {
            continue;
        };
        let (id, next) = match joined {
            Ok((id, next)) => (id, next),
            Err(e) => {
                sim.metrics.error(
                    "event task",
                    if e.is_panic() {
                        "panicked"
                    } else {
                        "cancelled"
                    },
                );
                (e.id(), Vec::new())
            }
        };
        if let Some((key, devices)) = tasks.remove(&id) {
            unfinished.remove(&key);
            for d in devices {
                sim.untouch(d);
            }
            for (t, event) in next {
                agenda.push(t.max(key.0 + 1), event);
            }
        }
    }
    progress.update(&sim.progress_info("simulated", frontier, 0));
    (frontier, expired)
}
