//! Input limits and validation shared by the backend (which enforces them) and clients (which
//! check before queueing, so an offline action is not refused later for a reason known now).

use crate::{
    BookRequest, Category, MAX_FRIEND_RADIUS_KM, NewCustomer, NewFriend, Place, Tier, Timing,
};
use thiserror::Error;

/// Longest free text (descriptions, notes), in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Longest short field (names, street, city, phone, ids), in characters.
pub const MAX_SHORT_CHARS: usize = 120;
/// Most communities a Friend may belong to.
pub const MAX_COMMUNITIES: usize = 16;
/// Longest slot a customer may request, in hours.
pub const MAX_SLOT_HOURS: i64 = 12;

/// A field failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    /// The offending field, dotted path.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

fn invalid(field: &'static str, problem: impl Into<String>) -> Invalid {
    Invalid {
        field,
        problem: problem.into(),
    }
}

fn text(field: &'static str, value: &str, max: usize, required: bool) -> Result<(), Invalid> {
    if required && value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, format!("longer than {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

fn radius(field: &'static str, km: u32) -> Result<(), Invalid> {
    if km == 0 || km > MAX_FRIEND_RADIUS_KM {
        return Err(invalid(
            field,
            format!("must be 1…{MAX_FRIEND_RADIUS_KM} km"),
        ));
    }
    Ok(())
}

/// Validates an optional free-text note (at most [`MAX_TEXT_CHARS`], no control characters but
/// line breaks).
pub fn note(field: &'static str, value: Option<&str>) -> Result<(), Invalid> {
    match value {
        Some(v) => text(field, v, MAX_TEXT_CHARS, false),
        None => Ok(()),
    }
}

/// Validates a booking. `now` is the server's clock (slots must lie in the future).
pub fn book_request(req: &BookRequest, now: chrono::DateTime<chrono::Utc>) -> Result<(), Invalid> {
    text("service_id", &req.service_id, MAX_SHORT_CHARS, true)?;
    text("description", &req.description, MAX_TEXT_CHARS, true)?;
    text("contact.name", &req.contact.name, MAX_SHORT_CHARS, true)?;
    text("contact.phone", &req.contact.phone, MAX_SHORT_CHARS, true)?;
    if let Some(notes) = &req.access_notes {
        text("access_notes", notes, MAX_TEXT_CHARS, false)?;
    }
    if let Some(brand) = &req.brand {
        text("brand", brand, MAX_SHORT_CHARS, true)?;
    }
    if let Some(r) = req.radius_km {
        radius("radius_km", r)?;
    }
    match req.timing {
        Timing::Now => {}
        Timing::Slot { start, end } => {
            if start <= now {
                return Err(invalid("timing.start", "must be in the future"));
            }
            if end <= start {
                return Err(invalid("timing.end", "must be after the start"));
            }
            if end - start > chrono::Duration::hours(MAX_SLOT_HOURS) {
                return Err(invalid(
                    "timing.end",
                    format!("slot longer than {MAX_SLOT_HOURS} h"),
                ));
            }
            if start - now > chrono::Duration::days(90) {
                return Err(invalid("timing.start", "more than 90 days ahead"));
            }
        }
        Timing::Unknown => return Err(invalid("timing.kind", "unknown timing")),
    }
    if let Some(a) = &req.address {
        text("address.street", &a.street, MAX_SHORT_CHARS, true)?;
        text("address.postal_code", &a.postal_code, 16, true)?;
        text("address.city", &a.city, MAX_SHORT_CHARS, true)?;
    }
    match req.place {
        Place::OnSite => {
            if req.location.is_none() {
                return Err(invalid("location", "required for on-site jobs"));
            }
            if req.address.is_none() {
                return Err(invalid("address", "required for on-site jobs"));
            }
        }
        Place::Remote => {}
        Place::Unknown => return Err(invalid("place", "unknown place")),
    }
    Ok(())
}

/// Validates an admin request to create a Friend.
pub fn new_friend(req: &NewFriend) -> Result<(), Invalid> {
    text("name", &req.name, MAX_SHORT_CHARS, true)?;
    radius("radius_km", req.radius_km)?;
    if req.categories.is_empty() {
        return Err(invalid("categories", "at least one category"));
    }
    if req.categories.contains(&Category::Unknown) {
        return Err(invalid("categories", "unknown category"));
    }
    if req.communities.len() > MAX_COMMUNITIES {
        return Err(invalid(
            "communities",
            format!("more than {MAX_COMMUNITIES}"),
        ));
    }
    for c in &req.communities {
        text("communities", c, MAX_SHORT_CHARS, true)?;
    }
    if req.tier == Tier::Unknown {
        return Err(invalid("tier", "unknown tier"));
    }
    Ok(())
}

/// Validates an admin request to create a customer.
pub fn new_customer(req: &NewCustomer) -> Result<(), Invalid> {
    text("name", &req.name, MAX_SHORT_CHARS, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Address, Contact, GeoPoint};
    use chrono::{Duration, Utc};

    fn booking() -> BookRequest {
        BookRequest {
            service_id: "network.router_setup".into(),
            description: "Set up my new router".into(),
            timing: Timing::Now,
            place: Place::OnSite,
            location: Some(GeoPoint::new(47.37, 8.54).unwrap()),
            address: Some(Address {
                street: "Langstrasse 1".into(),
                postal_code: "8004".into(),
                city: "Zürich".into(),
            }),
            contact: Contact {
                name: "Heidi Muster".into(),
                phone: "+41 79 000 00 00".into(),
            },
            access_notes: None,
            brand: None,
            radius_km: None,
        }
    }

    #[test]
    fn valid_booking_passes() {
        assert_eq!(book_request(&booking(), Utc::now()), Ok(()));
    }

    #[test]
    fn bad_bookings_name_the_field() {
        let now = Utc::now();
        let mut b = booking();
        b.location = None;
        assert_eq!(book_request(&b, now).unwrap_err().field, "location");
        let mut b = booking();
        b.radius_km = Some(0);
        assert_eq!(book_request(&b, now).unwrap_err().field, "radius_km");
        let mut b = booking();
        b.description = "x".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(book_request(&b, now).unwrap_err().field, "description");
        let mut b = booking();
        b.timing = Timing::Slot {
            start: now - Duration::hours(1),
            end: now + Duration::hours(1),
        };
        assert_eq!(book_request(&b, now).unwrap_err().field, "timing.start");
        let mut b = booking();
        b.place = Place::Unknown;
        assert_eq!(book_request(&b, now).unwrap_err().field, "place");
    }
}
