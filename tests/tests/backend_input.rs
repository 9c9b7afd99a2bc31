//! Bad input never yields a 5xx: every refusal is a 4xx with a stable code. And the OpenAPI document
//! covers every route the router serves.

use friend_tests::{TestBackend, booking_at, friend_at, places};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bookings_are_refused_with_codes() {
    let tb = TestBackend::start().await;
    let heidi = tb.customer("Heidi").await;
    let http = tb.http();
    let good = serde_json::to_value(booking_at(places::OERLIKON)).unwrap();
    let with = |path: &[&str], value: serde_json::Value| {
        let mut v = good.clone();
        let mut target = &mut v;
        for p in &path[..path.len() - 1] {
            target = &mut target[*p];
        }
        target[path[path.len() - 1]] = value;
        v
    };
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "latitude out of range",
            with(&["location", "lat"], 91.0.into()),
            "invalid_json",
        ),
        (
            "longitude out of range",
            with(&["location", "lon"], (-180.5).into()),
            "invalid_json",
        ),
        (
            "latitude as string",
            with(&["location", "lat"], "north".into()),
            "invalid_json",
        ),
        (
            "negative radius",
            with(&["radius_km"], (-5).into()),
            "invalid_json",
        ),
        (
            "zero radius",
            with(&["radius_km"], 0.into()),
            "invalid_input",
        ),
        (
            "huge radius",
            with(&["radius_km"], 4_000_000_000u64.into()),
            "invalid_input",
        ),
        (
            "unknown place",
            with(&["place"], "on_the_moon".into()),
            "invalid_input",
        ),
        (
            "unknown timing",
            with(&["timing"], serde_json::json!({"kind": "yesterday"})),
            "invalid_input",
        ),
        (
            "slot in the past",
            with(
                &["timing"],
                serde_json::json!({"kind": "slot",
            "start": "2001-01-01T10:00:00Z", "end": "2001-01-01T12:00:00Z"}),
            ),
            "invalid_input",
        ),
        (
            "unknown service",
            with(&["service_id"], "time_travel".into()),
            "unknown_service",
        ),
        (
            "empty description",
            with(&["description"], "  ".into()),
            "invalid_input",
        ),
        (
            "description too long",
            with(&["description"], "x".repeat(2001).into()),
            "invalid_input",
        ),
        (
            "missing contact",
            {
                let mut v = good.clone();
                v.as_object_mut().unwrap().remove("contact");
                v
            },
            "invalid_json",
        ),
        (
            "not an object",
            serde_json::json!([1, 2, 3]),
            "invalid_json",
        ),
    ];
    for (what, body, code) in cases {
        let r = http
            .post(
                "/v1/customer/jobs",
                &heidi.token,
                Some(&uuid::Uuid::new_v4().to_string()),
                &body,
            )
            .await;
        assert!(
            (400..500).contains(&r.status),
            "{what}: status {} {}",
            r.status,
            r.text()
        );
        assert_eq!(r.code(), code, "{what}: {}", r.text());
    }

    let r = http
        .post_raw(
            "/v1/customer/jobs",
            &heidi.token,
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_json"));
    let r = http
        .post_raw(
            "/v1/customer/jobs",
            &heidi.token,
            "text/plain",
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(r.code(), "invalid_json");
    let huge = format!(r#"{{"description": "{}"}}"#, "x".repeat(200_000));
    let r = http
        .post_raw(
            "/v1/customer/jobs",
            &heidi.token,
            "application/json",
            huge.into_bytes(),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (413, "body_too_large"));
    // Unknown extra fields are ignored (forward compatibility).
    let r = http
        .post(
            "/v1/customer/jobs",
            &heidi.token,
            Some("extra"),
            &with(&["future_field"], 1.into()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_paths_queries_and_headers_are_refused_with_codes() {
    let tb = TestBackend::start().await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let http = tb.http();
    let checks = [
        (
            http.get("/v1/friend/jobs/not-a-uuid", &anna.token).await,
            400,
            "invalid_input",
        ),
        (
            http.get(
                &format!("/v1/friend/jobs/{}", uuid::Uuid::new_v4()),
                &anna.token,
            )
            .await,
            404,
            "not_found",
        ),
        (
            http.get("/v1/sync?wait=31", &anna.token).await,
            400,
            "invalid_input",
        ),
        (
            http.get("/v1/sync?wait=-1", &anna.token).await,
            400,
            "invalid_input",
        ),
        (
            http.get("/v1/sync?limit=0", &anna.token).await,
            400,
            "invalid_input",
        ),
        (
            http.get("/v1/sync?limit=5000", &anna.token).await,
            400,
            "invalid_input",
        ),
        (
            http.get("/v1/sync?cursor=%00", &anna.token).await,
            400,
            "invalid_cursor",
        ),
        (http.get("/v1/nowhere", &anna.token).await, 404, "not_found"),
        (
            http.request(Method::DELETE, "/v1/sync", &anna.token).await,
            405,
            "method_not_allowed",
        ),
        (
            http.post(
                &format!("/v1/friend/jobs/{}/accept", uuid::Uuid::new_v4()),
                &anna.token,
                Some(&"k".repeat(200)),
                &serde_json::json!({}),
            )
            .await,
            400,
            "invalid_input",
        ),
        (
            http.post(
                &format!("/v1/friend/jobs/{}/decline", uuid::Uuid::new_v4()),
                &anna.token,
                None,
                &serde_json::json!({"reason": "bored"}),
            )
            .await,
            400,
            "invalid_input",
        ),
        (
            http.post(
                "/v1/admin/friends",
                "test-admin",
                None,
                &serde_json::json!({"name": "X", "home": {"lat": 0, "lon": 0}, "radius_km": 0,
                "categories": ["tv"], "tier": "friend"}),
            )
            .await,
            400,
            "invalid_input",
        ),
        (
            http.post(
                "/v1/admin/friends",
                "test-admin",
                None,
                &serde_json::json!({"name": "X", "home": {"lat": 0, "lon": 0}, "radius_km": 10,
                "categories": ["tv"], "tier": "wizard"}),
            )
            .await,
            400,
            "invalid_input",
        ),
    ];
    for (i, (reply, status, code)) in checks.into_iter().enumerate() {
        assert_eq!(
            (reply.status, reply.code()),
            (status, code.to_owned()),
            "check {i}: {}",
            reply.text()
        );
    }
}

/// Every route the router serves, with the method the OpenAPI document must list.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/health"),
    ("get", "/v1/catalog"),
    ("get", "/v1/me"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/sync"),
    ("post", "/v1/customer/jobs"),
    ("get", "/v1/customer/jobs"),
    ("get", "/v1/customer/jobs/{id}"),
    ("post", "/v1/customer/jobs/{id}/cancel"),
    ("get", "/v1/friend/jobs/{id}"),
    ("post", "/v1/friend/jobs/{id}/accept"),
    ("get", "/v1/friend/accepts/{key}"),
    ("post", "/v1/friend/jobs/{id}/decline"),
    ("post", "/v1/friend/jobs/{id}/release"),
    ("post", "/v1/friend/jobs/{id}/check-in"),
    ("post", "/v1/friend/jobs/{id}/complete"),
    ("post", "/v1/friend/jobs/{id}/escalate"),
    ("post", "/v1/friend/jobs/{id}/unsuccessful"),
    ("get", "/v1/friend/ledger"),
    ("post", "/v1/customer/jobs/{id}/rate"),
    ("post", "/v1/keys"),
    ("post", "/v1/jobs/{id}/consent"),
    ("post", "/v1/jobs/{id}/reject"),
    ("post", "/v1/admin/ledger/{id}"),
    ("post", "/v1/admin/friends"),
    ("post", "/v1/admin/customers"),
    ("post", "/v1/admin/expire-due"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route() {
    let tb = TestBackend::start().await;
    let http = tb.http();
    let doc: serde_json::Value = http.get("/v1/openapi.json", "").await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (method, path) in ROUTES {
        let op = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} undocumented"))[*method];
        assert!(op.is_object(), "{method} {path} undocumented");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} has no responses"
        );
        documented += 1;
        // The route exists in the router: anything but 404-no-such-route / 405.
        let concrete = path
            .replace("{id}", &uuid::Uuid::new_v4().to_string())
            .replace("{key}", "some-key");
        let m = if *method == "get" {
            Method::GET
        } else {
            Method::POST
        };
        let r = http.request(m, &concrete, "").await;
        assert_ne!(r.status, 405, "{method} {path} not routed");
        if r.status == 404 {
            assert_ne!(
                r.json::<serde_json::Value>()["message"],
                "no such route",
                "{method} {path} not routed"
            );
        }
    }
    let total: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |o| o.len()))
        .sum();
    assert_eq!(
        total, documented,
        "the document lists routes this test does not know"
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "ApiError",
        "ErrorCode",
        "SyncPage",
        "Change",
        "AcceptOutcome",
        "BookRequest",
        "JobDetails",
        "Offer",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
}
