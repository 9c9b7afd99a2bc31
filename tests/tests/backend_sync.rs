//! Delta sync: long-poll wake-ups, removals with reasons, paging, snapshots and stale cursors.

use friend_protocol::{
    AcceptOutcome, Category, Change, DeclineReason, DeclineRequest, NewFriend, RemovalReason,
    SyncPage,
};
use friend_tests::scenario::drain;
use friend_tests::{Scenario, booking_at, friend_at, places};
use std::time::Duration;

fn removal(changes: &[Change], job: friend_protocol::JobId) -> Option<RemovalReason> {
    changes.iter().find_map(|c| match c {
        Change::Removed { job_id, reason, .. } if *job_id == job => Some(*reason),
        _ => None,
    })
}

fn has_offer(changes: &[Change], job: friend_protocol::JobId) -> bool {
    changes
        .iter()
        .any(|c| matches!(c, Change::Offer { offer } if offer.id == job))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_wakes_only_the_long_polls_it_concerns() {
    let s = Scenario::new().await;
    let (http, anna) = (&s.http, &s.friend);
    let bern = s.tb.friend(friend_at("Bernhard", places::BERN)).await;
    let (_, anna_cursor) = drain(http, anna, None).await;
    let (_, bern_cursor) = drain(http, &bern, None).await;
    let anna_poll = s.long_poll(anna, &anna_cursor);
    let bern_poll = s.long_poll(&bern, &bern_cursor);
    s.until_polls_wait(2).await;

    let job = s.book().await;
    let reply = tokio::time::timeout(Duration::from_secs(10), anna_poll)
        .await
        .expect("the long-poll was not answered within 10 s of the booking (it waits up to 30 s)")
        .unwrap();
    let page: SyncPage = reply.json();
    assert!(has_offer(&page.changes, job.id), "{page:?}");
    assert!(s.tb.backend.wake_count(anna.id) >= 1);
    assert_eq!(
        s.tb.backend.wake_count(bern.id),
        0,
        "a Friend 95 km away was woken"
    );
    bern_poll.abort();
}

/// Open-job changes are broadcast per area tile; Friends in the same tile the job is not for (other
/// category, too small a radius) must neither be woken nor see it in their deltas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbours_the_job_is_not_for_hear_nothing_of_it() {
    let s = Scenario::new().await;
    let http = &s.http;
    let beat = s.friend_named("Beat").await;
    let tina =
        s.tb.friend(NewFriend {
            categories: vec![Category::Tv],
            ..friend_at("Tina", places::ZURICH)
        })
        .await;
    let rolf =
        s.tb.friend(NewFriend {
            radius_km: 1,
            ..friend_at("Rolf", places::ZURICH)
        })
        .await;
    let mut cursors = Vec::new();
    for f in [&beat, &tina, &rolf] {
        cursors.push(drain(http, f, None).await.1);
    }
    let polls: Vec<_> = [&tina, &rolf]
        .into_iter()
        .zip(&cursors[1..])
        .map(|(f, c)| s.long_poll(f, c))
        .collect();
    s.until_polls_wait(2).await;

    let job = s.book_accepted("k").await;
    for (f, name) in [(&tina, "Tina"), (&rolf, "Rolf")] {
        assert_eq!(s.tb.backend.wake_count(f.id), 0, "{name} was woken");
    }
    for p in polls {
        p.abort();
    }
    let (changes, _) = drain(http, &beat, Some(&cursors[0])).await;
    assert_eq!(removal(&changes, job), Some(RemovalReason::Taken));
    for ((f, name), c) in [(&tina, "Tina"), (&rolf, "Rolf")]
        .into_iter()
        .zip(&cursors[1..])
    {
        let (changes, _) = drain(http, f, Some(c)).await;
        assert!(changes.is_empty(), "{name} saw {changes:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_carry_their_reason() {
    let s = Scenario::new().await;
    let (http, anna) = (&s.http, &s.friend);
    let luca = s.friend_named("Luca").await;
    let (_, mut luca_cursor) = drain(http, &luca, None).await;

    let taken = s.book().await.id;
    let cancelled = s.book().await.id;
    let expired = s.book().await.id;
    let declined = s.book().await.id;
    let (changes, c) = drain(http, &luca, Some(&luca_cursor)).await;
    luca_cursor = c;
    for j in [taken, cancelled, expired, declined] {
        assert!(has_offer(&changes, j));
    }

    s.accept(taken, "k").await;
    assert_eq!(s.cancel(cancelled).await.status, 200);
    let decline = format!("/v1/friend/jobs/{declined}/decline");
    let body = DeclineRequest {
        reason: DeclineReason::NoTime,
    };
    assert_eq!(
        http.post(&decline, &luca.token, None, &body).await.status,
        200
    );
    s.tb.clock.advance(chrono::Duration::hours(4));
    // Two were still open: the one nobody touched and the one only Luca declined.
    assert_eq!(s.tb.backend.expire_due().await.unwrap(), 2);

    let (changes, _) = drain(http, &luca, Some(&luca_cursor)).await;
    assert_eq!(removal(&changes, taken), Some(RemovalReason::Taken));
    assert_eq!(removal(&changes, cancelled), Some(RemovalReason::Cancelled));
    assert_eq!(removal(&changes, expired), Some(RemovalReason::Expired));
    // The decline removed it for Luca; its later expiry is what he sees now.
    assert_eq!(removal(&changes, declined), Some(RemovalReason::Expired));
    assert_eq!(changes.len(), 4, "one change per job: {changes:?}");

    // Anna holds the taken job with full details.
    let (changes, _) = drain(http, anna, None).await;
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Job { job } if job.id == taken && job.address.is_some()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_job_returns_to_the_others_but_not_to_the_releaser() {
    let s = Scenario::new().accepted().await;
    let (http, anna, job) = (&s.http, &s.friend, s.job());
    let luca = s.friend_named("Luca").await;
    let (_, anna_cursor) = drain(http, anna, None).await;
    let (_, luca_cursor) = drain(http, &luca, None).await;

    let released = s.friend_post(job, "release", serde_json::json!({})).await;
    assert_eq!(released.status, 200);

    let (changes, _) = drain(http, &luca, Some(&luca_cursor)).await;
    assert!(has_offer(&changes, job), "{changes:?}");
    let (changes, _) = drain(http, anna, Some(&anna_cursor)).await;
    assert_eq!(removal(&changes, job), Some(RemovalReason::Declined));
    assert!(matches!(
        http.accept(&luca, job, "k").await.json(),
        AcceptOutcome::Won { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_and_snapshots_are_paged() {
    let s = Scenario::new().await;
    let (http, anna) = (&s.http, &s.friend);
    let (_, cursor) = drain(http, anna, None).await;
    // Offers from two area tiles in turn (Oerlikon, and 17 km south of Zürich one tile-row lower)
    // and changes that name Anna herself (her accepts): one delta merges her own rows and both
    // tiles' in sequence order, and reads each change once.
    let south = booking_at((places::ZURICH.0 - 0.15, places::ZURICH.1));
    let (mut booked, mut open) = (Vec::new(), Vec::new());
    for i in 0..25 {
        let job = match i % 2 {
            0 => s.book().await.id,
            _ => s.tb.book(&s.customer, &south).await.id,
        };
        if i % 5 == 4 {
            s.accept(job, &format!("k{i}")).await;
        } else {
            open.push(job);
        }
        booked.push(job);
    }

    let mut pages = Vec::new();
    let mut seen = Vec::new();
    let mut cursor = cursor;
    loop {
        let page: SyncPage = http
            .get(&format!("/v1/sync?cursor={cursor}&limit=10"), &anna.token)
            .await
            .json();
        assert!(!page.reset);
        pages.push(page.changes.len());
        seen.extend(page.changes.iter().map(|c| match c {
            Change::Offer { offer } => offer.id,
            Change::Job { job } => job.id,
            other => panic!("only offers and Anna's jobs here: {other:?}"),
        }));
        cursor = page.cursor;
        if !page.more {
            break;
        }
    }
    // A page holds at most 10 feed rows (an accepted job has two: its booking and the accept).
    assert!(
        pages.len() >= 3 && pages.iter().all(|n| *n <= 10),
        "{pages:?}"
    );
    assert_eq!(
        seen, booked,
        "each job once, in the order of its last change"
    );

    // A newcomer's snapshot, paged the same way, holds every open offer exactly once.
    open.sort();
    let luca = s.friend_named("Luca").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/sync?cursor={c}&limit=10"),
            None => "/v1/sync?limit=10".to_owned(),
        };
        let page: SyncPage = http.get(&path, &luca.token).await.json();
        assert!(page.reset);
        for c in page.changes {
            if let Change::Offer { offer } = c {
                seen.push(offer.id);
            }
        }
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, open);
    // The snapshot's final cursor continues as a delta: nothing new.
    let page: SyncPage = http.sync(&luca, cursor.as_deref(), 0).await.json();
    assert!(page.changes.is_empty() && !page.reset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_feed_asks_for_a_full_resync() {
    let s = Scenario::new().await;
    let (http, anna) = (&s.http, &s.friend);
    let (_, old) = drain(http, anna, None).await;
    let job = s.book().await;
    s.tb.clock.advance(chrono::Duration::days(8));
    s.tb.backend
        .prune_feed(s.tb.clock_now() - chrono::Duration::days(7))
        .await
        .unwrap();

    let r = http.sync(anna, Some(&old), 0).await;
    assert_eq!(r.status, 410);
    assert_eq!(r.code(), "cursor_too_old");
    let (changes, _) = drain(http, anna, None).await;
    // The job's time ran out meanwhile (not yet swept): the snapshot leaves it out.
    assert!(!has_offer(&changes, job.id));
    let fresh = s.book().await;
    let (changes, _) = drain(http, anna, None).await;
    assert!(has_offer(&changes, fresh.id));
    for bad in ["abc", "-3", "s1", "999999"] {
        let r = http.sync(anna, Some(bad), 0).await;
        assert!(r.status == 400 || r.status == 410, "{bad}: {}", r.status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_sync_is_small_and_carries_the_server_clock() {
    let s = Scenario::new().await;
    let (http, anna) = (&s.http, &s.friend);
    let (_, cursor) = drain(http, anna, None).await;
    s.tb.clock.advance(chrono::Duration::minutes(10));
    let r = http.sync(anna, Some(&cursor), 0).await;
    assert!(
        r.body.len() <= 256,
        "idle sync is {} bytes: {}",
        r.body.len(),
        r.text()
    );
    let page: SyncPage = r.json();
    let skew = page.server_time - chrono::Utc::now();
    assert!(
        skew > chrono::Duration::minutes(9),
        "server_time does not follow the server clock: {skew}"
    );
    assert!(r.headers.contains_key("x-server-time"));
}
