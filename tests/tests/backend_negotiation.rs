//! On-site negotiation over real HTTP (SPEC §2, §3, §7): device keys, signed consent uploaded by
//! either party, amendments, completion at the agreed total, the ledger, rating, and the unhappy
//! paths — forged or misdirected consent, strangers, cancelled jobs, money edges, escalation and the
//! unsuccessful check-out. Every refusal is a typed 4xx, and a refused step stores nothing.
//!
//! Each test starts from a [`Scenario`] stage: Heidi booked, Anna accepted, checked in, proposed,
//! agreed or completed (`friend_tests::scenario`).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use friend_protocol::consent::ConsentAction::{Accept, Propose};
use friend_protocol::consent::{self, ConsentPayload};
use friend_protocol::negotiation::{Answer, Status};
use friend_protocol::{
    Currency, FriendJobView, JobId, JobOutcome, JobState, LedgerDirection, LedgerEntry,
    LedgerStatus, LineItem, LineItemKind, Money, Party, PaymentMethod, Quote, Role,
    UnsuccessfulReason,
};
use friend_tests::scenario::{chf, device_key, friend_path, item, public_key, quote, router, sign};
use friend_tests::{Scenario, TestAccount, assert_case_refused, assert_refused as refused};
use ring::signature::KeyPair as _;
use serde_json::json;

/// An expected refusal: status, code, and the rule the message starts with.
type Refusal = (u16, &'static str, &'static str);

/// CHF 101.50: the booked router installation and a cable, within 20 % of the orientation price.
fn router_and_cable() -> Vec<LineItem> {
    vec![
        router(8900),
        item(LineItemKind::Material, "LAN cable 5 m", 1, 1250),
    ]
}

/// CHF 79.00: the installation less the customer's own cable.
fn own_cable() -> Vec<LineItem> {
    vec![
        router(8900),
        item(LineItemKind::Discount, "Own cable", 1, -1000),
    ]
}

/// CHF 104.03: [`own_cable`] plus a repeater found necessary on site.
fn own_cable_and_repeater() -> Vec<LineItem> {
    let mut items = own_cable();
    items.push(item(
        LineItemKind::ExtraService,
        "Wi-Fi repeater in the bedroom",
        1,
        2503,
    ));
    items
}

// ---- the happy path ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_registered_after_the_accept_reach_the_other_party_with_the_job() {
    let s = Scenario::new().accepted().await;
    let mut heidi_feed = s.feed(&s.customer).await;

    let keys = s.register(&s.customer, &s.customer_key).await;
    assert_eq!(keys, vec![public_key(&s.customer_key)]);
    assert_eq!(
        s.register(&s.customer, &s.customer_key).await,
        keys,
        "idempotent"
    );
    s.register(&s.friend, &s.friend_key).await;
    let seen = heidi_feed.job(s.job()).await;
    assert_eq!(seen.keys.customer, vec![public_key(&s.customer_key)]);
    assert_eq!(seen.keys.friend, vec![public_key(&s.friend_key)]);
    assert!(seen.negotiation.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_negotiated_before_the_check_in_nor_completed_before_agreement() {
    let s = Scenario::new().with_keys().accepted().await;
    let mut heidi_feed = s.feed(&s.customer).await;
    let v1 = quote(s.job(), 1, router_and_cable());
    let p1 = s.sign(Propose, Party::Friend, &v1);

    let r = s.upload(&s.friend, &p1).await;
    refused(&r, 409, "invalid_transition", None);
    let r = s.friend_post(s.job(), "check-in", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    heidi_feed.job(s.job()).await;
    let r = s.complete("cash", chf(10150)).await;
    refused(&r, 409, "negotiation_refused", Some("not_agreed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_countered_and_accepted_reaches_the_customer_at_every_step() {
    let s = Scenario::new().on_site().with_keys().await;
    let job = s.job();
    let mut heidi_feed = s.feed(&s.customer).await;

    // 1. Anna proposes CHF 101.50.
    let v1 = quote(job, 1, router_and_cable());
    let p1 = s.sign(Propose, Party::Friend, &v1);
    let after = s.upload(&s.friend, &p1).await.job();
    let pending_v1 = Status::Pending {
        version: 1,
        by: Party::Friend,
    };
    assert_eq!(after.negotiation.unwrap().state.status(), pending_v1);
    let seen = heidi_feed.job(job).await;
    let n = seen.negotiation.clone().unwrap();
    assert_eq!(n.state.status(), pending_v1);
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
    let v2 = quote(job, 2, own_cable());
    let p2 = s.sign(Propose, Party::Customer, &v2);
    s.upload(&s.customer, &p2).await.job();
    let n = heidi_feed.job(job).await.negotiation.unwrap();
    assert_eq!(
        n.state.status(),
        Status::Pending {
            version: 2,
            by: Party::Customer
        }
    );

    // 3. Anna accepts on her phone, offline; Heidi uploads the acceptance (and retries it).
    let a2 = s.sign(Accept, Party::Friend, &v2);
    let agreed = s.upload(&s.customer, &a2).await.job();
    assert_eq!(agreed.state, JobState::Agreed);
    let retried = s.upload(&s.customer, &a2).await.job();
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
}

/// More work found after the agreement: completion waits for the customer's consent to the
/// amendment, and then takes only the amended total — cash rounded, the fee 15 % of what was charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amendment_needs_consent_and_completion_only_the_newest_agreed_total() {
    let s = Scenario::new().agreed(own_cable()).await;
    let job = s.job();
    let mut heidi_feed = s.feed(&s.customer).await;

    // Anna amends to CHF 104.03; completion waits for Heidi's answer.
    let v2 = quote(job, 2, own_cable_and_repeater());
    s.propose(Party::Friend, &v2).await;
    let n = heidi_feed.job(job).await.negotiation.unwrap();
    assert_eq!(
        n.state.status(),
        Status::AgreedWithPendingAmendment {
            agreed_version: 1,
            agreed_total: Money::chf(7900),
            pending_version: 2,
            by: Party::Friend
        }
    );
    let r = s.complete("cash", chf(7900)).await;
    refused(&r, 409, "negotiation_refused", Some("amendment_pending"));

    // Heidi accepts the amendment.
    s.accept_quote(Party::Customer, &v2).await;
    let n = heidi_feed.job(job).await.negotiation.unwrap();
    assert_eq!(
        n.state.status(),
        Status::Agreed {
            version: 2,
            total: Money::chf(10403)
        }
    );

    // Completion only at the agreed total.
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
        let r = s.complete("cash", total).await;
        assert_eq!(r.status, 409, "{what}: {}", r.text());
        refused(&r, 409, "negotiation_refused", Some("total_not_agreed"));
    }
    let done = s.complete("cash", chf(10403)).await.job();
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.payment, Some(PaymentMethod::Cash));
    assert_eq!(done.final_total, Some(Money::chf(10403)));
    let settlement = done.settlement.unwrap();
    // Cash is rounded to CHF 0.05; the fee is 15 % of what was charged (1560.75 → 1561).
    assert_eq!(
        (settlement.charged, settlement.fee, settlement.payout),
        (Money::chf(10405), Money::chf(1561), Money::chf(8844))
    );
    let again = s.complete("cash", chf(10403)).await.job();
    assert_eq!(
        again.version, done.version,
        "a repeated completion changes nothing"
    );
    let seen = heidi_feed.job(job).await;
    assert_eq!(
        (seen.state, seen.final_total),
        (JobState::Completed, Some(Money::chf(10403)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fee_of_a_cash_job_moves_through_the_ledger_forward_only() {
    let s = Scenario::new()
        .agreed(own_cable_and_repeater())
        .completed(PaymentMethod::Cash)
        .await;
    let job = s.job();

    // Anna owes the fee for the cash job.
    let ledger = s.ledger().await;
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

    // The admin moves it forward only.
    let admin = |status: &str| {
        let http = s.http.clone();
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
    let r = s
        .http
        .post(
            &format!("/v1/admin/ledger/{job}"),
            &s.friend.token,
            None,
            &json!({"status": "paid"}),
        )
        .await;
    refused(&r, 401, "unauthorized", None);
    assert_eq!(s.ledger().await.entries[0].status, LedgerStatus::Paid);
    let r = s.http.get("/v1/friend/ledger", &s.customer.token).await;
    refused(&r, 403, "forbidden", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_rates_once_and_the_friend_sees_the_rating() {
    let s = Scenario::new()
        .agreed(own_cable_and_repeater())
        .completed(PaymentMethod::Cash)
        .await;
    let praise = json!({"stars": 5, "comment": "Super, danke!"});

    let rated = s.rate(&s.customer, praise.clone()).await.job();
    assert_eq!(rated.rating, Some(5));
    let r = s.rate(&s.customer, json!({"stars": 4})).await;
    refused(&r, 409, "already_rated", None);
    let r = s.rate(&s.customer, praise).await;
    refused(&r, 409, "already_rated", None);
    match s.friend_view(s.job()).await {
        FriendJobView::Full(j) => assert_eq!((j.rating, j.state), (Some(5), JobState::Completed)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_job_takes_no_more_consent_but_answers_a_replayed_upload() {
    let s = Scenario::new()
        .agreed(own_cable_and_repeater())
        .completed(PaymentMethod::Cash)
        .await;
    let v2 = quote(s.job(), 2, vec![router(100)]);
    let p2 = s.sign(Propose, Party::Friend, &v2);
    refused(&s.upload(&s.friend, &p2).await, 409, "job_closed", None);
    // …but an earlier upload retried from an outbox still gets its success answer.
    assert_eq!(s.upload(&s.friend, s.proposal()).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_amendment_leaves_the_agreement_in_force() {
    let s = Scenario::new().agreed(vec![router(8900)]).await;
    let v2 = quote(
        s.job(),
        2,
        vec![
            router(8900),
            item(LineItemKind::TimeUnit, "15 minutes", 2, 500),
        ],
    );
    s.propose(Party::Friend, &v2).await;

    // Anna cannot reject her own amendment, nor anyone an older version.
    let r = s.reject(&s.friend, 2).await;
    refused(&r, 409, "negotiation_refused", Some("own_proposal"));
    let r = s.reject(&s.customer, 1).await;
    refused(&r, 409, "negotiation_refused", Some("not_latest"));
    let rejected = s.reject(&s.customer, 2).await.job();
    let again = s.reject(&s.customer, 2).await.job();
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
    let a2 = s.sign(Accept, Party::Customer, &v2);
    let r = s.upload(&s.customer, &a2).await;
    refused(&r, 409, "negotiation_refused", Some("nothing_pending"));

    // Completed online at the agreed price: the platform owes Anna the payout.
    let done = s.complete("online", chf(8900)).await.job();
    let settlement = done.settlement.unwrap();
    assert_eq!(
        (settlement.charged, settlement.fee),
        (Money::chf(8900), Money::chf(1335))
    );
    let ledger = s.ledger().await;
    assert_eq!(
        ledger.entries[0].direction,
        LedgerDirection::PlatformOwesPayout
    );
    assert_eq!(ledger.entries[0].payout, Money::chf(8900 - 1335));
    // A different completion of a completed job is refused.
    let r = s.complete("cash", chf(8900)).await;
    refused(&r, 409, "job_closed", None);
}

// ---- unhappy paths -------------------------------------------------------------------------

/// Anna proposed CHF 89, Heidi countered with a discount; then every kind of broken, stale or
/// misdirected payload is refused with its rule, and none of them changes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_misdirected_consent_is_refused_and_nothing_is_stored() {
    let s = Scenario::new().quoted(vec![router(8900)]).await;
    let job = s.job();
    let other_job = s.book().await.id;
    let (_luca, luca_key) = s.with_key(s.friend_named("Luca").await).await;
    let v1 = s.quote().clone();
    let v2 = quote(
        job,
        2,
        vec![
            router(8900),
            item(LineItemKind::Discount, "Regular", 1, -900),
        ],
    );
    s.propose(Party::Customer, &v2).await;
    let before = s.customer_view(job).await;

    let v3 = quote(job, 3, vec![router(8900)]);
    let good = s.sign(Propose, Party::Friend, &v3);
    let bytes = URL_SAFE_NO_PAD.decode(&good).unwrap();
    let tampered = |i: usize| {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        URL_SAFE_NO_PAD.encode(b)
    };
    // The total's last byte (format, action, signer, job id, version, currency: 1+1+1+16+4+1).
    let price_byte = 1 + 1 + 1 + 16 + 4 + 1 + 7;
    let anna_signs = |action, q: &Quote| s.sign(action, Party::Friend, q);
    let heidi_signs = |action, q: &Quote| s.sign(action, Party::Customer, q);
    let as_friend = |key| sign(Propose, Party::Friend, &v3, key);
    let (for_other_job, reused, skipping) = (
        quote(other_job, 3, vec![router(8900)]),
        quote(job, 2, vec![router(8900)]),
        quote(job, 4, vec![router(8900)]),
    );
    let consent = |rule| -> Refusal { (422, "invalid_consent", rule) };
    let negotiation = |rule| -> Refusal { (409, "negotiation_refused", rule) };
    let (anna, heidi) = (&s.friend, &s.customer);
    #[rustfmt::skip]
    let cases: Vec<(&str, String, &TestAccount, Refusal)> = vec![
        ("price changed after signing", tampered(price_byte), anna, consent("bad_signature")),
        ("signature changed", tampered(bytes.len() - 1), heidi, consent("bad_signature")),
        ("signer byte changed", tampered(2), anna, consent("")),
        ("payload for another job",
            anna_signs(Propose, &for_other_job), anna, consent("wrong_job")),
        ("key not registered for the signer",
            as_friend(&device_key()), anna, consent("key_not_registered")),
        ("a stranger Friend signs as the job's Friend",
            as_friend(&luca_key), heidi, consent("key_not_registered")),
        ("the customer's key signs as the Friend",
            as_friend(&s.customer_key), anna, consent("key_not_registered")),
        ("acceptance of a superseded version",
            heidi_signs(Accept, &v1), heidi, negotiation("stale_version")),
        ("a proposal reusing the latest version",
            anna_signs(Propose, &reused), anna, negotiation("stale_version")),
        ("a proposal skipping a version",
            anna_signs(Propose, &skipping), anna, negotiation("version_gap")),
        ("accepting one's own proposal",
            heidi_signs(Accept, &v2), heidi, negotiation("own_proposal")),
        ("accepting other content than proposed",
            anna_signs(Accept, &reused), anna, consent("quote_mismatch")),
        ("not base64", "not base64!".into(), anna, consent("malformed_payload")),
        ("empty", String::new(), anna, consent("malformed_payload")),
        ("truncated", good[..good.len() - 10].into(), anna, consent("malformed_payload")),
        ("too large", "A".repeat(5000), anna, consent("payload_too_large")),
    ];
    for (what, payload, by, (status, code, rule)) in cases {
        let r = s.upload(by, &payload).await;
        assert_case_refused(what, &r, status, code, rule);
    }
    let r = s
        .http
        .post(
            &format!("/v1/jobs/{job}/consent"),
            &s.friend.token,
            None,
            &json!({"payload": 42}),
        )
        .await;
    refused(&r, 400, "invalid_json", None);

    let after = s.customer_view(job).await;
    assert_eq!(after.negotiation, before.negotiation, "nothing was stored");
    assert_eq!(after.version, before.version);
    // The genuine proposal still goes through.
    let n = s.upload(&s.friend, &good).await.job().negotiation.unwrap();
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
    let s = Scenario::new().with_keys().on_site().await;
    let job = s.job();
    let (luca, luca_key) = s.with_key(s.friend_named("Luca").await).await;
    let (peter, peter_key) = s.with_key(s.customer_named("Peter").await).await;
    let v1 = quote(job, 1, vec![router(8900)]);
    let genuine = s.sign(Propose, Party::Friend, &v1);
    let before = s.customer_view(job).await;

    for (who, key, party) in [
        (&luca, &luca_key, Party::Friend),
        (&peter, &peter_key, Party::Customer),
    ] {
        let own = sign(Propose, party, &v1, key);
        for payload in [&genuine, &own] {
            refused(&s.upload(who, payload).await, 404, "not_found", None);
        }
        refused(&s.reject(who, 1).await, 404, "not_found", None);
    }
    for (action, body) in [
        ("complete", json!({"payment": "cash", "total": chf(8900)})),
        ("escalate", json!({"note": "x"})),
        ("unsuccessful", json!({"reason": "customer_absent"})),
    ] {
        let path = friend_path(job, action);
        let r = s.http.post(&path, &luca.token, None, &body).await;
        refused(&r, 404, "not_found", None);
        let r = s.http.post(&path, &s.customer.token, None, &body).await;
        refused(&r, 403, "forbidden", None);
    }
    let r = s.rate(&peter, json!({"stars": 1})).await;
    refused(&r, 404, "not_found", None);
    let r = s.rate(&s.friend, json!({"stars": 5})).await;
    refused(&r, 403, "forbidden", None);
    // An unknown job looks exactly like someone else's.
    let nowhere = JobId(uuid::Uuid::new_v4());
    let r = s.upload_to(nowhere, &s.friend, &genuine).await;
    refused(&r, 404, "not_found", None);
    assert_eq!(s.customer_view(job).await, before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_refuses_consent_and_completion() {
    let s = Scenario::new().with_keys().accepted().await;
    let job = s.job();
    // Anna signs a quote on her way (she is offline); Heidi cancels meanwhile.
    let v1 = quote(job, 1, vec![router(8900)]);
    let p1 = s.sign(Propose, Party::Friend, &v1);
    let cancelled = s.cancel(job).await.job();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled.cancelled_by, Some(Role::Customer));
    assert_eq!(
        cancelled.friend.as_ref().map(|f| f.id),
        Some(s.friend.id),
        "the job tells that a Friend was already assigned"
    );

    // Anna's outbox replays: every on-site action gets a definite, typed refusal.
    let r = s.upload(&s.friend, &p1).await;
    refused(&r, 409, "job_closed", Some("the job is cancelled"));
    let a1 = s.sign(Accept, Party::Customer, &v1);
    refused(&s.upload(&s.customer, &a1).await, 409, "job_closed", None);
    refused(&s.reject(&s.customer, 1).await, 409, "job_closed", None);
    for (action, body) in [
        ("complete", json!({"payment": "cash", "total": chf(8900)})),
        ("escalate", json!({})),
        ("unsuccessful", json!({"reason": "customer_absent"})),
    ] {
        let r = s.friend_post(job, action, body).await;
        refused(&r, 409, "job_closed", None);
    }
    let r = s.rate(&s.customer, json!({"stars": 3})).await;
    refused(&r, 409, "invalid_transition", None);
    match s.friend_view(job).await {
        FriendJobView::Full(j) => {
            assert_eq!(
                (j.state, j.negotiation, j.payment),
                (JobState::Cancelled, None, None)
            );
        }
        other => panic!("{other:?}"),
    }
    // Cancelled after the accept (a now-job): the compensation, and nothing else, in the ledger.
    let entries = s.ledger().await.entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].compensation,
        Some(friend_protocol::CompensationCause::LateCancellation)
    );
}

/// Anna is offline on site: her check-in and her signed proposal wait in her outbox, and Heidi,
/// handed the proposal on site, uploads it first. The proposal checks Anna in; her check-in,
/// replayed later, is answered with the job as it is, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_the_customer_uploads_before_the_check_in_arrives_checks_the_friend_in() {
    let s = Scenario::new().with_keys().accepted().await;
    let job = s.job();
    let v1 = quote(job, 1, vec![router(8900)]);
    let p1 = s.sign(Propose, Party::Friend, &v1);
    // Anna herself cannot skip the check-in...
    let r = s.upload(&s.friend, &p1).await;
    refused(&r, 409, "invalid_transition", None);
    // ...but the proposal Heidi was handed on site proves the arrival.
    let after = s.upload(&s.customer, &p1).await.job();
    assert_eq!(after.state, JobState::OnSite);
    assert_eq!(
        after.negotiation.unwrap().state.status(),
        Status::Pending {
            version: 1,
            by: Party::Friend
        }
    );
    assert_eq!(
        s.accept_quote(Party::Customer, &v1).await.state,
        JobState::Agreed
    );

    // Anna back online: her outbox replays the check-in, then the proposal.
    let replayed = s
        .http
        .post(
            &friend_path(job, "check-in"),
            &s.friend.token,
            Some("anna-check-in"),
            &json!({}),
        )
        .await
        .job();
    assert_eq!(
        (replayed.state, replayed.version),
        (JobState::Agreed, after.version + 1)
    );
    assert_eq!(s.upload(&s.friend, &p1).await.job().state, JobState::Agreed);
    // A customer's own proposal proves nothing about the Friend's arrival.
    let other = s.book_accepted("accept-2").await;
    let c1 = s.sign(
        Propose,
        Party::Customer,
        &quote(other, 1, vec![router(8900)]),
    );
    let r = s.upload_to(other, &s.customer, &c1).await;
    refused(&r, 409, "invalid_transition", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_edges_and_bad_input_are_typed_refusals_never_5xx() {
    let s = Scenario::new().with_keys().on_site().await;
    let job = s.job();
    let raw = |items: Vec<LineItem>, total: Money, reason: Option<&str>| Quote {
        job_id: job,
        version: 1,
        items,
        total,
        reason: reason.map(Into::into),
    };
    let v1 = |items: Vec<LineItem>| quote(job, 1, items);
    let eur = LineItem {
        unit_price: Money::new(8900, Currency::Eur),
        ..router(0)
    };
    let service =
        |description, quantity, minor| item(LineItemKind::Service, description, quantity, minor);
    let discount = |description, minor| item(LineItemKind::Discount, description, 1, minor);
    let max = i64::MAX;
    #[rustfmt::skip]
    let cases: Vec<(&str, Quote, &str)> = vec![
        ("currency mismatch", v1(vec![eur.clone()]), "currency_mismatch"),
        ("total not the sum",
            raw(vec![router(8900), router(100)], Money::chf(8900), None), "total_mismatch"),
        ("total in another currency",
            raw(vec![router(8900)], Money::new(8900, Currency::Eur), None), "currency_mismatch"),
        ("zero quantity",
            raw(vec![service("Router", 0, 8900)], Money::chf(0), None), "zero_quantity"),
        ("negative total", v1(vec![router(100), discount("Too much", -200)]), "negative_total"),
        ("zero total", v1(vec![router(100), discount("On the house", -100)]), "zero_total"),
        ("positive discount", v1(vec![router(100), discount("Up", 200)]), "wrong_sign"),
        ("huge price", raw(vec![router(max)], Money::chf(max), Some("big")), "amount_too_large"),
        ("overflowing item",
            raw(vec![service("Router", u32::MAX, max)], Money::chf(0), None), "amount_overflow"),
        ("items beyond the bound (checked before the sum)",
            raw(vec![router(max), router(max)], Money::chf(-2), None), "amount_too_large"),
        ("above the limit", v1(vec![router(1_000_001)]), "amount_too_large"),
        ("far above orientation without reason", v1(vec![router(10_681)]), "reason_required"),
        ("no items", raw(vec![], Money::chf(0), None), "no_items"),
        ("empty description",
            raw(vec![service(" ", 1, 100)], Money::chf(100), None), "empty_description"),
        ("hidden line break",
            raw(vec![service("a\nb", 1, 100)], Money::chf(100), None), "control_characters"),
    ];
    for (what, q, rule) in cases {
        let payload = s.sign(Propose, Party::Friend, &q);
        let r = s.upload(&s.friend, &payload).await;
        assert_case_refused(what, &r, 422, "invalid_quote", rule);
    }
    assert_eq!(
        s.customer_view(job).await.negotiation,
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
        let r = s.friend_post(job, "complete", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    // Keys.
    let post_key = |token: &str, body: serde_json::Value| {
        let (http, token) = (s.http.clone(), token.to_owned());
        async move { http.post("/v1/keys", &token, None, &body).await }
    };
    for key in [
        "not base64!".to_owned(),
        STANDARD.encode([1u8; 31]),
        STANDARD.encode([1u8; 33]),
        "A".repeat(50_000),
    ] {
        let r = post_key(&s.friend.token, json!({ "public_key": key })).await;
        refused(&r, 400, "invalid_input", Some("public_key"));
    }
    let r = post_key(&s.friend.token, json!({})).await;
    refused(&r, 400, "invalid_json", None);
    let r = post_key("", json!({"public_key": public_key(&device_key())})).await;
    refused(&r, 401, "unauthorized", None);
    // Keys in any base64 alphabet register as the same canonical key.
    let k = device_key();
    let url_safe = URL_SAFE_NO_PAD.encode(k.public_key().as_ref());
    let r = post_key(&s.friend.token, json!({ "public_key": url_safe })).await;
    let keys: Vec<String> =
        serde_json::from_value(r.json::<serde_json::Value>()["keys"].clone()).unwrap();
    assert_eq!(keys, vec![public_key(&s.friend_key), public_key(&k)]);
    for _ in keys.len()..friend_protocol::MAX_DEVICE_KEYS {
        s.register(&s.friend, &device_key()).await;
    }
    let r = post_key(
        &s.friend.token,
        json!({"public_key": public_key(&device_key())}),
    )
    .await;
    refused(&r, 400, "invalid_input", Some("public_key"));
    // Rejecting with nothing pending; a version beyond u32.
    let r = s.reject(&s.customer, 1).await;
    refused(&r, 409, "negotiation_refused", Some("nothing_pending"));
    let r = s.reject(&s.customer, 5_000_000_000).await;
    refused(&r, 400, "invalid_json", None);
}

// ---- endings without a completion ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_and_the_unsuccessful_check_out_wait_for_the_check_in() {
    let s = Scenario::new().await;
    let mut heidi_feed = s.feed(&s.customer).await;
    let job = s.book_accepted("accept").await;
    heidi_feed.job(job).await;

    for (action, body) in [
        ("escalate", json!({"note": "Needs a technician"})),
        ("unsuccessful", json!({"reason": "customer_absent"})),
    ] {
        let r = s.friend_post(job, action, body).await;
        refused(&r, 409, "invalid_transition", None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notes_and_reasons_of_an_ending_are_checked() {
    let s = Scenario::new().on_site().await;
    for body in [
        json!({"reason": "other"}),
        json!({"reason": "other", "note": "   "}),
        json!({"reason": "dog_bit_me"}),
        json!({"reason": "cannot_help", "note": "x".repeat(501)}),
        json!({"reason": "cannot_help", "note": "bad\u{0007}bell"}),
        json!({"note": "no reason"}),
    ] {
        let r = s.friend_post(s.job(), "unsuccessful", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    let r = s
        .friend_post(s.job(), "escalate", json!({"note": "y".repeat(501)}))
        .await;
    refused(&r, 400, "invalid_input", Some("note"));
}

/// Escalated from on site: a retry is answered the same, a different ending is refused, and the
/// job can be neither rated nor completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_ends_the_job() {
    let s = Scenario::new().on_site().await;
    let job = s.job();
    let mut heidi_feed = s.feed(&s.customer).await;

    let body = json!({"note": "Fibre termination box broken: needs the carrier's technician"});
    let escalated = s.friend_post(job, "escalate", body.clone()).await.job();
    assert_eq!(escalated.state, JobState::Escalated);
    assert_eq!(
        escalated.outcome,
        Some(JobOutcome::Escalated {
            note: Some("Fibre termination box broken: needs the carrier's technician".into())
        })
    );
    let again = s.friend_post(job, "escalate", body).await.job();
    assert_eq!(again.version, escalated.version);
    let r = s
        .friend_post(job, "unsuccessful", json!({"reason": "cannot_help"}))
        .await;
    refused(&r, 409, "job_closed", Some("the job is escalated"));
    let seen = heidi_feed.job(job).await;
    assert_eq!(
        (seen.state, seen.outcome),
        (JobState::Escalated, escalated.outcome)
    );
    let r = s.rate(&s.customer, json!({"stars": 2})).await;
    refused(&r, 409, "invalid_transition", None);
    let r = s.complete("cash", chf(8900)).await;
    refused(&r, 409, "job_closed", None);
    assert!(
        s.ledger().await.entries.is_empty(),
        "an escalation creates no ledger entry"
    );
}

/// Nobody home after the price was agreed: the unsuccessful check-out ends the job, its key
/// returns the stored answer, and it can no longer be completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsuccessful_check_out_ends_an_agreed_job() {
    let s = Scenario::new().quoted(vec![router(8900)]).await;
    let job = s.job();
    let mut heidi_feed = s.feed(&s.customer).await;
    // Anna uploads the acceptance she scanned from Heidi's phone.
    let a1 = s.sign(Accept, Party::Customer, s.quote());
    assert_eq!(s.upload(&s.friend, &a1).await.job().state, JobState::Agreed);

    let body = json!({"reason": "customer_absent", "note": "Waited 10 minutes, called twice"});
    let check_out = || {
        let (http, token, body) = (s.http.clone(), s.friend.token.clone(), body.clone());
        async move {
            http.post(
                &friend_path(job, "unsuccessful"),
                &token,
                Some("u-1"),
                &body,
            )
            .await
        }
    };
    let out = check_out().await.job();
    assert_eq!(out.state, JobState::Unsuccessful);
    assert_eq!(
        out.outcome,
        Some(JobOutcome::Unsuccessful {
            reason: UnsuccessfulReason::CustomerAbsent,
            note: Some("Waited 10 minutes, called twice".into())
        })
    );
    let replay = check_out().await.job();
    assert_eq!(replay, out, "the same key returns the stored answer");
    assert_eq!(heidi_feed.job(job).await.state, JobState::Unsuccessful);
    let r = s.complete("cash", chf(8900)).await;
    refused(&r, 409, "job_closed", None);
    // The customer was absent: the no-show compensation is the only ledger entry.
    let entries = s.ledger().await.entries;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0].compensation,
        Some(friend_protocol::CompensationCause::NoShow)
    );
}
