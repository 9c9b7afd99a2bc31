//! Several backend instances on one PostgreSQL database (docs/adr/0014): the accept race stays
//! exact across instances, a retry may land anywhere, a commit on one instance wakes a long-poll
//! held by another, a killed instance loses no acknowledged accept and makes no second winner,
//! the expiry sweep runs on one instance — and moves when that one drains —, and a token rotated
//! through one instance is soon refused by the others.

use friend_protocol::{AcceptOutcome, SyncPage};
use friend_tests::scenario::{all_at_once, drain, sole_winner};
use friend_tests::{Http, TestAccount, TestBackend, booking_at, friend_at, places, wait_until};
use std::io::BufRead;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_friends_on_three_instances_race_fifty_rounds_with_one_winner_each() {
    let instances = TestBackend::start_instances(3, None).await;
    let http: Vec<Http> = instances.iter().map(TestBackend::http).collect();
    let customer = instances[0].customer("Heidi").await;
    let mut friends = Vec::new();
    for i in 0..200 {
        let f = instances[i % 3]
            .friend(friend_at(&format!("Friend {i}"), places::ZURICH))
            .await;
        friends.push((i % 3, f));
    }
    for round in 0..50 {
        let job = instances[round % 3]
            .book(&customer, &booking_at(places::OERLIKON))
            .await;
        let outcomes = all_at_once(&friends, |(at, f)| {
            let (http, f) = (http[*at].clone(), f.clone());
            async move {
                let r = http.accept(&f, job.id, &key()).await;
                assert_eq!(r.status, 200, "{}", r.text());
                (f.id, r.json::<AcceptOutcome>())
            }
        })
        .await;
        let winner = Some(sole_winner(round, outcomes));
        // Every instance tells the customer the same winner.
        for h in &http {
            let r = h
                .get(&format!("/v1/customer/jobs/{}", job.id), &customer.token)
                .await;
            let details: friend_protocol::JobDetails = r.json();
            assert_eq!(details.friend.map(|f| f.id), winner, "round {round}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_on_one_instance_is_won_on_another() {
    let instances = TestBackend::start_instances(3, None).await;
    let customer = instances[0].customer("Heidi").await;
    let anna = instances[0].friend(friend_at("Anna", places::ZURICH)).await;
    let luca = instances[0].friend(friend_at("Luca", places::ZURICH)).await;
    let job = instances[1]
        .book(&customer, &booking_at(places::OERLIKON))
        .await
        .id;
    // Anna's accept is applied through instance 0; she never reads the answer.
    let _lost = instances[0].http().accept(&anna, job, "anna-1").await;
    assert_eq!(
        instances[2]
            .http()
            .accept(&luca, job, "luca-1")
            .await
            .json::<AcceptOutcome>(),
        AcceptOutcome::Taken
    );
    // Her retry lands on instance 1: she won, never "taken".
    let retry = instances[1].http().accept(&anna, job, "anna-1").await;
    assert!(
        matches!(retry.json(), AcceptOutcome::Won { .. }),
        "{}",
        retry.text()
    );
    // The lookup on instance 2 says the same, and a key never used was never applied.
    let looked_up = instances[2]
        .http()
        .get("/v1/friend/accepts/anna-1", &anna.token)
        .await;
    assert!(matches!(looked_up.json(), AcceptOutcome::Won { .. }));
    let never = instances[2]
        .http()
        .get("/v1/friend/accepts/anna-2", &anna.token)
        .await;
    assert_eq!((never.status, never.code().as_str()), (404, "not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_through_one_instance_wakes_a_long_poll_held_by_another() {
    let instances = TestBackend::start_instances(2, None).await;
    let customer = instances[1].customer("Heidi").await;
    let anna = instances[0].friend(friend_at("Anna", places::ZURICH)).await;
    let (_, mut cursor) = drain(&instances[0].http(), &anna, None).await;
    for round in 0..5 {
        let poll = {
            let (http, anna, cursor) = (instances[0].http(), anna.clone(), cursor.clone());
            tokio::spawn(async move { http.sync(&anna, Some(&cursor), 30).await })
        };
        let waiting = instances[0].backend.clone();
        wait_until("Anna's long-poll to wait on instance 0", LIMIT, || {
            let n = waiting.waiting_accounts();
            async move { n == 1 }
        })
        .await;
        let job = instances[1]
            .book(&customer, &booking_at(places::OERLIKON))
            .await
            .id;
        // Answered long before the poll's own 30 s: instance 0 heard of instance 1's commit.
        let page = tokio::time::timeout(LIMIT, poll)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the long-poll was not woken"))
            .expect("poll task");
        assert_eq!(page.status, 200, "{}", page.text());
        assert!(
            page.text().contains(&job.to_string()),
            "round {round}: the offer is in the page: {}",
            page.text()
        );
        // The next round polls from where this one ended.
        let from = page.json::<SyncPage>().cursor;
        cursor = drain(&instances[0].http(), &anna, Some(&from)).await.1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rotated_on_one_instance_is_refused_by_another_that_had_cached_it() {
    let instances = TestBackend::start_instances(2, None).await;
    let anna = instances[0].friend(friend_at("Anna", places::ZURICH)).await;
    let other = instances[1].http();
    // Instance 1 resolved (and cached) the token before the rotation.
    assert_eq!(other.get("/v1/me", &anna.token).await.status, 200);
    let rotated = instances[0]
        .http()
        .post(
            &format!("/v1/admin/accounts/{}/rotate-token", anna.id),
            instances[0].backend.admin_token(),
            None,
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    // Well within the cache's 30 s time to live: instance 1 heard of it.
    wait_until("instance 1 to refuse the rotated token", LIMIT, || {
        let (other, token) = (other.clone(), anna.token.clone());
        async move { other.get("/v1/me", &token).await.status == 401 }
    })
    .await;
    let token = rotated.json::<serde_json::Value>()["token"]
        .as_str()
        .expect("the new token")
        .to_owned();
    assert_eq!(other.get("/v1/me", &token).await.status, 200, "the new one");
}

/// A backend in a child process on `db` (`backend-child`): its base URL.
fn child_on(db: &str) -> (std::process::Child, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_backend-child"))
        .arg(db)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn backend-child");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("readable");
    let url = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_accept_loses_no_acknowledged_accept_and_makes_no_second_winner() {
    let mut instances = TestBackend::start_instances(1, None).await;
    let a = instances.remove(0);
    let db = a.db_path.to_string_lossy().into_owned();
    let customer = a.customer("Heidi").await;
    let anna = a.friend(friend_at("Anna", places::ZURICH)).await;
    let luca = a.friend(friend_at("Luca", places::ZURICH)).await;

    // 1. An accept acknowledged by instance B, then B is killed: the win stands on A.
    let (mut b, b_url) = child_on(&db);
    let job = a.book(&customer, &booking_at(places::OERLIKON)).await.id;
    let won = Http::new(&b_url).accept(&anna, job, "anna-1").await;
    assert!(
        matches!(won.json(), AcceptOutcome::Won { .. }),
        "{}",
        won.text()
    );
    b.kill().expect("SIGKILL");
    b.wait().expect("reaped");
    let looked_up = a.http().get("/v1/friend/accepts/anna-1", &anna.token).await;
    assert!(matches!(looked_up.json(), AcceptOutcome::Won { .. }));
    let late = a.http().accept(&luca, job, &key()).await;
    assert_eq!(late.json::<AcceptOutcome>(), AcceptOutcome::Taken);

    // 2. An accept in flight on B (held at its change-log step, its key claimed) when B is
    //    killed: never acknowledged, never applied; Anna's retry on A decides it once.
    let (mut b, b_url) = child_on(&db);
    let job = a.book(&customer, &booking_at(places::OERLIKON)).await.id;
    let pause = a
        .backend
        .pause_writes()
        .await
        .expect("hold the change counter");
    let in_flight = {
        let (http, anna) = (Http::new(&b_url), anna.clone());
        tokio::spawn(async move { http.accept(&anna, job, "anna-2").await })
    };
    wait_until("B's accept to wait for the held counter", LIMIT, || async {
        a.backend.queued_writes().await.expect("lock waiters") == 1
    })
    .await;
    b.kill().expect("SIGKILL");
    b.wait().expect("reaped");
    drop(pause);
    // The request fails (the test client panics on a broken connection) or is not a 200.
    if let Ok(lost) = in_flight.await {
        assert_ne!(
            lost.status,
            200,
            "the killed instance answered: {}",
            lost.text()
        );
    }
    // The retry waits for the dead transaction's claim to go and then wins; Luca cannot.
    let retry = a.http().accept(&anna, job, "anna-2").await;
    assert!(
        matches!(retry.json(), AcceptOutcome::Won { .. }),
        "{}",
        retry.text()
    );
    let luca_try = a.http().accept(&luca, job, &key()).await;
    assert_eq!(luca_try.json::<AcceptOutcome>(), AcceptOutcome::Taken);
    let r = a
        .http()
        .get(&format!("/v1/customer/jobs/{job}"), &customer.token)
        .await;
    let details: friend_protocol::JobDetails = r.json();
    assert_eq!(details.friend.map(|f| f.id), Some(anna.id));
}

/// This instance's count of jobs its expiry sweeps expired.
async fn expired_here(tb: &TestBackend) -> f64 {
    let text = tb.backend.metrics_text().await.expect("metrics");
    friend_backend::metrics::sample(&text, "friend_jobs_expired_total").unwrap_or(0.0)
}

/// Each instance's count of jobs its sweeps expired.
async fn totals(instances: &[TestBackend]) -> Vec<f64> {
    let mut v = Vec::new();
    for tb in instances {
        v.push(expired_here(tb).await);
    }
    v
}

/// Books `n` jobs and moves every instance's clock past their search time.
async fn book_and_expire(instances: &[TestBackend], customer: &TestAccount, n: usize) {
    for _ in 0..n {
        instances[0]
            .book(customer, &booking_at(places::OERLIKON))
            .await;
    }
    for tb in instances {
        tb.clock.advance(chrono::Duration::hours(4));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_sweep_runs_on_one_instance_and_moves_when_it_drains() {
    let mut instances = TestBackend::start_instances(3, Some(Duration::from_millis(20))).await;
    let customer = instances[0].customer("Heidi").await;
    book_and_expire(&instances, &customer, 5).await;
    wait_until("the 5 jobs to expire", LIMIT, || async {
        totals(&instances).await.iter().sum::<f64>() >= 5.0
    })
    .await;
    let first = totals(&instances).await;
    assert_eq!(
        first.iter().sum::<f64>(),
        5.0,
        "each job expired once: {first:?}"
    );
    let sweeper = first
        .iter()
        .position(|n| *n > 0.0)
        .expect("an instance swept");
    assert_eq!(
        first.iter().filter(|n| **n > 0.0).count(),
        1,
        "one instance sweeps: {first:?}"
    );

    // The sweeper drains: it hands the lease over and another instance sweeps from then on.
    let mut gone = instances.remove(sweeper);
    gone.shut_down().await;
    book_and_expire(&instances, &customer, 3).await;
    let before: Vec<f64> = first
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != sweeper)
        .map(|(_, n)| *n)
        .collect();
    wait_until("the 3 later jobs to expire elsewhere", LIMIT, || async {
        totals(&instances).await.iter().sum::<f64>() >= before.iter().sum::<f64>() + 3.0
    })
    .await;
    let after = totals(&instances).await;
    let swept: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(
        swept.iter().sum::<f64>(),
        3.0,
        "each job expired once: {swept:?}"
    );
    assert_eq!(
        swept.iter().filter(|n| **n > 0.0).count(),
        1,
        "one instance sweeps: {swept:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_instance_answers_its_long_polls_and_the_devices_lose_no_change_on_another() {
    let instances = TestBackend::start_instances(2, None).await;
    let (a, b) = (&instances[0], &instances[1]);
    let customer = b.customer("Heidi").await;
    // 100 Friends near the bookings, long-polling on instance A from their cursors.
    let mut polls = Vec::new();
    for i in 0..100 {
        let friend = a
            .friend(friend_at(&format!("Waiting {i}"), places::ZURICH))
            .await;
        let http = a.http();
        let cursor = http.sync(&friend, None, 0).await.json::<SyncPage>().cursor;
        polls.push(tokio::spawn(async move {
            let reply = http.sync(&friend, Some(&cursor), 30).await;
            (friend, reply)
        }));
    }
    let waiting = a.backend.clone();
    wait_until("100 long-polls waiting on A", LIMIT, || {
        let n = waiting.waiting_accounts();
        async move { n == 100 }
    })
    .await;

    // A drains (as on SIGTERM); a booking is committed through B meanwhile.
    let started = Instant::now();
    a.backend.start_drain();
    let job = b.book(&customer, &booking_at(places::OERLIKON)).await.id;
    let mentions = |changes: &[friend_protocol::Change]| {
        changes
            .iter()
            .any(|c| serde_json::to_string(c).is_ok_and(|j| j.contains(&job.to_string())))
    };
    let mut devices = Vec::new();
    for poll in polls {
        let (friend, reply) = tokio::time::timeout(LIMIT, poll)
            .await
            .expect("answered by the drain, not by its own 30 s")
            .expect("long-poll task");
        assert_eq!(reply.status, 200, "{}", reply.text());
        let page: SyncPage = reply.json();
        devices.push((friend, mentions(&page.changes), page.cursor));
    }
    eprintln!(
        "drain answered 100 waiting long-polls in {:?}",
        started.elapsed()
    );
    // Every device comes back through B from the cursor it got and has the booking: it came with
    // the drained answer or comes now — never lost between the two instances.
    for (friend, answered_with_it, cursor) in devices {
        let (changes, _) = drain(&b.http(), &friend, Some(&cursor)).await;
        assert!(
            answered_with_it || mentions(&changes),
            "Friend {} lost the booking",
            friend.id
        );
    }
}
