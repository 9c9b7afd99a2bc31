//! Test support for FriendCore's end-to-end suites: the reference backend started in-process on an
//! ephemeral loopback port with a manual clock, account and booking builders, scenario builders that
//! bring a job to a stage ([`scenario`]), and a small raw HTTP client that exposes status codes and
//! bytes (so tests can look at exactly what went over the wire).

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The fault-injecting proxy, now its own crate (`friend-faultproxy`) so that friendctl can use it
/// without depending on this test support; re-exported under its old path.
pub use friend_faultproxy as proxy;
pub mod pg;
pub mod scenario;

pub use scenario::Scenario;

use friend_backend::clock::ManualClock;
use friend_backend::{Backend, Config};
use friend_protocol::{
    AccountId, Address, BookRequest, Category, Contact, GeoPoint, JobDetails, NewCustomer,
    NewFriend, Place, Tier, Timing,
};
use std::sync::Arc;
use std::time::Duration;

/// Well-known places (lat, lon).
pub mod places {
    /// Zürich main station.
    pub const ZURICH: (f64, f64) = (47.3779, 8.5403);
    /// Zürich Oerlikon, ~4.5 km north of the main station.
    pub const OERLIKON: (f64, f64) = (47.4111, 8.5441);
    /// Winterthur, ~20 km north-east of Zürich.
    pub const WINTERTHUR: (f64, f64) = (47.4988, 8.7237);
    /// Bern, ~95 km west of Zürich.
    pub const BERN: (f64, f64) = (46.9480, 7.4474);
}

/// A point from a (lat, lon) pair known to be valid.
pub fn point((lat, lon): (f64, f64)) -> GeoPoint {
    GeoPoint::new(lat, lon).unwrap_or_else(|e| panic!("test point ({lat}, {lon}) invalid: {e}"))
}

/// Installs rustls' ring provider once (reqwest is built without a default provider).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An account created for a test.
#[derive(Debug, Clone)]
pub struct TestAccount {
    /// Account id.
    pub id: AccountId,
    /// Bearer token.
    pub token: String,
}

/// The store the end-to-end tests run on: SQLite unless `FRIEND_TEST_DB=postgres` (then each
/// backend gets a fresh database on the test binary's own PostgreSQL server, see [`pg`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// A database file in a temporary directory.
    Sqlite,
    /// A fresh database on the shared throwaway PostgreSQL server.
    Postgres,
}

/// The store `FRIEND_TEST_DB` selects (`postgres`; anything else or unset: SQLite).
pub fn test_store() -> Store {
    match std::env::var("FRIEND_TEST_DB").as_deref() {
        Ok("postgres") => Store::Postgres,
        _ => Store::Sqlite,
    }
}

/// The reference backend running in this process on 127.0.0.1 with an ephemeral port and a
/// database file in a temporary directory (or a database on the test PostgreSQL server, see
/// [`test_store`]). Stops when dropped.
pub struct TestBackend {
    /// The backend handle (expiry, pruning, wake counters).
    pub backend: Backend,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The server clock; advance it to expire jobs.
    pub clock: Arc<ManualClock>,
    /// The database file.
    pub db_path: std::path::PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestBackend {
    /// Starts a backend with the catalog seeded, no dev accounts, and expiry only on demand.
    pub async fn start() -> TestBackend {
        Self::start_with_push(friend_backend::push::PushSettings::default()).await
    }

    /// [`TestBackend::start`] with push gateways (e.g. the loopback fakes of `friend-fakepush`).
    pub async fn start_with_push(push: friend_backend::push::PushSettings) -> TestBackend {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let db_path = match test_store() {
            Store::Sqlite => dir.path().join("backend.db"),
            Store::Postgres => crate::pg::PgServer::shared()
                .database()
                .unwrap_or_else(|e| panic!("a database on the test PostgreSQL server: {e}"))
                .into(),
        };
        Self::start_on(dir, db_path, push).await
    }

    /// `n` instances on one fresh PostgreSQL database (the test binary's own server): several
    /// stateless backends behind a load balancer, as operators run them. `expiry`: the expiry
    /// timer's period (`None`: expiry only on demand, as in [`TestBackend::start`]).
    pub async fn start_instances(n: usize, expiry: Option<Duration>) -> Vec<TestBackend> {
        let url = pg::PgServer::shared()
            .database()
            .unwrap_or_else(|e| panic!("a database on the test PostgreSQL server: {e}"));
        let mut instances = Vec::with_capacity(n);
        for _ in 0..n {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
            instances.push(
                Self::start_with(
                    dir,
                    url.clone().into(),
                    friend_backend::push::PushSettings::default(),
                    expiry,
                )
                .await,
            );
        }
        instances
    }

    async fn start_on(
        dir: tempfile::TempDir,
        db_path: std::path::PathBuf,
        push: friend_backend::push::PushSettings,
    ) -> TestBackend {
        Self::start_with(dir, db_path, push, None).await
    }

    async fn start_with(
        dir: tempfile::TempDir,
        db_path: std::path::PathBuf,
        push: friend_backend::push::PushSettings,
        expiry: Option<Duration>,
    ) -> TestBackend {
        let clock = Arc::new(ManualClock::new());
        let mut config = Config::new(&db_path);
        config.push = push;
        config.seed_dev_data = false;
        config.clock = clock.clone();
        config.expiry_interval = expiry;
        config.admin_token = Some("test-admin".into());
        let backend = Backend::open(config).unwrap_or_else(|e| panic!("backend: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let base_url = format!(
            "http://{}",
            listener
                .local_addr()
                .unwrap_or_else(|e| panic!("addr: {e}"))
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = backend.clone();
        let serving = tokio::spawn(async move {
            let _ = server
                .serve(listener, async move {
                    let _ = rx.await;
                })
                .await;
        });
        TestBackend {
            backend,
            base_url,
            clock,
            db_path,
            shutdown: Some(tx),
            serving: Some(serving),
            _dir: dir,
        }
    }

    /// Where the backend's database holds `needle` in its bytes: its files (SQLite), or its dump
    /// (PostgreSQL). For checks that something is never stored in clear.
    pub fn stored_places_of(&self, needle: &str) -> Vec<String> {
        let contains = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        if test_store() == Store::Postgres {
            let url = self.db_path.to_string_lossy();
            let dump = pg::PgServer::shared()
                .dump(&url)
                .unwrap_or_else(|e| panic!("dump of the test database: {e}"));
            return if contains(&dump) {
                vec![format!("pg_dump of {url}")]
            } else {
                Vec::new()
            };
        }
        let dir = self.db_path.parent().unwrap_or(std::path::Path::new("."));
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_file() && contains(&std::fs::read(&path).unwrap_or_default()) {
                found.push(path.display().to_string());
            }
        }
        found
    }

    /// A backend pushing to fresh loopback fakes of FCM and APNs (`friend-fakepush`); the FCM
    /// service-account file is written into `dir`.
    pub async fn start_pushing(
        dir: &std::path::Path,
    ) -> (
        TestBackend,
        friend_fakepush::FakeFcm,
        friend_fakepush::FakeApns,
    ) {
        use friend_backend::push::{ApnsSettings, FcmSettings, PushSettings};
        let fcm = friend_fakepush::FakeFcm::start().await;
        let apns = friend_fakepush::FakeApns::start().await;
        let credentials = dir.join("fcm.json");
        fcm.write_service_account(&credentials)
            .unwrap_or_else(|e| panic!("service account file: {e}"));
        let settings = PushSettings {
            fcm: Some(FcmSettings {
                credentials,
                url: Some(fcm.base_url()),
            }),
            apns: Some(ApnsSettings {
                key: friend_fakepush::apns::key_path(),
                key_id: friend_fakepush::apns::KEY_ID.into(),
                team_id: friend_fakepush::apns::TEAM_ID.into(),
                topic: friend_fakepush::apns::TOPIC.into(),
                url: Some(apns.base_url()),
                sandbox: false,
            }),
            ..PushSettings::default()
        };
        (TestBackend::start_with_push(settings).await, fcm, apns)
    }

    /// The server clock's current time.
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use friend_backend::clock::Clock;
        self.clock.now()
    }

    /// Asks the server to stop, without waiting (the database stays until the value is dropped).
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops serving and waits until the port is closed and open connections are done, so the
    /// next request is certain to find the backend gone (within 10 s, else the test fails).
    pub async fn shut_down(&mut self) {
        self.stop();
        if let Some(serving) = self.serving.take() {
            tokio::time::timeout(Duration::from_secs(10), serving)
                .await
                .unwrap_or_else(|_| panic!("the backend did not stop within 10 s"))
                .unwrap_or_else(|e| panic!("the backend task failed: {e}"));
        }
    }

    /// A raw client for this backend.
    pub fn http(&self) -> Http {
        Http::new(&self.base_url)
    }

    /// Waits (up to 10 s) until `n` writes wait behind [`friend_backend::Backend::pause_writes`]
    /// or behind each other, naming `what` if they do not.
    pub async fn until_writes_queued(&self, n: usize, what: &str) {
        wait_until(what, Duration::from_secs(10), || async {
            self.backend.queued_writes().await.expect("queued writes") == n
        })
        .await;
    }

    /// `n` Friends in Bern (no booking in Zürich concerns them), each long-polling (`wait=30`)
    /// through `http` from its cursor: the handles give back that cursor and the answer.
    pub async fn long_polls(
        &self,
        http: &Http,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<(String, Reply)>> {
        let mut polls = Vec::with_capacity(n);
        for i in 0..n {
            let friend = self
                .friend(friend_at(&format!("Waiting {i}"), places::BERN))
                .await;
            let cursor = http
                .sync(&friend, None, 0)
                .await
                .json::<friend_protocol::SyncPage>()
                .cursor;
            let http = http.clone();
            polls.push(tokio::spawn(async move {
                let reply = http.sync(&friend, Some(&cursor), 30).await;
                (cursor, reply)
            }));
        }
        polls
    }

    /// Asserts that each of `polls` (from [`TestBackend::long_polls`]) is answered within `bound`
    /// (far below its own 30 s wait: by a drain), with no change and its own cursor back.
    pub async fn assert_answered_empty(
        polls: Vec<tokio::task::JoinHandle<(String, Reply)>>,
        bound: Duration,
    ) {
        for poll in polls {
            let (cursor, reply) = tokio::time::timeout(bound, poll)
                .await
                .expect("answered by the drain, not by its own timeout")
                .expect("long-poll task");
            assert_eq!(reply.status, 200, "{}", reply.text());
            let page: friend_protocol::SyncPage = reply.json();
            assert!(page.changes.is_empty(), "{:?}", page.changes);
            assert_eq!(page.cursor, cursor, "the device resumes where it was");
        }
    }

    /// Creates a Friend through the admin API.
    pub async fn friend(&self, f: NewFriend) -> TestAccount {
        let created = self
            .backend
            .create_friend(f)
            .await
            .unwrap_or_else(|e| panic!("create friend: {e:?}"));
        TestAccount {
            id: created.id,
            token: created.token,
        }
    }

    /// Creates a customer through the admin API.
    pub async fn customer(&self, name: &str) -> TestAccount {
        let created = self
            .backend
            .create_customer(NewCustomer { name: name.into() })
            .await
            .unwrap_or_else(|e| panic!("create customer: {e:?}"));
        TestAccount {
            id: created.id,
            token: created.token,
        }
    }

    /// Books a job and returns it, panicking on failure (through a new client: see [`Http::book`]
    /// to book through one kept).
    pub async fn book(&self, customer: &TestAccount, req: &BookRequest) -> JobDetails {
        self.http().book(customer, req).await
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Friend at `home` qualified for every category, 30 km radius, no communities, tier Friend.
pub fn friend_at(name: &str, home: (f64, f64)) -> NewFriend {
    NewFriend {
        name: name.into(),
        home: point(home),
        radius_km: 30,
        categories: Category::ALL.to_vec(),
        communities: vec![],
        tier: Tier::Friend,
    }
}

/// An on-site now-booking of the router service at `at`, with recognisable personal data.
pub fn booking_at(at: (f64, f64)) -> BookRequest {
    BookRequest {
        service_id: "network.router_setup".into(),
        description: "New router, Wi-Fi does not reach the bedroom".into(),
        timing: Timing::Now,
        place: Place::OnSite,
        location: Some(point(at)),
        address: Some(Address {
            street: "Geheimweg 42".into(),
            postal_code: "8004".into(),
            city: "Zürich".into(),
        }),
        contact: Contact {
            name: "Hildegard Vertraulich".into(),
            phone: "+41 79 555 12 34".into(),
        },
        access_notes: Some("Door code 4711".into()),
        brand: None,
        radius_km: None,
    }
}

/// The data key test devices use.
pub const TEST_KEY: [u8; 32] = [42u8; 32];

/// Opens a Friend session on `db` against `base_url` with the test key.
pub async fn open_friend(
    base_url: &str,
    account: &TestAccount,
    db: &std::path::Path,
) -> friend_core::FriendSession {
    open_friend_with(friend_core::SessionConfig::new(db, base_url), account).await
}

/// Opens a Friend session with a custom configuration.
pub async fn open_friend_with(
    config: friend_core::SessionConfig,
    account: &TestAccount,
) -> friend_core::FriendSession {
    install_crypto_provider();
    let secrets = Arc::new(friend_core::StaticSecrets::new(
        account.token.clone(),
        TEST_KEY,
    ));
    friend_core::FriendSession::open(config, secrets)
        .await
        .unwrap_or_else(|e| panic!("open session: {e}"))
}

/// Opens a customer session on `db` against `base_url` with the test key.
pub async fn open_customer(
    base_url: &str,
    account: &TestAccount,
    db: &std::path::Path,
) -> friend_core::CustomerSession {
    install_crypto_provider();
    let secrets = Arc::new(friend_core::StaticSecrets::new(
        account.token.clone(),
        TEST_KEY,
    ));
    friend_core::CustomerSession::open(friend_core::SessionConfig::new(db, base_url), secrets)
        .await
        .unwrap_or_else(|e| panic!("open customer session: {e}"))
}

/// A response: status, headers and raw body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Raw body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as `T`, panicking with the body on failure.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("unexpected body ({e}): {}", self.text()))
    }

    /// The `code` of an error body.
    pub fn code(&self) -> String {
        let v: serde_json::Value = self.json();
        v["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code in {}", self.text()))
            .to_owned()
    }

    /// The job of a `200` answer that carries one (`JobResponse`), panicking with the body otherwise.
    #[track_caller]
    pub fn job(&self) -> friend_protocol::JobDetails {
        assert_eq!(self.status, 200, "{}", self.text());
        self.json::<friend_protocol::JobResponse>().job
    }
}

/// Asserts a refusal: its status and code, and — when `rule` is given — that the message starts
/// with the rule's code (e.g. `not_agreed` for `negotiation_refused`).
#[track_caller]
pub fn assert_refused(r: &Reply, status: u16, code: &str, rule: Option<&str>) {
    assert_eq!(
        (r.status, r.code().as_str()),
        (status, code),
        "{}",
        r.text()
    );
    if let Some(rule) = rule {
        let v: serde_json::Value = r.json();
        let message = v["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {}", r.text()));
        assert!(
            message.starts_with(rule),
            "expected {rule}, got {message:?}"
        );
    }
}

/// [`assert_refused`] for one case of a table: `what` names the case in every failure, and the
/// message must start with `rule` (`""` accepts any message).
#[track_caller]
pub fn assert_case_refused(what: &str, r: &Reply, status: u16, code: &str, rule: &str) {
    assert_eq!(
        (r.status, r.code().as_str()),
        (status, code),
        "{what}: {}",
        r.text()
    );
    let v: serde_json::Value = r.json();
    let message = v["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no message in {}", r.text()));
    assert!(message.starts_with(rule), "{what}: {}", r.text());
}

/// A raw HTTP client against one backend.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    /// A client for `base` (loopback only), HTTP/1.1 as phones speak it.
    pub fn new(base: &str) -> Http {
        Http::with(base, reqwest::Client::builder().pool_max_idle_per_host(256))
    }

    /// A client for `base` speaking HTTP/2 by prior knowledge, as a load balancer in front of the
    /// instances does: every request a stream of one connection.
    pub fn http2(base: &str) -> Http {
        Http::with(base, reqwest::Client::builder().http2_prior_knowledge())
    }

    fn with(base: &str, builder: reqwest::ClientBuilder) -> Http {
        install_crypto_provider();
        let client = builder
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|e| panic!("client: {e}"));
        Http {
            client,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request failed: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("body: {e}"))
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// GET `path` with an optional bearer token.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        self.send(req).await
    }

    /// POST a JSON body to `path`.
    pub async fn post<B: serde::Serialize>(
        &self,
        path: &str,
        token: &str,
        key: Option<&str>,
        body: &B,
    ) -> Reply {
        let mut req = self.client.post(format!("{}{path}", self.base)).json(body);
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        self.send(req).await
    }

    /// POST raw bytes with a content type.
    pub async fn post_raw(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .body(body);
        self.send(req).await
    }

    /// Any method without a body.
    pub async fn request(&self, method: reqwest::Method, path: &str, token: &str) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        self.send(req).await
    }

    /// Books a job and returns it, panicking on failure.
    pub async fn book(&self, customer: &TestAccount, req: &BookRequest) -> JobDetails {
        let key = uuid::Uuid::new_v4().to_string();
        let r = self
            .post("/v1/customer/jobs", &customer.token, Some(&key), req)
            .await;
        assert_eq!(r.status, 200, "booking failed: {}", r.text());
        r.json::<friend_protocol::JobResponse>().job
    }

    /// Accepts a job with an idempotency key.
    pub async fn accept(
        &self,
        friend: &TestAccount,
        job: friend_protocol::JobId,
        key: &str,
    ) -> Reply {
        self.post(
            &format!("/v1/friend/jobs/{job}/accept"),
            &friend.token,
            Some(key),
            &serde_json::json!({}),
        )
        .await
    }

    /// `GET /v1/sync` with optional cursor and wait.
    pub async fn sync(&self, account: &TestAccount, cursor: Option<&str>, wait: u32) -> Reply {
        let mut path = format!("/v1/sync?wait={wait}");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        self.get(&path, &account.token).await
    }
}

/// Waits for `f` to become true, polling with a short pause, up to `limit`; panics naming `what`.
/// For state observed from outside (never as synchronisation inside the system under test).
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
