//! The fake APNs gateway: HTTP/2 cleartext with prior knowledge on loopback (the real one is
//! HTTP/2 over TLS; the backend's client speaks prior knowledge to an `http://` base URL).
//!
//! Every request is recorded, then checked the way Apple checks it, in this order, each failure
//! answered with Apple's status and `{"reason": …}`:
//!
//! | check | refusal |
//! |---|---|
//! | `POST` | 405 `MethodNotAllowed` |
//! | path `/3/device/{token}` | 404 `BadPath` |
//! | `authorization: bearer <jwt>` | 403 `MissingProviderToken` |
//! | ES256 signature against [`PUBLIC_KEY_PEM`], `alg` ES256, `kid` = [`KEY_ID`], `iss` = [`TEAM_ID`], numeric `iat` | 403 `InvalidProviderToken` |
//! | `iat` not older than one hour (system clock) | 403 `ExpiredProviderToken` |
//! | `apns-topic` present / = [`TOPIC`] | 400 `MissingTopic` / `BadTopic` |
//! | `apns-push-type: alert` | 400 `InvalidPushType` |
//! | `apns-priority: 10` | 400 `BadPriority` |
//! | `apns-expiration` present and numeric | 400 `BadExpirationDate` |
//! | `apns-collapse-id` at most 64 bytes | 400 `BadCollapseId` |
//! | device token hexadecimal | 400 `BadDeviceToken` |
//! | a body | 400 `PayloadEmpty` |
//! | body at most 4096 bytes | 413 `PayloadTooLarge` |
//!
//! Then the scripted reply, or 200 with an empty body and `apns-id` (the request's own `apns-id`
//! when it sent one, as Apple echoes it).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use hyper::body::Incoming;
use serde_json::Value;

use crate::jwt::verify_es256;
use crate::record::{Platform, Recorder, Reply, Request, gateway_controls};
use crate::server::{self, Answer, Protocol, Received, Running, respond};

/// The provider key's id (JWT header `kid`).
pub const KEY_ID: &str = "TESTKEY123";
/// The developer team id (JWT claim `iss`).
pub const TEAM_ID: &str = "TESTTEAM99";
/// The app's bundle id (`apns-topic`).
pub const TOPIC: &str = "ch.friendcore.test";
/// Longest `apns-collapse-id` APNs accepts, in bytes.
pub const MAX_COLLAPSE_ID_BYTES: usize = 64;
/// Largest payload APNs accepts for an alert push, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// Oldest provider token APNs accepts (`iat`), in seconds.
pub const MAX_TOKEN_AGE_S: i64 = 3600;
/// The test provider key in the form of Apple's `.p8` files: P-256, PKCS#8 PEM
/// (`tests/fixtures/push-test-only-apns-p256.p8`). Public; test use only.
pub const KEY_PEM: &str = include_str!("../../tests/fixtures/push-test-only-apns-p256.p8");
/// Its public half (SubjectPublicKeyInfo PEM), which the fake verifies provider tokens with.
pub const PUBLIC_KEY_PEM: &str =
    include_str!("../../tests/fixtures/push-test-only-apns-p256.pub.pem");

/// The path of the test `.p8` key file ([`KEY_PEM`]) in this checkout.
pub fn key_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/push-test-only-apns-p256.p8")
}

/// A fake APNs gateway (see the module docs for what it checks).
///
/// A cheap handle: clones share the fake, which stops when the last one is dropped.
#[derive(Clone)]
pub struct FakeApns {
    recorder: Arc<Recorder>,
    addr: SocketAddr,
    running: Arc<Running>,
}

impl FakeApns {
    /// Starts the fake on `127.0.0.1:0`. Must be called inside a Tokio runtime, which runs it.
    /// Fails when no loopback port can be bound.
    pub async fn bind() -> io::Result<FakeApns> {
        let (listener, addr) = server::listen().await?;
        let recorder = Arc::new(Recorder::new("FakeApns"));
        let served = Arc::clone(&recorder);
        let running = server::spawn(
            listener,
            Protocol::Http2,
            Arc::clone(&recorder),
            move |request| handle(Arc::clone(&served), request),
        );
        Ok(FakeApns {
            recorder,
            addr,
            running: Arc::new(running),
        })
    }

    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

gateway_controls!(FakeApns);

impl std::fmt::Debug for FakeApns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApns")
            .field("addr", &self.addr)
            .field("requests", &self.request_count())
            .field("deliveries", &self.delivery_count())
            .finish()
    }
}

async fn handle(recorder: Arc<Recorder>, request: hyper::Request<Incoming>) -> Answer {
    let received = Received::read(request).await;
    let device_token = received.path.strip_prefix("/3/device/").map(str::to_string);
    let pending = recorder.record(Request {
        platform: Platform::Apns,
        method: received.method.clone(),
        path: received.path.clone(),
        http_version: received.http_version.clone(),
        headers: received.headers.clone(),
        device_token: device_token.clone(),
        body: received.json.clone(),
        received_at: Utc::now(),
        status: None,
        abandoned: false,
    });
    pending.pass_gate().await?;
    let index = pending.index();
    let reply = match check(&received, device_token.as_deref()) {
        Err(refusal) => refusal,
        Ok(token) => recorder.scripted(Some(token)).unwrap_or_else(|| {
            let id = received
                .header("apns-id")
                .map_or_else(|| apns_id(index), str::to_string);
            Reply::new(200, Value::Null).with_header("apns-id", &id)
        }),
    };
    server::answer(pending, respond(&reply))
}

/// A UUID-shaped `apns-id` for the `index`th request.
fn apns_id(index: usize) -> String {
    format!("00000000-0000-4000-8000-{index:012X}")
}

/// Checks what Apple checks (the module docs' table); the device token when all pass.
fn check<'a>(received: &Received, device_token: Option<&'a str>) -> Result<&'a str, Reply> {
    let refuse = |status: u16, reason: &str| Reply::apns_error(status, reason);
    if received.method != "POST" {
        return Err(refuse(405, "MethodNotAllowed"));
    }
    let token = device_token
        .filter(|t| !t.is_empty() && !t.contains('/'))
        .ok_or_else(|| refuse(404, "BadPath"))?;
    let jwt = received
        .header("authorization")
        .and_then(|a| a.strip_prefix("bearer "))
        .ok_or_else(|| refuse(403, "MissingProviderToken"))?;
    let (header, claims) = verify_es256(jwt).map_err(|_| refuse(403, "InvalidProviderToken"))?;
    if header["alg"] != "ES256" || header["kid"] != KEY_ID || claims["iss"] != TEAM_ID {
        return Err(refuse(403, "InvalidProviderToken"));
    }
    let iat = claims["iat"]
        .as_i64()
        .ok_or_else(|| refuse(403, "InvalidProviderToken"))?;
    if Utc::now().timestamp() - iat > MAX_TOKEN_AGE_S {
        return Err(refuse(403, "ExpiredProviderToken"));
    }
    match received.header("apns-topic") {
        None => return Err(refuse(400, "MissingTopic")),
        Some(topic) if topic != TOPIC => return Err(refuse(400, "BadTopic")),
        Some(_) => {}
    }
    if received.header("apns-push-type") != Some("alert") {
        return Err(refuse(400, "InvalidPushType"));
    }
    if received.header("apns-priority") != Some("10") {
        return Err(refuse(400, "BadPriority"));
    }
    if received
        .header("apns-expiration")
        .and_then(|e| e.parse::<i64>().ok())
        .is_none()
    {
        return Err(refuse(400, "BadExpirationDate"));
    }
    if received
        .header("apns-collapse-id")
        .is_some_and(|c| c.len() > MAX_COLLAPSE_ID_BYTES)
    {
        return Err(refuse(400, "BadCollapseId"));
    }
    if !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refuse(400, "BadDeviceToken"));
    }
    if received.body.is_empty() {
        return Err(refuse(400, "PayloadEmpty"));
    }
    if received.body.len() > MAX_PAYLOAD_BYTES {
        return Err(refuse(413, "PayloadTooLarge"));
    }
    Ok(token)
}
