//! Cross-instance wake-ups on PostgreSQL (docs/adr/0014): a change committed through one instance
//! moves the head another instance follows — by NOTIFY promptly, and by its polling fallback when
//! the notification was lost with the listener's connection.

use friend_backend::DbError;
use friend_backend::pg::Pg;
use friend_backend::pg::run::Mode;
use friend_backend::pg::wakeups::{APPLICATION_NAME, Follower};
use friend_tests::pg::PgServer;
use std::time::Duration;
use tokio::sync::watch;

/// How long a wake-up may take before the test fails (generous: shared machines).
const BOUND: Duration = Duration::from_secs(10);

async fn instance(url: &str) -> Pg {
    let pg = Pg::connect(url).expect("settings");
    pg.migrate().await.expect("migrated");
    pg
}

/// Commits one change the way every use case does (the backend's runner announces it at commit).
async fn commit_change(pg: &Pg, job: &str) -> i64 {
    let job = job.to_owned();
    pg.run(Mode::Write, move |tx| {
        tx.next_change(&job, 0).map_err(DbError::from)
    })
    .await
    .expect("committed")
}

async fn reaches(head: &mut watch::Receiver<i64>, seq: i64, what: &str) {
    let reached = tokio::time::timeout(BOUND, head.wait_for(|h| *h >= seq))
        .await
        .is_ok_and(|r| r.is_ok());
    let last = *head.borrow();
    assert!(
        reached,
        "{what}: head still {last} after {BOUND:?}, want {seq}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_instance_wakes_another_by_notification() {
    let url = PgServer::shared().database().expect("database");
    let (one, two) = (instance(&url).await, instance(&url).await);
    let first = commit_change(&two, "job-0").await;
    // Polling once a minute: within the bound only the notification can deliver later changes.
    let follower = Follower::start(&one, Duration::from_secs(60));
    let mut head = follower.head();
    // It reads the counter right after LISTEN: once it has caught up, it is listening.
    reaches(&mut head, first, "caught up at start").await;

    let seq = commit_change(&two, "job-1").await;
    reaches(&mut head, seq, "notified").await;
    let seq = commit_change(&two, "job-2").await;
    reaches(&mut head, seq, "notified again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_notification_costs_latency_not_the_change() {
    let url = PgServer::shared().database().expect("database");
    let (one, two) = (instance(&url).await, instance(&url).await);
    let follower = Follower::start(&one, Duration::from_millis(200));
    let mut head = follower.head();
    assert!(wait_listening(&two).await);

    // The listener's connection is cut (as a failover would), and a change commits meanwhile.
    let admin = two.conn().await.expect("connection");
    let cut: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND datname = current_database()",
            &[&APPLICATION_NAME],
        )
        .await
        .expect("terminate")
        .get(0);
    assert_eq!(cut, 1);
    let seq = commit_change(&two, "job-while-cut").await;

    // The follower reconnects (or polls) and still reaches the change.
    reaches(&mut head, seq, "after the cut").await;
    assert!(wait_listening(&two).await, "listening again");
    let seq = commit_change(&two, "job-after").await;
    reaches(&mut head, seq, "after reconnecting").await;
}

/// Whether this database's listener connection is up within the bound (the server is shared by the
/// test binary: other tests' listeners are on other databases).
async fn wait_listening(pg: &Pg) -> bool {
    let conn = pg.conn().await.expect("connection");
    let deadline = tokio::time::Instant::now() + BOUND;
    while tokio::time::Instant::now() < deadline {
        let n: i64 = conn
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = $1 AND datname = current_database()",
                &[&APPLICATION_NAME],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if n > 0 {
            return true;
        }
        tokio::task::yield_now().await;
    }
    false
}
