//! P1 (applying a 10,000-job sync page) and P2 (the inbox query), each next to its baseline.

use crate::data::{self, NOW_MS, ZURICH};
use crate::measure::{ms, percentile, samples};
use crate::report::Row;
use friend_core::crypto::FieldCipher;
use friend_core::inbox::{self, InboxFilter};
use friend_core::store::{Store, cache};
use friend_protocol::{Change, GeoPoint, Offer};
use std::collections::HashSet;

/// P1: one 10,000-offer page applied through the cache (one transaction, as a snapshot page),
/// against a plain prepared-statement insert loop of the same rows in one transaction.
pub fn p1_apply_page() -> Row {
    let offers = data::offers(10_000, 1);
    let page = as_changes(&offers);
    let cipher = FieldCipher::new(&[7u8; 32]).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let store = Store::open(&dir.path().join("p1.db")).unwrap();
    let ours = samples(1, 7, || {
        store
            .write(|tx| {
                cache::begin_snapshot(tx)?;
                cache::apply_changes(tx, &cipher, &page, true, NOW_MS)
            })
            .unwrap();
    });

    let plain = rusqlite::Connection::open(dir.path().join("plain.db")).unwrap();
    plain.pragma_update(None, "journal_mode", "WAL").unwrap();
    plain.pragma_update(None, "synchronous", "FULL").unwrap();
    plain
        .execute_batch(
            "CREATE TABLE offers (id TEXT PRIMARY KEY, version INTEGER, category TEXT, place TEXT,
             lat REAL, lon REAL, expires_at INTEGER, body TEXT)",
        )
        .unwrap();
    let mut plain = plain;
    let baseline = samples(1, 7, || {
        let tx = plain.transaction().unwrap();
        tx.execute("DELETE FROM offers", []).unwrap();
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO offers VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .unwrap();
            for o in &offers {
                let p = o.approx_location.unwrap();
                // The same row values, the body serialised as the cache does.
                let body = serde_json::to_string(o).unwrap();
                stmt.execute(rusqlite::params![
                    o.id.to_string(),
                    o.version as i64,
                    o.category.as_str(),
                    o.place.as_str(),
                    p.lat(),
                    p.lon(),
                    o.expires_at.timestamp_millis(),
                    body
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    });
    let (a, b) = (percentile(&ours, 50.0), percentile(&baseline, 50.0));
    Row::ratio(
        "P1",
        "apply a 10,000-job sync page to the cache (median of 7)",
        ms(a),
        ms(b),
        2.0,
    )
    .baseline_name("plain rusqlite insert loop, same rows, one transaction")
}

fn inbox_rows(n: usize) -> Vec<Row> {
    let offers = data::offers(n, 2);
    let page = as_changes(&offers);
    let cipher = FieldCipher::new(&[7u8; 32]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("p2.db")).unwrap();
    store
        .write(|tx| cache::apply_changes(tx, &cipher, &page, false, NOW_MS))
        .unwrap();
    // As a session does: the in-memory index is loaded from the cache once, then kept current.
    let index = inbox::InboxIndex::new(store.read(cache::all_offers).unwrap());
    let here = GeoPoint::new(ZURICH.0, ZURICH.1).unwrap();
    let filter = InboxFilter {
        include_remote: false,
        ..InboxFilter::default()
    };
    let none = HashSet::new();
    let mut found = 0;
    let ours = samples(5, 51, || {
        let items = index.query(&here, 30.0, &filter, NOW_MS, &none).unwrap();
        found = items.len();
    });

    // Baseline: the same points in memory, haversine, filter, sort.
    let points: Vec<(&Offer, GeoPoint)> = offers
        .iter()
        .map(|o| (o, o.approx_location.unwrap()))
        .collect();
    let mut found_plain = 0;
    let baseline = samples(5, 51, || {
        let mut hits: Vec<(f64, &Offer)> = points
            .iter()
            .filter_map(|(o, p)| {
                let d = here.distance_m(p);
                (d <= 30_000.0).then_some((d, *o))
            })
            .collect();
        hits.sort_by(|a, b| a.0.total_cmp(&b.0));
        found_plain = hits.len();
    });
    assert_eq!(found, found_plain, "both return the same offers");
    let (a, b) = (percentile(&ours, 50.0), percentile(&baseline, 50.0));
    let mut rows = vec![
        Row::ratio(
            "P2",
            &format!("inbox query, {n} cached jobs, 30 km ({found} hits), sorted (median of 51)"),
            ms(a),
            ms(b),
            3.0,
        )
        .baseline_name("in-memory haversine scan of the same points"),
    ];
    if n == 10_000 {
        rows.push(Row::absolute(
            "P2",
            "inbox query, 10,000 cached jobs, median",
            ms(a),
            "ms",
            2.0,
        ));
    }
    rows
}

/// P2 at 10,000 and 100,000 cached jobs.
pub fn p2_inbox() -> Vec<Row> {
    let mut rows = inbox_rows(10_000);
    rows.extend(inbox_rows(100_000));
    rows
}

/// The offers as one sync page's changes.
fn as_changes(offers: &[friend_protocol::Offer]) -> Vec<Change> {
    offers
        .iter()
        .cloned()
        .map(|offer| Change::Offer { offer })
        .collect()
}
