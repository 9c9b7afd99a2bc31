//! The fakes driven the way the backend drives them: reqwest, HTTP/1.1 to FCM and HTTP/2 with prior
//! knowledge to APNs, with assertions and provider tokens signed by the test keys here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use serde_json::{Value, json};

use crate::jwt::{pem_decode, verify_es256, verify_rs256};
use crate::{FakeApns, FakeFcm, Platform, Reply, apns, fcm};

const WAIT: Duration = Duration::from_secs(10);
const APNS_DEVICE: &str = "a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1";

fn client(h2: bool) -> reqwest::Client {
    // reqwest is built without a default TLS provider; ignore "already installed".
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder();
    let builder = if h2 {
        builder.http2_prior_knowledge()
    } else {
        builder.http1_only()
    };
    builder.build().unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sign(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

fn rs256(claims: &Value) -> String {
    let key = RsaKeyPair::from_pkcs8(&pem_decode(fcm::KEY_PEM, "PRIVATE KEY").unwrap()).unwrap();
    sign(&json!({"alg": "RS256", "typ": "JWT"}), claims, |input| {
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input, &mut sig)
            .unwrap();
        sig
    })
}

fn es256(header: &Value, claims: &Value) -> String {
    let rng = SystemRandom::new();
    let der = pem_decode(apns::KEY_PEM, "PRIVATE KEY").unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng).unwrap();
    sign(header, claims, |input| {
        key.sign(&rng, input).unwrap().as_ref().to_vec()
    })
}

fn assertion_claims(fake: &FakeFcm) -> Value {
    let iat = chrono::Utc::now().timestamp();
    json!({
        "iss": fcm::CLIENT_EMAIL,
        "scope": fcm::SCOPE,
        "aud": fake.token_uri(),
        "iat": iat,
        "exp": iat + 3600,
    })
}

async fn exchange(http: &reqwest::Client, fake: &FakeFcm, form: String) -> (u16, Value) {
    let response = http
        .post(fake.token_uri())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn grant(assertion: &str) -> String {
    format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
    )
}

async fn access_token(http: &reqwest::Client, fake: &FakeFcm) -> String {
    let (status, body) = exchange(http, fake, grant(&rs256(&assertion_claims(fake)))).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// The body the backend's FCM client sends (backend/src/push/fcm.rs `message_body`).
fn fcm_body(device: &str, collapse: &str) -> Value {
    json!({
        "message": {
            "token": device,
            "notification": { "title": "New job", "body": "≈ 4 km away" },
            "data": { "kind": "offer", "job_id": "j-1" },
            "android": { "priority": "HIGH", "ttl": "600s", "collapse_key": collapse },
        }
    })
}

async fn fcm_send(
    http: &reqwest::Client,
    fake: &FakeFcm,
    bearer: &str,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = format!(
        "{}/v1/projects/{}/messages:send",
        fake.base_url(),
        fcm::PROJECT_ID
    );
    let response = http
        .post(url)
        .bearer_auth(bearer)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn provider_token() -> String {
    es256(
        &json!({"alg": "ES256", "kid": apns::KEY_ID}),
        &json!({"iss": apns::TEAM_ID, "iat": chrono::Utc::now().timestamp()}),
    )
}

/// The headers and payload the backend's APNs client sends (backend/src/push/apns.rs).
fn apns_request(http: &reqwest::Client, fake: &FakeApns, device: &str) -> reqwest::RequestBuilder {
    http.post(format!("{}/3/device/{device}", fake.base_url()))
        .header("authorization", format!("bearer {}", provider_token()))
        .header("apns-push-type", "alert")
        .header("apns-priority", "10")
        .header("apns-expiration", "1900000000")
        .header("apns-topic", apns::TOPIC)
        .header("apns-collapse-id", "offer-1")
        .json(&json!({
            "aps": { "alert": { "title": "New job", "body": "≈ 4 km away" }, "sound": "default" },
            "kind": "offer",
            "job_id": "j-1",
        }))
}

/// `request` with header `name` replaced by `value`.
fn set(
    request: reqwest::RequestBuilder,
    name: &'static str,
    value: &str,
) -> reqwest::RequestBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(name, value.parse().unwrap());
    request.headers(headers)
}

async fn status_and_reason(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap_or_default();
    (status, body["reason"].as_str().unwrap_or("").to_string())
}

// ---------------------------------------------------------------- FCM

#[tokio::test]
async fn fcm_issues_an_access_token_and_records_an_accepted_push() {
    let fake = FakeFcm::start().await;
    let http = client(false);
    let token = access_token(&http, &fake).await;
    assert_eq!(token, "ya29.test-access-0");

    let (status, _, body) = fcm_send(&http, &fake, &token, &fcm_body("dev-1", "offer-1")).await;

    assert_eq!(status, 200);
    assert_eq!(
        body["name"],
        format!("projects/{}/messages/0", fcm::PROJECT_ID)
    );
    let deliveries = fake.wait_for_deliveries(1, WAIT).await.unwrap();
    let d = &deliveries[0];
    assert_eq!(d.platform, Platform::Fcm);
    assert_eq!(d.device_token, "dev-1");
    assert_eq!(d.collapse_key.as_deref(), Some("offer-1"));
    assert_eq!(d.data["kind"], "offer");
    assert_eq!(d.data["job_id"], "j-1");
    assert_eq!(d.title.as_deref(), Some("New job"));
    assert_eq!(d.text.as_deref(), Some("≈ 4 km away"));
    let request = &fake.requests()[0];
    assert_eq!(request.http_version, "HTTP/1.1");
    assert_eq!(
        request.header("Authorization"),
        Some("Bearer ya29.test-access-0")
    );
    assert_eq!(request.status, Some(200));
    assert_eq!(fake.access_tokens_issued(), 1);
    assert_eq!(fake.refused_assertions(), 0);
}

#[tokio::test]
async fn fcm_token_endpoint_refuses_a_wrong_grant_claim_or_signature() {
    let fake = FakeFcm::start().await;
    let http = client(false);
    let good = assertion_claims(&fake);
    let mut wrong_claims = Vec::new();
    for (field, value) in [
        ("iss", json!("someone@example.iam.gserviceaccount.com")),
        ("aud", json!("https://oauth2.googleapis.com/token")),
        (
            "scope",
            json!("https://www.googleapis.com/auth/cloud-platform"),
        ),
        ("exp", json!(good["iat"].as_i64().unwrap() + 3599)),
    ] {
        let mut claims = good.clone();
        claims[field] = value;
        wrong_claims.push(grant(&rs256(&claims)));
    }
    let valid = rs256(&good);
    let tampered = valid.replacen(".eyJ", ".eyK", 1);
    assert!(verify_rs256(&valid).is_ok());
    assert!(verify_rs256(&tampered).is_err());
    let forms = wrong_claims.into_iter().chain([
        grant(&tampered),
        format!("grant_type=client_credentials&assertion={valid}"),
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer".to_string(),
    ]);

    let mut refused = 0;
    for form in forms {
        let (status, body) = exchange(&http, &fake, form).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant");
        refused += 1;
    }

    assert_eq!(fake.refused_assertions(), refused);
    assert_eq!(fake.access_tokens_issued(), 0);
    assert_eq!(fake.request_count(), 0, "token requests are not pushes");
}

#[tokio::test]
async fn fcm_send_needs_an_issued_access_token_and_its_project() {
    let fake = FakeFcm::start().await;
    let http = client(false);
    let (status, _, body) = fcm_send(&http, &fake, "ya29.forged", &fcm_body("dev-1", "")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");

    let token = access_token(&http, &fake).await;
    let other = http
        .post(format!(
            "{}/v1/projects/other/messages:send",
            fake.base_url()
        ))
        .bearer_auth(&token)
        .json(&fcm_body("dev-1", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 403);

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].status, Some(401));
    assert_eq!(requests[0].device_token.as_deref(), Some("dev-1"));
    assert!(fake.deliveries().is_empty());
}

#[tokio::test]
async fn scripted_replies_come_in_order_and_a_token_rule_wins_without_using_one() {
    let fake = FakeFcm::start().await;
    let http = client(false);
    let token = access_token(&http, &fake).await;
    fake.queue_reply(Reply::fcm_unregistered());
    fake.queue_reply(
        Reply::fcm_error(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED")).with_retry_after(7),
    );
    fake.always_reply_to("dead", Reply::fcm_unregistered());

    let dead = fcm_send(&http, &fake, &token, &fcm_body("dead", "")).await;
    let first = fcm_send(&http, &fake, &token, &fcm_body("live", "")).await;
    let second = fcm_send(&http, &fake, &token, &fcm_body("live", "")).await;
    let third = fcm_send(&http, &fake, &token, &fcm_body("live", "")).await;
    let dead_again = fcm_send(&http, &fake, &token, &fcm_body("dead", "")).await;

    let unregistered = json!({"error": {"code": 404, "status": "NOT_FOUND", "details": [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}});
    assert_eq!((dead.0, &dead.2), (404, &unregistered));
    assert_eq!((first.0, &first.2), (404, &unregistered));
    assert_eq!(second.0, 429);
    assert_eq!(second.1["retry-after"], "7");
    assert_eq!(third.0, 200);
    assert_eq!(dead_again.0, 404);
    assert_eq!(fake.queued_replies(), 0);
    let delivered: Vec<String> = fake
        .deliveries()
        .into_iter()
        .map(|d| d.device_token)
        .collect();
    assert_eq!(delivered, ["live"]);

    fake.forget_token_rule("dead");
    assert_eq!(
        fcm_send(&http, &fake, &token, &fcm_body("dead", ""))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_reply_that_is_not_valid_http_is_answered_500_saying_why() {
    let fake = FakeFcm::start().await;
    let http = client(false);
    let token = access_token(&http, &fake).await;
    fake.queue_reply(Reply::new(200, json!({})).with_header("bad header", "x"));
    let (status, _, body) = fcm_send(&http, &fake, &token, &fcm_body("dev", "")).await;
    assert_eq!(status, 500);
    assert!(body["fake_error"].as_str().unwrap().contains("bad header"));
    assert_eq!(fake.requests()[0].status, Some(500));
}

#[tokio::test]
async fn the_service_account_file_points_at_the_fake() {
    let fake = FakeFcm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sa.json");
    fake.write_service_account(&path).unwrap();
    let account: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(account["token_uri"], fake.token_uri());
    assert_eq!(account["project_id"], fcm::PROJECT_ID);
    assert_eq!(account["client_email"], fcm::CLIENT_EMAIL);
    assert_eq!(account["private_key"], fcm::KEY_PEM);
    assert_eq!(
        std::fs::read_to_string(fcm::key_path()).unwrap(),
        fcm::KEY_PEM
    );
    assert_eq!(
        std::fs::read_to_string(apns::key_path()).unwrap(),
        apns::KEY_PEM
    );
}

// ---------------------------------------------------------------- APNs

#[tokio::test]
async fn apns_accepts_a_valid_push_over_http2_and_records_it() {
    let fake = FakeApns::start().await;
    let http = client(true);

    let response = apns_request(&http, &fake, APNS_DEVICE)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert!(response.headers().contains_key("apns-id"));
    let d = &fake.wait_for_deliveries(1, WAIT).await.unwrap()[0];
    assert_eq!(d.platform, Platform::Apns);
    assert_eq!(d.device_token, APNS_DEVICE);
    assert_eq!(d.collapse_key.as_deref(), Some("offer-1"));
    assert_eq!(
        d.data,
        [("job_id", "j-1"), ("kind", "offer")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    );
    assert_eq!(d.title.as_deref(), Some("New job"));
    let request = &fake.requests()[0];
    assert_eq!(request.http_version, "HTTP/2.0");
    assert_eq!(request.path, format!("/3/device/{APNS_DEVICE}"));
    assert_eq!(request.header("apns-topic"), Some(apns::TOPIC));
}

#[tokio::test]
async fn apns_refuses_what_apple_refuses() {
    let fake = FakeApns::start().await;
    let http = client(true);
    let stale = es256(
        &json!({"alg": "ES256", "kid": apns::KEY_ID}),
        &json!({"iss": apns::TEAM_ID, "iat": chrono::Utc::now().timestamp() - 3700}),
    );
    let other_kid = es256(
        &json!({"alg": "ES256", "kid": "OTHERKEY"}),
        &json!({"iss": apns::TEAM_ID, "iat": chrono::Utc::now().timestamp()}),
    );
    let tampered = provider_token().replacen(".eyJ", ".eyK", 1);
    assert!(verify_es256(&provider_token()).is_ok());
    assert!(verify_es256(&tampered).is_err());
    let ok = || apns_request(&http, &fake, APNS_DEVICE);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            http.get(format!("{}/3/device/{APNS_DEVICE}", fake.base_url())),
            405,
            "MethodNotAllowed",
        ),
        (
            apns_request(&http, &fake, "").header("x", "y"),
            404,
            "BadPath",
        ),
        (
            set(ok(), "authorization", "bearer x"),
            403,
            "InvalidProviderToken",
        ),
        (
            set(ok(), "authorization", &format!("bearer {tampered}")),
            403,
            "InvalidProviderToken",
        ),
        (
            set(ok(), "authorization", &format!("bearer {other_kid}")),
            403,
            "InvalidProviderToken",
        ),
        (
            set(ok(), "authorization", &format!("bearer {stale}")),
            403,
            "ExpiredProviderToken",
        ),
        (set(ok(), "apns-topic", "ch.other.app"), 400, "BadTopic"),
        (
            set(ok(), "apns-push-type", "background"),
            400,
            "InvalidPushType",
        ),
        (set(ok(), "apns-priority", "5"), 400, "BadPriority"),
        (
            set(ok(), "apns-expiration", "tomorrow"),
            400,
            "BadExpirationDate",
        ),
        (
            set(ok(), "apns-collapse-id", &"c".repeat(65)),
            400,
            "BadCollapseId",
        ),
        (apns_request(&http, &fake, "not-hex"), 400, "BadDeviceToken"),
        (
            ok().body(format!("{{\"aps\":{{}},\"pad\":\"{}\"}}", "x".repeat(4096))),
            413,
            "PayloadTooLarge",
        ),
    ];
    let count = cases.len();
    for (request, status, reason) in cases {
        assert_eq!(
            status_and_reason(request).await,
            (status, reason.to_string())
        );
    }
    let missing = http
        .post(format!("{}/3/device/{APNS_DEVICE}", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 403);
    assert_eq!(fake.request_count(), count + 1);
    assert_eq!(fake.delivery_count(), 0);
}

#[tokio::test]
async fn apns_token_rules_and_scripted_replies() {
    let fake = FakeApns::start().await;
    let http = client(true);
    let dead = "dead0000";
    fake.always_reply_to(dead, Reply::apns_unregistered());
    fake.queue_reply(Reply::apns_error(429, "TooManyRequests").with_retry_after(5));
    fake.queue_reply(Reply::apns_error(403, "ExpiredProviderToken"));

    let mut answers = Vec::new();
    for device in [dead, APNS_DEVICE, APNS_DEVICE, APNS_DEVICE] {
        let response = apns_request(&http, &fake, device).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").cloned();
        answers.push((response.status().as_u16(), retry_after));
    }

    assert_eq!(answers[0].0, 410);
    assert_eq!(answers[1].0, 429);
    assert_eq!(answers[1].1.as_ref().unwrap(), "5");
    assert_eq!(answers[2].0, 403);
    assert_eq!(answers[3].0, 200);
    assert_eq!(fake.delivery_count(), 1);
}

// ---------------------------------------------------------------- hold, waits, stop

#[tokio::test]
async fn held_pushes_are_recorded_at_once_and_answered_after_release() {
    let fake = FakeApns::start().await;
    let http = client(true);
    fake.hold();
    let sends: Vec<_> = (0..3)
        .map(|_| tokio::spawn(apns_request(&http, &fake, APNS_DEVICE).send()))
        .collect();

    let held = fake.wait_for_requests(3, WAIT).await.unwrap();
    assert!(held.iter().all(|r| r.status.is_none() && !r.abandoned));
    assert_eq!(fake.delivery_count(), 0);
    assert!(!sends.iter().any(|s| s.is_finished()));

    fake.release();
    for send in sends {
        assert_eq!(send.await.unwrap().unwrap().status().as_u16(), 200);
    }
    assert_eq!(fake.wait_for_deliveries(3, WAIT).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_held_fcm_push_whose_client_went_away_is_abandoned_not_delivered() {
    let fake = FakeFcm::start().await;
    let http = client(false);
    let token = access_token(&http, &fake).await;
    fake.hold();
    let url = format!(
        "{}/v1/projects/{}/messages:send",
        fake.base_url(),
        fcm::PROJECT_ID
    );
    let send = tokio::spawn(
        http.post(url)
            .bearer_auth(token)
            .json(&fcm_body("d", ""))
            .send(),
    );
    fake.wait_for_requests(1, WAIT).await.unwrap();

    // The client gives up, as a killed process would: its HTTP/1.1 connection closes.
    send.abort();
    drop(http);
    fake.wait_until(WAIT, |rs| rs[0].abandoned).await.unwrap();
    fake.release();

    assert_eq!(fake.requests()[0].status, None);
    assert_eq!(fake.delivery_count(), 0);
}

#[tokio::test]
async fn a_held_apns_push_whose_client_went_away_is_abandoned_not_delivered() {
    let fake = FakeApns::start().await;
    let http = client(true);
    fake.hold();
    let send = tokio::spawn(apns_request(&http, &fake, APNS_DEVICE).send());
    fake.wait_for_requests(1, WAIT).await.unwrap();

    // The client gives up, as a killed process would: its HTTP/2 stream and connection go.
    send.abort();
    drop(http);
    fake.wait_until(WAIT, |rs| rs[0].abandoned).await.unwrap();
    fake.release();

    assert_eq!(fake.requests()[0].status, None);
    assert_eq!(fake.delivery_count(), 0);
}

#[tokio::test]
async fn dropping_the_fake_ends_held_pushes_unanswered() {
    let fake = FakeApns::start().await;
    let http = client(true);
    fake.hold();
    let send = tokio::spawn(apns_request(&http, &fake, APNS_DEVICE).send());
    fake.wait_for_requests(1, WAIT).await.unwrap();
    let observer = fake.clone();

    observer.stop();
    drop(fake);

    let result = tokio::time::timeout(WAIT, send).await.unwrap().unwrap();
    assert!(result.is_err(), "a stopped fake answered: {result:?}");
    assert!(observer.requests()[0].abandoned);
    assert_eq!(observer.delivery_count(), 0);
    // And it no longer accepts connections.
    assert!(
        client(true)
            .post(format!("{}/3/device/{APNS_DEVICE}", observer.base_url()))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_wait_that_times_out_says_what_arrived() {
    let fake = FakeFcm::start().await;
    let http = client(false);
    fcm_send(&http, &fake, "ya29.forged", &fcm_body("d", "")).await;
    let err = fake
        .wait_for_deliveries(1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.contains("FakeFcm"), "{err}");
    assert!(err.contains("received 1 requests, answered [401]"), "{err}");
    assert!(err.contains("wanted 1 deliveries"), "{err}");
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_fake() {
    let fake = FakeFcm::start().await;
    let url = fake.token_uri();
    let copy = fake.clone();
    drop(fake);
    // A clone keeps it running.
    let http = client(false);
    assert_eq!(exchange(&http, &copy, String::new()).await.0, 400);

    drop(copy);

    assert!(client(false).post(url).send().await.is_err());
}
