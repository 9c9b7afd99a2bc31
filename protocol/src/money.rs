//! Money: integer minor units plus an ISO 4217 currency. No floating point anywhere; every operation
//! is checked and returns a typed error instead of wrapping or panicking.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// ISO 4217 currencies the platform settles in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Currency {
    /// Swiss franc (minor unit: Rappen, smallest coin 5 Rappen).
    #[serde(rename = "CHF")]
    Chf,
    /// Euro (minor unit: cent, smallest coin 1 cent).
    #[serde(rename = "EUR")]
    Eur,
    /// A currency this build does not know; no arithmetic is possible with it.
    #[serde(other)]
    Unknown,
}

impl Currency {
    /// The ISO 4217 code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Chf => "CHF",
            Currency::Eur => "EUR",
            Currency::Unknown => "???",
        }
    }

    /// Smallest coin in minor units, used to round cash payments (CHF 0.05, EUR 0.01).
    pub fn cash_step(self) -> i64 {
        match self {
            Currency::Chf => 5,
            Currency::Eur | Currency::Unknown => 1,
        }
    }
}

/// Why a money operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MoneyError {
    /// The two amounts are in different currencies.
    #[error("currency mismatch: {0} vs {1}")]
    CurrencyMismatch(&'static str, &'static str),
    /// The result does not fit in 64-bit minor units.
    #[error("amount overflow")]
    Overflow,
    /// The amount's currency is unknown to this build.
    #[error("unknown currency")]
    UnknownCurrency,
}

impl MoneyError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            MoneyError::CurrencyMismatch(..) => "currency_mismatch",
            MoneyError::Overflow => "amount_overflow",
            MoneyError::UnknownCurrency => "unknown_currency",
        }
    }
}

/// An amount of money in minor units (Rappen, cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    /// Amount in minor units; may be negative for discounts.
    pub minor: i64,
    /// ISO 4217 currency.
    pub currency: Currency,
}

impl Money {
    /// An amount in minor units.
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Zero in the given currency.
    pub const fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    /// Swiss francs from Rappen.
    pub const fn chf(minor: i64) -> Self {
        Self::new(minor, Currency::Chf)
    }

    fn same_currency(self, other: Money) -> Result<Currency, MoneyError> {
        if self.currency == Currency::Unknown || other.currency == Currency::Unknown {
            return Err(MoneyError::UnknownCurrency);
        }
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(
                self.currency.code(),
                other.currency.code(),
            ));
        }
        Ok(self.currency)
    }

    /// `self + other`, refusing mixed currencies and overflow.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        let currency = self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, currency })
    }

    /// `self - other`, refusing mixed currencies and overflow.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        let currency = self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, currency })
    }

    /// `self × quantity`, refusing overflow.
    pub fn checked_mul(self, quantity: i64) -> Result<Money, MoneyError> {
        let minor = self
            .minor
            .checked_mul(quantity)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money {
            minor,
            currency: self.currency,
        })
    }

    /// A share of this amount in basis points (1 % = 100 bp), rounded half away from zero to the
    /// minor unit. Used for the platform fee.
    pub fn share_bps(self, bps: u32) -> Result<Money, MoneyError> {
        let product = i128::from(self.minor) * i128::from(bps);
        let rounded = (product + product.signum() * 5_000) / 10_000;
        let minor = i64::try_from(rounded).map_err(|_| MoneyError::Overflow)?;
        Ok(Money {
            minor,
            currency: self.currency,
        })
    }

    /// Rounds to the currency's smallest coin (half away from zero), as a cash payment must be.
    pub fn round_cash(self) -> Result<Money, MoneyError> {
        let step = self.currency.cash_step();
        let rem = self.minor % step;
        let down = self.minor - rem;
        let minor = if rem.abs() * 2 >= step {
            down.checked_add(rem.signum() * step)
                .ok_or(MoneyError::Overflow)?
        } else {
            down
        };
        Ok(Money {
            minor,
            currency: self.currency,
        })
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(
            f,
            "{} {sign}{}.{:02}",
            self.currency.code(),
            abs / 100,
            abs % 100
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_with_two_decimals() {
        assert_eq!(Money::chf(8900).to_string(), "CHF 89.00");
        assert_eq!(Money::chf(-5).to_string(), "CHF -0.05");
    }

    #[test]
    fn mixed_currencies_are_refused() {
        let err = Money::chf(1)
            .checked_add(Money::new(1, Currency::Eur))
            .unwrap_err();
        assert_eq!(err.code(), "currency_mismatch");
        let err = Money::chf(1)
            .checked_add(Money::new(1, Currency::Unknown))
            .unwrap_err();
        assert_eq!(err, MoneyError::UnknownCurrency);
    }

    #[test]
    fn cash_rounding_goes_to_five_rappen() {
        assert_eq!(Money::chf(8902).round_cash().unwrap().minor, 8900);
        assert_eq!(Money::chf(8903).round_cash().unwrap().minor, 8905);
        assert_eq!(Money::chf(8907).round_cash().unwrap().minor, 8905);
        assert_eq!(Money::chf(8908).round_cash().unwrap().minor, 8910);
        assert_eq!(
            Money::new(8907, Currency::Eur).round_cash().unwrap().minor,
            8907
        );
    }

    #[test]
    fn fee_rounds_half_away_from_zero() {
        assert_eq!(Money::chf(8900).share_bps(1500).unwrap().minor, 1335);
        assert_eq!(Money::chf(5).share_bps(1000).unwrap().minor, 1); // 0.5 → 1
        assert_eq!(Money::chf(-5).share_bps(1000).unwrap().minor, -1);
    }

    #[test]
    fn unknown_currency_deserializes() {
        let m: Money = serde_json::from_str(r#"{"minor":1,"currency":"XAU"}"#).unwrap();
        assert_eq!(m.currency, Currency::Unknown);
    }

    proptest! {
        #[test]
        fn add_never_overflows_silently(a in any::<i64>(), b in any::<i64>()) {
            let r = Money::chf(a).checked_add(Money::chf(b));
            match a.checked_add(b) {
                Some(sum) => prop_assert_eq!(r.unwrap().minor, sum),
                None => prop_assert_eq!(r.unwrap_err(), MoneyError::Overflow),
            }
        }

        #[test]
        fn mul_never_overflows_silently(a in any::<i64>(), q in any::<i64>()) {
            let r = Money::chf(a).checked_mul(q);
            match a.checked_mul(q) {
                Some(p) => prop_assert_eq!(r.unwrap().minor, p),
                None => prop_assert!(r.is_err()),
            }
        }

        #[test]
        fn cash_rounding_is_nearest_coin(a in -1_000_000_000i64..1_000_000_000) {
            let r = Money::chf(a).round_cash().unwrap().minor;
            prop_assert_eq!(r % 5, 0);
            prop_assert!((r - a).abs() <= 2);
        }

        #[test]
        fn share_is_within_half_a_unit(a in any::<i64>(), bps in 0u32..=10_000) {
            let exact = i128::from(a) * i128::from(bps);
            let r = Money::chf(a).share_bps(bps).unwrap().minor;
            prop_assert!((i128::from(r) * 10_000 - exact).abs() <= 5_000);
        }
    }
}
