//! The accept race: exactly one winner whatever the concurrency, and idempotent retries.

use friend_protocol::{AcceptOutcome, ErrorCode};
use friend_tests::scenario::{all_at_once, sole_winner};
use friend_tests::{Scenario, booking_at, places};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_accepts_have_exactly_one_winner_every_round() {
    let s = Scenario::new().await;
    let mut friends = Vec::new();
    for i in 0..200 {
        friends.push(s.friend_named(&format!("Friend {i}")).await);
    }
    for round in 0..50 {
        let job = s.book().await;
        let outcomes = all_at_once(&friends, |f| {
            let (http, f) = (s.http.clone(), f.clone());
            async move {
                let r = http
                    .accept(&f, job.id, &uuid::Uuid::new_v4().to_string())
                    .await;
                assert_eq!(r.status, 200, "{}", r.text());
                (f.id, r.json::<AcceptOutcome>())
            }
        })
        .await;
        let winner = sole_winner(round, outcomes);
        // The customer sees the same winner.
        let details = s.customer_view(job.id).await;
        assert_eq!(details.friend.map(|f| f.id), Some(winner));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_lost_response_still_wins() {
    let s = Scenario::new().booked().await;
    let (http, anna, job) = (&s.http, &s.friend, s.job());
    let luca = s.friend_named("Luca").await;

    // Anna's accept is applied but she never reads the answer (the response was lost).
    let _lost = http.accept(anna, job, "anna-key-1").await;
    // Luca is later and loses.
    assert_eq!(
        http.accept(&luca, job, "luca-key-1")
            .await
            .json::<AcceptOutcome>(),
        AcceptOutcome::Taken
    );
    // Anna retries with the same key: she learns she won, never "taken".
    let retry = http
        .accept(anna, job, "anna-key-1")
        .await
        .json::<AcceptOutcome>();
    assert!(matches!(retry, AcceptOutcome::Won { .. }), "{retry:?}");
    // Or she looks the outcome up without accepting again; an unknown key was never applied.
    let looked_up = http
        .get("/v1/friend/accepts/anna-key-1", &anna.token)
        .await
        .json::<AcceptOutcome>();
    assert!(
        matches!(looked_up, AcceptOutcome::Won { .. }),
        "{looked_up:?}"
    );
    assert_eq!(
        http.get("/v1/friend/accepts/never-sent", &anna.token)
            .await
            .status,
        404
    );
    assert_eq!(
        http.get("/v1/friend/accepts/anna-key-1", &luca.token)
            .await
            .status,
        404,
        "keys are per account"
    );
    // Luca's retry with his key keeps his original outcome too.
    assert_eq!(
        http.accept(&luca, job, "luca-key-1")
            .await
            .json::<AcceptOutcome>(),
        AcceptOutcome::Taken
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_for_a_different_request_is_refused() {
    let s = Scenario::new().await;
    let (http, anna) = (&s.http, &s.friend);
    let first = s.book().await;
    let second = s.book().await;
    s.accept(first.id, "k").await;
    let reused = http.accept(anna, second.id, "k").await;
    assert_eq!(reused.status, 422);
    assert_eq!(reused.code(), ErrorCode::IdempotencyKeyReused.as_str());
    // Without a key the accept is refused outright.
    let no_key = http
        .post(
            &format!("/v1/friend/jobs/{}/accept", second.id),
            &anna.token,
            None,
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(no_key.code(), "idempotency_key_missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_retried_with_its_key_creates_one_job() {
    let s = Scenario::new().await;
    let (http, customer) = (&s.http, &s.customer);
    let req = booking_at(places::OERLIKON);
    let a = http
        .post("/v1/customer/jobs", &customer.token, Some("book-1"), &req)
        .await;
    let b = http
        .post("/v1/customer/jobs", &customer.token, Some("book-1"), &req)
        .await;
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.body, b.body, "a retry returns the original booking");
    let list: friend_protocol::JobList =
        http.get("/v1/customer/jobs", &customer.token).await.json();
    assert_eq!(list.jobs.len(), 1);
    let mut other = req.clone();
    other.description = "Something else".into();
    let c = http
        .post("/v1/customer/jobs", &customer.token, Some("book-1"), &other)
        .await;
    assert_eq!(c.code(), "idempotency_key_reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_and_expired_jobs_give_typed_outcomes() {
    let s = Scenario::new().await;
    let (http, anna) = (&s.http, &s.friend);

    let job = s.book().await;
    let r = s.cancel(job.id).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        http.accept(anna, job.id, "a1")
            .await
            .json::<AcceptOutcome>(),
        AcceptOutcome::Cancelled
    );

    let job = s.book().await;
    s.tb.clock
        .advance(chrono::Duration::hours(3) + chrono::Duration::seconds(1));
    // Not swept yet: the accept itself notices the expiry.
    assert_eq!(
        http.accept(anna, job.id, "a2")
            .await
            .json::<AcceptOutcome>(),
        AcceptOutcome::Expired
    );
    let details = s.customer_view(job.id).await;
    assert_eq!(details.state, friend_protocol::JobState::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_slot_jobs_cannot_both_be_held() {
    let s = Scenario::new().await;
    let (http, anna, tb, customer) = (&s.http, &s.friend, &s.tb, &s.customer);
    let start = chrono::Utc::now() + chrono::Duration::days(1);
    let slot = |offset_h: i64, at| {
        let mut b = booking_at(at);
        b.timing = friend_protocol::Timing::Slot {
            start: start + chrono::Duration::hours(offset_h),
            end: start + chrono::Duration::hours(offset_h + 2),
        };
        b
    };
    let first = tb.book(customer, &slot(0, places::OERLIKON)).await;
    let overlapping = tb.book(customer, &slot(1, places::ZURICH)).await;
    // Starts an hour after the first ends, ~17 km away: ~35 minutes of travel fit in the gap.
    let later = tb.book(customer, &slot(3, places::WINTERTHUR)).await;
    assert!(matches!(
        http.accept(anna, first.id, "s1").await.json(),
        AcceptOutcome::Won { .. }
    ));
    assert_eq!(
        http.accept(anna, overlapping.id, "s2")
            .await
            .json::<AcceptOutcome>(),
        AcceptOutcome::NotEligible {
            reason: friend_protocol::NotEligibleReason::OverlappingJob
        }
    );
    assert!(matches!(
        http.accept(anna, later.id, "s3").await.json(),
        AcceptOutcome::Won { .. }
    ));
}
