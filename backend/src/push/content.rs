//! What a push says — without personal data, since pushes cross Google's and Apple's servers
//! (SPEC §5, issue 13.3). An offer names the category, the catalog title of the service, the
//! approximate distance from the Friend's home (measured to the job's approximate point, never the
//! exact one), the orientation price, the expiry and the job id. A job update names the state and,
//! for the customer, the Friend's first name at most. Never: the customer's name, phone, address,
//! exact location, access notes or description.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use friend_protocol::push::{PUSH_JOB_KEY, PUSH_KIND_KEY, PushKind};
use friend_protocol::{GeoPoint, JobDetails, Offer};

use super::PushMessage;

/// How long a job update may wait at the gateway for an offline device.
pub const UPDATE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The data key every push carries: `offer` or `job` ([`PushKind`]).
pub const KIND: &str = PUSH_KIND_KEY;
/// The data key naming the job.
pub const JOB_ID: &str = PUSH_JOB_KEY;

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
    data.insert(KIND.to_string(), PushKind::Offer.as_str().to_string());
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
        collapse_key: collapse_key(PushKind::Offer.as_str(), &offer.id),
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

/// What happened to a job, as a push tells its parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// A Friend accepted the job (to the customer).
    Accepted,
    /// The Friend checked in (to the customer).
    Arrived,
    /// A price proposal waits for the recipient's answer.
    QuoteWaits,
    /// The other party accepted the price.
    PriceAgreed,
    /// The other party rejected the price proposal.
    QuoteRejected,
    /// The job is completed (to the customer).
    Completed,
    /// Nobody accepted in time (to the customer).
    Expired,
    /// The customer cancelled (to the Friend).
    Cancelled,
    /// The customer rated the job (to the Friend).
    Rated,
    /// The Friend handed the job to the field service (to the customer).
    Escalated,
    /// The Friend checked out without success (to the customer).
    CheckedOut,
    /// The holding Friend recorded the visit (to the customer).
    AppointmentSet,
    /// The holding Friend is on the way (to the customer).
    OnTheWay,
    /// The job is offered again: the Friend gave it back (to the customer).
    SearchingAgain,
    /// The customer declined the moved visit; the Friend is released (to that Friend).
    AppointmentDeclined,
}

/// The push that tells the customer or the holding Friend what happened to their job: the state
/// and, for the customer, the Friend's first name at most.
pub fn update_push(job: &JobDetails, to: Recipient, what: Update) -> PushMessage {
    let first_name = match to {
        Recipient::Customer => job
            .friend
            .as_ref()
            .and_then(|f| f.name.split_whitespace().next())
            .map(str::to_string),
        Recipient::Friend => None,
    };
    let who = first_name.as_deref().unwrap_or("Your Friend");
    let body = match what {
        Update::Accepted => format!("{who} accepted your job"),
        Update::Arrived => format!("{who} has arrived"),
        Update::QuoteWaits => "A price proposal waits for your answer".to_string(),
        Update::PriceAgreed => "The price is agreed".to_string(),
        Update::QuoteRejected => "The price proposal was rejected".to_string(),
        Update::Completed => "Your job is done".to_string(),
        Update::Expired => "Nobody accepted your job in time".to_string(),
        Update::Cancelled => "The customer cancelled".to_string(),
        Update::Rated => "The customer rated your work".to_string(),
        Update::Escalated => "Your job was handed to the field service".to_string(),
        Update::CheckedOut => format!("{who} checked out without finishing"),
        Update::AppointmentSet => match job.visit.appointment {
            Some(a) if a.moved => format!("{who} proposes another time for the visit"),
            _ => format!("{who} confirmed the visit"),
        },
        Update::OnTheWay => match job.visit.en_route {
            Some(r) => format!(
                "{who} is on the way, arriving in about {} min",
                (r.eta - r.sent_at).num_minutes().max(1)
            ),
            None => format!("{who} is on the way"),
        },
        Update::SearchingAgain => "Looking for another Friend".to_string(),
        Update::AppointmentDeclined => "The customer declined the new time".to_string(),
    };
    let mut data = BTreeMap::new();
    data.insert(KIND.to_string(), PushKind::Job.as_str().to_string());
    data.insert(JOB_ID.to_string(), job.id.to_string());
    data.insert("state".to_string(), job.state.as_str().to_string());
    if let Some(name) = &first_name {
        data.insert("friend_first_name".to_string(), name.clone());
    }
    if let (Update::OnTheWay, Some(r)) = (what, job.visit.en_route) {
        data.insert("eta".to_string(), r.eta.timestamp_millis().to_string());
    }
    PushMessage {
        title: job.title.clone(),
        body,
        data,
        collapse_key: collapse_key(PushKind::Job.as_str(), &job.id),
        ttl: UPDATE_TTL,
    }
}
