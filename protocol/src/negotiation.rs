//! The price negotiation of SPEC §7 as a pure state machine: [`apply`] decides every proposal,
//! acceptance and rejection, like [`crate::lifecycle::transition`] decides job transitions.
//!
//! Rules: either party proposes; versions grow by exactly one, so two offline devices cannot both
//! believe their proposal is "the next one" once the server has ordered them; a new proposal
//! supersedes a pending one; only the other party can accept or reject, and only the latest
//! proposal. Acceptance makes the price agreed (the customer's signature locks the order). A
//! proposal after agreement is an amendment: the earlier agreement stays in force until the
//! amendment is accepted, and completion waits until it is answered.
//!
//! The machine tracks versions and totals only. That the accepted *content* is the content stored
//! for that version is checked by the caller (the signed consent carries the full quote, see
//! [`crate::consent`]); which job states allow negotiating at all is [`crate::lifecycle`]'s rule.

use crate::{Money, Role};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A side of the negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The Friend (or Pro) holding the job.
    Friend,
    /// The customer who booked it.
    Customer,
    /// A party this build does not know; refused by [`apply`].
    #[serde(other)]
    Unknown,
}

impl Party {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Friend => "friend",
            Party::Customer => "customer",
            Party::Unknown => "unknown",
        }
    }

    /// The party an account of this role negotiates as.
    pub fn from_role(role: Role) -> Party {
        match role {
            Role::Friend => Party::Friend,
            Role::Customer => Party::Customer,
            Role::Unknown => Party::Unknown,
        }
    }
}

/// What became of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Waiting for the other party.
    Pending,
    /// Accepted by the other party.
    Accepted,
    /// Rejected by the other party.
    Rejected,
    /// An answer this build does not know; treated as not pending.
    #[serde(other)]
    Unknown,
}

/// The latest proposal of a negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Proposal {
    /// Quote version (1, 2, …).
    pub version: u32,
    /// Who proposed it.
    pub by: Party,
    /// The quote's total.
    pub total: Money,
    /// What became of it.
    pub answer: Answer,
}

/// The price in force: a proposal one party made and the other accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agreement {
    /// The accepted quote version.
    pub version: u32,
    /// The agreed total.
    pub total: Money,
    /// Who proposed it (the other party accepted).
    pub proposed_by: Party,
}

/// A job's negotiation. The default is the state before any proposal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Negotiation {
    /// The highest-versioned proposal, whatever its answer.
    pub latest: Option<Proposal>,
    /// The agreement in force, if any; an amendment does not replace it until accepted.
    pub agreed: Option<Agreement>,
}

/// A negotiation's status, as the apps show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
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

impl Negotiation {
    /// The proposal waiting for an answer, if any.
    pub fn pending(&self) -> Option<Proposal> {
        self.latest.filter(|p| p.answer == Answer::Pending)
    }

    /// The version the next proposal must carry (1 for the first). `None` once versions are
    /// exhausted, after which every proposal is refused as stale.
    pub fn next_version(&self) -> Option<u32> {
        self.latest.map_or(Some(1), |p| p.version.checked_add(1))
    }

    /// The status the apps show.
    pub fn status(&self) -> Status {
        match (self.agreed, self.pending()) {
            (None, None) => Status::Open,
            (None, Some(p)) => Status::Pending {
                version: p.version,
                by: p.by,
            },
            (Some(a), None) => Status::Agreed {
                version: a.version,
                total: a.total,
            },
            (Some(a), Some(p)) => Status::AgreedWithPendingAmendment {
                agreed_version: a.version,
                agreed_total: a.total,
                pending_version: p.version,
                by: p.by,
            },
        }
    }

    /// Whether the job may be completed at `total`: only at the agreed total, and only when no
    /// amendment waits for an answer (completing would bypass the consent it asks for).
    pub fn can_complete(&self, total: Money) -> Result<(), NegotiationError> {
        let agreed = self.agreed.ok_or(NegotiationError::NotAgreed)?;
        if let Some(p) = self.pending() {
            return Err(NegotiationError::AmendmentPending { version: p.version });
        }
        if total != agreed.total {
            return Err(NegotiationError::TotalNotAgreed {
                agreed: agreed.total,
                found: total,
            });
        }
        Ok(())
    }
}

/// Something a party does in the negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NegotiationEvent {
    /// Propose a quote (a first price, a counter-proposal or an amendment).
    Propose {
        /// Who proposes.
        by: Party,
        /// Must be [`Negotiation::next_version`].
        version: u32,
        /// The quote's total.
        total: Money,
    },
    /// Accept the latest pending proposal.
    Accept {
        /// Who accepts (the other party).
        by: Party,
        /// The version accepted; must be the latest.
        version: u32,
    },
    /// Reject the latest pending proposal.
    Reject {
        /// Who rejects (the other party).
        by: Party,
        /// The version rejected; must be the latest.
        version: u32,
    },
}

/// Why a negotiation step was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NegotiationError {
    /// The acting party is unknown to this build.
    #[error("unknown party")]
    UnknownParty,
    /// A proposal's version is not newer than the latest one (a replay, or the other party
    /// proposed first).
    #[error("version {version} is not newer than the latest version {latest}")]
    StaleVersion {
        /// The proposal's version.
        version: u32,
        /// The latest version.
        latest: u32,
    },
    /// A proposal skips versions.
    #[error("version {version} skips ahead; the next version is {expected}")]
    VersionGap {
        /// The proposal's version.
        version: u32,
        /// The version expected.
        expected: u32,
    },
    /// An answer names a version that is not the latest proposal.
    #[error("version {version} is not the latest proposal ({latest})")]
    NotLatest {
        /// The version answered.
        version: u32,
        /// The latest version.
        latest: u32,
    },
    /// There is no proposal waiting for an answer.
    #[error("no proposal is waiting for an answer")]
    NothingPending,
    /// A party tried to answer its own proposal.
    #[error("only the other party can answer a proposal")]
    OwnProposal,
    /// Completion without an agreed price.
    #[error("no price has been agreed")]
    NotAgreed,
    /// Completion while an amendment waits for an answer.
    #[error("amendment {version} waits for an answer")]
    AmendmentPending {
        /// The pending amendment's version.
        version: u32,
    },
    /// Completion at a total other than the agreed one.
    #[error("total {found} is not the agreed total {agreed}")]
    TotalNotAgreed {
        /// The agreed total.
        agreed: Money,
        /// The total given.
        found: Money,
    },
}

impl NegotiationError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            NegotiationError::UnknownParty => "unknown_party",
            NegotiationError::StaleVersion { .. } => "stale_version",
            NegotiationError::VersionGap { .. } => "version_gap",
            NegotiationError::NotLatest { .. } => "not_latest",
            NegotiationError::NothingPending => "nothing_pending",
            NegotiationError::OwnProposal => "own_proposal",
            NegotiationError::NotAgreed => "not_agreed",
            NegotiationError::AmendmentPending { .. } => "amendment_pending",
            NegotiationError::TotalNotAgreed { .. } => "total_not_agreed",
        }
    }
}

/// Decides one negotiation step: the state after `event`, or why it is refused.
pub fn apply(
    state: &Negotiation,
    event: &NegotiationEvent,
) -> Result<Negotiation, NegotiationError> {
    match *event {
        NegotiationEvent::Propose { by, version, total } => {
            known(by)?;
            let latest = state.latest.map_or(0, |p| p.version);
            if version <= latest {
                return Err(NegotiationError::StaleVersion { version, latest });
            }
            // `version > latest` so `latest < u32::MAX`: the addition cannot overflow.
            let expected = latest.saturating_add(1);
            if version != expected {
                return Err(NegotiationError::VersionGap { version, expected });
            }
            Ok(Negotiation {
                latest: Some(Proposal {
                    version,
                    by,
                    total,
                    answer: Answer::Pending,
                }),
                agreed: state.agreed,
            })
        }
        NegotiationEvent::Accept { by, version } | NegotiationEvent::Reject { by, version } => {
            known(by)?;
            let latest = state.latest.ok_or(NegotiationError::NothingPending)?;
            if version != latest.version {
                return Err(NegotiationError::NotLatest {
                    version,
                    latest: latest.version,
                });
            }
            if latest.answer != Answer::Pending {
                return Err(NegotiationError::NothingPending);
            }
            if by == latest.by {
                return Err(NegotiationError::OwnProposal);
            }
            let accepted = matches!(event, NegotiationEvent::Accept { .. });
            Ok(Negotiation {
                latest: Some(Proposal {
                    answer: if accepted {
                        Answer::Accepted
                    } else {
                        Answer::Rejected
                    },
                    ..latest
                }),
                // A rejected amendment leaves the earlier agreement in force.
                agreed: if accepted {
                    Some(Agreement {
                        version: latest.version,
                        total: latest.total,
                        proposed_by: latest.by,
                    })
                } else {
                    state.agreed
                },
            })
        }
    }
}

fn known(party: Party) -> Result<(), NegotiationError> {
    match party {
        Party::Friend | Party::Customer => Ok(()),
        Party::Unknown => Err(NegotiationError::UnknownParty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const F: Party = Party::Friend;
    const C: Party = Party::Customer;

    fn propose(by: Party, version: u32, minor: i64) -> NegotiationEvent {
        NegotiationEvent::Propose {
            by,
            version,
            total: Money::chf(minor),
        }
    }

    fn accept(by: Party, version: u32) -> NegotiationEvent {
        NegotiationEvent::Accept { by, version }
    }

    fn reject(by: Party, version: u32) -> NegotiationEvent {
        NegotiationEvent::Reject { by, version }
    }

    fn run(events: &[NegotiationEvent]) -> Negotiation {
        events.iter().fold(Negotiation::default(), |s, e| {
            apply(&s, e).unwrap_or_else(|err| panic!("{e:?} refused: {err}"))
        })
    }

    #[test]
    fn propose_counter_accept_amend() {
        let s = run(&[propose(F, 1, 8900), propose(C, 2, 7900)]);
        assert_eq!(s.status(), Status::Pending { version: 2, by: C });
        let s = apply(&s, &accept(F, 2)).unwrap();
        assert_eq!(
            s.status(),
            Status::Agreed {
                version: 2,
                total: Money::chf(7900)
            }
        );
        assert_eq!(s.can_complete(Money::chf(7900)), Ok(()));

        // More work found: an amendment. The old price stays in force until accepted.
        let s = apply(&s, &propose(F, 3, 9900)).unwrap();
        assert_eq!(
            s.status(),
            Status::AgreedWithPendingAmendment {
                agreed_version: 2,
                agreed_total: Money::chf(7900),
                pending_version: 3,
                by: F
            }
        );
        assert_eq!(
            s.can_complete(Money::chf(7900)).unwrap_err().code(),
            "amendment_pending"
        );
        let rejected = apply(&s, &reject(C, 3)).unwrap();
        assert_eq!(rejected.can_complete(Money::chf(7900)), Ok(()));
        assert_eq!(rejected.agreed.map(|a| a.version), Some(2));

        let s = apply(&s, &accept(C, 3)).unwrap();
        assert_eq!(s.can_complete(Money::chf(9900)), Ok(()));
        assert_eq!(
            s.can_complete(Money::chf(7900)).unwrap_err().code(),
            "total_not_agreed"
        );
    }

    #[test]
    fn refusals_are_typed() {
        let s = run(&[propose(F, 1, 8900)]);
        let code = |s: &Negotiation, e| apply(s, &e).unwrap_err().code();
        assert_eq!(code(&s, accept(F, 1)), "own_proposal");
        assert_eq!(code(&s, reject(F, 1)), "own_proposal");
        assert_eq!(code(&s, accept(C, 2)), "not_latest");
        assert_eq!(code(&s, propose(C, 1, 1)), "stale_version");
        assert_eq!(code(&s, propose(C, 3, 1)), "version_gap");
        assert_eq!(code(&s, accept(Party::Unknown, 1)), "unknown_party");

        // A superseded proposal cannot be accepted.
        let s = apply(&s, &propose(C, 2, 7000)).unwrap();
        assert_eq!(code(&s, accept(F, 1)), "not_latest");

        // An answered proposal cannot be answered again.
        let s = apply(&s, &reject(F, 2)).unwrap();
        assert_eq!(s.status(), Status::Open);
        assert_eq!(code(&s, accept(F, 2)), "nothing_pending");
        assert_eq!(
            code(&Negotiation::default(), accept(F, 1)),
            "nothing_pending"
        );
        assert_eq!(
            Negotiation::default()
                .can_complete(Money::chf(0))
                .unwrap_err()
                .code(),
            "not_agreed"
        );
        assert_eq!(
            s.can_complete(Money::chf(7000)),
            Err(NegotiationError::NotAgreed)
        );
    }

    #[test]
    fn versions_cannot_overflow() {
        let s = Negotiation {
            latest: Some(Proposal {
                version: u32::MAX,
                by: F,
                total: Money::chf(1),
                answer: Answer::Rejected,
            }),
            agreed: None,
        };
        assert_eq!(s.next_version(), None);
        assert_eq!(
            apply(&s, &propose(C, u32::MAX, 1)).unwrap_err().code(),
            "stale_version"
        );
    }

    #[test]
    fn state_round_trips_as_json() {
        let s = run(&[propose(F, 1, 8900), accept(C, 1), propose(C, 2, 100)]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Negotiation>(&json).unwrap(), s);
        let e: NegotiationEvent =
            serde_json::from_str(r#"{"kind":"accept","by":"customer","version":2}"#).unwrap();
        assert_eq!(e, accept(C, 2));
    }

    /// A random step: the version is chosen relative to the latest one, so sequences make
    /// progress instead of drowning in version gaps.
    fn step() -> impl Strategy<Value = (u8, Party, u32, i64)> {
        (
            0u8..3,
            prop_oneof![4 => Just(F), 4 => Just(C), 1 => Just(Party::Unknown)],
            // latest − 1, latest (answers), latest + 1 (proposals), latest + 2 (gap).
            prop_oneof![1 => Just(0u32), 3 => Just(1), 3 => Just(2), 1 => Just(3)],
            0i64..20_000,
        )
    }

    proptest! {
        /// Whatever happens, an agreed total was proposed by one party and accepted by the other,
        /// versions only grow, and completion is possible exactly at an agreed, unamended total.
        #[test]
        fn agreement_needs_both_parties(steps in proptest::collection::vec(step(), 0..60)) {
            let mut state = Negotiation::default();
            let mut proposed: HashMap<u32, (Party, Money)> = HashMap::new();
            let mut accepted_by: HashMap<u32, Party> = HashMap::new();
            for (kind, by, offset, minor) in steps {
                let latest = state.latest.map_or(0, |p| p.version);
                let version = (latest + offset).saturating_sub(1);
                let event = match kind {
                    0 => propose(by, version, minor),
                    1 => accept(by, version),
                    _ => reject(by, version),
                };
                let Ok(next) = apply(&state, &event) else { continue };
                match event {
                    NegotiationEvent::Propose { by, version, total } => {
                        prop_assert!(version > latest);
                        proposed.insert(version, (by, total));
                    }
                    NegotiationEvent::Accept { by, version } => {
                        accepted_by.insert(version, by);
                    }
                    NegotiationEvent::Reject { .. } => {}
                }
                let next_latest = next.latest.map_or(0, |p| p.version);
                prop_assert!(next_latest >= latest);
                let before = state.agreed.map_or(0, |a| a.version);
                let after = next.agreed.map_or(0, |a| a.version);
                prop_assert!(after >= before);
                if let Some(a) = next.agreed {
                    prop_assert_eq!(proposed.get(&a.version), Some(&(a.proposed_by, a.total)));
                    let acceptor = accepted_by.get(&a.version).copied();
                    prop_assert!(acceptor.is_some());
                    prop_assert_ne!(acceptor, Some(a.proposed_by));
                    prop_assert_eq!(next.can_complete(a.total).is_ok(), next.pending().is_none());
                } else {
                    prop_assert!(next.can_complete(Money::chf(minor)).is_err());
                }
                state = next;
            }
        }
    }
}
