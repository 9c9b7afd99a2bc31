//! The Friend core's cache and sync: offline reads, page/cursor atomicity, full resync, the clock
//! offset, personal data at rest, and the transport policy.

use friend_core::{CoreError, FriendSession, InboxFilter, SessionConfig, StaticSecrets};
use friend_tests::{Scenario, booking_at, open_friend_with, places, point};
use std::collections::BTreeSet;
use std::sync::Arc;

async fn inbox_ids(s: &FriendSession) -> BTreeSet<friend_protocol::JobId> {
    let inbox = s
        .inbox(point(places::ZURICH), 50.0, InboxFilter::default())
        .await
        .unwrap();
    inbox.items.into_iter().map(|i| i.offer.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_reads_from_the_cache_when_the_backend_is_gone() {
    let mut s = Scenario::new().await;
    let session = s.friend_device(&s.tb.base_url).await;
    let won = s.book().await;
    let open = s.tb.book(&s.customer, &booking_at(places::ZURICH)).await;
    session.sync_once().await.unwrap();
    assert!(matches!(
        session.accept(won.id).await.unwrap(),
        friend_core::AcceptResult::Won(_)
    ));
    session.catalog().await.unwrap();
    session.profile().await.unwrap();

    s.tb.shut_down().await;
    let err = session.sync_once().await.unwrap_err();
    assert_eq!(err.code(), "offline", "{err}");
    let inbox = session
        .inbox(point(places::ZURICH), 10.0, InboxFilter::default())
        .await
        .unwrap();
    assert_eq!(
        inbox.items.iter().map(|i| i.offer.id).collect::<Vec<_>>(),
        vec![open.id]
    );
    assert!(inbox.cache_age_secs.is_some());
    let job = session.job(won.id).await.unwrap();
    assert_eq!(job.details.address.unwrap().street, "Geheimweg 42");
    assert!(
        !session.catalog().await.unwrap().services.is_empty(),
        "catalog from the cache"
    );
    assert!(matches!(
        session.profile().await.unwrap(),
        friend_protocol::Me::Friend(_)
    ));
    let status = session.sync_status();
    assert!(!status.connected);
    assert!(status.last_success_ms.is_some());
    assert_eq!(status.last_error.map(|e| e.0).as_deref(), Some("offline"));
    // On-site work goes on: the check-in is queued and shown locally.
    session.check_in(won.id).await.unwrap();
    assert_eq!(
        session.job(won.id).await.unwrap().details.state,
        friend_protocol::JobState::OnSite
    );
    assert_eq!(session.sync_status().pending_outbox, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_between_pages_leaves_cursor_and_data_consistent() {
    let s = Scenario::new().await;
    let proxy = s.proxy().await;
    let mut config = SessionConfig::new(s.db("anna.db"), proxy.url());
    config.sync_page_limit = 10;
    let session = open_friend_with(config, &s.friend).await;
    let mut booked = BTreeSet::new();
    for _ in 0..25 {
        booked.insert(s.book().await.id);
    }

    // First sync is a snapshot of 3 pages; after the role check and the key registration, only
    // the first page arrives.
    proxy.go_offline_after_responses(3);
    assert_eq!(session.sync_once().await.unwrap_err().code(), "offline");
    assert!(
        inbox_ids(&session).await.is_empty(),
        "a half snapshot is never visible"
    );
    assert!(session.sync_status().snapshot_in_progress);
    proxy.go_online();
    let report = session.sync_once().await.unwrap();
    assert!(report.replaced_cache);
    assert_eq!(
        inbox_ids(&session).await,
        booked,
        "the snapshot resumed where it stopped"
    );

    // Deltas: 25 more offers in 3 pages, interrupted after the first.
    let mut more = BTreeSet::new();
    for _ in 0..25 {
        more.insert(s.book().await.id);
    }
    proxy.go_offline_after_responses(1);
    assert!(session.sync_once().await.is_err());
    let partial = inbox_ids(&session).await;
    assert_eq!(
        partial.len(),
        35,
        "exactly the first page was applied with its cursor"
    );
    proxy.go_online();
    session.sync_once().await.unwrap();
    let all: BTreeSet<_> = booked.union(&more).copied().collect();
    assert_eq!(inbox_ids(&session).await, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_too_old_replaces_the_cache() {
    let s = Scenario::new().booked().await;
    let (tb, gone) = (&s.tb, s.job());
    let session = s.friend_device(&tb.base_url).await;
    session.sync_once().await.unwrap();
    assert!(inbox_ids(&session).await.contains(&gone));

    // While the device sleeps: the job is cancelled, a new one booked, and the feed pruned.
    assert_eq!(s.cancel(gone).await.status, 200);
    let fresh = s.book().await;
    tb.clock.advance(chrono::Duration::days(8));
    tb.backend.prune_feed(tb.clock_now()).await.unwrap();
    let fresh_slot = {
        let mut b = booking_at(places::OERLIKON);
        let start = tb.clock_now() + chrono::Duration::days(1);
        b.timing = friend_protocol::Timing::Slot {
            start,
            end: start + chrono::Duration::hours(2),
        };
        tb.book(&s.customer, &b).await
    };

    let report = session.sync_once().await.unwrap();
    assert!(report.replaced_cache, "{report:?}");
    // The cancelled job is gone, the expired now-job too; only the slot job is offered.
    let _ = fresh;
    assert_eq!(inbox_ids(&session).await, BTreeSet::from([fresh_slot.id]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_clock_decides_expiry_and_countdowns() {
    let s = Scenario::new().booked().await;
    let session = s.friend_device(&s.tb.base_url).await;
    // The server's clock runs 2 h ahead of this device's.
    s.tb.clock.advance(chrono::Duration::hours(2));
    session.sync_once().await.unwrap();
    let offset = session.sync_status().clock_offset_ms;
    assert!(
        (7_100_000..=7_300_000).contains(&offset),
        "offset {offset} ms"
    );
    let inbox = session
        .inbox(point(places::ZURICH), 30.0, InboxFilter::default())
        .await
        .unwrap();
    let item = inbox.items.iter().find(|i| i.offer.id == s.job()).unwrap();
    assert!(
        (3500..=3600).contains(&item.expires_in_secs),
        "an hour left by the server clock: {}",
        item.expires_in_secs
    );
    // One more server hour: expired, and hidden even before any sync.
    s.tb.clock.advance(chrono::Duration::hours(1));
    session.sync_once().await.unwrap();
    let inbox = session
        .inbox(point(places::ZURICH), 30.0, InboxFilter::default())
        .await
        .unwrap();
    assert!(inbox.items.is_empty(), "{:?}", inbox.items);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_only_stored_encrypted() {
    let s = Scenario::new().await;
    let db = s.db("anna.db");
    {
        let session = s.friend_device(&s.tb.base_url).await;
        let job = s.won_by(&session).await;
        session.sync_once().await.unwrap();
        assert_eq!(
            session.job(job).await.unwrap().details.contact.phone,
            "+41 79 555 12 34"
        );
        session.shutdown();
    }
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let text = String::from_utf8_lossy(&bytes);
    for secret in [
        "Hildegard",
        "Vertraulich",
        "555 12 34",
        "Geheimweg",
        "Door code 4711",
        "47.4111",
        s.friend.token.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} found in the database files"
        );
    }
    let wrong = Arc::new(StaticSecrets::new(s.friend.token.clone(), [1u8; 32]));
    let err = FriendSession::open(SessionConfig::new(&db, s.tb.base_url.as_str()), wrong)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, CoreError::WrongKey), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_remote_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Arc::new(StaticSecrets::new("t", [0u8; 32]));
    for url in ["http://api.example.ch", "http://192.168.1.10:8080"] {
        let err = FriendSession::open(
            SessionConfig::new(dir.path().join("x.db"), url),
            secrets.clone(),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(err.code(), "invalid_url", "{url}");
    }
}

/// The status counts the response bytes a session received: a snapshot with offers costs more than
/// an idle delta, which stays within SPEC P5's 256 bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_counts_the_bytes_received() {
    let s = Scenario::new().await;
    for _ in 0..3 {
        s.book().await;
    }
    let session = s.friend_device(&s.tb.base_url).await;
    let before = session.sync_status().bytes_received;
    session.sync_once().await.unwrap();
    let snapshot = session.sync_status().bytes_received - before;
    session.sync_once().await.unwrap();
    let idle = session.sync_status().bytes_received - before - snapshot;
    assert!(snapshot > 3 * 300, "three offers in {snapshot} bytes");
    assert!(
        (1..=256).contains(&idle),
        "idle delta sync took {idle} bytes"
    );
}
