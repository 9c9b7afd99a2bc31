//! FFI mirrors of the `friend-protocol` types an app shows or passes in, with `From` conversions.
//! The protocol crate stays free of uniffi (docs/adr/0001); these are plain data (records and
//! enums) shared by the Friend and the customer session.
//!
//! Conventions: ids are strings (UUIDs); times are `SystemTime` (Kotlin `java.time.Instant`, Swift
//! `Date`); money is integer minor units with a currency, never floating point. Every wire enum keeps
//! its `Unknown` variant, so an older app survives values a newer backend sends.

use crate::error::FriendCoreError;
use friend_protocol as p;
use std::time::SystemTime;

/// Parses a job id passed in by the app.
pub(crate) fn parse_job_id(id: &str) -> Result<p::JobId, FriendCoreError> {
    id.parse()
        .map_err(|_| FriendCoreError::invalid_input(format!("job id {id:?} is not a UUID")))
}

/// A time the app passed in, as the core's UTC time. An `Instant`/`Date` outside what the core
/// represents (about ±262,000 years; chrono's own conversion would panic) is `invalid_input`.
pub(crate) fn utc_time(
    what: &str,
    t: SystemTime,
) -> Result<chrono::DateTime<chrono::Utc>, FriendCoreError> {
    let (secs, nanos) = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => (i64::try_from(d.as_secs()).ok(), d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).ok().map(|s| -s);
            match d.subsec_nanos() {
                0 => (secs, 0),
                n => (secs.and_then(|s| s.checked_sub(1)), 1_000_000_000 - n),
            }
        }
    };
    secs.and_then(|s| chrono::DateTime::from_timestamp(s, nanos))
        .ok_or_else(|| FriendCoreError::invalid_input(format!("{what} is out of range")))
}

/// Defines an FFI enum of unit variants mirroring a protocol enum, with conversions both ways.
macro_rules! mirror_enum {
    ($(#[$doc:meta])* $name:ident => $core:path { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl From<$core> for $name {
            fn from(v: $core) -> $name {
                use $core as C;
                match v {
                    $(C::$variant => $name::$variant,)+
                }
            }
        }

        impl From<$name> for $core {
            fn from(v: $name) -> $core {
                use $core as C;
                match v {
                    $($name::$variant => C::$variant,)+
                }
            }
        }
    };
}

mirror_enum!(
    /// Service category.
    Category => p::Category {
        /// TV, receivers, streaming boxes.
        Tv,
        /// Computers and notebooks.
        Computer,
        /// Internet and home network.
        Network,
        /// Smartphones and tablets.
        Mobile,
        /// Audio and hi-fi.
        Audio,
        /// Smart-home devices.
        SmartHome,
        /// A category this version does not know.
        Unknown,
    }
);

mirror_enum!(
    /// Provider tier.
    Tier => p::Tier {
        /// A vetted tech-savvy local.
        Friend,
        /// A professional provider.
        Pro,
        /// A tier this version does not know.
        Unknown,
    }
);

mirror_enum!(
    /// Where the service happens.
    Place => p::Place {
        /// At the customer's home or a place they pick.
        OnSite,
        /// By phone, video or messenger: no travel.
        Remote,
        /// A place this version does not know.
        Unknown,
    }
);

mirror_enum!(
    /// Lifecycle state of a job.
    JobState => p::JobState {
        /// Booked, waiting for the first accept.
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
        /// Checked out without success.
        Unsuccessful,
        /// A state this version does not know.
        Unknown,
    }
);

mirror_enum!(
    /// Why a Friend declines an offer.
    DeclineReason => p::DeclineReason {
        /// Too far away right now.
        TooFar,
        /// No time.
        NoTime,
        /// Outside the Friend's skills.
        NotMySkill,
        /// Anything else.
        Other,
        /// A reason this version does not know (refused as input).
        Unknown,
    }
);

mirror_enum!(
    /// Why a Friend may not take a job.
    NotEligibleReason => p::NotEligibleReason {
        /// The job lies outside the Friend's reach.
        Distance,
        /// Not qualified for the category.
        Category,
        /// The job belongs to another brand community.
        Community,
        /// The service requires a higher tier.
        Tier,
        /// Overlaps a slot job the Friend already holds (travel included).
        OverlappingJob,
        /// The platform suspended the Friend.
        Suspended,
        /// A reason this version does not know.
        Unknown,
    }
);

mirror_enum!(
    /// ISO 4217 currency.
    Currency => p::Currency {
        /// Swiss franc (minor unit: Rappen).
        Chf,
        /// Euro (minor unit: cent).
        Eur,
        /// A currency this version does not know.
        Unknown,
    }
);

mirror_enum!(
    /// Kind of account.
    Role => p::Role {
        /// A provider (Friend or Pro).
        Friend,
        /// A customer.
        Customer,
        /// A role this version does not know.
        Unknown,
    }
);

mirror_enum!(
    /// A side of a price negotiation.
    Party => p::negotiation::Party {
        /// The Friend (or Pro) holding the job.
        Friend,
        /// The customer who booked it.
        Customer,
        /// A party this version does not know.
        Unknown,
    }
);

mirror_enum!(
    /// What became of a proposal.
    Answer => p::negotiation::Answer {
        /// Waiting for the other party.
        Pending,
        /// Accepted by the other party.
        Accepted,
        /// Rejected by the other party.
        Rejected,
        /// An answer this version does not know (treated as not pending).
        Unknown,
    }
);

mirror_enum!(
    /// How the customer pays.
    PaymentMethod => p::quote::PaymentMethod {
        /// Through the platform; the exact total is charged.
        Online,
        /// In cash to the Friend; rounded to the smallest coin, and the Friend owes the fee.
        Cash,
        /// A method this version does not know (refused as input).
        Unknown,
    }
);

mirror_enum!(
    /// What a quote's line item stands for.
    LineItemKind => p::quote::LineItemKind {
        /// The booked service, normally at its orientation price.
        Service,
        /// A change to the service price agreed on site (not negative).
        Adjustment,
        /// A further service agreed on the spot.
        ExtraService,
        /// Additional working time, priced per unit.
        TimeUnit,
        /// Material the Friend supplies.
        Material,
        /// A reduction; its total is zero or negative.
        Discount,
        /// A kind this version does not know (refused as input).
        Unknown,
    }
);

mirror_enum!(
    /// Why a Friend checks out without success.
    UnsuccessfulReason => p::UnsuccessfulReason {
        /// Nobody there after waiting and calling.
        CustomerAbsent,
        /// The Friend cannot help with this.
        CannotHelp,
        /// Anything else (a note is required).
        Other,
        /// A reason this version does not know (refused as input).
        Unknown,
    }
);

mirror_enum!(
    /// Where this device's push token is delivered through (`Session.registerPushToken`).
    PushPlatform => p::push::PushPlatform {
        /// Firebase Cloud Messaging (Android).
        Fcm,
        /// Apple Push Notification service, production (App Store and TestFlight builds).
        Apns,
        /// APNs sandbox (development builds).
        ApnsSandbox,
        /// A platform this version does not know (refused as input).
        Unknown,
    }
);

mirror_enum!(
    /// Why a Friend gives an accepted job back before arriving (`FriendSession.release`).
    ReleaseReason => p::ReleaseReason {
        /// The customer could not be reached to fix the visit.
        CustomerUnreachable,
        /// No time the customer wants works for the Friend.
        NoMatchingTime,
        /// The Friend cannot come after all (illness, emergency).
        CannotCome,
        /// Something else.
        Other,
        /// A reason this version does not know (refused as input).
        Unknown,
    }
);

mirror_enum!(
    /// Why a compensation fee is owed.
    CompensationCause => p::CompensationCause {
        /// Cancelled after a Friend accepted, less than 24 h before the visit (now-jobs: any time).
        LateCancellation,
        /// The customer was not there (unsuccessful check-out, customer absent).
        NoShow,
        /// A cause this version does not know.
        Unknown,
    }
);

/// A WGS84 point in decimal degrees. Checked when passed in (latitude −90…90, longitude −180…180).
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct GeoPoint {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
}

impl From<p::GeoPoint> for GeoPoint {
    fn from(g: p::GeoPoint) -> GeoPoint {
        GeoPoint {
            lat: g.lat(),
            lon: g.lon(),
        }
    }
}

impl TryFrom<GeoPoint> for p::GeoPoint {
    type Error = FriendCoreError;
    fn try_from(g: GeoPoint) -> Result<p::GeoPoint, FriendCoreError> {
        p::GeoPoint::new(g.lat, g.lon).map_err(|e| FriendCoreError::invalid_input(e.to_string()))
    }
}

/// An amount in minor units (Rappen, cents) and its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Money {
    /// Amount in minor units; negative for discounts.
    pub minor: i64,
    /// Currency.
    pub currency: Currency,
}

impl From<p::Money> for Money {
    fn from(m: p::Money) -> Money {
        Money {
            minor: m.minor,
            currency: m.currency.into(),
        }
    }
}

impl From<Money> for p::Money {
    fn from(m: Money) -> p::Money {
        p::Money::new(m.minor, m.currency.into())
    }
}

/// One line of a quote: `quantity × unit_price`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LineItem {
    /// What the line stands for.
    pub kind: LineItemKind,
    /// Short single-line text shown to both parties.
    pub description: String,
    /// How many units (at least 1).
    pub quantity: u32,
    /// Price of one unit; negative only for discounts.
    pub unit_price: Money,
}

impl From<p::quote::LineItem> for LineItem {
    fn from(i: p::quote::LineItem) -> LineItem {
        LineItem {
            kind: i.kind.into(),
            description: i.description,
            quantity: i.quantity,
            unit_price: i.unit_price.into(),
        }
    }
}

impl From<LineItem> for p::quote::LineItem {
    fn from(i: LineItem) -> p::quote::LineItem {
        p::quote::LineItem {
            kind: i.kind.into(),
            description: i.description,
            quantity: i.quantity,
            unit_price: i.unit_price.into(),
        }
    }
}

/// A versioned price proposal for a job.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Quote {
    /// The job this quote prices.
    pub job_id: String,
    /// Proposal version within the job (1, 2, …).
    pub version: u32,
    /// The line items, in display order.
    pub items: Vec<LineItem>,
    /// The sum of the item totals.
    pub total: Money,
    /// Why the price deviates from the orientation price.
    pub reason: Option<String>,
}

impl From<p::quote::Quote> for Quote {
    fn from(q: p::quote::Quote) -> Quote {
        Quote {
            job_id: q.job_id.to_string(),
            version: q.version,
            items: q.items.into_iter().map(Into::into).collect(),
            total: q.total.into(),
            reason: q.reason,
        }
    }
}

/// What a total means in money: what the customer pays, the platform's fee and the Friend's payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Settlement {
    /// What the customer pays (cash is rounded to the smallest coin).
    pub charged: Money,
    /// The platform's commission on `charged`.
    pub fee: Money,
    /// What the Friend keeps: `charged - fee`.
    pub payout: Money,
}

impl From<p::quote::Settlement> for Settlement {
    fn from(s: p::quote::Settlement) -> Settlement {
        Settlement {
            charged: s.charged.into(),
            fee: s.fee.into(),
            payout: s.payout.into(),
        }
    }
}

/// The agreed visit of an assigned job, as the holding Friend recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Appointment {
    /// Earliest arrival.
    pub start: SystemTime,
    /// Latest arrival.
    pub end: SystemTime,
    /// A slot job's visit that differs from the booked slot: the customer may decline it
    /// (`CustomerSession.declineAppointment`).
    pub moved: bool,
}

impl From<p::Appointment> for Appointment {
    fn from(a: p::Appointment) -> Appointment {
        Appointment {
            start: a.start.into(),
            end: a.end.into(),
            moved: a.moved,
        }
    }
}

/// The holding Friend's latest "on my way".
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct EnRoute {
    /// Estimated arrival (server clock).
    pub eta: SystemTime,
    /// When the Friend sent it (server clock; while still queued on the Friend's device, when it
    /// was queued).
    pub sent_at: SystemTime,
}

impl From<p::EnRoute> for EnRoute {
    fn from(r: p::EnRoute) -> EnRoute {
        EnRoute {
            eta: r.eta.into(),
            sent_at: r.sent_at.into(),
        }
    }
}

/// What the customer owes for a late cancellation or a no-show: the fee charged, the platform's
/// commission and the Friend's payout, as for a completed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Compensation {
    /// Why it is owed.
    pub cause: CompensationCause,
    /// Charged to the customer (online), the platform's fee and the Friend's payout.
    pub settlement: Settlement,
}

impl From<p::Compensation> for Compensation {
    fn from(c: p::Compensation) -> Compensation {
        Compensation {
            cause: c.cause.into(),
            settlement: c.settlement.into(),
        }
    }
}

/// The time between the accept and the arrival, and the money an unhappy ending owes.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VisitView {
    /// The agreed visit, once the holding Friend recorded it.
    pub appointment: Option<Appointment>,
    /// The holding Friend's latest "on my way".
    pub en_route: Option<EnRoute>,
    /// What the customer owes for a late cancellation or a no-show.
    pub compensation: Option<Compensation>,
    /// How often the job was offered again after a Friend held it (given back, or a moved visit
    /// declined).
    pub reopened: u32,
}

impl From<p::VisitView> for VisitView {
    fn from(v: p::VisitView) -> VisitView {
        VisitView {
            appointment: v.appointment.map(Into::into),
            en_route: v.en_route.map(Into::into),
            compensation: v.compensation.map(Into::into),
            reopened: v.reopened,
        }
    }
}

/// What cancelling a job now would cost (`CustomerSession.cancelPreview`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct CancelPreview {
    /// The compensation fee a cancellation now owes; none: free.
    pub fee: Option<Money>,
    /// Until when a cancellation is free (none: already late, or the job is still open and
    /// always free).
    pub free_until: Option<SystemTime>,
}

impl From<p::CancelPreview> for CancelPreview {
    fn from(c: p::CancelPreview) -> CancelPreview {
        CancelPreview {
            fee: c.fee.map(Into::into),
            free_until: c.free_until.map(Into::into),
        }
    }
}

/// When the customer wants help.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum Timing {
    /// On demand: help arrives within 10–60 minutes.
    Now,
    /// A requested slot.
    Slot {
        /// Slot start.
        start: SystemTime,
        /// Slot end.
        end: SystemTime,
    },
    /// A timing this version does not know.
    Unknown,
}

impl From<p::Timing> for Timing {
    fn from(t: p::Timing) -> Timing {
        match t {
            p::Timing::Now => Timing::Now,
            p::Timing::Slot { start, end } => Timing::Slot {
                start: start.into(),
                end: end.into(),
            },
            p::Timing::Unknown => Timing::Unknown,
        }
    }
}

impl TryFrom<Timing> for p::Timing {
    type Error = FriendCoreError;

    fn try_from(t: Timing) -> Result<p::Timing, FriendCoreError> {
        Ok(match t {
            Timing::Now => p::Timing::Now,
            Timing::Slot { start, end } => p::Timing::Slot {
                start: utc_time("timing.start", start)?,
                end: utc_time("timing.end", end)?,
            },
            Timing::Unknown => p::Timing::Unknown,
        })
    }
}

/// A postal address (personal data: only for the customer and the assigned Friend).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Address {
    /// Street and number.
    pub street: String,
    /// Postal code.
    pub postal_code: String,
    /// City or town.
    pub city: String,
}

impl From<p::Address> for Address {
    fn from(a: p::Address) -> Address {
        Address {
            street: a.street,
            postal_code: a.postal_code,
            city: a.city,
        }
    }
}

impl From<Address> for p::Address {
    fn from(a: Address) -> p::Address {
        p::Address {
            street: a.street,
            postal_code: a.postal_code,
            city: a.city,
        }
    }
}

/// How to reach the customer (personal data).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Contact {
    /// Customer's name.
    pub name: String,
    /// Customer's phone number.
    pub phone: String,
}

impl From<p::Contact> for Contact {
    fn from(c: p::Contact) -> Contact {
        Contact {
            name: c.name,
            phone: c.phone,
        }
    }
}

impl From<Contact> for p::Contact {
    fn from(c: Contact) -> p::Contact {
        p::Contact {
            name: c.name,
            phone: c.phone,
        }
    }
}

/// A customer's booking.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct BookRequest {
    /// Catalog service id; sets category, orientation price and minimum tier.
    pub service_id: String,
    /// What the customer needs, in their words.
    pub description: String,
    /// Now or a slot.
    pub timing: Timing,
    /// On site or remote.
    pub place: Place,
    /// Exact location; required on site, optional for remote jobs.
    #[uniffi(default = None)]
    pub location: Option<GeoPoint>,
    /// Address; required on site.
    #[uniffi(default = None)]
    pub address: Option<Address>,
    /// How the Friend reaches the customer.
    pub contact: Contact,
    /// Access notes (door code, floor); personal data.
    #[uniffi(default = None)]
    pub access_notes: Option<String>,
    /// Brand community the job belongs to; only that community's Friends see it.
    #[uniffi(default = None)]
    pub brand: Option<String>,
    /// Broadcast radius in km (1…50; none: the default, 30).
    #[uniffi(default = None)]
    pub radius_km: Option<u32>,
}

impl TryFrom<BookRequest> for p::BookRequest {
    type Error = FriendCoreError;

    fn try_from(b: BookRequest) -> Result<p::BookRequest, FriendCoreError> {
        Ok(p::BookRequest {
            service_id: b.service_id,
            description: b.description,
            timing: b.timing.try_into()?,
            place: b.place.into(),
            location: b.location.map(TryInto::try_into).transpose()?,
            address: b.address.map(Into::into),
            contact: b.contact.into(),
            access_notes: b.access_notes,
            brand: b.brand,
            radius_km: b.radius_km,
        })
    }
}

/// The Friend holding a job, as the customer sees them.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FriendSummary {
    /// Account id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Friend or Pro.
    pub tier: Tier,
}

impl From<p::FriendSummary> for FriendSummary {
    fn from(f: p::FriendSummary) -> FriendSummary {
        FriendSummary {
            id: f.id.to_string(),
            name: f.name,
            tier: f.tier.into(),
        }
    }
}

/// An open job as a Friend sees it before winning it: no personal data, approximate location.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Offer {
    /// Job id.
    pub id: String,
    /// Increases with every change of the job.
    pub version: u64,
    /// Catalog service id.
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
    /// Coarse, stable point 0.5–2 km from the true location; none for remote jobs.
    pub approx_location: Option<GeoPoint>,
    /// Postal code and city.
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
    pub created_at: SystemTime,
    /// When the offer expires (server clock; see `FriendSession.serverNowMs`).
    pub expires_at: SystemTime,
}

impl From<p::Offer> for Offer {
    fn from(o: p::Offer) -> Offer {
        Offer {
            id: o.id.to_string(),
            version: o.version,
            service_id: o.service_id,
            category: o.category.into(),
            title: o.title,
            description: o.description,
            timing: o.timing.into(),
            place: o.place.into(),
            approx_location: o.approx_location.map(Into::into),
            district: o.district,
            orientation_price: o.orientation_price.into(),
            brand: o.brand,
            min_tier: o.min_tier.into(),
            radius_km: o.radius_km,
            created_at: o.created_at.into(),
            expires_at: o.expires_at.into(),
        }
    }
}

/// Full job details: only for the job's customer and the Friend holding it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct JobDetails {
    /// Job id.
    pub id: String,
    /// Increases with every change of the job.
    pub version: u64,
    /// Lifecycle state.
    pub state: JobState,
    /// The booking customer's account id.
    pub customer_id: String,
    /// Catalog service id.
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
    /// Access notes (door code, floor).
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
    pub created_at: SystemTime,
    /// When an open job expires (server clock).
    pub expires_at: SystemTime,
    /// Last change (server clock).
    pub updated_at: SystemTime,
    /// The agreed visit, "on my way", the compensation owed, how often it was offered again.
    pub visit: VisitView,
}

impl From<p::JobDetails> for JobDetails {
    fn from(j: p::JobDetails) -> JobDetails {
        JobDetails {
            id: j.id.to_string(),
            version: j.version,
            state: j.state.into(),
            customer_id: j.customer_id.to_string(),
            service_id: j.service_id,
            category: j.category.into(),
            title: j.title,
            description: j.description,
            timing: j.timing.into(),
            place: j.place.into(),
            location: j.location.map(Into::into),
            address: j.address.map(Into::into),
            district: j.district,
            contact: j.contact.into(),
            access_notes: j.access_notes,
            orientation_price: j.orientation_price.into(),
            brand: j.brand,
            min_tier: j.min_tier.into(),
            radius_km: j.radius_km,
            friend: j.friend.map(Into::into),
            cancelled_by: j.cancelled_by.map(Into::into),
            created_at: j.created_at.into(),
            expires_at: j.expires_at.into(),
            updated_at: j.updated_at.into(),
            visit: j.visit.into(),
        }
    }
}

/// One bookable service with its orientation price.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Service {
    /// Stable identifier, e.g. `network.router_setup`.
    pub id: String,
    /// Category.
    pub category: Category,
    /// Short title.
    pub title: String,
    /// What is included.
    pub description: String,
    /// Published orientation price; the final price is agreed on site.
    pub orientation_price: Money,
    /// Typical duration in minutes.
    pub duration_minutes: u32,
    /// Lowest tier allowed to take the job.
    pub min_tier: Tier,
}

/// The service catalog (cached for offline use).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Catalog {
    /// Changes whenever the catalog changes.
    pub version: u32,
    /// All services.
    pub services: Vec<Service>,
}

impl From<p::Catalog> for Catalog {
    fn from(c: p::Catalog) -> Catalog {
        Catalog {
            version: c.version,
            services: c
                .services
                .into_iter()
                .map(|s| Service {
                    id: s.id,
                    category: s.category.into(),
                    title: s.title,
                    description: s.description,
                    orientation_price: s.orientation_price.into(),
                    duration_minutes: s.duration_minutes,
                    min_tier: s.min_tier.into(),
                })
                .collect(),
        }
    }
}

/// A provider's profile as the backend knows it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FriendProfile {
    /// Account id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Registered home area (eligibility is measured from here, never from the live position).
    pub home: GeoPoint,
    /// Registered travel radius in km.
    pub radius_km: u32,
    /// Qualified categories.
    pub categories: Vec<Category>,
    /// Brand communities.
    pub communities: Vec<String>,
    /// Friend or Pro.
    pub tier: Tier,
    /// Suspended by the platform: no offers, accepts refused; held jobs stay held.
    pub suspended: bool,
}

/// A customer's profile.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CustomerProfile {
    /// Account id.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// Who the signed-in account is.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum Me {
    /// A provider.
    Friend {
        /// The profile.
        profile: FriendProfile,
    },
    /// A customer.
    Customer {
        /// The profile.
        profile: CustomerProfile,
    },
    /// A role this version does not know.
    Unknown,
}

impl From<p::Me> for Me {
    fn from(m: p::Me) -> Me {
        match m {
            p::Me::Friend(f) => Me::Friend {
                profile: FriendProfile {
                    id: f.id.to_string(),
                    name: f.name,
                    home: f.home.into(),
                    radius_km: f.radius_km,
                    categories: f.categories.into_iter().map(Into::into).collect(),
                    communities: f.communities,
                    tier: f.tier.into(),
                    suspended: f.suspended,
                },
            },
            p::Me::Customer(c) => Me::Customer {
                profile: CustomerProfile {
                    id: c.id.to_string(),
                    name: c.name,
                },
            },
            p::Me::Unknown => Me::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_checked_when_passed_in() {
        let ok = p::GeoPoint::try_from(GeoPoint {
            lat: 47.37,
            lon: 8.54,
        })
        .unwrap();
        assert_eq!(GeoPoint::from(ok).lat, 47.37);
        for bad in [(91.0, 0.0), (0.0, f64::NAN), (0.0, 181.0)] {
            let e = p::GeoPoint::try_from(GeoPoint {
                lat: bad.0,
                lon: bad.1,
            })
            .unwrap_err();
            assert_eq!(e.code(), "invalid_input");
        }
    }

    #[test]
    fn times_the_core_cannot_hold_are_invalid_input_not_a_panic() {
        let t = chrono::DateTime::from_timestamp(1_800_000_000, 5).unwrap();
        assert_eq!(utc_time("t", t.into()).unwrap(), t);
        let before = chrono::DateTime::from_timestamp(-86_400, 7).unwrap();
        assert_eq!(utc_time("t", before.into()).unwrap(), before);
        let year = std::time::Duration::from_secs(365 * 86_400);
        for far in [
            SystemTime::UNIX_EPOCH + year * 300_000,
            SystemTime::UNIX_EPOCH - year * 300_000,
        ] {
            assert_eq!(utc_time("t", far).unwrap_err().code(), "invalid_input");
            let slot = Timing::Slot {
                start: far,
                end: far,
            };
            assert_eq!(
                p::Timing::try_from(slot).unwrap_err().code(),
                "invalid_input"
            );
        }
    }

    #[test]
    fn job_ids_are_checked() {
        assert!(parse_job_id("0b7f3c1e-3c59-4a55-9d3e-8d4c7c0e1a2b").is_ok());
        assert_eq!(parse_job_id("42").unwrap_err().code(), "invalid_input");
    }

    #[test]
    fn the_visit_crosses_with_its_times_and_money() {
        let t = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let settlement = p::quote::Settlement::for_total(
            p::Money::chf(3_900),
            p::quote::PaymentMethod::Online,
            &p::quote::QuotePolicy::default(),
        )
        .unwrap();
        let view = VisitView::from(p::VisitView {
            appointment: Some(p::Appointment {
                start: t,
                end: t + chrono::Duration::minutes(30),
                moved: true,
            }),
            en_route: Some(p::EnRoute {
                eta: t + chrono::Duration::minutes(10),
                sent_at: t,
            }),
            compensation: Some(p::Compensation {
                cause: p::CompensationCause::LateCancellation,
                settlement,
            }),
            reopened: 2,
        });
        let a = view.appointment.unwrap();
        assert_eq!(SystemTime::from(t), a.start);
        assert!(a.moved);
        assert_eq!(
            chrono::DateTime::<chrono::Utc>::from(view.en_route.unwrap().eta),
            t + chrono::Duration::minutes(10)
        );
        let c = view.compensation.unwrap();
        assert_eq!(c.cause, CompensationCause::LateCancellation);
        assert_eq!(c.settlement.charged.minor, 3_900);
        assert_eq!(view.reopened, 2);
        let free = CancelPreview::from(p::CancelPreview {
            fee: None,
            free_until: Some(t),
        });
        assert_eq!((free.fee, free.free_until), (None, Some(t.into())));
    }

    #[test]
    fn enums_round_trip() {
        for c in p::Category::ALL {
            assert_eq!(p::Category::from(Category::from(c)), c);
        }
        for s in p::JobState::ALL {
            assert_eq!(p::JobState::from(JobState::from(s)), s);
        }
        for r in [
            p::ReleaseReason::CustomerUnreachable,
            p::ReleaseReason::NoMatchingTime,
            p::ReleaseReason::CannotCome,
            p::ReleaseReason::Other,
            p::ReleaseReason::Unknown,
        ] {
            assert_eq!(p::ReleaseReason::from(ReleaseReason::from(r)), r);
        }
        use p::push::PushPlatform as P;
        for platform in [P::Fcm, P::Apns, P::ApnsSandbox, P::Unknown] {
            assert_eq!(P::from(PushPlatform::from(platform)), platform);
        }
    }
}
