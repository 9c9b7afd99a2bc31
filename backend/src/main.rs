//! `friend-backend`: the reference backend on an embedded SQLite file (zero configuration) or on a
//! PostgreSQL database several instances share.

use clap::Parser;
use friend_backend::Backend;

/// FriendCore reference backend. Starts on an embedded SQLite file; a new file is seeded with the
/// catalog and development accounts whose tokens are printed. Settings: flag > FRIEND_… variable >
/// --config file > default.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    server: friend_backend::settings::ServerArgs,
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
    let settings = args.server.resolve()?;
    let backend = Backend::open(settings.config())?;
    let listener = tokio::net::TcpListener::bind(&settings.addr).await?;
    let addr = listener.local_addr()?;
    println!(
        "FriendCore backend listening on http://{addr} (database {})",
        friend_backend::pg::describe(&settings.db)
    );
    println!(
        "  OpenAPI document: http://{addr}{}",
        friend_backend::OPENAPI_PATH
    );
    print!("{}", settings.describe());
    print!("{}", backend.credentials_text());
    println!("  try: curl -H 'Authorization: Bearer dev-friend-anna' 'http://{addr}/v1/sync'");
    println!("  new accounts: POST /v1/admin/friends or /v1/admin/customers with the admin token");
    backend
        .serve(listener, friend_backend::shutdown_signal())
        .await?;
    println!("stopped");
    Ok(())
}
