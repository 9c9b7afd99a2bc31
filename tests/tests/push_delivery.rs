//! Platform push end to end (issue 13): the backend decides who is pushed, queues the pushes in
//! the transaction of the change and delivers them to loopback fakes of FCM and APNs that check
//! credentials and headers the way Google and Apple do.

use friend_fakepush::{FakeApns, FakeFcm, Reply, Request};
use friend_protocol::{Category, JobDetails, PushDevices, PushPlatform, PushTokenRequest};
use friend_tests::places::{BERN, OERLIKON, ZURICH};
use friend_tests::{Http, TestAccount, TestBackend, booking_at, friend_at, wait_until};
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A backend pushing to a fake FCM and a fake APNs.
struct Pushing {
    server: TestBackend,
    fcm: FakeFcm,
    apns: FakeApns,
    _dir: tempfile::TempDir,
}

impl Pushing {
    async fn start() -> Pushing {
        let dir = tempfile::tempdir().unwrap();
        let (server, fcm, apns) = TestBackend::start_pushing(dir.path()).await;
        Pushing {
            server,
            fcm,
            apns,
            _dir: dir,
        }
    }

    fn http(&self) -> Http {
        self.server.http()
    }

    async fn register(&self, who: &TestAccount, platform: PushPlatform, token: &str) -> u32 {
        let req = PushTokenRequest {
            platform,
            token: token.into(),
            replaces: None,
        };
        let r = self
            .http()
            .post("/v1/push-tokens", &who.token, None, &req)
            .await;
        assert_eq!(r.status, 200, "register: {}", r.text());
        r.json::<PushDevices>().devices
    }

    /// Waits until the dispatcher recorded `n` retries (a gateway's answer asking to wait).
    async fn retried(&self, n: u64, what: &str) {
        let backend = self.server.backend.clone();
        wait_until(what, WAIT, || {
            let backend = backend.clone();
            async move { backend.push_counts().retried == n }
        })
        .await;
    }

    /// The admin posts `body` to `path`; the answer must be 200.
    async fn admin(&self, path: &str, body: serde_json::Value) {
        let r = self
            .http()
            .post(path, self.server.backend.admin_token(), None, &body)
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }

    /// Waits until the push queue is empty: every push queued so far has been answered by a
    /// gateway (a push leaves the queue only then), so the fakes' records are final for it.
    async fn drained(&self) {
        let backend = self.server.backend.clone();
        wait_until("an empty push queue", WAIT, || {
            let backend = backend.clone();
            async move { backend.push_queue().await.unwrap().0 == 0 }
        })
        .await;
    }

    fn requests(&self) -> Vec<Request> {
        let mut all = self.fcm.requests();
        all.extend(self.apns.requests());
        all
    }

    /// Delivered pushes by device token: (kind, job id, collapse key).
    fn delivered(&self) -> BTreeMap<String, Vec<(String, String, String)>> {
        let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for d in self
            .fcm
            .deliveries()
            .into_iter()
            .chain(self.apns.deliveries())
        {
            out.entry(d.device_token.clone()).or_default().push((
                d.data.get("kind").cloned().unwrap_or_default(),
                d.data.get("job_id").cloned().unwrap_or_default(),
                d.collapse_key.clone().unwrap_or_default(),
            ));
        }
        out
    }
}

fn apns_token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// The personal data of `booking_at`: none may appear in any push. (The door code is searched
/// with its words: "4711" alone turns up in a random job id now and then.)
const PERSONAL: [&str; 8] = [
    "Hildegard",
    "Vertraulich",
    "+41 79 555",
    "Geheimweg",
    "Door code 4711",
    "bedroom",
    "47.3779",
    "8.5403",
];

fn assert_no_personal_data(requests: &[Request]) {
    assert!(!requests.is_empty());
    for r in requests {
        let text = format!("{} {:?}", r.body, r.headers);
        for marker in PERSONAL {
            assert!(!text.contains(marker), "{marker:?} in a push: {text}");
        }
    }
}

#[tokio::test]
async fn an_offer_reaches_exactly_the_eligible_background_devices() {
    let p = Pushing::start().await;
    let s = &p.server;
    let near = s.friend(friend_at("Nina Near", OERLIKON)).await;
    let near_ios = s.friend(friend_at("Ivo Phone", ZURICH)).await;
    let far = s.friend(friend_at("Bea Bern", BERN)).await;
    let mut tv_only = friend_at("Theo Tv", ZURICH);
    tv_only.categories = vec![Category::Tv];
    let tv_only = s.friend(tv_only).await;
    let poller = s.friend(friend_at("Paula Poll", ZURICH)).await;
    let _no_device = s.friend(friend_at("Nadia None", ZURICH)).await;
    let customer = s.customer("Hildegard Vertraulich").await;

    p.register(&near, PushPlatform::Fcm, "fcm-near").await;
    p.register(&near_ios, PushPlatform::Apns, &apns_token(1))
        .await;
    p.register(&far, PushPlatform::Fcm, "fcm-far").await;
    p.register(&tv_only, PushPlatform::Fcm, "fcm-tv").await;
    p.register(&poller, PushPlatform::Fcm, "fcm-poller").await;
    p.register(&customer, PushPlatform::Fcm, "fcm-customer")
        .await;

    // The poller's app is in the foreground: its long-poll waits when the job is booked.
    let (_, cursor) = friend_tests::scenario::drain(&p.http(), &poller, None).await;
    let http = p.http();
    let polling = poller.clone();
    let long_poll = tokio::spawn(async move { http.sync(&polling, Some(&cursor), 25).await });
    let backend = s.backend.clone();
    wait_until("the poller's long-poll to wait", WAIT, || {
        let backend = backend.clone();
        async move { backend.waiting_accounts() == 1 }
    })
    .await;

    let job: JobDetails = s.book(&customer, &booking_at(ZURICH)).await;
    let woken = long_poll.await.unwrap();
    assert_eq!(woken.status, 200);
    assert!(
        woken.text().contains(&job.id.to_string()),
        "the long-poll hears of the job"
    );
    p.drained().await;

    let id = job.id.to_string();
    let offer = ("offer".to_string(), id.clone(), format!("offer-{id}"));
    let expected: BTreeMap<String, Vec<_>> = [
        ("fcm-near".to_string(), vec![offer.clone()]),
        (apns_token(1), vec![offer.clone()]),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        p.delivered(),
        expected,
        "only the eligible background devices"
    );
    assert_eq!(p.server.backend.push_counts().sent, 2);
    assert_no_personal_data(&p.requests());
    let near_push = p
        .fcm
        .deliveries()
        .into_iter()
        .find(|d| d.device_token == "fcm-near")
        .unwrap();
    assert_eq!(near_push.data["category"], "network");
    assert!(near_push.data["distance_km"].parse::<u32>().unwrap() <= 6);

    // The accept tells the customer (a job update with the Friend's first name at most).
    let r = p.http().accept(&near, job.id, "accept-1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    p.drained().await;
    let to_customer: Vec<_> = p
        .fcm
        .deliveries()
        .into_iter()
        .filter(|d| d.device_token == "fcm-customer")
        .collect();
    assert_eq!(to_customer.len(), 1);
    assert_eq!(to_customer[0].data["kind"], "job");
    assert_eq!(to_customer[0].data["state"], "assigned");
    assert_eq!(to_customer[0].data["friend_first_name"], "Nina");
    assert_eq!(
        to_customer[0].collapse_key.as_deref(),
        Some(&*format!("job-{id}"))
    );
    assert_no_personal_data(&p.requests());
}

#[tokio::test]
async fn a_dead_token_is_forgotten() {
    let p = Pushing::start().await;
    let s = &p.server;
    let android = s.friend(friend_at("Dora Dead", ZURICH)).await;
    let ios = s.friend(friend_at("Ian Dead", OERLIKON)).await;
    let customer = s.customer("C").await;
    p.register(&android, PushPlatform::Fcm, "fcm-dead").await;
    p.register(&ios, PushPlatform::Apns, &apns_token(7)).await;
    p.fcm.always_reply_to("fcm-dead", Reply::fcm_unregistered());
    p.apns
        .always_reply_to(&apns_token(7), Reply::apns_unregistered());

    s.book(&customer, &booking_at(ZURICH)).await;
    p.drained().await;

    assert_eq!(p.server.backend.push_counts().dead_tokens, 2);
    assert!(s.backend.push_devices(android.id).await.unwrap().is_empty());
    assert!(s.backend.push_devices(ios.id).await.unwrap().is_empty());
    // A second job is pushed to nobody.
    s.book(&customer, &booking_at(ZURICH)).await;
    p.drained().await;
    assert_eq!(p.requests().len(), 2);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let p = Pushing::start().await;
    let s = &p.server;
    let friend = s.friend(friend_at("Rita Retry", ZURICH)).await;
    let customer = s.customer("C").await;
    p.register(&friend, PushPlatform::Fcm, "fcm-retry").await;
    p.fcm.queue_reply(
        Reply::fcm_error(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED")).with_retry_after(30),
    );

    s.book(&customer, &booking_at(ZURICH)).await;
    p.retried(1, "the 429 to be recorded").await;
    // The server clock has not moved: the push waits for its Retry-After.
    assert_eq!(s.backend.push_queue().await.unwrap().0, 1);
    assert_eq!(p.fcm.request_count(), 1);
    assert_eq!(p.fcm.delivery_count(), 0);

    s.clock.advance(chrono::Duration::seconds(31));
    s.backend.kick_push();
    p.fcm.wait_for_deliveries(1, WAIT).await.unwrap();
    p.drained().await;
    assert_eq!(p.fcm.request_count(), 2);
    assert_eq!(s.backend.push_counts().sent, 1);
}

#[tokio::test]
async fn a_throttled_iphone_waits_alone() {
    let p = Pushing::start().await;
    let s = &p.server;
    let busy = s.friend(friend_at("Bea Busy", ZURICH)).await;
    let calm = s.friend(friend_at("Cleo Calm", ZURICH)).await;
    let customer = s.customer("C").await;
    p.register(&busy, PushPlatform::Apns, &apns_token(21)).await;
    p.register(&calm, PushPlatform::Apns, &apns_token(22)).await;
    // Apple: too many pushes to this one device (no Retry-After, as Apple sends it).
    p.apns
        .always_reply_to(&apns_token(21), Reply::apns_error(429, "TooManyRequests"));

    s.book(&customer, &booking_at(ZURICH)).await;
    // The other iPhone's offer goes out; it is not held behind the busy one.
    p.apns.wait_for_deliveries(1, WAIT).await.unwrap();
    assert_eq!(p.apns.deliveries()[0].device_token, apns_token(22));
    p.retried(1, "the 429 to be recorded").await;
    // A second booking's pushes go out at once too: no platform-wide pause.
    s.book(&customer, &booking_at(ZURICH)).await;
    p.apns.wait_for_deliveries(2, WAIT).await.unwrap();

    // The busy device's pushes wait for their own back-off, then go once it accepts them.
    p.apns.forget_token_rule(&apns_token(21));
    s.clock.advance(chrono::Duration::seconds(5));
    s.backend.kick_push();
    p.apns.wait_for_deliveries(4, WAIT).await.unwrap();
    p.drained().await;
}

#[tokio::test]
async fn suspending_a_friend_withdraws_the_offers_still_queued_for_them() {
    let p = Pushing::start().await;
    let s = &p.server;
    let friend = s.friend(friend_at("Sina Suspended", ZURICH)).await;
    let customer = s.customer("C").await;
    p.register(&friend, PushPlatform::Fcm, "fcm-suspended")
        .await;
    // FCM asks to wait: the offer stays queued (the server clock does not move).
    p.fcm
        .queue_reply(Reply::fcm_error(503, "UNAVAILABLE", None).with_retry_after(30));
    s.book(&customer, &booking_at(ZURICH)).await;
    p.retried(1, "the 503 to be recorded").await;
    assert_eq!(s.backend.push_queue().await.unwrap().0, 1);

    p.admin(
        &format!("/v1/admin/friends/{}/suspend", friend.id),
        serde_json::json!({ "reason": "documents expired" }),
    )
    .await;
    assert_eq!(s.backend.push_queue().await.unwrap().0, 0, "withdrawn");
    s.clock.advance(chrono::Duration::seconds(31));
    s.backend.kick_push();
    p.drained().await;
    assert_eq!(
        p.fcm.delivery_count(),
        0,
        "no offer reached the suspended Friend"
    );
}

#[tokio::test]
async fn a_new_qualification_withdraws_only_the_queued_offers_it_no_longer_allows() {
    let p = Pushing::start().await;
    let s = &p.server;
    let friend = s.friend(friend_at("Tara Requalified", ZURICH)).await;
    let customer = s.customer("C").await;
    p.register(&friend, PushPlatform::Fcm, "fcm-requalified")
        .await;
    // FCM keeps asking to wait for this device: its offers stay queued.
    p.fcm.always_reply_to(
        "fcm-requalified",
        Reply::fcm_error(503, "UNAVAILABLE", None).with_retry_after(60),
    );
    let network = s.book(&customer, &booking_at(ZURICH)).await;
    let mut tv = booking_at(ZURICH);
    tv.service_id = "tv.setup".into();
    let tv = s.book(&customer, &tv).await;
    // The first answer holds the gateway for 60 s (server clock, which does not move here).
    p.retried(1, "the 503 to be recorded").await;
    assert_eq!(s.backend.push_queue().await.unwrap().0, 2);

    // TV only from now on: the network offer goes, the TV offer stays.
    p.admin(
        &format!("/v1/admin/friends/{}/profile", friend.id),
        serde_json::json!({ "categories": ["tv"] }),
    )
    .await;
    assert_eq!(s.backend.push_queue().await.unwrap().0, 1);
    p.fcm.forget_token_rule("fcm-requalified");
    s.clock.advance(chrono::Duration::seconds(61));
    s.backend.kick_push();
    p.fcm.wait_for_deliveries(1, WAIT).await.unwrap();
    p.drained().await;
    let sent = p.fcm.deliveries();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].data["job_id"], tv.id.to_string(), "{network:?}");
}

#[tokio::test]
async fn a_device_token_moves_and_is_replaced() {
    let p = Pushing::start().await;
    let s = &p.server;
    let a = s.friend(friend_at("Alma", ZURICH)).await;
    let b = s.friend(friend_at("Berta", ZURICH)).await;
    assert_eq!(p.register(&a, PushPlatform::Fcm, "shared-phone").await, 1);
    assert_eq!(p.register(&a, PushPlatform::Fcm, "shared-phone").await, 1);
    // The same phone, signed in to another account: the token moves.
    assert_eq!(p.register(&b, PushPlatform::Fcm, "shared-phone").await, 1);
    assert!(s.backend.push_devices(a.id).await.unwrap().is_empty());
    // A rotated token replaces the old one.
    let req = PushTokenRequest {
        platform: PushPlatform::Fcm,
        token: "rotated".into(),
        replaces: Some("shared-phone".into()),
    };
    let r = p.http().post("/v1/push-tokens", &b.token, None, &req).await;
    assert_eq!(r.json::<PushDevices>().devices, 1);
    // Removing it leaves none; removing it again is fine.
    for _ in 0..2 {
        let r = p
            .http()
            .post(
                "/v1/push-tokens/remove",
                &b.token,
                None,
                &serde_json::json!({ "token": "rotated" }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json::<PushDevices>().devices, 0);
    }
    // Bad input is refused with a typed error.
    for body in [
        serde_json::json!({ "platform": "web", "token": "x" }),
        serde_json::json!({ "platform": "apns", "token": "not-hex" }),
        serde_json::json!({ "platform": "fcm", "token": "" }),
        serde_json::json!({ "platform": "fcm", "token": "a b" }),
    ] {
        let r = p
            .http()
            .post("/v1/push-tokens", &a.token, None, &body)
            .await;
        friend_tests::assert_refused(&r, 400, "invalid_input", None);
    }
}

/// A backend killed between committing a booking and hearing the gateway's answer delivers every
/// push after its restart, once per device and collapse key.
#[tokio::test]
async fn pushes_survive_a_sigkill_between_commit_and_delivery() {
    use std::io::BufRead;
    let fcm = FakeFcm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("fcm.json");
    fcm.write_service_account(&credentials).unwrap();
    let db = dir.path().join("backend.db");
    let start = || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_backend-child"))
            .arg(&db)
            .arg(&credentials)
            .arg(fcm.base_url())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn backend-child");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().strip_prefix("listening ").unwrap().to_string();
        (child, url)
    };

    let (mut first, url) = start();
    let http = Http::new(&url);
    let mut friends = Vec::new();
    for (i, home) in [ZURICH, OERLIKON, ZURICH].into_iter().enumerate() {
        let r = http
            .post(
                "/v1/admin/friends",
                "test-admin",
                None,
                &friend_at(&format!("F{i}"), home),
            )
            .await;
        let created: friend_protocol::CreatedAccount = r.json();
        let who = TestAccount {
            id: created.id,
            token: created.token,
        };
        let req = PushTokenRequest {
            platform: PushPlatform::Fcm,
            token: format!("fcm-{i}"),
            replaces: None,
        };
        assert_eq!(
            http.post("/v1/push-tokens", &who.token, None, &req)
                .await
                .status,
            200
        );
        friends.push(who);
    }
    let r = http
        .post(
            "/v1/admin/customers",
            "test-admin",
            None,
            &serde_json::json!({ "name": "C" }),
        )
        .await;
    let customer: friend_protocol::CreatedAccount = r.json();

    fcm.hold();
    let booked = http
        .post(
            "/v1/customer/jobs",
            &customer.token,
            Some("book-1"),
            &booking_at(ZURICH),
        )
        .await;
    assert_eq!(booked.status, 200, "{}", booked.text());
    fcm.wait_for_requests(3, WAIT).await.unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    fcm.wait_until(WAIT, |rs| rs.iter().all(|r| r.abandoned))
        .await
        .unwrap();
    fcm.release();
    assert_eq!(fcm.delivery_count(), 0);

    let (mut second, _) = start();
    let delivered = fcm.wait_for_deliveries(3, WAIT).await;
    // The queue empties once every delivery is recorded; then nothing more can be sent.
    let queued = || {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        conn.query_row("SELECT COUNT(*) FROM push_queue", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    };
    wait_until(
        "the restarted backend to empty its push queue",
        WAIT,
        || {
            let n = queued();
            async move { n == 0 }
        },
    )
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
    let delivered = delivered.unwrap();
    let mut seen: Vec<(String, Option<String>)> = fcm
        .deliveries()
        .into_iter()
        .map(|d| (d.device_token, d.collapse_key))
        .collect();
    seen.sort();
    let job: friend_protocol::JobResponse = booked.json();
    let key = Some(format!("offer-{}", job.job.id));
    assert_eq!(
        seen,
        vec![
            ("fcm-0".to_string(), key.clone()),
            ("fcm-1".to_string(), key.clone()),
            ("fcm-2".to_string(), key.clone()),
        ],
        "exactly once per device and collapse key: {delivered:?}"
    );
}

/// A device that stops long-polling (the app went to the background, the connection is closed)
/// counts as awake no longer: the next offer is pushed to it.
#[tokio::test]
async fn a_long_poll_given_up_by_the_device_no_longer_suppresses_pushes() {
    let p = Pushing::start().await;
    let s = &p.server;
    let friend = s.friend(friend_at("Gina Gone", ZURICH)).await;
    let customer = s.customer("C").await;
    p.register(&friend, PushPlatform::Fcm, "fcm-gone").await;
    let (_, cursor) = friend_tests::scenario::drain(&p.http(), &friend, None).await;
    let url = format!("{}/v1/sync?cursor={cursor}&wait=25", s.base_url);
    let token = friend.token.clone();
    let long_poll = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
    });
    let backend = s.backend.clone();
    wait_until("the long-poll to wait", WAIT, || {
        let backend = backend.clone();
        async move { backend.waiting_accounts() == 1 }
    })
    .await;
    // The app goes to the background: its request is dropped and the connection closed.
    long_poll.abort();
    let _ = long_poll.await;
    wait_until("the backend to notice the closed long-poll", WAIT, || {
        let backend = backend.clone();
        async move { backend.waiting_accounts() == 0 }
    })
    .await;
    let job = s.book(&customer, &booking_at(ZURICH)).await;
    p.fcm.wait_for_deliveries(1, WAIT).await.unwrap();
    assert_eq!(p.fcm.deliveries()[0].data["job_id"], job.id.to_string());
}

/// "On my way" reaches the customer with the estimate; a release tells the customer the search
/// goes on and offers the job again to the other eligible Friends, not to the one who gave it back.
#[tokio::test]
async fn on_my_way_and_a_release_are_pushed() {
    let p = Pushing::start().await;
    let s = &p.server;
    let holder = s.friend(friend_at("Hana Holder", ZURICH)).await;
    let other = s.friend(friend_at("Olga Other", OERLIKON)).await;
    let customer = s.customer("Hildegard Vertraulich").await;
    p.register(&holder, PushPlatform::Fcm, "fcm-holder").await;
    p.register(&other, PushPlatform::Fcm, "fcm-other").await;
    p.register(&customer, PushPlatform::Apns, &apns_token(9))
        .await;
    let job = s.book(&customer, &booking_at(ZURICH)).await;
    assert_eq!(p.http().accept(&holder, job.id, "a-1").await.status, 200);
    p.drained().await;

    let eta = s.clock_now() + chrono::Duration::minutes(18);
    let r = p
        .http()
        .post(
            &format!("/v1/friend/jobs/{}/on-my-way", job.id),
            &holder.token,
            None,
            &serde_json::json!({ "eta": eta.to_rfc3339() }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    p.drained().await;
    let last = p.apns.deliveries().pop().unwrap();
    assert_eq!(last.data["state"], "assigned");
    assert_eq!(last.data["eta"], eta.timestamp_millis().to_string());
    assert!(
        last.text.as_deref().unwrap().contains("on the way"),
        "{:?}",
        last.text
    );

    let before = p.fcm.delivery_count();
    let r = p
        .http()
        .post(
            &format!("/v1/friend/jobs/{}/release", job.id),
            &holder.token,
            None,
            &serde_json::json!({ "reason": "cannot_come" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    p.drained().await;
    let offers: Vec<String> = p.fcm.deliveries()[before..]
        .iter()
        .map(|d| d.device_token.clone())
        .collect();
    assert_eq!(offers, vec!["fcm-other".to_string()]);
    let last = p.apns.deliveries().pop().unwrap();
    assert_eq!(last.text.as_deref(), Some("Looking for another Friend"));
    assert_no_personal_data(&p.requests());
}

/// Never two pushes in flight for one device and collapse key: a newer one waits for the answer to
/// the older, then replaces it (the device ends with the newest state).
#[tokio::test]
async fn a_newer_push_waits_for_the_one_in_flight_with_its_collapse_key() {
    let p = Pushing::start().await;
    let s = &p.server;
    let friend = s.friend(friend_at("Fritz", ZURICH)).await;
    let customer = s.customer("C").await;
    p.register(&customer, PushPlatform::Fcm, "fcm-customer")
        .await;
    let job = s.book(&customer, &booking_at(ZURICH)).await;
    p.fcm.hold();
    assert_eq!(p.http().accept(&friend, job.id, "a-1").await.status, 200);
    p.fcm.wait_for_requests(1, WAIT).await.unwrap();
    let check_in = p
        .http()
        .post(
            &format!("/v1/friend/jobs/{}/check-in", job.id),
            &friend.token,
            None,
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(check_in.status, 200, "{}", check_in.text());
    let released_at = chrono::Utc::now();
    p.fcm.release();
    p.fcm.wait_for_deliveries(2, WAIT).await.unwrap();
    p.drained().await;
    let requests = p.fcm.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].data()["state"], "assigned");
    assert_eq!(requests[1].data()["state"], "on_site");
    assert!(
        requests[1].received_at >= released_at,
        "the newer push was sent while the older one was in flight"
    );
}

/// Without push configuration the backend starts and counts the pushes it would send.
#[tokio::test]
async fn without_gateways_pushes_are_counted_not_sent() {
    let s = TestBackend::start().await;
    let friend = s.friend(friend_at("Zora", ZURICH)).await;
    let customer = s.customer("C").await;
    let req = PushTokenRequest {
        platform: PushPlatform::Fcm,
        token: "fcm-nowhere".into(),
        replaces: None,
    };
    let r = s
        .http()
        .post("/v1/push-tokens", &friend.token, None, &req)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.book(&customer, &booking_at(ZURICH)).await;
    let backend = s.backend.clone();
    wait_until("the push to be counted", WAIT, || {
        let backend = backend.clone();
        async move { backend.push_counts().unconfigured == 1 }
    })
    .await;
    assert!(s.backend.push_gateways().is_empty());
    assert_eq!(s.backend.push_counts().sent, 0);
}
