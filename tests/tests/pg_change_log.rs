//! The change log on PostgreSQL is commit-ordered (docs/adr/0014): a device's delta cursor never
//! skips a change, however the writers interleave. Run on a real, throwaway PostgreSQL server.
//!
//! The interleavings are forced, not hoped for: a writer that has to wait is observed waiting on a
//! lock in `pg_locks` (a bounded wait, no sleeps) before the test goes on. The same reader on a
//! BIGSERIAL log skips a change — the failure these tests exist to catch.

use friend_backend::DbError;
use friend_backend::pg::run::Mode;
use friend_backend::pg::{Pg, SCHEMA_VERSION};
use friend_backend::sql::params;
use friend_tests::pg::PgServer;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How a writer ends its transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Commit,
    Rollback,
}

/// Holds a writer after it took its numbers: `took` is signalled, then it waits for `go`.
struct Hold {
    took: tokio::sync::oneshot::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
}

/// Appends a change of each of `jobs` for `account` the way every use case does — the backend's
/// `Tx::next_change` and the account's feed row, in one transaction run by the backend's runner
/// on a blocking thread — held by `hold` before it ends as `end` says. The numbers it took.
fn append(
    pg: &Pg,
    jobs: &[&str],
    account: &str,
    hold: Option<Hold>,
    end: End,
) -> JoinHandle<Result<Vec<i64>, DbError>> {
    let (pg, rt) = (pg.clone(), tokio::runtime::Handle::current());
    let jobs: Vec<String> = jobs.iter().map(|j| (*j).to_owned()).collect();
    let account = account.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut hold = hold;
        let mut taken = Vec::new();
        let ran = pg.run_blocking(&rt, Mode::Write, |tx| {
            taken.clear();
            for job in &jobs {
                let seq = tx.next_change(job, 0)?;
                tx.exec(
                    "INSERT INTO feed (account_id, seq, job_id) VALUES (?1, ?2, ?3)",
                    params![account, seq, job],
                )?;
                taken.push(seq);
            }
            if let Some(h) = hold.take() {
                let _ = h.took.send(());
                let _ = h.go.recv();
            }
            match end {
                End::Commit => Ok(()),
                End::Rollback => Err(DbError::Task("rolled back on purpose".into())),
            }
        });
        match (ran, end) {
            (Ok(()), _) | (Err(DbError::Task(_)), End::Rollback) => Ok(taken),
            (Err(e), _) => Err(e),
        }
    })
}

async fn migrated(server: &PgServer) -> Pg {
    let url = server.database().expect("a fresh database");
    let pg = Pg::connect(&url).expect("settings parse");
    pg.migrate().await.expect("migrated");
    pg
}

/// Waits until some backend waits for a lock; panics after 10 s.
async fn until_a_writer_waits(pg: &Pg) {
    let probe = pg.conn().await.expect("a connection");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = probe
            .query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[])
            .await
            .expect("pg_locks")
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the second writer never waited for the first one's lock"
        );
        tokio::task::yield_now().await;
    }
}

/// A device: reads its feed after its cursor and moves the cursor to the last change it saw.
struct Device {
    account: &'static str,
    cursor: i64,
    seen: Vec<String>,
}

impl Device {
    async fn sync(&mut self, pg: &Pg) {
        let conn = pg.conn().await.expect("a connection");
        let rows = conn
            .query(
                "SELECT seq, job_id FROM feed WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT 100",
                &[&self.account, &self.cursor],
            )
            .await
            .expect("feed");
        for r in rows {
            self.cursor = r.get(0);
            self.seen.push(r.get(1));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_after_a_later_one_is_still_seen() {
    let pg = migrated(PgServer::shared()).await;
    let mut device = Device {
        account: "anna",
        cursor: 0,
        seen: Vec::new(),
    };

    // Given writer 1 has taken its number but not committed,
    let (took, taken) = tokio::sync::oneshot::channel();
    let (go, wait) = std::sync::mpsc::channel();
    let writer1 = append(
        &pg,
        &["job-1"],
        "anna",
        Some(Hold { took, go: wait }),
        End::Commit,
    );
    taken.await.expect("writer 1 took its number");
    // and writer 2, which began later, reaches its change too,
    let writer2 = append(&pg, &["job-2"], "anna", None, End::Commit);
    // then writer 2 waits for writer 1 (it cannot take a number before writer 1 commits),
    until_a_writer_waits(&pg).await;
    assert!(!writer2.is_finished());
    // and a device syncing now sees nothing uncommitted.
    device.sync(&pg).await;
    assert!(device.seen.is_empty());

    // When writer 1 commits, then writer 2 goes on and commits,
    go.send(()).expect("writer 1 waits");
    assert_eq!(writer1.await.expect("ran").expect("committed"), [1]);
    assert_eq!(writer2.await.expect("ran").expect("committed"), [2]);

    // then the device sees both, in commit order, with no gap.
    device.sync(&pg).await;
    assert_eq!(device.seen, ["job-1", "job-2"]);
    assert_eq!(device.cursor, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_change_gives_its_number_back() {
    let pg = migrated(PgServer::shared()).await;
    let taken = append(&pg, &["job-x"], "anna", None, End::Rollback)
        .await
        .expect("ran")
        .expect("rolled back");
    let again = append(&pg, &["job-y", "job-z"], "anna", None, End::Commit)
        .await
        .expect("ran")
        .expect("committed");
    assert_eq!(taken, [1]);
    assert_eq!(again, [1, 2], "no hole where the rolled-back change was");
}

/// The control: the same interleaving on a BIGSERIAL log makes the device skip writer 1's change.
/// If this ever stops failing the device, the test above proves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_sequence_the_same_reader_skips_a_change() {
    let pg = migrated(PgServer::shared()).await;
    let setup = pg.conn().await.expect("connection");
    setup
        .batch_execute("CREATE TABLE naive (seq BIGSERIAL PRIMARY KEY, job TEXT NOT NULL)")
        .await
        .expect("naive log");
    let read = |cursor: i64| {
        let pg = pg.clone();
        async move {
            let c = pg.conn().await.expect("connection");
            c.query(
                "SELECT seq, job FROM naive WHERE seq > $1 ORDER BY seq",
                &[&cursor],
            )
            .await
            .expect("read")
            .iter()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
            .collect::<Vec<_>>()
        }
    };
    let mut c1 = pg.conn().await.expect("connection 1");
    let t1 = c1.transaction().await.expect("begin 1");
    t1.execute("INSERT INTO naive (job) VALUES ('job-1')", &[])
        .await
        .expect("writer 1 takes 1");
    let mut c2 = pg.conn().await.expect("connection 2");
    let t2 = c2.transaction().await.expect("begin 2");
    t2.execute("INSERT INTO naive (job) VALUES ('job-2')", &[])
        .await
        .expect("writer 2 takes 2");
    t2.commit().await.expect("writer 2 commits first");

    let first = read(0).await;
    assert_eq!(first, [(2, "job-2".to_owned())]);
    let cursor = first[0].0;
    t1.commit().await.expect("writer 1 commits");
    assert!(
        read(cursor).await.is_empty(),
        "the device at cursor 2 never sees job-1: the gap this design avoids"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_writers_leave_a_log_without_gaps_and_a_follower_misses_nothing() {
    let pg = migrated(PgServer::shared()).await;
    let (writers, each) = (8, 25);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let pg = pg.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                let end = if i % 5 == 4 {
                    End::Rollback
                } else {
                    End::Commit
                };
                let job = format!("w{w}-{i}");
                append(&pg, &[&job], "anna", None, end)
                    .await
                    .expect("ran")?;
            }
            Ok::<(), DbError>(())
        }));
    }
    // A device follows the log while the writers run.
    let mut device = Device {
        account: "anna",
        cursor: 0,
        seen: Vec::new(),
    };
    while !tasks.iter().all(|t| t.is_finished()) {
        device.sync(&pg).await;
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.expect("writer ran").expect("writer succeeded");
    }
    device.sync(&pg).await;

    let committed = writers * each * 4 / 5;
    assert_eq!(
        device.seen.len(),
        committed,
        "every committed change seen once"
    );
    assert_eq!(device.cursor, committed as i64, "numbers 1..=n, no gap");
    let conn = pg.conn().await.expect("connection");
    let (n, max): (i64, i64) = {
        let r = conn
            .query_one("SELECT count(*), COALESCE(max(seq), 0) FROM changes", &[])
            .await
            .expect("count");
        (r.get(0), r.get(1))
    };
    assert_eq!((n, max), (committed as i64, committed as i64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_once() {
    let url = PgServer::shared().database().expect("database");
    let mut starts = Vec::new();
    for _ in 0..3 {
        let pg = Pg::connect(&url).expect("settings");
        starts.push(tokio::spawn(async move { pg.migrate().await }));
    }
    for s in starts {
        assert_eq!(s.await.expect("ran").expect("migrated"), SCHEMA_VERSION);
    }
    let pg = Pg::connect(&url).expect("settings");
    let conn = pg.conn().await.expect("connection");
    let applied: i64 = conn
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .expect("versions")
        .get(0);
    assert_eq!(applied, SCHEMA_VERSION as i64);
    assert_eq!(
        pg.migrate().await.expect("again"),
        SCHEMA_VERSION,
        "a second start changes nothing"
    );
}

/// The schema as the catalog describes it: columns (with type, nullability, default), indexes and
/// constraints of every table in `public`.
async fn schema(pg: &Pg) -> Vec<String> {
    let conn = pg.conn().await.expect("connection");
    let mut out = Vec::new();
    for r in conn
        .query(
            "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
                 || ' ' || COALESCE(column_default, '') || ' ' || COALESCE(collation_name, '') \
             FROM information_schema.columns WHERE table_schema = 'public' \
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .expect("columns")
    {
        out.push(r.get(0));
    }
    for r in conn
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname",
            &[],
        )
        .await
        .expect("indexes")
    {
        out.push(r.get(0));
    }
    for r in conn
        .query(
            "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE connamespace = 'public'::regnamespace ORDER BY 1",
            &[],
        )
        .await
        .expect("constraints")
    {
        out.push(r.get(0));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_upgraded_step_by_step_equals_a_fresh_one() {
    let server = PgServer::shared();
    let fresh = Pg::connect(&server.database().expect("database")).expect("settings");
    fresh.migrate().await.expect("fresh");
    let upgraded = Pg::connect(&server.database().expect("database")).expect("settings");
    for version in 1..=SCHEMA_VERSION {
        assert_eq!(upgraded.migrate_to(version).await.expect("step"), version);
    }
    let (a, b) = (schema(&fresh).await, schema(&upgraded).await);
    assert!(a.len() > 50, "the schema was read: {} lines", a.len());
    assert_eq!(a, b);
    let counter: i64 = fresh
        .conn()
        .await
        .expect("connection")
        .query_one("SELECT seq FROM change_counter WHERE id = 1", &[])
        .await
        .expect("the counter row is seeded")
        .get(0);
    assert_eq!(counter, 0);
}
