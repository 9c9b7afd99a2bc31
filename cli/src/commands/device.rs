//! What the Friend and customer commands share: where a device keeps its database and data key,
//! opening a session, syncing (or not, with `--offline`), reporting an action's outcome from the
//! outbox, and printing. The shared commands take the core's [`Session`], which both roles'
//! sessions dereference to.

use crate::args::DeviceArgs;
use crate::exit::{CliError, CliResult, Exit};
use friend_core::api::Api;
use friend_core::store::outbox::ItemStatus;
use friend_core::{
    ApiConfig, CoreError, CustomerSession, FriendSession, OutboxItem, Session, SessionConfig,
    StaticSecrets,
};
use friend_protocol::{JobId, Role};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The discard port on loopback: connections are refused at once.
const OFFLINE_URL: &str = "http://127.0.0.1:9";

/// A device command's resolved options.
#[derive(Debug, Clone)]
pub struct Device {
    /// Backend base URL.
    pub url: String,
    /// Bearer token.
    pub token: String,
    /// The device database.
    pub db: PathBuf,
    /// Do not talk to the backend.
    pub offline: bool,
    /// JSON output.
    pub json: bool,
}

impl Device {
    /// Resolves the options for `role` ("friend" or "customer").
    pub fn resolve(args: &DeviceArgs, role: &str) -> CliResult<Device> {
        let token = args.token.clone().ok_or_else(|| {
            CliError::usage(format!(
                "--token is required (or FRIENDCTL_TOKEN), e.g. --token dev-{role}-… as printed by `friendctl serve`"
            ))
        })?;
        // Before anything is created for it (a database named after it, a key file).
        friend_core::check_token(&token).map_err(|e| CliError::from_core(e, &args.url))?;
        let db = match &args.db {
            Some(p) => p.clone(),
            None => default_db(role, &token),
        };
        Ok(Device {
            url: args.url.trim_end_matches('/').to_owned(),
            token,
            db,
            offline: args.offline,
            json: args.json,
        })
    }

    /// Maps a core error, naming this backend.
    pub fn err(&self, e: CoreError) -> CliError {
        CliError::from_core(e, &self.url)
    }

    /// Where the session connects: with `--offline`, an address nothing listens on, so the core's
    /// outbox timer cannot deliver behind the user's back either.
    fn session_url(&self) -> &str {
        if self.offline { OFFLINE_URL } else { &self.url }
    }

    fn secrets(&self) -> CliResult<Arc<StaticSecrets>> {
        install_crypto_provider();
        let key = load_or_create_key(&self.db)?;
        Ok(Arc::new(StaticSecrets::new(self.token.clone(), key)))
    }

    /// Asks the backend whose token this is before anything is created on disk, so a token of the
    /// other role leaves no database behind. (The session checks again for its own requests; with
    /// `--offline` that check is all there is, and it happens when the device is next online.)
    async fn confirm_role(&self, role: Role) -> CliResult<()> {
        if self.offline {
            return Ok(());
        }
        install_crypto_provider();
        let mut config = ApiConfig::new(&self.url);
        config.role = Some(role);
        // This client never reads the data key.
        let secrets = Arc::new(StaticSecrets::new(self.token.clone(), [0; 32]));
        let api = Api::new(&config, secrets).map_err(|e| self.err(e))?;
        api.me().await.map(|_| ()).map_err(|e| self.err(e))
    }

    /// Opens the Friend session on this device's database.
    pub async fn open_friend(&self) -> CliResult<FriendSession> {
        self.confirm_role(Role::Friend).await?;
        let secrets = self.secrets()?;
        FriendSession::open(SessionConfig::new(&self.db, self.session_url()), secrets)
            .await
            .map_err(|e| self.err(e))
    }

    /// Opens the customer session on this device's database.
    pub async fn open_customer(&self) -> CliResult<CustomerSession> {
        self.confirm_role(Role::Customer).await?;
        let secrets = self.secrets()?;
        CustomerSession::open(SessionConfig::new(&self.db, self.session_url()), secrets)
            .await
            .map_err(|e| self.err(e))
    }
}

/// Syncs unless `--offline` (deliver the outbox, then pull).
pub(crate) async fn sync(device: &Device, s: &Session) -> CliResult<()> {
    if device.offline {
        return Ok(());
    }
    s.sync_once().await.map(|_| ()).map_err(|e| device.err(e))
}

/// A sync whose transport failure the caller reports in its own terms (an item still pending, a
/// booking not yet taken); a token problem (refused, other role, malformed) fails the command.
pub(crate) async fn try_sync(device: &Device, s: &Session) -> CliResult<()> {
    match s.sync_once().await {
        Err(e) if e.is_token_problem() => Err(device.err(e)),
        _ => Ok(()),
    }
}

/// Delivers what was just queued and reports its outcome.
pub(crate) async fn deliver(
    device: &Device,
    s: &Session,
    job: JobId,
    id: Option<i64>,
) -> CliResult<Delivery> {
    if !device.offline {
        // A transport failure leaves the item pending; the outcome below says so.
        try_sync(device, s).await?;
    }
    let items = s.outbox().await.map_err(|e| device.err(e))?;
    delivery_outcome(device, &items, job, id)
}

/// The given version, else the version of the proposal waiting for this device's answer.
pub(crate) async fn pending_version(
    device: &Device,
    s: &Session,
    job: JobId,
    given: Option<u32>,
) -> CliResult<u32> {
    if let Some(v) = given {
        return Ok(v);
    }
    let n = s.negotiation(job).await.map_err(|e| device.err(e))?;
    n.pending()
        .map(|q| q.quote.version)
        .ok_or_else(|| CliError::new(Exit::Refused, "no proposal is waiting for an answer"))
}

/// `friendctl-<role>-<first 8 hex digits of SHA-256(token)>.db`: one database per account, so two
/// accounts never share a cache by accident, and the token itself never appears in a file name.
fn default_db(role: &str, token: &str) -> PathBuf {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    PathBuf::from(format!("friendctl-{role}-{hex}.db"))
}

/// Installs rustls' ring provider once (reqwest is built without a default provider).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The device's data key, kept next to the database in `<db>.key` (the CLI's stand-in for a
/// platform keystore); created with fresh randomness on first use, readable by the owner only.
pub fn load_or_create_key(db: &Path) -> CliResult<[u8; 32]> {
    let mut name = db.as_os_str().to_owned();
    name.push(".key");
    let path = PathBuf::from(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => decode_key(text.trim()).ok_or_else(|| {
            CliError::failure(format!("{} is not a 64-digit hex key", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
                .map_err(|_| CliError::failure("no system randomness for a data key"))?;
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    CliError::failure(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            write_private(&path, &hex)
                .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))?;
            Ok(key)
        }
        Err(e) => Err(CliError::failure(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn decode_key(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Reads a payload argument; "-" reads stdin.
pub fn payload_arg(payload: &str) -> CliResult<String> {
    if payload != "-" {
        return Ok(payload.trim().to_owned());
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|e| CliError::failure(format!("reading the payload from stdin: {e}")))?;
    Ok(text.trim().to_owned())
}

/// How a queued action ended after the delivery attempt.
pub enum Delivery {
    /// The server applied it.
    Applied,
    /// Still in the outbox (offline, or `--offline`).
    Queued,
}

/// Reports the outcome of the newest outbox item of `job` (or item `id`): refused → exit 5 with
/// the server's reason; pending while online → exit 3; pending with `--offline` → queued.
pub fn delivery_outcome(
    device: &Device,
    items: &[OutboxItem],
    job: JobId,
    id: Option<i64>,
) -> CliResult<Delivery> {
    let item = items
        .iter()
        .filter(|i| match id {
            Some(id) => i.id == id,
            None => i.job_id == job,
        })
        .max_by_key(|i| i.id);
    let Some(item) = item else {
        return Ok(Delivery::Applied);
    };
    match item.status {
        ItemStatus::Applied => Ok(Delivery::Applied),
        ItemStatus::Refused => Err(CliError::new(
            Exit::Refused,
            format!(
                "the backend refused {} ({}): {}",
                item.action.kind(),
                item.refusal_code.as_deref().unwrap_or("refused"),
                item.refusal_message.as_deref().unwrap_or("")
            ),
        )),
        ItemStatus::Pending if device.offline => Ok(Delivery::Queued),
        ItemStatus::Pending => Err(CliError::new(
            Exit::Unreachable,
            format!(
                "{} is queued but not delivered ({}); it is sent by the next command that reaches {}",
                item.action.kind(),
                item.last_error.as_deref().unwrap_or("no answer"),
                device.url
            ),
        )),
    }
}

/// "<what>: applied by the backend", or queued when offline.
pub fn delivered_text(d: &Delivery, what: &str) -> String {
    match d {
        Delivery::Applied => format!("{what}: applied by the backend"),
        Delivery::Queued => {
            format!("{what}: queued in the outbox (offline); sent by the next online command")
        }
    }
}

/// Delivers the outbox item an action just queued for `job` and reports it: JSON
/// `{key: job, "applied": …}`, text "`what`: applied by the backend" (or queued, when offline).
pub(crate) async fn deliver_and_report(
    device: &Device,
    s: &Session,
    job: JobId,
    queued: friend_core::CoreResult<i64>,
    key: &str,
    what: &str,
) -> CliResult<()> {
    let id = queued.map_err(|e| device.err(e))?;
    let d = deliver(device, s, job, Some(id)).await?;
    emit(
        device,
        serde_json::json!({ (key): job, "applied": matches!(d, Delivery::Applied) }),
        || delivered_text(&d, what),
    );
    Ok(())
}

/// Prints either a JSON value or the text lines.
pub fn emit(device: &Device, json: serde_json::Value, text: impl FnOnce() -> String) {
    if device.json {
        print_out(&serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string()));
    } else {
        print_out(&text());
    }
}

/// One line per item, or `none` for no items: a list's text output.
pub fn lines<T>(items: &[T], none: &str, line: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        return none.to_owned();
    }
    items.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// Writes a line to stdout. A reader that went away (`friendctl … | head`) is not a failure — the
/// command's work is done and its exit code stands — where `println!` would panic; any other
/// write error is reported on stderr.
pub fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("friendctl: cannot write the output: {e}");
        }
        _ => {}
    }
}

/// An outbox listing for text and JSON output.
pub fn outbox_lines(items: &[OutboxItem]) -> (serde_json::Value, String) {
    let json: Vec<_> = items
        .iter()
        .map(|i| {
            serde_json::json!({
                "id": i.id,
                "job_id": i.job_id,
                "kind": i.action.kind(),
                "status": status_name(i.status),
                "attempts": i.attempts,
                "last_error": i.last_error,
                "refusal_code": i.refusal_code,
                "refusal_message": i.refusal_message,
            })
        })
        .collect();
    let text = lines(items, "the outbox is empty", |i| {
        let extra = match i.status {
            ItemStatus::Refused => format!(
                " — {}: {}",
                i.refusal_code.as_deref().unwrap_or("?"),
                i.refusal_message.as_deref().unwrap_or("")
            ),
            ItemStatus::Pending => i
                .last_error
                .as_deref()
                .map(|e| format!(" — {} attempts, last: {e}", i.attempts))
                .unwrap_or_default(),
            ItemStatus::Applied => String::new(),
        };
        let on = if i.job_id == friend_core::outbox::push::DEVICE_QUEUE {
            "this device".to_owned()
        } else {
            format!("job {}", i.job_id)
        };
        format!(
            "#{:<4} {:<8} {:<13} {on}{}",
            i.id,
            status_name(i.status),
            i.action.kind(),
            extra
        )
    });
    (serde_json::Value::Array(json), text)
}

/// Stable name of an outbox status.
pub fn status_name(s: ItemStatus) -> &'static str {
    match s {
        ItemStatus::Pending => "pending",
        ItemStatus::Applied => "applied",
        ItemStatus::Refused => "refused",
    }
}

/// A sync status for text and JSON output.
pub fn status_lines(status: &friend_core::SyncStatus) -> (serde_json::Value, String) {
    let last = status
        .last_success_ms
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let json = serde_json::json!({
        "connected": status.connected,
        "last_success": last,
        "pending_outbox": status.pending_outbox,
        "refused_outbox": status.refused_outbox,
        "last_error": status.last_error.as_ref().map(|(c, m)| serde_json::json!({"code": c, "message": m})),
        "clock_offset_ms": status.clock_offset_ms,
    });
    let text = format!(
        "connected: {}\nlast sync: {}\noutbox: {} pending, {} refused\nclock offset to the server: {} ms{}",
        if status.connected { "yes" } else { "no" },
        last.as_deref().unwrap_or("never"),
        status.pending_outbox,
        status.refused_outbox,
        status.clock_offset_ms,
        status
            .last_error
            .as_ref()
            .map(|(c, m)| format!("\nlast error: {c}: {m}"))
            .unwrap_or_default()
    );
    (json, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("d.db");
        let first = load_or_create_key(&db).unwrap();
        assert_eq!(load_or_create_key(&db).unwrap(), first);
        assert_ne!(first, [0u8; 32]);
    }

    #[test]
    fn default_databases_differ_per_token_and_hide_it() {
        let a = default_db("friend", "dev-friend-anna");
        assert_ne!(a, default_db("friend", "dev-friend-luca"));
        assert!(!a.to_string_lossy().contains("anna"));
    }
}
