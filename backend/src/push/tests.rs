//! The push clients against loopback fakes: a fake FCM (axum, HTTP/1.1) whose token endpoint
//! verifies the RS256 assertion with the public half of a test key, and a fake APNs (hyper,
//! HTTP/2 cleartext with prior knowledge) that verifies the ES256 provider token and the headers.
//! Both record what they receive and can be scripted to fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use friend_protocol::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use ring::signature::{ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};

use super::apns::{ApnsClient, ApnsConfig};
use super::content::{Recipient, job_update_push, offer_push};
use super::fcm::{FcmClient, SCOPE, ServiceAccount};
use super::jwt::pem_decode;
use super::{DEFAULT_RETRY_AFTER, Outcome, PushError, PushMessage};
use crate::clock::{Clock, ManualClock};

const FCM_KEY: &str = include_str!("../../../tests/fixtures/push-test-only-fcm-rsa.key.pem");
const FCM_PUB: &str = include_str!("../../../tests/fixtures/push-test-only-fcm-rsa.pkcs1.pub.pem");
const APNS_KEY: &str = include_str!("../../../tests/fixtures/push-test-only-apns-p256.p8");
const APNS_PUB: &str = include_str!("../../../tests/fixtures/push-test-only-apns-p256.pub.pem");

const CLIENT_EMAIL: &str = "push-test@friendcore-test.iam.gserviceaccount.com";
const PROJECT: &str = "friendcore-test";
const KEY_ID: &str = "TESTKEY123";
const TEAM_ID: &str = "TESTTEAM99";
const TOPIC: &str = "ch.friendcore.test";
const FCM_DEVICE: &str = "fcm-device-token:APA91b-test";
const APNS_DEVICE: &str = "a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1";

/// A scripted answer: status, extra headers, JSON body.
#[derive(Clone)]
struct Reply(u16, Vec<(&'static str, &'static str)>, Value);

fn reply(status: u16, body: Value) -> Reply {
    Reply(status, vec![], body)
}

/// Splits a compact JWS and verifies it with `verify`; returns (header, claims).
fn verify_jwt(jwt: &str, verify: impl Fn(&[u8], &[u8]) -> bool) -> Option<(Value, Value)> {
    let mut parts = jwt.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    if !verify(format!("{h}.{c}").as_bytes(), &sig) {
        return None;
    }
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    Some((header, claims))
}

fn rsa_verify(input: &[u8], sig: &[u8]) -> bool {
    let public = pem_decode(FCM_PUB, "RSA PUBLIC KEY").unwrap();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
        .verify(input, sig)
        .is_ok()
}

fn p256_verify(input: &[u8], sig: &[u8]) -> bool {
    let spki = pem_decode(APNS_PUB, "PUBLIC KEY").unwrap();
    // A P-256 SubjectPublicKeyInfo ends with the 65-byte uncompressed point ring verifies with.
    assert_eq!(spki.len(), 91);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &spki[26..])
        .verify(input, sig)
        .is_ok()
}

// ---------------------------------------------------------------- fake FCM

#[derive(Default)]
struct FakeFcm {
    token_uri: Mutex<String>,
    issued: Mutex<Vec<String>>,
    refused_assertions: AtomicU64,
    sends: Mutex<Vec<(String, String, Value)>>,
    script: Mutex<VecDeque<Reply>>,
    expires_in: AtomicU64,
}

async fn fcm_token(State(fake): State<Arc<FakeFcm>>, body: String) -> Response {
    let refuse = |why: &str| {
        fake.refused_assertions.fetch_add(1, Ordering::Relaxed);
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_grant", "error_description": why })),
        )
            .into_response()
    };
    let mut grant = None;
    let mut assertion = None;
    for pair in body.split('&') {
        match pair.split_once('=') {
            Some(("grant_type", v)) => grant = Some(v.to_string()),
            Some(("assertion", v)) => assertion = Some(v.to_string()),
            _ => {}
        }
    }
    if grant.as_deref() != Some("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") {
        return refuse("grant_type");
    }
    let Some((header, claims)) = assertion.and_then(|a| verify_jwt(&a, rsa_verify)) else {
        return refuse("signature");
    };
    let token_uri = fake.token_uri.lock().unwrap().clone();
    if header["alg"] != "RS256"
        || claims["iss"] != CLIENT_EMAIL
        || claims["aud"] != token_uri.as_str()
        || claims["scope"] != SCOPE
        || claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0) != 3600
    {
        return refuse("claims");
    }
    let mut issued = fake.issued.lock().unwrap();
    let token = format!("ya29.test-access-{}", issued.len());
    issued.push(token.clone());
    axum::Json(json!({
        "access_token": token,
        "expires_in": fake.expires_in.load(Ordering::Relaxed),
        "token_type": "Bearer",
    }))
    .into_response()
}

async fn fcm_send(
    State(fake): State<Arc<FakeFcm>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let known = auth
        .strip_prefix("Bearer ")
        .is_some_and(|t| fake.issued.lock().unwrap().iter().any(|i| i == t));
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.sends
        .lock()
        .unwrap()
        .push((uri.path().to_string(), auth, body));
    if !known {
        return (StatusCode::UNAUTHORIZED, "unknown token").into_response();
    }
    let scripted = fake.script.lock().unwrap().pop_front();
    let Reply(status, headers, body) =
        scripted.unwrap_or_else(|| reply(200, json!({ "name": "projects/p/messages/1" })));
    let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    for (k, v) in headers {
        response.headers_mut().insert(k, v.parse().unwrap());
    }
    response
}

struct Fcm {
    fake: Arc<FakeFcm>,
    client: FcmClient,
    clock: Arc<ManualClock>,
}

async fn fcm_with(email: &str) -> Fcm {
    let fake = Arc::new(FakeFcm::default());
    fake.expires_in.store(3600, Ordering::Relaxed);
    let router = axum::Router::new()
        .route("/token", axum::routing::post(fcm_token))
        .fallback(fcm_send)
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    *fake.token_uri.lock().unwrap() = format!("{base}/token");
    let account = ServiceAccount::from_json(
        &json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "test-key-id",
            "private_key": FCM_KEY,
            "client_email": email,
            "token_uri": format!("{base}/token"),
        })
        .to_string(),
    )
    .unwrap();
    let clock = Arc::new(ManualClock::new());
    let client = FcmClient::new(account, &base, clock.clone()).unwrap();
    Fcm {
        fake,
        client,
        clock,
    }
}

async fn fcm() -> Fcm {
    fcm_with(CLIENT_EMAIL).await
}

fn message() -> PushMessage {
    PushMessage {
        title: "New job: Router installation".into(),
        body: "≈ 4 km away · CHF 89.00".into(),
        data: [("kind".to_string(), "offer".to_string())]
            .into_iter()
            .collect(),
        collapse_key: "offer-1234".into(),
        ttl: Duration::from_secs(600),
    }
}

#[tokio::test]
async fn fcm_message_arrives_with_the_right_body() {
    let f = fcm().await;
    let (offer, _) = marked_job();
    let home = GeoPoint::new(47.40, 8.55).unwrap();
    let msg = offer_push(&offer, Some(&home), f.clock.now());
    assert_eq!(
        f.client.send(FCM_DEVICE, &msg).await.unwrap(),
        Outcome::Delivered
    );
    let sends = f.fake.sends.lock().unwrap();
    let (path, auth, body) = &sends[0];
    assert_eq!(path, &format!("/v1/projects/{PROJECT}/messages:send"));
    assert_eq!(auth, "Bearer ya29.test-access-0");
    let m = &body["message"];
    assert_eq!(m["token"], FCM_DEVICE);
    assert_eq!(m["android"]["priority"], "HIGH");
    assert_eq!(m["android"]["collapse_key"], format!("offer-{}", offer.id));
    let ttl = m["android"]["ttl"].as_str().unwrap();
    let secs: u64 = ttl.strip_suffix('s').unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&secs), "{ttl}");
    assert_eq!(m["notification"]["title"], "New job: Router installation");
    assert!(
        m["notification"]["body"]
            .as_str()
            .unwrap()
            .contains("CHF 89.00")
    );
    assert_eq!(m["data"]["job_id"], offer.id.to_string());
    assert_eq!(m["data"]["category"], "network");
    assert_eq!(m["data"]["kind"], "offer");
    assert!(m["data"]["distance_km"].as_str().is_some());
    assert_eq!(
        m["data"]["expires_at"],
        offer.expires_at.timestamp_millis().to_string()
    );
}

#[tokio::test]
async fn fcm_access_token_is_cached_then_refreshed_before_expiry() {
    let f = fcm().await;
    for _ in 0..3 {
        assert_eq!(
            f.client.send(FCM_DEVICE, &message()).await.unwrap(),
            Outcome::Delivered
        );
    }
    assert_eq!(f.client.token_exchanges(), 1);
    // Valid 60 min; replaced 5 min before the end.
    f.clock.advance(chrono::Duration::minutes(54));
    f.client.send(FCM_DEVICE, &message()).await.unwrap();
    assert_eq!(f.client.token_exchanges(), 1);
    f.clock.advance(chrono::Duration::minutes(2));
    f.client.send(FCM_DEVICE, &message()).await.unwrap();
    assert_eq!(f.client.token_exchanges(), 2);
    let sends = f.fake.sends.lock().unwrap();
    assert_eq!(sends[3].1, "Bearer ya29.test-access-0");
    assert_eq!(sends[4].1, "Bearer ya29.test-access-1");
    assert_eq!(f.fake.refused_assertions.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn fcm_token_endpoint_refuses_a_wrong_assertion() {
    // The fake verifies the claims: another issuer is refused, and the client reports AuthFailed.
    let f = fcm_with("someone-else@example.iam.gserviceaccount.com").await;
    assert_eq!(
        f.client.send(FCM_DEVICE, &message()).await.unwrap(),
        Outcome::AuthFailed
    );
    assert_eq!(f.fake.refused_assertions.load(Ordering::Relaxed), 1);
    assert!(f.fake.sends.lock().unwrap().is_empty());
    // And the signature: a tampered assertion does not verify against the test key's public half.
    let key = ring::signature::RsaKeyPair::from_pkcs8(&pem_decode(FCM_KEY, "PRIVATE KEY").unwrap())
        .unwrap();
    let jwt = super::jwt::sign_rs256(&key, &json!({"alg": "RS256"}), &json!({"iss": "x"})).unwrap();
    assert!(verify_jwt(&jwt, rsa_verify).is_some());
    let tampered = jwt.replacen(".eyJ", ".eyK", 1);
    assert!(verify_jwt(&tampered, rsa_verify).is_none());
}

#[tokio::test]
async fn fcm_failures_map_to_outcomes() {
    let f = fcm().await;
    let cases = vec![
        (
            reply(
                404,
                json!({"error": {"code": 404, "status": "NOT_FOUND", "details": [
                    {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}),
            ),
            Outcome::DeadToken,
        ),
        (
            reply(
                400,
                json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                    "message": "The registration token is not a valid FCM registration token",
                    "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": "message.token"}]}]}}),
            ),
            Outcome::DeadToken,
        ),
        (
            reply(
                400,
                json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                    "message": "Invalid value at 'message.android.ttl'"}}),
            ),
            Outcome::Failed("400 Bad Request INVALID_ARGUMENT".into()),
        ),
        (
            Reply(
                429,
                vec![("retry-after", "7")],
                json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
                    {"errorCode": "QUOTA_EXCEEDED"}]}}),
            ),
            Outcome::RetryAfter(Duration::from_secs(7)),
        ),
        (
            reply(
                503,
                json!({"error": {"code": 503, "status": "UNAVAILABLE"}}),
            ),
            Outcome::RetryAfter(DEFAULT_RETRY_AFTER),
        ),
        (
            Reply(
                500,
                vec![("retry-after", "12")],
                json!({"error": {"code": 500, "status": "INTERNAL"}}),
            ),
            Outcome::RetryAfter(Duration::from_secs(12)),
        ),
    ];
    for (scripted, expected) in cases {
        f.fake.script.lock().unwrap().push_back(scripted);
        assert_eq!(
            f.client.send(FCM_DEVICE, &message()).await.unwrap(),
            expected
        );
    }
    assert_eq!(f.client.token_exchanges(), 1);
}

#[tokio::test]
async fn fcm_auth_failure_refreshes_once_then_reports() {
    let f = fcm().await;
    let unauthenticated = || {
        reply(
            401,
            json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
        )
    };
    // Refused once: a new access token, the push retried and delivered.
    f.fake.script.lock().unwrap().push_back(unauthenticated());
    assert_eq!(
        f.client.send(FCM_DEVICE, &message()).await.unwrap(),
        Outcome::Delivered
    );
    assert_eq!(f.client.token_exchanges(), 2);
    assert_eq!(f.fake.sends.lock().unwrap().len(), 2);
    // Refused twice: one refresh, one retry, then AuthFailed.
    f.fake.script.lock().unwrap().push_back(unauthenticated());
    f.fake.script.lock().unwrap().push_back(reply(
        403,
        json!({"error": {"code": 403, "status": "PERMISSION_DENIED"}}),
    ));
    assert_eq!(
        f.client.send(FCM_DEVICE, &message()).await.unwrap(),
        Outcome::AuthFailed
    );
    assert_eq!(f.client.token_exchanges(), 3);
    assert_eq!(f.fake.sends.lock().unwrap().len(), 4);
}

// ---------------------------------------------------------------- fake APNs

#[derive(Default)]
struct FakeApns {
    requests: Mutex<Vec<(hyper::Version, String, HeaderMap, Value)>>,
    script: Mutex<VecDeque<Reply>>,
}

fn apns_reply(status: u16, headers: &[(&str, &str)], body: Value) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// Checks what Apple checks: the provider token's signature and claims, and the headers.
fn apns_check(headers: &HeaderMap) -> Result<(), (u16, &'static str)> {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let jwt = get("authorization")
        .and_then(|a| a.strip_prefix("bearer "))
        .ok_or((403, "MissingProviderToken"))?;
    let (header, claims) = verify_jwt(jwt, p256_verify).ok_or((403, "InvalidProviderToken"))?;
    if header["alg"] != "ES256" || header["kid"] != KEY_ID || claims["iss"] != TEAM_ID {
        return Err((403, "InvalidProviderToken"));
    }
    if !claims["iat"].is_i64() {
        return Err((403, "InvalidProviderToken"));
    }
    if get("apns-topic") != Some(TOPIC) {
        return Err((400, "BadTopic"));
    }
    if get("apns-push-type") != Some("alert") {
        return Err((400, "InvalidPushType"));
    }
    if get("apns-priority") != Some("10") {
        return Err((400, "BadPriority"));
    }
    if get("apns-expiration")
        .and_then(|e| e.parse::<i64>().ok())
        .is_none()
    {
        return Err((400, "BadExpirationDate"));
    }
    if get("apns-collapse-id").is_some_and(|c| c.len() > 64) {
        return Err((400, "BadCollapseId"));
    }
    Ok(())
}

async fn apns_handle(
    fake: Arc<FakeApns>,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    fake.requests.lock().unwrap().push((
        parts.version,
        parts.uri.path().to_string(),
        parts.headers.clone(),
        json,
    ));
    if parts.method != hyper::Method::POST || !parts.uri.path().starts_with("/3/device/") {
        return apns_reply(405, &[], json!({"reason": "MethodNotAllowed"}));
    }
    if let Err((status, reason)) = apns_check(&parts.headers) {
        return apns_reply(status, &[], json!({ "reason": reason }));
    }
    match fake.script.lock().unwrap().pop_front() {
        Some(Reply(status, headers, body)) => apns_reply(status, &headers, body),
        None => apns_reply(
            200,
            &[("apns-id", "00000000-0000-0000-0000-000000000001")],
            json!({}),
        ),
    }
}

struct Apns {
    fake: Arc<FakeApns>,
    client: ApnsClient,
    clock: Arc<ManualClock>,
}

async fn apns() -> Apns {
    let fake = Arc::new(FakeApns::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = fake.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let fake = served.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let fake = fake.clone();
                    async move { Ok::<_, Infallible>(apns_handle(fake, req).await) }
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    let clock = Arc::new(ManualClock::new());
    let client = ApnsClient::new(
        ApnsConfig {
            key_pem: APNS_KEY.into(),
            key_id: KEY_ID.into(),
            team_id: TEAM_ID.into(),
            topic: TOPIC.into(),
            base_url: base,
        },
        clock.clone(),
    )
    .unwrap();
    Apns {
        fake,
        client,
        clock,
    }
}

#[tokio::test]
async fn apns_message_arrives_over_http2_with_the_right_headers() {
    let a = apns().await;
    let (offer, _) = marked_job();
    let msg = offer_push(
        &offer,
        Some(&GeoPoint::new(47.40, 8.55).unwrap()),
        a.clock.now(),
    );
    assert_eq!(
        a.client.send(APNS_DEVICE, &msg).await.unwrap(),
        Outcome::Delivered
    );
    let requests = a.fake.requests.lock().unwrap();
    let (version, path, headers, body) = &requests[0];
    assert_eq!(*version, hyper::Version::HTTP_2);
    assert_eq!(path, &format!("/3/device/{APNS_DEVICE}"));
    assert_eq!(headers["apns-push-type"], "alert");
    assert_eq!(headers["apns-priority"], "10");
    assert_eq!(headers["apns-topic"], TOPIC);
    assert_eq!(
        headers["apns-collapse-id"].to_str().unwrap(),
        format!("offer-{}", offer.id)
    );
    let expiration: i64 = headers["apns-expiration"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((expiration - offer.expires_at.timestamp()).abs() <= 2);
    assert_eq!(
        body["aps"]["alert"]["title"],
        "New job: Router installation"
    );
    assert_eq!(body["job_id"], offer.id.to_string());
    assert_eq!(body["kind"], "offer");
}

#[tokio::test]
async fn apns_provider_token_is_reused_within_its_lifetime() {
    let a = apns().await;
    for _ in 0..3 {
        a.client.send(APNS_DEVICE, &message()).await.unwrap();
    }
    a.clock.advance(chrono::Duration::minutes(39));
    a.client.send(APNS_DEVICE, &message()).await.unwrap();
    assert_eq!(a.client.tokens_signed(), 1);
    a.clock.advance(chrono::Duration::minutes(2));
    assert_eq!(
        a.client.send(APNS_DEVICE, &message()).await.unwrap(),
        Outcome::Delivered
    );
    assert_eq!(a.client.tokens_signed(), 2);
    let requests = a.fake.requests.lock().unwrap();
    let auth = |i: usize| requests[i].2["authorization"].clone();
    assert_eq!(auth(0), auth(3));
    assert_ne!(auth(3), auth(4));
}

#[tokio::test]
async fn apns_failures_map_to_outcomes() {
    let a = apns().await;
    let cases = vec![
        (
            reply(410, json!({"reason": "Unregistered", "timestamp": 1})),
            Outcome::DeadToken,
        ),
        (
            reply(400, json!({"reason": "BadDeviceToken"})),
            Outcome::DeadToken,
        ),
        (
            Reply(
                429,
                vec![("retry-after", "5")],
                json!({"reason": "TooManyRequests"}),
            ),
            Outcome::RetryAfter(Duration::from_secs(5)),
        ),
        (
            reply(503, json!({"reason": "ServiceUnavailable"})),
            Outcome::RetryAfter(DEFAULT_RETRY_AFTER),
        ),
        (
            reply(413, json!({"reason": "PayloadTooLarge"})),
            Outcome::Failed("413 Payload Too Large PayloadTooLarge".into()),
        ),
    ];
    for (scripted, expected) in cases {
        a.fake.script.lock().unwrap().push_back(scripted);
        assert_eq!(
            a.client.send(APNS_DEVICE, &message()).await.unwrap(),
            expected
        );
    }
    // A token that is not hex is dead without a request.
    let before = a.fake.requests.lock().unwrap().len();
    assert_eq!(
        a.client.send("../../admin", &message()).await.unwrap(),
        Outcome::DeadToken
    );
    assert_eq!(a.fake.requests.lock().unwrap().len(), before);
    assert_eq!(a.client.tokens_signed(), 1);
}

#[tokio::test]
async fn apns_auth_failure_refreshes_once_then_reports() {
    let a = apns().await;
    let expired = || reply(403, json!({"reason": "ExpiredProviderToken"}));
    a.client.send(APNS_DEVICE, &message()).await.unwrap();
    assert_eq!(a.client.tokens_signed(), 1);

    // Refused while younger than 20 min: never re-signed that soon; reported at once.
    a.fake.script.lock().unwrap().push_back(expired());
    assert_eq!(
        a.client.send(APNS_DEVICE, &message()).await.unwrap(),
        Outcome::AuthFailed
    );
    assert_eq!(a.client.tokens_signed(), 1);
    assert_eq!(a.fake.requests.lock().unwrap().len(), 2);

    // Refused at 25 min: a new token, the push retried once and delivered.
    a.clock.advance(chrono::Duration::minutes(25));
    a.fake.script.lock().unwrap().push_back(expired());
    assert_eq!(
        a.client.send(APNS_DEVICE, &message()).await.unwrap(),
        Outcome::Delivered
    );
    assert_eq!(a.client.tokens_signed(), 2);
    assert_eq!(a.fake.requests.lock().unwrap().len(), 4);

    // Refused twice (old token, then the fresh one): one refresh, one retry, AuthFailed.
    a.clock.advance(chrono::Duration::minutes(25));
    a.fake.script.lock().unwrap().push_back(expired());
    a.fake
        .script
        .lock()
        .unwrap()
        .push_back(reply(403, json!({"reason": "InvalidProviderToken"})));
    assert_eq!(
        a.client.send(APNS_DEVICE, &message()).await.unwrap(),
        Outcome::AuthFailed
    );
    assert_eq!(a.client.tokens_signed(), 3);
    assert_eq!(a.fake.requests.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn apns_collapse_id_over_64_bytes_is_refused() {
    let a = apns().await;
    let mut msg = message();
    msg.collapse_key = "é".repeat(32) + "x"; // 65 bytes, 33 characters
    let err = a.client.send(APNS_DEVICE, &msg).await.unwrap_err();
    assert!(matches!(err, PushError::InvalidMessage(_)), "{err}");
    assert_eq!(err.code(), "push_invalid_message");
    assert!(a.fake.requests.lock().unwrap().is_empty());
    msg.collapse_key = "c".repeat(64);
    assert_eq!(
        a.client.send(APNS_DEVICE, &msg).await.unwrap(),
        Outcome::Delivered
    );
}

// ---------------------------------------------------------------- content

const MARKERS: &[&str] = &[
    "Zebulon",
    "Markerperson",
    "+41 79 555 12 34",
    "795551234",
    "Geheimgasse",
    "Hintertür 4711",
    "MARKER-DESCRIPTION",
    "47.371234",
    "8.541234",
    "Secretsurname",
];

/// A job (and its offer) whose personal fields carry distinctive markers.
fn marked_job() -> (Offer, JobDetails) {
    let now = Utc::now();
    let location = GeoPoint::new(47.371234, 8.541234).unwrap();
    let details = JobDetails {
        id: JobId::random(),
        version: 3,
        state: JobState::Assigned,
        customer_id: AccountId::random(),
        service_id: "network.router_setup".into(),
        category: Category::Network,
        title: "Router installation".into(),
        description: "MARKER-DESCRIPTION my router blinks".into(),
        timing: Timing::Now,
        place: Place::OnSite,
        location: Some(location),
        address: Some(Address {
            street: "Geheimgasse 77".into(),
            postal_code: "8001".into(),
            city: "Zürich".into(),
        }),
        district: Some("8001 Zürich".into()),
        contact: Contact {
            name: "Zebulon Markerperson".into(),
            phone: "+41 79 555 12 34".into(),
        },
        access_notes: Some("Hintertür 4711".into()),
        orientation_price: Money::new(8900, Currency::Chf),
        brand: None,
        min_tier: Tier::Friend,
        radius_km: 30,
        friend: Some(FriendSummary {
            id: AccountId::random(),
            name: "Anna Secretsurname".into(),
            tier: Tier::Friend,
        }),
        cancelled_by: None,
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
        updated_at: now,
        keys: PartyKeys::default(),
        negotiation: None,
        payment: None,
        final_total: None,
        settlement: None,
        rating: None,
        outcome: None,
    };
    let offer = Offer {
        id: details.id,
        version: details.version,
        service_id: details.service_id.clone(),
        category: details.category,
        title: details.title.clone(),
        description: details.description.clone(),
        timing: details.timing,
        place: details.place,
        approx_location: Some(location.approximate()),
        district: details.district.clone(),
        orientation_price: details.orientation_price,
        brand: None,
        min_tier: details.min_tier,
        radius_km: details.radius_km,
        created_at: details.created_at,
        expires_at: details.expires_at,
    };
    (offer, details)
}

#[test]
fn no_personal_field_appears_in_any_push_body() {
    let (offer, mut details) = marked_job();
    let home = GeoPoint::new(47.40, 8.55).unwrap();
    let mut messages = vec![
        offer_push(&offer, Some(&home), Utc::now()),
        offer_push(&offer, None, Utc::now()),
    ];
    for state in JobState::ALL {
        details.state = state;
        messages.push(job_update_push(&details, Recipient::Customer));
        messages.push(job_update_push(&details, Recipient::Friend));
    }
    let mut first_names = 0;
    for msg in &messages {
        let bodies = [
            super::fcm::message_body(FCM_DEVICE, msg).to_string(),
            super::apns::payload(msg).to_string(),
            format!("{msg:?}"),
        ];
        for body in &bodies {
            for marker in MARKERS {
                assert!(!body.contains(marker), "{marker:?} in {body}");
            }
            assert!(
                !body.contains("Zürich"),
                "the district is not in a push: {body}"
            );
        }
        if msg.data.get("friend_first_name").map(String::as_str) == Some("Anna") {
            first_names += 1;
        }
        assert!(msg.collapse_key.len() <= 64);
    }
    // The customer learns the Friend's first name, and only that.
    assert_eq!(first_names, JobState::ALL.len());
    let offer_msg = &messages[0];
    assert_eq!(offer_msg.data["job_id"], offer.id.to_string());
    assert_eq!(offer_msg.data["price"], "CHF 89.00");
    assert!(offer_msg.data.contains_key("distance_km"));
}
