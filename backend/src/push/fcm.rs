//! FCM HTTP v1: a Google service account signs an RS256 JWT assertion, exchanges it at the
//! account's `token_uri` for an OAuth access token (cached until shortly before it expires, as
//! Google's own libraries do), and sends one `messages:send` per device token.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use ring::signature::RsaKeyPair;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::jwt::{pem_decode, sign_rs256};
use super::{
    Answer, Outcome, PushError, PushMessage, exchange, http_client, retry_after, short, token_tag,
};
use crate::clock::Clock;

/// The production FCM endpoint.
pub const DEFAULT_BASE_URL: &str = "https://fcm.googleapis.com";
/// The OAuth scope for sending.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// An access token is replaced this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Lifetime asked for in the assertion (Google's maximum).
const ASSERTION_LIFETIME_S: i64 = 3600;
/// FCM's longest TTL (4 weeks).
const MAX_TTL_S: u64 = 28 * 24 * 3600;
const JWT_BEARER_FORM: &str =
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";

/// The fields of a Google service-account JSON file this client uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    /// The account's e-mail: the assertion's issuer.
    pub client_email: String,
    /// PKCS#8 PEM RSA key.
    pub private_key: String,
    /// Id of that key (the JWT `kid`), when the file has it.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// Where the assertion is exchanged for an access token.
    pub token_uri: String,
    /// The Firebase project.
    pub project_id: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key", &"<redacted>")
            .field("token_uri", &self.token_uri)
            .field("project_id", &self.project_id)
            .finish()
    }
}

impl ServiceAccount {
    /// Parses the JSON text of a service-account file.
    pub fn from_json(text: &str) -> Result<ServiceAccount, PushError> {
        serde_json::from_str(text).map_err(|e| {
            // serde's message names the field or position, never the values.
            PushError::Credentials(format!("service account JSON: {e}"))
        })
    }

    /// Reads and parses a service-account file.
    pub fn from_file(path: &Path) -> Result<ServiceAccount, PushError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PushError::Credentials(format!("{}: {e}", path.display())))?;
        ServiceAccount::from_json(&text)
    }
}

struct AccessToken {
    token: String,
    refresh_at: DateTime<Utc>,
}

/// Whether a send is finished or the credential was refused.
enum Verdict {
    Done(Outcome),
    Auth,
}

/// An FCM HTTP v1 sender for one service account.
pub struct FcmClient {
    http: reqwest::Client,
    account: ServiceAccount,
    key: RsaKeyPair,
    send_url: String,
    clock: Arc<dyn Clock>,
    cached: Mutex<Option<AccessToken>>,
    exchanges: AtomicU64,
}

impl FcmClient {
    /// A client for `account`, sending to `base_url` ([`DEFAULT_BASE_URL`] in production).
    pub fn new(
        account: ServiceAccount,
        base_url: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<FcmClient, PushError> {
        let der = pem_decode(&account.private_key, "PRIVATE KEY")?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| PushError::Key(format!("service account key: {e}")))?;
        let base = base_url.trim_end_matches('/');
        Ok(FcmClient {
            http: http_client(base, false)?,
            send_url: format!("{base}/v1/projects/{}/messages:send", account.project_id),
            account,
            key,
            clock,
            cached: Mutex::new(None),
            exchanges: AtomicU64::new(0),
        })
    }

    /// How many access tokens were fetched so far.
    pub fn token_exchanges(&self) -> u64 {
        self.exchanges.load(Ordering::Relaxed)
    }

    /// Sends `message` to one device. An auth failure (401/403) replaces the access token once and
    /// retries once before it is reported as [`Outcome::AuthFailed`].
    pub async fn send(
        &self,
        device_token: &str,
        message: &PushMessage,
    ) -> Result<Outcome, PushError> {
        let body = message_body(device_token, message);
        let mut stale: Option<String> = None;
        loop {
            let token = match self.access_token(stale.as_deref()).await? {
                Ok(t) => t,
                Err(outcome) => return Ok(outcome),
            };
            let Answer {
                status,
                headers,
                text,
            } = exchange(
                self.http
                    .post(&self.send_url)
                    .bearer_auth(&token)
                    .json(&body),
            )
            .await?;
            match classify(status, &headers, &text, self.clock.now()) {
                Verdict::Done(outcome) => {
                    tracing::debug!(device = %token_tag(device_token), ?outcome, "fcm send");
                    return Ok(outcome);
                }
                Verdict::Auth if stale.is_none() => {
                    tracing::info!(%status, "fcm refused the access token; fetching a new one");
                    stale = Some(token);
                }
                Verdict::Auth => {
                    tracing::error!(%status, "fcm refused a fresh access token");
                    return Ok(Outcome::AuthFailed);
                }
            }
        }
    }

    /// The cached access token, or a new one when it is due, missing, or is `stale` (refused).
    /// `Err(outcome)` when the token endpoint refused (auth) or is unavailable (retry).
    async fn access_token(
        &self,
        stale: Option<&str>,
    ) -> Result<Result<String, Outcome>, PushError> {
        let mut cached = self.cached.lock().await;
        let now = self.clock.now();
        if let Some(t) = cached.as_ref()
            && now < t.refresh_at
            && stale != Some(t.token.as_str())
        {
            return Ok(Ok(t.token.clone()));
        }
        let mut header = json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.account.private_key_id {
            header["kid"] = json!(kid);
        }
        let iat = now.timestamp();
        let claims = json!({
            "iss": self.account.client_email,
            "scope": SCOPE,
            "aud": self.account.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_S,
        });
        let assertion = sign_rs256(&self.key, &header, &claims)?;
        self.exchanges.fetch_add(1, Ordering::Relaxed);
        let Answer {
            status,
            headers,
            text,
        } = exchange(
            self.http
                .post(&self.account.token_uri)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(format!("{JWT_BEARER_FORM}{assertion}")),
        )
        .await?;
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Ok(Err(Outcome::RetryAfter(retry_after(&headers, now))));
        }
        if !status.is_success() {
            // The body is an OAuth error ("invalid_grant", …) — safe to log, holds no secret.
            tracing::error!(%status, body = %short(&text), "fcm token exchange refused");
            return Ok(Err(Outcome::AuthFailed));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            expires_in: u64,
        }
        let parsed: TokenResponse = serde_json::from_str(&text)
            .map_err(|e| PushError::Protocol(format!("token response: {e}")))?;
        let lifetime = Duration::from_secs(parsed.expires_in);
        let keep = if lifetime > REFRESH_MARGIN * 2 {
            lifetime - REFRESH_MARGIN
        } else {
            lifetime / 2
        };
        let refresh_at =
            now + chrono::Duration::from_std(keep).unwrap_or_else(|_| chrono::Duration::zero());
        let token = parsed.access_token;
        *cached = Some(AccessToken {
            token: token.clone(),
            refresh_at,
        });
        Ok(Ok(token))
    }
}

/// The `messages:send` body: a visible notification, the data map, Android priority high, TTL
/// and collapse key.
pub fn message_body(device_token: &str, message: &PushMessage) -> serde_json::Value {
    let ttl = message.ttl.as_secs().min(MAX_TTL_S);
    let mut body = json!({
        "message": {
            "token": device_token,
            "notification": { "title": message.title, "body": message.body },
            "data": message.data,
            "android": { "priority": "HIGH", "ttl": format!("{ttl}s") },
        }
    });
    if !message.collapse_key.is_empty() {
        body["message"]["android"]["collapse_key"] = json!(message.collapse_key);
    }
    body
}

/// Maps an FCM answer to an outcome.
fn classify(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    now: DateTime<Utc>,
) -> Verdict {
    if status.is_success() {
        return Verdict::Done(Outcome::Delivered);
    }
    let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let error = &parsed["error"];
    let api_status = error["status"].as_str().unwrap_or("");
    let details = error["details"].as_array().cloned().unwrap_or_default();
    let fcm_code = details
        .iter()
        .find_map(|d| d["errorCode"].as_str())
        .unwrap_or("");
    let token_field = details.iter().any(|d| {
        d["fieldViolations"].as_array().is_some_and(|v| {
            v.iter()
                .any(|f| f["field"].as_str() == Some("message.token"))
        })
    }) || error["message"]
        .as_str()
        .is_some_and(|m| m.contains("registration token"));
    let code = if fcm_code.is_empty() {
        api_status
    } else {
        fcm_code
    };
    let outcome = match (status.as_u16(), code) {
        // Only FCM's own word: a bare 404 (a wrong --fcm-url, a proxy's page) would otherwise
        // forget every device it was asked about.
        (_, "UNREGISTERED") => Outcome::DeadToken,
        (400, "INVALID_ARGUMENT") if token_field => Outcome::DeadToken,
        (429 | 500 | 502 | 503 | 504, _) | (_, "UNAVAILABLE" | "INTERNAL" | "QUOTA_EXCEEDED") => {
            Outcome::RetryAfter(retry_after(headers, now))
        }
        // The token belongs to another sender: a configuration error a new access token cannot fix.
        (403, "SENDER_ID_MISMATCH") => Outcome::Failed(format!("{status} SENDER_ID_MISMATCH")),
        (401 | 403, _) => return Verdict::Auth,
        _ => Outcome::Failed(short(&format!("{status} {code}"))),
    };
    Verdict::Done(outcome)
}
