//! The inbox query: open offers near the device's current position, from the cache only. A
//! bounding box on the indexed approximate coordinates narrows the rows in SQL; the exact
//! great-circle distance is computed in Rust, and only offers within the radius are parsed. The
//! live position is an argument of this query and nothing else: it never leaves the device.

use crate::error::{CoreError, CoreResult};
use crate::store::cache;
use friend_protocol::geo::BoundingBox;
use friend_protocol::{Category, GeoPoint, JobId, Offer};
use rusqlite::Connection;
use std::collections::HashSet;

/// Narrows the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxFilter {
    /// Only these categories (empty: all).
    pub categories: Vec<Category>,
    /// Include remote offers (they have no distance; listed after the on-site ones).
    pub include_remote: bool,
    /// At most this many offers.
    pub limit: Option<u32>,
}

impl Default for InboxFilter {
    fn default() -> Self {
        InboxFilter {
            categories: Vec::new(),
            include_remote: true,
            limit: None,
        }
    }
}

/// One offer in the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxItem {
    /// The offer (approximate location, no personal data).
    pub offer: Offer,
    /// Great-circle distance from the given position to the approximate point, metres; none for
    /// remote offers.
    pub distance_m: Option<f64>,
    /// Seconds until the offer expires, by the server's clock.
    pub expires_in_secs: i64,
}

/// The inbox as cached.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbox {
    /// Offers sorted by distance, remote ones last.
    pub items: Vec<InboxItem>,
    /// Seconds since the last successful sync (none: never synced).
    pub cache_age_secs: Option<i64>,
}

/// Largest radius the inbox accepts, km (larger than any Friend's travel radius, for dense lists).
pub const MAX_INBOX_RADIUS_KM: f64 = 500.0;

/// Runs the inbox query. `hidden` are offers with a pending local decline.
pub fn query(
    conn: &Connection,
    position: &GeoPoint,
    radius_km: f64,
    filter: &InboxFilter,
    server_now_ms: i64,
    hidden: &HashSet<JobId>,
) -> CoreResult<Vec<InboxItem>> {
    if !radius_km.is_finite() || !(0.0..=MAX_INBOX_RADIUS_KM).contains(&radius_km) {
        return Err(CoreError::InvalidInput(format!(
            "radius must be 0…{MAX_INBOX_RADIUS_KM} km"
        )));
    }
    let radius_m = radius_km * 1000.0;
    let bbox = BoundingBox::around(position, radius_m);
    let offers = cache::offers_near(
        conn,
        &bbox,
        filter.include_remote,
        server_now_ms,
        |lat, lon| GeoPoint::new(lat, lon).is_ok_and(|p| position.distance_m(&p) <= radius_m),
    )?;
    let mut items: Vec<InboxItem> = offers
        .into_iter()
        .filter(|o| !hidden.contains(&o.id))
        .filter(|o| filter.categories.is_empty() || filter.categories.contains(&o.category))
        .map(|offer| {
            let distance_m = offer.approx_location.map(|p| position.distance_m(&p));
            let expires_in_secs = (offer.expires_at.timestamp_millis() - server_now_ms) / 1000;
            InboxItem {
                offer,
                distance_m,
                expires_in_secs,
            }
        })
        .collect();
    items.sort_by(|a, b| match (a.distance_m, b.distance_m) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.offer.expires_at.cmp(&b.offer.expires_at),
    });
    items.dedup_by(|a, b| a.offer.id == b.offer.id);
    if let Some(limit) = filter.limit {
        items.truncate(limit as usize);
    }
    Ok(items)
}
