//! The Friend core's accept: one winner among many devices, a lost answer never turns into a loss,
//! and an abandoned accept resolves to the truth when the app comes back.

use friend_core::AcceptResult;
use friend_tests::scenario::all_at_once;
use friend_tests::{Scenario, open_friend, wait_until};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_devices_race_and_exactly_one_wins() {
    let scenario = Scenario::new().await;
    let mut sessions = Vec::new();
    for i in 0..50 {
        let account = scenario.friend_named(&format!("F{i}")).await;
        let db = scenario.db(&format!("f{i}.db"));
        sessions.push(std::sync::Arc::new(
            open_friend(&scenario.tb.base_url, &account, &db).await,
        ));
    }
    let job = scenario.book().await;
    for s in &sessions {
        s.sync_once().await.unwrap();
        assert!(
            s.offer(job.id).await.unwrap().is_some(),
            "every device has the offer"
        );
    }
    let outcomes = all_at_once(&sessions, |s| {
        let s = s.clone();
        async move { s.accept(job.id).await.unwrap() }
    })
    .await;
    let mut won = 0;
    for (outcome, s) in outcomes.into_iter().zip(&sessions) {
        match outcome {
            AcceptResult::Won(details) => {
                won += 1;
                assert_eq!(
                    details.address.as_ref().map(|a| a.street.as_str()),
                    Some("Geheimweg 42")
                );
                assert_eq!(s.my_jobs().await.unwrap().len(), 1);
            }
            AcceptResult::Lost => {
                assert!(
                    s.offer(job.id).await.unwrap().is_none(),
                    "a loser's inbox drops the job at once"
                );
                assert!(s.my_jobs().await.unwrap().is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_retried_with_the_same_key_and_wins() {
    let s = Scenario::new().booked().await;
    let proxy = s.proxy().await;
    let session = s.friend_device(&proxy.url()).await;
    session.sync_once().await.unwrap();

    proxy.drop_next_responses(1);
    let outcome = session.accept(s.job()).await.unwrap();
    assert!(matches!(outcome, AcceptResult::Won(_)), "{outcome:?}");
    assert_eq!(
        proxy.dropped_responses(),
        1,
        "the first answer really was lost"
    );
    assert_eq!(session.my_jobs().await.unwrap()[0].details.id, s.job());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_accept_resolves_to_the_true_outcome_after_reopening() {
    let s = Scenario::new().booked().await;
    let job = s.job();
    let proxy = s.proxy().await;
    {
        let session = std::sync::Arc::new(s.friend_device(&proxy.url()).await);
        session.sync_once().await.unwrap();
        // The request reaches the server, the answer is lost, and the device goes dark.
        proxy.drop_next_responses(1);
        let accepting = {
            let session = session.clone();
            tokio::spawn(async move { session.accept(job).await })
        };
        let heidi = &s;
        wait_until(
            "the server to assign the job",
            Duration::from_secs(10),
            || async move { heidi.customer_view(job).await.friend.is_some() },
        )
        .await;
        proxy.go_offline();
        accepting.abort(); // the app is killed mid-accept
        let _ = accepting.await;
        session.shutdown();
    }
    proxy.go_online();
    let session = s.friend_device(&proxy.url()).await;
    // (Whether the killed session had already learned the outcome depends on timing: its retry may
    // have got through before the proxy went dark. Either way, after a sync the job is won.)
    session.sync_once().await.unwrap();
    let jobs = session.my_jobs().await.unwrap();
    assert_eq!(jobs.len(), 1, "the pending accept resolved to the win");
    assert_eq!(jobs[0].details.contact.name, "Hildegard Vertraulich");
    assert!(session.offer(job).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_while_offline_fails_fast_and_is_not_queued() {
    let s = Scenario::new().booked().await;
    let proxy = s.proxy().await;
    let session = s.friend_device(&proxy.url()).await;
    session.sync_once().await.unwrap();
    proxy.go_offline();
    assert_eq!(
        session.accept(s.job()).await.unwrap(),
        AcceptResult::Offline
    );
    proxy.go_online();
    session.sync_once().await.unwrap();
    // Nothing was queued: the job is still open and still in the inbox.
    assert!(session.offer(s.job()).await.unwrap().is_some());
    assert!(session.outbox().await.unwrap().is_empty());
}
