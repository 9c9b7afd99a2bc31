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

/// One response read off a raw connection.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `(status, code)` of an API error, checking it is the JSON contract's shape.
    fn api_error(&self) -> (u16, String) {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "status {}",
            self.status
        );
        assert!(self.header("x-server-time").is_some(), "no server time");
        let body: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        });
        assert!(body["message"].is_string(), "{body}");
        (self.status, body["code"].as_str().unwrap_or("").to_owned())
    }
}

/// Raw HTTP/1.1 over one TCP connection to 127.0.0.1, bytes exactly as given (blocking std
/// sockets; run it on the blocking pool).
struct RawConn {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    fn open(base_url: &str) -> RawConn {
        let addr = base_url.trim_start_matches("http://");
        let stream = std::net::TcpStream::connect(addr).unwrap();
        // A bound on a broken server, not a synchronisation: answers come at once.
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).unwrap();
    }

    fn fill(&mut self) -> usize {
        use std::io::Read;
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads the next response (its body by `content-length`).
    fn response(&mut self) -> RawResponse {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill() > 0,
                "connection closed before a response: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        while self.buf.len() < end + len {
            assert!(self.fill() > 0, "connection closed inside a body");
        }
        let body = self.buf[end..end + len].to_vec();
        self.buf.drain(..end + len);
        RawResponse {
            status,
            headers,
            body,
        }
    }

    /// Whether the server closed the connection with nothing more to say.
    fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill() == 0
    }
}

/// Runs `f` with a raw connection on the blocking pool.
async fn raw<T: Send + 'static>(
    base_url: &str,
    f: impl FnOnce(RawConn) -> T + Send + 'static,
) -> T {
    let conn = RawConn::open(base_url);
    tokio::task::spawn_blocking(move || f(conn)).await.unwrap()
}

/// Request heads hyper would refuse on its own with an empty body get the API's JSON errors, and
/// the connection closes after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_request_heads_get_json_errors() {
    let tb = TestBackend::start().await;
    let long_path = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000));
    let big_header = format!(
        "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(1_000_000)
    );
    let many_fields = format!(
        "GET /v1/health HTTP/1.1\r\n{}\r\n",
        (0..101)
            .map(|i| format!("X-{i}: y\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "100,000-character path",
            long_path.into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            "Content-Length: -1",
            b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "1 MB header",
            big_header.into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "101 header fields",
            many_fields.into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "conflicting lengths",
            b"POST /v1/keys HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}".to_vec(),
            400,
            "bad_request",
        ),
        (
            "transfer coding other than chunked",
            b"POST /v1/keys HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "header line without colon",
            b"GET /v1/health HTTP/1.1\r\nHost x\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "control character in the method",
            b"G\x01T /v1/health HTTP/1.1\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "not HTTP at all",
            b"\x16\x03\x01\x02\x00\x01\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
    ];
    for (what, bytes, status, code) in cases {
        let (reply, closed) = raw(&tb.base_url, move |mut c| {
            c.send(&bytes);
            let reply = c.response();
            (reply, c.closed())
        })
        .await;
        assert_eq!(reply.api_error(), (status, code.to_owned()), "{what}");
        assert_eq!(reply.header("connection"), Some("close"), "{what}");
        assert!(closed, "{what}: the connection stays open");
    }
}

/// The head checks follow body framing (bodies that look like heads pass), keep connections
/// alive, and answer every request before a refused one first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_connections_keep_alive_and_answer_in_order() {
    let tb = TestBackend::start().await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let cursor: String = tb
        .http()
        .sync(&anna, None, 0)
        .await
        .json::<serde_json::Value>()["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = anna.token.clone();
    raw(&tb.base_url, move |mut c| {
        c.send(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.response().status, 200);
        // A chunked body whose data reads like a malformed head, then a body by length.
        c.send(
            b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nGET /\r\n0\r\n\r\n\
              POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nG\x01T / x\r\n",
        );
        assert_eq!(c.response().api_error(), (401, "unauthorized".to_owned()));
        assert_eq!(c.response().api_error(), (401, "unauthorized".to_owned()));
        c.send(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.response().status, 200, "the connection was kept alive");
        // A long-poll in flight, then a refused head in the same write: the long-poll is answered
        // first, the refusal last.
        c.send(
            format!(
                "GET /v1/sync?cursor={cursor}&wait=1 HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {token}\r\n\r\nGET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"
            )
            .as_bytes(),
        );
        let page = c.response();
        assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
        assert_eq!(c.response().api_error(), (400, "bad_request".to_owned()));
        assert!(c.closed());
    })
    .await;
}
