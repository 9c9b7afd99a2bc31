//! `GET /metrics`: the admin token only, the Prometheus text format, and counters that agree with
//! what happened — requests by route template, accepts by outcome, replays, sync pages, the
//! change-log head and the waiting long-polls.

use friend_backend::metrics::sample;
use friend_protocol::{AcceptOutcome, SyncPage};
use friend_tests::{TestBackend, booking_at, friend_at, places};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened_and_need_the_admin_token() {
    let tb = TestBackend::start().await;
    let http = tb.http();
    let heidi = tb.customer("Heidi").await;
    let friends = [
        tb.friend(friend_at("Anna", places::ZURICH)).await,
        tb.friend(friend_at("Ben", places::ZURICH)).await,
        tb.friend(friend_at("Cleo", places::ZURICH)).await,
    ];
    let job = tb.book(&heidi, &booking_at(places::OERLIKON)).await;
    let mut won = 0;
    for (i, f) in friends.iter().enumerate() {
        let outcome: AcceptOutcome = http.accept(f, job.id, &format!("key-{i}")).await.json();
        won += usize::from(matches!(outcome, AcceptOutcome::Won { .. }));
    }
    assert_eq!(won, 1);
    // A retry of the first accept is answered from its stored outcome.
    let again = http.accept(&friends[0], job.id, "key-0").await;
    assert_eq!(again.status, 200);
    let page: SyncPage = http.sync(&friends[0], None, 0).await.json();
    http.sync(&friends[0], Some(&page.cursor), 0).await;

    assert_eq!(http.get("/metrics", "").await.status, 401);
    assert_eq!(
        http.get("/metrics", &heidi.token).await.status,
        401,
        "not an admin"
    );
    let admin = tb.backend.admin_token();
    let r = http.get("/metrics", admin).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let content_type = r.headers["content-type"].to_str().unwrap_or_default();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = r.text();

    let accept = |outcome: &str| {
        sample(
            &text,
            &format!("friend_accepts_total{{outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(accept("won"), Some(1.0), "{text}");
    assert_eq!(accept("taken"), Some(2.0));
    assert_eq!(sample(&text, "friend_idempotent_replays_total"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "friend_http_requests_total{route=\"/v1/friend/jobs/{id}/accept\",method=\"POST\",status=\"200\"}"
        ),
        Some(4.0),
        "per route template, not per job"
    );
    assert_eq!(
        sample(&text, "friend_sync_pages_total{kind=\"snapshot\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "friend_sync_pages_total{kind=\"delta\"}"),
        Some(1.0)
    );
    assert!(sample(&text, "friend_change_log_head").is_some_and(|h| h >= 2.0));
    assert_eq!(sample(&text, "friend_long_polls_waiting"), Some(0.0));
    assert_eq!(sample(&text, "friend_draining"), Some(0.0));
    assert!(text.contains("friend_http_request_duration_seconds_bucket{"));
    match friend_tests::test_store() {
        friend_tests::Store::Sqlite => {
            assert!(text.contains("friend_db_commit_group_size_count "))
        }
        friend_tests::Store::Postgres => {
            assert!(sample(&text, "friend_db_retried_transactions_total").is_some());
            // The scrape itself holds no connection while it encodes.
            assert_eq!(sample(&text, "friend_db_pool_waiting"), Some(0.0));
            assert!(sample(&text, "friend_db_pool_in_use").is_some())
        }
    }
    assert!(text.ends_with("# EOF\n"));
    assert!(!text.contains(&job.id.to_string()), "no job ids in labels");
}
