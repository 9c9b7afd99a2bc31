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
    let gets = [
        (
            "/v1/friend/jobs/not-a-uuid".to_owned(),
            400,
            "invalid_input",
        ),
        (
            format!("/v1/friend/jobs/{}", uuid::Uuid::new_v4()),
            404,
            "not_found",
        ),
        ("/v1/sync?wait=31".to_owned(), 400, "invalid_input"),
        ("/v1/sync?wait=-1".to_owned(), 400, "invalid_input"),
        ("/v1/sync?limit=0".to_owned(), 400, "invalid_input"),
        ("/v1/sync?limit=5000".to_owned(), 400, "invalid_input"),
        ("/v1/sync?cursor=%00".to_owned(), 400, "invalid_cursor"),
        ("/v1/nowhere".to_owned(), 404, "not_found"),
    ];
    for (path, status, code) in gets {
        let r = http.get(&path, &anna.token).await;
        assert_eq!(
            (r.status, r.code()),
            (status, code.to_owned()),
            "GET {path}"
        );
    }
    let r = http.request(Method::DELETE, "/v1/sync", &anna.token).await;
    assert_eq!((r.status, r.code()), (405, "method_not_allowed".to_owned()));
    let job = uuid::Uuid::new_v4();
    let long_key = "k".repeat(200);
    let posts = [
        (
            format!("/v1/friend/jobs/{job}/accept"),
            anna.token.as_str(),
            Some(long_key.as_str()),
            serde_json::json!({}),
        ),
        (
            format!("/v1/friend/jobs/{job}/decline"),
            anna.token.as_str(),
            None,
            serde_json::json!({"reason": "bored"}),
        ),
        (
            "/v1/admin/friends".to_owned(),
            "test-admin",
            None,
            serde_json::json!({"name": "X", "home": {"lat": 0, "lon": 0}, "radius_km": 0,
                "categories": ["tv"], "tier": "friend"}),
        ),
        (
            "/v1/admin/friends".to_owned(),
            "test-admin",
            None,
            serde_json::json!({"name": "X", "home": {"lat": 0, "lon": 0}, "radius_km": 10,
                "categories": ["tv"], "tier": "wizard"}),
        ),
    ];
    for (path, token, key, body) in &posts {
        let r = http.post(path, token, *key, body).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_input".to_owned()),
            "POST {path} {body}: {}",
            r.text()
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
    ("post", "/v1/friend/jobs/{id}/appointment"),
    ("post", "/v1/friend/jobs/{id}/on-my-way"),
    ("post", "/v1/customer/jobs/{id}/appointment/decline"),
    ("get", "/v1/customer/jobs/{id}/cancel-preview"),
    ("post", "/v1/friend/jobs/{id}/complete"),
    ("post", "/v1/friend/jobs/{id}/escalate"),
    ("post", "/v1/friend/jobs/{id}/unsuccessful"),
    ("get", "/v1/friend/ledger"),
    ("post", "/v1/customer/jobs/{id}/rate"),
    ("post", "/v1/keys"),
    ("post", "/v1/push-tokens"),
    ("post", "/v1/push-tokens/remove"),
    ("post", "/v1/jobs/{id}/consent"),
    ("post", "/v1/jobs/{id}/reject"),
    ("post", "/v1/admin/ledger/{id}"),
    ("post", "/v1/admin/friends"),
    ("post", "/v1/admin/customers"),
    ("post", "/v1/admin/expire-due"),
    ("get", "/v1/ready"),
    ("get", "/metrics"),
    ("post", "/v1/admin/friends/{id}/suspend"),
    ("post", "/v1/admin/friends/{id}/reactivate"),
    ("post", "/v1/admin/accounts/{id}/rotate-token"),
    ("get", "/v1/admin/audit"),
    ("get", "/v1/admin/friends"),
    ("post", "/v1/admin/friends/{id}/profile"),
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
            "an HTTP/2 preface broken off (HTTP/1 from its first differing byte)",
            b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n".to_vec(),
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
        // Answered before its body was read (no token): the body is read all the same, so the
        // answer arrives and the connection stays usable.
        let body = vec![b' '; 200 * 1024];
        c.send(
            format!(
                "POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        c.send(&body);
        let early = c.response();
        assert_eq!(early.api_error(), (401, "unauthorized".to_owned()));
        assert_ne!(early.header("connection"), Some("close"));
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

/// The served OpenAPI document, parsed.
async fn openapi_doc(tb: &TestBackend) -> serde_json::Value {
    tb.http().get("/v1/openapi.json", "").await.json()
}

/// Every operation of the document: (method, path, operation).
fn operations(doc: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.clone(), path.clone(), op.clone()));
        }
    }
    out
}

/// The document is one a code generator takes (unique operation ids, resolvable references, an
/// error schema on every error status) and declares the formats and ranges the server enforces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_declares_what_the_server_checks() {
    let tb = TestBackend::start().await;
    let doc = openapi_doc(&tb).await;
    let ops = operations(&doc);

    let mut ids = std::collections::HashSet::new();
    for (method, path, op) in &ops {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no id"));
        assert!(ids.insert(id.to_owned()), "operationId {id} is not unique");
    }

    // Every reference resolves.
    fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "unresolved {r}");
    }

    let param = |op: &serde_json::Value, name: &str| -> serde_json::Value {
        op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    };
    for (method, path, op) in &ops {
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success"
        );
        for (status, response) in responses {
            if !status.starts_with('2') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ApiError",
                    "{method} {path} {status}"
                );
            }
        }
        // The HTTP layer's answers are possible everywhere.
        for status in ["400", "414", "431"] {
            assert!(responses.contains_key(status), "{method} {path}: {status}");
        }
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(
            secured,
            responses.contains_key("401"),
            "{method} {path}: 401"
        );
        let role_only = path.starts_with("/v1/friend/") || path.starts_with("/v1/customer/");
        assert_eq!(
            role_only,
            responses.contains_key("403"),
            "{method} {path}: 403"
        );
        if path.contains("{id}") {
            assert_eq!(
                param(op, "id")["schema"]["format"],
                "uuid",
                "{method} {path}"
            );
        }
        let key = param(op, "Idempotency-Key");
        if !key.is_null() {
            assert_eq!(key["schema"]["minLength"], 1, "{method} {path}");
            assert_eq!(key["schema"]["maxLength"], 128, "{method} {path}");
            assert!(responses.contains_key("422"), "{method} {path}: 422");
        }
    }
    let sync = &doc["paths"]["/v1/sync"]["get"];
    let range = |p: serde_json::Value| {
        (
            p["schema"]["minimum"].clone(),
            p["schema"]["maximum"].clone(),
        )
    };
    assert_eq!(
        range(param(sync, "wait")),
        (0.into(), friend_protocol::MAX_WAIT_SECS.into())
    );
    assert_eq!(
        range(param(sync, "limit")),
        (1.into(), friend_protocol::MAX_PAGE_LIMIT.into())
    );
    let key = &doc["paths"]["/v1/friend/accepts/{key}"]["get"];
    assert_eq!(param(key, "key")["schema"]["maxLength"], 128);

    // Request bodies: the ranges and lengths the validation enforces.
    let schemas = &doc["components"]["schemas"];
    let field = |schema: &str, field: &str| schemas[schema]["properties"][field].clone();
    let bounds = |v: serde_json::Value| (v["minimum"].as_f64(), v["maximum"].as_f64());
    assert_eq!(
        bounds(field("RateRequest", "stars")),
        (Some(1.0), Some(5.0))
    );
    assert_eq!(bounds(field("GeoPoint", "lat")), (Some(-90.0), Some(90.0)));
    assert_eq!(
        bounds(field("GeoPoint", "lon")),
        (Some(-180.0), Some(180.0))
    );
    let radius = (
        Some(1.0),
        Some(f64::from(friend_protocol::MAX_FRIEND_RADIUS_KM)),
    );
    assert_eq!(bounds(field("NewFriend", "radius_km")), radius);
    assert_eq!(bounds(field("BookRequest", "radius_km")), radius);
    use friend_protocol::validate::{MAX_SHORT_CHARS, MAX_TEXT_CHARS};
    for (schema, name, max) in [
        ("BookRequest", "description", MAX_TEXT_CHARS),
        ("BookRequest", "service_id", MAX_SHORT_CHARS),
        ("Contact", "name", MAX_SHORT_CHARS),
        ("Address", "street", MAX_SHORT_CHARS),
        ("NewCustomer", "name", MAX_SHORT_CHARS),
        ("RateRequest", "comment", friend_protocol::MAX_COMMENT_CHARS),
        ("EscalateRequest", "note", friend_protocol::MAX_NOTE_CHARS),
    ] {
        assert_eq!(field(schema, name)["maxLength"], max, "{schema}.{name}");
    }
    // `unknown` is what clients map values of newer servers to; this server neither sends nor
    // accepts it, so the document lists it nowhere.
    let text = doc["components"].to_string();
    assert!(!text.contains("\"unknown\""), "an enum lists unknown");
}

/// Every status the routes answer with is in the document for that operation, with the error
/// schema: each operation is probed with every kind of token, malformed ids and keys, a reused
/// key, malformed and oversized bodies, and real jobs in several states.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_the_routes_answer_with_is_documented() {
    let tb = TestBackend::start().await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let heidi = tb.customer("Heidi").await;
    let http = tb.http();
    let book = |key: &'static str| {
        let http = http.clone();
        let token = heidi.token.clone();
        async move {
            let r = http
                .post(
                    "/v1/customer/jobs",
                    &token,
                    Some(key),
                    &booking_at(places::OERLIKON),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.json::<serde_json::Value>()["job"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    // An open job (booked with the key the probes reuse) and one Anna holds (accepted with it).
    let open = book("probe-key").await;
    let held = book("probe-held").await;
    let won = http.accept(&anna, held.parse().unwrap(), "probe-key").await;
    assert_eq!(won.status, 200, "{}", won.text());

    let doc = openapi_doc(&tb).await;
    let client = reqwest::Client::new();
    let tokens = ["", "not-a-token", &anna.token, &heidi.token, "test-admin"];
    let ids = [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_owned(),
        "%FF".to_owned(),
        open.clone(),
        held.clone(),
    ];
    let keys: [Option<&str>; 4] = [None, Some("probe-key"), Some(""), Some(&"k".repeat(200))];
    let bodies: [&[u8]; 3] = [b"{}", b"{not json", &[b' '; 70 * 1024]];
    let mut probes = 0;
    for (method, path, op) in operations(&doc) {
        if path == "/v1/sync" {
            // Long-polls and cursors have their own tests; a plain sync is probed here.
        }
        let documented: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        let has_body = op.get("requestBody").is_some();
        for token in tokens {
            for (i, id) in ids.iter().enumerate() {
                let key = keys[i % keys.len()];
                for body in bodies.iter().take(if has_body { 3 } else { 1 }) {
                    let url = format!(
                        "{}{}",
                        tb.base_url,
                        path.replace("{id}", id).replace("{key}", key.unwrap_or(id))
                    );
                    let mut req = client.request(method.to_uppercase().parse().unwrap(), &url);
                    if !token.is_empty() {
                        req = req.bearer_auth(token);
                    }
                    if let Some(k) = key {
                        req = req.header("Idempotency-Key", k);
                    }
                    if has_body {
                        req = req
                            .header("content-type", "application/json")
                            .body(body.to_vec());
                    }
                    let resp = req.send().await.unwrap();
                    probes += 1;
                    let status = resp.status().as_u16();
                    let time = resp.headers().contains_key("x-server-time");
                    let text = resp.text().await.unwrap();
                    let what = format!("{method} {url} (token {token:.8}, key {key:?})");
                    assert!(time, "{what}: no x-server-time");
                    assert!(
                        documented.iter().any(|s| **s == status.to_string()),
                        "{what}: {status} is not documented ({documented:?}): {text}"
                    );
                    if path == "/metrics" && status == 200 {
                        // The Prometheus text format, not JSON.
                        assert!(text.ends_with("# EOF\n"), "{what}: {text}");
                        continue;
                    }
                    let json: serde_json::Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{what}: {status} not JSON ({e}): {text}"));
                    if status >= 400 {
                        assert!(
                            json["code"].is_string() && json["message"].is_string(),
                            "{what}: {text}"
                        );
                    }
                }
            }
        }
    }
    assert!(probes > 500, "{probes} probes");
}
