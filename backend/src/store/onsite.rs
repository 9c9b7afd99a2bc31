//! What a job gathers on site and after — the parties' device keys, the negotiation, the completion,
//! the rating and an unhappy ending — read together with every job row (the columns and joins here
//! are spliced into the job queries of [`super::jobs`]), so every projection of a job is one query.

use crate::clock::from_ms;
use crate::sql::Row;
use friend_protocol::negotiation::{Agreement, Answer, Proposal};
use friend_protocol::{
    Compensation, CompensationCause, Currency, JobOutcome, Money, Negotiation, NegotiationView,
    Party, PartyKeys, PaymentMethod, Quote, QuoteRecord, Settlement, UnsuccessfulReason,
};

/// Columns appended to the job columns, in the order [`from_row`] reads them.
macro_rules! onsite_columns {
    () => {
        "(SELECT json_group_array(k.public_key ORDER BY k.created_at, k.public_key)
            FROM device_keys k WHERE k.account_id = j.customer_id),
        CASE WHEN j.friend_id IS NULL THEN NULL ELSE
            (SELECT json_group_array(k.public_key ORDER BY k.created_at, k.public_key)
             FROM device_keys k WHERE k.account_id = j.friend_id) END,
        ql.version, ql.proposed_by, ql.quote, ql.answer, ql.proposal, ql.acceptance, ql.proposed_at, ql.answered_at,
        qa.version, qa.proposed_by, qa.quote, qa.answer, qa.proposal, qa.acceptance, qa.proposed_at, qa.answered_at,
        l.method, l.currency, l.total_minor, l.charged_minor, l.fee_minor, l.payout_minor,
        r.stars, o.kind, o.reason, o.note, l.kind"
    };
}

/// Joins appended to the job query's `FROM`: the latest quote, the latest accepted quote, the
/// ledger entry, the rating and the outcome (each at most one row per job).
macro_rules! onsite_joins {
    () => {
        " LEFT JOIN quotes ql ON ql.job_id = j.id
            AND ql.version = (SELECT MAX(version) FROM quotes WHERE job_id = j.id)
        LEFT JOIN quotes qa ON qa.job_id = j.id
            AND qa.version = (SELECT MAX(version) FROM quotes WHERE job_id = j.id AND answer = 'accepted')
        LEFT JOIN ledger l ON l.job_id = j.id
        LEFT JOIN ratings r ON r.job_id = j.id
        LEFT JOIN outcomes o ON o.job_id = j.id"
    };
}

pub(crate) use {onsite_columns, onsite_joins};

/// The on-site facts of a job, decoded.
#[derive(Debug, Clone, Default)]
pub struct OnSite {
    /// Both parties' device keys.
    pub keys: PartyKeys,
    /// The negotiation, once a first quote was proposed.
    pub negotiation: Option<NegotiationView>,
    /// Payment method, once completed.
    pub payment: Option<PaymentMethod>,
    /// The agreed total it was completed at.
    pub final_total: Option<Money>,
    /// Charged, fee, payout.
    pub settlement: Option<Settlement>,
    /// Stars, once rated.
    pub rating: Option<u8>,
    /// How an escalated or unsuccessful job ended.
    pub outcome: Option<JobOutcome>,
    /// What a late cancellation or a no-show owes (a ledger entry of that kind).
    pub compensation: Option<Compensation>,
}

fn corrupt(what: &str) -> crate::sql::SqlError {
    crate::sql::SqlError::Corrupt(format!("corrupt {what}"))
}

/// A stored currency code.
pub fn currency(code: &str) -> Currency {
    match code {
        "CHF" => Currency::Chf,
        "EUR" => Currency::Eur,
        _ => Currency::Unknown,
    }
}

/// A stored party name.
pub fn party(name: &str) -> Party {
    match name {
        "friend" => Party::Friend,
        "customer" => Party::Customer,
        _ => Party::Unknown,
    }
}

/// A stored payment method name.
pub fn payment(name: &str) -> PaymentMethod {
    match name {
        "online" => PaymentMethod::Online,
        "cash" => PaymentMethod::Cash,
        _ => PaymentMethod::Unknown,
    }
}

/// The stored name of a payment method.
pub fn payment_name(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::Online => "online",
        PaymentMethod::Cash => "cash",
        PaymentMethod::Unknown => "unknown",
    }
}

fn answer(name: &str) -> Answer {
    match name {
        "pending" => Answer::Pending,
        "accepted" => Answer::Accepted,
        "rejected" => Answer::Rejected,
        _ => Answer::Unknown,
    }
}

fn keys(json: Option<String>) -> crate::sql::Result<Vec<String>> {
    match json {
        Some(j) => serde_json::from_str(&j).map_err(|_| corrupt("keys")),
        None => Ok(Vec::new()),
    }
}

fn quote_record(r: &Row<'_>, at: usize) -> crate::sql::Result<Option<QuoteRecord>> {
    if r.get::<Option<i64>>(at)?.is_none() {
        return Ok(None);
    }
    let quote: Quote =
        serde_json::from_str(&r.get::<String>(at + 2)?).map_err(|_| corrupt("quote"))?;
    Ok(Some(QuoteRecord {
        quote,
        proposed_by: party(&r.get::<String>(at + 1)?),
        answer: answer(&r.get::<String>(at + 3)?),
        proposal: r.get(at + 4)?,
        acceptance: r.get(at + 5)?,
        proposed_at: from_ms(r.get(at + 6)?),
        answered_at: r.get::<Option<i64>>(at + 7)?.map(from_ms),
    }))
}

/// Decodes the columns of [`onsite_columns`], starting at column `at`.
pub fn from_row(r: &Row<'_>, at: usize) -> crate::sql::Result<OnSite> {
    let keys = PartyKeys {
        customer: keys(r.get(at)?)?,
        friend: keys(r.get(at + 1)?)?,
    };
    let latest = quote_record(r, at + 2)?;
    let agreed = quote_record(r, at + 10)?;
    let negotiation = latest.map(|latest| NegotiationView {
        state: Negotiation {
            latest: Some(Proposal {
                version: latest.quote.version,
                by: latest.proposed_by,
                total: latest.quote.total,
                answer: latest.answer,
            }),
            agreed: agreed.as_ref().map(|a| Agreement {
                version: a.quote.version,
                total: a.quote.total,
                proposed_by: a.proposed_by,
            }),
        },
        latest: Some(latest),
        agreed,
    });

    let l = at + 18;
    let ledger_kind: Option<String> = r.get(at + 28)?;
    let mut compensation = None;
    let (payment, final_total, settlement) = match r.get::<Option<String>>(l)? {
        Some(_) if ledger_kind.as_deref().is_some_and(|k| k != "completion") => {
            let cur = currency(&r.get::<String>(l + 1)?);
            let money =
                |i: usize| -> crate::sql::Result<Money> { Ok(Money::new(r.get(l + i)?, cur)) };
            compensation = Some(Compensation {
                cause: CompensationCause::parse(ledger_kind.as_deref().unwrap_or_default()),
                settlement: Settlement {
                    charged: money(3)?,
                    fee: money(4)?,
                    payout: money(5)?,
                },
            });
            (None, None, None)
        }
        Some(method) => {
            let cur = currency(&r.get::<String>(l + 1)?);
            let money =
                |i: usize| -> crate::sql::Result<Money> { Ok(Money::new(r.get(l + i)?, cur)) };
            (
                Some(payment(&method)),
                Some(money(2)?),
                Some(Settlement {
                    charged: money(3)?,
                    fee: money(4)?,
                    payout: money(5)?,
                }),
            )
        }
        None => (None, None, None),
    };
    let rating = r
        .get::<Option<i64>>(at + 24)?
        .map(|s| u8::try_from(s).map_err(|_| corrupt("rating")))
        .transpose()?;
    let note: Option<String> = r.get(at + 27)?;
    let outcome = match r.get::<Option<String>>(at + 25)?.as_deref() {
        None => None,
        Some("escalated") => Some(JobOutcome::Escalated { note }),
        Some("unsuccessful") => Some(JobOutcome::Unsuccessful {
            reason: UnsuccessfulReason::parse(
                &r.get::<Option<String>>(at + 26)?.unwrap_or_default(),
            ),
            note,
        }),
        Some(_) => Some(JobOutcome::Unknown),
    };
    Ok(OnSite {
        keys,
        negotiation,
        payment,
        final_total,
        settlement,
        rating,
        outcome,
        compensation,
    })
}
