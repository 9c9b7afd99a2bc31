//! `friendctl serve`: the reference backend on an embedded SQLite file, zero configuration, with
//! the development accounts' tokens printed and a clean shutdown on Ctrl-C (or SIGTERM).

use crate::args::ServeArgs;
use crate::exit::{CliError, CliResult};
use friend_backend::{Backend, Config};

/// Runs the backend until Ctrl-C.
pub async fn run(args: ServeArgs) -> CliResult<()> {
    let mut config = Config::new(&args.db);
    config.admin_token = args.admin_token;
    config.seed_dev_data = !args.no_dev_seed;
    config.push = args.push.settings();
    let push = config.push.describe();
    let backend = Backend::open(config)
        .map_err(|e| CliError::failure(format!("cannot open {}: {e}", args.db.display())))?;
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {}: {e}", args.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::failure(format!("no local address: {e}")))?;
    // The first line is parsed by scripts and tests: keep its shape.
    let out = super::device::print_out;
    out(&format!("FriendCore backend listening on http://{addr}"));
    out(&format!("  database:         {}", args.db.display()));
    out(&format!(
        "  OpenAPI document: http://{addr}{}",
        friend_backend::OPENAPI_PATH
    ));
    out(&format!("  push:             {push}"));
    let credentials = backend.credentials_text();
    out(credentials.strip_suffix('\n').unwrap_or(&credentials));
    out(&format!(
        "  try: friendctl friend --url http://{addr} --token dev-friend-anna inbox   (Ctrl-C stops)"
    ));
    backend
        .serve(listener, shutdown_signal())
        .await
        .map_err(|e| CliError::failure(format!("serving failed: {e}")))?;
    super::device::print_out("stopped");
    Ok(())
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
