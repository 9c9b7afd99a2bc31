//! Platform push (SPEC §5): who is pushed ([`plan`], queued in the transaction of the change),
//! what a push says without personal data ([`content`]), the dispatcher that drains the queue
//! ([`dispatch`]), and small own clients for FCM HTTP v1 ([`fcm::FcmClient`]) and APNs over HTTP/2
//! with token auth ([`apns::ApnsClient`]) with one [`Outcome`] for both.
//!
//! Secrets (keys, access and provider tokens) and device tokens are never logged; a device token
//! appears in logs only as [`token_tag`], a short hash.

pub mod apns;
mod args;
pub mod content;
pub mod dispatch;
pub mod fcm;
mod jwt;
pub mod plan;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use args::PushArgs;
pub use dispatch::{ApnsSettings, Dispatcher, FcmSettings, PushCounts, PushSettings};

/// Back-off when a gateway asks for one (429, 503, …) without a usable `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Longest `Retry-After` honoured; a larger one is capped (the dispatcher retries later anyway).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Timeout of one request to a gateway or a token endpoint.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What happened to one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The gateway accepted it.
    Delivered,
    /// The device token is no longer valid (FCM `UNREGISTERED` or a token-level
    /// `INVALID_ARGUMENT`; APNs 410 `Unregistered` or 400 `BadDeviceToken`): delete it. A bare
    /// 404 is not this: a wrong gateway URL answers it for every token.
    DeadToken,
    /// The gateway is overloaded or failed transiently (429, 500, 502, 503, 504, `UNAVAILABLE`,
    /// `INTERNAL`): this platform's pushes wait this long (its `Retry-After`, or
    /// [`DEFAULT_RETRY_AFTER`]).
    RetryAfter(Duration),
    /// Too many pushes to this one device (APNs 429 `TooManyRequests`): only this push waits —
    /// its `Retry-After` if given, else a back-off growing with its attempts; the others go on.
    RetryDevice(Option<Duration>),
    /// Our credential was refused, after one refresh and one retry: keep the push queued and
    /// alert an operator.
    AuthFailed,
    /// Anything else the gateway answered (status and reason, never the device token).
    Failed(String),
}

/// A local failure: the push could not be attempted, or no answer came back.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The credentials file could not be read or parsed.
    #[error("push credentials: {0}")]
    Credentials(String),
    /// The private key is not a usable PKCS#8 key of the right kind.
    #[error("push key: {0}")]
    Key(String),
    /// The message breaks a gateway rule (e.g. an APNs collapse id over 64 bytes).
    #[error("invalid push message: {0}")]
    InvalidMessage(String),
    /// Signing failed.
    #[error("signing failed")]
    Signing,
    /// The HTTP client could not be built, or the request got no answer (connection, timeout).
    #[error("push transport: {0}")]
    Transport(String),
    /// The gateway or token endpoint answered something that could not be read.
    #[error("unexpected push response: {0}")]
    Protocol(String),
}

impl PushError {
    /// Stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            PushError::Credentials(_) => "push_credentials",
            PushError::Key(_) => "push_key",
            PushError::InvalidMessage(_) => "push_invalid_message",
            PushError::Signing => "push_signing",
            PushError::Transport(_) => "push_transport",
            PushError::Protocol(_) => "push_protocol",
        }
    }
}

/// One push, independent of the platform: a visible notification plus a data map for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessage {
    /// Notification title.
    pub title: String,
    /// Notification body.
    pub body: String,
    /// Data for the app (FCM `data`, top-level keys of the APNs payload).
    pub data: BTreeMap<String, String>,
    /// Coalescing key (FCM `collapse_key`, APNs `apns-collapse-id`, ≤ 64 bytes there).
    pub collapse_key: String,
    /// How long the gateway may hold the push for an offline device.
    pub ttl: Duration,
}

/// A short, non-reversible tag of a device token for logs (first 8 hex digits of its SHA-256).
pub fn token_tag(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The HTTP client both gateways use: rustls on ring with the bundled Mozilla roots. `http://`
/// bases (tests, local fakes on loopback) speak HTTP/2 with prior knowledge when `h2_only`; over
/// TLS, ALPN negotiates HTTP/2 (APNs offers only `h2`).
pub(crate) fn http_client(base_url: &str, h2_only: bool) -> Result<reqwest::Client, PushError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PushError::Transport(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = if h2_only {
        vec![b"h2".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(10))
        .timeout(REQUEST_TIMEOUT);
    if h2_only && base_url.starts_with("http://") {
        builder = builder.http2_prior_knowledge();
    }
    builder
        .build()
        .map_err(|e| PushError::Transport(e.to_string()))
}

/// A gateway's answer: what a send's outcome is decided on.
pub(crate) struct Answer {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The headers (`Retry-After`).
    pub headers: reqwest::header::HeaderMap,
    /// The body; empty when it could not be read (the status decides then).
    pub text: String,
}

/// Sends `request` and reads the answer. A transport error never names the URL: for APNs it holds
/// the device token.
pub(crate) async fn exchange(request: reqwest::RequestBuilder) -> Result<Answer, PushError> {
    let response = request
        .send()
        .await
        .map_err(|e| PushError::Transport(e.without_url().to_string()))?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Ok(Answer {
        status,
        headers,
        text,
    })
}

/// Reads a `Retry-After` header (delay-seconds or an HTTP date), capped at [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Duration {
    retry_after_given(headers, now).unwrap_or(DEFAULT_RETRY_AFTER)
}

/// The gateway's `Retry-After`, when it sent one (seconds or an HTTP date; at most
/// [`MAX_RETRY_AFTER`]).
pub(crate) fn retry_after_given(
    headers: &reqwest::header::HeaderMap,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)?;
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(at) = DateTime::parse_from_rfc2822(value) {
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
    } else {
        return None;
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// Trims a gateway's reason for [`Outcome::Failed`] and logs (never holds the device token,
/// which is not part of any response body the gateways send).
pub(crate) fn short(s: &str) -> String {
    s.chars().take(200).collect()
}
