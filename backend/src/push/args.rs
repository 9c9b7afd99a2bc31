//! The push flags `friend-backend` and `friendctl serve` share, each also read from a `FRIEND_…`
//! environment variable of the same name (flag first). With none given, pushes are counted and
//! not sent.

use super::dispatch::{ApnsSettings, FcmSettings, PushSettings};
use std::path::PathBuf;

/// Push gateway flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PushArgs {
    /// FCM HTTP v1: the Firebase service-account JSON file.
    #[arg(long, env = "FRIEND_FCM_CREDENTIALS", value_name = "FILE")]
    pub fcm_credentials: Option<PathBuf>,
    /// FCM gateway base URL (tests, staging).
    #[arg(
        long,
        env = "FRIEND_FCM_URL",
        value_name = "URL",
        requires = "fcm_credentials"
    )]
    pub fcm_url: Option<String>,
    /// APNs: the token-auth signing key (.p8).
    #[arg(long, env = "FRIEND_APNS_KEY", value_name = "FILE.p8",
        requires_all = ["apns_key_id", "apns_team_id", "apns_topic"])]
    pub apns_key: Option<PathBuf>,
    /// APNs: the key's id.
    #[arg(
        long,
        env = "FRIEND_APNS_KEY_ID",
        value_name = "ID",
        requires = "apns_key"
    )]
    pub apns_key_id: Option<String>,
    /// APNs: the Apple developer team id.
    #[arg(
        long,
        env = "FRIEND_APNS_TEAM_ID",
        value_name = "ID",
        requires = "apns_key"
    )]
    pub apns_team_id: Option<String>,
    /// APNs: the app's bundle id (apns-topic).
    #[arg(
        long,
        env = "FRIEND_APNS_TOPIC",
        value_name = "BUNDLE_ID",
        requires = "apns_key"
    )]
    pub apns_topic: Option<String>,
    /// APNs gateway base URL (tests, staging), for both environments.
    #[arg(
        long,
        env = "FRIEND_APNS_URL",
        value_name = "URL",
        requires = "apns_key"
    )]
    pub apns_url: Option<String>,
    /// Send every APNs push to Apple's sandbox (a backend for development builds only).
    #[arg(long, env = "FRIEND_APNS_SANDBOX", requires = "apns_key")]
    pub apns_sandbox: bool,
}

impl PushArgs {
    /// The settings these flags describe.
    pub fn settings(&self) -> PushSettings {
        let apns = match (
            &self.apns_key,
            &self.apns_key_id,
            &self.apns_team_id,
            &self.apns_topic,
        ) {
            (Some(key), Some(key_id), Some(team_id), Some(topic)) => Some(ApnsSettings {
                key: key.clone(),
                key_id: key_id.clone(),
                team_id: team_id.clone(),
                topic: topic.clone(),
                url: self.apns_url.clone(),
                sandbox: self.apns_sandbox,
            }),
            _ => None,
        };
        PushSettings {
            fcm: self.fcm_credentials.clone().map(|credentials| FcmSettings {
                credentials,
                url: self.fcm_url.clone(),
            }),
            apns,
            ..PushSettings::default()
        }
    }
}

impl PushSettings {
    /// One line for the start-up banner: which gateways are configured (no secrets).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(f) = &self.fcm {
            parts.push(format!(
                "FCM ({}) with {}",
                f.url.as_deref().unwrap_or(super::dispatch::FCM_URL),
                f.credentials.display()
            ));
        }
        if let Some(a) = &self.apns {
            let url = a.url.as_deref().unwrap_or(if a.sandbox {
                super::dispatch::APNS_SANDBOX_URL
            } else {
                super::dispatch::APNS_URL
            });
            parts.push(format!(
                "APNs ({url}) topic {} key id {}",
                a.topic, a.key_id
            ));
        }
        if parts.is_empty() {
            "none configured: pushes are counted, not sent (see --fcm-credentials, --apns-key)"
                .to_string()
        } else {
            parts.join("; ")
        }
    }
}
