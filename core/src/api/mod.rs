//! The backend client: reqwest over rustls/ring ([`tls`]), plain HTTP only to loopback, gzip,
//! connect and read timeouts, the bearer token read from the host's provider for every request
//! (never stored, never logged), and every transport, status and JSON failure mapped to a typed
//! [`CoreError`].

pub mod tls;

use crate::error::{CoreError, CoreResult};
use crate::secrets::SecretsProvider;
use friend_protocol::{AcceptOutcome, ApiError, Catalog, ErrorCode, JobId, Me, Role, SyncPage};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How to reach the backend.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Base URL, e.g. `https://api.example.ch` (plain `http://` only for loopback hosts).
    pub base_url: String,
    /// Optional SPKI SHA-256 pins (base64) of the backend's key; empty: the root store alone decides.
    pub pins: Vec<String>,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of an ordinary request (long-polls add their wait to it).
    pub request_timeout: Duration,
    /// The role the token must belong to. When set, the client's first request is preceded by
    /// `GET /v1/me`, and a token of another role fails every request with
    /// [`CoreError::WrongRole`] before it is sent, so nothing of that account is synced or cached.
    /// The session constructors set it; `None` (the default) accepts any role.
    pub role: Option<Role>,
}

impl ApiConfig {
    /// Defaults: 5 s to connect, 15 s per request, no pins.
    pub fn new(base_url: impl Into<String>) -> ApiConfig {
        ApiConfig {
            base_url: base_url.into(),
            pins: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            role: None,
        }
    }
}

/// The HTTP client of one session.
pub struct Api {
    client: reqwest::Client,
    base: Url,
    secrets: Arc<dyn SecretsProvider>,
    request_timeout: Duration,
    bytes_received: AtomicU64,
    role: Option<Role>,
    role_confirmed: AtomicBool,
    /// Held while the role is being confirmed, so concurrent first requests ask once.
    confirming: tokio::sync::Mutex<()>,
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Api {
    /// A client for `config`, refusing plain HTTP to anything but loopback.
    pub fn new(config: &ApiConfig, secrets: Arc<dyn SecretsProvider>) -> CoreResult<Api> {
        let mut base = Url::parse(&config.base_url)
            .map_err(|e| CoreError::InvalidUrl(format!("{}: {e}", config.base_url)))?;
        match base.scheme() {
            "https" => {}
            "http" if is_loopback(&base) => {}
            "http" => {
                return Err(CoreError::InvalidUrl(format!(
                    "plain http is only allowed to loopback, not {}",
                    base.host_str().unwrap_or("?")
                )));
            }
            other => return Err(CoreError::InvalidUrl(format!("unsupported scheme {other}"))),
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls::client_config(&config.pins)?)
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.request_timeout)
            // Shorter than the reference backend's 30 s for a connection's next request: a pooled
            // connection is dropped here before the server closes it, never reused as it closes.
            .pool_idle_timeout(POOL_IDLE)
            .gzip(true)
            .user_agent(concat!("friendcore/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CoreError::Tls(e.to_string()))?;
        Ok(Api {
            client,
            base,
            secrets,
            request_timeout: config.request_timeout,
            bytes_received: AtomicU64::new(0),
            role: config.role,
            role_confirmed: AtomicBool::new(false),
            confirming: tokio::sync::Mutex::new(()),
        })
    }

    /// Response body bytes received so far (sync traffic accounting).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    /// One request, once the token's role is confirmed.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        key: Option<&str>,
        extra_wait: Duration,
    ) -> CoreResult<T> {
        self.confirm_role().await?;
        self.send(method, path, body, key, extra_wait).await
    }

    /// Asks the backend who the token is, once per client, when a role is expected.
    async fn confirm_role(&self) -> CoreResult<()> {
        if self.role.is_none() || self.role_confirmed.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one_at_a_time = self.confirming.lock().await;
        if self.role_confirmed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.me().await.map(|_| ()).map_err(|e| match e {
            // Whatever happened to the question, the caller's own request never left.
            CoreError::Offline { message, .. } => CoreError::offline(message, false),
            other => other,
        })
    }

    /// `Ok` when the account is of the expected role (and remembers that), else `WrongRole`.
    fn check_role(&self, me: &Me) -> CoreResult<()> {
        let Some(expected) = self.role else {
            return Ok(());
        };
        let actual = match me {
            Me::Friend(_) => Role::Friend,
            Me::Customer(_) => Role::Customer,
            Me::Unknown => Role::Unknown,
        };
        if actual != expected {
            return Err(CoreError::WrongRole { expected, actual });
        }
        self.role_confirmed.store(true, Ordering::Release);
        Ok(())
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        key: Option<&str>,
        extra_wait: Duration,
    ) -> CoreResult<T> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| CoreError::InvalidUrl(e.to_string()))?;
        let token = self.secrets.access_token()?;
        // The provider is asked per request: a malformed answer is named, not a transport failure.
        crate::secrets::check_token(&token)?;
        let mut req = self
            .client
            .request(method, url)
            .bearer_auth(token)
            .timeout(self.request_timeout + extra_wait);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = read_bounded(resp).await?;
        self.bytes_received
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| CoreError::InvalidResponse(e.to_string()));
        }
        Err(status_error(status, &bytes))
    }

    /// One sync page after `cursor` (none: a snapshot), long-polling up to `wait_secs`.
    pub async fn sync(
        &self,
        cursor: Option<&str>,
        wait_secs: u32,
        limit: u32,
    ) -> CoreResult<SyncPage> {
        let mut path = format!("v1/sync?wait={wait_secs}&limit={limit}");
        if let Some(c) = cursor {
            path.push_str("&cursor=");
            path.push_str(&percent_encode(c));
        }
        self.call(
            Method::GET,
            &path,
            None,
            None,
            Duration::from_secs(u64::from(wait_secs)),
        )
        .await
    }

    /// Accepts a job under an idempotency key.
    pub async fn accept(&self, job: JobId, key: &str) -> CoreResult<AcceptOutcome> {
        let empty = serde_json::json!({});
        self.call(
            Method::POST,
            &format!("v1/friend/jobs/{job}/accept"),
            Some(&empty),
            Some(key),
            Duration::ZERO,
        )
        .await
    }

    /// The stored outcome of an accept sent with `key`; `None` when it was never applied.
    pub async fn accept_outcome(&self, key: &str) -> CoreResult<Option<AcceptOutcome>> {
        match self
            .call(
                Method::GET,
                &format!("v1/friend/accepts/{}", percent_encode(key)),
                None,
                None,
                Duration::ZERO,
            )
            .await
        {
            Ok(o) => Ok(Some(o)),
            Err(CoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// POSTs an action (outbox delivery) and returns the JSON answer.
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        key: &str,
    ) -> CoreResult<serde_json::Value> {
        self.call(Method::POST, path, Some(body), Some(key), Duration::ZERO)
            .await
    }

    /// GETs `path` and parses the answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> CoreResult<T> {
        self.call(Method::GET, path, None, None, Duration::ZERO)
            .await
    }

    /// The service catalog.
    pub async fn catalog(&self) -> CoreResult<Catalog> {
        self.call(Method::GET, "v1/catalog", None, None, Duration::ZERO)
            .await
    }

    /// The account's own profile; [`CoreError::WrongRole`] when a role is expected and the account
    /// has another (its profile is not returned, so it cannot be cached).
    pub async fn me(&self) -> CoreResult<Me> {
        let me = self
            .send(Method::GET, "v1/me", None, None, Duration::ZERO)
            .await?;
        self.check_role(&me)?;
        Ok(me)
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The largest answer read (a full sync page of 1,000 jobs is a few MB): a server that sends more —
/// or a small body that inflates to more — is an invalid response, not the phone's memory.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// Reads an answer's body, decompressed, up to [`MAX_ANSWER_BYTES`].
async fn read_bounded(mut resp: reqwest::Response) -> CoreResult<Vec<u8>> {
    let too_large = || {
        CoreError::InvalidResponse(format!(
            "the answer is larger than {} MiB",
            MAX_ANSWER_BYTES >> 20
        ))
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| CoreError::offline(format!("reading the answer: {e}"), true))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// How long an idle pooled connection is kept (see [`Api::new`]'s client).
const POOL_IDLE: Duration = Duration::from_secs(20);

fn transport(e: reqwest::Error) -> CoreError {
    // A failed connect means the request never left; anything later may have reached the server.
    let maybe_delivered = !e.is_connect();
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "transport"
    };
    // reqwest's Display includes the URL but never headers, so the token cannot leak here.
    CoreError::offline(format!("{what}: {e}"), maybe_delivered)
}

fn status_error(status: StatusCode, body: &[u8]) -> CoreError {
    let parsed: Option<ApiError> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_else(|| format!("HTTP {status}"));
    match status {
        StatusCode::UNAUTHORIZED => CoreError::Unauthorized(message),
        StatusCode::FORBIDDEN => CoreError::Forbidden(message),
        StatusCode::NOT_FOUND => CoreError::NotFound(message),
        // The body did not arrive in time (a weak signal): nothing was done, send it again.
        StatusCode::REQUEST_TIMEOUT => CoreError::offline(message, false),
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
            CoreError::ServerUnavailable(message)
        }
        _ => match parsed {
            Some(e) => CoreError::Refused {
                code: e.code,
                message: e.message,
            },
            None => CoreError::InvalidResponse(format!("HTTP {status} without an error body")),
        },
    }
}

impl CoreError {
    /// The server's error code for refusals.
    pub fn server_code(&self) -> Option<ErrorCode> {
        match self {
            CoreError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::StaticSecrets;

    fn api(url: &str) -> CoreResult<Api> {
        Api::new(
            &ApiConfig::new(url),
            Arc::new(StaticSecrets::new("t", [0; 32])),
        )
    }

    #[tokio::test]
    async fn an_answer_over_the_bound_is_an_invalid_response() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_ANSWER_BYTES));
        let (url, _) = crate::testing::fake_backend(move |_, _| ("200 OK", big.clone())).await;
        let e = api(&url).unwrap().catalog().await.unwrap_err();
        assert!(matches!(e, CoreError::InvalidResponse(_)), "{e:?}");
        assert!(e.to_string().contains("larger than 32 MiB"), "{e}");
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
            "https://api.example.ch",
        ] {
            assert!(api(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.example.ch",
            "http://10.0.0.1:8080",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            assert_eq!(
                api(bad).err().map(|e| e.code()),
                Some("invalid_url"),
                "{bad}"
            );
        }
    }

    #[test]
    fn statuses_map_to_typed_errors() {
        let body = br#"{"code":"invalid_transition","message":"no"}"#;
        assert!(matches!(
            status_error(StatusCode::CONFLICT, body),
            CoreError::Refused {
                code: ErrorCode::InvalidTransition,
                ..
            }
        ));
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, b""),
            CoreError::Unauthorized(_)
        ));
        assert!(matches!(
            status_error(StatusCode::BAD_GATEWAY, b"<html>"),
            CoreError::ServerUnavailable(_)
        ));
        assert!(matches!(
            status_error(StatusCode::BAD_REQUEST, b"<html>"),
            CoreError::InvalidResponse(_)
        ));
        // Not applied: retried like a request that never left, never set aside as refused.
        let late = br#"{"code":"request_timeout","message":"slow body"}"#;
        assert!(matches!(
            status_error(StatusCode::REQUEST_TIMEOUT, late),
            CoreError::Offline {
                maybe_delivered: false,
                ..
            }
        ));
        let gone = br#"{"code":"cursor_too_old","message":"resync"}"#;
        assert_eq!(
            status_error(StatusCode::GONE, gone).server_code(),
            Some(ErrorCode::CursorTooOld)
        );
    }
}
