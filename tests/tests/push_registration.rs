//! The device side of platform push (issue 13), through the real core against the in-process
//! backend: a push token registered offline is delivered when the device is back online, a new
//! token replaces the old one on the backend (an older one still queued never reaches it),
//! unregistering forgets it, and no token is ever in clear in the device's files. A push that
//! reaches the (fake) gateway wakes the device: its payload handed to `on_push` brings the offer;
//! a garbage payload is a plain sync.

use friend_backend::push::{FcmSettings, PushSettings};
use friend_core::outbox::push::{DEVICE_QUEUE, token_tag};
use friend_core::store::outbox::ItemStatus;
use friend_core::{Action, InboxFilter, Session};
use friend_fakepush::FakeFcm;
use friend_protocol::{AccountId, PushPlatform};
use friend_tests::proxy::FaultProxy;
use friend_tests::{
    TestBackend, booking_at, friend_at, open_customer, open_friend, places, point, wait_until,
};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const APNS: &str = "0f1e2d3c4b5a69780f1e2d3c4b5a69780f1e2d3c4b5a69780f1e2d3c4b5a6978";

/// What the backend holds for `account`: (platform, token tag), sorted.
async fn on_backend(tb: &TestBackend, account: AccountId) -> Vec<(PushPlatform, String)> {
    let mut devices = tb.backend.push_devices(account).await.unwrap();
    devices.sort_by(|a, b| a.1.cmp(&b.1));
    devices
}

fn fcm(token: &str) -> Vec<(PushPlatform, String)> {
    vec![(PushPlatform::Fcm, token_tag(token))]
}

/// The push-token actions still pending, as (token, replaces).
async fn queued(s: &Session) -> Vec<(String, Option<String>)> {
    s.outbox()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.status == ItemStatus::Pending)
        .map(|i| {
            assert_eq!(i.job_id, DEVICE_QUEUE, "the device's own queue");
            match i.action {
                Action::PushToken {
                    token, replaces, ..
                } => (
                    token.as_str().to_owned(),
                    replaces.map(|r| r.as_str().to_owned()),
                ),
                Action::PushTokenRemoval { token } => (format!("-{}", token.as_str()), None),
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect()
}

fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .map(|p| p.display().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_registered_offline_arrives_online_and_a_new_one_replaces_it() {
    let tb = TestBackend::start().await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let proxy = FaultProxy::start(tb.base_url.trim_start_matches("http://").parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let friend = open_friend(&proxy.url(), &anna, &dir.path().join("anna.db")).await;
    friend.sync_once().await.unwrap();

    // Registered in a tunnel: queued, kept through a failed round, nothing on the backend yet.
    proxy.go_offline();
    let id = friend
        .register_push_token(PushPlatform::Fcm, "fcm-token-1")
        .await
        .unwrap();
    assert!(id.is_some());
    assert_eq!(friend.deliver_outbox().await.unwrap(), 0);
    assert_eq!(friend.sync_status().pending_outbox, 1);
    assert!(on_backend(&tb, anna.id).await.is_empty());

    // Back online: one round delivers it.
    proxy.go_online();
    friend.sync_once().await.unwrap();
    assert_eq!(friend.sync_status().pending_outbox, 0);
    assert_eq!(on_backend(&tb, anna.id).await, fcm("fcm-token-1"));
    let applied = friend.outbox().await.unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].status, ItemStatus::Applied);

    // The same token again sends nothing; a rotated one replaces it.
    assert_eq!(
        friend
            .register_push_token(PushPlatform::Fcm, "fcm-token-1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(friend.outbox().await.unwrap().len(), 1, "no new item");
    friend
        .register_push_token(PushPlatform::Fcm, "fcm-token-2")
        .await
        .unwrap()
        .unwrap();
    friend.sync_once().await.unwrap();
    assert_eq!(on_backend(&tb, anna.id).await, fcm("fcm-token-2"));

    // Offline again, three rotations: the first may be on its way and stays; the second never
    // leaves the device (the third supersedes it and replaces what the first leaves behind).
    proxy.go_offline();
    for token in ["fcm-token-3", "fcm-token-4", "fcm-token-5"] {
        friend
            .register_push_token(PushPlatform::Fcm, token)
            .await
            .unwrap()
            .unwrap();
    }
    let _ = friend.deliver_outbox().await;
    assert_eq!(
        queued(&friend).await,
        [
            ("fcm-token-3".into(), Some("fcm-token-2".into())),
            ("fcm-token-5".into(), Some("fcm-token-3".into())),
        ]
    );
    proxy.go_online();
    friend.sync_once().await.unwrap();
    wait_until("the outbox to drain", WAIT, || {
        let pending = friend.sync_status().pending_outbox;
        async move { pending == 0 }
    })
    .await;
    assert_eq!(
        on_backend(&tb, anna.id).await,
        fcm("fcm-token-5"),
        "only the newest token is left"
    );

    // Sign-out: the token is removed, once.
    assert!(friend.unregister_push_token().await.unwrap().is_some());
    assert_eq!(friend.unregister_push_token().await.unwrap(), None);
    friend.sync_once().await.unwrap();
    assert!(on_backend(&tb, anna.id).await.is_empty());
    assert_eq!(friend.sync_status().refused_outbox, 0);

    // No token was ever written in clear (outbox rows and meta are sealed).
    friend.shutdown();
    drop(friend);
    for n in 1..=5 {
        let token = format!("fcm-token-{n}");
        assert!(
            files_holding(dir.path(), &token).is_empty(),
            "{token} in clear"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_registers_an_apns_token_and_a_bad_one_is_refused_before_queueing() {
    let tb = TestBackend::start().await;
    let heidi = tb.customer("Heidi").await;
    let dir = tempfile::tempdir().unwrap();
    let customer = open_customer(&tb.base_url, &heidi, &dir.path().join("heidi.db")).await;

    let e = customer
        .register_push_token(PushPlatform::Apns, "not-hex")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    assert!(customer.outbox().await.unwrap().is_empty());

    // A development build, then the same token in the production environment (a release build
    // on the same phone): the backend holds the latest.
    for platform in [PushPlatform::ApnsSandbox, PushPlatform::Apns] {
        customer
            .register_push_token(platform, APNS)
            .await
            .unwrap()
            .unwrap();
        customer.sync_once().await.unwrap();
        assert_eq!(
            on_backend(&tb, heidi.id).await,
            [(platform, token_tag(APNS))]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_wakes_the_device_and_its_payload_brings_the_offer() {
    let gateway = FakeFcm::start().await;
    let keys = tempfile::tempdir().unwrap();
    let credentials = keys.path().join("fcm.json");
    gateway.write_service_account(&credentials).unwrap();
    let tb = TestBackend::start_with_push(PushSettings {
        fcm: Some(FcmSettings {
            credentials,
            url: Some(gateway.base_url()),
        }),
        ..PushSettings::default()
    })
    .await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let heidi = tb.customer("Heidi").await;
    let dir = tempfile::tempdir().unwrap();
    let friend = open_friend(&tb.base_url, &anna, &dir.path().join("anna.db")).await;
    friend
        .register_push_token(PushPlatform::Fcm, "fcm-anna-phone")
        .await
        .unwrap();
    friend.sync_once().await.unwrap();
    assert_eq!(on_backend(&tb, anna.id).await, fcm("fcm-anna-phone"));

    // The app is in the background (no long-poll): the booking reaches it as a push.
    let job = tb.book(&heidi, &booking_at(places::OERLIKON)).await;
    let pushes = || {
        gateway
            .deliveries()
            .into_iter()
            .filter(|d| d.device_token == "fcm-anna-phone")
            .collect::<Vec<_>>()
    };
    wait_until("the push at the gateway", WAIT, || {
        let n = pushes().len();
        async move { n == 1 }
    })
    .await;
    let push = pushes().remove(0);
    assert_eq!(push.data["job_id"], job.id.to_string());
    let inbox = || async {
        friend
            .inbox(point(places::ZURICH), 30.0, InboxFilter::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|i| i.offer.id)
            .collect::<Vec<_>>()
    };
    assert!(inbox().await.is_empty(), "not synced yet");

    // What Android hands the app (the data map), as JSON: one round brings the offer.
    let payload = serde_json::to_string(&push.data).unwrap();
    let report = friend.on_push(&payload).await.unwrap();
    assert!(report.changes >= 1, "{report:?}");
    assert_eq!(inbox().await, [job.id]);

    // Anything else is a plain sync, never an error: garbage, an APNs userInfo, an unknown job.
    for junk in [
        String::new(),
        "{".to_owned(),
        "[1,2]".to_owned(),
        r#"{"kind":"party","job_id":42}"#.to_owned(),
        format!(
            r#"{{"aps":{{"alert":{{"title":"x"}}}},"kind":"job","job_id":"{}"}}"#,
            friend_protocol::JobId::random()
        ),
    ] {
        let report = friend.on_push(&junk).await.unwrap();
        assert_eq!(report.changes, 0, "{junk:?}");
    }
    assert_eq!(inbox().await, [job.id]);
}
