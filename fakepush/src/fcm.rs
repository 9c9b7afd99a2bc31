//! The fake FCM HTTP v1 gateway, HTTP/1.1 on loopback:
//!
//! - `POST /token`, the OAuth token endpoint a service account's `token_uri` points at: verifies the
//!   JWT-bearer assertion (grant type; RS256 signature against [`PUBLIC_KEY_PEM`]; `iss` =
//!   [`CLIENT_EMAIL`], `aud` = this token URI, `scope` = [`SCOPE`], `exp - iat` = 3600) and issues
//!   access tokens `ya29.test-access-0`, `-1`, … Refusals are 400 `invalid_grant`, as Google's.
//!   Token requests are counted ([`FakeFcm::access_tokens_issued`], [`FakeFcm::refused_assertions`]),
//!   not recorded as requests, and never held.
//! - `POST /v1/projects/{project}/messages:send`: every request is recorded; an access token this
//!   fake did not issue is 401 `UNAUTHENTICATED`, another project 403 `PERMISSION_DENIED`, a body
//!   without `message.token` 400 `INVALID_ARGUMENT`; otherwise the scripted reply or 200
//!   `{"name": "projects/{project}/messages/{n}"}`. Any other path is 404 `NOT_FOUND`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::Response;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::jwt::verify_rs256;
use crate::record::{Platform, Recorder, Reply, Request, gateway_controls};
use crate::server::{self, Answer, Body, Protocol, Received, Running, Stopped, respond};

/// The Firebase project of the fake service account.
pub const PROJECT_ID: &str = "friendcore-test";
/// The fake service account's e-mail (the assertion's `iss`).
pub const CLIENT_EMAIL: &str = "push-test@friendcore-test.iam.gserviceaccount.com";
/// The fake service account's `private_key_id`.
pub const PRIVATE_KEY_ID: &str = "test-key-id";
/// The OAuth scope an FCM sender must ask for (Google's real value, so the client's is checked).
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The assertion lifetime Google requires (`exp - iat`), in seconds.
pub const ASSERTION_LIFETIME_S: i64 = 3600;
/// The test service account's private key: RSA 2048, PKCS#8 PEM
/// (`tests/fixtures/push-test-only-fcm-rsa.key.pem`). Public; test use only.
pub const KEY_PEM: &str = include_str!("../../tests/fixtures/push-test-only-fcm-rsa.key.pem");
/// Its public half (PKCS#1 PEM), which the token endpoint verifies assertions with.
pub const PUBLIC_KEY_PEM: &str =
    include_str!("../../tests/fixtures/push-test-only-fcm-rsa.pkcs1.pub.pem");

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The path of the test service account's private key file ([`KEY_PEM`]) in this checkout.
pub fn key_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/push-test-only-fcm-rsa.key.pem")
}

/// A fake FCM HTTP v1 gateway with its token endpoint (see the module docs for what it checks).
///
/// A cheap handle: clones share the fake, which stops when the last one is dropped.
#[derive(Clone)]
pub struct FakeFcm {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Arc<Running>,
}

struct Shared {
    recorder: Arc<Recorder>,
    token_uri: String,
    /// Access tokens issued, in order.
    issued: Mutex<Vec<String>>,
    refused: AtomicUsize,
    /// `expires_in` of issued access tokens, seconds.
    lifetime_s: AtomicU64,
}

impl FakeFcm {
    /// Starts the fake on `127.0.0.1:0`. Must be called inside a Tokio runtime, which runs it.
    /// Fails when no loopback port can be bound.
    pub async fn bind() -> io::Result<FakeFcm> {
        let (listener, addr) = server::listen().await?;
        let recorder = Arc::new(Recorder::new("FakeFcm"));
        let shared = Arc::new(Shared {
            recorder: Arc::clone(&recorder),
            token_uri: format!("http://{addr}/token"),
            issued: Mutex::new(Vec::new()),
            refused: AtomicUsize::new(0),
            lifetime_s: AtomicU64::new(3600),
        });
        let served = Arc::clone(&shared);
        let running = server::spawn(listener, Protocol::Http1, recorder, move |request| {
            handle(Arc::clone(&served), request)
        });
        Ok(FakeFcm {
            shared,
            addr,
            running: Arc::new(running),
        })
    }

    /// The token endpoint, `http://127.0.0.1:PORT/token`: the service account's `token_uri` and
    /// the `aud` the assertion must carry.
    pub fn token_uri(&self) -> String {
        self.shared.token_uri.clone()
    }

    /// A service-account JSON document for this fake: [`PROJECT_ID`], [`CLIENT_EMAIL`],
    /// [`PRIVATE_KEY_ID`], the test private key and `token_uri` pointing here. Edit a field to
    /// test a refusal (e.g. another `client_email`).
    pub fn service_account_json(&self) -> Value {
        json!({
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": PRIVATE_KEY_ID,
            "private_key": KEY_PEM,
            "client_email": CLIENT_EMAIL,
            "token_uri": self.shared.token_uri,
        })
    }

    /// Writes [`FakeFcm::service_account_json`] to `path` (what a backend's FCM credentials flag
    /// reads).
    pub fn write_service_account(&self, path: &Path) -> io::Result<()> {
        let text = serde_json::to_string_pretty(&self.service_account_json())?;
        std::fs::write(path, text)
    }

    /// How many access tokens the token endpoint issued.
    pub fn access_tokens_issued(&self) -> usize {
        self.issued().len()
    }

    /// How many assertions the token endpoint refused.
    pub fn refused_assertions(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// The `expires_in` of access tokens issued from now on (default one hour, as Google's).
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.shared
            .lifetime_s
            .store(lifetime.as_secs(), Ordering::SeqCst);
    }

    fn recorder(&self) -> &Recorder {
        &self.shared.recorder
    }

    fn issued(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.shared.issued()
    }
}

gateway_controls!(FakeFcm);

impl std::fmt::Debug for FakeFcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeFcm")
            .field("addr", &self.addr)
            .field("requests", &self.request_count())
            .field("deliveries", &self.delivery_count())
            .field("access_tokens_issued", &self.access_tokens_issued())
            .finish()
    }
}

impl Shared {
    fn issued(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.issued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token endpoint.
    fn token(&self, received: &Received) -> Response<Body> {
        match self.check_assertion(&received.body) {
            Ok(()) => {
                let mut issued = self.issued();
                let token = format!("ya29.test-access-{}", issued.len());
                issued.push(token.clone());
                respond(&Reply::new(
                    200,
                    json!({
                        "access_token": token,
                        "expires_in": self.lifetime_s.load(Ordering::SeqCst),
                        "token_type": "Bearer",
                    }),
                ))
            }
            Err(why) => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                respond(&Reply::new(
                    400,
                    json!({ "error": "invalid_grant", "error_description": why }),
                ))
            }
        }
    }

    /// Checks a JWT-bearer token request the way Google does for a service account.
    fn check_assertion(&self, form: &[u8]) -> Result<(), String> {
        let mut grant = None;
        let mut assertion = None;
        for pair in form.split(|b| *b == b'&') {
            let mut kv = pair.splitn(2, |b| *b == b'=');
            let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
                continue;
            };
            match percent_decode(k).as_str() {
                "grant_type" => grant = Some(percent_decode(v)),
                "assertion" => assertion = Some(percent_decode(v)),
                _ => {}
            }
        }
        if grant.as_deref() != Some(JWT_BEARER) {
            return Err(format!("grant_type must be {JWT_BEARER}"));
        }
        let assertion = assertion.ok_or("no assertion")?;
        let (header, claims) =
            verify_rs256(&assertion).map_err(|e| format!("Invalid JWT Signature: {e}"))?;
        if header["alg"] != "RS256" {
            return Err("alg must be RS256".into());
        }
        if claims["iss"] != CLIENT_EMAIL {
            return Err(format!("iss is not {CLIENT_EMAIL}"));
        }
        if claims["aud"] != self.token_uri.as_str() {
            return Err(format!("aud is not {}", self.token_uri));
        }
        if claims["scope"] != SCOPE {
            return Err(format!("scope is not {SCOPE}"));
        }
        match (claims["iat"].as_i64(), claims["exp"].as_i64()) {
            (Some(iat), Some(exp)) if exp - iat == ASSERTION_LIFETIME_S => Ok(()),
            _ => Err(format!(
                "iat and exp must be numbers {ASSERTION_LIFETIME_S} s apart"
            )),
        }
    }

    /// The answer to a request on any path but the token endpoint, once past the gate.
    fn send(&self, received: &Received, index: usize, device_token: Option<&str>) -> Reply {
        let project = received
            .path
            .strip_prefix("/v1/projects/")
            .and_then(|p| p.strip_suffix("/messages:send"))
            .filter(|p| !p.is_empty() && !p.contains('/'));
        let Some(project) = project.filter(|_| received.method == "POST") else {
            return google_error(
                404,
                "NOT_FOUND",
                &format!(
                    "fake FCM: no endpoint {} {}",
                    received.method, received.path
                ),
            );
        };
        let known = received
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| self.issued().iter().any(|i| i == t));
        if !known {
            return google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            );
        }
        if project != PROJECT_ID {
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Permission denied on the project.",
            );
        }
        if device_token.is_none() {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Recipient of the message is not set.",
            );
        }
        self.recorder.scripted(device_token).unwrap_or_else(|| {
            Reply::new(
                200,
                json!({ "name": format!("projects/{project}/messages/{index}") }),
            )
        })
    }
}

/// A Google API error with a message.
fn google_error(code: u16, status: &str, message: &str) -> Reply {
    Reply::new(
        code,
        json!({ "error": { "code": code, "status": status, "message": message } }),
    )
}

async fn handle(shared: Arc<Shared>, request: hyper::Request<Incoming>) -> Answer {
    let received = Received::read(request).await;
    if received.method == "POST" && received.path == "/token" {
        if shared.recorder.is_stopped() {
            return Err(Stopped);
        }
        return Ok(shared.token(&received));
    }
    let device_token = received.json["message"]["token"]
        .as_str()
        .map(str::to_string);
    let pending = shared.recorder.record(Request {
        platform: Platform::Fcm,
        method: received.method.clone(),
        path: received.path.clone(),
        http_version: received.http_version.clone(),
        headers: received.headers.clone(),
        device_token: device_token.clone(),
        body: received.json.clone(),
        received_at: chrono::Utc::now(),
        status: None,
        abandoned: false,
    });
    pending.pass_gate().await?;
    let index = pending.index();
    let reply = shared.send(&received, index, device_token.as_deref());
    server::answer(pending, respond(&reply))
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space, `%XX` a byte;
/// a malformed escape is kept as it is).
fn percent_decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
