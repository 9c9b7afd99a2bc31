//! `friendctl serve`: the reference backend on an embedded SQLite file (zero configuration) or a
//! PostgreSQL database (`--db postgres://…`), with the effective configuration and the development
//! accounts' tokens printed and a graceful drain on SIGTERM or Ctrl-C.

use crate::args::ServeArgs;
use crate::exit::{CliError, CliResult};
use friend_backend::Backend;

/// Runs the backend until Ctrl-C.
pub async fn run(args: ServeArgs) -> CliResult<()> {
    let settings = args
        .server
        .resolve()
        .map_err(|e| CliError::usage(e.to_string()))?;
    let db = friend_backend::pg::describe(&settings.db);
    let backend = Backend::open(settings.config())
        .map_err(|e| CliError::failure(format!("cannot open {db}: {e}")))?;
    let listener = tokio::net::TcpListener::bind(&settings.addr)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {}: {e}", settings.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::failure(format!("no local address: {e}")))?;
    // The first line is parsed by scripts and tests: keep its shape.
    let out = super::device::print_out;
    out(&format!("FriendCore backend listening on http://{addr}"));
    out(&format!(
        "  OpenAPI document: http://{addr}{}",
        friend_backend::OPENAPI_PATH
    ));
    let effective = settings.describe();
    out(effective.strip_suffix('\n').unwrap_or(&effective));
    let credentials = backend.credentials_text();
    out(credentials.strip_suffix('\n').unwrap_or(&credentials));
    out(&format!(
        "  try: friendctl friend --url http://{addr} --token dev-friend-anna inbox   (Ctrl-C stops)"
    ));
    backend
        .serve(listener, friend_backend::shutdown_signal())
        .await
        .map_err(|e| CliError::failure(format!("serving failed: {e}")))?;
    super::device::print_out("stopped");
    Ok(())
}
