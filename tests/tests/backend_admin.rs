//! Managing the crowd (admin): a suspended Friend gets no offers and no pushes and is refused the
//! accept with a typed reason, keeps the job they hold, and is back after reactivation; a rotated
//! token is refused at once; every change is in the audit.

use friend_protocol::{
    AcceptOutcome, Change, CreatedAccount, FriendProfile, NotEligibleReason, SyncPage,
};
use friend_protocol::{Category, JobId, PaymentMethod};
use friend_tests::scenario::router;
use friend_tests::{
    Http, Reply, Scenario, TestAccount, TestBackend, booking_at, friend_at, places, wait_until,
};

const LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The admin suspends `friend` ("three no-shows in a week").
async fn suspend(http: &Http, admin: &str, friend: &TestAccount) -> Reply {
    http.post(
        &format!("/v1/admin/friends/{}/suspend", friend.id),
        admin,
        None,
        &serde_json::json!({ "reason": "three no-shows in a week" }),
    )
    .await
}

/// Whether `page` offers `job`.
fn offered(page: &SyncPage, job: JobId) -> bool {
    page.changes
        .iter()
        .any(|c| matches!(c, Change::Offer { offer } if offer.id == job))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_friend_gets_no_offer_and_cannot_accept_until_reactivated() {
    let tb = TestBackend::start().await;
    let http = tb.http();
    let admin = tb.backend.admin_token().to_owned();
    let heidi = tb.customer("Heidi").await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let held = tb.book(&heidi, &booking_at(places::OERLIKON)).await;
    let won: AcceptOutcome = http.accept(&anna, held.id, "held").await.json();
    assert!(matches!(won, AcceptOutcome::Won { .. }));
    let cursor = http.sync(&anna, None, 0).await.json::<SyncPage>().cursor;

    let suspended = suspend(&http, &admin, &anna).await;
    assert_eq!(suspended.status, 200, "{}", suspended.text());
    assert!(suspended.json::<FriendProfile>().suspended);

    // A new job near Anna: not offered to her, and her accept is refused with the reason.
    let job = tb.book(&heidi, &booking_at(places::OERLIKON)).await;
    let page: SyncPage = http.sync(&anna, Some(&cursor), 0).await.json();
    assert!(!offered(&page, job.id), "no offer for a suspended Friend");
    let refused: AcceptOutcome = http.accept(&anna, job.id, "refused").await.json();
    assert_eq!(
        refused,
        AcceptOutcome::NotEligible {
            reason: NotEligibleReason::Suspended
        }
    );
    // The job she held stays hers.
    let mine = http
        .get(&format!("/v1/friend/jobs/{}", held.id), &anna.token)
        .await;
    assert_eq!(mine.status, 200);
    let mine: friend_protocol::JobDetails = mine.json();
    assert_eq!(mine.friend.map(|f| f.id), Some(anna.id));

    // Reactivated: offered and accepted again.
    let back = http
        .post(
            &format!("/v1/admin/friends/{}/reactivate", anna.id),
            &admin,
            None,
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(back.status, 200, "{}", back.text());
    assert!(!back.json::<FriendProfile>().suspended);
    let page: SyncPage = http.sync(&anna, Some(&page.cursor), 0).await.json();
    let third = tb.book(&heidi, &booking_at(places::OERLIKON)).await;
    let page: SyncPage = http.sync(&anna, Some(&page.cursor), 0).await.json();
    assert!(
        page.changes
            .iter()
            .any(|c| matches!(c, Change::Offer { offer } if offer.id == third.id))
    );
    let outcome: AcceptOutcome = http.accept(&anna, job.id, "again").await.json();
    assert!(matches!(outcome, AcceptOutcome::Won { .. }), "{outcome:?}");

    // Unknown Friends and customers are not found; a blank reason is refused.
    let nobody = http
        .post(
            &format!("/v1/admin/friends/{}/suspend", heidi.id),
            &admin,
            None,
            &serde_json::json!({ "reason": "x" }),
        )
        .await;
    assert_eq!(
        (nobody.status, nobody.code()),
        (404, "not_found".to_owned())
    );
    let blank = http
        .post(
            &format!("/v1/admin/friends/{}/suspend", anna.id),
            &admin,
            None,
            &serde_json::json!({ "reason": "  " }),
        )
        .await;
    assert_eq!(blank.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_is_refused_at_once_and_the_audit_says_who_did_what() {
    let tb = TestBackend::start().await;
    let http = tb.http();
    let admin = tb.backend.admin_token().to_owned();
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    // The old token is known (and cached) before the rotation.
    assert_eq!(http.get("/v1/me", &anna.token).await.status, 200);

    let rotated = http
        .post(
            &format!("/v1/admin/accounts/{}/rotate-token", anna.id),
            &admin,
            None,
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let created: CreatedAccount = rotated.json();
    assert_eq!(created.id, anna.id);
    assert_ne!(created.token, anna.token);
    assert_eq!(
        http.get("/v1/me", &anna.token).await.status,
        401,
        "old token"
    );
    assert_eq!(
        http.get("/v1/me", &created.token).await.status,
        200,
        "new token"
    );

    http.post(
        &format!("/v1/admin/friends/{}/suspend", anna.id),
        &admin,
        None,
        &serde_json::json!({ "reason": "test" }),
    )
    .await;
    let audit = http.get("/v1/admin/audit?limit=10", &admin).await;
    assert_eq!(audit.status, 200, "{}", audit.text());
    let body: serde_json::Value = audit.json();
    let changes = body["changes"].as_array().cloned().unwrap_or_default();
    let actions: Vec<&str> = changes
        .iter()
        .filter_map(|c| c["action"].as_str())
        .collect();
    assert_eq!(actions, ["suspend", "rotate_token"], "newest first");
    assert!(changes.iter().all(|c| c["actor"] == "admin"
        && c["account_id"] == anna.id.to_string()
        && c["at"].is_string()));
    assert!(
        !audit.text().contains(&created.token),
        "no token in the audit"
    );
    assert_eq!(http.get("/v1/admin/audit", &anna.token).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qualifications_change_what_a_friend_is_offered_and_the_listing_shows_ratings() {
    let s = Scenario::new()
        .agreed(vec![router(8_900)])
        .completed(PaymentMethod::Cash)
        .await;
    let rated = s.rate(&s.customer, serde_json::json!({ "stars": 4 })).await;
    assert_eq!(rated.status, 200, "{}", rated.text());
    let admin = s.tb.backend.admin_token().to_owned();
    let anna = &s.friend;

    // Anna now does TV only: a network job is not hers any more.
    let updated = s
        .http
        .post(
            &format!("/v1/admin/friends/{}/profile", anna.id),
            &admin,
            None,
            &serde_json::json!({ "categories": ["tv"], "radius_km": 20 }),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    let profile: FriendProfile = updated.json();
    assert_eq!(
        (profile.categories.clone(), profile.radius_km),
        (vec![Category::Tv], 20)
    );
    let job = s.tb.book(&s.customer, &booking_at(places::OERLIKON)).await;
    let refused: AcceptOutcome = s.http.accept(anna, job.id, "tv-only").await.json();
    assert_eq!(
        refused,
        AcceptOutcome::NotEligible {
            reason: NotEligibleReason::Category
        }
    );
    // Rules as for a new Friend: no category at all, or a radius of 0, is refused.
    for bad in [
        serde_json::json!({ "categories": [] }),
        serde_json::json!({ "radius_km": 0 }),
        serde_json::json!([null, null]),
        serde_json::json!({ "tier": "captain" }),
    ] {
        let r = s
            .http
            .post(
                &format!("/v1/admin/friends/{}/profile", anna.id),
                &admin,
                None,
                &bad,
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }

    let listed = s.http.get("/v1/admin/friends?limit=10", &admin).await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let body: serde_json::Value = listed.json();
    let record = body["friends"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["profile"]["id"] == anna.id.to_string()))
        .cloned()
        .expect("Anna listed");
    assert_eq!(record["completed_jobs"], 1);
    assert_eq!(record["ratings"], 1);
    assert_eq!(record["mean_stars"], 4.0);
    let audit: serde_json::Value = s.http.get("/v1/admin/audit", &admin).await.json();
    assert_eq!(audit["changes"][0]["action"], "update_profile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_waiting_when_the_friend_is_suspended_gets_no_later_offer() {
    let tb = TestBackend::start().await;
    let http = tb.http();
    let admin = tb.backend.admin_token().to_owned();
    let heidi = tb.customer("Heidi").await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let cursor = http.sync(&anna, None, 0).await.json::<SyncPage>().cursor;
    let poll = {
        let (http, anna) = (http.clone(), anna.clone());
        tokio::spawn(async move { http.sync(&anna, Some(&cursor), 30).await })
    };
    let backend = tb.backend.clone();
    let waits = |n: u64| {
        let backend = backend.clone();
        let id = anna.id;
        move || {
            let ready = backend.waiting_accounts() == 1 && backend.wake_count(id) == n;
            async move { ready }
        }
    };
    wait_until("Anna's long-poll to wait", LIMIT, waits(0)).await;

    let suspended = suspend(&http, &admin, &anna).await;
    assert_eq!(suspended.status, 200, "{}", suspended.text());
    // The suspension wakes the poll, which re-reads her profile and waits again.
    wait_until("the poll to wait again, suspended", LIMIT, waits(1)).await;

    // A booking near her does not reach the waiting poll (the wake-up is rung at commit, before
    // the booking's answer); a drain then answers the poll with what it has.
    let job = tb.book(&heidi, &booking_at(places::OERLIKON)).await;
    tb.backend.start_drain();
    let page: SyncPage = tokio::time::timeout(LIMIT, poll)
        .await
        .expect("answered by the drain")
        .expect("poll task")
        .json();
    assert!(
        !offered(&page, job.id),
        "a suspended Friend's waiting long-poll got the offer"
    );
}
