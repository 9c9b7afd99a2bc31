//! The push clients against the loopback fakes of `friend-fakepush`: a fake FCM (HTTP/1.1) whose
//! token endpoint verifies the RS256 assertion with the public half of a test key, and a fake APNs
//! (HTTP/2 cleartext with prior knowledge) that verifies the ES256 provider token and the headers.
//! Both record what they receive and can be scripted to fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use friend_fakepush::{FakeApns, FakeFcm, Reply, apns as fake_apns, fcm as fake_fcm};
use friend_protocol::*;
use serde_json::json;

use super::apns::{ApnsClient, ApnsConfig};
use super::content::{Recipient, Update, offer_push, update_push};
use super::fcm::{FcmClient, ServiceAccount};
use super::jwt::pem_decode;
use super::{DEFAULT_RETRY_AFTER, Outcome, PushError, PushMessage};
use crate::clock::{Clock, ManualClock};

const FCM_DEVICE: &str = "fcm-device-token:APA91b-test";
const APNS_DEVICE: &str = "a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1";

// ---------------------------------------------------------------- FCM

struct Fcm {
    fake: FakeFcm,
    client: FcmClient,
    clock: Arc<ManualClock>,
}

/// A client for the fake's service account, signing as `email`.
async fn fcm_with(email: &str) -> Fcm {
    let fake = FakeFcm::start().await;
    let mut account = fake.service_account_json();
    account["client_email"] = json!(email);
    let account = ServiceAccount::from_json(&account.to_string()).unwrap();
    let clock = Arc::new(ManualClock::new());
    let client = FcmClient::new(account, &fake.base_url(), clock.clone()).unwrap();
    Fcm {
        fake,
        client,
        clock,
    }
}

async fn fcm() -> Fcm {
    fcm_with(fake_fcm::CLIENT_EMAIL).await
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
    let sends = f.fake.requests();
    assert_eq!(
        sends[0].path,
        format!("/v1/projects/{}/messages:send", fake_fcm::PROJECT_ID)
    );
    assert_eq!(
        sends[0].header("authorization"),
        Some("Bearer ya29.test-access-0")
    );
    let m = &sends[0].body["message"];
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
    let sends = f.fake.requests();
    assert_eq!(
        sends[3].header("authorization"),
        Some("Bearer ya29.test-access-0")
    );
    assert_eq!(
        sends[4].header("authorization"),
        Some("Bearer ya29.test-access-1")
    );
    assert_eq!(f.fake.refused_assertions(), 0);
}

#[tokio::test]
async fn fcm_token_endpoint_refuses_a_wrong_assertion() {
    // The fake verifies the claims: another issuer is refused, and the client reports AuthFailed.
    let f = fcm_with("someone-else@example.iam.gserviceaccount.com").await;
    assert_eq!(
        f.client.send(FCM_DEVICE, &message()).await.unwrap(),
        Outcome::AuthFailed
    );
    assert_eq!(f.fake.refused_assertions(), 1);
    assert!(f.fake.requests().is_empty());
    // And the signature: a tampered assertion does not verify against the test key's public half.
    let key = ring::signature::RsaKeyPair::from_pkcs8(
        &pem_decode(fake_fcm::KEY_PEM, "PRIVATE KEY").unwrap(),
    )
    .unwrap();
    let jwt = super::jwt::sign_rs256(&key, &json!({"alg": "RS256"}), &json!({"iss": "x"})).unwrap();
    assert!(friend_fakepush::jwt::verify_rs256(&jwt).is_ok());
    let tampered = jwt.replacen(".eyJ", ".eyK", 1);
    assert!(friend_fakepush::jwt::verify_rs256(&tampered).is_err());
}

#[tokio::test]
async fn fcm_failures_map_to_outcomes() {
    let f = fcm().await;
    let cases = vec![
        (
            // {"error": {"code": 404, "status": "NOT_FOUND", "details": [{"@type":
            // "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}
            Reply::fcm_unregistered(),
            Outcome::DeadToken,
        ),
        (
            Reply::new(
                400,
                json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                    "message": "The registration token is not a valid FCM registration token",
                    "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": "message.token"}]}]}}),
            ),
            Outcome::DeadToken,
        ),
        (
            Reply::new(
                400,
                json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                    "message": "Invalid value at 'message.android.ttl'"}}),
            ),
            Outcome::Failed("400 Bad Request INVALID_ARGUMENT".into()),
        ),
        (
            Reply::new(
                429,
                json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
                    {"errorCode": "QUOTA_EXCEEDED"}]}}),
            )
            .with_retry_after(7),
            Outcome::RetryAfter(Duration::from_secs(7)),
        ),
        (
            Reply::fcm_error(503, "UNAVAILABLE", None),
            Outcome::RetryAfter(DEFAULT_RETRY_AFTER),
        ),
        // A bare 404 (a wrong gateway URL, a proxy's page) says nothing about the device.
        (
            Reply::new(404, json!({"error": {"code": 404, "status": "NOT_FOUND"}})),
            Outcome::Failed("404 Not Found NOT_FOUND".into()),
        ),
        (
            Reply::new(502, json!({})),
            Outcome::RetryAfter(DEFAULT_RETRY_AFTER),
        ),
        (
            Reply::fcm_error(500, "INTERNAL", None).with_retry_after(12),
            Outcome::RetryAfter(Duration::from_secs(12)),
        ),
    ];
    for (scripted, expected) in cases {
        f.fake.queue_reply(scripted);
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
    let unauthenticated = || Reply::fcm_error(401, "UNAUTHENTICATED", None);
    // Refused once: a new access token, the push retried and delivered.
    f.fake.queue_reply(unauthenticated());
    assert_eq!(
        f.client.send(FCM_DEVICE, &message()).await.unwrap(),
        Outcome::Delivered
    );
    assert_eq!(f.client.token_exchanges(), 2);
    assert_eq!(f.fake.request_count(), 2);
    // Refused twice: one refresh, one retry, then AuthFailed.
    f.fake.queue_reply(unauthenticated());
    f.fake
        .queue_reply(Reply::fcm_error(403, "PERMISSION_DENIED", None));
    assert_eq!(
        f.client.send(FCM_DEVICE, &message()).await.unwrap(),
        Outcome::AuthFailed
    );
    assert_eq!(f.client.token_exchanges(), 3);
    assert_eq!(f.fake.request_count(), 4);
}

// ---------------------------------------------------------------- APNs

struct Apns {
    fake: FakeApns,
    client: ApnsClient,
    clock: Arc<ManualClock>,
}

async fn apns() -> Apns {
    let fake = FakeApns::start().await;
    let clock = Arc::new(ManualClock::new());
    let client = ApnsClient::new(
        ApnsConfig {
            key_pem: fake_apns::KEY_PEM.into(),
            key_id: fake_apns::KEY_ID.into(),
            team_id: fake_apns::TEAM_ID.into(),
            topic: fake_apns::TOPIC.into(),
            base_url: fake.base_url(),
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
    let requests = a.fake.requests();
    let request = &requests[0];
    assert_eq!(request.http_version, "HTTP/2.0");
    assert_eq!(request.path, format!("/3/device/{APNS_DEVICE}"));
    assert_eq!(request.header("apns-push-type"), Some("alert"));
    assert_eq!(request.header("apns-priority"), Some("10"));
    assert_eq!(request.header("apns-topic"), Some(fake_apns::TOPIC));
    assert_eq!(
        request.header("apns-collapse-id").unwrap(),
        format!("offer-{}", offer.id)
    );
    let expiration: i64 = request.header("apns-expiration").unwrap().parse().unwrap();
    assert!((expiration - offer.expires_at.timestamp()).abs() <= 2);
    let body = &request.body;
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
    let requests = a.fake.requests();
    let auth = |i: usize| requests[i].header("authorization").unwrap();
    assert_eq!(auth(0), auth(3));
    assert_ne!(auth(3), auth(4));
}

#[tokio::test]
async fn apns_failures_map_to_outcomes() {
    let a = apns().await;
    let cases = vec![
        (Reply::apns_unregistered(), Outcome::DeadToken),
        (Reply::apns_error(400, "BadDeviceToken"), Outcome::DeadToken),
        // Too many pushes to one device: that push waits, not the platform.
        (
            Reply::apns_error(429, "TooManyRequests").with_retry_after(5),
            Outcome::RetryDevice(Some(Duration::from_secs(5))),
        ),
        (
            Reply::apns_error(429, "TooManyRequests"),
            Outcome::RetryDevice(None),
        ),
        (
            Reply::apns_error(502, ""),
            Outcome::RetryAfter(DEFAULT_RETRY_AFTER),
        ),
        (
            Reply::apns_error(503, "ServiceUnavailable"),
            Outcome::RetryAfter(DEFAULT_RETRY_AFTER),
        ),
        (
            Reply::apns_error(413, "PayloadTooLarge"),
            Outcome::Failed("413 Payload Too Large PayloadTooLarge".into()),
        ),
    ];
    for (scripted, expected) in cases {
        a.fake.queue_reply(scripted);
        assert_eq!(
            a.client.send(APNS_DEVICE, &message()).await.unwrap(),
            expected
        );
    }
    // A token that is not hex is dead without a request.
    let before = a.fake.request_count();
    assert_eq!(
        a.client.send("../../admin", &message()).await.unwrap(),
        Outcome::DeadToken
    );
    assert_eq!(a.fake.request_count(), before);
    assert_eq!(a.client.tokens_signed(), 1);
}

#[tokio::test]
async fn apns_auth_failure_refreshes_once_then_reports() {
    let a = apns().await;
    let expired = || Reply::apns_error(403, "ExpiredProviderToken");
    a.client.send(APNS_DEVICE, &message()).await.unwrap();
    assert_eq!(a.client.tokens_signed(), 1);

    // Refused while younger than 20 min: never re-signed that soon; reported at once.
    a.fake.queue_reply(expired());
    assert_eq!(
        a.client.send(APNS_DEVICE, &message()).await.unwrap(),
        Outcome::AuthFailed
    );
    assert_eq!(a.client.tokens_signed(), 1);
    assert_eq!(a.fake.request_count(), 2);

    // Refused at 25 min: a new token, the push retried once and delivered.
    a.clock.advance(chrono::Duration::minutes(25));
    a.fake.queue_reply(expired());
    assert_eq!(
        a.client.send(APNS_DEVICE, &message()).await.unwrap(),
        Outcome::Delivered
    );
    assert_eq!(a.client.tokens_signed(), 2);
    assert_eq!(a.fake.request_count(), 4);

    // Refused twice (old token, then the fresh one): one refresh, one retry, AuthFailed.
    a.clock.advance(chrono::Duration::minutes(25));
    a.fake.queue_reply(expired());
    a.fake
        .queue_reply(Reply::apns_error(403, "InvalidProviderToken"));
    assert_eq!(
        a.client.send(APNS_DEVICE, &message()).await.unwrap(),
        Outcome::AuthFailed
    );
    assert_eq!(a.client.tokens_signed(), 3);
    assert_eq!(a.fake.request_count(), 6);
}

#[tokio::test]
async fn apns_collapse_id_over_64_bytes_is_refused() {
    let a = apns().await;
    let mut msg = message();
    msg.collapse_key = "é".repeat(32) + "x"; // 65 bytes, 33 characters
    let err = a.client.send(APNS_DEVICE, &msg).await.unwrap_err();
    assert!(matches!(err, PushError::InvalidMessage(_)), "{err}");
    assert_eq!(err.code(), "push_invalid_message");
    assert!(a.fake.requests().is_empty());
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
        visit: Default::default(),
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

/// The job update a job in `job.state` most plausibly announces.
fn job_update_push(job: &JobDetails, to: Recipient) -> PushMessage {
    let what = match job.state {
        JobState::Assigned => Update::Accepted,
        JobState::OnSite => Update::Arrived,
        JobState::Agreed => Update::PriceAgreed,
        JobState::Completed => Update::Completed,
        JobState::Expired => Update::Expired,
        JobState::Cancelled => Update::Cancelled,
        JobState::Escalated => Update::Escalated,
        JobState::Unsuccessful => Update::CheckedOut,
        _ => Update::SearchingAgain,
    };
    update_push(job, to, what)
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
