//! Wire types of what happens on site and after (SPEC §2, §3, §7): device keys, the negotiation as
//! a job carries it, consent upload and rejection, completion with payment, the Friend's ledger,
//! rating, and the unhappy endings (escalation, unsuccessful check-out) — with the input checks the
//! backend enforces and clients can run before queueing.
//!
//! The rules themselves live elsewhere and are only referenced here: quotes in [`crate::quote`], the
//! negotiation state machine in [`crate::negotiation`], signed payloads in [`crate::consent`], job
//! states in [`crate::lifecycle`].

use crate::negotiation::{Answer, Negotiation, Party};
use crate::quote::{PaymentMethod, Quote};
use crate::validate::Invalid;
use crate::{JobId, Money};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most device keys one account may register (phones, tablets, reinstalls).
pub const MAX_DEVICE_KEYS: usize = 16;
/// Longest escalation or check-out note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// Longest rating comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 500;
/// Lowest and highest star rating.
pub const STARS: std::ops::RangeInclusive<u8> = 1..=5;

// ---- keys ----------------------------------------------------------------------------------

/// The Ed25519 public keys (standard base64 of 32 bytes) registered by a job's parties. Each side
/// verifies the other's signed consent offline against these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartyKeys {
    /// Keys of the Friend holding (or who last held) the job; empty before accept.
    #[serde(default)]
    pub friend: Vec<String>,
    /// Keys of the customer who booked it.
    #[serde(default)]
    pub customer: Vec<String>,
}

impl PartyKeys {
    /// The keys registered for `party`, decoded; keys that do not decode are skipped.
    pub fn of(&self, party: Party) -> Vec<[u8; crate::consent::PUBLIC_KEY_LEN]> {
        let keys = match party {
            Party::Friend => &self.friend,
            Party::Customer => &self.customer,
            Party::Unknown => return Vec::new(),
        };
        keys.iter()
            .filter_map(|k| decode_public_key(k).ok())
            .collect()
    }
}

/// `POST /v1/keys`: registers the caller's device key. Registering a key twice changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterKeyRequest {
    /// The device's Ed25519 public key: 32 bytes in base64 (standard or URL-safe, padded or not).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^\s*[A-Za-z0-9+/_-]{43}=?\s*$")
    )]
    pub public_key: String,
}

/// The caller's registered device keys, oldest first, in standard base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceKeys {
    /// The keys.
    pub keys: Vec<String>,
}

/// Decodes a public key given in any base64 alphabet, padded or not, into its 32 bytes.
pub fn decode_public_key(text: &str) -> Result<[u8; crate::consent::PUBLIC_KEY_LEN], Invalid> {
    let bad = |problem: &str| Invalid {
        field: "public_key",
        problem: problem.into(),
    };
    let text = text.trim();
    if text.len() > 64 {
        return Err(bad("not 32 bytes in base64"));
    }
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| bad("not base64"))?;
    bytes
        .try_into()
        .map_err(|_| bad("an Ed25519 public key is 32 bytes"))
}

/// The canonical text form of a public key: standard base64 with padding.
pub fn encode_public_key(key: &[u8; crate::consent::PUBLIC_KEY_LEN]) -> String {
    STANDARD.encode(key)
}

// ---- negotiation ---------------------------------------------------------------------------

/// One quote version of a job's negotiation, with the signed payloads that carried it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuoteRecord {
    /// The quote, job id and version included.
    pub quote: Quote,
    /// Who proposed it.
    pub proposed_by: Party,
    /// What became of it.
    pub answer: Answer,
    /// The signed proposal (base64url consent payload), verifiable offline against [`PartyKeys`].
    pub proposal: String,
    /// The signed acceptance, once accepted.
    #[serde(default)]
    pub acceptance: Option<String>,
    /// When the server stored the proposal (server clock).
    pub proposed_at: DateTime<Utc>,
    /// When the server stored the answer (server clock).
    #[serde(default)]
    pub answered_at: Option<DateTime<Utc>>,
}

/// A job's negotiation as the job carries it: enough to show "quote pending → agreed" and, offline,
/// to verify and apply the next signed payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NegotiationView {
    /// The state machine's state: pass it to [`crate::negotiation::apply`] with the next event, and
    /// its latest version to [`crate::consent::verify`].
    #[serde(default)]
    pub state: Negotiation,
    /// The latest proposal in full, whatever its answer.
    #[serde(default)]
    pub latest: Option<QuoteRecord>,
    /// The quote in force, once a price is agreed (differs from `latest` while an amendment is
    /// pending or after one was rejected).
    #[serde(default)]
    pub agreed: Option<QuoteRecord>,
}

/// `POST /v1/jobs/{id}/consent`: uploads a signed proposal or acceptance (signed by either party of
/// the job; whoever is online first uploads what both signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentRequest {
    /// The consent payload in base64url without padding (see [`crate::consent`]).
    pub payload: String,
}

/// `POST /v1/jobs/{id}/reject`: the other party rejects the pending proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectRequest {
    /// The version rejected; must be the latest, pending proposal.
    pub version: u32,
}

// ---- completion and ledger -----------------------------------------------------------------

/// `POST /v1/friend/jobs/{id}/complete`: completes an agreed job at the agreed total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompleteRequest {
    /// How the customer paid.
    pub payment: PaymentMethod,
    /// The total; must be the agreed total.
    pub total: Money,
}

impl CompleteRequest {
    /// Checks what can be checked without the job.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.payment == PaymentMethod::Unknown {
            return Err(Invalid {
                field: "payment",
                problem: "unknown payment method".into(),
            });
        }
        Ok(())
    }
}

/// Where a ledger entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LedgerStatus {
    /// Recorded at completion, not yet due.
    Pending,
    /// Due: the owing side is asked to pay.
    ToPay,
    /// Settled.
    Paid,
    /// A status this build does not know; servers refuse it in input.
    #[serde(other)]
    Unknown,
}

impl LedgerStatus {
    /// Every known status, in order.
    pub const ALL: [LedgerStatus; 3] = [
        LedgerStatus::Pending,
        LedgerStatus::ToPay,
        LedgerStatus::Paid,
    ];

    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerStatus::Pending => "pending",
            LedgerStatus::ToPay => "to_pay",
            LedgerStatus::Paid => "paid",
            LedgerStatus::Unknown => "unknown",
        }
    }

    /// Parses a wire name; unknown names give [`LedgerStatus::Unknown`].
    pub fn parse(s: &str) -> LedgerStatus {
        LedgerStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .unwrap_or(LedgerStatus::Unknown)
    }

    /// Whether an entry may move from `self` to `next`: forward only (skipping is allowed),
    /// staying put is a no-op, never backwards, never to or from an unknown status.
    pub fn may_move_to(self, next: LedgerStatus) -> bool {
        self != LedgerStatus::Unknown && next != LedgerStatus::Unknown && next >= self
    }
}

/// Who owes what for a completed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LedgerDirection {
    /// Cash: the Friend collected the money and owes the platform its fee.
    FriendOwesFee,
    /// Online: the platform collected the money and owes the Friend the payout.
    PlatformOwesPayout,
    /// A direction this build does not know.
    #[serde(other)]
    Unknown,
}

impl LedgerDirection {
    /// The direction of a job paid with `method`.
    pub fn for_method(method: PaymentMethod) -> LedgerDirection {
        match method {
            PaymentMethod::Cash => LedgerDirection::FriendOwesFee,
            PaymentMethod::Online => LedgerDirection::PlatformOwesPayout,
            PaymentMethod::Unknown => LedgerDirection::Unknown,
        }
    }
}

/// One completed job in a Friend's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerEntry {
    /// The job.
    pub job_id: JobId,
    /// How the customer paid.
    pub method: PaymentMethod,
    /// Who owes whom (follows from the method).
    pub direction: LedgerDirection,
    /// The agreed total the job was completed at.
    pub total: Money,
    /// What the customer paid (cash is rounded to the smallest coin).
    pub charged: Money,
    /// The platform's fee on `charged`.
    pub fee: Money,
    /// What the Friend keeps.
    pub payout: Money,
    /// Where the entry stands.
    pub status: LedgerStatus,
    /// Completion time (server clock).
    pub created_at: DateTime<Utc>,
    /// Last status change (server clock).
    pub updated_at: DateTime<Utc>,
    /// When it became due.
    #[serde(default)]
    pub to_pay_at: Option<DateTime<Utc>>,
    /// When it was settled.
    #[serde(default)]
    pub paid_at: Option<DateTime<Utc>>,
    /// Set when the entry compensates a late cancellation or a no-show (`None`: a completed job).
    #[serde(default)]
    pub compensation: Option<crate::visit::CompensationCause>,
}

/// `GET /v1/friend/ledger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ledger {
    /// The caller's entries, newest first.
    pub entries: Vec<LedgerEntry>,
}

/// `POST /v1/admin/ledger/{id}`: moves an entry forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerUpdate {
    /// The new status (`to_pay` or `paid`).
    pub status: LedgerStatus,
}

// ---- rating and unhappy endings ------------------------------------------------------------

/// `POST /v1/customer/jobs/{id}/rate`: the customer rates a completed job, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateRequest {
    /// 1 to 5 stars.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5))]
    pub stars: u8,
    /// Optional comment, at most [`MAX_COMMENT_CHARS`] characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 500))]
    pub comment: Option<String>,
}

impl RateRequest {
    /// Checks stars and comment.
    pub fn validate(&self) -> Result<(), Invalid> {
        if !STARS.contains(&self.stars) {
            return Err(Invalid {
                field: "stars",
                problem: "must be 1…5".into(),
            });
        }
        if let Some(c) = &self.comment {
            note("comment", c, MAX_COMMENT_CHARS)?;
        }
        Ok(())
    }
}

/// Why a Friend checked out without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UnsuccessfulReason {
    /// Nobody there after waiting and calling.
    CustomerAbsent,
    /// The Friend cannot help with this.
    CannotHelp,
    /// Anything else (a note is required).
    Other,
    /// A reason this build does not know; servers refuse it in input.
    #[serde(other)]
    Unknown,
}

impl UnsuccessfulReason {
    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            UnsuccessfulReason::CustomerAbsent => "customer_absent",
            UnsuccessfulReason::CannotHelp => "cannot_help",
            UnsuccessfulReason::Other => "other",
            UnsuccessfulReason::Unknown => "unknown",
        }
    }

    /// Parses a wire name; unknown names give [`UnsuccessfulReason::Unknown`].
    pub fn parse(s: &str) -> UnsuccessfulReason {
        [
            UnsuccessfulReason::CustomerAbsent,
            UnsuccessfulReason::CannotHelp,
            UnsuccessfulReason::Other,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .unwrap_or(UnsuccessfulReason::Unknown)
    }
}

/// `POST /v1/friend/jobs/{id}/escalate`: hands the job to the company's field service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EscalateRequest {
    /// What the field service needs to know, at most [`MAX_NOTE_CHARS`] characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 500))]
    pub note: Option<String>,
}

impl EscalateRequest {
    /// Checks the note.
    pub fn validate(&self) -> Result<(), Invalid> {
        match &self.note {
            Some(n) => note("note", n, MAX_NOTE_CHARS),
            None => Ok(()),
        }
    }
}

/// `POST /v1/friend/jobs/{id}/unsuccessful`: checks out without success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnsuccessfulRequest {
    /// Why.
    pub reason: UnsuccessfulReason,
    /// Details, at most [`MAX_NOTE_CHARS`] characters; required for [`UnsuccessfulReason::Other`].
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 500))]
    pub note: Option<String>,
}

impl UnsuccessfulRequest {
    /// Checks reason and note.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.reason == UnsuccessfulReason::Unknown {
            return Err(Invalid {
                field: "reason",
                problem: "unknown reason".into(),
            });
        }
        if let Some(n) = &self.note {
            note("note", n, MAX_NOTE_CHARS)?;
        }
        let has_note = self.note.as_deref().is_some_and(|n| !n.trim().is_empty());
        if self.reason == UnsuccessfulReason::Other && !has_note {
            return Err(Invalid {
                field: "note",
                problem: "required when the reason is other".into(),
            });
        }
        Ok(())
    }
}

/// How a job ended when it did not end in completion by the Friend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobOutcome {
    /// Handed to the company's field service.
    Escalated {
        /// The Friend's note.
        #[serde(default)]
        note: Option<String>,
    },
    /// Checked out without success.
    Unsuccessful {
        /// Why.
        reason: UnsuccessfulReason,
        /// The Friend's note.
        #[serde(default)]
        note: Option<String>,
    },
    /// An outcome this build does not know.
    #[serde(other)]
    Unknown,
}

/// A free-text note: bounded, line breaks allowed, no other control or bidi characters (they would
/// make the Friend, the customer and support read different things).
fn note(field: &'static str, text: &str, max: usize) -> Result<(), Invalid> {
    if text.chars().count() > max {
        return Err(Invalid {
            field,
            problem: format!("longer than {max} characters"),
        });
    }
    let bidi = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if text
        .chars()
        .any(|c| (c.is_control() && c != '\n') || bidi(c))
    {
        return Err(Invalid {
            field,
            problem: "contains control characters".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_from_any_alphabet_and_encode_canonically() {
        let key = [0xfbu8; 32];
        for text in [
            STANDARD.encode(key),
            STANDARD_NO_PAD.encode(key),
            URL_SAFE.encode(key),
            URL_SAFE_NO_PAD.encode(key),
        ] {
            assert_eq!(decode_public_key(&text), Ok(key));
        }
        assert_eq!(encode_public_key(&key), STANDARD.encode(key));
        assert!(decode_public_key(&STANDARD.encode([1u8; 31])).is_err());
        assert!(decode_public_key("not base64!").is_err());
        assert!(decode_public_key(&"A".repeat(10_000)).is_err());
        let keys = PartyKeys {
            friend: vec![encode_public_key(&key), "junk".into()],
            customer: vec![],
        };
        assert_eq!(keys.of(Party::Friend), vec![key]);
        assert!(keys.of(Party::Customer).is_empty());
    }

    #[test]
    fn ledger_moves_forward_only() {
        use LedgerStatus::*;
        assert!(Pending.may_move_to(ToPay));
        assert!(Pending.may_move_to(Paid));
        assert!(ToPay.may_move_to(Paid));
        assert!(Paid.may_move_to(Paid));
        assert!(!Paid.may_move_to(ToPay));
        assert!(!ToPay.may_move_to(Pending));
        assert!(!Pending.may_move_to(Unknown));
        for s in LedgerStatus::ALL {
            assert_eq!(LedgerStatus::parse(s.as_str()), s);
        }
        let s: LedgerStatus = serde_json::from_str("\"refunded\"").unwrap();
        assert_eq!(s, Unknown);
    }

    #[test]
    fn inputs_are_checked() {
        let rate = |stars, comment: Option<&str>| RateRequest {
            stars,
            comment: comment.map(Into::into),
        };
        assert!(
            rate(5, Some("Super, danke!\nGerne wieder"))
                .validate()
                .is_ok()
        );
        assert_eq!(rate(0, None).validate().unwrap_err().field, "stars");
        assert_eq!(rate(6, None).validate().unwrap_err().field, "stars");
        let long = "x".repeat(MAX_COMMENT_CHARS + 1);
        assert_eq!(
            rate(4, Some(&long)).validate().unwrap_err().field,
            "comment"
        );
        assert!(rate(4, Some("evil\u{202e}")).validate().is_err());

        let out = |reason, note: Option<&str>| UnsuccessfulRequest {
            reason,
            note: note.map(Into::into),
        };
        assert!(
            out(UnsuccessfulReason::CustomerAbsent, None)
                .validate()
                .is_ok()
        );
        assert_eq!(
            out(UnsuccessfulReason::Other, Some("  "))
                .validate()
                .unwrap_err()
                .field,
            "note"
        );
        assert!(
            out(UnsuccessfulReason::Other, Some("Wrong address"))
                .validate()
                .is_ok()
        );
        assert_eq!(
            out(UnsuccessfulReason::Unknown, None)
                .validate()
                .unwrap_err()
                .field,
            "reason"
        );
        let complete = CompleteRequest {
            payment: PaymentMethod::Unknown,
            total: Money::chf(1),
        };
        assert_eq!(complete.validate().unwrap_err().field, "payment");
    }

    #[test]
    fn outcomes_are_tagged_and_forward_compatible() {
        let o = JobOutcome::Unsuccessful {
            reason: UnsuccessfulReason::CustomerAbsent,
            note: None,
        };
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"unsuccessful","reason":"customer_absent","note":null}"#
        );
        assert_eq!(serde_json::from_str::<JobOutcome>(&json).unwrap(), o);
        let future: JobOutcome = serde_json::from_str(r#"{"kind":"handed_over"}"#).unwrap();
        assert_eq!(future, JobOutcome::Unknown);
        let r: UnsuccessfulReason = serde_json::from_str("\"dog_bit_me\"").unwrap();
        assert_eq!(r, UnsuccessfulReason::Unknown);
    }
}
