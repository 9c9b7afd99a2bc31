//! Scenario builders for the end-to-end suites (after matrix-rust-sdk's `testing/matrix-sdk-test`):
//! a test names the stage its job starts at and gets the backend, both accounts, their device keys
//! and the job, so its body states only what is particular to it.
//!
//! The cast is fixed: Heidi, the customer, and Anna, a Friend living at Zürich main station
//! ([`friend_at`]); Heidi books the router setup at Oerlikon ([`booking_at`]). The stages build on
//! each other — booked, accepted (Anna wins), on site (Anna checked in), quoted (Anna proposed
//! version 1), agreed (Heidi accepted it), completed (at the agreed total) — and every step on the
//! way is asserted as a precondition: a broken step fails the builder with a message naming the step,
//! never a later assertion of the test.
//!
//! ```ignore
//! let s = Scenario::new().agreed(vec![router(8900)]).await;   // backend, Heidi, Anna, keys, job
//! let v2 = quote(s.job(), 2, vec![router(8900), item(TimeUnit, "15 minutes", 2, 500)]);
//! s.propose(Party::Friend, &v2).await;
//! ```
//!
//! Raw HTTP suites use the job helpers ([`Scenario::upload`], [`Scenario::complete`], [`Feed`], …);
//! core suites open real sessions for the same accounts ([`Scenario::friend_device`],
//! [`Scenario::proxy`], [`Scenario::won_by`]).

use crate::proxy::FaultProxy;
use crate::{
    Http, Reply, TestAccount, TestBackend, booking_at, friend_at, open_customer, open_friend,
    places, wait_until,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use friend_core::{AcceptResult, CustomerSession, FriendSession};
use friend_protocol::consent::{self, ConsentAction};
use friend_protocol::{
    AcceptOutcome, AccountId, BookRequest, Change, FriendJobView, JobDetails, JobId, JobState,
    Ledger, LineItem, LineItemKind, Money, NewFriend, Party, PaymentMethod, Quote, SyncPage,
};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;
use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

// ---- keys, quotes and signed consent ------------------------------------------------------------

/// A fresh Ed25519 device key.
pub fn device_key() -> Ed25519KeyPair {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .unwrap_or_else(|e| panic!("generating a device key: {e}"));
    Ed25519KeyPair::from_pkcs8(doc.as_ref())
        .unwrap_or_else(|e| panic!("reading the device key: {e}"))
}

/// A device key's public half as the backend lists it (standard base64).
pub fn public_key(key: &Ed25519KeyPair) -> String {
    STANDARD.encode(key.public_key().as_ref())
}

/// A line item priced in CHF minor units (Rappen).
pub fn item(kind: LineItemKind, description: &str, quantity: u32, chf_minor: i64) -> LineItem {
    LineItem {
        kind,
        description: description.into(),
        quantity,
        unit_price: Money::chf(chf_minor),
    }
}

/// The booked service ("Router installation", once) at `chf_minor`.
pub fn router(chf_minor: i64) -> LineItem {
    item(LineItemKind::Service, "Router installation", 1, chf_minor)
}

/// A valid quote (the total is the sum; no reason).
pub fn quote(job: JobId, version: u32, items: Vec<LineItem>) -> Quote {
    Quote::new(job, version, items, None)
        .unwrap_or_else(|e| panic!("test quote v{version} for {job} is invalid: {e}"))
}

/// `quote` signed as `signer` with `key`, encoded as the QR-sized payload.
pub fn sign(action: ConsentAction, signer: Party, quote: &Quote, key: &Ed25519KeyPair) -> String {
    consent::sign_payload(action, signer, quote, key)
        .unwrap_or_else(|e| panic!("signing {action:?} of v{}: {e}", quote.version))
        .encode()
}

/// `/v1/friend/jobs/{job}/{action}`.
pub fn friend_path(job: JobId, action: &str) -> String {
    format!("/v1/friend/jobs/{job}/{action}")
}

/// A CHF amount as JSON, for request bodies.
pub fn chf(minor: i64) -> serde_json::Value {
    json!({ "minor": minor, "currency": "CHF" })
}

/// Runs the futures `f` makes for `items` at the same moment — one task each, released together by
/// a barrier (the accept race) — and returns their outputs in the items' order.
pub async fn all_at_once<I, F, Fut>(items: I, f: F) -> Vec<Fut::Output>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let racers: Vec<Fut> = items.into_iter().map(f).collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(racers.len()));
    let tasks: Vec<_> = racers
        .into_iter()
        .map(|racer| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                racer.await
            })
        })
        .collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(
            task.await
                .unwrap_or_else(|e| panic!("a racing task failed: {e}")),
        );
    }
    outputs
}

/// The winner of one accept race: exactly one `Won` (whose job names the winner), every other
/// answer `Taken` — else the test fails, naming `round`.
pub fn sole_winner(round: usize, outcomes: Vec<(AccountId, AcceptOutcome)>) -> AccountId {
    let racers = outcomes.len();
    let mut winners = Vec::new();
    for (id, outcome) in outcomes {
        match outcome {
            AcceptOutcome::Won { job } => {
                assert_eq!(job.friend.as_ref().map(|f| f.id), Some(id), "round {round}");
                winners.push(id);
            }
            AcceptOutcome::Taken => {}
            other => panic!("round {round}: unexpected outcome {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "round {round}: {} winners among {racers} racers",
        winners.len()
    );
    winners[0]
}

// ---- sync positions -----------------------------------------------------------------------------

/// Syncs `who` from `cursor` (a snapshot without one) until no more pages; returns every change and
/// the final cursor.
pub async fn drain(http: &Http, who: &TestAccount, cursor: Option<&str>) -> (Vec<Change>, String) {
    let mut cursor = cursor.map(str::to_owned);
    let mut all = Vec::new();
    loop {
        let r = http.sync(who, cursor.as_deref(), 0).await;
        assert_eq!(r.status, 200, "sync: {}", r.text());
        let page: SyncPage = r.json();
        all.extend(page.changes);
        cursor = Some(page.cursor);
        if !page.more {
            return (all, cursor.unwrap_or_default());
        }
    }
}

/// An account's sync position: each step a test takes must reach the account as a delta.
pub struct Feed {
    http: Http,
    who: TestAccount,
    cursor: String,
}

impl Feed {
    /// Starts at the end of everything `who` can see now.
    pub async fn start(http: &Http, who: &TestAccount) -> Feed {
        let (_, cursor) = drain(http, who, None).await;
        Feed {
            http: http.clone(),
            who: who.clone(),
            cursor,
        }
    }

    /// The job as the next delta delivers it (panics when the delta does not contain it).
    pub async fn job(&mut self, id: JobId) -> JobDetails {
        let page: SyncPage = self
            .http
            .sync(&self.who, Some(&self.cursor), 0)
            .await
            .json();
        self.cursor = page.cursor;
        page.changes
            .into_iter()
            .find_map(|c| match c {
                Change::Job { job } if job.id == id => Some(*job),
                _ => None,
            })
            .unwrap_or_else(|| panic!("the delta sync did not deliver job {id}"))
    }
}

// ---- the builder ----------------------------------------------------------------------------------

/// How far the scenario's job gets before the test begins (each stage includes the ones before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    NoJob,
    Booked,
    Accepted,
    OnSite,
    Quoted,
    Agreed,
    Completed,
}

/// What a scenario starts from; `.await` it (or call [`ScenarioBuilder::build`]) to set it up.
#[must_use = "a scenario builder does nothing until awaited"]
pub struct ScenarioBuilder {
    friend: NewFriend,
    booking: BookRequest,
    keys: bool,
    stage: Stage,
    items: Vec<LineItem>,
    payment: PaymentMethod,
}

impl ScenarioBuilder {
    /// Anna's profile (default: [`friend_at`] Zürich, every category, 30 km).
    pub fn with_friend(mut self, friend: NewFriend) -> Self {
        self.friend = friend;
        self
    }

    /// Heidi's booking (default: [`booking_at`] Oerlikon).
    pub fn with_booking(mut self, booking: BookRequest) -> Self {
        self.booking = booking;
        self
    }

    /// Both register a device key before the booking (implied from [`ScenarioBuilder::quoted`] on).
    pub fn with_keys(mut self) -> Self {
        self.keys = true;
        self
    }

    fn at_least(mut self, stage: Stage) -> Self {
        self.stage = self.stage.max(stage);
        self
    }

    /// Heidi booked the job.
    pub fn booked(self) -> Self {
        self.at_least(Stage::Booked)
    }

    /// …and Anna won it (idempotency key `accept`).
    pub fn accepted(self) -> Self {
        self.at_least(Stage::Accepted)
    }

    /// …and Anna checked in.
    pub fn on_site(self) -> Self {
        self.at_least(Stage::OnSite)
    }

    /// …and Anna proposed `items` as version 1, signed and uploaded by her.
    pub fn quoted(mut self, items: Vec<LineItem>) -> Self {
        self.items = items;
        self.keys = true;
        self.at_least(Stage::Quoted)
    }

    /// …and Heidi accepted that version (signed and uploaded by her): the price is agreed.
    pub fn agreed(self, items: Vec<LineItem>) -> Self {
        self.quoted(items).at_least(Stage::Agreed)
    }

    /// …and Anna completed the job at the agreed total, paid by `payment` (after
    /// [`ScenarioBuilder::agreed`]).
    pub fn completed(mut self, payment: PaymentMethod) -> Self {
        assert!(
            self.stage >= Stage::Agreed,
            "completed() needs agreed(items) before it: there is no total to complete at"
        );
        self.payment = payment;
        self.at_least(Stage::Completed)
    }

    /// Starts the backend and brings the job to the chosen stage, asserting every step.
    pub async fn build(self) -> Scenario {
        let tb = TestBackend::start().await;
        let http = tb.http();
        let customer = tb.customer("Heidi").await;
        let friend = tb.friend(self.friend).await;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("scenario tempdir: {e}"));
        let mut s = Scenario {
            tb,
            http,
            customer,
            friend,
            customer_key: device_key(),
            friend_key: device_key(),
            job: None,
            quote: None,
            proposal: None,
            dir,
        };
        if self.keys {
            s.register(&s.customer, &s.customer_key).await;
            s.register(&s.friend, &s.friend_key).await;
        }
        if self.stage < Stage::Booked {
            return s;
        }
        let job = s.tb.book(&s.customer, &self.booking).await.id;
        s.job = Some(job);
        if self.stage >= Stage::Accepted {
            s.accept(job, "accept").await;
        }
        if self.stage >= Stage::OnSite {
            let r = s.friend_post(job, "check-in", json!({})).await;
            assert_eq!(r.status, 200, "scenario: Anna's check-in: {}", r.text());
        }
        if self.stage >= Stage::Quoted {
            let v1 = quote(job, 1, self.items);
            let proposal = s.sign(ConsentAction::Propose, Party::Friend, &v1);
            let r = s.upload(&s.friend, &proposal).await;
            assert_eq!(r.status, 200, "scenario: Anna's proposal: {}", r.text());
            s.quote = Some(v1);
            s.proposal = Some(proposal);
        }
        if self.stage >= Stage::Agreed {
            let agreed = s.accept_quote(Party::Customer, s.quote()).await;
            assert_eq!(
                agreed.state,
                JobState::Agreed,
                "scenario: Heidi's acceptance did not agree the price"
            );
        }
        if self.stage >= Stage::Completed {
            let payment = serde_json::to_value(self.payment).unwrap();
            let total = serde_json::to_value(s.quote().total).unwrap();
            let r = s
                .friend_post(
                    job,
                    "complete",
                    json!({ "payment": payment, "total": total }),
                )
                .await;
            assert_eq!(r.status, 200, "scenario: Anna's completion: {}", r.text());
            assert_eq!(
                r.job().state,
                JobState::Completed,
                "scenario: the completion did not complete the job"
            );
        }
        s
    }
}

impl IntoFuture for ScenarioBuilder {
    type Output = Scenario;
    type IntoFuture = Pin<Box<dyn Future<Output = Scenario> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.build())
    }
}

// ---- the scenario ---------------------------------------------------------------------------------

/// A running backend with Heidi (customer) and Anna (Friend), their device keys, and — from
/// [`ScenarioBuilder::booked`] on — Heidi's job.
pub struct Scenario {
    /// The backend (clock, expiry, accounts, bookings).
    pub tb: TestBackend,
    /// A raw client for it.
    pub http: Http,
    /// Heidi.
    pub customer: TestAccount,
    /// Anna.
    pub friend: TestAccount,
    /// Heidi's device key (registered with [`ScenarioBuilder::with_keys`]).
    pub customer_key: Ed25519KeyPair,
    /// Anna's device key (registered with [`ScenarioBuilder::with_keys`]).
    pub friend_key: Ed25519KeyPair,
    job: Option<JobId>,
    quote: Option<Quote>,
    proposal: Option<String>,
    dir: tempfile::TempDir,
}

impl Scenario {
    /// A builder for Heidi, Anna and a backend; name the stage and `.await` it.
    #[allow(clippy::new_ret_no_self)] // `Scenario::new().on_site().await` reads as the test's given
    pub fn new() -> ScenarioBuilder {
        ScenarioBuilder {
            friend: friend_at("Anna", places::ZURICH),
            booking: booking_at(places::OERLIKON),
            keys: false,
            stage: Stage::NoJob,
            items: Vec::new(),
            payment: PaymentMethod::Cash,
        }
    }

    /// The scenario's job.
    #[track_caller]
    pub fn job(&self) -> JobId {
        self.job
            .unwrap_or_else(|| panic!("the scenario has no job: build it with .booked() or later"))
    }

    /// The version 1 quote Anna proposed.
    #[track_caller]
    pub fn quote(&self) -> &Quote {
        self.quote.as_ref().unwrap_or_else(|| {
            panic!("the scenario has no quote: build it with .quoted(..) or later")
        })
    }

    /// The signed payload of that proposal, as Anna uploaded it.
    #[track_caller]
    pub fn proposal(&self) -> &str {
        self.proposal.as_deref().unwrap_or_else(|| {
            panic!("the scenario has no proposal: build it with .quoted(..) or later")
        })
    }

    /// Heidi's or Anna's account.
    pub fn account(&self, party: Party) -> &TestAccount {
        match party {
            Party::Customer => &self.customer,
            Party::Friend => &self.friend,
            other => panic!("no account in the scenario for {other:?}"),
        }
    }

    /// Heidi's or Anna's device key.
    pub fn key(&self, party: Party) -> &Ed25519KeyPair {
        match party {
            Party::Customer => &self.customer_key,
            Party::Friend => &self.friend_key,
            other => panic!("no device key in the scenario for {other:?}"),
        }
    }

    /// `quote` signed as `signer` with that party's device key.
    pub fn sign(&self, action: ConsentAction, signer: Party, quote: &Quote) -> String {
        sign(action, signer, quote, self.key(signer))
    }

    /// Registers `key` for `who` (`POST /v1/keys`, asserted); returns the account's keys.
    pub async fn register(&self, who: &TestAccount, key: &Ed25519KeyPair) -> Vec<String> {
        let r = self
            .http
            .post(
                "/v1/keys",
                &who.token,
                None,
                &json!({ "public_key": public_key(key) }),
            )
            .await;
        assert_eq!(r.status, 200, "registering a device key: {}", r.text());
        let v: serde_json::Value = r.json();
        serde_json::from_value(v["keys"].clone())
            .unwrap_or_else(|e| panic!("no key list ({e}): {}", r.text()))
    }

    /// Another Friend at Zürich (no key registered).
    pub async fn friend_named(&self, name: &str) -> TestAccount {
        self.tb.friend(friend_at(name, places::ZURICH)).await
    }

    /// Another customer (no key registered).
    pub async fn customer_named(&self, name: &str) -> TestAccount {
        self.tb.customer(name).await
    }

    /// Another account of the same kind with a device key registered.
    pub async fn with_key(&self, who: TestAccount) -> (TestAccount, Ed25519KeyPair) {
        let key = device_key();
        self.register(&who, &key).await;
        (who, key)
    }

    /// Heidi books another router setup at Oerlikon.
    pub async fn book(&self) -> JobDetails {
        self.tb
            .book(&self.customer, &booking_at(places::OERLIKON))
            .await
    }

    /// Anna accepts `job` with the idempotency key `key` and wins it (asserted).
    pub async fn accept(&self, job: JobId, key: &str) {
        let r = self.http.accept(&self.friend, job, key).await;
        assert_eq!(r.status, 200, "Anna's accept of {job}: {}", r.text());
        assert!(
            matches!(r.json(), AcceptOutcome::Won { .. }),
            "Anna did not win {job}: {}",
            r.text()
        );
    }

    /// Heidi books another job and Anna wins it with the idempotency key `key` (asserted).
    pub async fn book_accepted(&self, key: &str) -> JobId {
        let job = self.book().await.id;
        self.accept(job, key).await;
        job
    }

    /// Starts a long poll (`wait=30`) of `who` from `cursor` in the background.
    pub fn long_poll(&self, who: &TestAccount, cursor: &str) -> tokio::task::JoinHandle<Reply> {
        let (http, who, cursor) = (self.http.clone(), who.clone(), cursor.to_owned());
        tokio::spawn(async move { http.sync(&who, Some(&cursor), 30).await })
    }

    /// Waits until `n` long polls are waiting on the backend (at most 10 s, else the test fails).
    pub async fn until_polls_wait(&self, n: usize) {
        let backend = self.tb.backend.clone();
        wait_until(
            &format!("{n} long-polls to be waiting"),
            Duration::from_secs(10),
            || {
                let waiting = backend.waiting_accounts();
                async move { waiting == n }
            },
        )
        .await;
    }

    // ---- the job over raw HTTP ----

    /// Anna posts `body` to `/v1/friend/jobs/{job}/{action}` (no idempotency key).
    pub async fn friend_post(&self, job: JobId, action: &str, body: serde_json::Value) -> Reply {
        self.http
            .post(&friend_path(job, action), &self.friend.token, None, &body)
            .await
    }

    /// Anna completes the scenario's job: `payment` as the wire names it, `total` as JSON.
    pub async fn complete(&self, payment: &str, total: serde_json::Value) -> Reply {
        self.friend_post(
            self.job(),
            "complete",
            json!({ "payment": payment, "total": total }),
        )
        .await
    }

    /// `by` uploads a consent payload for the scenario's job.
    pub async fn upload(&self, by: &TestAccount, payload: &str) -> Reply {
        self.upload_to(self.job(), by, payload).await
    }

    /// `by` uploads a consent payload for `job`.
    pub async fn upload_to(&self, job: JobId, by: &TestAccount, payload: &str) -> Reply {
        self.http
            .post(
                &format!("/v1/jobs/{job}/consent"),
                &by.token,
                None,
                &json!({ "payload": payload }),
            )
            .await
    }

    /// `by` proposes `quote`, signed and uploaded by that party (asserted); returns the job.
    pub async fn propose(&self, by: Party, quote: &Quote) -> JobDetails {
        let payload = self.sign(ConsentAction::Propose, by, quote);
        self.upload_to(quote.job_id, self.account(by), &payload)
            .await
            .job()
    }

    /// `by` accepts `quote`, signed and uploaded by that party (asserted); returns the job.
    pub async fn accept_quote(&self, by: Party, quote: &Quote) -> JobDetails {
        let payload = self.sign(ConsentAction::Accept, by, quote);
        self.upload_to(quote.job_id, self.account(by), &payload)
            .await
            .job()
    }

    /// `by` rejects `version` of the scenario's job.
    pub async fn reject(&self, by: &TestAccount, version: u64) -> Reply {
        self.http
            .post(
                &format!("/v1/jobs/{}/reject", self.job()),
                &by.token,
                None,
                &json!({ "version": version }),
            )
            .await
    }

    /// `by` rates the scenario's job with `body`.
    pub async fn rate(&self, by: &TestAccount, body: serde_json::Value) -> Reply {
        self.http
            .post(
                &format!("/v1/customer/jobs/{}/rate", self.job()),
                &by.token,
                None,
                &body,
            )
            .await
    }

    /// Heidi cancels `job`.
    pub async fn cancel(&self, job: JobId) -> Reply {
        self.http
            .post(
                &format!("/v1/customer/jobs/{job}/cancel"),
                &self.customer.token,
                None,
                &json!({}),
            )
            .await
    }

    /// `job` as Heidi reads it from the server (asserted 200).
    pub async fn customer_view(&self, job: JobId) -> JobDetails {
        let r = self
            .http
            .get(&format!("/v1/customer/jobs/{job}"), &self.customer.token)
            .await;
        assert_eq!(r.status, 200, "Heidi's view of {job}: {}", r.text());
        r.json()
    }

    /// `job` as Anna reads it from the server.
    pub async fn friend_view(&self, job: JobId) -> FriendJobView {
        self.http
            .get(&format!("/v1/friend/jobs/{job}"), &self.friend.token)
            .await
            .json()
    }

    /// Anna's ledger.
    pub async fn ledger(&self) -> Ledger {
        self.http
            .get("/v1/friend/ledger", &self.friend.token)
            .await
            .json()
    }

    /// `who`'s sync position from now on.
    pub async fn feed(&self, who: &TestAccount) -> Feed {
        Feed::start(&self.http, who).await
    }

    // ---- devices (the real core) ----

    /// A database path in the scenario's temporary directory.
    pub fn db(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A fault proxy in front of the backend.
    pub async fn proxy(&self) -> FaultProxy {
        let upstream = self
            .tb
            .base_url
            .trim_start_matches("http://")
            .parse()
            .unwrap_or_else(|e| panic!("backend address {}: {e}", self.tb.base_url));
        FaultProxy::start(upstream).await
    }

    /// Anna's device: a Friend session on `anna.db` talking to `base_url` (the backend's, or a
    /// proxy's).
    pub async fn friend_device(&self, base_url: &str) -> FriendSession {
        open_friend(base_url, &self.friend, &self.db("anna.db")).await
    }

    /// Heidi's device: a customer session on `heidi.db` talking to `base_url`.
    pub async fn customer_device(&self, base_url: &str) -> CustomerSession {
        open_customer(base_url, &self.customer, &self.db("heidi.db")).await
    }

    /// Heidi books a job; `session` syncs and wins it (asserted).
    pub async fn won_by(&self, session: &FriendSession) -> JobId {
        let job = self.book().await.id;
        session
            .sync_once()
            .await
            .unwrap_or_else(|e| panic!("the Friend's sync before the accept: {e}"));
        let outcome = session
            .accept(job)
            .await
            .unwrap_or_else(|e| panic!("the Friend's accept: {e}"));
        assert!(
            matches!(outcome, AcceptResult::Won(_)),
            "the Friend did not win the job: {outcome:?}"
        );
        job
    }
}
