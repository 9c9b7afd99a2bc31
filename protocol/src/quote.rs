//! Quotes (SPEC §7): the versioned list of line items Friend and customer agree on site, the
//! guardrails both sides check with this one rule set ([`validate_quote`]), and what a total means
//! in money for the Friend ([`Settlement`]).
//!
//! A quote is refused, never repaired: the receiving side does not recompute the total, it checks
//! that the total equals the sum of the items, so a tampered or buggy total is caught instead of
//! silently "fixed" into something neither party saw.

use crate::{Currency, JobId, Money, MoneyError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a line item stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LineItemKind {
    /// The booked service, normally at its orientation price.
    Service,
    /// A change to the service price agreed on site (not negative: a reduction is a discount).
    Adjustment,
    /// A further service (package) agreed on the spot.
    ExtraService,
    /// Additional working time, priced per unit.
    TimeUnit,
    /// Material the Friend supplies (cables, adapters).
    Material,
    /// A reduction; its total is zero or negative.
    Discount,
    /// A kind this build does not know; refused by [`validate_quote`].
    #[serde(other)]
    Unknown,
}

impl LineItemKind {
    /// Every known kind.
    pub const ALL: [LineItemKind; 6] = [
        LineItemKind::Service,
        LineItemKind::Adjustment,
        LineItemKind::ExtraService,
        LineItemKind::TimeUnit,
        LineItemKind::Material,
        LineItemKind::Discount,
    ];

    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LineItemKind::Service => "service",
            LineItemKind::Adjustment => "adjustment",
            LineItemKind::ExtraService => "extra_service",
            LineItemKind::TimeUnit => "time_unit",
            LineItemKind::Material => "material",
            LineItemKind::Discount => "discount",
            LineItemKind::Unknown => "unknown",
        }
    }
}

/// One line of a quote: `quantity × unit_price`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

impl LineItem {
    /// `quantity × unit_price`, refusing overflow.
    pub fn total(&self) -> Result<Money, MoneyError> {
        self.unit_price.checked_mul(i64::from(self.quantity))
    }
}

/// A versioned price proposal for a job. Versions start at 1 and grow by one per proposal
/// (see [`crate::negotiation`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quote {
    /// The job this quote prices.
    pub job_id: JobId,
    /// Proposal version within the job.
    pub version: u32,
    /// The line items, in display order.
    pub items: Vec<LineItem>,
    /// Must equal the sum of the item totals.
    pub total: Money,
    /// Why the price deviates from the orientation price; required beyond the policy threshold.
    pub reason: Option<String>,
}

impl Quote {
    /// A quote whose total is the checked sum of `items` (which must be non-empty and share one
    /// currency). Builds only; call [`validate_quote`] for the guardrails.
    pub fn new(
        job_id: JobId,
        version: u32,
        items: Vec<LineItem>,
        reason: Option<String>,
    ) -> Result<Quote, QuoteError> {
        let total = sum_items(&items)?;
        Ok(Quote {
            job_id,
            version,
            items,
            total,
            reason,
        })
    }
}

/// The checked sum of the item totals, in the first item's currency.
pub fn sum_items(items: &[LineItem]) -> Result<Money, QuoteError> {
    let first = items.first().ok_or(QuoteError::NoItems)?;
    let mut sum = Money::zero(first.unit_price.currency);
    for (index, item) in items.iter().enumerate() {
        if item.unit_price.currency != sum.currency {
            return Err(QuoteError::CurrencyMismatch {
                index: Some(index),
                expected: sum.currency,
                found: item.unit_price.currency,
            });
        }
        let overflow = |_| QuoteError::Overflow { index: Some(index) };
        sum = sum
            .checked_add(item.total().map_err(overflow)?)
            .map_err(|e| match e {
                MoneyError::UnknownCurrency => QuoteError::UnknownCurrency,
                _ => QuoteError::Overflow { index: None },
            })?;
    }
    Ok(sum)
}

/// The guardrails of SPEC §7. Server configuration, not user input: the same values go to clients
/// so they refuse what the server would refuse before anything is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotePolicy {
    /// Most line items in one quote.
    pub max_items: usize,
    /// Longest description or reason, in characters.
    pub max_text_chars: usize,
    /// Largest total (and largest absolute item total), in minor units.
    pub max_total_minor: i64,
    /// A total more than this many basis points above the orientation price needs a reason
    /// (2000 = 20 %).
    pub deviation_needs_reason_bps: u32,
    /// The platform's commission in basis points (SPEC: 10–20 %).
    pub fee_bps: u32,
}

impl Default for QuotePolicy {
    fn default() -> Self {
        Self {
            max_items: 20,
            max_text_chars: 200,
            max_total_minor: 1_000_000, // CHF 10,000.00
            deviation_needs_reason_bps: 2_000,
            fee_bps: 1_500,
        }
    }
}

/// Why a quote was refused. `index` names the offending line item (0-based); `None` means the
/// quote's total (for amounts) or its reason (for texts).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuoteError {
    /// The job's currency is unknown to this build.
    #[error("unknown currency")]
    UnknownCurrency,
    /// The quote has no line items.
    #[error("a quote needs at least one line item")]
    NoItems,
    /// More line items than the policy allows.
    #[error("{count} line items, at most {max} allowed")]
    TooManyItems {
        /// Items in the quote.
        count: usize,
        /// The policy's limit.
        max: usize,
    },
    /// A line item kind this build does not know.
    #[error("item {index}: unknown kind")]
    UnknownKind {
        /// The offending item.
        index: usize,
    },
    /// A line item with quantity 0.
    #[error("item {index}: quantity must be at least 1")]
    ZeroQuantity {
        /// The offending item.
        index: usize,
    },
    /// An amount is not in the job's currency.
    #[error("{}: {} instead of {}", at(*index), found.code(), expected.code())]
    CurrencyMismatch {
        /// The offending item, or `None` for the total.
        index: Option<usize>,
        /// The job's currency.
        expected: Currency,
        /// The amount's currency.
        found: Currency,
    },
    /// The orientation price passed in is not in the job's currency (a caller bug).
    #[error("orientation price is not in the job's currency")]
    OrientationCurrency,
    /// An item total or the sum does not fit in 64-bit minor units.
    #[error("{}: amount overflow", at(*index))]
    Overflow {
        /// The offending item, or `None` for the sum.
        index: Option<usize>,
    },
    /// A discount with a positive total, or another item with a negative one.
    #[error("item {index}: a {} total must be {}", kind.as_str(), if *kind == LineItemKind::Discount { "zero or negative" } else { "zero or positive" })]
    WrongSign {
        /// The offending item.
        index: usize,
        /// Its kind.
        kind: LineItemKind,
    },
    /// An item total's magnitude, or the quote total, exceeds the policy's bound.
    #[error("{}: amount above the limit of {max_minor} minor units", at(*index))]
    AmountTooLarge {
        /// The offending item, or `None` for the total.
        index: Option<usize>,
        /// The policy's limit in minor units.
        max_minor: i64,
    },
    /// The total is below zero.
    #[error("the total must not be negative")]
    NegativeTotal,
    /// The total is zero, or less than the smallest coin (CHF 0.05), which paid in cash rounds to
    /// zero: a Friend who could not help checks out as unsuccessful instead, so no CHF 0
    /// completion (and payout) is ever signed.
    #[error(
        "the total must be at least the smallest coin: check out as unsuccessful when there is \
         nothing to charge"
    )]
    ZeroTotal,
    /// The total is not the sum of the items.
    #[error("total {found} is not the sum of the items ({expected})")]
    TotalMismatch {
        /// The sum of the items.
        expected: Money,
        /// The quote's total.
        found: Money,
    },
    /// A description is empty.
    #[error("item {index}: description must not be empty")]
    EmptyDescription {
        /// The offending item.
        index: usize,
    },
    /// A description or the reason is longer than the policy allows.
    #[error("{}: text longer than {max} characters", text_at(*index))]
    TextTooLong {
        /// The offending item, or `None` for the reason.
        index: Option<usize>,
        /// The policy's limit in characters.
        max: usize,
    },
    /// A description or the reason contains control characters (line breaks included).
    #[error("{}: text contains control characters", text_at(*index))]
    ControlCharacters {
        /// The offending item, or `None` for the reason.
        index: Option<usize>,
    },
    /// The total deviates from the orientation price beyond the threshold and has no reason.
    #[error("a total more than {threshold_bps} bp above the orientation price needs a reason")]
    ReasonRequired {
        /// The policy's threshold in basis points.
        threshold_bps: u32,
    },
}

fn at(index: Option<usize>) -> String {
    index.map_or_else(|| "total".to_owned(), |i| format!("item {i}"))
}

fn text_at(index: Option<usize>) -> String {
    index.map_or_else(|| "reason".to_owned(), |i| format!("item {i}"))
}

impl QuoteError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            QuoteError::UnknownCurrency => "unknown_currency",
            QuoteError::NoItems => "no_items",
            QuoteError::TooManyItems { .. } => "too_many_items",
            QuoteError::UnknownKind { .. } => "unknown_item_kind",
            QuoteError::ZeroQuantity { .. } => "zero_quantity",
            QuoteError::CurrencyMismatch { .. } => "currency_mismatch",
            QuoteError::OrientationCurrency => "orientation_currency_mismatch",
            QuoteError::Overflow { .. } => "amount_overflow",
            QuoteError::WrongSign { .. } => "wrong_sign",
            QuoteError::AmountTooLarge { .. } => "amount_too_large",
            QuoteError::NegativeTotal => "negative_total",
            QuoteError::ZeroTotal => "zero_total",
            QuoteError::TotalMismatch { .. } => "total_mismatch",
            QuoteError::EmptyDescription { .. } => "empty_description",
            QuoteError::TextTooLong { .. } => "text_too_long",
            QuoteError::ControlCharacters { .. } => "control_characters",
            QuoteError::ReasonRequired { .. } => "reason_required",
        }
    }

    /// The offending line item, when the refusal is about one.
    pub fn item_index(&self) -> Option<usize> {
        match self {
            QuoteError::UnknownKind { index }
            | QuoteError::ZeroQuantity { index }
            | QuoteError::WrongSign { index, .. }
            | QuoteError::EmptyDescription { index } => Some(*index),
            QuoteError::CurrencyMismatch { index, .. }
            | QuoteError::Overflow { index }
            | QuoteError::AmountTooLarge { index, .. }
            | QuoteError::TextTooLong { index, .. }
            | QuoteError::ControlCharacters { index } => *index,
            _ => None,
        }
    }
}

/// Unicode bidi embeddings, overrides and isolates: they reorder how the text around them is
/// displayed without being visible themselves.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn check_text(text: &str, index: Option<usize>, max: usize) -> Result<(), QuoteError> {
    if text.chars().count() > max {
        return Err(QuoteError::TextTooLong { index, max });
    }
    // Single-line texts: they are shown in lists and signed; a hidden line break or a bidi
    // override ("Trojan Source") could make the two parties read different things.
    if text.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(QuoteError::ControlCharacters { index });
    }
    Ok(())
}

/// Checks a quote against the guardrails of SPEC §7, in a fixed order (shape, items, total,
/// deviation), so both sides report the same first problem.
///
/// `job_currency` and `orientation_price` come from the job, never from the quote.
pub fn validate_quote(
    quote: &Quote,
    job_currency: Currency,
    orientation_price: Money,
    policy: &QuotePolicy,
) -> Result<(), QuoteError> {
    if job_currency == Currency::Unknown {
        return Err(QuoteError::UnknownCurrency);
    }
    if quote.items.is_empty() {
        return Err(QuoteError::NoItems);
    }
    if quote.items.len() > policy.max_items {
        return Err(QuoteError::TooManyItems {
            count: quote.items.len(),
            max: policy.max_items,
        });
    }

    let mut sum = Money::zero(job_currency);
    for (index, item) in quote.items.iter().enumerate() {
        if item.kind == LineItemKind::Unknown {
            return Err(QuoteError::UnknownKind { index });
        }
        if item.description.trim().is_empty() {
            return Err(QuoteError::EmptyDescription { index });
        }
        check_text(&item.description, Some(index), policy.max_text_chars)?;
        if item.quantity == 0 {
            return Err(QuoteError::ZeroQuantity { index });
        }
        if item.unit_price.currency != job_currency {
            return Err(QuoteError::CurrencyMismatch {
                index: Some(index),
                expected: job_currency,
                found: item.unit_price.currency,
            });
        }
        let total = item
            .total()
            .map_err(|_| QuoteError::Overflow { index: Some(index) })?;
        let sign_ok = match item.kind {
            LineItemKind::Discount => total.minor <= 0,
            _ => total.minor >= 0,
        };
        if !sign_ok {
            return Err(QuoteError::WrongSign {
                index,
                kind: item.kind,
            });
        }
        // Bounding every item (not only the sum) keeps absurd lines like "CHF 1 bn minus a
        // CHF 1 bn discount" out of a quote a customer is asked to sign.
        if total.minor.unsigned_abs() > policy.max_total_minor.unsigned_abs() {
            return Err(QuoteError::AmountTooLarge {
                index: Some(index),
                max_minor: policy.max_total_minor,
            });
        }
        sum = sum
            .checked_add(total)
            .map_err(|_| QuoteError::Overflow { index: None })?;
    }

    if let Some(reason) = &quote.reason {
        check_text(reason, None, policy.max_text_chars)?;
    }

    if quote.total.currency != job_currency {
        return Err(QuoteError::CurrencyMismatch {
            index: None,
            expected: job_currency,
            found: quote.total.currency,
        });
    }
    if quote.total != sum {
        return Err(QuoteError::TotalMismatch {
            expected: sum,
            found: quote.total,
        });
    }
    check_total_bounds(quote.total, policy)?;
    if quote.total.minor < quote.total.currency.cash_step() {
        return Err(QuoteError::ZeroTotal);
    }

    if orientation_price.currency != job_currency {
        return Err(QuoteError::OrientationCurrency);
    }
    // Only a price above the orientation price needs a reason: the published price is the
    // customer's recommended maximum (SPEC §2), so going below it protects them already.
    // total > orientation × (1 + bps/10 000), in i128 so no product can overflow.
    let limit = i128::from(orientation_price.minor)
        * (10_000 + i128::from(policy.deviation_needs_reason_bps));
    let needs_reason = i128::from(quote.total.minor) * 10_000 > limit;
    let has_reason = quote
        .reason
        .as_deref()
        .is_some_and(|r| !r.trim().is_empty());
    if needs_reason && !has_reason {
        return Err(QuoteError::ReasonRequired {
            threshold_bps: policy.deviation_needs_reason_bps,
        });
    }
    Ok(())
}

/// The bounds of any total a quote may carry: not negative, at most the policy's
/// `max_total_minor`. ([`validate_quote`] also refuses a zero total; a preview shows it.)
pub fn check_total_bounds(total: Money, policy: &QuotePolicy) -> Result<(), QuoteError> {
    if total.minor < 0 {
        return Err(QuoteError::NegativeTotal);
    }
    if total.minor > policy.max_total_minor {
        return Err(QuoteError::AmountTooLarge {
            index: None,
            max_minor: policy.max_total_minor,
        });
    }
    Ok(())
}

/// How the customer pays at completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// Paid through the platform; the exact total is charged.
    Online,
    /// Paid to the Friend in cash; rounded to the smallest coin, and the Friend owes the fee.
    Cash,
    /// A method this build does not know; servers refuse it in input.
    #[serde(other)]
    Unknown,
}

/// What a total means in money: what the customer pays, the platform's fee and the Friend's payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Settlement {
    /// What the customer pays.
    pub charged: Money,
    /// The platform's commission on `charged`.
    pub fee: Money,
    /// What the Friend keeps: `charged - fee`.
    pub payout: Money,
}

impl Settlement {
    /// Settles `total`. Cash is rounded to the currency's smallest coin (CHF 0.05) because that is
    /// what changes hands; the fee is taken from what is actually charged, so
    /// `fee + payout == charged` always. An [`PaymentMethod::Unknown`] method is settled like
    /// online (exactly); input validation refuses it before completion.
    pub fn for_total(
        total: Money,
        method: PaymentMethod,
        policy: &QuotePolicy,
    ) -> Result<Settlement, MoneyError> {
        if total.currency == Currency::Unknown {
            return Err(MoneyError::UnknownCurrency);
        }
        let charged = match method {
            PaymentMethod::Cash => total.round_cash()?,
            PaymentMethod::Online | PaymentMethod::Unknown => total,
        };
        let fee = charged.share_bps(policy.fee_bps)?;
        let payout = charged.checked_sub(fee)?;
        Ok(Settlement {
            charged,
            fee,
            payout,
        })
    }

    /// Fee and payout of a total before it is proposed (the Friend's preview): refused like a
    /// quote's total when it is out of bounds ([`check_total_bounds`]: negative, or above the
    /// policy's maximum), then [`Settlement::for_total`].
    pub fn preview(
        total: Money,
        method: PaymentMethod,
        policy: &QuotePolicy,
    ) -> Result<Settlement, QuoteError> {
        check_total_bounds(total, policy)?;
        Settlement::for_total(total, method, policy).map_err(|e| match e {
            MoneyError::UnknownCurrency => QuoteError::UnknownCurrency,
            MoneyError::Overflow | MoneyError::CurrencyMismatch(..) => {
                QuoteError::Overflow { index: None }
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn job() -> JobId {
        JobId(Uuid::from_u128(7))
    }

    /// A line item priced in Rappen (the consent tests sign quotes of them too).
    pub(crate) fn item(
        kind: LineItemKind,
        description: &str,
        quantity: u32,
        minor: i64,
    ) -> LineItem {
        LineItem {
            kind,
            description: description.into(),
            quantity,
            unit_price: Money::chf(minor),
        }
    }

    fn router_quote() -> Quote {
        Quote::new(
            job(),
            1,
            vec![
                item(LineItemKind::Service, "Router setup", 1, 8900),
                item(LineItemKind::Material, "LAN cable 5 m", 1, 1250),
                item(LineItemKind::Discount, "Regular customer", 1, -500),
            ],
            None,
        )
        .unwrap()
    }

    fn check(q: &Quote) -> Result<(), QuoteError> {
        validate_quote(q, Currency::Chf, Money::chf(8900), &QuotePolicy::default())
    }

    #[test]
    fn a_plain_quote_passes() {
        let q = router_quote();
        assert_eq!(q.total, Money::chf(8900 + 1250 - 500));
        assert_eq!(check(&q), Ok(()));
    }

    #[test]
    fn refusals_name_the_item() {
        let mut q = router_quote();
        q.items[1].unit_price = Money::chf(1300);
        let err = check(&q).unwrap_err();
        assert_eq!(err.code(), "total_mismatch");

        let mut q = router_quote();
        q.items[2].unit_price = Money::chf(500);
        q.total = sum_items(&q.items).unwrap();
        let err = check(&q).unwrap_err();
        assert_eq!((err.code(), err.item_index()), ("wrong_sign", Some(2)));

        let mut q = router_quote();
        q.items[1].quantity = 0;
        assert_eq!(check(&q), Err(QuoteError::ZeroQuantity { index: 1 }));

        let mut q = router_quote();
        q.items[0].unit_price = Money::new(8900, Currency::Eur);
        assert_eq!(check(&q).unwrap_err().code(), "currency_mismatch");
        assert_eq!(check(&q).unwrap_err().item_index(), Some(0));

        let mut q = router_quote();
        q.items[1].description = "cable\u{202e}".into();
        assert_eq!(
            check(&q),
            Err(QuoteError::ControlCharacters { index: Some(1) })
        );

        let mut q = router_quote();
        q.items[1].description = "  ".into();
        assert_eq!(check(&q), Err(QuoteError::EmptyDescription { index: 1 }));

        let mut q = router_quote();
        q.items[1].description = "x".repeat(201);
        assert_eq!(check(&q).unwrap_err().code(), "text_too_long");

        let mut q = router_quote();
        q.items[1].kind = LineItemKind::Unknown;
        assert_eq!(check(&q).unwrap_err().code(), "unknown_item_kind");
    }

    #[test]
    fn the_total_is_checked() {
        let mut q = router_quote();
        q.total = Money::new(q.total.minor, Currency::Eur);
        assert_eq!(
            check(&q).unwrap_err(),
            QuoteError::CurrencyMismatch {
                index: None,
                expected: Currency::Chf,
                found: Currency::Eur
            }
        );

        let q = Quote::new(
            job(),
            1,
            vec![
                item(LineItemKind::Service, "Router setup", 1, 100),
                item(LineItemKind::Discount, "Too generous", 1, -200),
            ],
            None,
        )
        .unwrap();
        assert_eq!(check(&q), Err(QuoteError::NegativeTotal));

        let q = Quote::new(
            job(),
            1,
            vec![
                item(LineItemKind::Service, "Router setup", 1, 100),
                item(LineItemKind::Discount, "On the house", 1, -100),
            ],
            None,
        )
        .unwrap();
        assert_eq!(check(&q), Err(QuoteError::ZeroTotal));
        assert_eq!(QuoteError::ZeroTotal.code(), "zero_total");
        // CHF 0.02 paid in cash rounds to CHF 0.00: refused like zero; CHF 0.05 is a coin.
        for (minor, refused) in [(2, true), (4, true), (5, false)] {
            let q = Quote::new(
                job(),
                1,
                vec![
                    item(LineItemKind::Service, "Router setup", 1, 100 + minor),
                    item(LineItemKind::Discount, "Almost free", 1, -100),
                ],
                None,
            )
            .unwrap();
            assert_eq!(check(&q) == Err(QuoteError::ZeroTotal), refused, "{minor}");
        }

        let q = Quote::new(
            job(),
            1,
            vec![item(LineItemKind::Service, "Router setup", 1, 1_000_001)],
            Some("big".into()),
        )
        .unwrap();
        assert_eq!(check(&q).unwrap_err().code(), "amount_too_large");

        let items = vec![item(LineItemKind::Service, "Router setup", 1, 100); 21];
        let q = Quote::new(job(), 1, items, None).unwrap();
        assert_eq!(check(&q).unwrap_err().code(), "too_many_items");
        assert_eq!(
            Quote::new(job(), 1, vec![], None).unwrap_err(),
            QuoteError::NoItems
        );
        assert_eq!(
            validate_quote(
                &router_quote(),
                Currency::Unknown,
                Money::chf(1),
                &QuotePolicy::default()
            ),
            Err(QuoteError::UnknownCurrency)
        );
        assert_eq!(
            validate_quote(
                &router_quote(),
                Currency::Chf,
                Money::new(8900, Currency::Eur),
                &QuotePolicy::default()
            ),
            Err(QuoteError::OrientationCurrency)
        );
    }

    #[test]
    fn a_large_deviation_needs_a_reason() {
        // 8900 × 1.2 = 10 680: exactly 20 % above is fine, one Rappen more is not.
        let at_limit = Quote::new(
            job(),
            1,
            vec![item(LineItemKind::Service, "Router setup", 1, 10_680)],
            None,
        )
        .unwrap();
        assert_eq!(check(&at_limit), Ok(()));

        let mut above = at_limit.clone();
        above.items[0].unit_price = Money::chf(10_681);
        above.total = Money::chf(10_681);
        assert_eq!(
            check(&above),
            Err(QuoteError::ReasonRequired {
                threshold_bps: 2000
            })
        );
        above.reason = Some("   ".into());
        assert_eq!(check(&above).unwrap_err().code(), "reason_required");
        above.reason = Some("Second access point in the cellar".into());
        assert_eq!(check(&above), Ok(()));
        above.reason = Some("two\nlines".into());
        assert_eq!(
            check(&above),
            Err(QuoteError::ControlCharacters { index: None })
        );

        // Far below the orientation price needs no reason.
        let cheap = Quote::new(
            job(),
            1,
            vec![item(LineItemKind::Service, "Router setup", 1, 100)],
            None,
        )
        .unwrap();
        assert_eq!(check(&cheap), Ok(()));
    }

    #[test]
    fn extreme_values_are_typed_errors() {
        let huge = item(LineItemKind::Service, "Router setup", u32::MAX, i64::MAX);
        assert_eq!(huge.total(), Err(MoneyError::Overflow));
        assert_eq!(
            Quote::new(job(), 1, vec![huge.clone()], None),
            Err(QuoteError::Overflow { index: Some(0) })
        );
        let q = Quote {
            job_id: job(),
            version: 1,
            items: vec![huge],
            total: Money::chf(0),
            reason: None,
        };
        assert_eq!(check(&q), Err(QuoteError::Overflow { index: Some(0) }));

        let two = vec![
            item(LineItemKind::Service, "a", 1, i64::MAX),
            item(LineItemKind::Material, "b", 1, 1),
        ];
        assert_eq!(
            Quote::new(job(), 1, two.clone(), None),
            Err(QuoteError::Overflow { index: None })
        );
        let unbounded = QuotePolicy {
            max_total_minor: i64::MAX,
            ..QuotePolicy::default()
        };
        let q = Quote {
            job_id: job(),
            version: 1,
            items: two,
            total: Money::chf(0),
            reason: None,
        };
        assert_eq!(
            validate_quote(&q, Currency::Chf, Money::chf(0), &unbounded),
            Err(QuoteError::Overflow { index: None })
        );
    }

    #[test]
    fn settlement_examples() {
        let policy = QuotePolicy::default();
        let s = Settlement::for_total(Money::chf(8903), PaymentMethod::Cash, &policy).unwrap();
        assert_eq!(s.charged, Money::chf(8905));
        assert_eq!(s.fee, Money::chf(1336)); // 15 % of 89.05 = 13.3575
        assert_eq!(s.payout, Money::chf(8905 - 1336));
        let s = Settlement::for_total(Money::chf(8903), PaymentMethod::Online, &policy).unwrap();
        assert_eq!(s.charged, Money::chf(8903));
        assert_eq!(
            Settlement::for_total(
                Money::new(1, Currency::Unknown),
                PaymentMethod::Cash,
                &policy
            ),
            Err(MoneyError::UnknownCurrency)
        );
        assert_eq!(
            Settlement::for_total(Money::chf(i64::MIN), PaymentMethod::Cash, &policy),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn a_preview_is_refused_out_of_bounds() {
        let policy = QuotePolicy::default();
        let preview =
            |minor| Settlement::preview(Money::chf(minor), PaymentMethod::Online, &policy);
        assert_eq!(preview(-1), Err(QuoteError::NegativeTotal));
        assert_eq!(preview(i64::MIN), Err(QuoteError::NegativeTotal));
        assert_eq!(
            preview(policy.max_total_minor + 1),
            Err(QuoteError::AmountTooLarge {
                index: None,
                max_minor: policy.max_total_minor
            })
        );
        assert_eq!(preview(i64::MAX).unwrap_err().code(), "amount_too_large");
        assert_eq!(preview(0).unwrap().payout, Money::chf(0));
        assert_eq!(
            preview(policy.max_total_minor),
            Settlement::for_total(
                Money::chf(policy.max_total_minor),
                PaymentMethod::Online,
                &policy
            )
            .map_err(|_| QuoteError::NoItems)
        );
        assert_eq!(
            Settlement::preview(
                Money::new(100, Currency::Unknown),
                PaymentMethod::Cash,
                &policy
            ),
            Err(QuoteError::UnknownCurrency)
        );
    }

    #[test]
    fn wire_names_are_snake_case() {
        let json = serde_json::to_string(&LineItemKind::ExtraService).unwrap();
        assert_eq!(json, "\"extra_service\"");
        let kind: LineItemKind = serde_json::from_str("\"subscription\"").unwrap();
        assert_eq!(kind, LineItemKind::Unknown);
        for k in LineItemKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        let m: PaymentMethod = serde_json::from_str("\"twint\"").unwrap();
        assert_eq!(m, PaymentMethod::Unknown);
    }

    /// A valid item: discounts small and negative, everything else small and positive, so with a
    /// leading service the total stays within the default policy.
    fn valid_item() -> impl Strategy<Value = LineItem> {
        (
            proptest::sample::select(LineItemKind::ALL.to_vec()),
            "[A-Za-z][A-Za-z0-9 ,.]{0,40}",
            1u32..=5,
            0i64..=5_000,
        )
            .prop_map(|(kind, description, quantity, minor)| LineItem {
                kind,
                description,
                quantity,
                unit_price: Money::chf(if kind == LineItemKind::Discount {
                    -minor / 5
                } else {
                    minor
                }),
            })
    }

    fn valid_quote() -> impl Strategy<Value = Quote> {
        (
            100_000i64..=200_000,
            proptest::collection::vec(valid_item(), 0..=19),
            1u32..1000,
        )
            .prop_map(|(service, mut rest, version)| {
                rest.insert(0, item(LineItemKind::Service, "Service", 1, service));
                Quote::new(job(), version, rest, Some("agreed on site".into())).unwrap()
            })
    }

    proptest! {
        #[test]
        fn built_quotes_validate(q in valid_quote(), orientation in 0i64..300_000) {
            let policy = QuotePolicy::default();
            prop_assert_eq!(validate_quote(&q, Currency::Chf, Money::chf(orientation), &policy), Ok(()));
            let sum: i64 = q.items.iter().map(|i| i.unit_price.minor * i64::from(i.quantity)).sum();
            prop_assert_eq!(q.total, Money::chf(sum));
        }

        #[test]
        fn changing_a_price_without_the_total_is_refused(
            q in valid_quote(),
            pick in any::<prop::sample::Index>(),
            delta in prop_oneof![-10_000i64..=-1, 1i64..=10_000],
        ) {
            let mut q = q;
            let i = pick.index(q.items.len());
            q.items[i].unit_price.minor += delta;
            let err = validate_quote(&q, Currency::Chf, Money::chf(0), &QuotePolicy::default()).unwrap_err();
            prop_assert!(
                matches!(err.code(), "total_mismatch" | "wrong_sign"),
                "unexpected refusal {:?}", err
            );
        }

        #[test]
        fn fee_plus_payout_is_charged(
            minor in any::<i64>(),
            fee_bps in 1_000u32..=2_000,
            cash in any::<bool>(),
        ) {
            let policy = QuotePolicy { fee_bps, ..QuotePolicy::default() };
            let method = if cash { PaymentMethod::Cash } else { PaymentMethod::Online };
            if let Ok(s) = Settlement::for_total(Money::chf(minor), method, &policy) {
                prop_assert_eq!(s.fee.checked_add(s.payout), Ok(s.charged));
            }
        }

        #[test]
        fn cash_is_whole_coins_near_the_total(minor in 0i64..=i64::MAX) {
            let s = Settlement::for_total(Money::chf(minor), PaymentMethod::Cash, &QuotePolicy::default()).unwrap();
            prop_assert_eq!(s.charged.minor % 5, 0);
            prop_assert!((i128::from(s.charged.minor) - i128::from(minor)).abs() <= 2);
            prop_assert_eq!(s.fee.checked_add(s.payout), Ok(s.charged));
        }

        #[test]
        fn extreme_input_never_panics(
            items in proptest::collection::vec(
                (any::<u8>(), any::<u32>(), any::<i64>(), any::<bool>()), 0..6),
            total in any::<i64>(),
            orientation in any::<i64>(),
            bps in any::<u32>(),
        ) {
            let items: Vec<LineItem> = items.into_iter().map(|(k, quantity, minor, eur)| LineItem {
                kind: LineItemKind::ALL.get(usize::from(k % 7)).copied().unwrap_or(LineItemKind::Unknown),
                description: "x".into(),
                quantity,
                unit_price: Money::new(minor, if eur { Currency::Eur } else { Currency::Chf }),
            }).collect();
            let _ = Quote::new(job(), 1, items.clone(), None);
            let q = Quote { job_id: job(), version: 1, items, total: Money::chf(total), reason: None };
            let policy = QuotePolicy {
                max_total_minor: i64::MAX,
                deviation_needs_reason_bps: bps,
                fee_bps: bps,
                ..QuotePolicy::default()
            };
            let _ = validate_quote(&q, Currency::Chf, Money::chf(orientation), &policy);
            for method in [PaymentMethod::Cash, PaymentMethod::Online] {
                let _ = Settlement::for_total(Money::chf(total), method, &policy);
            }
        }
    }
}
