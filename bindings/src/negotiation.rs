//! The price negotiation as a device knows it: [`LocalNegotiation`] and its parts, shared by the
//! Friend's and the customer's session.

use crate::types::{Answer, Money, Party, Quote};

/// A quote as this device knows it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LocalQuote {
    /// The quote (job, version, items, total, reason).
    pub quote: Quote,
    /// Who proposed it.
    pub proposed_by: Party,
    /// Its answer so far.
    pub answer: Answer,
    /// The signed proposal (payload to hand to the other device).
    pub proposal: String,
    /// The signed acceptance, once accepted.
    pub acceptance: Option<String>,
}

impl From<friend_core::LocalQuote> for LocalQuote {
    fn from(q: friend_core::LocalQuote) -> LocalQuote {
        LocalQuote {
            quote: q.quote.into(),
            proposed_by: q.proposed_by.into(),
            answer: q.answer.into(),
            proposal: q.proposal,
            acceptance: q.acceptance,
        }
    }
}

/// Where a negotiation stands, as the apps show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum NegotiationStatus {
    /// Nothing agreed and nothing pending (no proposal yet, or the last one was rejected).
    Open,
    /// A first proposal waits for the other party.
    Pending {
        /// Its version.
        version: u32,
        /// Who proposed it.
        by: Party,
    },
    /// A price is agreed and nothing is pending.
    Agreed {
        /// The accepted version.
        version: u32,
        /// The agreed total.
        total: Money,
    },
    /// A price is agreed and an amendment waits for the other party.
    AgreedWithPendingAmendment {
        /// The version in force.
        agreed_version: u32,
        /// The total in force.
        agreed_total: Money,
        /// The amendment's version.
        pending_version: u32,
        /// Who proposed the amendment.
        by: Party,
    },
}

impl From<friend_protocol::negotiation::Status> for NegotiationStatus {
    fn from(s: friend_protocol::negotiation::Status) -> NegotiationStatus {
        use friend_protocol::negotiation::Status as S;
        match s {
            S::Open => NegotiationStatus::Open,
            S::Pending { version, by } => NegotiationStatus::Pending {
                version,
                by: by.into(),
            },
            S::Agreed { version, total } => NegotiationStatus::Agreed {
                version,
                total: total.into(),
            },
            S::AgreedWithPendingAmendment {
                agreed_version,
                agreed_total,
                pending_version,
                by,
            } => NegotiationStatus::AgreedWithPendingAmendment {
                agreed_version,
                agreed_total: agreed_total.into(),
                pending_version,
                by: by.into(),
            },
        }
    }
}

/// The negotiation of one job as this device sees it (local steps not yet acknowledged by the
/// server included).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LocalNegotiation {
    /// Where it stands.
    pub status: NegotiationStatus,
    /// The latest proposal.
    pub latest: Option<LocalQuote>,
    /// The quote in force, once agreed.
    pub agreed: Option<LocalQuote>,
    /// Steps signed or imported here that the server has not acknowledged yet.
    pub unsent_steps: u32,
}

impl From<friend_core::LocalNegotiation> for LocalNegotiation {
    fn from(n: friend_core::LocalNegotiation) -> LocalNegotiation {
        LocalNegotiation {
            status: n.state.status().into(),
            latest: n.latest.map(Into::into),
            agreed: n.agreed.map(Into::into),
            unsent_steps: n.unsent_steps,
        }
    }
}
