//! Who sees what: eligibility, approximate vs full projection, and the authorization matrix.

use friend_protocol::{
    AcceptOutcome, Category, Change, FriendJobView, NotEligibleReason, Place, SyncPage, Tier,
};
use friend_tests::{Scenario, booking_at, friend_at, places, point};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_reach_exactly_the_eligible_friends() {
    let s = Scenario::new().await;
    let (tb, http, customer) = (&s.tb, &s.http, &s.customer);
    let near = &s.friend; // Anna, at Zürich
    let mut small = friend_at("Small radius", places::ZURICH);
    small.radius_km = 2; // Oerlikon is ~3.7 km away
    let small = tb.friend(small).await;
    let far = tb.friend(friend_at("Bern", places::BERN)).await;
    let mut audio = friend_at("Audio only", places::ZURICH);
    audio.categories = vec![Category::Audio];
    let audio = tb.friend(audio).await;
    let mut branded = friend_at("Swisscom", places::ZURICH);
    branded.communities = vec!["swisscom".into()];
    let branded = tb.friend(branded).await;
    let mut pro = friend_at("Pro", places::ZURICH);
    pro.tier = Tier::Pro;
    let pro = tb.friend(pro).await;

    let plain = s.book().await;
    let mut b = booking_at(places::OERLIKON);
    b.brand = Some("swisscom".into());
    let brand_job = tb.book(customer, &b).await;
    let mut b = booking_at(places::OERLIKON);
    b.service_id = "network.cabling".into(); // requires a Pro
    let pro_job = tb.book(customer, &b).await;
    let mut b = booking_at(places::BERN);
    b.place = Place::Remote;
    b.location = None;
    b.address = None;
    let remote = tb.book(customer, &b).await;
    let mut b = booking_at(places::WINTERTHUR);
    b.radius_km = Some(5); // ~20 km from everyone: outside the job's own radius
    let tight = tb.book(customer, &b).await;

    let offers = |page: SyncPage| -> Vec<friend_protocol::JobId> {
        let mut ids: Vec<_> = page
            .changes
            .into_iter()
            .filter_map(|c| match c {
                Change::Offer { offer } => Some(offer.id),
                _ => None,
            })
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<friend_protocol::JobId>| {
        v.sort();
        v
    };
    let inbox = |who| {
        let http = http.clone();
        async move { offers(http.sync(who, None, 0).await.json()) }
    };
    assert_eq!(inbox(near).await, sorted(vec![plain.id, remote.id]));
    assert_eq!(inbox(&small).await, sorted(vec![remote.id]));
    assert_eq!(inbox(&far).await, sorted(vec![remote.id]));
    assert_eq!(inbox(&audio).await, Vec::<friend_protocol::JobId>::new());
    assert_eq!(
        inbox(&branded).await,
        sorted(vec![plain.id, brand_job.id, remote.id])
    );
    assert_eq!(
        inbox(&pro).await,
        sorted(vec![plain.id, pro_job.id, remote.id])
    );

    let not_eligible = |r: friend_tests::Reply| match r.json::<AcceptOutcome>() {
        AcceptOutcome::NotEligible { reason } => reason,
        other => panic!("expected not_eligible, got {other:?}"),
    };
    assert_eq!(
        not_eligible(http.accept(&small, plain.id, "e1").await),
        NotEligibleReason::Distance
    );
    assert_eq!(
        not_eligible(http.accept(&audio, plain.id, "e2").await),
        NotEligibleReason::Category
    );
    assert_eq!(
        not_eligible(http.accept(near, brand_job.id, "e3").await),
        NotEligibleReason::Community
    );
    assert_eq!(
        not_eligible(http.accept(near, pro_job.id, "e4").await),
        NotEligibleReason::Tier
    );
    assert_eq!(
        not_eligible(http.accept(near, tight.id, "e5").await),
        NotEligibleReason::Distance
    );
    assert!(matches!(
        http.accept(&far, remote.id, "e6").await.json(),
        AcceptOutcome::Won { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_reaches_only_the_winner_and_the_customer() {
    let s = Scenario::new().booked().await;
    let (http, winner, job) = (&s.http, &s.friend, s.job());
    let loser = s.friend_named("Loser").await;
    let secrets = [
        "Geheimweg",
        "Hildegard",
        "555 12 34",
        "Door code 4711",
        "47.4111",
        "8.5441",
    ];
    let leaks = |bytes: &[u8]| -> Vec<&str> {
        let text = String::from_utf8_lossy(bytes);
        secrets
            .iter()
            .copied()
            .filter(|s| text.contains(s))
            .collect()
    };

    // Before accept: the offer is approximate, in sync pages and in the single-job view.
    let page = http.sync(&loser, None, 0).await;
    assert!(
        leaks(&page.body).is_empty(),
        "offer leaks {:?}",
        leaks(&page.body)
    );
    let view = http
        .get(&format!("/v1/friend/jobs/{job}"), &loser.token)
        .await;
    assert!(leaks(&view.body).is_empty());
    match view.json::<FriendJobView>() {
        FriendJobView::Offer(offer) => {
            let approx = offer.approx_location.unwrap();
            let d = approx.distance_m(&point(places::OERLIKON));
            assert!((500.0..=2000.0).contains(&d), "approximate point {d} m off");
            assert_eq!(offer.district.as_deref(), Some("8004 Zürich"));
        }
        other => panic!("{other:?}"),
    }

    let won = http.accept(winner, job, "w").await;
    assert_eq!(
        leaks(&won.body).len(),
        secrets.len(),
        "the winner gets every detail"
    );
    let lost = http.accept(&loser, job, "l").await;
    assert!(leaks(&lost.body).is_empty());
    let loser_sync = http.sync(&loser, None, 0).await;
    assert!(leaks(&loser_sync.body).is_empty());
    let loser_view = http
        .get(&format!("/v1/friend/jobs/{job}"), &loser.token)
        .await;
    assert_eq!(loser_view.status, 404);
    assert!(leaks(&loser_view.body).is_empty());
    let winner_view = http
        .get(&format!("/v1/friend/jobs/{job}"), &winner.token)
        .await;
    assert!(matches!(winner_view.json(), FriendJobView::Full(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_matrix_holds() {
    let s = Scenario::new().accepted().await;
    let (http, heidi, anna, job) = (&s.http, &s.customer, &s.friend, s.job());
    let peter = s.customer_named("Peter").await;
    let luca = s.friend_named("Luca").await;
    let empty = serde_json::json!({});

    // No token, a wrong token, a malformed header.
    for token in ["", "fc_not-a-real-token"] {
        for path in ["/v1/sync", "/v1/me", "/v1/catalog", "/v1/customer/jobs"] {
            let r = http.get(path, token).await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (401, "unauthorized"),
                "{path} with {token:?}"
            );
        }
    }
    // Another customer's job does not exist for Peter, to read or to cancel.
    let r = http
        .get(&format!("/v1/customer/jobs/{job}"), &peter.token)
        .await;
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    let r = http
        .post(
            &format!("/v1/customer/jobs/{job}/cancel"),
            &peter.token,
            None,
            &empty,
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    // Luca cannot read or act on Anna's job.
    assert_eq!(
        http.get(&format!("/v1/friend/jobs/{job}"), &luca.token)
            .await
            .status,
        404
    );
    for action in ["check-in", "release"] {
        let r = http
            .post(
                &format!("/v1/friend/jobs/{job}/{action}"),
                &luca.token,
                None,
                &empty,
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (409, "not_assigned_to_you"),
            "{action}"
        );
    }
    // Roles: customers cannot use Friend routes and vice versa; nobody but the admin creates accounts.
    let r = http.accept(&heidi.clone(), job, "x").await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
    let r = http.get("/v1/customer/jobs", &anna.token).await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
    let r = http
        .post(
            "/v1/admin/customers",
            &anna.token,
            None,
            &serde_json::json!({"name": "Eve"}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (401, "unauthorized"));
    let r = http
        .post(
            "/v1/admin/customers",
            "test-admin",
            None,
            &serde_json::json!({"name": "Eve"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Anna herself proceeds; a customer's sync shows their own job in full.
    let r = http
        .post(
            &format!("/v1/friend/jobs/{job}/check-in"),
            &anna.token,
            Some("c1"),
            &empty,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let page: SyncPage = http.sync(heidi, None, 0).await.json();
    assert!(page.changes.iter().any(|c| matches!(c, Change::Job { job: j } if j.id == job
        && j.state == friend_protocol::JobState::OnSite && j.friend.as_ref().map(|f| f.id) == Some(anna.id))));
    let page: SyncPage = http.sync(&peter, None, 0).await.json();
    assert!(page.changes.is_empty());
}
