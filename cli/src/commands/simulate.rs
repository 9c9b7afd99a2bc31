//! `friendctl simulate`: runs the simulation with a progress bar on stderr, prints the report
//! (text, or JSON with `--json`) and writes it with the chart into `--out`.

use crate::args::SimulateArgs;
use crate::exit::{CliError, CliResult, Exit};
use crate::sim::{self, NoProgress, Progress, ProgressInfo, SimConfig, WorldSize};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Progress on stderr: a bar on a terminal, a line every ten seconds otherwise (CI logs).
enum Bar {
    /// A terminal: the virtual day on the bar, jobs and requests in the message.
    Terminal(ProgressBar),
    /// Not a terminal: when the last line was printed.
    Lines(Mutex<Instant>),
}

impl Bar {
    fn new() -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar::Lines(Mutex::new(Instant::now()));
        }
        // The bar spans the booking window plus the evening's tail.
        let bar = ProgressBar::with_draw_target(
            Some((sim::world::DAY_SECS + 3 * 3600) as u64),
            ProgressDrawTarget::stderr_with_hz(8),
        );
        let style =
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:32} {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Bar::Terminal(bar)
    }

    fn finish(&self) {
        if let Bar::Terminal(b) = self {
            b.finish_and_clear();
        }
    }
}

fn clock(virtual_secs: i64) -> String {
    let minutes = 7 * 60 + virtual_secs / 60;
    format!("{:02}:{:02}", (minutes / 60) % 24, minutes % 60)
}

impl Progress for Bar {
    fn update(&self, info: &ProgressInfo) {
        let message = format!(
            "{} · {}/{} booked · {} accepted · {} running · {} requests",
            info.phase, info.booked, info.jobs, info.accepted, info.in_flight, info.requests
        );
        match self {
            Bar::Terminal(bar) => {
                bar.set_position(info.virtual_secs.max(0) as u64);
                bar.set_prefix(clock(info.virtual_secs));
                bar.set_message(message);
            }
            Bar::Lines(last) => {
                let Ok(mut last) = last.lock() else { return };
                if last.elapsed() >= Duration::from_secs(10) {
                    eprintln!("  {} {message}", clock(info.virtual_secs));
                    *last = Instant::now();
                }
            }
        }
    }
}

/// Runs `friendctl simulate`.
pub async fn run(args: SimulateArgs) -> CliResult<()> {
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..1_000_000));
    if !(0.0..=1.0).contains(&args.foreground_share) || !(0.0..=1.0).contains(&args.flaky_share) {
        return Err(CliError::usage("shares are between 0 and 1"));
    }
    let mut config = SimConfig::new(seed);
    config.size = WorldSize {
        friends: args.friends,
        customers: args.customers,
        jobs: args.jobs,
        foreground_share: args.foreground_share,
        foreground_max: args.foreground_max,
        flaky_share: args.flaky_share,
    };
    if args.keep_data {
        config.data_dir = Some(args.out.join("data"));
    }
    let on_postgres = args
        .db
        .as_deref()
        .is_some_and(friend_backend::pg::is_postgres);
    if args.instances > 1 && !on_postgres {
        return Err(CliError::usage(
            "several --instances share one database: give --db postgres://…",
        ));
    }
    if args.db.is_some() && !on_postgres {
        return Err(CliError::usage(
            "--db takes a PostgreSQL URL (postgres://user@host/dbname); without it the run uses a \
             SQLite file of its own",
        ));
    }
    config.db = args.db;
    config.instances = args.instances;
    eprintln!(
        "simulating {} Friends, {} customers, {} jobs (seed {seed}) …",
        config.size.friends, config.size.customers, config.size.jobs
    );
    let bar = (!args.no_progress).then(Bar::new);
    let report = match &bar {
        Some(b) => sim::run(config, b).await,
        None => sim::run(config, &NoProgress).await,
    }
    .map_err(|e| CliError::failure(e.to_string()))?;
    if let Some(b) = bar {
        b.finish();
    }
    let files =
        sim::write_files(&report, &args.out).map_err(|e| CliError::failure(e.to_string()))?;
    if args.json {
        let json =
            serde_json::to_string_pretty(&report).map_err(|e| CliError::failure(e.to_string()))?;
        super::device::print_out(&json);
    } else {
        let text = report.text();
        super::device::print_out(text.strip_suffix('\n').unwrap_or(&text));
        super::device::print_out(&format!(
            "Files: {}",
            files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if report.invariants.ok {
        Ok(())
    } else {
        Err(CliError::new(
            Exit::Invariant,
            format!(
                "invariants broken: {} double assignments, {} lost writes, {} jobs left open, {} misdirected pushes, {} dead-token mismatches",
                report.invariants.double_assignments,
                report.invariants.lost_writes,
                report.invariants.jobs_left_open,
                report.invariants.misdirected_pushes,
                report.invariants.dead_token_mismatches
            ),
        ))
    }
}
