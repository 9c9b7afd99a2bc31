//! `friendctl`: serve the reference backend, simulate the marketplace, act as a Friend or a
//! customer. Exit codes are documented in `friendctl --help` and in `exit.rs`.

use clap::Parser;
use friendctl::args::Cli;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Logs follow `-v`: quiet by default (a command's failure is its own `friendctl: …` line; only
/// error events are logged), `-v` info, `-vv` debug, `-vvv` trace; `RUST_LOG` overrides. Colour
/// only on a terminal (and not with `NO_COLOR`), so redirected stderr carries no escape codes.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
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
