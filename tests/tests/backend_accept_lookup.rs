//! The accept lookup (`GET /v1/friend/accepts/{key}`) is final: what it says about a key stays
//! true whatever order the lookup and an accept with that key reach the database in. Each
//! interleaving is forced by holding the database writer (SQLite) or the change counter's row lock
//! (PostgreSQL), so none depends on timing.

use friend_backend::clock::Clock;
use friend_protocol::{AcceptOutcome, FriendJobView};
use friend_tests::scenario::Scenario;
use friend_tests::{Reply, TestAccount, TestBackend, wait_until};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

async fn lookup(tb: &TestBackend, friend: &TestAccount, key: &str) -> Reply {
    tb.http()
        .get(&format!("/v1/friend/accepts/{key}"), &friend.token)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_behind_a_queued_accept_reads_its_outcome() {
    let s = Scenario::new().booked().await;
    let (tb, anna, job) = (&s.tb, s.friend.clone(), s.job());
    let key = uuid::Uuid::new_v4().to_string();

    let pause = tb.backend.pause_writes().await.unwrap();
    let accept = {
        let (http, anna, key) = (tb.http(), anna.clone(), key.clone());
        tokio::spawn(async move { http.accept(&anna, job, &key).await })
    };
    tb.until_writes_queued(1, "the accept to queue behind the held writer")
        .await;
    let looked_up = {
        let (http, anna, key) = (tb.http(), anna.clone(), key.clone());
        tokio::spawn(async move {
            http.get(&format!("/v1/friend/accepts/{key}"), &anna.token)
                .await
        })
    };
    // The lookup must not answer from a snapshot that misses the queued accept: it waits for the
    // writer too (before the fix it answered 404 at once and the accept then won).
    tb.until_writes_queued(2, "the lookup to queue behind the accept")
        .await;
    drop(pause);

    let accept = accept.await.unwrap();
    let looked_up = looked_up.await.unwrap();
    assert_eq!(accept.status, 200, "{}", accept.text());
    assert!(matches!(accept.json(), AcceptOutcome::Won { .. }));
    assert_eq!(looked_up.status, 200, "{}", looked_up.text());
    assert!(
        matches!(looked_up.json(), AcceptOutcome::Won { .. }),
        "{}",
        looked_up.text()
    );
    // And it stays so.
    let again = lookup(tb, &anna, &key).await;
    assert!(matches!(again.json(), AcceptOutcome::Won { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_that_finds_nothing_fences_the_key_against_a_late_accept() {
    let s = Scenario::new().booked().await;
    let (tb, anna, job) = (&s.tb, s.friend.clone(), s.job());
    let key = uuid::Uuid::new_v4().to_string();

    let pause = tb.backend.pause_writes().await.unwrap();
    let looked_up = {
        let (http, anna, key) = (tb.http(), anna.clone(), key.clone());
        tokio::spawn(async move {
            http.get(&format!("/v1/friend/accepts/{key}"), &anna.token)
                .await
        })
    };
    // SQLite: the lookup's fence queues behind the held writer. PostgreSQL: a fence changes no
    // job, so it does not wait for the held change counter; it answers first.
    let single_writer = friend_tests::test_store() == friend_tests::Store::Sqlite;
    if single_writer {
        tb.until_writes_queued(1, "the lookup to queue behind the held writer")
            .await;
    } else {
        wait_until("the lookup to answer", LIMIT, || async {
            looked_up.is_finished()
        })
        .await;
    }
    let accept = {
        let (http, anna, key) = (tb.http(), anna.clone(), key.clone());
        tokio::spawn(async move { http.accept(&anna, job, &key).await })
    };
    if single_writer {
        tb.until_writes_queued(2, "the late accept to queue behind the lookup")
            .await;
    }
    drop(pause);

    let looked_up = looked_up.await.unwrap();
    let accept = accept.await.unwrap();
    assert_eq!(
        (looked_up.status, looked_up.code().as_str()),
        (404, "not_found")
    );
    // The late accept cannot apply any more: the lookup already said it never did.
    assert_eq!(
        (accept.status, accept.code().as_str()),
        (422, "idempotency_key_reused"),
        "{}",
        accept.text()
    );
    let again = lookup(tb, &anna, &key).await;
    assert_eq!(again.status, 404, "the answer stays: {}", again.text());
    // The job is still open for Anna, and a new key takes it.
    let view = tb
        .http()
        .get(&format!("/v1/friend/jobs/{job}"), &anna.token)
        .await;
    assert!(matches!(view.json(), FriendJobView::Offer(_)));
    let retry = tb
        .http()
        .accept(&anna, job, &uuid::Uuid::new_v4().to_string())
        .await;
    assert!(matches!(retry.json(), AcceptOutcome::Won { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_no_accept_could_carry_are_answered_without_a_write() {
    let s = Scenario::new().await;
    let (tb, anna) = (&s.tb, &s.friend);
    let pause = tb.backend.pause_writes().await.unwrap();
    let long = "k".repeat(129);
    for key in [long.as_str(), "%20padded%20", "tab%09"] {
        let r = tokio::time::timeout(LIMIT, lookup(tb, anna, key))
            .await
            .unwrap_or_else(|_| panic!("{key:?} waited for the held writer"));
        assert_eq!((r.status, r.code().as_str()), (404, "not_found"), "{key}");
    }
    assert_eq!(
        tb.backend.queued_writes().await.expect("queued writes"),
        0,
        "nothing waits for the writer"
    );
    drop(pause);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_kept_for_thirty_days_then_forgotten() {
    let s = Scenario::new().booked().await;
    let (tb, anna, job) = (&s.tb, &s.friend, s.job());
    let key = uuid::Uuid::new_v4().to_string();
    assert!(matches!(
        tb.http().accept(anna, job, &key).await.json(),
        AcceptOutcome::Won { .. }
    ));
    let retention = friend_backend::IDEMPOTENCY_RETENTION;

    // A day short of the retention: nothing recorded is old enough to go.
    tb.clock.advance(retention - chrono::Duration::days(1));
    let now = tb.clock.now();
    assert_eq!(
        tb.backend.prune_idempotency(now - retention).await.unwrap(),
        0
    );
    assert!(matches!(
        lookup(tb, anna, &key).await.json(),
        AcceptOutcome::Won { .. }
    ));

    // Past it: the stored answer (with the customer's address) is gone, the lookup says so.
    tb.clock.advance(chrono::Duration::days(2));
    let now = tb.clock.now();
    assert!(tb.backend.prune_idempotency(now - retention).await.unwrap() >= 1);
    let forgotten = lookup(tb, anna, &key).await;
    assert_eq!(forgotten.status, 404, "{}", forgotten.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_won_accept_replayed_after_the_job_left_the_friend_carries_no_personal_data() {
    // Anna won with the key `accept`.
    let s = Scenario::new().accepted().await;
    let (tb, anna, job) = (&s.tb, &s.friend, s.job());
    let won = |r: Reply| match r.json() {
        AcceptOutcome::Won { job } => Some(job),
        _ => None,
    };
    // While she holds it, a replay and a lookup answer the win with the job as it is now.
    let replay = won(tb.http().accept(anna, job, "accept").await).expect("won");
    assert!(replay.address.is_some(), "the holder sees the address");
    assert!(won(lookup(tb, anna, "accept").await).is_some());

    // She gives it back. The stored answer (with the address and the contact) is not handed out
    // again: the job is open for others now, and to her it is taken.
    let released = tb
        .http()
        .post(
            &friend_tests::scenario::friend_path(job, "release"),
            &anna.token,
            None,
            &serde_json::json!({ "reason": "cannot_come" }),
        )
        .await;
    assert_eq!(released.status, 200, "{}", released.text());
    for r in [
        tb.http().accept(anna, job, "accept").await,
        lookup(tb, anna, "accept").await,
    ] {
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!r.text().contains("Geheimweg"), "{}", r.text());
        assert_eq!(r.json::<AcceptOutcome>(), AcceptOutcome::Taken);
    }
}
