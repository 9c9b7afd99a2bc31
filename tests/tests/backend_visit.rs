//! Between the accept and the arrival (issue 15) over HTTP: the agreed visit, "on my way",
//! declining a moved visit, a release with a reason, and the compensation of late cancellations
//! and no-shows in the job and the Friend's ledger.

use chrono::{DateTime, Duration, Utc};
use friend_protocol::{
    BookRequest, CancelPreview, CompensationCause, JobDetails, JobResponse, JobState, Ledger,
    Timing,
};
use friend_tests::places::{OERLIKON, ZURICH};
use friend_tests::scenario::friend_path;
use friend_tests::{Reply, Scenario, assert_refused, booking_at, friend_at};
use serde_json::json;

fn ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

async fn post_friend(s: &Scenario, action: &str, body: serde_json::Value) -> Reply {
    s.http
        .post(&friend_path(s.job(), action), &s.friend.token, None, &body)
        .await
}

/// A GET that must answer 200, read as `T`.
async fn get<T: serde::de::DeserializeOwned>(s: &Scenario, path: &str, token: &str) -> T {
    let r = s.http.get(path, token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn customer_job(s: &Scenario) -> JobDetails {
    get(
        s,
        &format!("/v1/customer/jobs/{}", s.job()),
        &s.customer.token,
    )
    .await
}

async fn preview(s: &Scenario) -> CancelPreview {
    let path = format!("/v1/customer/jobs/{}/cancel-preview", s.job());
    get(s, &path, &s.customer.token).await
}

async fn cancel(s: &Scenario) -> JobDetails {
    let r = s
        .http
        .post(
            &format!("/v1/customer/jobs/{}/cancel", s.job()),
            &s.customer.token,
            Some("cancel-1"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json::<JobResponse>().job
}

async fn ledger(s: &Scenario) -> Ledger {
    get(s, "/v1/friend/ledger", &s.friend.token).await
}

fn slot_booking(now: DateTime<Utc>, in_hours: i64) -> BookRequest {
    let mut b = booking_at(OERLIKON);
    b.timing = Timing::Slot {
        start: now + Duration::hours(in_hours),
        end: now + Duration::hours(in_hours + 2),
    };
    b
}

#[tokio::test]
async fn a_now_job_gets_a_visit_and_an_estimate_the_customer_sees() {
    let s = Scenario::new().accepted().await;
    let now = friend_protocol::visit::to_millis(s.tb.clock_now());
    let r = post_friend(
        &s,
        "appointment",
        json!({ "start": ms(now + Duration::minutes(20)), "end": ms(now + Duration::minutes(50)) }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let job = customer_job(&s).await;
    let a = job.visit.appointment.unwrap();
    assert_eq!((a.start, a.moved), (now + Duration::minutes(20), false));

    let eta = now + Duration::minutes(25);
    let r = post_friend(&s, "on-my-way", json!({ "eta": ms(eta) })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let job = customer_job(&s).await;
    assert_eq!(job.state, JobState::Assigned);
    assert_eq!(job.visit.en_route.unwrap().eta, eta);

    // Bad input gets a typed error; the job is unchanged.
    let backwards =
        json!({ "start": ms(now + Duration::hours(2)), "end": ms(now + Duration::hours(1)) });
    assert_refused(
        &post_friend(&s, "appointment", backwards).await,
        400,
        "invalid_input",
        None,
    );
    let too_long = json!({ "start": ms(now), "end": ms(now + Duration::hours(5)) });
    assert_refused(
        &post_friend(&s, "appointment", too_long).await,
        400,
        "invalid_input",
        None,
    );
    let past = json!({ "eta": ms(now - Duration::hours(1)) });
    assert_refused(
        &post_friend(&s, "on-my-way", past).await,
        400,
        "invalid_input",
        None,
    );
    // Someone else may not.
    let other = s.tb.friend(friend_at("Ola", ZURICH)).await;
    let r = s
        .http
        .post(
            &friend_path(s.job(), "on-my-way"),
            &other.token,
            None,
            &json!({ "eta": ms(eta) }),
        )
        .await;
    assert!(r.status == 404 || r.status == 409, "{}", r.text());
    assert_eq!(customer_job(&s).await.visit.en_route.unwrap().eta, eta);

    // Once on site the estimate is refused.
    assert_eq!(post_friend(&s, "check-in", json!({})).await.status, 200);
    let r = post_friend(&s, "on-my-way", json!({ "eta": ms(eta) })).await;
    assert_refused(&r, 409, "invalid_transition", None);
}

#[tokio::test]
async fn a_late_cancellation_owes_the_fee_and_an_early_one_nothing() {
    // Open: free.
    let s = Scenario::new().booked().await;
    assert_eq!(preview(&s).await.fee, None);
    let job = cancel(&s).await;
    assert_eq!(job.visit.compensation, None);

    // A now-job after the accept: the fee, in the job and in the Friend's ledger.
    let s = Scenario::new().accepted().await;
    let p = preview(&s).await;
    assert_eq!(p.fee.map(|f| f.minor), Some(3_900));
    let job = cancel(&s).await;
    let c = job.visit.compensation.unwrap();
    assert_eq!(c.cause, CompensationCause::LateCancellation);
    assert_eq!(c.settlement.charged.minor, 3_900);
    assert_eq!(c.settlement.fee.minor + c.settlement.payout.minor, 3_900);
    let entries = ledger(&s).await.entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].compensation,
        Some(CompensationCause::LateCancellation)
    );
    assert_eq!(entries[0].payout, c.settlement.payout);
    // The same cancellation again owes nothing more.
    let again = cancel(&s).await;
    assert_eq!(again.visit.compensation, job.visit.compensation);
    assert_eq!(ledger(&s).await.entries.len(), 1);
}

#[tokio::test]
async fn a_slot_job_is_free_to_cancel_until_a_day_before_the_visit() {
    let tb_now = Utc::now();
    let s = Scenario::new()
        .with_booking(slot_booking(tb_now, 72))
        .accepted()
        .await;
    let start = match customer_job(&s).await.timing {
        Timing::Slot { start, .. } => start,
        other => panic!("{other:?}"),
    };
    let p = preview(&s).await;
    assert_eq!(
        (p.fee, p.free_until),
        (None, Some(start - Duration::hours(24)))
    );
    // The Friend moves the visit to tomorrow morning: now the cancellation is late.
    let now = s.tb.clock_now();
    let r = post_friend(
        &s,
        "appointment",
        json!({ "start": ms(now + Duration::hours(20)), "end": ms(now + Duration::hours(21)) }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(customer_job(&s).await.visit.appointment.unwrap().moved);
    assert_eq!(preview(&s).await.fee.map(|f| f.minor), Some(3_900));
}

#[tokio::test]
async fn a_slot_job_cancelled_early_costs_nothing() {
    let s = Scenario::new()
        .with_booking(slot_booking(Utc::now(), 72))
        .accepted()
        .await;
    let job = cancel(&s).await;
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.visit.compensation, None);
    assert!(ledger(&s).await.entries.is_empty());
}

#[tokio::test]
async fn a_no_show_owes_the_fee() {
    let s = Scenario::new().on_site().await;
    let r = post_friend(
        &s,
        "unsuccessful",
        json!({ "reason": "customer_absent", "note": "rang twice, called" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = customer_job(&s).await.visit.compensation.unwrap();
    assert_eq!(c.cause, CompensationCause::NoShow);
    assert_eq!(
        ledger(&s).await.entries[0].compensation,
        Some(CompensationCause::NoShow)
    );

    // "Cannot help" owes nothing.
    let s = Scenario::new().on_site().await;
    let r = post_friend(
        &s,
        "unsuccessful",
        json!({ "reason": "cannot_help", "note": "needs an electrician" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(customer_job(&s).await.visit.compensation, None);
}

#[tokio::test]
async fn a_declined_moved_visit_and_a_release_offer_the_job_again() {
    let s = Scenario::new()
        .with_booking(slot_booking(Utc::now(), 72))
        .accepted()
        .await;
    let decline = |s: &Scenario| {
        let path = format!("/v1/customer/jobs/{}/appointment/decline", s.job());
        let token = s.customer.token.clone();
        let http = s.http.clone();
        async move { http.post(&path, &token, None, &json!({})).await }
    };
    // Nothing moved yet: nothing to decline.
    assert_refused(&decline(&s).await, 409, "invalid_transition", None);
    let now = s.tb.clock_now();
    let r = post_friend(
        &s,
        "appointment",
        json!({ "start": ms(now + Duration::hours(30)), "end": ms(now + Duration::hours(31)) }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = decline(&s).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let job = customer_job(&s).await;
    assert_eq!(job.state, JobState::Open);
    assert_eq!((job.visit.reopened, job.visit.appointment), (1, None));
    // Another Friend wins it.
    let other = s.tb.friend(friend_at("Otto", ZURICH)).await;
    let r = s.http.accept(&other, s.job(), "accept-otto").await;
    assert!(r.text().contains("won"), "{}", r.text());

    // Otto gives it back, saying why: open again, counted.
    let release = |reason: &'static str| {
        let (http, token, path) = (
            s.http.clone(),
            other.token.clone(),
            friend_path(s.job(), "release"),
        );
        async move {
            http.post(&path, &token, None, &json!({ "reason": reason }))
                .await
        }
    };
    let r = release("cannot_come").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let job = customer_job(&s).await;
    assert_eq!((job.state, job.visit.reopened), (JobState::Open, 2));
    let r = release("bored").await;
    assert!(r.status == 400 || r.status == 409, "{}", r.text());
}

/// The slot-overlap rule measures from the agreed visit, not the booked slot.
#[tokio::test]
async fn the_overlap_rule_uses_the_agreed_visit() {
    let base = Utc::now();
    let s = Scenario::new()
        .with_booking(slot_booking(base, 72))
        .accepted()
        .await;
    let now = s.tb.clock_now();
    // Moved from +72 h to +30 h.
    let r = post_friend(
        &s,
        "appointment",
        json!({ "start": ms(now + Duration::hours(30)), "end": ms(now + Duration::hours(32)) }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let customer = s.tb.customer("Second").await;
    let at_moved = s.tb.book(&customer, &slot_booking(now, 30)).await;
    let r = s.http.accept(&s.friend, at_moved.id, "acc-moved").await;
    assert!(r.text().contains("overlapping_job"), "{}", r.text());
    let at_old_slot = s.tb.book(&customer, &slot_booking(now, 72)).await;
    let r = s.http.accept(&s.friend, at_old_slot.id, "acc-old").await;
    assert!(r.text().contains("won"), "{}", r.text());
}
