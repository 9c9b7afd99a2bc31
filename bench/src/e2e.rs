//! End-to-end benchmarks over real HTTP on loopback against the in-process reference backend:
//! P3 (the accept race), P4 (booking → a long-polling Friend's cache), P5 (bytes on the wire),
//! P7 (backend throughput).

use crate::measure::{ms, percentile, throughput};
use crate::report::Row;
use friend_core::AcceptResult;
use friend_protocol::{AcceptOutcome, JobId, SyncPage};
use friend_tests::{TestAccount, TestBackend, booking_at, friend_at, open_friend, places};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// P3 with raw HTTP clients: 200 Friends accept one job at the same instant, 50 rounds; the
/// response time is the server's answer as a client sees it.
pub async fn p3_race_http() -> Vec<Row> {
    let tb = TestBackend::start().await;
    let customer = tb.customer("Heidi").await;
    let mut friends = Vec::new();
    for i in 0..200 {
        friends.push(tb.friend(friend_at(&format!("F{i}"), places::ZURICH)).await);
    }
    let http = tb.http();
    // Warm the connection pool so the rounds measure requests, not TCP handshakes.
    for f in &friends {
        let _ = http.get("/v1/health", &f.token).await;
    }
    let rounds = 50;
    let (bad_rounds, latencies) = race(&tb, &customer, &friends, rounds, |f, job, round| {
        let http = http.clone();
        async move {
            let r = http.accept(&f, job, &format!("r{round}")).await;
            matches!(r.json::<AcceptOutcome>(), AcceptOutcome::Won { .. })
        }
    })
    .await;
    vec![
        Row::exact(
            "P3",
            &format!("rounds (of {rounds}) without exactly 1 winner, 200 raw HTTP clients"),
            bad_rounds,
            0,
        ),
        Row::info(
            "P3",
            "accept response p50 (raw HTTP clients)",
            format!("{:.3} ms", ms(percentile(&latencies, 50.0))),
        ),
        Row::absolute(
            "P3",
            "accept response p99 (raw HTTP clients)",
            ms(percentile(&latencies, 99.0)),
            "ms",
            50.0,
        ),
    ]
}

/// `rounds` bookings, each accepted by every one of `racers` at the same instant (`accept` tells
/// whether it won): how many rounds did not have exactly one winner, and every accept's response
/// time, sorted.
async fn race<T, F, Fut>(
    tb: &TestBackend,
    customer: &TestAccount,
    racers: &[T],
    rounds: usize,
    accept: F,
) -> (u64, Vec<Duration>)
where
    T: Clone,
    F: Fn(T, JobId, usize) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let mut latencies = Vec::new();
    let mut bad_rounds = 0;
    for round in 0..rounds {
        let job = tb.book(customer, &booking_at(places::OERLIKON)).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(racers.len()));
        let tasks: Vec<_> = racers
            .iter()
            .map(|r| {
                // Not started before it is awaited: after the barrier.
                let (b, attempt) = (barrier.clone(), accept(r.clone(), job.id, round));
                tokio::spawn(async move {
                    b.wait().await;
                    let t = Instant::now();
                    let won = attempt.await;
                    (t.elapsed(), won)
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            let (d, won) = t.await.unwrap();
            latencies.push(d);
            winners += usize::from(won);
        }
        bad_rounds += u64::from(winners != 1);
    }
    latencies.sort();
    (bad_rounds, latencies)
}

/// P3 through the real client: 200 Friends (core sessions, each with its own SQLite file) accept
/// one job at the same instant, 20 rounds. Includes each device's durable pending-accept write
/// (fsync) before and its cache update after the request, 200 devices sharing 2 cores and one disk.
pub async fn p3_race() -> Vec<Row> {
    let tb = TestBackend::start().await;
    let customer = tb.customer("Heidi").await;
    let dir = tempfile::tempdir().unwrap();
    let mut sessions = Vec::new();
    for i in 0..200 {
        let account = tb.friend(friend_at(&format!("F{i}"), places::ZURICH)).await;
        sessions.push(Arc::new(
            open_friend(&tb.base_url, &account, &dir.path().join(format!("f{i}.db"))).await,
        ));
    }
    let rounds = 20;
    let (bad_rounds, latencies) = race(&tb, &customer, &sessions, rounds, |s, job, _| async move {
        matches!(s.accept(job).await.unwrap(), AcceptResult::Won(_))
    })
    .await;
    vec![
        Row::exact(
            "P3",
            &format!("rounds (of {rounds}) without exactly 1 winner, 200 core sessions"),
            bad_rounds,
            0,
        ),
        Row::info(
            "P3",
            "accept p50 through 200 core sessions on one machine (durable writes included)",
            format!("{:.3} ms", ms(percentile(&latencies, 50.0))),
        ),
        Row::info(
            "P3",
            "accept p99 through 200 core sessions on one machine",
            format!("{:.3} ms", ms(percentile(&latencies, 99.0))),
        ),
    ]
}

/// P4: a booking reaches a long-polling Friend's cache, with 1,000 idle long-polls open.
pub async fn p4_push() -> Vec<Row> {
    let tb = TestBackend::start().await;
    let customer = tb.customer("Heidi").await;
    // 1,000 idle Friends in Bern, long-polling with raw HTTP (they are never concerned).
    let mut idle = Vec::new();
    for i in 0..1000 {
        idle.push(
            tb.friend(friend_at(&format!("Idle {i}"), places::BERN))
                .await,
        );
    }
    let http = tb.http();
    let mut polls = Vec::new();
    for f in &idle {
        let cursor: SyncPage = http.sync(f, None, 0).await.json();
        let (http, f) = (http.clone(), f.clone());
        polls.push(tokio::spawn(async move {
            let mut cursor = cursor.cursor;
            loop {
                let page: SyncPage = http.sync(&f, Some(&cursor), 30).await.json();
                cursor = page.cursor;
            }
        }));
    }
    let backend = tb.backend.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while backend.waiting_accounts() < 1000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waiting = backend.waiting_accounts();

    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let dir = tempfile::tempdir().unwrap();
    let session = open_friend(&tb.base_url, &anna, &dir.path().join("anna.db")).await;
    session.sync_once().await.unwrap();
    let seen = Arc::new(crate::crowd::Seen(Notify::new()));
    let _sub = session.subscribe_inbox(seen.clone());
    session.start_foreground_sync();
    let bookings = 50;
    let checks_before = backend.wake_checks();
    let latencies =
        crate::crowd::latencies(&tb, &tb, &customer, &session, &seen, anna.id, bookings).await;
    let idle_wakes: u64 = idle.iter().map(|f| tb.backend.wake_count(f.id)).sum();
    let checks = backend.wake_checks() - checks_before;
    for p in polls {
        p.abort();
    }
    session.shutdown();
    vec![
        Row::info(
            "P4",
            "idle long-polls open during the run",
            waiting.to_string(),
        ),
        Row::absolute(
            "P4",
            &format!(
                "booking → offer in the long-polling Friend's cache, p50 ({bookings} bookings)"
            ),
            ms(percentile(&latencies, 50.0)),
            "ms",
            20.0,
        ),
        Row::absolute(
            "P4",
            "booking → offer in cache, p99",
            ms(percentile(&latencies, 99.0)),
            "ms",
            100.0,
        ),
        Row::exact(
            "P4",
            "idle long-polls woken by the bookings (targeted wake-ups)",
            idle_wakes,
            0,
        ),
        // Waiters are indexed by (tile, category): a booking asks the eligibility rule only about
        // the waiting Friends near it (Anna), not the 1,000 in Bern (it asked all 1,001 before).
        Row::absolute(
            "P4",
            "eligibility checks per booking by the wake-ups (1,000 long-polls elsewhere, 1 near)",
            // The unmeasured warm-up bookings were checked too.
            checks as f64 / (bookings + crate::crowd::WARMUP) as f64,
            "checks",
            2.0,
        ),
    ]
}

async fn sync_bytes(http: &friend_tests::Http, who: &TestAccount, cursor: &str) -> (usize, String) {
    let mut total = 0;
    let mut cursor = cursor.to_owned();
    loop {
        let r = http
            .get(&format!("/v1/sync?cursor={cursor}&limit=1000"), &who.token)
            .await;
        total += r.body.len();
        let page: SyncPage = r.json();
        cursor = page.cursor;
        if !page.more {
            return (total, cursor);
        }
    }
}

/// P5: bytes on the wire for an idle sync and for deltas of 1, 10, 100, 1,000 changes, with
/// 2,000 offers already in the inbox.
pub async fn p5_bytes() -> Vec<Row> {
    let tb = TestBackend::start().await;
    let customer = tb.customer("Heidi").await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let http = tb.http();
    for _ in 0..2000 {
        tb.book(&customer, &booking_at(places::OERLIKON)).await;
    }
    let (_, mut cursor) = sync_bytes(&http, &anna, "").await;
    let idle = http
        .get(&format!("/v1/sync?cursor={cursor}"), &anna.token)
        .await
        .body
        .len();
    let mut rows = vec![Row::absolute(
        "P5",
        "idle sync response body (2,000 offers cached)",
        idle as f64,
        "bytes",
        256.0,
    )];
    let mut per_change = Vec::new();
    for k in [1usize, 10, 100, 1000] {
        for _ in 0..k {
            tb.book(&customer, &booking_at(places::OERLIKON)).await;
        }
        let (bytes, next) = sync_bytes(&http, &anna, &cursor).await;
        cursor = next;
        per_change.push(bytes as f64 / k as f64);
        rows.push(Row::info(
            "P5",
            &format!("delta of {k} new offers"),
            format!("{bytes} bytes ({:.0} per change)", bytes as f64 / k as f64),
        ));
    }
    let spread = per_change.iter().cloned().fold(f64::MIN, f64::max)
        / per_change.iter().cloned().fold(f64::MAX, f64::min);
    rows.push(Row::absolute(
        "P5",
        "largest / smallest bytes per change across the deltas (linear ⇒ ≈ 1)",
        spread,
        "×",
        1.5,
    ));
    rows
}

/// P7: backend throughput for accepts on distinct jobs and for bookings, next to plain health
/// requests through the same stack; load generated in the same process (both share the 2 cores).
pub async fn p7_throughput() -> Vec<Row> {
    let tb = TestBackend::start().await;
    let customer = tb.customer("Heidi").await;
    let mut friends = Vec::new();
    for i in 0..50 {
        friends.push(tb.friend(friend_at(&format!("F{i}"), places::ZURICH)).await);
    }
    let http = tb.http();
    let n = 4000usize;
    let concurrency = 64;

    let h = http.clone();
    let health = throughput(n, concurrency, move |_| {
        let h = h.clone();
        async move {
            assert_eq!(h.get("/v1/health", "").await.status, 200);
        }
    })
    .await;

    let (h, c) = (http.clone(), customer.clone());
    let booked = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let b2 = booked.clone();
    let bookings = throughput(n, concurrency, move |i| {
        let (h, c, b) = (h.clone(), c.clone(), b2.clone());
        async move {
            let r = h
                .post(
                    "/v1/customer/jobs",
                    &c.token,
                    Some(&format!("p7-{i}")),
                    &booking_at(places::OERLIKON),
                )
                .await;
            assert_eq!(r.status, 200);
            b.lock()
                .unwrap()
                .push(r.json::<friend_protocol::JobResponse>().job.id);
        }
    })
    .await;

    let jobs = Arc::new(booked.lock().unwrap().clone());
    let (h, fr) = (http.clone(), Arc::new(friends));
    let accepts = throughput(n, concurrency, move |i| {
        let (h, fr, jobs) = (h.clone(), fr.clone(), jobs.clone());
        async move {
            let f = &fr[i % fr.len()];
            let r = h.accept(f, jobs[i], &format!("p7a-{i}")).await;
            assert!(matches!(
                r.json::<AcceptOutcome>(),
                AcceptOutcome::Won { .. }
            ));
        }
    })
    .await;
    vec![
        Row::info(
            "P7",
            "baseline: GET /v1/health through the same stack",
            format!("{health:.0} req/s"),
        ),
        Row::info(
            "P7",
            "bookings (50 eligible Friends in reach)",
            format!("{bookings:.0} per s"),
        ),
        Row::at_least(
            "P7",
            &format!("accepts on distinct jobs ({n}, {concurrency} concurrent clients)"),
            accepts,
            "per s",
            1000.0,
        ),
    ]
}
