//! On-site negotiation over real HTTP (SPEC §2, §3, §7): device keys, signed consent uploaded by
//! either party, amendments, completion at the agreed total, the ledger, rating, and the unhappy
//! paths — forged or misdirected consent, strangers, cancelled jobs, money edges, escalation and the
//! unsuccessful check-out. Every refusal is a typed 4xx, and a refused step stores nothing.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use friend_protocol::consent::{self, ConsentAction, ConsentPayload};
use friend_protocol::negotiation::{Answer, Status};
use friend_protocol::{
    Change, Currency, FriendJobView, JobDetails, JobId, JobOutcome, JobResponse, JobState, Ledger,
    LedgerDirection, LedgerEntry, LedgerStatus, LineItem, LineItemKind, Money, Party,
    PaymentMethod, Quote, Role, SyncPage, UnsuccessfulReason,
};
use friend_tests::{Http, Reply, TestAccount, TestBackend, booking_at, friend_at, places};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;

// ---- helpers -------------------------------------------------------------------------------

fn device_key() -> Ed25519KeyPair {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap()
}

fn public(key: &Ed25519KeyPair) -> String {
    STANDARD.encode(key.public_key().as_ref())
}

fn item(kind: LineItemKind, description: &str, quantity: u32, minor: i64) -> LineItem {
    LineItem {
        kind,
        description: description.into(),
        quantity,
        unit_price: Money::chf(minor),
    }
}

fn quote(job: JobId, version: u32, items: Vec<LineItem>) -> Quote {
    Quote::new(job, version, items, None).unwrap()
}

fn sign(action: ConsentAction, signer: Party, quote: &Quote, key: &Ed25519KeyPair) -> String {
    consent::sign_payload(action, signer, quote, key)
        .unwrap()
        .encode()
}

/// Asserts a refusal: status, code, and (optionally) the rule's code leading the message.
#[track_caller]
fn refused(r: &Reply, status: u16, code: &str, rule: Option<&str>) {
    assert_eq!(
        (r.status, r.code().as_str()),
        (status, code),
        "{}",
        r.text()
    );
    if let Some(rule) = rule {
        let v: serde_json::Value = r.json();
        let message = v["message"].as_str().unwrap();
        assert!(
            message.starts_with(rule),
            "expected {rule}, got {message:?}"
        );
    }
}

#[track_caller]
fn job_of(r: &Reply) -> JobDetails {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json::<JobResponse>().job
}

/// A customer's (or Friend's) sync position: each step must reach them as a delta.
struct Feed {
    http: Http,
    who: TestAccount,
    cursor: String,
}

impl Feed {
    async fn start(http: &Http, who: &TestAccount) -> Feed {
        let mut cursor = None;
        loop {
            let page: SyncPage = http.sync(who, cursor.as_deref(), 0).await.json();
            cursor = Some(page.cursor);
            if !page.more {
                break;
            }
        }
        Feed {
            http: http.clone(),
            who: who.clone(),
            cursor: cursor.unwrap(),
        }
    }

    /// The job as the next delta delivers it (panics when the delta does not contain it).
    async fn job(&mut self, id: JobId) -> JobDetails {
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

/// A job on site: Heidi booked it, Anna accepted and checked in; both registered a device key.
struct OnSite {
    tb: TestBackend,
    http: Http,
    heidi: TestAccount,
    anna: TestAccount,
    heidi_key: Ed25519KeyPair,
    anna_key: Ed25519KeyPair,
    job: JobId,
}

impl OnSite {
    async fn start() -> OnSite {
        let tb = TestBackend::start().await;
        let http = tb.http();
        let heidi = tb.customer("Heidi").await;
        let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
        let heidi_key = device_key();
        let anna_key = device_key();
        register(&http, &heidi, &heidi_key).await;
        register(&http, &anna, &anna_key).await;
        let job = tb.book(&heidi, &booking_at(places::OERLIKON)).await.id;
        assert_eq!(http.accept(&anna, job, "accept").await.status, 200);
        let r = http
            .post(&path(job, "check-in"), &anna.token, None, &json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        OnSite {
            tb,
            http,
            heidi,
            anna,
            heidi_key,
            anna_key,
            job,
        }
    }

    async fn upload(&self, by: &TestAccount, payload: &str) -> Reply {
        upload(&self.http, by, self.job, payload).await
    }

    async fn customer_view(&self) -> JobDetails {
        let r = self
            .http
            .get(
                &format!("/v1/customer/jobs/{}", self.job),
                &self.heidi.token,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    async fn complete(&self, payment: &str, total: serde_json::Value) -> Reply {
        self.http
            .post(
                &path(self.job, "complete"),
                &self.anna.token,
                None,
                &json!({ "payment": payment, "total": total }),
            )
            .await
    }
}

fn path(job: JobId, action: &str) -> String {
    format!("/v1/friend/jobs/{job}/{action}")
}

async fn register(http: &Http, who: &TestAccount, key: &Ed25519KeyPair) -> Vec<String> {
    let r = http
        .post(
            "/v1/keys",
            &who.token,
            None,
            &json!({ "public_key": public(key) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = r.json();
    serde_json::from_value(v["keys"].clone()).unwrap()
}

async fn upload(http: &Http, by: &TestAccount, job: JobId, payload: &str) -> Reply {
    http.post(
        &format!("/v1/jobs/{job}/consent"),
        &by.token,
        None,
        &json!({ "payload": payload }),
    )
    .await
}

fn chf(minor: i64) -> serde_json::Value {
    json!({ "minor": minor, "currency": "CHF" })
}

// ---- the happy path ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propose_counter_accept_amend_complete_ledger_and_rate() {
    let tb = TestBackend::start().await;
    let http = tb.http();
    let heidi = tb.customer("Heidi").await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let heidi_key = device_key();
    let anna_key = device_key();
    let job = tb.book(&heidi, &booking_at(places::OERLIKON)).await.id;
    assert_eq!(http.accept(&anna, job, "accept").await.status, 200);
    let mut heidi_feed = Feed::start(&http, &heidi).await;

    // Keys registered after the accept reach the other party with the job.
    let keys = register(&http, &heidi, &heidi_key).await;
    assert_eq!(keys, vec![public(&heidi_key)]);
    assert_eq!(
        register(&http, &heidi, &heidi_key).await,
        keys,
        "idempotent"
    );
    register(&http, &anna, &anna_key).await;
    let seen = heidi_feed.job(job).await;
    assert_eq!(seen.keys.customer, vec![public(&heidi_key)]);
    assert_eq!(seen.keys.friend, vec![public(&anna_key)]);
    assert!(seen.negotiation.is_none());

    // Nothing can be negotiated before the Friend is on site, nor completed before agreement.
    let v1 = quote(
        job,
        1,
        vec![
            item(LineItemKind::Service, "Router installation", 1, 8900),
            item(LineItemKind::Material, "LAN cable 5 m", 1, 1250),
        ],
    );
    let p1 = sign(ConsentAction::Propose, Party::Friend, &v1, &anna_key);
    refused(
        &upload(&http, &anna, job, &p1).await,
        409,
        "invalid_transition",
        None,
    );
    let r = http
        .post(&path(job, "check-in"), &anna.token, None, &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    heidi_feed.job(job).await;
    let r = http
        .post(
            &path(job, "complete"),
            &anna.token,
            None,
            &json!({"payment": "cash", "total": chf(10150)}),
        )
        .await;
    refused(&r, 409, "negotiation_refused", Some("not_agreed"));

    // 1. Anna proposes CHF 101.50.
    let after = job_of(&upload(&http, &anna, job, &p1).await);
    let n = after.negotiation.unwrap();
    assert_eq!(
        n.state.status(),
        Status::Pending {
            version: 1,
            by: Party::Friend
        }
    );
    let seen = heidi_feed.job(job).await;
    let n = seen.negotiation.clone().unwrap();
    assert_eq!(
        n.state.status(),
        Status::Pending {
            version: 1,
            by: Party::Friend
        }
    );
    let latest = n.latest.unwrap();
    assert_eq!(
        (latest.quote.clone(), latest.proposed_by, latest.answer),
        (v1.clone(), Party::Friend, Answer::Pending)
    );
    // Heidi's app verifies Anna's proposal offline against the key the job carries.
    let payload = ConsentPayload::decode(&latest.proposal).unwrap();
    let friend_key = seen.keys.of(Party::Friend)[0];
    let verified = consent::verify(&payload, job, Party::Friend, &friend_key, None).unwrap();
    assert_eq!(verified.quote, v1);

    // 2. Heidi counter-proposes CHF 79.00.
    let v2 = quote(
        job,
        2,
        vec![
            item(LineItemKind::Service, "Router installation", 1, 8900),
            item(LineItemKind::Discount, "Own cable", 1, -1000),
        ],
    );
    let p2 = sign(ConsentAction::Propose, Party::Customer, &v2, &heidi_key);
    job_of(&upload(&http, &heidi, job, &p2).await);
    let n = heidi_feed.job(job).await.negotiation.unwrap();
    assert_eq!(
        n.state.status(),
        Status::Pending {
            version: 2,
            by: Party::Customer
        }
    );

    // 3. Anna accepts on her phone, offline; Heidi uploads the acceptance (and retries it).
    let a2 = sign(ConsentAction::Accept, Party::Friend, &v2, &anna_key);
    let agreed = job_of(&upload(&http, &heidi, job, &a2).await);
    assert_eq!(agreed.state, JobState::Agreed);
    let retried = job_of(&upload(&http, &heidi, job, &a2).await);
    assert_eq!(retried.version, agreed.version, "a retry changes nothing");
    let seen = heidi_feed.job(job).await;
    assert_eq!(seen.state, JobState::Agreed);
    let n = seen.negotiation.unwrap();
    assert_eq!(
        n.state.status(),
        Status::Agreed {
            version: 2,
            total: Money::chf(7900)
        }
    );
    let agreed_record = n.agreed.unwrap();
    assert_eq!(agreed_record.acceptance.as_deref(), Some(a2.as_str()));
    assert_eq!(agreed_record.proposal, p2);

    // 4. More work: Anna amends to CHF 104.03; completion waits for Heidi's answer.
    let v3 = quote(
        job,
        3,
        vec![
            item(LineItemKind::Service, "Router installation", 1, 8900),
            item(LineItemKind::Discount, "Own cable", 1, -1000),
            item(
                LineItemKind::ExtraService,
                "Wi-Fi repeater in the bedroom",
                1,
                2503,
            ),
        ],
    );
    let p3 = sign(ConsentAction::Propose, Party::Friend, &v3, &anna_key);
    job_of(&upload(&http, &anna, job, &p3).await);
    let n = heidi_feed.job(job).await.negotiation.unwrap();
    assert_eq!(
        n.state.status(),
        Status::AgreedWithPendingAmendment {
            agreed_version: 2,
            agreed_total: Money::chf(7900),
            pending_version: 3,
            by: Party::Friend
        }
    );
    let r = http
        .post(
            &path(job, "complete"),
            &anna.token,
            None,
            &json!({"payment": "cash", "total": chf(7900)}),
        )
        .await;
    refused(&r, 409, "negotiation_refused", Some("amendment_pending"));

    // 5. Heidi accepts the amendment.
    let a3 = sign(ConsentAction::Accept, Party::Customer, &v3, &heidi_key);
    job_of(&upload(&http, &heidi, job, &a3).await);
    let n = heidi_feed.job(job).await.negotiation.unwrap();
    assert_eq!(
        n.state.status(),
        Status::Agreed {
            version: 3,
            total: Money::chf(10403)
        }
    );

    // 6. Completion only at the agreed total.
    for (what, total) in [
        ("the old total", chf(7900)),
        ("zero", chf(0)),
        (
            "another currency",
            json!({"minor": 10403, "currency": "EUR"}),
        ),
        (
            "an unknown currency",
            json!({"minor": 10403, "currency": "XBT"}),
        ),
        ("a huge total", chf(i64::MAX)),
    ] {
        let r = http
            .post(
                &path(job, "complete"),
                &anna.token,
                None,
                &json!({"payment": "cash", "total": total}),
            )
            .await;
        assert_eq!(r.status, 409, "{what}: {}", r.text());
        refused(&r, 409, "negotiation_refused", Some("total_not_agreed"));
    }
    let body = json!({"payment": "cash", "total": chf(10403)});
    let done = job_of(
        &http
            .post(&path(job, "complete"), &anna.token, None, &body)
            .await,
    );
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.payment, Some(PaymentMethod::Cash));
    assert_eq!(done.final_total, Some(Money::chf(10403)));
    let s = done.settlement.unwrap();
    // Cash is rounded to CHF 0.05; the fee is 15 % of what was charged (1560.75 → 1561).
    assert_eq!(
        (s.charged, s.fee, s.payout),
        (Money::chf(10405), Money::chf(1561), Money::chf(8844))
    );
    let again = job_of(
        &http
            .post(&path(job, "complete"), &anna.token, None, &body)
            .await,
    );
    assert_eq!(
        again.version, done.version,
        "a repeated completion changes nothing"
    );
    let seen = heidi_feed.job(job).await;
    assert_eq!(
        (seen.state, seen.final_total),
        (JobState::Completed, Some(Money::chf(10403)))
    );

    // 7. The ledger: Anna owes the fee for the cash job; the admin moves it forward only.
    let ledger: Ledger = http.get("/v1/friend/ledger", &anna.token).await.json();
    assert_eq!(ledger.entries.len(), 1);
    let e = &ledger.entries[0];
    assert_eq!(
        (e.job_id, e.method, e.direction, e.status),
        (
            job,
            PaymentMethod::Cash,
            LedgerDirection::FriendOwesFee,
            LedgerStatus::Pending
        )
    );
    assert_eq!(
        (e.total, e.charged, e.fee, e.payout),
        (
            Money::chf(10403),
            Money::chf(10405),
            Money::chf(1561),
            Money::chf(8844)
        )
    );
    let admin = |status: &str| {
        let http = http.clone();
        let status = status.to_owned();
        async move {
            http.post(
                &format!("/v1/admin/ledger/{job}"),
                "test-admin",
                None,
                &json!({ "status": status }),
            )
            .await
        }
    };
    let to_pay: LedgerEntry = admin("to_pay").await.json();
    assert_eq!(to_pay.status, LedgerStatus::ToPay);
    assert!(to_pay.to_pay_at.is_some() && to_pay.paid_at.is_none());
    refused(&admin("pending").await, 409, "invalid_transition", None);
    refused(&admin("refunded").await, 400, "invalid_input", None);
    let paid: LedgerEntry = admin("paid").await.json();
    assert_eq!(paid.status, LedgerStatus::Paid);
    assert!(paid.paid_at.is_some());
    assert_eq!(
        admin("paid").await.status,
        200,
        "the same status again is a no-op"
    );
    refused(&admin("to_pay").await, 409, "invalid_transition", None);
    let r = http
        .post(
            &format!("/v1/admin/ledger/{job}"),
            &anna.token,
            None,
            &json!({"status": "paid"}),
        )
        .await;
    refused(&r, 401, "unauthorized", None);
    let ledger: Ledger = http.get("/v1/friend/ledger", &anna.token).await.json();
    assert_eq!(ledger.entries[0].status, LedgerStatus::Paid);
    let r = http.get("/v1/friend/ledger", &heidi.token).await;
    refused(&r, 403, "forbidden", None);

    // 8. Heidi rates once; Anna sees the rating.
    let rate = format!("/v1/customer/jobs/{job}/rate");
    let rated = job_of(
        &http
            .post(
                &rate,
                &heidi.token,
                None,
                &json!({"stars": 5, "comment": "Super, danke!"}),
            )
            .await,
    );
    assert_eq!(rated.rating, Some(5));
    let r = http
        .post(&rate, &heidi.token, None, &json!({"stars": 4}))
        .await;
    refused(&r, 409, "already_rated", None);
    let r = http
        .post(
            &rate,
            &heidi.token,
            None,
            &json!({"stars": 5, "comment": "Super, danke!"}),
        )
        .await;
    refused(&r, 409, "already_rated", None);
    match http
        .get(&format!("/v1/friend/jobs/{job}"), &anna.token)
        .await
        .json()
    {
        FriendJobView::Full(j) => assert_eq!((j.rating, j.state), (Some(5), JobState::Completed)),
        other => panic!("{other:?}"),
    }

    // 9. A completed job takes no more consent.
    let v4 = quote(
        job,
        4,
        vec![item(LineItemKind::Service, "Router installation", 1, 100)],
    );
    let p4 = sign(ConsentAction::Propose, Party::Friend, &v4, &anna_key);
    refused(
        &upload(&http, &anna, job, &p4).await,
        409,
        "job_closed",
        None,
    );
    // …but an earlier upload retried from an outbox still gets its success answer.
    assert_eq!(upload(&http, &anna, job, &p3).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_amendment_leaves_the_agreement_in_force() {
    let s = OnSite::start().await;
    let v1 = quote(
        s.job,
        1,
        vec![item(LineItemKind::Service, "Router installation", 1, 8900)],
    );
    job_of(
        &s.upload(
            &s.anna,
            &sign(ConsentAction::Propose, Party::Friend, &v1, &s.anna_key),
        )
        .await,
    );
    job_of(
        &s.upload(
            &s.heidi,
            &sign(ConsentAction::Accept, Party::Customer, &v1, &s.heidi_key),
        )
        .await,
    );
    let v2 = quote(
        s.job,
        2,
        vec![
            item(LineItemKind::Service, "Router installation", 1, 8900),
            item(LineItemKind::TimeUnit, "15 minutes", 2, 500),
        ],
    );
    job_of(
        &s.upload(
            &s.anna,
            &sign(ConsentAction::Propose, Party::Friend, &v2, &s.anna_key),
        )
        .await,
    );

    let reject = format!("/v1/jobs/{}/reject", s.job);
    // Anna cannot reject her own amendment, nor anyone an older version.
    let r = s
        .http
        .post(&reject, &s.anna.token, None, &json!({"version": 2}))
        .await;
    refused(&r, 409, "negotiation_refused", Some("own_proposal"));
    let r = s
        .http
        .post(&reject, &s.heidi.token, None, &json!({"version": 1}))
        .await;
    refused(&r, 409, "negotiation_refused", Some("not_latest"));
    let rejected = job_of(
        &s.http
            .post(&reject, &s.heidi.token, None, &json!({"version": 2}))
            .await,
    );
    let again = job_of(
        &s.http
            .post(&reject, &s.heidi.token, None, &json!({"version": 2}))
            .await,
    );
    assert_eq!(
        again.version, rejected.version,
        "a repeated rejection changes nothing"
    );
    let n = rejected.negotiation.unwrap();
    assert_eq!(
        n.state.status(),
        Status::Agreed {
            version: 1,
            total: Money::chf(8900)
        }
    );
    assert_eq!(n.latest.unwrap().answer, Answer::Rejected);
    // Accepting the rejected amendment afterwards is refused.
    let a2 = sign(ConsentAction::Accept, Party::Customer, &v2, &s.heidi_key);
    refused(
        &s.upload(&s.heidi, &a2).await,
        409,
        "negotiation_refused",
        Some("nothing_pending"),
    );

    // Completed online at the agreed price: the platform owes Anna the payout.
    let done = job_of(&s.complete("online", chf(8900)).await);
    let settlement = done.settlement.unwrap();
    assert_eq!(
        (settlement.charged, settlement.fee),
        (Money::chf(8900), Money::chf(1335))
    );
    let ledger: Ledger = s.http.get("/v1/friend/ledger", &s.anna.token).await.json();
    assert_eq!(
        ledger.entries[0].direction,
        LedgerDirection::PlatformOwesPayout
    );
    assert_eq!(ledger.entries[0].payout, Money::chf(8900 - 1335));
    // A different completion of a completed job is refused.
    refused(
        &s.complete("cash", chf(8900)).await,
        409,
        "job_closed",
        None,
    );
}

// ---- unhappy paths -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_misdirected_consent_is_refused_and_nothing_is_stored() {
    let s = OnSite::start().await;
    let other_job = s.tb.book(&s.heidi, &booking_at(places::OERLIKON)).await.id;
    let luca = s.tb.friend(friend_at("Luca", places::ZURICH)).await;
    let luca_key = device_key();
    register(&s.http, &luca, &luca_key).await;

    let service = || item(LineItemKind::Service, "Router installation", 1, 8900);
    let v1 = quote(s.job, 1, vec![service()]);
    job_of(
        &s.upload(
            &s.anna,
            &sign(ConsentAction::Propose, Party::Friend, &v1, &s.anna_key),
        )
        .await,
    );
    let v2 = quote(
        s.job,
        2,
        vec![service(), item(LineItemKind::Discount, "Regular", 1, -900)],
    );
    job_of(
        &s.upload(
            &s.heidi,
            &sign(ConsentAction::Propose, Party::Customer, &v2, &s.heidi_key),
        )
        .await,
    );
    let before = s.customer_view().await;

    let v3 = quote(s.job, 3, vec![service()]);
    let good = sign(ConsentAction::Propose, Party::Friend, &v3, &s.anna_key);
    let bytes = URL_SAFE_NO_PAD.decode(&good).unwrap();
    let tampered = |i: usize| {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        URL_SAFE_NO_PAD.encode(b)
    };
    // The total's last byte (format, action, signer, job id, version, currency: 1+1+1+16+4+1).
    let price_byte = 1 + 1 + 1 + 16 + 4 + 1 + 7;
    let wrong_job = quote(other_job, 3, vec![service()]);
    let cases: Vec<(&str, String, &TestAccount, u16, &str, &str)> = vec![
        (
            "price changed after signing",
            tampered(price_byte),
            &s.anna,
            422,
            "invalid_consent",
            "bad_signature",
        ),
        (
            "signature changed",
            tampered(bytes.len() - 1),
            &s.heidi,
            422,
            "invalid_consent",
            "bad_signature",
        ),
        (
            "signer byte changed",
            tampered(2),
            &s.anna,
            422,
            "invalid_consent",
            "",
        ),
        (
            "payload for another job",
            sign(
                ConsentAction::Propose,
                Party::Friend,
                &wrong_job,
                &s.anna_key,
            ),
            &s.anna,
            422,
            "invalid_consent",
            "wrong_job",
        ),
        (
            "key not registered for the signer",
            sign(ConsentAction::Propose, Party::Friend, &v3, &device_key()),
            &s.anna,
            422,
            "invalid_consent",
            "key_not_registered",
        ),
        (
            "a stranger Friend signs as the job's Friend",
            sign(ConsentAction::Propose, Party::Friend, &v3, &luca_key),
            &s.heidi,
            422,
            "invalid_consent",
            "key_not_registered",
        ),
        (
            "the customer's key signs as the Friend",
            sign(ConsentAction::Propose, Party::Friend, &v3, &s.heidi_key),
            &s.anna,
            422,
            "invalid_consent",
            "key_not_registered",
        ),
        (
            "acceptance of a superseded version",
            sign(ConsentAction::Accept, Party::Customer, &v1, &s.heidi_key),
            &s.heidi,
            409,
            "negotiation_refused",
            "stale_version",
        ),
        (
            "a proposal reusing the latest version",
            sign(
                ConsentAction::Propose,
                Party::Friend,
                &quote(s.job, 2, vec![service()]),
                &s.anna_key,
            ),
            &s.anna,
            409,
            "negotiation_refused",
            "stale_version",
        ),
        (
            "a proposal skipping a version",
            sign(
                ConsentAction::Propose,
                Party::Friend,
                &quote(s.job, 4, vec![service()]),
                &s.anna_key,
            ),
            &s.anna,
            409,
            "negotiation_refused",
            "version_gap",
        ),
        (
            "accepting one's own proposal",
            sign(ConsentAction::Accept, Party::Customer, &v2, &s.heidi_key),
            &s.heidi,
            409,
            "negotiation_refused",
            "own_proposal",
        ),
        (
            "accepting other content than proposed",
            sign(
                ConsentAction::Accept,
                Party::Friend,
                &quote(s.job, 2, vec![service()]),
                &s.anna_key,
            ),
            &s.anna,
            422,
            "invalid_consent",
            "quote_mismatch",
        ),
        (
            "not base64",
            "not base64!".into(),
            &s.anna,
            422,
            "invalid_consent",
            "malformed_payload",
        ),
        (
            "empty",
            String::new(),
            &s.anna,
            422,
            "invalid_consent",
            "malformed_payload",
        ),
        (
            "truncated",
            good[..good.len() - 10].into(),
            &s.anna,
            422,
            "invalid_consent",
            "malformed_payload",
        ),
        (
            "too large",
            "A".repeat(5000),
            &s.anna,
            422,
            "invalid_consent",
            "payload_too_large",
        ),
    ];
    for (what, payload, by, status, code, rule) in cases {
        let r = s.upload(by, &payload).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "{what}: {}",
            r.text()
        );
        let v: serde_json::Value = r.json();
        assert!(
            v["message"].as_str().unwrap().starts_with(rule),
            "{what}: {}",
            r.text()
        );
    }
    let r = s
        .http
        .post(
            &format!("/v1/jobs/{}/consent", s.job),
            &s.anna.token,
            None,
            &json!({"payload": 42}),
        )
        .await;
    refused(&r, 400, "invalid_json", None);

    let after = s.customer_view().await;
    assert_eq!(after.negotiation, before.negotiation, "nothing was stored");
    assert_eq!(after.version, before.version);
    // The genuine proposal still goes through.
    let n = job_of(&s.upload(&s.anna, &good).await).negotiation.unwrap();
    assert_eq!(
        n.state.status(),
        Status::Pending {
            version: 3,
            by: Party::Friend
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_negotiate_or_finish_someone_elses_job() {
    let s = OnSite::start().await;
    let luca = s.tb.friend(friend_at("Luca", places::ZURICH)).await;
    let peter = s.tb.customer("Peter").await;
    let luca_key = device_key();
    let peter_key = device_key();
    register(&s.http, &luca, &luca_key).await;
    register(&s.http, &peter, &peter_key).await;
    let v1 = quote(
        s.job,
        1,
        vec![item(LineItemKind::Service, "Router installation", 1, 8900)],
    );
    let genuine = sign(ConsentAction::Propose, Party::Friend, &v1, &s.anna_key);
    let before = s.customer_view().await;

    for (who, key, party) in [
        (&luca, &luca_key, Party::Friend),
        (&peter, &peter_key, Party::Customer),
    ] {
        let own = sign(ConsentAction::Propose, party, &v1, key);
        for payload in [&genuine, &own] {
            refused(&s.upload(who, payload).await, 404, "not_found", None);
        }
        let r = s
            .http
            .post(
                &format!("/v1/jobs/{}/reject", s.job),
                &who.token,
                None,
                &json!({"version": 1}),
            )
            .await;
        refused(&r, 404, "not_found", None);
    }
    for (action, body) in [
        ("complete", json!({"payment": "cash", "total": chf(8900)})),
        ("escalate", json!({"note": "x"})),
        ("unsuccessful", json!({"reason": "customer_absent"})),
    ] {
        let r = s
            .http
            .post(&path(s.job, action), &luca.token, None, &body)
            .await;
        refused(&r, 404, "not_found", None);
        let r = s
            .http
            .post(&path(s.job, action), &s.heidi.token, None, &body)
            .await;
        refused(&r, 403, "forbidden", None);
    }
    let rate = format!("/v1/customer/jobs/{}/rate", s.job);
    refused(
        &s.http
            .post(&rate, &peter.token, None, &json!({"stars": 1}))
            .await,
        404,
        "not_found",
        None,
    );
    refused(
        &s.http
            .post(&rate, &s.anna.token, None, &json!({"stars": 5}))
            .await,
        403,
        "forbidden",
        None,
    );
    // An unknown job looks exactly like someone else's.
    let nowhere = JobId(uuid::Uuid::new_v4());
    refused(
        &upload(&s.http, &s.anna, nowhere, &genuine).await,
        404,
        "not_found",
        None,
    );
    assert_eq!(s.customer_view().await, before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_refuses_consent_and_completion() {
    let tb = TestBackend::start().await;
    let http = tb.http();
    let heidi = tb.customer("Heidi").await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let (heidi_key, anna_key) = (device_key(), device_key());
    register(&http, &heidi, &heidi_key).await;
    register(&http, &anna, &anna_key).await;
    let job = tb.book(&heidi, &booking_at(places::OERLIKON)).await.id;
    assert_eq!(http.accept(&anna, job, "accept").await.status, 200);
    // Anna signs a quote on her way (she is offline); Heidi cancels meanwhile.
    let v1 = quote(
        job,
        1,
        vec![item(LineItemKind::Service, "Router installation", 1, 8900)],
    );
    let p1 = sign(ConsentAction::Propose, Party::Friend, &v1, &anna_key);
    let cancelled = job_of(
        &http
            .post(
                &format!("/v1/customer/jobs/{job}/cancel"),
                &heidi.token,
                None,
                &json!({}),
            )
            .await,
    );
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled.cancelled_by, Some(Role::Customer));
    assert_eq!(
        cancelled.friend.as_ref().map(|f| f.id),
        Some(anna.id),
        "the job tells that a Friend was already assigned"
    );

    // Anna's outbox replays: every on-site action gets a definite, typed refusal.
    refused(
        &upload(&http, &anna, job, &p1).await,
        409,
        "job_closed",
        Some("the job is cancelled"),
    );
    let a1 = sign(ConsentAction::Accept, Party::Customer, &v1, &heidi_key);
    refused(
        &upload(&http, &heidi, job, &a1).await,
        409,
        "job_closed",
        None,
    );
    let r = http
        .post(
            &format!("/v1/jobs/{job}/reject"),
            &heidi.token,
            None,
            &json!({"version": 1}),
        )
        .await;
    refused(&r, 409, "job_closed", None);
    for (action, body) in [
        ("complete", json!({"payment": "cash", "total": chf(8900)})),
        ("escalate", json!({})),
        ("unsuccessful", json!({"reason": "customer_absent"})),
    ] {
        let r = http
            .post(&path(job, action), &anna.token, None, &body)
            .await;
        refused(&r, 409, "job_closed", None);
    }
    let r = http
        .post(
            &format!("/v1/customer/jobs/{job}/rate"),
            &heidi.token,
            None,
            &json!({"stars": 3}),
        )
        .await;
    refused(&r, 409, "invalid_transition", None);
    match http
        .get(&format!("/v1/friend/jobs/{job}"), &anna.token)
        .await
        .json()
    {
        FriendJobView::Full(j) => {
            assert_eq!(
                (j.state, j.negotiation, j.payment),
                (JobState::Cancelled, None, None)
            );
        }
        other => panic!("{other:?}"),
    }
    let ledger: Ledger = http.get("/v1/friend/ledger", &anna.token).await.json();
    assert!(ledger.entries.is_empty());
}

/// Anna is offline on site: her check-in and her signed proposal wait in her outbox, and Heidi,
/// handed the proposal on site, uploads it first. The proposal checks Anna in; her check-in,
/// replayed later, is answered with the job as it is, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_the_customer_uploads_before_the_check_in_arrives_checks_the_friend_in() {
    let tb = TestBackend::start().await;
    let http = tb.http();
    let heidi = tb.customer("Heidi").await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let (heidi_key, anna_key) = (device_key(), device_key());
    register(&http, &heidi, &heidi_key).await;
    register(&http, &anna, &anna_key).await;
    let job = tb.book(&heidi, &booking_at(places::OERLIKON)).await.id;
    assert_eq!(http.accept(&anna, job, "accept").await.status, 200);
    let v1 = quote(
        job,
        1,
        vec![item(LineItemKind::Service, "Router installation", 1, 8900)],
    );
    let p1 = sign(ConsentAction::Propose, Party::Friend, &v1, &anna_key);
    // Anna herself cannot skip the check-in...
    refused(
        &upload(&http, &anna, job, &p1).await,
        409,
        "invalid_transition",
        None,
    );
    // ...but the proposal Heidi was handed on site proves the arrival.
    let after = job_of(&upload(&http, &heidi, job, &p1).await);
    assert_eq!(after.state, JobState::OnSite);
    assert_eq!(
        after.negotiation.unwrap().state.status(),
        Status::Pending {
            version: 1,
            by: Party::Friend
        }
    );
    let a1 = sign(ConsentAction::Accept, Party::Customer, &v1, &heidi_key);
    assert_eq!(
        job_of(&upload(&http, &heidi, job, &a1).await).state,
        JobState::Agreed
    );

    // Anna back online: her outbox replays the check-in, then the proposal.
    let replayed = job_of(
        &http
            .post(
                &path(job, "check-in"),
                &anna.token,
                Some("anna-check-in"),
                &json!({}),
            )
            .await,
    );
    assert_eq!(
        (replayed.state, replayed.version),
        (JobState::Agreed, after.version + 1)
    );
    assert_eq!(
        job_of(&upload(&http, &anna, job, &p1).await).state,
        JobState::Agreed
    );
    // A customer's own proposal proves nothing about the Friend's arrival.
    let other = tb.book(&heidi, &booking_at(places::OERLIKON)).await.id;
    assert_eq!(http.accept(&anna, other, "accept-2").await.status, 200);
    let v2 = quote(
        other,
        1,
        vec![item(LineItemKind::Service, "Router installation", 1, 8900)],
    );
    let c1 = sign(ConsentAction::Propose, Party::Customer, &v2, &heidi_key);
    refused(
        &upload(&http, &heidi, other, &c1).await,
        409,
        "invalid_transition",
        None,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_edges_and_bad_input_are_typed_refusals_never_5xx() {
    let s = OnSite::start().await;
    let job = s.job;
    let service = |minor| item(LineItemKind::Service, "Router installation", 1, minor);
    let raw = |items: Vec<LineItem>, total: Money, reason: Option<&str>| Quote {
        job_id: job,
        version: 1,
        items,
        total,
        reason: reason.map(Into::into),
    };
    let eur = LineItem {
        unit_price: Money::new(8900, Currency::Eur),
        ..service(0)
    };
    let cases: Vec<(&str, Quote, &str)> = vec![
        (
            "currency mismatch",
            quote(job, 1, vec![eur.clone()]),
            "currency_mismatch",
        ),
        (
            "total not the sum",
            raw(vec![service(8900), service(100)], Money::chf(8900), None),
            "total_mismatch",
        ),
        (
            "total in another currency",
            raw(vec![service(8900)], Money::new(8900, Currency::Eur), None),
            "currency_mismatch",
        ),
        (
            "zero quantity",
            raw(
                vec![item(LineItemKind::Service, "Router", 0, 8900)],
                Money::chf(0),
                None,
            ),
            "zero_quantity",
        ),
        (
            "negative total",
            quote(
                job,
                1,
                vec![
                    service(100),
                    item(LineItemKind::Discount, "Too much", 1, -200),
                ],
            ),
            "negative_total",
        ),
        (
            "zero total",
            quote(
                job,
                1,
                vec![
                    service(100),
                    item(LineItemKind::Discount, "On the house", 1, -100),
                ],
            ),
            "zero_total",
        ),
        (
            "positive discount",
            quote(
                job,
                1,
                vec![service(100), item(LineItemKind::Discount, "Up", 1, 200)],
            ),
            "wrong_sign",
        ),
        (
            "huge price",
            raw(vec![service(i64::MAX)], Money::chf(i64::MAX), Some("big")),
            "amount_too_large",
        ),
        (
            "overflowing item",
            raw(
                vec![item(LineItemKind::Service, "Router", u32::MAX, i64::MAX)],
                Money::chf(0),
                None,
            ),
            "amount_overflow",
        ),
        (
            "items beyond the bound (checked before the sum)",
            raw(
                vec![service(i64::MAX), service(i64::MAX)],
                Money::chf(-2),
                None,
            ),
            "amount_too_large",
        ),
        (
            "above the limit",
            quote(job, 1, vec![service(1_000_001)]),
            "amount_too_large",
        ),
        (
            "far above orientation without reason",
            quote(job, 1, vec![service(10_681)]),
            "reason_required",
        ),
        ("no items", raw(vec![], Money::chf(0), None), "no_items"),
        (
            "empty description",
            raw(
                vec![item(LineItemKind::Service, " ", 1, 100)],
                Money::chf(100),
                None,
            ),
            "empty_description",
        ),
        (
            "hidden line break",
            raw(
                vec![item(LineItemKind::Service, "a\nb", 1, 100)],
                Money::chf(100),
                None,
            ),
            "control_characters",
        ),
    ];
    for (what, q, rule) in cases {
        let payload = sign(ConsentAction::Propose, Party::Friend, &q, &s.anna_key);
        let r = s.upload(&s.anna, &payload).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (422, "invalid_quote"),
            "{what}: {}",
            r.text()
        );
        let v: serde_json::Value = r.json();
        assert!(
            v["message"].as_str().unwrap().starts_with(rule),
            "{what}: {}",
            r.text()
        );
    }
    assert_eq!(
        s.customer_view().await.negotiation,
        None,
        "nothing was stored"
    );

    // Completion and rating input.
    let bad_completions = [
        json!({"payment": "twint", "total": chf(8900)}),
        json!({"payment": "cash", "total": {"minor": 1e30, "currency": "CHF"}}),
        json!({"payment": "cash", "total": {"minor": "lots", "currency": "CHF"}}),
        json!({"payment": "cash"}),
        json!([]),
    ];
    for body in bad_completions {
        let r = s
            .http
            .post(&path(job, "complete"), &s.anna.token, None, &body)
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    // Keys.
    for key in [
        "not base64!".to_owned(),
        STANDARD.encode([1u8; 31]),
        STANDARD.encode([1u8; 33]),
        "A".repeat(50_000),
    ] {
        let r = s
            .http
            .post(
                "/v1/keys",
                &s.anna.token,
                None,
                &json!({ "public_key": key }),
            )
            .await;
        refused(&r, 400, "invalid_input", Some("public_key"));
    }
    let r = s
        .http
        .post("/v1/keys", &s.anna.token, None, &json!({}))
        .await;
    refused(&r, 400, "invalid_json", None);
    let r = s
        .http
        .post(
            "/v1/keys",
            "",
            None,
            &json!({"public_key": public(&device_key())}),
        )
        .await;
    refused(&r, 401, "unauthorized", None);
    // Keys in any base64 alphabet register as the same canonical key.
    let k = device_key();
    let url_safe = URL_SAFE_NO_PAD.encode(k.public_key().as_ref());
    let r = s
        .http
        .post(
            "/v1/keys",
            &s.anna.token,
            None,
            &json!({ "public_key": url_safe }),
        )
        .await;
    let keys: Vec<String> =
        serde_json::from_value(r.json::<serde_json::Value>()["keys"].clone()).unwrap();
    assert_eq!(keys, vec![public(&s.anna_key), public(&k)]);
    for _ in keys.len()..friend_protocol::MAX_DEVICE_KEYS {
        register(&s.http, &s.anna, &device_key()).await;
    }
    let r = s
        .http
        .post(
            "/v1/keys",
            &s.anna.token,
            None,
            &json!({"public_key": public(&device_key())}),
        )
        .await;
    refused(&r, 400, "invalid_input", Some("public_key"));
    // Rejecting with nothing pending; a version beyond u32.
    let reject = format!("/v1/jobs/{job}/reject");
    let r = s
        .http
        .post(&reject, &s.heidi.token, None, &json!({"version": 1}))
        .await;
    refused(&r, 409, "negotiation_refused", Some("nothing_pending"));
    let r = s
        .http
        .post(
            &reject,
            &s.heidi.token,
            None,
            &json!({"version": 5_000_000_000u64}),
        )
        .await;
    refused(&r, 400, "invalid_json", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_and_unsuccessful_check_out_end_the_job() {
    let s = OnSite::start().await;
    let mut heidi_feed = Feed::start(&s.http, &s.heidi).await;
    // A second job of Heidi's, still only assigned.
    let second = s.tb.book(&s.heidi, &booking_at(places::OERLIKON)).await.id;
    assert_eq!(s.http.accept(&s.anna, second, "accept-2").await.status, 200);
    heidi_feed.job(second).await;

    // Not before check-in.
    for (action, body) in [
        ("escalate", json!({"note": "Needs a technician"})),
        ("unsuccessful", json!({"reason": "customer_absent"})),
    ] {
        let r = s
            .http
            .post(&path(second, action), &s.anna.token, None, &body)
            .await;
        refused(&r, 409, "invalid_transition", None);
    }
    // Input checks.
    for body in [
        json!({"reason": "other"}),
        json!({"reason": "other", "note": "   "}),
        json!({"reason": "dog_bit_me"}),
        json!({"reason": "cannot_help", "note": "x".repeat(501)}),
        json!({"reason": "cannot_help", "note": "bad\u{0007}bell"}),
        json!({"note": "no reason"}),
    ] {
        let r = s
            .http
            .post(&path(s.job, "unsuccessful"), &s.anna.token, None, &body)
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    let r = s
        .http
        .post(
            &path(s.job, "escalate"),
            &s.anna.token,
            None,
            &json!({"note": "y".repeat(501)}),
        )
        .await;
    refused(&r, 400, "invalid_input", Some("note"));

    // Escalated from on site (a retry is answered the same; a different ending is refused).
    let body = json!({"note": "Fibre termination box broken: needs the carrier's technician"});
    let escalated = job_of(
        &s.http
            .post(&path(s.job, "escalate"), &s.anna.token, None, &body)
            .await,
    );
    assert_eq!(escalated.state, JobState::Escalated);
    assert_eq!(
        escalated.outcome,
        Some(JobOutcome::Escalated {
            note: Some("Fibre termination box broken: needs the carrier's technician".into())
        })
    );
    let again = job_of(
        &s.http
            .post(&path(s.job, "escalate"), &s.anna.token, None, &body)
            .await,
    );
    assert_eq!(again.version, escalated.version);
    let r = s
        .http
        .post(
            &path(s.job, "unsuccessful"),
            &s.anna.token,
            None,
            &json!({"reason": "cannot_help"}),
        )
        .await;
    refused(&r, 409, "job_closed", Some("the job is escalated"));
    let seen = heidi_feed.job(s.job).await;
    assert_eq!(
        (seen.state, seen.outcome),
        (JobState::Escalated, escalated.outcome)
    );
    let r = s
        .http
        .post(
            &format!("/v1/customer/jobs/{}/rate", s.job),
            &s.heidi.token,
            None,
            &json!({"stars": 2}),
        )
        .await;
    refused(&r, 409, "invalid_transition", None);

    // Unsuccessful: nobody home, from an agreed job.
    let r = s
        .http
        .post(&path(second, "check-in"), &s.anna.token, None, &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v1 = quote(
        second,
        1,
        vec![item(LineItemKind::Service, "Router installation", 1, 8900)],
    );
    job_of(
        &upload(
            &s.http,
            &s.anna,
            second,
            &sign(ConsentAction::Propose, Party::Friend, &v1, &s.anna_key),
        )
        .await,
    );
    job_of(
        &upload(
            &s.http,
            &s.anna,
            second,
            &sign(ConsentAction::Accept, Party::Customer, &v1, &s.heidi_key),
        )
        .await,
    );
    let body = json!({"reason": "customer_absent", "note": "Waited 10 minutes, called twice"});
    let out = job_of(
        &s.http
            .post(
                &path(second, "unsuccessful"),
                &s.anna.token,
                Some("u-1"),
                &body,
            )
            .await,
    );
    assert_eq!(out.state, JobState::Unsuccessful);
    assert_eq!(
        out.outcome,
        Some(JobOutcome::Unsuccessful {
            reason: UnsuccessfulReason::CustomerAbsent,
            note: Some("Waited 10 minutes, called twice".into())
        })
    );
    let replay = job_of(
        &s.http
            .post(
                &path(second, "unsuccessful"),
                &s.anna.token,
                Some("u-1"),
                &body,
            )
            .await,
    );
    assert_eq!(replay, out, "the same key returns the stored answer");
    let seen = heidi_feed.job(second).await;
    assert_eq!(seen.state, JobState::Unsuccessful);
    refused(
        &s.complete("cash", chf(8900)).await,
        409,
        "job_closed",
        None,
    );
    let r = s
        .http
        .post(
            &path(second, "complete"),
            &s.anna.token,
            None,
            &json!({"payment": "cash", "total": chf(8900)}),
        )
        .await;
    refused(&r, 409, "job_closed", None);
    // Neither ending creates a ledger entry.
    let ledger: Ledger = s.http.get("/v1/friend/ledger", &s.anna.token).await.json();
    assert!(ledger.entries.is_empty());
}
