//! Between the accept and the arrival (SPEC §3): the agreed visit, "on my way" with an arrival
//! estimate, and the compensation a customer owes for a late cancellation or a no-show — the rules
//! once, for the backend that enforces them and the core that checks before queueing and previews
//! the fee.
//!
//! These annotate an `assigned` job; they are not states. The lifecycle events are
//! [`crate::lifecycle::Event::SetAppointment`], [`crate::lifecycle::Event::OnMyWay`] and
//! [`crate::lifecycle::Event::DeclineAppointment`] (which returns the job to open).

use crate::job::TRAVEL_SPEED_KMH;
use crate::quote::{PaymentMethod, QuotePolicy, Settlement};
use crate::validate::Invalid;
use crate::{Currency, GeoPoint, Money, Timing};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Longest arrival window of a now-job, and the furthest ahead it may end.
pub const NOW_WINDOW_MAX: Duration = Duration::hours(4);
/// A now-job's agreed visit must end within this long after it is recorded.
pub const NOW_VISIT_HORIZON: Duration = Duration::hours(12);
/// Longest agreed visit of a slot job.
pub const SLOT_VISIT_MAX: Duration = Duration::hours(12);
/// An estimate may lie at most this far ahead.
pub const MAX_ETA: Duration = Duration::hours(6);
/// A cancellation this close to the agreed visit (or later) owes the compensation fee.
pub const LATE_CANCELLATION: Duration = Duration::hours(24);
/// Minutes added to every straight-line estimate (parking, stairs, finding the door).
pub const ARRIVAL_MARGIN_MIN: i64 = 5;
/// The compensation fee of the catalog's policy: CHF 39.00 (what the platform's help pages name as
/// the call-out charge for a wasted trip).
pub const COMPENSATION_FEE_CHF_MINOR: i64 = 3_900;

/// The agreed visit of an assigned job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Appointment {
    /// Earliest arrival.
    pub start: DateTime<Utc>,
    /// Latest arrival.
    pub end: DateTime<Utc>,
    /// A slot job's visit that differs from the booked slot: the customer may decline it.
    pub moved: bool,
}

/// The holding Friend gives an assigned job back before arriving
/// (`POST /v1/friend/jobs/{id}/release`) and says why.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseRequest {
    /// Why (older clients send none).
    #[serde(default)]
    pub reason: Option<ReleaseReason>,
    /// A short note for the platform (never shown to the customer).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 2000))]
    pub note: Option<String>,
}

/// What a job's parties see of the time between the accept and the arrival, and of the money an
/// unhappy ending owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VisitView {
    /// The agreed visit, once the holding Friend recorded it.
    #[serde(default)]
    pub appointment: Option<Appointment>,
    /// The holding Friend's latest "on my way".
    #[serde(default)]
    pub en_route: Option<EnRoute>,
    /// What the customer owes for a late cancellation or a no-show.
    #[serde(default)]
    pub compensation: Option<Compensation>,
    /// How often the job was offered again after a Friend held it (given back, or a moved visit
    /// declined): the customer's app says "looking for another Friend".
    #[serde(default)]
    pub reopened: u32,
}

/// The holding Friend records the agreed visit (`POST /v1/friend/jobs/{id}/appointment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppointmentRequest {
    /// Earliest arrival.
    pub start: DateTime<Utc>,
    /// Latest arrival.
    pub end: DateTime<Utc>,
}

/// The holding Friend is on the way (`POST /v1/friend/jobs/{id}/on-my-way`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OnMyWayRequest {
    /// Estimated arrival (computed on the device; the position never leaves it).
    pub eta: DateTime<Utc>,
}

/// The Friend's latest "on my way" with its estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnRoute {
    /// Estimated arrival.
    pub eta: DateTime<Utc>,
    /// When the Friend sent it (server clock).
    pub sent_at: DateTime<Utc>,
}

/// Why a Friend gives an accepted job back before arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The customer could not be reached to fix the visit.
    CustomerUnreachable,
    /// No time the customer wants works for the Friend.
    NoMatchingTime,
    /// The Friend cannot come after all (illness, emergency).
    CannotCome,
    /// Something else.
    Other,
    /// A reason this build does not know.
    #[serde(other)]
    Unknown,
}

impl ReleaseReason {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseReason::CustomerUnreachable => "customer_unreachable",
            ReleaseReason::NoMatchingTime => "no_matching_time",
            ReleaseReason::CannotCome => "cannot_come",
            ReleaseReason::Other => "other",
            ReleaseReason::Unknown => "unknown",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> ReleaseReason {
        [
            ReleaseReason::CustomerUnreachable,
            ReleaseReason::NoMatchingTime,
            ReleaseReason::CannotCome,
            ReleaseReason::Other,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .unwrap_or(ReleaseReason::Unknown)
    }
}

/// What the customer owes for an unhappy ending, as the job's details and the Friend's ledger show
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Compensation {
    /// Why it is owed.
    pub cause: CompensationCause,
    /// The fee charged to the customer, and the platform's commission and the Friend's payout.
    pub settlement: Settlement,
}

/// Why a compensation fee is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CompensationCause {
    /// Cancelled after the accept, less than 24 h before the visit (now-jobs: any time).
    LateCancellation,
    /// The customer was not there (unsuccessful check-out, customer absent).
    NoShow,
    /// A cause this build does not know.
    #[serde(other)]
    Unknown,
}

impl CompensationCause {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CompensationCause::LateCancellation => "late_cancellation",
            CompensationCause::NoShow => "no_show",
            CompensationCause::Unknown => "unknown",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> CompensationCause {
        match s {
            "late_cancellation" => CompensationCause::LateCancellation,
            "no_show" => CompensationCause::NoShow,
            _ => CompensationCause::Unknown,
        }
    }
}

/// What a cancellation would cost now (`GET /v1/customer/jobs/{id}/cancel-preview`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CancelPreview {
    /// The fee a cancellation now owes; `None`: free.
    pub fee: Option<Money>,
    /// When a cancellation becomes late (`None`: already late, or never for an open job).
    pub free_until: Option<DateTime<Utc>>,
}

/// The compensation policy of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompensationPolicy {
    /// The fee a late cancellation or a no-show owes.
    pub fee: Money,
}

impl Default for CompensationPolicy {
    fn default() -> Self {
        CompensationPolicy {
            fee: Money {
                minor: COMPENSATION_FEE_CHF_MINOR,
                currency: Currency::Chf,
            },
        }
    }
}

impl CompensationPolicy {
    /// The settlement of a fee owed for `cause`: charged online, with the platform's commission as
    /// for a completed job.
    pub fn compensation(
        &self,
        cause: CompensationCause,
        quote: &QuotePolicy,
    ) -> Option<Compensation> {
        let settlement = Settlement::for_total(self.fee, PaymentMethod::Online, quote).ok()?;
        Some(Compensation { cause, settlement })
    }
}

/// `t` to whole milliseconds: the precision every time is stored and compared at.
pub fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Checks a visit the holding Friend records at `now` for a job with `timing`: a now-job gets an
/// arrival window of at most 4 h ending within 12 h; a slot job its slot, or another visit of at
/// most 12 h by agreement — in the future either way. Returns the appointment (with `moved` set).
pub fn appointment(
    timing: &Timing,
    req: &AppointmentRequest,
    now: DateTime<Utc>,
) -> Result<Appointment, Invalid> {
    let bad = |field: &'static str, problem: &str| Invalid {
        field,
        problem: problem.to_string(),
    };
    if req.end <= req.start {
        return Err(bad("end", "must be after start"));
    }
    if req.end <= now {
        return Err(bad("end", "must lie in the future"));
    }
    match timing {
        Timing::Now => {
            if req.end - req.start > NOW_WINDOW_MAX {
                return Err(bad("end", "a now-job's arrival window is at most 4 hours"));
            }
            if req.end > now + NOW_VISIT_HORIZON {
                return Err(bad("end", "a now-job's visit ends within 12 hours"));
            }
            Ok(Appointment {
                start: to_millis(req.start),
                end: to_millis(req.end),
                moved: false,
            })
        }
        Timing::Slot { start, end } => {
            if req.end - req.start > SLOT_VISIT_MAX {
                return Err(bad("end", "a visit is at most 12 hours"));
            }
            Ok(Appointment {
                start: to_millis(req.start),
                end: to_millis(req.end),
                moved: (to_millis(req.start), to_millis(req.end))
                    != (to_millis(*start), to_millis(*end)),
            })
        }
        Timing::Unknown => Err(bad("timing", "unknown timing")),
    }
}

/// Checks an arrival estimate sent at `now`: not in the past (a minute of clock skew allowed), at
/// most [`MAX_ETA`] ahead.
pub fn on_my_way(req: &OnMyWayRequest, now: DateTime<Utc>) -> Result<(), Invalid> {
    if req.eta < now - Duration::minutes(1) || req.eta > now + MAX_ETA {
        return Err(Invalid {
            field: "eta",
            problem: "must lie between now and 6 hours ahead".into(),
        });
    }
    Ok(())
}

/// The straight-line arrival estimate from `from` (the device's position, which never leaves it)
/// to `to` at the travel speed the slot-overlap rule assumes ([`TRAVEL_SPEED_KMH`], urban traffic;
/// the straight line underestimates the route and the speed absorbs it), plus
/// [`ARRIVAL_MARGIN_MIN`].
pub fn straight_line_eta(from: &GeoPoint, to: &GeoPoint, now: DateTime<Utc>) -> DateTime<Utc> {
    let km = from.distance_m(to) / 1000.0;
    // Whole minutes, rounded up; distances on Earth fit an i64 of minutes.
    let minutes = (km / TRAVEL_SPEED_KMH * 60.0).ceil() as i64;
    now + Duration::minutes(minutes + ARRIVAL_MARGIN_MIN)
}

/// When the visit a late-cancellation rule measures from begins: the agreed visit, else the
/// booked slot. `None` for a now-job without one (every cancellation after the accept is late).
pub fn visit_start(timing: &Timing, appointment: Option<&Appointment>) -> Option<DateTime<Utc>> {
    match (appointment, timing) {
        (Some(a), Timing::Slot { .. }) => Some(a.start),
        (None, Timing::Slot { start, .. }) => Some(*start),
        _ => None,
    }
}

/// What a customer's cancellation at `now` owes: nothing while the job is open (nobody accepted),
/// the fee once a Friend holds it — for a now-job at any time, for a slot job less than 24 h before
/// the visit.
pub fn cancel_preview(
    held: bool,
    timing: &Timing,
    appointment: Option<&Appointment>,
    now: DateTime<Utc>,
    policy: &CompensationPolicy,
) -> CancelPreview {
    if !held {
        return CancelPreview {
            fee: None,
            free_until: None,
        };
    }
    match visit_start(timing, appointment) {
        Some(start) if now < start - LATE_CANCELLATION => CancelPreview {
            fee: None,
            free_until: Some(start - LATE_CANCELLATION),
        },
        _ => CancelPreview {
            fee: Some(policy.fee),
            free_until: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(min)
    }

    fn slot(start_h: i64) -> Timing {
        Timing::Slot {
            start: t(start_h * 60),
            end: t(start_h * 60 + 120),
        }
    }

    #[test]
    fn now_job_windows() {
        let now = t(0);
        let ok = AppointmentRequest {
            start: t(20),
            end: t(80),
        };
        assert!(!appointment(&Timing::Now, &ok, now).unwrap().moved);
        let long = AppointmentRequest {
            start: t(0),
            end: t(300),
        };
        assert_eq!(
            appointment(&Timing::Now, &long, now).unwrap_err().field,
            "end"
        );
        let far = AppointmentRequest {
            start: t(800),
            end: t(820),
        };
        assert!(appointment(&Timing::Now, &far, now).is_err());
        let past = AppointmentRequest {
            start: t(-90),
            end: t(-30),
        };
        assert!(appointment(&Timing::Now, &past, now).is_err());
        let backwards = AppointmentRequest {
            start: t(60),
            end: t(30),
        };
        assert!(appointment(&Timing::Now, &backwards, now).is_err());
    }

    #[test]
    fn slot_confirmed_or_moved() {
        let timing = slot(48);
        let same = AppointmentRequest {
            start: t(48 * 60),
            end: t(48 * 60 + 120),
        };
        assert!(!appointment(&timing, &same, t(0)).unwrap().moved);
        let moved = AppointmentRequest {
            start: t(50 * 60),
            end: t(50 * 60 + 60),
        };
        assert!(appointment(&timing, &moved, t(0)).unwrap().moved);
    }

    #[test]
    fn estimates() {
        let now = t(0);
        assert!(on_my_way(&OnMyWayRequest { eta: t(25) }, now).is_ok());
        assert!(on_my_way(&OnMyWayRequest { eta: t(-5) }, now).is_err());
        assert!(on_my_way(&OnMyWayRequest { eta: t(7 * 60) }, now).is_err());
        let zurich = GeoPoint::new(47.3779, 8.5403).unwrap();
        let oerlikon = GeoPoint::new(47.4111, 8.5441).unwrap();
        // ~3.7 km at 30 km/h: 8 minutes, plus the margin.
        assert_eq!(
            straight_line_eta(&zurich, &oerlikon, now),
            t(8 + ARRIVAL_MARGIN_MIN)
        );
        assert_eq!(
            straight_line_eta(&zurich, &zurich, now),
            t(ARRIVAL_MARGIN_MIN)
        );
    }

    #[test]
    fn fees() {
        let policy = CompensationPolicy::default();
        let fee = Some(policy.fee);
        assert_eq!(
            cancel_preview(false, &Timing::Now, None, t(0), &policy).fee,
            None
        );
        assert_eq!(
            cancel_preview(true, &Timing::Now, None, t(0), &policy).fee,
            fee
        );
        // A slot in 48 h: free until 24 h before, then late.
        let p = cancel_preview(true, &slot(48), None, t(0), &policy);
        assert_eq!((p.fee, p.free_until), (None, Some(t(24 * 60))));
        assert_eq!(
            cancel_preview(true, &slot(48), None, t(24 * 60), &policy).fee,
            fee
        );
        // The agreed visit counts, not the booked slot.
        let moved = Appointment {
            start: t(20 * 60),
            end: t(21 * 60),
            moved: true,
        };
        assert_eq!(
            cancel_preview(true, &slot(48), Some(&moved), t(0), &policy).fee,
            fee
        );
        let c = policy
            .compensation(CompensationCause::NoShow, &QuotePolicy::default())
            .unwrap();
        assert_eq!(c.settlement.charged.minor, 3_900);
        assert_eq!(c.settlement.fee.minor + c.settlement.payout.minor, 3_900);
    }

    proptest! {
        /// Along any sequence of events, a job ends with money changing hands at most once: a
        /// completion, a cancellation while held, or an unsuccessful check-out — never two (each
        /// is terminal), and a cancellation while open never owes anything.
        #[test]
        fn at_most_one_fee_or_payment_per_job(events in proptest::collection::vec((0usize..12, 0u8..3), 0..40)) {
            use crate::lifecycle::{Actor, Event, JobFacts, transition};
            use crate::{AccountId, JobState};
            let customer = AccountId(uuid::Uuid::from_u128(1));
            let friends = [AccountId(uuid::Uuid::from_u128(10)), AccountId(uuid::Uuid::from_u128(11))];
            let mut job = JobFacts { state: JobState::Open, customer, friend: None };
            let mut money_events = 0;
            for (e, who) in events {
                let event = Event::ALL[e];
                let actor = match who {
                    0 => Actor::Customer(customer),
                    1 => Actor::Friend(friends[0]),
                    _ => Actor::Friend(friends[1]),
                };
                let Ok(next) = transition(&job, &actor, event) else { continue };
                let owes = match event {
                    Event::Complete | Event::CheckOutUnsuccessful => true,
                    Event::Cancel => {
                        let p = cancel_preview(job.state == JobState::Assigned, &Timing::Now, None, t(0), &CompensationPolicy::default());
                        prop_assert_eq!(p.fee.is_some(), job.state == JobState::Assigned);
                        p.fee.is_some()
                    }
                    _ => false,
                };
                money_events += usize::from(owes);
                job = next;
            }
            prop_assert!(money_events <= 1);
        }

        /// No cancellation of an open job, and none 24 h or more before the visit, owes a fee.
        #[test]
        fn early_cancellations_are_free(held: bool, slot_in_h in 0i64..200, at_min in -600i64..12_000) {
            let policy = CompensationPolicy::default();
            let timing = slot(slot_in_h);
            let p = cancel_preview(held, &timing, None, t(at_min), &policy);
            let late = held && t(at_min) >= t(slot_in_h * 60) - LATE_CANCELLATION;
            prop_assert_eq!(p.fee.is_some(), late);
        }
    }
}
