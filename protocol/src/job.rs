//! Jobs as they travel: the booking request, the approximate offer a Friend sees before accepting,
//! and the full details only the job's customer and assigned Friend receive.

use crate::onsite::{JobOutcome, NegotiationView, PartyKeys};
use crate::quote::{PaymentMethod, Settlement};
use crate::{AccountId, Category, GeoPoint, JobId, Money, Role, Tier};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Default broadcast radius around a job, in kilometres (SPEC §2: typically 30 km).
pub const DEFAULT_JOB_RADIUS_KM: u32 = 30;
/// An open now-job expires this long after booking when nobody accepts it.
pub const NOW_JOB_TTL: Duration = Duration::hours(3);

/// Lifecycle state of a job (SPEC §3); transitions live in [`crate::lifecycle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Booked, broadcast, waiting for the first accept.
    Open,
    /// A Friend won the race and is on the way.
    Assigned,
    /// The Friend checked in on site.
    OnSite,
    /// Friend and customer agreed the final price.
    Agreed,
    /// Done and paid.
    Completed,
    /// Nobody accepted in time.
    Expired,
    /// The customer cancelled.
    Cancelled,
    /// Handed to the company's own field service.
    Escalated,
    /// Checked out without success (customer absent, cannot help).
    Unsuccessful,
    /// A state this build does not know.
    #[serde(other)]
    Unknown,
}

impl JobState {
    /// Every known state.
    pub const ALL: [JobState; 9] = [
        JobState::Open,
        JobState::Assigned,
        JobState::OnSite,
        JobState::Agreed,
        JobState::Completed,
        JobState::Expired,
        JobState::Cancelled,
        JobState::Escalated,
        JobState::Unsuccessful,
    ];

    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Open => "open",
            JobState::Assigned => "assigned",
            JobState::OnSite => "on_site",
            JobState::Agreed => "agreed",
            JobState::Completed => "completed",
            JobState::Expired => "expired",
            JobState::Cancelled => "cancelled",
            JobState::Escalated => "escalated",
            JobState::Unsuccessful => "unsuccessful",
            JobState::Unknown => "unknown",
        }
    }

    /// Parses a wire name; unknown names give [`JobState::Unknown`].
    pub fn parse(s: &str) -> JobState {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .unwrap_or(JobState::Unknown)
    }

    /// No transition leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::Expired
                | JobState::Cancelled
                | JobState::Escalated
                | JobState::Unsuccessful
        )
    }

    /// States in which a Friend holds the job.
    pub fn is_held(self) -> bool {
        matches!(
            self,
            JobState::Assigned | JobState::OnSite | JobState::Agreed
        )
    }
}

/// When the customer wants help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Timing {
    /// On demand: help arrives within 10–60 minutes.
    Now,
    /// A requested slot.
    Slot {
        /// Slot start.
        start: DateTime<Utc>,
        /// Slot end.
        end: DateTime<Utc>,
    },
    /// A timing this build does not know.
    #[serde(other)]
    Unknown,
}

impl Timing {
    /// When an open job with this timing, booked at `booked_at`, expires: now-jobs after
    /// [`NOW_JOB_TTL`], slot jobs when the slot starts.
    pub fn expires_at(&self, booked_at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Timing::Slot { start, .. } => *start,
            Timing::Now | Timing::Unknown => booked_at + NOW_JOB_TTL,
        }
    }
}

/// Where the service happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// At the customer's home or a place they pick.
    OnSite,
    /// By phone, video or messenger: no travel, no distance rule.
    Remote,
    /// A place this build does not know.
    #[serde(other)]
    Unknown,
}

impl Place {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Place::OnSite => "on_site",
            Place::Remote => "remote",
            Place::Unknown => "unknown",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Place {
        match s {
            "on_site" => Place::OnSite,
            "remote" => Place::Remote,
            _ => Place::Unknown,
        }
    }
}

/// A postal address (personal data: only for the customer and the assigned Friend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Address {
    /// Street and number.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 120))]
    pub street: String,
    /// Postal code.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 16))]
    pub postal_code: String,
    /// City or town.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 120))]
    pub city: String,
}

impl Address {
    /// The non-personal district shown before accept: postal code and city.
    pub fn district(&self) -> String {
        format!("{} {}", self.postal_code, self.city)
    }
}

/// How to reach the customer (personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    /// Customer's name.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 120))]
    pub name: String,
    /// Customer's phone number.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 120))]
    pub phone: String,
}

/// A customer's booking (`POST /v1/customer/jobs`, with an `Idempotency-Key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BookRequest {
    /// Catalog service id; sets category, orientation price and minimum tier.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 120))]
    pub service_id: String,
    /// What the customer needs, in their words.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 2000))]
    pub description: String,
    /// Now or a slot.
    pub timing: Timing,
    /// On site or remote.
    pub place: Place,
    /// Exact location; required on site, optional for remote jobs.
    #[serde(default)]
    pub location: Option<GeoPoint>,
    /// Address; required on site.
    #[serde(default)]
    pub address: Option<Address>,
    /// How the Friend reaches the customer.
    pub contact: Contact,
    /// Access notes (door code, floor); personal data.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 2000))]
    pub access_notes: Option<String>,
    /// Brand community the job belongs to; only that community's Friends see it.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 120))]
    pub brand: Option<String>,
    /// Broadcast radius in km (1…50, default 30).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
    pub radius_km: Option<u32>,
}

/// An open job as a Friend sees it before winning it: no personal data, approximate location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Offer {
    /// Job id.
    pub id: JobId,
    /// Increases with every change of the job.
    pub version: u64,
    /// Catalog service.
    pub service_id: String,
    /// Service category.
    pub category: Category,
    /// Service title.
    pub title: String,
    /// The customer's description.
    pub description: String,
    /// Now or a slot.
    pub timing: Timing,
    /// On site or remote.
    pub place: Place,
    /// Coarse, stable location ≥ 500 m from the true one; none for remote jobs.
    pub approx_location: Option<GeoPoint>,
    /// Postal code and city; none for remote jobs without an address.
    pub district: Option<String>,
    /// Orientation price of the service.
    pub orientation_price: Money,
    /// Brand community, if any.
    pub brand: Option<String>,
    /// Lowest tier allowed.
    pub min_tier: Tier,
    /// Broadcast radius in km.
    pub radius_km: u32,
    /// Booking time (server clock).
    pub created_at: DateTime<Utc>,
    /// When the offer expires (server clock).
    pub expires_at: DateTime<Utc>,
}

/// The Friend holding a job, as the customer sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FriendSummary {
    /// Account id.
    pub id: AccountId,
    /// Display name.
    pub name: String,
    /// Friend or Pro.
    pub tier: Tier,
}

/// Full job details: for the job's customer and the Friend holding it, nobody else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobDetails {
    /// Job id.
    pub id: JobId,
    /// Increases with every change of the job.
    pub version: u64,
    /// Lifecycle state.
    pub state: JobState,
    /// The booking customer.
    pub customer_id: AccountId,
    /// Catalog service.
    pub service_id: String,
    /// Service category.
    pub category: Category,
    /// Service title.
    pub title: String,
    /// The customer's description.
    pub description: String,
    /// Now or a slot.
    pub timing: Timing,
    /// On site or remote.
    pub place: Place,
    /// Exact location.
    pub location: Option<GeoPoint>,
    /// Exact address.
    pub address: Option<Address>,
    /// Postal code and city.
    pub district: Option<String>,
    /// Customer contact.
    pub contact: Contact,
    /// Access notes.
    pub access_notes: Option<String>,
    /// Orientation price of the service.
    pub orientation_price: Money,
    /// Brand community, if any.
    pub brand: Option<String>,
    /// Lowest tier allowed.
    pub min_tier: Tier,
    /// Broadcast radius in km.
    pub radius_km: u32,
    /// The Friend holding (or who last held) the job.
    pub friend: Option<FriendSummary>,
    /// Who cancelled, for cancelled jobs.
    pub cancelled_by: Option<Role>,
    /// Booking time (server clock).
    pub created_at: DateTime<Utc>,
    /// When an open job expires (server clock).
    pub expires_at: DateTime<Utc>,
    /// Last change (server clock).
    pub updated_at: DateTime<Utc>,
    /// The device keys both parties registered, to verify each other's signed consent offline.
    #[serde(default)]
    pub keys: PartyKeys,
    /// The price negotiation, once a first quote was proposed.
    #[serde(default)]
    pub negotiation: Option<NegotiationView>,
    /// How the customer paid, once completed.
    #[serde(default)]
    pub payment: Option<PaymentMethod>,
    /// The agreed total the job was completed at.
    #[serde(default)]
    pub final_total: Option<Money>,
    /// What the total settled at: charged (cash rounded to the smallest coin), fee and payout.
    #[serde(default)]
    pub settlement: Option<Settlement>,
    /// The customer's rating (1–5 stars), once given.
    #[serde(default)]
    pub rating: Option<u8>,
    /// How an escalated or unsuccessful job ended, with the Friend's note.
    #[serde(default)]
    pub outcome: Option<JobOutcome>,
    /// The agreed visit, "on my way", compensation, and how often it was offered again.
    #[serde(default)]
    pub visit: crate::visit::VisitView,
}

/// Why a Friend declines an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    /// Too far away right now.
    TooFar,
    /// No time.
    NoTime,
    /// Outside the Friend's skills.
    NotMySkill,
    /// Anything else.
    Other,
    /// A reason this build does not know.
    #[serde(other)]
    Unknown,
}

/// `POST /v1/friend/jobs/{id}/decline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeclineRequest {
    /// Why.
    pub reason: DeclineReason,
}

/// Result of a state-changing call on a job: the job as the caller may now see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobResponse {
    /// The job after the change.
    pub job: JobDetails,
}

/// `GET /v1/customer/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobList {
    /// The caller's jobs, newest first.
    pub jobs: Vec<JobDetails>,
}

/// `GET /v1/friend/jobs/{id}`: the full job when the caller holds it, else the offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "view", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // a short-lived response value; boxing buys nothing
pub enum FriendJobView {
    /// The caller holds (or held) the job.
    Full(JobDetails),
    /// An open job the caller is eligible for.
    Offer(Offer),
    /// A view this build does not know.
    #[serde(other)]
    Unknown,
}

/// Assumed travel speed between two jobs when checking slot overlaps (urban traffic), km/h.
pub const TRAVEL_SPEED_KMH: f64 = 30.0;

/// A held slot job's time and place, for the overlap rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotUse {
    /// Slot start.
    pub start: DateTime<Utc>,
    /// Slot end.
    pub end: DateTime<Utc>,
    /// Where (none for remote jobs).
    pub location: Option<GeoPoint>,
}

/// Whether one Friend can not do both slot jobs: they overlap once the travel time between the two
/// places (at [`TRAVEL_SPEED_KMH`], none when either is remote) is added.
pub fn slots_conflict(a: &SlotUse, b: &SlotUse) -> bool {
    let travel = match (a.location, b.location) {
        (Some(x), Some(y)) => {
            let minutes = x.distance_m(&y) / 1000.0 / TRAVEL_SPEED_KMH * 60.0;
            Duration::minutes(minutes.ceil() as i64)
        }
        _ => Duration::zero(),
    };
    a.start < b.end + travel && b.start < a.end + travel
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn slot(h0: u32, h1: u32, lat: f64) -> SlotUse {
        let day = |h| Utc.with_ymd_and_hms(2026, 11, 23, h, 0, 0).unwrap();
        SlotUse {
            start: day(h0),
            end: day(h1),
            location: Some(GeoPoint::new(lat, 8.54).unwrap()),
        }
    }

    #[test]
    fn overlapping_slots_conflict() {
        assert!(slots_conflict(&slot(9, 11, 47.37), &slot(10, 12, 47.37)));
        assert!(!slots_conflict(&slot(9, 10, 47.37), &slot(11, 12, 47.37)));
    }

    #[test]
    fn travel_time_counts() {
        // Back to back, but ~33 km apart: 67 minutes of travel make them conflict.
        assert!(slots_conflict(&slot(9, 10, 47.37), &slot(10, 11, 47.07)));
        assert!(!slots_conflict(&slot(9, 10, 47.37), &slot(10, 11, 47.37)));
        let remote = SlotUse {
            location: None,
            ..slot(10, 11, 0.0)
        };
        assert!(!slots_conflict(&slot(9, 10, 47.37), &remote));
    }
}
