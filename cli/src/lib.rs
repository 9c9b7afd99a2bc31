//! `friendctl`, FriendCore's command line, as a library: the commands (`serve`, `simulate`,
//! `friend …`, `customer …`) and the marketplace simulation they are built on ([`sim`]), which the
//! tests run in-process.

pub mod args;
pub mod commands;
pub mod exit;
pub mod sim;

use args::{Cli, Command};
use exit::CliResult;

/// The runtime every command runs on: one worker per core, and a small blocking pool. The core
/// runs each SQLite call on the blocking pool; tokio's default of up to 512 threads turns a
/// simulation with hundreds of devices into hundreds of threads contending for two cores
/// (measured: most of the CPU went to futex wake-ups), while a few dozen keep both cores busy.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> CliResult<()> {
    match cli.command {
        Command::Serve(a) => commands::serve::run(a).await,
        Command::Simulate(a) => commands::simulate::run(a).await,
        Command::Friend(a) => commands::friend::run(a).await,
        Command::Customer(a) => commands::customer::run(a).await,
        Command::Admin(a) => commands::admin::run(a).await,
    }
}
