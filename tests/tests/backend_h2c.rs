//! HTTP/2 by prior knowledge, as a load balancer in front of the instances speaks it: many
//! devices' long-polls multiplexed as streams of one connection, woken and drained like HTTP/1's.

use friend_protocol::{Change, SyncPage};
use friend_tests::{Http, TestBackend, booking_at, friend_at, places, wait_until};
use std::time::Duration;

/// Far below the long-polls' own 30 s wait: an answer within it came from a wake-up or the drain.
const BOUND: Duration = Duration::from_secs(10);

/// More than hyper's default of 200 concurrent streams: all of them must wait at once.
const POLLS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_multiplexed_over_one_http2_connection_wake_and_drain() {
    let tb = TestBackend::start().await;
    let h2 = Http::http2(&tb.base_url);
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let heidi = tb.customer("Heidi").await;
    let anna_cursor = h2.sync(&anna, None, 0).await.json::<SyncPage>().cursor;
    let anna_poll = {
        let h2 = h2.clone();
        tokio::spawn(async move { h2.sync(&anna, Some(&anna_cursor), 30).await })
    };
    let idle = tb.long_polls(&h2, POLLS - 1).await;
    let backend = tb.backend.clone();
    wait_until(
        &format!("{POLLS} long-polls waiting on one HTTP/2 connection"),
        BOUND,
        || {
            let n = backend.waiting_accounts();
            async move { n == POLLS }
        },
    )
    .await;

    // A booking near Anna wakes her stream.
    let job = tb.book(&heidi, &booking_at(places::OERLIKON)).await;
    let reply = tokio::time::timeout(BOUND, anna_poll)
        .await
        .expect("woken by the booking, not by its own timeout")
        .expect("long-poll task");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let page: SyncPage = reply.json();
    assert!(
        page.changes
            .iter()
            .any(|c| matches!(c, Change::Offer { offer } if offer.id == job.id)),
        "the offer reached the Friend over HTTP/2: {:?}",
        page.changes
    );

    // The drain answers every other stream at once, each from its own cursor.
    tb.backend.start_drain();
    TestBackend::assert_answered_empty(idle, BOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_get_the_same_answers_and_limits_as_http1() {
    let tb = TestBackend::start().await;
    let h2 = Http::http2(&tb.base_url);
    let r = h2.get("/v1/health", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h2.get("/v1/sync", "").await;
    assert_eq!((r.status, r.code()), (401, "unauthorized".to_owned()));
    // A target over the limit is the HTTP/1 guard's JSON refusal here too.
    let r = h2
        .get(&format!("/v1/health?pad={}", "a".repeat(9_000)), "")
        .await;
    assert_eq!((r.status, r.code()), (414, "uri_too_long".to_owned()));
}
