//! Between the accept and the arrival (issue 15) through the real core against the in-process
//! backend: the agreed visit and "on my way" queued offline and applied once back online, a newer
//! estimate superseding the waiting one, the customer's live status following it, the cancel
//! preview computed offline equal to the server's answer, a declined moved visit and a release
//! offering the job again, the late-cancellation fee shown to the customer, and the device's
//! position never leaving it.

use chrono::{DateTime, Duration, Utc};
use friend_core::store::outbox::ItemStatus;
use friend_core::{Action, ActionKind, CustomerSession, FriendSession, LiveStatus};
use friend_protocol::visit::to_millis;
use friend_protocol::{
    BookRequest, CancelPreview, CompensationCause, JobId, JobState, Money, ReleaseReason, Timing,
};
use friend_tests::places::OERLIKON;
use friend_tests::{Scenario, booking_at, point};
use serde_json::json;
use std::path::Path;

fn slot_booking(in_hours: i64) -> BookRequest {
    let start = to_millis(Utc::now() + Duration::hours(in_hours));
    let mut b = booking_at(OERLIKON);
    b.timing = Timing::Slot {
        start,
        end: start + Duration::hours(2),
    };
    b
}

/// The server's clock as the device knows it.
fn server_now(s: &FriendSession) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(s.server_now_ms()).unwrap()
}

async fn sync_both(friend: &FriendSession, customer: &CustomerSession) {
    friend.sync_once().await.unwrap();
    customer.sync_once().await.unwrap();
}

/// The customer's preview as the server answers it.
async fn server_preview(s: &Scenario, job: JobId) -> CancelPreview {
    let r = s
        .http
        .get(
            &format!("/v1/customer/jobs/{job}/cancel-preview"),
            &s.customer.token,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_visit_and_estimates_are_queued_superseded_and_applied_once_back_online() {
    let s = Scenario::new().await;
    let proxy = s.proxy().await;
    let friend = s.friend_device(&proxy.url()).await;
    let customer = s.customer_device(&s.tb.base_url).await;
    let job = s.won_by(&friend).await;
    customer.sync_once().await.unwrap();
    let name = customer
        .job(job)
        .await
        .unwrap()
        .details
        .unwrap()
        .friend
        .unwrap()
        .name;
    assert_eq!(
        customer.job(job).await.unwrap().status,
        LiveStatus::Accepted {
            friend: name.clone(),
            visit: None
        }
    );
    let version_before = s.customer_view(job).await.version;

    // In the basement: the visit and three estimates; each newer estimate replaces the waiting one.
    proxy.go_offline();
    let now = server_now(&friend);
    let (start, end) = (
        to_millis(now + Duration::minutes(20)),
        to_millis(now + Duration::minutes(50)),
    );
    friend.set_appointment(job, start, end).await.unwrap();
    for minutes in [30, 28, 25] {
        friend
            .on_my_way(job, to_millis(now + Duration::minutes(minutes)))
            .await
            .unwrap();
    }
    let latest = to_millis(now + Duration::minutes(25));
    let waiting: Vec<_> = friend
        .outbox()
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.action, i.status))
        .collect();
    let visit = friend.job(job).await.unwrap().details.visit;
    assert_eq!(
        waiting,
        [
            (
                Action::Appointment {
                    appointment: visit.appointment.unwrap()
                },
                ItemStatus::Pending
            ),
            (Action::OnMyWay { eta: latest }, ItemStatus::Pending)
        ],
        "the older estimates are superseded, not queued up"
    );
    // Shown on the Friend's device at once; nothing reached the customer.
    assert_eq!(
        visit.appointment.map(|a| (a.start, a.end, a.moved)),
        Some((start, end, false))
    );
    assert_eq!(visit.en_route.map(|r| r.eta), Some(latest));
    customer.sync_once().await.unwrap();
    assert!(matches!(
        customer.job(job).await.unwrap().status,
        LiveStatus::Accepted { visit: None, .. }
    ));
    assert!(friend.sync_once().await.is_err(), "offline");

    // Back online: both delivered, each once; the customer sees the visit and the estimate.
    proxy.go_online();
    friend.sync_once().await.unwrap();
    assert_eq!(friend.sync_status().pending_outbox, 0);
    let items = friend.outbox().await.unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items.iter().all(|i| i.status == ItemStatus::Applied),
        "{items:?}"
    );
    let server = s.customer_view(job).await;
    assert_eq!(server.version, version_before + 2, "one change per step");
    assert_eq!(server.visit.appointment.map(|a| a.start), Some(start));
    assert_eq!(server.visit.en_route.map(|r| r.eta), Some(latest));
    customer.sync_once().await.unwrap();
    assert_eq!(
        customer.job(job).await.unwrap().status,
        LiveStatus::OnTheWay {
            friend: name.clone(),
            eta: latest
        }
    );

    // A later estimate, online, follows; once on site the customer sees the Friend there.
    let sooner = to_millis(server_now(&friend) + Duration::minutes(3));
    friend.on_my_way(job, sooner).await.unwrap();
    sync_both(&friend, &customer).await;
    assert_eq!(
        customer.job(job).await.unwrap().status,
        LiveStatus::OnTheWay {
            friend: name,
            eta: sooner
        }
    );
    friend.check_in(job).await.unwrap();
    assert_eq!(
        friend.on_my_way(job, sooner).await.unwrap_err().code(),
        "invalid_input",
        "the state machine says no once on site"
    );
    sync_both(&friend, &customer).await;
    assert_eq!(customer.job(job).await.unwrap().status, LiveStatus::OnSite);
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_position_an_estimate_is_computed_from_never_leaves_the_device() {
    let s = Scenario::new().await;
    let proxy = s.proxy().await;
    let friend = s.friend_device(&proxy.url()).await;
    let job = s.won_by(&friend).await;
    // Wipkingen, written as serde and Display write these coordinates.
    let (lat, lon) = ("47.39417", "8.52913");
    let here = point((47.39417, 8.52913));

    proxy.go_offline();
    let queued = friend.on_my_way_from(job, here).await.unwrap();
    let item = friend
        .outbox()
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.id == queued.outbox_id)
        .unwrap();
    assert_eq!(item.action, Action::OnMyWay { eta: queued.eta });
    let sent = item.action.body().to_string();
    assert!(!sent.contains(lat) && !sent.contains(lon), "{sent}");
    assert_eq!(
        friend
            .job(job)
            .await
            .unwrap()
            .details
            .visit
            .en_route
            .map(|r| r.eta),
        Some(queued.eta)
    );

    proxy.go_online();
    friend.sync_once().await.unwrap();
    assert_eq!(
        s.customer_view(job).await.visit.en_route.map(|r| r.eta),
        Some(queued.eta)
    );
    let dir = s.db("anna.db");
    let device_dir = dir.parent().unwrap();
    for marker in [lat, lon] {
        assert_eq!(files_containing(device_dir, marker), Vec::<String>::new());
        assert_eq!(s.tb.stored_places_of(marker), Vec::<String>::new());
    }
    drop(friend);
    for marker in [lat, lon] {
        assert_eq!(files_containing(device_dir, marker), Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cancel_preview_computed_offline_equals_the_servers_answer() {
    let s = Scenario::new().await;
    let proxy = s.proxy().await;
    let customer = s.customer_device(&proxy.url()).await;
    // An open job, a held now-job, a held slot job three days ahead, and one whose visit the
    // Friend moved to tomorrow.
    let open = s.book().await.id;
    let held_now = s.book_accepted("accept-now").await;
    let held_slot = s.tb.book(&s.customer, &slot_booking(72)).await.id;
    s.accept(held_slot, "accept-slot").await;
    let moved = s.tb.book(&s.customer, &slot_booking(96)).await.id;
    s.accept(moved, "accept-moved").await;
    let now = s.tb.clock_now();
    let r = s
        .friend_post(
            moved,
            "appointment",
            json!({ "start": now + Duration::hours(20), "end": now + Duration::hours(21) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    customer.sync_once().await.unwrap();
    customer.catalog().await.unwrap();

    proxy.go_offline();
    for job in [open, held_now, held_slot, moved] {
        let offline = customer.cancel_preview(job).await.unwrap();
        assert_eq!(offline, server_preview(&s, job).await, "{job}");
    }
    assert_eq!(customer.cancel_preview(open).await.unwrap().fee, None);
    let fee = Some(Money::chf(3_900));
    assert_eq!(customer.cancel_preview(held_now).await.unwrap().fee, fee);
    assert!(
        customer
            .cancel_preview(held_slot)
            .await
            .unwrap()
            .free_until
            .is_some()
    );
    assert_eq!(customer.cancel_preview(moved).await.unwrap().fee, fee);
    assert!(
        customer.outbox().await.unwrap().is_empty(),
        "a preview changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_visit_the_customer_declines_is_offered_again() {
    let s = Scenario::new()
        .with_booking(slot_booking(72))
        .accepted()
        .await;
    let job = s.job();
    let friend = s.friend_device(&s.tb.base_url).await;
    let customer = s.customer_device(&s.tb.base_url).await;
    sync_both(&friend, &customer).await;
    // Confirmed as booked: nothing to decline.
    let Timing::Slot { start, end } = friend.job(job).await.unwrap().details.timing else {
        panic!("a slot job")
    };
    friend.set_appointment(job, start, end).await.unwrap();
    sync_both(&friend, &customer).await;
    assert!(matches!(
        customer.job(job).await.unwrap().status,
        LiveStatus::Accepted { visit: Some(v), .. } if !v.moved
    ));
    assert_eq!(
        customer.decline_appointment(job).await.unwrap_err().code(),
        "invalid_input"
    );

    // Moved to tomorrow by agreement: the customer may decline it.
    let tomorrow = to_millis(server_now(&friend) + Duration::hours(30));
    friend
        .set_appointment(job, tomorrow, tomorrow + Duration::hours(1))
        .await
        .unwrap();
    sync_both(&friend, &customer).await;
    assert!(matches!(
        customer.job(job).await.unwrap().status,
        LiveStatus::Accepted { visit: Some(v), .. } if v.moved && v.start == tomorrow
    ));
    customer.decline_appointment(job).await.unwrap();
    assert_eq!(
        customer.job(job).await.unwrap().status,
        LiveStatus::SearchingAgain,
        "shown at once"
    );
    sync_both(&friend, &customer).await;
    // The Friend hears of it after the customer's device delivered it.
    friend.sync_once().await.unwrap();
    let server = s.customer_view(job).await;
    assert_eq!(
        (
            server.state,
            server.visit.reopened,
            server.visit.appointment
        ),
        (JobState::Open, 1, None)
    );
    assert_eq!(
        customer.job(job).await.unwrap().status,
        LiveStatus::SearchingAgain
    );
    assert!(
        customer
            .outbox()
            .await
            .unwrap()
            .iter()
            .all(|i| i.status == ItemStatus::Applied)
    );
    // The Friend no longer holds it.
    assert!(
        friend
            .my_jobs()
            .await
            .unwrap()
            .iter()
            .all(|j| j.details.id != job || j.details.state != JobState::Assigned)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_cancellation_shows_its_fee_and_a_release_says_looking_for_another_friend() {
    let s = Scenario::new().await;
    let friend = s.friend_device(&s.tb.base_url).await;
    let customer = s.customer_device(&s.tb.base_url).await;
    let late = s.won_by(&friend).await;
    let given_back = s.won_by(&friend).await;
    customer.sync_once().await.unwrap();

    // The Friend gives one back, saying why: offered again, and the customer is told so.
    friend
        .release_with_reason(
            given_back,
            Some(ReleaseReason::CustomerUnreachable),
            Some("no answer on three calls".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        friend.outbox().await.unwrap()[0].action.kind(),
        ActionKind::Release
    );
    sync_both(&friend, &customer).await;
    let again = customer.job(given_back).await.unwrap();
    assert_eq!(again.status, LiveStatus::SearchingAgain);
    assert_eq!(again.details.unwrap().visit.reopened, 1);

    // The held now-job: the preview names the fee; the cancellation owes it, shown on the job and
    // in the Friend's ledger.
    let preview = customer.cancel_preview(late).await.unwrap();
    assert_eq!(
        (preview.fee, preview.free_until),
        (Some(Money::chf(3_900)), None)
    );
    customer.cancel(late).await.unwrap();
    sync_both(&friend, &customer).await;
    let cancelled = customer.job(late).await.unwrap();
    assert_eq!(cancelled.status, LiveStatus::Cancelled);
    let c = cancelled.details.unwrap().visit.compensation.unwrap();
    assert_eq!(c.cause, CompensationCause::LateCancellation);
    assert_eq!(Some(c.settlement.charged), preview.fee);
    assert_eq!(c.settlement.fee.minor + c.settlement.payout.minor, 3_900);
    let ledger = friend.ledger().await.unwrap();
    let entry = ledger.entries.iter().find(|e| e.job_id == late).unwrap();
    assert_eq!(
        entry.compensation,
        Some(CompensationCause::LateCancellation)
    );
    assert_eq!(entry.payout, c.settlement.payout);
    assert_eq!(
        customer.cancel_preview(late).await.unwrap_err().code(),
        "invalid_input",
        "nothing left to cancel"
    );
}
