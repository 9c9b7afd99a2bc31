//! Crash safety: a device process killed with SIGKILL at arbitrary points during sync and outbox
//! replay leaves a database that opens, whose cursor agrees with its data, that lost nothing it had
//! queued, and whose items the server applied at most once.

use friend_core::InboxFilter;
use friend_core::store::outbox::ItemStatus;
use friend_protocol::{JobId, JobState};
use friend_tests::{Scenario, open_friend, places, point, wait_until};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the child until it printed "opened", lets it work for `run_ms`, kills it, and returns the
/// outbox ids it reported as queued (each printed after its commit).
fn run_and_kill(db: &std::path::Path, url: &str, token: &str, mode: &str, run_ms: u64) -> Vec<i64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_friend-child"))
        .args([db.to_str().unwrap(), url, token, mode])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn friend-child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the child did not open its session within 30 s");
    assert_eq!(first, "opened");
    // The kill point: a varying moment into the child's sync/outbox work (fault injection, not
    // synchronisation — any moment must be survivable).
    std::thread::sleep(Duration::from_millis(run_ms));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let _ = reader.join();
    rx.try_iter()
        .filter_map(|l| l.strip_prefix("queued ").and_then(|n| n.parse().ok()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_sync_and_replay_loses_nothing_and_applies_nothing_twice() {
    let s = Scenario::new().await;
    let db = s.db("anna.db");
    // The device registers its signing key on its first sync; do it before any job is held, so the
    // key's announcement (which bumps held jobs' versions) does not blur the at-most-once check.
    {
        let first = s.friend_device(&s.tb.base_url).await;
        first.sync_once().await.unwrap();
        first.shutdown();
    }
    let mut held = Vec::new();
    for i in 0..30 {
        let job = s.book().await;
        if i % 3 == 0 {
            s.accept(job.id, &format!("setup-{i}")).await;
            held.push(job.id);
        }
    }
    let mut reported: BTreeSet<i64> = BTreeSet::new();
    let mut seed: u64 = 0x5eed;
    for round in 0..50 {
        // New work for every round: a booking (sync) and, now and then, a job to check in.
        let job = s.book().await;
        if round % 5 == 0 {
            s.accept(job.id, &format!("round-{round}")).await;
            held.push(job.id);
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let run_ms = (seed >> 33) % 120;
        let mode = if round % 2 == 0 { "sync" } else { "outbox" };
        let (db2, url, token) = (db.clone(), s.tb.base_url.clone(), s.friend.token.clone());
        let ids =
            tokio::task::spawn_blocking(move || run_and_kill(&db2, &url, &token, mode, run_ms))
                .await
                .unwrap();
        reported.extend(ids);
        // The file opens and is intact after every kill.
        assert_eq!(integrity(&db), "ok", "round {round}");
    }

    // Reopen in this process and let everything settle.
    let session = s.friend_device(&s.tb.base_url).await;
    session.sync_once().await.unwrap();
    wait_until("the outbox to drain", Duration::from_secs(30), || {
        let pending = session.sync_status().pending_outbox;
        async move { pending == 0 }
    })
    .await;
    session.sync_once().await.unwrap();

    // Nothing queued was lost, and every item has a definite outcome.
    let items = session.outbox().await.unwrap();
    let ids: BTreeSet<i64> = items.iter().map(|i| i.id).collect();
    assert!(
        reported.is_subset(&ids),
        "queued items vanished: {:?}",
        reported.difference(&ids).collect::<Vec<_>>()
    );
    assert!(!reported.is_empty(), "the children queued work");
    for item in &items {
        assert!(
            matches!(item.status, ItemStatus::Applied | ItemStatus::Refused),
            "{item:?}"
        );
        assert_ne!(
            item.refusal_code.as_deref(),
            Some("invalid_transition"),
            "applied twice? {item:?}"
        );
    }
    // At most once on the server: a checked-in job moved exactly one version past its accept.
    let mut checked_in = 0;
    for job in &held {
        let view = s.customer_view(*job).await;
        if view.state == JobState::OnSite {
            checked_in += 1;
            assert_eq!(
                view.version, 3,
                "job {job} changed more than once after its accept"
            );
        }
    }
    assert!(checked_in > 0, "the children checked jobs in");

    // Cursor and data agree: the crashed-and-recovered cache equals a fresh device's.
    let fresh = open_friend(&s.tb.base_url, &s.friend, &s.db("fresh.db")).await;
    fresh.sync_once().await.unwrap();
    let ids_of = |jobs: Vec<friend_core::MyJob>| {
        jobs.into_iter()
            .map(|j| (j.details.id, j.details.state.as_str()))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(inbox_of(&session).await, inbox_of(&fresh).await);
    assert_eq!(
        ids_of(session.my_jobs().await.unwrap()),
        ids_of(fresh.my_jobs().await.unwrap())
    );
}

async fn inbox_of(s: &friend_core::FriendSession) -> BTreeSet<JobId> {
    let i = s
        .inbox(point(places::ZURICH), 50.0, InboxFilter::default())
        .await
        .unwrap();
    i.items.into_iter().map(|i| i.offer.id).collect()
}

fn integrity(db: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("the database opens");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check runs")
}
