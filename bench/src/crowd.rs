//! P8 (accepts through two instances on one PostgreSQL, next to the same writes driven directly)
//! and P9 (a crowd of idle long-polls: wake-up latency on the instance and across instances, and
//! the memory an idle long-poll costs). Both run on the test harness's throwaway PostgreSQL.

use crate::measure::{ms, percentile, throughput};
use crate::report::Row;
use friend_core::{InboxFilter, InboxListener};
use friend_protocol::{AcceptOutcome, AccountId, SyncPage};
use friend_tests::{
    Http, TestAccount, TestBackend, booking_at, friend_at, open_friend, places, point,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const CONCURRENCY: usize = 64;

/// Books `n` jobs through the instances in turn; their ids.
async fn book_many(http: &[Http], customer: &TestAccount, n: usize, tag: &str) -> Vec<String> {
    let ids = Arc::new(Mutex::new(vec![String::new(); n]));
    let (http, c, out, tag) = (
        Arc::new(http.to_vec()),
        customer.clone(),
        ids.clone(),
        tag.to_owned(),
    );
    throughput(n, CONCURRENCY, move |i| {
        let (http, c, out, tag) = (http.clone(), c.clone(), out.clone(), tag.clone());
        async move {
            let r = http[i % http.len()]
                .post(
                    "/v1/customer/jobs",
                    &c.token,
                    Some(&format!("{tag}-{i}")),
                    &booking_at(places::OERLIKON),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            out.lock().unwrap()[i] = r.json::<friend_protocol::JobResponse>().job.id.to_string();
        }
    })
    .await;
    Arc::try_unwrap(ids).unwrap().into_inner().unwrap()
}

/// The accept's statements as one hand-written transaction: the key claimed, the job (the
/// backend's own statement) and the Friend read, the conditional update, the job read again, the change log (counter, change, two feed rows, the area row),
/// the answer stored and the other instances notified.
async fn direct_accept(
    pg: &friend_backend::pg::Pg,
    friend: &str,
    job: &str,
    key: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut conn = pg.conn().await?;
    let tx = conn.transaction().await?;
    let now: i64 = chrono::Utc::now().timestamp_millis();
    let claim = tx
        .prepare_cached(
            "INSERT INTO idempotency (account_id, key, route, fingerprint, status, body, created_at)
             VALUES ($1, $2, 'accept', $3, 0, '', $4) ON CONFLICT (account_id, key) DO NOTHING",
        )
        .await?;
    tx.execute(&claim, &[&friend, &key, &key.as_bytes(), &now])
        .await?;
    // The job as the accept reads it (before and after the update): the same statement.
    let read_job = tx
        .prepare_cached(&friend_backend::job_by_id_sql().replace('?', "$"))
        .await?;
    let row = tx.query_one(&read_job, &[&job]).await?;
    let customer: String = row.get(4);
    let read_friend = tx
        .prepare_cached("SELECT home_lat, home_lon, radius_km FROM friends WHERE account_id = $1")
        .await?;
    tx.query_one(&read_friend, &[&friend]).await?;
    let update = tx
        .prepare_cached(
            "UPDATE jobs SET state = 'assigned', friend_id = $2, version = version + 1,
                 updated_at = $3 WHERE id = $1 AND state = 'open'",
        )
        .await?;
    assert_eq!(tx.execute(&update, &[&job, &friend, &now]).await?, 1);
    let declines = tx
        .prepare_cached("DELETE FROM declines WHERE job_id = $1 AND friend_id = $2")
        .await?;
    tx.execute(&declines, &[&job, &friend]).await?;
    tx.query_one(&read_job, &[&job]).await?;
    let counter = tx
        .prepare_cached("UPDATE change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq")
        .await?;
    let seq: i64 = tx.query_one(&counter, &[]).await?.get(0);
    let change = tx
        .prepare_cached("INSERT INTO changes (seq, job_id, at) VALUES ($1, $2, $3)")
        .await?;
    tx.execute(&change, &[&seq, &job, &now]).await?;
    let feed = tx
        .prepare_cached("INSERT INTO feed (account_id, seq, job_id) VALUES ($1, $2, $3)")
        .await?;
    tx.execute(&feed, &[&customer, &seq, &job]).await?;
    tx.execute(&feed, &[&friend, &seq, &job]).await?;
    let area = tx
        .prepare_cached("INSERT INTO area_feed (tile, seq, job_id) VALUES ($1, $2, $3)")
        .await?;
    tx.execute(&area, &[&0i64, &seq, &job]).await?;
    let answer = tx
        .prepare_cached(
            "UPDATE idempotency SET status = 200, body = $3 WHERE account_id = $1 AND key = $2",
        )
        .await?;
    tx.execute(&answer, &[&friend, &key, &"{\"outcome\":\"won\"}"])
        .await?;
    tx.execute(
        "SELECT pg_notify('friend_changes', $1)",
        &[&seq.to_string()],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// P8: accepts on distinct jobs through two instances on one PostgreSQL database, next to the
/// same writes driven directly against the same server at the same concurrency.
pub async fn p8_postgres() -> Vec<Row> {
    let instances = TestBackend::start_instances(2, None).await;
    let http: Vec<Http> = instances.iter().map(TestBackend::http).collect();
    let url = instances[0].db_path.to_string_lossy().into_owned();
    let customer = instances[0].customer("Heidi").await;
    let mut friends = Vec::new();
    for i in 0..50 {
        friends.push(
            instances[i % 2]
                .friend(friend_at(&format!("F{i}"), places::ZURICH))
                .await,
        );
    }
    let n = 2000;
    let jobs = Arc::new(book_many(&http, &customer, 2 * n, "p8").await);
    let friends = Arc::new(friends);

    let (h, fr, js) = (Arc::new(http.clone()), friends.clone(), jobs.clone());
    let via_api = throughput(n, CONCURRENCY, move |i| {
        let (h, fr, js) = (h.clone(), fr.clone(), js.clone());
        async move {
            let f = &fr[i % fr.len()];
            let job: friend_protocol::JobId = js[i].parse().unwrap();
            let r = h[i % h.len()].accept(f, job, &format!("p8a-{i}")).await;
            assert!(matches!(
                r.json::<AcceptOutcome>(),
                AcceptOutcome::Won { .. }
            ));
        }
    })
    .await;

    // The baseline: two pools, as the two instances hold, on the other half of the jobs.
    let pools = Arc::new([
        friend_backend::pg::Pg::connect(&url).unwrap(),
        friend_backend::pg::Pg::connect(&url).unwrap(),
    ]);
    let (fr, js) = (friends.clone(), jobs.clone());
    let direct = throughput(n, CONCURRENCY, move |i| {
        let (pools, fr, js) = (pools.clone(), fr.clone(), js.clone());
        async move {
            let f = fr[i % fr.len()].id.to_string();
            direct_accept(&pools[i % 2], &f, &js[n + i], &format!("p8d-{i}"))
                .await
                .unwrap();
        }
    })
    .await;
    let share = 100.0 * via_api / direct;
    vec![
        Row::info(
            "P8",
            &format!(
                "baseline: the accept's writes as one hand-written tokio-postgres transaction ({n}, {CONCURRENCY} concurrent, two pools)"
            ),
            format!("{direct:.0} per s"),
        ),
        Row::info(
            "P8",
            &format!(
                "accepts on distinct jobs through 2 instances on one PostgreSQL ({n}, {CONCURRENCY} concurrent clients)"
            ),
            format!("{via_api:.0} per s"),
        ),
        Row::at_least(
            "P8",
            "accepts through the instances, share of the direct baseline",
            share,
            "%",
            50.0,
        ),
    ]
}

/// Tells when the inbox of the measuring Friend changed.
pub struct Seen(pub Notify);
impl InboxListener for Seen {
    fn on_inbox_changed(&self) {
        self.0.notify_one();
    }
}

/// Raises this process's open-files limit to `want` (or the most allowed); the limit now.
/// The hard limit too where the process may (root); else the soft limit up to the hard one.
fn raise_open_files(want: u64) -> u64 {
    if rlimit::setrlimit(rlimit::Resource::NOFILE, want, want).is_ok() {
        return want;
    }
    rlimit::increase_nofile_limit(want).unwrap_or(0)
}

/// Idle long-polls of `friends` on `tb`, held by a child process (`crowd-child`: this process
/// keeps its open files for the server side; the sandbox's hard limit is 20,000 per process).
/// Returns once they wait (see [`until_waiting`]).
async fn idle_polls(
    tb: &TestBackend,
    friends: &[TestAccount],
    file: &std::path::Path,
    transport: Transport,
) -> Child {
    let before = tb.backend.waiting_accounts();
    let lines: Vec<String> = friends
        .iter()
        .map(|f| format!("{} {}", f.id, f.token))
        .collect();
    std::fs::write(file, lines.join("\n")).unwrap();
    let child = Child(
        std::process::Command::new(std::env::current_exe().unwrap())
            .arg("crowd-child")
            .arg(transport.name())
            .arg(&tb.base_url)
            .arg(file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    until_waiting(tb, before + friends.len()).await;
    child
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How the idle crowd reaches the instance.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    /// One HTTP/1.1 connection per device, as phones connect straight to an instance.
    Http1,
    /// HTTP/2 by prior knowledge, [`STREAMS_PER_CONNECTION`] long-polls a connection, as a load
    /// balancer in front of the instances multiplexes the devices' requests.
    Http2,
}

/// Streams a load balancer's connection carries in the HTTP/2 crowd (the backend allows 1,000).
const STREAMS_PER_CONNECTION: usize = 500;

impl Transport {
    /// The name `crowd-child` takes.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Http1 => "http1",
            Transport::Http2 => "http2",
        }
    }

    /// The transport `name` names.
    pub fn named(name: &str) -> Option<Transport> {
        [Transport::Http1, Transport::Http2]
            .into_iter()
            .find(|t| t.name() == name)
    }

    fn describe(self) -> String {
        match self {
            Transport::Http1 => "HTTP/1.1, a connection per device".to_owned(),
            Transport::Http2 => {
                format!("HTTP/2 from a load balancer, {STREAMS_PER_CONNECTION} per connection")
            }
        }
    }
}

/// Runs in a child process: long-polls (`wait=30` again and again, the first wait spread over
/// 1–30 s) for every `id token` line of `tokens` over `transport`, opened 500 at a time (each batch's first answer awaited before the next, so connecting
/// never floods the listen backlog). Runs until killed.
pub async fn crowd_child(transport: Transport, base_url: &str, tokens: &std::path::Path) {
    let mut clients: Vec<Http> = match transport {
        Transport::Http1 => vec![Http::new(base_url)],
        Transport::Http2 => Vec::new(),
    };
    let accounts: Vec<TestAccount> = std::fs::read_to_string(tokens)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (id, token) = l.split_once(' ')?;
            Some(TestAccount {
                id: id.parse().ok()?,
                token: token.to_owned(),
            })
        })
        .collect();
    let mut polls = Vec::with_capacity(accounts.len());
    for batch in accounts.chunks(STREAMS_PER_CONNECTION) {
        if let Transport::Http2 = transport {
            // A client of its own: reqwest multiplexes a client's requests over one connection.
            clients.push(Http::http2(base_url));
        }
        let Some(http) = clients.last() else { return };
        let mut started = Vec::with_capacity(batch.len());
        for f in batch {
            let (http, f) = (http.clone(), f.clone());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            started.push(rx);
            // Devices renew their long-polls at their own moments, not in step: each first wait
            // is spread over the 30 s (opened together, a batch would renew together for ever).
            let first_wait = 1 + (polls.len() % 30) as u32;
            polls.push(tokio::spawn(async move {
                let mut cursor = http.sync(&f, None, 0).await.json::<SyncPage>().cursor;
                let _ = tx.send(());
                let mut wait = first_wait;
                loop {
                    let page: SyncPage = http.sync(&f, Some(&cursor), wait).await.json();
                    cursor = page.cursor;
                    wait = 30;
                }
            }));
        }
        for rx in started {
            let _ = rx.await;
        }
    }
    for p in polls {
        let _ = p.await;
    }
}

/// Creates `n` Friends in Bern (never concerned by the bookings in Zürich).
async fn idle_friends(tb: &TestBackend, n: usize, from: usize) -> Vec<TestAccount> {
    let out = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let (backend, o) = (tb.backend.clone(), out.clone());
    throughput(n, 16, move |i| {
        let (backend, o) = (backend.clone(), o.clone());
        async move {
            let c = backend
                .create_friend(friend_at(&format!("Idle {}", from + i), places::BERN))
                .await
                .unwrap();
            o.lock().unwrap().push(TestAccount {
                id: c.id,
                token: c.token,
            });
        }
    })
    .await;
    Arc::try_unwrap(out).unwrap().into_inner().unwrap()
}

/// Waits (at most two minutes) until `n` accounts long-poll on `tb`, but for the few renewing
/// their long-poll at any moment (a thousandth); returns how many wait.
async fn until_waiting(tb: &TestBackend, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    while tb.backend.waiting_accounts() < n - n / 1000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tb.backend.waiting_accounts()
}

/// Bookings before each measured series, unmeasured: the first booking after the crowd changed
/// prepares statements on pooled connections that have not run them yet (measured: 135–170 ms
/// for that one booking, 10–20 ms for the next).
pub const WARMUP: usize = 3;

/// Booking (through `via`) → offer in Anna's cache (long-polling on `at`), `n` times after
/// [`WARMUP`] unmeasured ones, sorted.
pub async fn latencies(
    at: &TestBackend,
    via: &TestBackend,
    customer: &TestAccount,
    session: &friend_core::FriendSession,
    seen: &Seen,
    anna: AccountId,
    n: usize,
) -> Vec<Duration> {
    let here = point(places::ZURICH);
    // The customer's app keeps its HTTP client (building one costs milliseconds: not booking).
    let http = via.http();
    let mut out = Vec::with_capacity(n);
    for i in 0..WARMUP + n {
        // Anna's foreground loop settles into its long-poll before each booking.
        while !at.backend.is_waiting(anna) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let t = Instant::now();
        let job = http.book(customer, &booking_at(places::OERLIKON)).await;
        loop {
            tokio::time::timeout(Duration::from_secs(10), seen.0.notified())
                .await
                .expect("offer arrived");
            let inbox = session
                .inbox(here, 30.0, InboxFilter::default())
                .await
                .unwrap();
            if inbox.items.iter().any(|i| i.offer.id == job.id) {
                break;
            }
        }
        if i >= WARMUP {
            out.push(t.elapsed());
        }
    }
    out.sort();
    out
}

/// P9: 20,000 idle long-polls on one instance (a second instance on the same PostgreSQL), the
/// crowd reaching it over `transport`.
pub async fn p9_crowd(transport: Transport) -> Vec<Row> {
    // This process holds the server side of every connection; the sandbox caps open files at
    // 20,000 per process (raising the hard limit is refused), so a crowd of HTTP/1.1 connections
    // stops below it.
    let limit = raise_open_files(65_536);
    let crowd = match transport {
        Transport::Http1 => (limit as usize).saturating_sub(600).min(20_000),
        Transport::Http2 => 20_000,
    };
    let how = transport.describe();
    let instances = TestBackend::start_instances(2, None).await;
    let (a, b) = (&instances[0], &instances[1]);
    let customer = b.customer("Heidi").await;
    let anna = a.friend(friend_at("Anna", places::ZURICH)).await;
    let dir = tempfile::tempdir().unwrap();
    let session = open_friend(&a.base_url, &anna, &dir.path().join("anna.db")).await;
    session.sync_once().await.unwrap();
    let seen = Arc::new(Seen(Notify::new()));
    let _sub = session.subscribe_inbox(seen.clone());
    session.start_foreground_sync();

    let files = tempfile::tempdir().unwrap();
    let first = idle_friends(a, 1_000, 0).await;
    let _small_crowd = idle_polls(a, &first, &files.path().join("first"), transport).await;
    let small = until_waiting(a, 1_001).await - 1;
    let at_small = latencies(a, a, &customer, &session, &seen, anna.id, 50).await;

    let rest = idle_friends(a, crowd - 1_000, 1_000).await;
    let rss_before = crate::size::status_kb("VmRSS:");
    let _large_crowd = idle_polls(a, &rest, &files.path().join("rest"), transport).await;
    let large = until_waiting(a, crowd + 1).await - 1;
    let rss_after = crate::size::status_kb("VmRSS:");
    let at_large = latencies(a, a, &customer, &session, &seen, anna.id, 100).await;
    let across = latencies(a, b, &customer, &session, &seen, anna.id, 100).await;
    session.shutdown();
    let per_poll_kb = (rss_after.saturating_sub(rss_before)) as f64 / (large - small).max(1) as f64;
    let p50_small = ms(percentile(&at_small, 50.0));
    let p50_large = ms(percentile(&at_large, 50.0));
    vec![
        Row::info(
            "P9",
            &format!(
                "idle long-polls waiting on the instance at the reading ({how}; open-files limit)"
            ),
            format!("{large} ({limit})"),
        ),
        Row::absolute(
            "P9",
            &format!(
                "booking → offer in a long-polling Friend's cache, p99 ({large} waiters, {how}, same instance)"
            ),
            ms(percentile(&at_large, 99.0)),
            "ms",
            20.0,
        ),
        Row::ratio(
            "P9",
            &format!("booking → offer in cache, p50 with {large} waiters vs {small} ({how})"),
            p50_large,
            p50_small,
            1.5,
        )
        .baseline_name(&format!("p50 with {small} waiters, same run")),
        Row::absolute(
            "P9",
            &format!(
                "resident memory per idle long-poll ({how}; the serving process, the clients are another)"
            ),
            per_poll_kb,
            "KB",
            10.0,
        ),
        Row::absolute(
            "P9",
            &format!(
                "booking on instance 2 → offer in the cache of a Friend long-polling on instance 1, p99 ({large} waiters, {how})"
            ),
            ms(percentile(&across, 99.0)),
            "ms",
            100.0,
        ),
        Row::info(
            "P9",
            &format!("cross-instance booking → cache, p50 ({how})"),
            format!("{:.3} ms", ms(percentile(&across, 50.0))),
        ),
    ]
}
