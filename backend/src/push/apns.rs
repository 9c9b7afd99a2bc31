//! APNs over HTTP/2 with token-based auth: an ES256 provider token signed with the team's `.p8`
//! key, reused for [`TOKEN_LIFETIME`] (Apple accepts one for up to 60 min and refuses refreshes
//! more often than every 20 min), one `POST /3/device/{token}` per device.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;
use tokio::sync::Mutex;

use super::jwt::{pem_decode, sign_es256};
use super::{
    Answer, Outcome, PushError, PushMessage, exchange, http_client, retry_after, retry_after_given,
    short, token_tag,
};
use crate::clock::Clock;

/// Apple's production gateway.
pub const PRODUCTION_URL: &str = "https://api.push.apple.com";
/// Apple's development (sandbox) gateway.
pub const SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";
/// A provider token is replaced after this long (Apple: between 20 and 60 minutes).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(40 * 60);
/// A provider token is never replaced sooner than this, even when APNs refuses it.
pub const MIN_TOKEN_AGE: Duration = Duration::from_secs(20 * 60);
/// Longest `apns-collapse-id` APNs accepts, in bytes.
pub const MAX_COLLAPSE_ID_BYTES: usize = 64;

/// What the client needs to sign in and address the app.
#[derive(Clone)]
pub struct ApnsConfig {
    /// The `.p8` key: PKCS#8 PEM, P-256.
    pub key_pem: String,
    /// The key's id (JWT header `kid`).
    pub key_id: String,
    /// The developer team id (JWT claim `iss`).
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// [`PRODUCTION_URL`], [`SANDBOX_URL`], or a fake for tests.
    pub base_url: String,
}

impl std::fmt::Debug for ApnsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsConfig")
            .field("key_pem", &"<redacted>")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("topic", &self.topic)
            .field("base_url", &self.base_url)
            .finish()
    }
}

struct ProviderToken {
    jwt: String,
    issued_at: DateTime<Utc>,
}

/// An APNs sender for one key and app.
pub struct ApnsClient {
    http: reqwest::Client,
    key: EcdsaKeyPair,
    key_id: String,
    team_id: String,
    topic: String,
    base_url: String,
    clock: Arc<dyn Clock>,
    token: Mutex<Option<ProviderToken>>,
    signed: AtomicU64,
}

impl ApnsClient {
    /// A client for `config`.
    pub fn new(config: ApnsConfig, clock: Arc<dyn Clock>) -> Result<ApnsClient, PushError> {
        let der = pem_decode(&config.key_pem, "PRIVATE KEY")?;
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|e| PushError::Key(format!("APNs key: {e}")))?;
        let base_url = config.base_url.trim_end_matches('/').to_string();
        Ok(ApnsClient {
            http: http_client(&base_url, true)?,
            key,
            key_id: config.key_id,
            team_id: config.team_id,
            topic: config.topic,
            base_url,
            clock,
            token: Mutex::new(None),
            signed: AtomicU64::new(0),
        })
    }

    /// How many provider tokens were signed so far.
    pub fn tokens_signed(&self) -> u64 {
        self.signed.load(Ordering::Relaxed)
    }

    /// Sends `message` to one device. A refused provider token (403 `ExpiredProviderToken` or
    /// `InvalidProviderToken`) is replaced once — if it is at least [`MIN_TOKEN_AGE`] old, since
    /// Apple refuses more frequent refreshes — and the push retried once; otherwise, or when the
    /// new one is refused too, the result is [`Outcome::AuthFailed`].
    pub async fn send(
        &self,
        device_token: &str,
        message: &PushMessage,
    ) -> Result<Outcome, PushError> {
        if message.collapse_key.len() > MAX_COLLAPSE_ID_BYTES {
            return Err(PushError::InvalidMessage(format!(
                "apns-collapse-id is {} bytes, at most {MAX_COLLAPSE_ID_BYTES}",
                message.collapse_key.len()
            )));
        }
        if device_token.is_empty()
            || device_token.len() > 200
            || !device_token.bytes().all(|b| b.is_ascii_hexdigit())
        {
            // Not an APNs token at all (hex): it can never be delivered.
            tracing::debug!(device = %token_tag(device_token), "malformed APNs device token");
            return Ok(Outcome::DeadToken);
        }
        let url = format!("{}/3/device/{device_token}", self.base_url);
        let body = payload(message);
        let mut stale: Option<String> = None;
        loop {
            let Some(jwt) = self.provider_token(stale.as_deref()).await? else {
                tracing::error!("APNs refused a provider token younger than 20 min");
                return Ok(Outcome::AuthFailed);
            };
            let now = self.clock.now();
            let expiration =
                now.timestamp() + i64::try_from(message.ttl.as_secs()).unwrap_or(i64::MAX / 2);
            let mut request = self
                .http
                .post(&url)
                .header(reqwest::header::AUTHORIZATION, format!("bearer {jwt}"))
                .header("apns-push-type", "alert")
                .header("apns-priority", "10")
                .header("apns-expiration", expiration.to_string())
                .header("apns-topic", &self.topic)
                .json(&body);
            if !message.collapse_key.is_empty() {
                request = request.header("apns-collapse-id", &message.collapse_key);
            }
            let Answer {
                status,
                headers,
                text,
            } = exchange(request).await?;
            let reason = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_string))
                .unwrap_or_default();
            let outcome = match (status.as_u16(), reason.as_str()) {
                (200, _) => Outcome::Delivered,
                (410, _) | (400, "BadDeviceToken") => Outcome::DeadToken,
                (403, "ExpiredProviderToken" | "InvalidProviderToken") => {
                    if stale.is_none() {
                        tracing::info!(%reason, "APNs refused the provider token; replacing it");
                        stale = Some(jwt);
                        continue;
                    }
                    tracing::error!(%reason, "APNs refused a fresh provider token");
                    Outcome::AuthFailed
                }
                // Apple: "too many requests were made consecutively to the same device token".
                (429, _) => Outcome::RetryDevice(retry_after_given(&headers, now)),
                (500 | 502 | 503 | 504, _) => Outcome::RetryAfter(retry_after(&headers, now)),
                _ => Outcome::Failed(short(&format!("{status} {reason}"))),
            };
            tracing::debug!(device = %token_tag(device_token), ?outcome, "apns send");
            return Ok(outcome);
        }
    }

    /// The current provider token; a new one when none exists, it is older than
    /// [`TOKEN_LIFETIME`], or it is `stale` (refused) and at least [`MIN_TOKEN_AGE`] old.
    /// `None` when it was refused but is too young to be replaced.
    async fn provider_token(&self, stale: Option<&str>) -> Result<Option<String>, PushError> {
        let mut current = self.token.lock().await;
        let now = self.clock.now();
        if let Some(t) = current.as_ref() {
            let age = (now - t.issued_at).to_std().unwrap_or(Duration::ZERO);
            let refused = stale == Some(t.jwt.as_str());
            if refused && age < MIN_TOKEN_AGE {
                return Ok(None);
            }
            if !refused && age < TOKEN_LIFETIME {
                return Ok(Some(t.jwt.clone()));
            }
        }
        let header = json!({ "alg": "ES256", "kid": self.key_id });
        let claims = json!({ "iss": self.team_id, "iat": now.timestamp() });
        let jwt = sign_es256(&self.key, &header, &claims)?;
        self.signed.fetch_add(1, Ordering::Relaxed);
        *current = Some(ProviderToken {
            jwt: jwt.clone(),
            issued_at: now,
        });
        Ok(Some(jwt))
    }
}

/// The APNs JSON payload: a visible alert and the data map as top-level keys.
pub fn payload(message: &PushMessage) -> serde_json::Value {
    let mut body = json!({
        "aps": {
            "alert": { "title": message.title, "body": message.body },
            "sound": "default",
        }
    });
    for (k, v) in &message.data {
        if k != "aps" {
            body[k] = json!(v);
        }
    }
    body
}
