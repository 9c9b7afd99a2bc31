//! `friendctl`: serve the reference backend, simulate the marketplace, act as a Friend or a
//! customer. Exit codes are documented in `friendctl --help` and in `exit.rs`.

use clap::Parser;
use friendctl::args::Cli;
use std::process::ExitCode;

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,friendctl=info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match friendctl::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("friendctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(friendctl::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("friendctl: {e}");
            ExitCode::from(e.exit.code())
        }
    }
}
