//! Draining an instance (SIGTERM, Ctrl-C): readiness off, every waiting long-poll answered at once
//! with what it has — the device comes back from the same cursor and loses no change —, requests
//! still served until the shutdown, and the process gone within the drain bound.

use friend_protocol::{Change, CreatedAccount, Readiness, SyncPage};
use friend_tests::{Http, TestBackend, booking_at, friend_at, places, wait_until};
use std::io::BufRead;
use std::time::{Duration, Instant};

/// Far below the long-polls' own 30 s wait: an answer within it came from the drain.
const BOUND: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_answers_every_waiting_long_poll_and_readiness_flips() {
    let tb = TestBackend::start().await;
    let http = tb.http();
    let ready: Readiness = http.get("/v1/ready", "").await.json();
    assert_eq!(ready.status, "ready");

    // 100 Friends long-polling, each from its cursor.
    let polls = tb.long_polls(&http, 100).await;
    let backend = tb.backend.clone();
    wait_until("100 long-polls waiting", BOUND, || {
        let n = backend.waiting_accounts();
        async move { n == 100 }
    })
    .await;
    let ready: Readiness = http.get("/v1/ready", "").await.json();
    assert_eq!(ready.waiting_long_polls, 100);

    let started = Instant::now();
    tb.backend.start_drain();
    TestBackend::assert_answered_empty(polls, BOUND).await;
    eprintln!(
        "drain answered 100 waiting long-polls in {:?}",
        started.elapsed()
    );

    let r = http.get("/v1/ready", "").await;
    assert_eq!((r.status, r.code()), (503, "unavailable".to_owned()));
    assert!(r.text().contains("draining"));
    assert_eq!(http.get("/v1/health", "").await.status, 200, "still alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_while_draining_reaches_the_device_from_its_cursor() {
    let tb = TestBackend::start().await;
    let http = tb.http();
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let heidi = tb.customer("Heidi").await;
    let cursor = http.sync(&anna, None, 0).await.json::<SyncPage>().cursor;

    tb.backend.start_drain();
    // A new long-poll does not wait on a draining instance.
    let page: SyncPage = tokio::time::timeout(BOUND, http.sync(&anna, Some(&cursor), 30))
        .await
        .expect("no waiting while draining")
        .json();
    assert!(page.changes.is_empty());
    // Writes are still served until the shutdown; the device, back from its cursor, gets them.
    let job = tb.book(&heidi, &booking_at(places::OERLIKON)).await;
    let page: SyncPage = http.sync(&anna, Some(&page.cursor), 0).await.json();
    assert!(
        page.changes
            .iter()
            .any(|c| matches!(c, Change::Offer { offer } if offer.id == job.id)),
        "the booking made while draining reached the device: {:?}",
        page.changes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_process_and_it_exits_within_the_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_backend-child"))
        .arg(dir.path().join("backend.db"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn backend-child");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a first line").expect("readable");
    let base = first
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let http = Http::new(&base);

    let mut polls = Vec::new();
    for i in 0..20 {
        let created: CreatedAccount = http
            .post(
                "/v1/admin/friends",
                "test-admin",
                None,
                &friend_at(&format!("F{i}"), places::BERN),
            )
            .await
            .json();
        let token = created.token;
        let page: SyncPage = http.get("/v1/sync", &token).await.json();
        let http = http.clone();
        polls.push(tokio::spawn(async move {
            http.get(&format!("/v1/sync?wait=30&cursor={}", page.cursor), &token)
                .await
                .status
        }));
    }
    wait_until("20 long-polls waiting in the child", BOUND, || {
        let http = http.clone();
        async move {
            let r = http.get("/v1/ready", "").await;
            r.status == 200 && r.json::<Readiness>().waiting_long_polls == 20
        }
    })
    .await;

    let started = Instant::now();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    for poll in polls {
        let status = tokio::time::timeout(BOUND, poll)
            .await
            .expect("answered by the drain")
            .expect("task");
        assert_eq!(status, 200);
    }
    let exited = tokio::task::spawn_blocking(move || {
        let status = child.wait().expect("wait");
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        (status, rest)
    });
    let (status, rest) = tokio::time::timeout(BOUND, exited)
        .await
        .expect("the process exits within the drain bound")
        .expect("waiter");
    assert!(status.success(), "{status:?}");
    assert_eq!(rest, ["stopped"]);
    eprintln!(
        "SIGTERM → 20 long-polls answered and the process gone in {:?}",
        started.elapsed()
    );
}

/// A connection that has sent nothing yet (or only the start of a request) is idle: the shutdown
/// closes it at once instead of waiting out the drain bound for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_sent_nothing_yet_do_not_hold_up_the_shutdown() {
    use tokio::io::AsyncWriteExt;
    let mut tb = TestBackend::start().await;
    let addr = tb.base_url.trim_start_matches("http://").to_owned();
    let _silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut half_preface = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half_preface.write_all(b"PRI * HT").await.unwrap();
    // A request answered on another connection: both silent ones were accepted before it.
    assert_eq!(tb.http().get("/v1/health", "").await.status, 200);
    // Within half the drain bound (10 s), which closes what is left when it runs out.
    tokio::time::timeout(Duration::from_secs(5), tb.shut_down())
        .await
        .expect("the shutdown waited for connections that never sent a request");
}
