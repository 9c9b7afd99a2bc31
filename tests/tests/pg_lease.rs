//! Leases on PostgreSQL (docs/adr/0014): the work one instance does for all runs where the lease
//! is held — exactly one holder among instances racing for it, a handover on release, a takeover
//! once a dead holder's lease lapsed.

use friend_backend::pg::Pg;
use friend_backend::pg::lease::Lease;
use friend_tests::pg::PgServer;
use std::time::Duration;

async fn instances(n: usize) -> Vec<Pg> {
    let url = PgServer::shared().database().expect("database");
    let mut out = Vec::new();
    for _ in 0..n {
        let pg = Pg::connect(&url).expect("settings");
        pg.migrate().await.expect("migrated");
        out.push(pg);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_holds_the_lease_renews_it_and_hands_it_over() {
    let pgs = instances(3).await;
    let leases: Vec<Lease> = pgs
        .iter()
        .enumerate()
        .map(|(i, pg)| {
            Lease::new(
                pg,
                "expiry",
                &format!("instance-{i}"),
                Duration::from_secs(30),
            )
        })
        .collect();

    // Three instances race for it at once: exactly one wins.
    let mut racing = Vec::new();
    for lease in &leases {
        let lease = lease.clone();
        racing.push(tokio::spawn(async move { lease.acquire().await }));
    }
    let mut won = Vec::new();
    for (i, r) in racing.into_iter().enumerate() {
        if r.await.expect("ran").expect("acquire") {
            won.push(i);
        }
    }
    assert_eq!(won.len(), 1, "exactly one holder: {won:?}");
    let holder = won[0];
    let name = format!("instance-{holder}");
    assert_eq!(
        Lease::holder(&pgs[0], "expiry").await.expect("read"),
        Some(name)
    );

    // The holder renews; the others still cannot take it.
    assert!(leases[holder].acquire().await.expect("renew"));
    for (i, lease) in leases.iter().enumerate().filter(|(i, _)| *i != holder) {
        assert!(
            !lease.acquire().await.expect("try"),
            "instance {i} took a held lease"
        );
    }

    // A draining holder hands it over: the next attempt of another instance takes it.
    leases[holder].release().await.expect("release");
    let next = (holder + 1) % 3;
    assert!(leases[next].acquire().await.expect("take over"));
    assert!(!leases[holder].acquire().await.expect("try again"));
    assert_eq!(
        Lease::holder(&pgs[0], "expiry").await.expect("read"),
        Some(format!("instance-{next}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lease_is_taken_over_once_it_lapsed() {
    let pgs = instances(2).await;
    let ttl = Duration::from_millis(300);
    let dead = Lease::new(&pgs[0], "push", "crashed", ttl);
    let alive = Lease::new(&pgs[1], "push", "alive", ttl);
    assert!(dead.acquire().await.expect("acquire"));
    assert!(
        !alive.acquire().await.expect("held"),
        "not before it lapsed"
    );

    // The holder stops renewing (it crashed). The lease's time itself is what is tested here: wait
    // until it lapses by the database's clock, then the other instance takes it at once.
    let left_ms: f64 = pgs[1]
        .conn()
        .await
        .expect("connection")
        .query_one(
            "SELECT GREATEST(0, EXTRACT(EPOCH FROM until - clock_timestamp()) * 1000)::float8 \
             FROM leases WHERE name = 'push'",
            &[],
        )
        .await
        .expect("the lease row")
        .get(0);
    tokio::time::sleep(Duration::from_millis(left_ms.ceil() as u64 + 1)).await;
    assert!(
        alive.acquire().await.expect("try"),
        "the lapsed lease was not taken over"
    );
    assert_eq!(
        Lease::holder(&pgs[0], "push").await.expect("read"),
        Some("alive".to_owned())
    );
    assert!(
        !dead.acquire().await.expect("back"),
        "the old holder does not take it back"
    );
}
