//! SPEC §8 on the device: after a whole job — book, accept, check-in, quote, consent, complete,
//! rate — no personal field (name, phone, street, access notes, exact coordinates, the customer's
//! own comment) is readable in clear in any file either device's core wrote: database, -wal, -shm.
//! The app still sees all of it through the sessions (sealed, not dropped).

use friend_core::{AcceptResult, CustomerSession, FriendSession};
use friend_protocol::quote::{LineItem, LineItemKind, PaymentMethod};
use friend_protocol::{Address, Contact, JobId, Money};
use friend_tests::{TestBackend, booking_at, friend_at, open_customer, open_friend, places, point};
use std::path::Path;

const NAME: &str = "Zyxwort Geheimling";
const PHONE: &str = "+41 79 314 15 92";
const STREET: &str = "Verborgenpfad 271";
const NOTES: &str = "Klingel Quarzhuhn, 3. Stock";
const COMMENT: &str = "Sehr nett, Xylophonbus";
/// Exact coordinates, written as serde writes them.
const LAT: &str = "47.40613";
const LON: &str = "8.55377";

fn markers() -> [&'static str; 7] {
    [NAME, PHONE, STREET, NOTES, COMMENT, LAT, LON]
}

/// Every marker found in clear in any file under `dir`, as (file, marker).
fn clear_markers(dir: &Path) -> Vec<(String, &'static str)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for m in markers() {
            if bytes.windows(m.len()).any(|w| w == m.as_bytes()) {
                found.push((path.display().to_string(), m));
            }
        }
    }
    found
}

async fn sync_both(friend: &FriendSession, customer: &CustomerSession) {
    friend.sync_once().await.unwrap();
    customer.sync_once().await.unwrap();
    friend.sync_once().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_field_is_in_clear_on_either_device_after_a_whole_job() {
    let tb = TestBackend::start().await;
    let heidi = tb.customer("Heidi").await;
    let anna = tb.friend(friend_at("Anna", places::ZURICH)).await;
    let (customer_dir, friend_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let customer = open_customer(&tb.base_url, &heidi, &customer_dir.path().join("c.db")).await;
    let friend = open_friend(&tb.base_url, &anna, &friend_dir.path().join("f.db")).await;

    let mut booking = booking_at(places::OERLIKON);
    booking.location = Some(point((47.40613, 8.55377)));
    booking.contact = Contact {
        name: NAME.into(),
        phone: PHONE.into(),
    };
    booking.address = Some(Address {
        street: STREET.into(),
        postal_code: "8050".into(),
        city: "Zürich".into(),
    });
    booking.access_notes = Some(NOTES.into());
    let local = customer.book(booking).await.unwrap();
    customer.sync_once().await.unwrap();
    let job: JobId = customer.booking(local).await.unwrap().expect("booked");

    friend.sync_once().await.unwrap();
    assert!(matches!(
        friend.accept(job).await.unwrap(),
        AcceptResult::Won(_)
    ));
    friend.check_in(job).await.unwrap();
    sync_both(&friend, &customer).await;
    let quote = vec![LineItem {
        kind: LineItemKind::Service,
        description: "Router installation".into(),
        quantity: 1,
        unit_price: Money::chf(8900),
    }];
    friend.propose(job, quote, None).await.unwrap();
    sync_both(&friend, &customer).await;
    let n = customer.negotiation(job).await.unwrap();
    customer
        .accept_quote(job, n.pending().unwrap().quote.version)
        .await
        .unwrap();
    sync_both(&friend, &customer).await;
    friend.complete(job, PaymentMethod::Online).await.unwrap();
    sync_both(&friend, &customer).await;
    customer.rate(job, 5, Some(COMMENT.into())).await.unwrap();
    customer.sync_once().await.unwrap();

    // The app still reads everything it needs (the Friend goes to this address).
    let held = friend.job(job).await.unwrap();
    assert_eq!(held.details.address.unwrap().street, STREET);
    assert_eq!(held.details.contact.name, NAME);
    assert!(
        customer.outbox().await.unwrap().iter().any(|i| matches!(
            &i.action,
            friend_core::Action::Rate { comment: Some(c), .. } if c == COMMENT
        )),
        "the customer's own rating is shown back to them"
    );

    // While open (the WAL holds the latest pages) and after closing (checkpointed).
    for (when, dir) in [("open", customer_dir.path()), ("open", friend_dir.path())] {
        assert_eq!(clear_markers(dir), vec![], "{when}");
    }
    drop(customer);
    drop(friend);
    for dir in [customer_dir.path(), friend_dir.path()] {
        assert_eq!(clear_markers(dir), vec![], "closed");
    }
}
