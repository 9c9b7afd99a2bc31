//! The durable outbox: replayed after reconnecting, each item applied exactly once, a refusal set
//! aside with its reason without blocking other jobs' items, and listeners told.

use friend_core::store::outbox::ItemStatus;
use friend_core::{AcceptResult, FriendSession, JobListener};
use friend_protocol::{JobDetails, JobId, JobState};
use friend_tests::proxy::FaultProxy;
use friend_tests::{
    Http, TestAccount, TestBackend, booking_at, friend_at, open_friend, places, wait_until,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn win(tb: &TestBackend, session: &FriendSession, customer: &TestAccount) -> JobId {
    let job = tb.book(customer, &booking_at(places::OERLIKON)).await;
    session.sync_once().await.unwrap();
    assert!(matches!(
        session.accept(job.id).await.unwrap(),
        AcceptResult::Won(_)
    ));
    job.id
}

async fn server_view(http: &Http, customer: &TestAccount, job: JobId) -> JobDetails {
    http.get(&format!("/v1/customer/jobs/{job}"), &customer.token)
        .await
        .json()
}

#[derive(Default)]
struct Seen(Mutex<Vec<JobId>>);
impl JobListener for Seen {
    fn on_job_changed(&self, job_id: JobId) {
        self.0.lock().unwrap().push(job_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_actions_replay_once_and_a_refusal_does_not_block_other_jobs() {
    let tb = TestBackend::start().await;
    let customer = tb.customer("Heidi").await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let proxy = FaultProxy::start(tb.base_url.trim_start_matches("http://").parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let session = open_friend(&proxy.url(), &anna, &dir.path().join("anna.db")).await;
    let seen = Arc::new(Seen::default());
    let _sub = session.subscribe_jobs(seen.clone());
    let cancelled = win(&tb, &session, &customer).await;
    let kept = win(&tb, &session, &customer).await;
    let released = win(&tb, &session, &customer).await;
    let http = tb.http();
    let version_before = server_view(&http, &customer, kept).await.version;

    // In the basement: three actions queued, shown locally at once.
    proxy.go_offline();
    session.check_in(cancelled).await.unwrap();
    session.check_in(kept).await.unwrap();
    session.release(released).await.unwrap();
    assert_eq!(
        session.job(kept).await.unwrap().details.state,
        JobState::OnSite
    );
    assert!(
        session
            .my_jobs()
            .await
            .unwrap()
            .iter()
            .all(|j| j.details.id != released)
    );
    assert_eq!(session.sync_status().pending_outbox, 3);
    // Meanwhile the customer cancels the first job (directly, not through the basement).
    let cancel = format!("/v1/customer/jobs/{cancelled}/cancel");
    assert_eq!(
        http.post(&cancel, &customer.token, None, &serde_json::json!({}))
            .await
            .status,
        200
    );

    // Back online; the first answer of the replay is lost on the way back.
    proxy.go_online();
    proxy.drop_next_responses(1);
    let _ = session.deliver_outbox().await;
    // The item whose answer was lost is retried by the outbox timer after its backoff (≤ 1.5 s).
    wait_until("the outbox to drain", Duration::from_secs(15), || {
        let pending = session.sync_status().pending_outbox;
        async move { pending == 0 }
    })
    .await;
    let items = session.outbox().await.unwrap();
    let by_job = |job| items.iter().find(|i| i.job_id == job).unwrap();
    assert_eq!(by_job(cancelled).status, ItemStatus::Refused);
    assert_eq!(
        by_job(cancelled).refusal_code.as_deref(),
        Some("invalid_transition")
    );
    assert_eq!(
        by_job(kept).status,
        ItemStatus::Applied,
        "{:?}",
        by_job(kept)
    );
    assert_eq!(by_job(released).status, ItemStatus::Applied);

    // Exactly once on the server: one check-in is one version step.
    let kept_view = server_view(&http, &customer, kept).await;
    assert_eq!(kept_view.state, JobState::OnSite);
    assert_eq!(kept_view.version, version_before + 1);
    assert_eq!(
        server_view(&http, &customer, released).await.state,
        JobState::Open
    );
    session.sync_once().await.unwrap();
    assert_eq!(
        session.job(cancelled).await.unwrap().details.state,
        JobState::Cancelled
    );
    assert_eq!(session.sync_status().refused_outbox, 1);
    assert!(
        seen.0.lock().unwrap().contains(&kept),
        "job listeners were told"
    );
}
