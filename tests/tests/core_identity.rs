//! A session's token. A malformed one is a typed error when the session opens (before any file is
//! made) and whenever the host's provider hands one out later; a token of the other role is
//! `WrongRole` on everything that would reach the backend — sync, the foreground loop, the outbox,
//! profile, catalog, accept, ledger — nothing of that account is cached, and work queued with it
//! is kept for a good token rather than refused.

use friend_core::store::outbox::ItemStatus;
use friend_core::{
    CoreError, CoreResult, CustomerSession, FriendSession, InboxFilter, SecretsProvider,
    SessionConfig, StaticSecrets,
};
use friend_protocol::{ErrorCode, Role};
use friend_tests::{
    TEST_KEY, TestBackend, booking_at, friend_at, install_crypto_provider, open_customer,
    open_friend, places, point, wait_until,
};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Nothing listens here.
const NOWHERE: &str = "http://127.0.0.1:9";

fn wrong_role<T: std::fmt::Debug>(r: CoreResult<T>, expected: Role, actual: Role, what: &str) {
    match r {
        Err(CoreError::WrongRole {
            expected: e,
            actual: a,
        }) if (e, a) == (expected, actual) => {}
        other => panic!("{what}: expected WrongRole {expected:?}/{actual:?}, got {other:?}"),
    }
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_token_is_refused_when_a_session_opens() {
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    for token in [
        "",
        "dev-friend\nanna",
        "dev-friend-anna\n",
        " anna",
        "a\u{1}b",
        "änna",
    ] {
        let secrets = Arc::new(StaticSecrets::new(token, TEST_KEY));
        let friend = FriendSession::open(SessionConfig::new(&db, NOWHERE), secrets.clone()).await;
        assert!(
            matches!(&friend, Err(CoreError::InvalidToken(_))),
            "{token:?}: {:?}",
            friend.err()
        );
        let customer = CustomerSession::open(SessionConfig::new(&db, NOWHERE), secrets).await;
        let err = customer.err().unwrap();
        assert_eq!(err.code(), "invalid_token", "{token:?}: {err}");
        assert!(
            !err.to_string().contains("anna"),
            "the token is never shown"
        );
    }
    assert!(files(dir.path()).is_empty(), "no database was made");
}

/// A keystore whose token can change while the session is open.
struct Changing(Mutex<String>);

impl SecretsProvider for Changing {
    fn access_token(&self) -> Result<String, CoreError> {
        Ok(self.0.lock().unwrap().clone())
    }
    fn data_key(&self) -> Result<Vec<u8>, CoreError> {
        Ok(TEST_KEY.to_vec())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_turns_malformed_later_is_named_not_a_transport_failure() {
    let tb = TestBackend::start().await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let secrets = Arc::new(Changing(Mutex::new(anna.token.clone())));
    let session = FriendSession::open(
        SessionConfig::new(dir.path().join("anna.db"), &tb.base_url),
        secrets.clone(),
    )
    .await
    .unwrap();
    session.sync_once().await.unwrap();
    *secrets.0.lock().unwrap() = format!("{}\n", anna.token);
    let err = session.sync_once().await.unwrap_err();
    assert!(matches!(err, CoreError::InvalidToken(_)), "{err}");
    *secrets.0.lock().unwrap() = anna.token.clone();
    session.sync_once().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_roles_token_is_wrong_role_and_caches_nothing() {
    let tb = TestBackend::start().await;
    let heidi = tb.customer("Heidi").await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    // In Heidi's feed as her job and in Anna's inbox as an offer: what a wrong session could cache.
    let marker = "Marker: fax machine in the attic";
    let mut booking = booking_at(places::OERLIKON);
    booking.description = marker.into();
    let job = tb.book(&heidi, &booking).await.id;
    let dir = tempfile::tempdir().unwrap();
    let (friend_db, customer_db) = (dir.path().join("friend.db"), dir.path().join("customer.db"));

    // A Friend session with Heidi's token.
    let friend = open_friend(&tb.base_url, &heidi, &friend_db).await;
    let (f, c) = (Role::Friend, Role::Customer);
    wrong_role(friend.sync_once().await, f, c, "sync");
    wrong_role(friend.profile().await, f, c, "profile");
    wrong_role(friend.catalog().await, f, c, "catalog");
    // (Another id: the accept records the id it is given before it asks.)
    let other = friend_protocol::JobId::random();
    wrong_role(friend.accept(other).await, f, c, "accept");
    wrong_role(friend.ledger().await, f, c, "ledger");
    let err = friend.sync_once().await.unwrap_err();
    assert_eq!(err.code(), "wrong_role");
    assert!(
        err.to_string()
            .contains("belongs to a customer account, not to a Friend account"),
        "{err}"
    );
    // The foreground loop meets the same answer.
    friend.start_foreground_sync();
    wait_until(
        "the foreground loop to report the wrong role",
        Duration::from_secs(10),
        || {
            let code = friend.sync_status().last_error.map(|(code, _)| code);
            async move { code.as_deref() == Some("wrong_role") }
        },
    )
    .await;
    friend.stop_foreground_sync();
    let inbox = friend
        .inbox(point(places::ZURICH), 50.0, InboxFilter::default())
        .await
        .unwrap();
    assert!(inbox.items.is_empty(), "{inbox:?}");
    assert!(friend.my_jobs().await.unwrap().is_empty());
    assert!(
        friend.sync_status().last_success_ms.is_none(),
        "never synced"
    );
    friend.shutdown();

    // A customer session with Anna's token: a booking is queued (that works offline), and kept —
    // neither sent with this token nor refused.
    let customer = open_customer(&tb.base_url, &anna, &customer_db).await;
    let local = customer.book(booking_at(places::OERLIKON)).await.unwrap();
    wrong_role(customer.sync_once().await, c, f, "sync");
    let item = customer.outbox().await.unwrap().pop().unwrap();
    assert_eq!(item.status, ItemStatus::Pending, "{item:?}");
    assert!(
        item.last_error
            .as_deref()
            .unwrap_or("")
            .contains("wrong_role"),
        "{item:?}"
    );
    assert_eq!(customer.booking(local).await.unwrap(), None);
    wrong_role(customer.profile().await, c, f, "profile");
    wrong_role(customer.catalog().await, c, f, "catalog");
    assert_eq!(
        customer.my_jobs().await.unwrap().len(),
        1,
        "the queued booking only"
    );
    customer.shutdown();

    // Reopened offline, neither database has a profile (or anything else) of the other account.
    for (db, account) in [(&friend_db, &heidi), (&customer_db, &anna)] {
        let secrets = Arc::new(StaticSecrets::new(account.token.clone(), TEST_KEY));
        let offline = CustomerSession::open(SessionConfig::new(db, NOWHERE), secrets)
            .await
            .unwrap();
        assert_eq!(
            offline.profile().await.unwrap_err().code(),
            "offline",
            "no cached profile in {}",
            db.display()
        );
        offline.shutdown();
    }
    for file in files(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        for marker in [job.to_string().as_str(), marker] {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{marker:?} of the other account is in {}",
                file.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_booking_keeps_the_servers_code() {
    let tb = TestBackend::start().await;
    let heidi = tb.customer("Heidi").await;
    let dir = tempfile::tempdir().unwrap();
    let customer = open_customer(&tb.base_url, &heidi, &dir.path().join("heidi.db")).await;
    let mut request = booking_at(places::OERLIKON);
    request.service_id = "no.such_service".into();
    let local = customer.book(request).await.unwrap();
    customer.sync_once().await.unwrap();
    match customer.booking(local).await {
        Err(CoreError::Refused { code, .. }) => assert_eq!(code, ErrorCode::UnknownService),
        other => panic!("{other:?}"),
    }
}
