//! How a served backend is configured — by `friend-backend` and `friendctl serve` alike: flags,
//! `FRIEND_…` environment variables and an optional TOML file (`--config`), in this precedence:
//!
//! **flag > environment variable > file > default.**
//!
//! A value given as a flag wins; else its `FRIEND_…` variable; else the file's; else the default.
//! The effective configuration is printed at start ([`Settings::describe`]) without secrets: the
//! admin token only as where it came from, a PostgreSQL URL without its password.
//!
//! The file (every key optional; unknown keys are refused, so a typo is not silently ignored):
//!
//! ```toml
//! addr = "0.0.0.0:8080"
//! db = "postgres://friend:secret@db.internal:5432/friendcore?sslmode=require"
//! admin_token = "…"
//! dev_seed = false
//! drain_timeout_secs = 10
//!
//! [push.fcm]
//! credentials = "/etc/friendcore/fcm-service-account.json"
//!
//! [push.apns]
//! key = "/etc/friendcore/AuthKey_ABC123.p8"
//! key_id = "ABC123"
//! team_id = "TEAM123"
//! topic = "ch.friendcore.app"
//! sandbox = false
//! ```

use crate::push::{ApnsSettings, FcmSettings, PushArgs, PushSettings};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Defaults: loopback, a SQLite file in the working directory.
const DEFAULT_ADDR: &str = "127.0.0.1:8080";
const DEFAULT_DB: &str = "friendcore.db";

/// The serving flags (each also read from its `FRIEND_…` variable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// A TOML file with any of the settings below (flags and environment variables win over it).
    #[arg(long, env = "FRIEND_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080] (port 0: any free port). Plain HTTP: keep it
    /// on loopback or behind a TLS proxy.
    #[arg(long, env = "FRIEND_ADDR")]
    pub addr: Option<String>,
    /// SQLite database file (created when missing) [default: friendcore.db], or a PostgreSQL
    /// database several instances share: `postgres://user[:password]@host[:port]/dbname`.
    #[arg(long, env = "FRIEND_DB", hide_env_values = true)]
    pub db: Option<String>,
    /// Admin token for /v1/admin/* and /metrics; a random one is generated and printed when
    /// omitted.
    #[arg(long, env = "FRIEND_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Do not seed development accounts into a new database. Without it they are seeded only into
    /// a SQLite file served on loopback (their tokens are public: `dev-friend-anna`, …); a file's
    /// `dev_seed = true` seeds them anywhere.
    #[arg(long, env = "FRIEND_NO_DEV_SEED")]
    pub no_dev_seed: bool,
    /// Longest a graceful drain (SIGTERM, Ctrl-C) waits for requests in flight [default: 10].
    #[arg(long, env = "FRIEND_DRAIN_TIMEOUT_SECS", value_name = "SECS")]
    pub drain_timeout_secs: Option<u64>,
    /// Push gateways (FCM, APNs); none: pushes are counted, not sent.
    #[command(flatten)]
    pub push: PushArgs,
}

/// A configuration that cannot be used.
#[derive(Debug, Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file is not valid TOML or has a key or value this backend does not know.
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
}

impl SettingsError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            SettingsError::Read(..) => "config_unreadable",
            SettingsError::Parse(..) => "config_invalid",
        }
    }
}

/// The file's content.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    addr: Option<String>,
    db: Option<String>,
    admin_token: Option<String>,
    dev_seed: Option<bool>,
    drain_timeout_secs: Option<u64>,
    #[serde(default)]
    push: FilePush,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePush {
    fcm: Option<FileFcm>,
    apns: Option<FileApns>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFcm {
    credentials: PathBuf,
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApns {
    key: PathBuf,
    key_id: String,
    team_id: String,
    topic: String,
    url: Option<String>,
    #[serde(default)]
    sandbox: bool,
}

/// Where the admin token came from (never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `--admin-token` or `FRIEND_ADMIN_TOKEN`.
    FlagOrEnv,
    /// The file.
    File,
    /// None given: generated at start and printed once.
    Generated,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub addr: String,
    /// SQLite path or PostgreSQL URL.
    pub db: String,
    /// The admin token, when one was given.
    pub admin_token: Option<String>,
    /// Where it came from.
    pub admin_token_source: TokenSource,
    /// Seed development accounts into a new database.
    pub dev_seed: bool,
    /// Drain bound.
    pub drain_timeout: Duration,
    /// Push gateways.
    pub push: PushSettings,
    /// The file read, if any.
    pub file: Option<PathBuf>,
}

impl ServerArgs {
    /// The effective configuration: flag > environment variable > file > default.
    pub fn resolve(&self) -> Result<Settings, SettingsError> {
        let file = match &self.config {
            Some(path) => read(path)?,
            None => File::default(),
        };
        let (admin_token, admin_token_source) = match (&self.admin_token, file.admin_token) {
            (Some(t), _) => (Some(t.clone()), TokenSource::FlagOrEnv),
            (None, Some(t)) => (Some(t), TokenSource::File),
            (None, None) => (None, TokenSource::Generated),
        };
        let flags = self.push.settings();
        let fcm = flags.fcm.or(file.push.fcm.map(|f| FcmSettings {
            credentials: f.credentials,
            url: f.url,
        }));
        let apns = flags.apns.or(file.push.apns.map(|a| ApnsSettings {
            key: a.key,
            key_id: a.key_id,
            team_id: a.team_id,
            topic: a.topic,
            url: a.url,
            sandbox: a.sandbox,
        }));
        let addr = self
            .addr
            .clone()
            .or(file.addr)
            .unwrap_or_else(|| DEFAULT_ADDR.into());
        let db = self
            .db
            .clone()
            .or(file.db)
            .unwrap_or_else(|| DEFAULT_DB.into());
        // The development accounts' tokens are in this repository: by default they exist only
        // where nobody else reaches them, a SQLite file served on loopback.
        let private = is_loopback(&addr) && !crate::pg::is_postgres(&db);
        Ok(Settings {
            dev_seed: !self.no_dev_seed && file.dev_seed.unwrap_or(private),
            addr,
            db,
            admin_token,
            admin_token_source,
            drain_timeout: Duration::from_secs(
                self.drain_timeout_secs
                    .or(file.drain_timeout_secs)
                    .unwrap_or(crate::DRAIN_TIMEOUT.as_secs()),
            ),
            push: PushSettings {
                fcm,
                apns,
                ..PushSettings::default()
            },
            file: self.config.clone(),
        })
    }
}

/// Whether `addr` (`host:port`) listens on loopback only.
fn is_loopback(addr: &str) -> bool {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().is_loopback(),
        Err(_) => addr
            .rsplit_once(':')
            .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost")),
    }
}

fn read(path: &Path) -> Result<File, SettingsError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| SettingsError::Read(path.to_owned(), e))?;
    toml::from_str(&text).map_err(|e| SettingsError::Parse(path.to_owned(), e.to_string()))
}

impl Settings {
    /// The backend's [`crate::Config`] for these settings.
    pub fn config(&self) -> crate::Config {
        let mut config = crate::Config::new(&self.db);
        config.admin_token = self.admin_token.clone();
        config.seed_dev_data = self.dev_seed;
        config.drain_timeout = self.drain_timeout;
        config.push = self.push.clone();
        config
    }

    /// The effective configuration, one setting per line, without secrets.
    pub fn describe(&self) -> String {
        let token = match self.admin_token_source {
            TokenSource::FlagOrEnv => "given (flag or FRIEND_ADMIN_TOKEN)",
            TokenSource::File => "given (config file)",
            TokenSource::Generated => "generated (printed below)",
        };
        format!(
            "  config file:      {}\n  database:         {}\n  admin token:      {token}\n  dev seed:         {}\n  drain timeout:    {} s\n  push:             {}\n",
            self.file
                .as_ref()
                .map_or_else(|| "none".into(), |p| p.display().to_string()),
            crate::pg::describe(&self.db),
            if self.dev_seed {
                "on (new database)"
            } else {
                "off"
            },
            self.drain_timeout.as_secs(),
            self.push.describe(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }

    fn parse(args: &[&str]) -> ServerArgs {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("flags parse").server
    }

    fn file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("friend.toml");
        std::fs::write(&path, text).expect("write");
        let p = path.display().to_string();
        (dir, p)
    }

    #[test]
    fn defaults_without_flags_or_file() {
        let s = parse(&[]).resolve().expect("resolves");
        assert_eq!(s.addr, "127.0.0.1:8080");
        assert_eq!(s.db, "friendcore.db");
        assert_eq!(s.admin_token_source, TokenSource::Generated);
        assert!(s.dev_seed);
        assert_eq!(s.drain_timeout, Duration::from_secs(10));
    }

    #[test]
    fn a_flag_wins_over_the_file_and_the_file_over_the_default() {
        let (_dir, path) = file(
            "addr = \"0.0.0.0:9000\"\ndb = \"postgres://f:secret@db/x\"\nadmin_token = \"t-file\"\ndev_seed = false\ndrain_timeout_secs = 3\n[push.fcm]\ncredentials = \"/etc/fcm.json\"\n",
        );
        let s = parse(&["--config", &path, "--addr", "127.0.0.1:0"])
            .resolve()
            .expect("resolves");
        assert_eq!(s.addr, "127.0.0.1:0", "the flag wins");
        assert_eq!(
            s.db, "postgres://f:secret@db/x",
            "the file over the default"
        );
        assert_eq!(s.admin_token.as_deref(), Some("t-file"));
        assert_eq!(s.admin_token_source, TokenSource::File);
        assert!(!s.dev_seed);
        assert_eq!(s.drain_timeout, Duration::from_secs(3));
        assert!(s.push.fcm.is_some());
        let shown = s.describe();
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains("t-file"), "{shown}");
        assert!(shown.contains("postgres://f@db:5432/x"), "{shown}");
    }

    #[test]
    fn development_accounts_are_seeded_by_default_only_into_sqlite_on_loopback() {
        let seeds = |args: &[&str]| parse(args).resolve().expect("resolves").dev_seed;
        assert!(seeds(&[]));
        assert!(seeds(&["--addr", "[::1]:8080"]));
        assert!(seeds(&["--addr", "localhost:8080"]));
        assert!(
            !seeds(&["--addr", "0.0.0.0:8080"]),
            "reachable from elsewhere"
        );
        assert!(!seeds(&["--addr", "10.0.0.5:8080"]));
        assert!(!seeds(&["--db", "postgres://f@db/x"]), "a shared database");
        assert!(!seeds(&["--no-dev-seed"]));
        let (_dir, path) = file("dev_seed = true\n");
        assert!(
            seeds(&["--config", &path, "--addr", "0.0.0.0:8080"]),
            "asked for"
        );
        assert!(
            !seeds(&["--config", &path, "--no-dev-seed"]),
            "the flag wins"
        );
    }

    #[test]
    fn a_typo_in_the_file_is_a_typed_error() {
        let (_dir, path) = file("adress = \"0.0.0.0:9000\"\n");
        let e = parse(&["--config", &path]).resolve().expect_err("refused");
        assert_eq!(e.code(), "config_invalid");
        assert!(e.to_string().contains("adress"), "{e}");
        let e = parse(&["--config", "/nonexistent/friend.toml"])
            .resolve()
            .expect_err("refused");
        assert_eq!(e.code(), "config_unreadable");
    }
}
