//! Two writes that decide on the same job (or the same Friend's slots) at once are decided one
//! after the other, on both stores: the second reads what the first committed. SQLite's single
//! writer is serial by itself; PostgreSQL writes run at READ COMMITTED, so each write locks the
//! job's row (and an accept the Friend's row) before deciding. Each interleaving is forced by
//! holding the database writer (SQLite) or the change counter's row lock (PostgreSQL): the first
//! write waits there holding its locks, the second queues behind it, then both go.

use friend_protocol::{AcceptOutcome, JobState, NotEligibleReason, Timing};
use friend_tests::scenario::{chf, friend_path, router};
use friend_tests::{Reply, Scenario, TestAccount, booking_at, places};
use serde_json::{Value, json};

/// Starts `body` posted to the Friend route `action` of `job` by `who`, without waiting for it.
fn post(
    s: &Scenario,
    who: &TestAccount,
    job: friend_protocol::JobId,
    action: &str,
    body: Value,
) -> tokio::task::JoinHandle<Reply> {
    let (http, token, path) = (s.tb.http(), who.token.clone(), friend_path(job, action));
    tokio::spawn(async move { http.post(&path, &token, None, &body).await })
}

/// Runs `first` and then `second` while writes are held, each queued before the next starts,
/// and gives back both answers once the writes are let go.
async fn one_behind_the_other(
    s: &Scenario,
    first: impl FnOnce() -> tokio::task::JoinHandle<Reply>,
    second: impl FnOnce() -> tokio::task::JoinHandle<Reply>,
) -> (Reply, Reply) {
    let pause = s.tb.backend.pause_writes().await.expect("hold writes");
    let a = first();
    s.tb.until_writes_queued(1, "the first write to wait for the held writes")
        .await;
    let b = second();
    s.tb.until_writes_queued(2, "the second write to queue behind the first")
        .await;
    drop(pause);
    (a.await.expect("first"), b.await.expect("second"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_completion_twice_at_once_is_answered_like_one() {
    let s = Scenario::new().agreed(vec![router(8_900)]).build().await;
    let (job, anna) = (s.job(), s.friend.clone());
    let body = json!({ "payment": "cash", "total": chf(8_900) });
    // Two devices (or a double tap without a key): before the row lock the second failed on the
    // ledger's key with a 500 naming the constraint.
    let (a, b) = one_behind_the_other(
        &s,
        || post(&s, &anna, job, "complete", body.clone()),
        || post(&s, &anna, job, "complete", body.clone()),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(b.status, 200, "the same completion again: {}", b.text());
    let details = s.customer_view(job).await;
    assert_eq!(details.state, JobState::Completed);
    assert_eq!(
        details.final_total,
        Some(friend_protocol::Money::chf(8_900))
    );
    assert_eq!(
        a.json::<Value>(),
        b.json::<Value>(),
        "answered like the first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_different_endings_at_once_end_the_job_once() {
    let s = Scenario::new().on_site().build().await;
    let (job, anna) = (s.job(), s.friend.clone());
    let (a, b) = one_behind_the_other(
        &s,
        || {
            post(
                &s,
                &anna,
                job,
                "escalate",
                json!({ "note": "needs a technician" }),
            )
        },
        || {
            post(
                &s,
                &anna,
                job,
                "unsuccessful",
                json!({ "reason": "customer_absent" }),
            )
        },
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(b.status, 409, "{}", b.text());
    assert_eq!(b.json::<Value>()["code"], "job_closed", "{}", b.text());
    let details = s.customer_view(job).await;
    assert_eq!(details.state, JobState::Escalated);
    assert_eq!(
        details.visit.compensation, None,
        "no no-show fee for an escalated job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_friend_s_two_overlapping_slots_accepted_at_once_are_won_once() {
    let s = Scenario::new().build().await;
    let start = chrono::Utc::now() + chrono::Duration::days(1);
    let slot = |offset_h: i64, at| {
        let mut b = booking_at(at);
        b.timing = Timing::Slot {
            start: start + chrono::Duration::hours(offset_h),
            end: start + chrono::Duration::hours(offset_h + 2),
        };
        b
    };
    let first = s.tb.book(&s.customer, &slot(0, places::OERLIKON)).await;
    let overlapping = s.tb.book(&s.customer, &slot(1, places::ZURICH)).await;
    let accept = |job: friend_protocol::JobId, key: &'static str| {
        let (http, anna) = (s.tb.http(), s.friend.clone());
        move || tokio::spawn(async move { http.accept(&anna, job, key).await })
    };
    // Before the Friend's row was locked, PostgreSQL let both check for an overlap before either
    // committed, and both won.
    let (a, b) =
        one_behind_the_other(&s, accept(first.id, "s1"), accept(overlapping.id, "s2")).await;
    assert!(
        matches!(a.json(), AcceptOutcome::Won { .. }),
        "{}",
        a.text()
    );
    assert_eq!(
        b.json::<AcceptOutcome>(),
        AcceptOutcome::NotEligible {
            reason: NotEligibleReason::OverlappingJob
        }
    );
    assert_eq!(s.customer_view(overlapping.id).await.state, JobState::Open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_free_device_key_place_taken_twice_at_once_is_taken_once() {
    // Anna holds a job, so registering a key changes it and waits for the held change counter.
    let s = Scenario::new().accepted().build().await;
    let key = || friend_tests::scenario::public_key(&friend_tests::scenario::device_key());
    for _ in 1..friend_protocol::MAX_DEVICE_KEYS {
        s.register(&s.friend, &friend_tests::scenario::device_key())
            .await;
    }
    let register = |key: String| {
        let (http, token) = (s.tb.http(), s.friend.token.clone());
        let body = json!({ "public_key": key });
        move || tokio::spawn(async move { http.post("/v1/keys", &token, None, &body).await })
    };
    // Before the account's row was locked, PostgreSQL let both count 15 keys: 17 registered.
    let first = key();
    let (a, b) = one_behind_the_other(&s, register(first.clone()), register(key())).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(b.status, 400, "{}", b.text());
    assert_eq!(b.json::<Value>()["code"], "invalid_input", "{}", b.text());
    // The first one's key again: nothing new, the list as it stands.
    let again = register(first)().await.expect("again");
    let keys = again.json::<Value>()["keys"].as_array().map(Vec::len);
    assert_eq!(keys, Some(friend_protocol::MAX_DEVICE_KEYS));
}
