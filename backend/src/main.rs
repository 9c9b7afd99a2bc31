//! `friend-backend`: the reference backend on an embedded SQLite file (zero configuration) or on a
//! PostgreSQL database several instances share.

use clap::Parser;
use friend_backend::{Backend, Config};
use std::path::PathBuf;

/// FriendCore reference backend. Starts on an embedded SQLite file; a new file is seeded with the
/// catalog and development accounts whose tokens are printed.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on. Plain HTTP: keep it on loopback or behind a TLS proxy.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// SQLite database file (created when missing), or a PostgreSQL database several instances
    /// share: `postgres://user[:password]@host[:port]/dbname[?sslmode=require]`.
    #[arg(
        long,
        env = "FRIEND_DB",
        default_value = "friendcore.db",
        hide_env_values = true
    )]
    db: PathBuf,
    /// Admin token for /v1/admin/*; a random one is generated and printed when omitted.
    #[arg(long, env = "FRIEND_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Do not seed development accounts into a new database.
    #[arg(long)]
    no_dev_seed: bool,
    #[command(flatten)]
    push: friend_backend::push::PushArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Logs on stderr (stdout carries the start-up lines scripts read), coloured only on a terminal.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("friend-backend: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::new(&args.db);
    config.admin_token = args.admin_token;
    config.seed_dev_data = !args.no_dev_seed;
    config.push = args.push.settings();
    let config_push = config.push.describe();
    let backend = Backend::open(config)?;
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    let addr = listener.local_addr()?;
    println!(
        "FriendCore backend listening on http://{addr} (database {})",
        friend_backend::pg::describe(&args.db.to_string_lossy())
    );
    println!(
        "  OpenAPI document: http://{addr}{}",
        friend_backend::OPENAPI_PATH
    );
    println!("  push:             {}", config_push);
    print!("{}", backend.credentials_text());
    println!("  try: curl -H 'Authorization: Bearer dev-friend-anna' 'http://{addr}/v1/sync'");
    println!("  new accounts: POST /v1/admin/friends or /v1/admin/customers with the admin token");
    backend
        .serve(listener, friend_backend::shutdown_signal())
        .await?;
    println!("stopped");
    Ok(())
}
