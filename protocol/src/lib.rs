//! FriendCore's shared protocol: the wire types both the reference backend and the client core speak,
//! and the rules both sides must agree on — the job state machine ([`lifecycle`]), the price
//! negotiation ([`negotiation`]), quote guardrails and settlement ([`quote`]), signed offline
//! consent ([`consent`]), the push token and payload ([`push`]), money ([`money`]), geography and the approximate-location rule
//! ([`geo`]), offer eligibility ([`eligibility`]), input limits ([`validate`]) and the error
//! codes ([`error`]).
//!
//! The crate is pure: no I/O, no clocks (time is always passed in), so every rule is testable in
//! isolation and behaves identically on the server and on a phone.
//!
//! Forward compatibility: every enum that travels over the wire has an `Unknown` variant that older
//! clients deserialize newer values into, and unknown object fields are ignored. Servers reject
//! `Unknown` in input explicitly (see [`validate`]).

pub mod accept;
pub mod account;
pub mod catalog;
pub mod consent;
pub mod eligibility;
pub mod error;
pub mod geo;
pub mod ids;
pub mod job;
pub mod lifecycle;
pub mod money;
pub mod negotiation;
pub mod onsite;
pub mod push;
pub mod quote;
pub mod sync;
pub mod validate;
pub mod visit;

pub use accept::*;
pub use account::*;
pub use catalog::*;
pub use error::*;
pub use geo::GeoPoint;
pub use ids::*;
pub use job::*;
pub use money::{Currency, Money, MoneyError};
pub use negotiation::{Negotiation, NegotiationError, NegotiationEvent, Party};
pub use onsite::*;
pub use push::{PushDevices, PushPlatform, PushTokenRemoval, PushTokenRequest};
pub use quote::{
    LineItem, LineItemKind, PaymentMethod, Quote, QuoteError, QuotePolicy, Settlement,
    validate_quote,
};
pub use sync::*;
pub use visit::{
    Appointment, AppointmentRequest, CancelPreview, Compensation, CompensationCause,
    CompensationPolicy, EnRoute, OnMyWayRequest, ReleaseReason, ReleaseRequest, VisitView,
};
