//! The PostgreSQL runner (docs/adr/0014) runs a use case again when PostgreSQL aborts it for a
//! deadlock (40P01) or a serialization failure (40001): the caller never sees the conflict.

use friend_backend::DbError;
use friend_backend::pg::Pg;
use friend_backend::pg::run::Mode;
use friend_backend::sql::params;
use friend_tests::pg::PgServer;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlocked_transaction_is_run_again_and_both_writers_succeed() {
    let url = PgServer::shared().database().expect("a fresh database");
    let pg = Pg::connect(&url).expect("settings");
    pg.migrate().await.expect("migrated");
    pg.run(Mode::Write, |tx| {
        tx.exec(
            "CREATE TABLE pair (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)",
            params![],
        )?;
        tx.exec("INSERT INTO pair VALUES (1, 0), (2, 0)", params![])?;
        Ok::<_, DbError>(())
    })
    .await
    .expect("table");

    // Each writer's first run locks one row and waits for the other to have locked the other row,
    // then reaches for it: a deadlock, which PostgreSQL breaks by aborting one of them (40P01).
    let meet = Arc::new(std::sync::Barrier::new(2));
    let runs = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let writer = |n: usize, first: i64, second: i64| {
        let (pg, meet, runs) = (pg.clone(), meet.clone(), runs.clone());
        tokio::spawn(async move {
            pg.run(Mode::Write, move |tx| {
                let run = runs[n].fetch_add(1, Ordering::SeqCst) + 1;
                tx.exec("UPDATE pair SET v = v + 1 WHERE id = ?1", params![first])?;
                if run == 1 {
                    meet.wait();
                }
                tx.exec("UPDATE pair SET v = v + 1 WHERE id = ?1", params![second])?;
                Ok::<_, DbError>(())
            })
            .await
        })
    };
    let (a, b) = (writer(0, 1, 2), writer(1, 2, 1));
    a.await.expect("task").expect("writer 1 succeeded");
    b.await.expect("task").expect("writer 2 succeeded");

    // At least one run was aborted and run again; a retry can meet the other writer again (the
    // victim's fresh transaction may lock its first row before the survivor re-takes it), so more
    // than one is possible — each counted.
    let runs: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
    let total = runs.iter().sum::<usize>();
    assert!(total >= 3, "a deadlock victim was run again: {runs:?}");
    assert_eq!(
        pg.retried.get(),
        (total - 2) as u64,
        "every retry is counted"
    );
    let values: Vec<i64> = pg
        .run(Mode::Read, |tx| {
            tx.rows("SELECT v FROM pair ORDER BY id", params![], |r| r.get(0))
                .map_err(DbError::from)
        })
        .await
        .expect("read");
    assert_eq!(values, [2, 2], "each writer's two updates applied once");
}
