//! What a push says — without personal data, since pushes cross Google's and Apple's servers
//! (SPEC §5, issue 13.3). An offer names the category, the catalog title of the service, the
//! approximate distance from the Friend's home (measured to the job's approximate point, never the
//! exact one), the orientation price, the expiry and the job id. A job update names the state and,
//! for the customer, the Friend's first name at most. Never: the customer's name, phone, address,
//! exact location, access notes or description.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use friend_protocol::{GeoPoint, JobDetails, JobState, Offer};

use super::PushMessage;

/// How long a job update may wait at the gateway for an offline device.
pub const UPDATE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The data key every push carries: `offer` or `job`.
pub const KIND: &str = "kind";
/// The data key naming the job.
pub const JOB_ID: &str = "job_id";

/// The collapse key of a job's pushes to one device (≤ 64 bytes: a UUID and a short prefix).
pub fn collapse_key(kind: &str, job: &friend_protocol::JobId) -> String {
    format!("{kind}-{job}")
}

/// The approximate distance in whole km (at least 1) from `home` to the offer's approximate
/// point; `None` for remote jobs or an unknown home.
pub fn approx_distance_km(offer: &Offer, home: Option<&GeoPoint>) -> Option<u64> {
    let (point, home) = (offer.approx_location.as_ref()?, home?);
    let km = (point.distance_m(home) / 1000.0).round();
    // f64 → u64: distances on Earth fit; the cast saturates anyway.
    Some((km as u64).max(1))
}

/// The push that offers an open job to an eligible Friend whose registered home is `home`.
pub fn offer_push(offer: &Offer, home: Option<&GeoPoint>, now: DateTime<Utc>) -> PushMessage {
    let distance = approx_distance_km(offer, home);
    let price = offer.orientation_price.to_string();
    let body = match distance {
        Some(km) => format!("≈ {km} km away · {price}"),
        None => format!("Remote · {price}"),
    };
    let mut data = BTreeMap::new();
    data.insert(KIND.to_string(), "offer".to_string());
    data.insert(JOB_ID.to_string(), offer.id.to_string());
    data.insert("category".to_string(), offer.category.as_str().to_string());
    data.insert("title".to_string(), offer.title.clone());
    data.insert("price".to_string(), price);
    data.insert(
        "expires_at".to_string(),
        offer.expires_at.timestamp_millis().to_string(),
    );
    if let Some(km) = distance {
        data.insert("distance_km".to_string(), km.to_string());
    }
    PushMessage {
        title: format!("New job: {}", offer.title),
        body,
        data,
        collapse_key: collapse_key("offer", &offer.id),
        ttl: (offer.expires_at - now).to_std().unwrap_or(Duration::ZERO),
    }
}

/// Who a job update goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// The job's customer: may read the holding Friend's first name.
    Customer,
    /// The Friend holding the job: the state only.
    Friend,
}

/// The push that tells the customer or the holding Friend their job changed: the state and, for
/// the customer, the Friend's first name at most.
pub fn job_update_push(job: &JobDetails, to: Recipient) -> PushMessage {
    let first_name = match to {
        Recipient::Customer => job
            .friend
            .as_ref()
            .and_then(|f| f.name.split_whitespace().next())
            .map(str::to_string),
        Recipient::Friend => None,
    };
    let who = first_name.as_deref().unwrap_or("Your Friend");
    let body = match (to, job.state) {
        (Recipient::Customer, JobState::Assigned) => format!("{who} accepted your job"),
        (Recipient::Customer, JobState::OnSite) => format!("{who} has arrived"),
        (Recipient::Customer, JobState::Agreed) => "The price is agreed".to_string(),
        (Recipient::Customer, JobState::Completed) => "Your job is done".to_string(),
        (Recipient::Customer, JobState::Expired) => "Nobody accepted your job in time".to_string(),
        (Recipient::Friend, JobState::Cancelled) => "The customer cancelled".to_string(),
        (_, state) => format!("Your job is now {}", state.as_str().replace('_', " ")),
    };
    let mut data = BTreeMap::new();
    data.insert(KIND.to_string(), "job".to_string());
    data.insert(JOB_ID.to_string(), job.id.to_string());
    data.insert("state".to_string(), job.state.as_str().to_string());
    if let Some(name) = &first_name {
        data.insert("friend_first_name".to_string(), name.clone());
    }
    PushMessage {
        title: job.title.clone(),
        body,
        data,
        collapse_key: collapse_key("job", &job.id),
        ttl: UPDATE_TTL,
    }
}
