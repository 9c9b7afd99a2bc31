//! The durable outbox: replayed after reconnecting, each item applied exactly once, a refusal set
//! aside with its reason without blocking other jobs' items, and listeners told.

use friend_core::JobListener;
use friend_core::store::outbox::ItemStatus;
use friend_protocol::{JobId, JobState};
use friend_tests::{Scenario, wait_until};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Seen(Mutex<Vec<JobId>>);
impl JobListener for Seen {
    fn on_job_changed(&self, job_id: JobId) {
        self.0.lock().unwrap().push(job_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_actions_replay_once_and_a_refusal_does_not_block_other_jobs() {
    let s = Scenario::new().await;
    let proxy = s.proxy().await;
    let session = s.friend_device(&proxy.url()).await;
    let seen = Arc::new(Seen::default());
    let _sub = session.subscribe_jobs(seen.clone());
    let cancelled = s.won_by(&session).await;
    let kept = s.won_by(&session).await;
    let released = s.won_by(&session).await;
    let version_before = s.customer_view(kept).await.version;

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
    assert_eq!(s.cancel(cancelled).await.status, 200);

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
    let kept_view = s.customer_view(kept).await;
    assert_eq!(kept_view.state, JobState::OnSite);
    assert_eq!(kept_view.version, version_before + 1);
    assert_eq!(s.customer_view(released).await.state, JobState::Open);
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
