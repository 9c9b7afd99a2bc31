//! `friendctl simulate` as a library: the whole marketplace on one machine for a compressed day.
//!
//! An embedded reference backend (in-process, 127.0.0.1:0, SQLite in the run's directory, a manual
//! clock), N Friend and M customer devices each on the real core with its own SQLite file, real
//! HTTP over loopback (every Friend through its own fault-injecting proxy), around the real town
//! centres of the Zürich and Bern regions. It runs as a discrete-event simulation over a virtual
//! clock: customers book, the backend pushes the Friends a job concerns through fake FCM and APNs
//! gateways on loopback ([`gateway`]) and each push wakes the phone it was sent to, Friends who
//! learned of the offer react after a documented human reaction time ([`model`]) and race to
//! accept, go on site, lose their signal in basements and tunnels, negotiate (also by payload
//! exchange offline), complete, get rated — and every step is a real call on a real session at its
//! virtual instant.
//!
//! [`run`] returns the [`Report`]; [`write_files`] writes it with the chart.

pub mod audit;
pub mod backend;
pub mod chart;
pub mod devices;
pub(crate) mod driver;
pub mod events;
pub mod gateway;
pub mod ids;
pub mod metrics;
pub mod model;
mod playbook;
pub mod polls;
pub mod quotes;
pub mod report;
pub mod traffic;
pub mod world;

pub use report::Report;
pub use world::WorldSize;

use std::path::{Path, PathBuf};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random draw.
    pub seed: u64,
    /// How many Friends, customers and jobs, and how the Friends behave.
    pub size: WorldSize,
    /// Events running at once.
    pub max_in_flight: usize,
    /// Device sessions open at once (idle ones are closed beyond it); 0: as many as the
    /// open-files limit allows next to the Friends' proxies, at most [`MAX_SESSIONS`].
    pub max_open_sessions: usize,
    /// A device woken by a push less than this many virtual seconds ago is woken again only when
    /// they are up, one sync for the pushes that came meanwhile (the app's debounce; 0: every
    /// push wakes its device as it comes).
    pub push_coalesce_secs: i64,
    /// Keep the databases here (none: a temporary directory, removed at the end).
    pub data_dir: Option<PathBuf>,
    /// The backend's database: none for a SQLite file in the run's directory, or a PostgreSQL
    /// URL (an empty database: the run creates its accounts there).
    pub db: Option<String>,
    /// Backend instances on that database (more than one needs PostgreSQL); the devices are
    /// spread over them.
    pub instances: usize,
}

impl SimConfig {
    /// The defaults of `friendctl simulate` (under a minute on two cores in release mode).
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            size: WorldSize {
                friends: 200,
                customers: 100,
                jobs: 400,
                foreground_share: 0.15,
                foreground_max: 32,
                flaky_share: 0.25,
            },
            max_in_flight: 24,
            max_open_sessions: 0,
            // Each wake is a full sync, and the backend pushes every eligible Friend (on duty or
            // not): 15 minutes keep a day's wakes near what the simulation's own push service
            // used to send (seed 42: 9,500 of 19,000 pushes wake a phone; 14,000 at 5 minutes).
            push_coalesce_secs: 900,
            data_dir: None,
            db: None,
            instances: 1,
        }
    }

    /// A small world for tests.
    pub fn small(seed: u64) -> SimConfig {
        let default = SimConfig::new(seed);
        SimConfig {
            size: WorldSize {
                friends: 30,
                customers: 12,
                jobs: 40,
                ..default.size
            },
            max_in_flight: 16,
            max_open_sessions: 24,
            ..default
        }
    }
}

/// The process's soft limit of open files (Linux: `/proc/self/limits`).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Most sessions open at once by default. Reopening a closed session (open, migrate, load the
/// inbox index; later close: checkpoint and fsync) was most of a large run's time when only 500
/// could stay open (2,000 Friends: 977 s → 467 s); ~0.4 MB each (measured RSS) keeps 3,000 affordable.
pub const MAX_SESSIONS: usize = 3_000;

/// Descriptors an open session holds: its SQLite files and a pooled connection through its proxy,
/// with headroom.
const FDS_PER_SESSION: usize = 8;

/// The session budget for `friends` proxies under the open-files limit (`max_open_sessions` 0).
fn session_budget(friends: usize) -> usize {
    let limit = open_files_limit().unwrap_or(1024);
    (limit.saturating_sub(friends + 256) / FDS_PER_SESSION).clamp(32, MAX_SESSIONS)
}

/// Refuses a world that cannot fit the open-files limit: every Friend's proxy listens on a port,
/// every open session holds about six descriptors.
fn check_open_files(config: &SimConfig) -> Result<(), SimError> {
    let Some(limit) = open_files_limit() else {
        return Ok(());
    };
    let needed = config.size.friends
        + FDS_PER_SESSION
            * config
                .max_open_sessions
                .min(config.size.friends + config.size.customers)
        + 256;
    if needed > limit {
        return Err(SimError::Setup(format!(
            "{} Friends need about {needed} open files but the limit is {limit}: raise it (ulimit -n {needed}) or simulate fewer Friends",
            config.size.friends
        )));
    }
    Ok(())
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Setting up the backend, the accounts or the devices failed.
    #[error("setup: {0}")]
    Setup(String),
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Io(String),
}

/// Where a run stands, for a progress display.
#[derive(Debug, Clone)]
pub struct ProgressInfo {
    /// What it is doing.
    pub phase: &'static str,
    /// Virtual seconds since 07:00.
    pub virtual_secs: i64,
    /// Jobs of the day.
    pub jobs: usize,
    /// Booked so far.
    pub booked: usize,
    /// Accepted so far.
    pub accepted: usize,
    /// Events running.
    pub in_flight: usize,
    /// HTTP requests so far.
    pub requests: u64,
}

impl ProgressInfo {
    /// A phase without numbers yet.
    pub fn phase(phase: &'static str, jobs: usize) -> ProgressInfo {
        ProgressInfo {
            phase,
            virtual_secs: 0,
            jobs,
            booked: 0,
            accepted: 0,
            in_flight: 0,
            requests: 0,
        }
    }
}

/// Receives progress while a simulation runs.
pub trait Progress: Send + Sync {
    /// Where the run stands now.
    fn update(&self, info: &ProgressInfo);
}

/// Shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _info: &ProgressInfo) {}
}

/// Where a run keeps its files: the backend's database, and the devices' databases.
struct Dirs {
    backend: PathBuf,
    devices: PathBuf,
    _temp: Vec<tempfile::TempDir>,
}

/// Most devices whose databases go to the RAM disk; each open session's write-ahead log grows to
/// about 4 MB, so larger worlds stay on disk.
const RAM_DISK_DEVICES: usize = 1000;

/// The devices' databases go to a RAM disk when there is one (`/dev/shm`) and the world is not
/// too large: every outbox write of the core is a full fsync, which measures the host's disk, not
/// the product; the backend's database (large at scale) stays on disk. With `data_dir`, both go
/// there and are kept.
fn dirs(config: &SimConfig) -> Result<Dirs, SimError> {
    if let Some(d) = &config.data_dir {
        std::fs::create_dir_all(d).map_err(|e| SimError::Setup(format!("{}: {e}", d.display())))?;
        return Ok(Dirs {
            backend: d.clone(),
            devices: d.clone(),
            _temp: Vec::new(),
        });
    }
    let backend = tempfile::tempdir().map_err(|e| SimError::Setup(format!("temp dir: {e}")))?;
    let shm = Path::new("/dev/shm");
    let devices = if shm.is_dir() && config.size.friends + config.size.customers <= RAM_DISK_DEVICES
    {
        tempfile::Builder::new()
            .prefix("friendctl-sim")
            .tempdir_in(shm)
            .ok()
    } else {
        None
    };
    Ok(match devices {
        Some(devices) => Dirs {
            backend: backend.path().to_owned(),
            devices: devices.path().to_owned(),
            _temp: vec![backend, devices],
        },
        None => Dirs {
            backend: backend.path().to_owned(),
            devices: backend.path().to_owned(),
            _temp: vec![backend],
        },
    })
}

/// Runs a simulation and returns its report.
pub async fn run(mut config: SimConfig, progress: &dyn Progress) -> Result<Report, SimError> {
    if config.max_open_sessions == 0 {
        config.max_open_sessions = session_budget(config.size.friends);
    }
    check_open_files(&config)?;
    let dirs = dirs(&config)?;
    let mut outcome = driver::run(config, &dirs.backend, &dirs.devices, progress).await?;
    let report = report::build(&outcome);
    if let Some(sim) = std::sync::Arc::get_mut(&mut outcome.sim) {
        sim.backend.stop().await;
    }
    drop(outcome);
    drop(dirs);
    Ok(report)
}

/// Writes `report.txt`, `report.json` and `time_to_accept.svg` into `dir`; returns their paths.
pub fn write_files(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, SimError> {
    std::fs::create_dir_all(dir).map_err(|e| SimError::Io(format!("{}: {e}", dir.display())))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| SimError::Io(e.to_string()))?;
    let files = [
        ("report.txt", report.text()),
        ("report.json", json),
        ("time_to_accept.svg", chart::time_to_accept_svg(report)),
    ];
    let mut paths = Vec::new();
    for (name, body) in files {
        let path = dir.join(name);
        std::fs::write(&path, body)
            .map_err(|e| SimError::Io(format!("{}: {e}", path.display())))?;
        paths.push(path);
    }
    Ok(paths)
}
