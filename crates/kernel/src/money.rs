//! Money as exact nano-units in one currency, parsed from and rendered to
//! `mercato.type.v1.Money`. No floating point anywhere near a price.

use mercato::pb::r#type::v1::Money;

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// The largest magnitude a `Money` can carry: `i64::MAX` units and 999,999,999 nanos. Every
/// [`Amount`] stays within it, so rendering one never saturates into a wrong figure.
const MAX_NANOS: i128 = i64::MAX as i128 * NANOS_PER_UNIT + (NANOS_PER_UNIT - 1);

/// Why an amount could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Amounts in two currencies were combined.
    #[error("an amount in {left} cannot be combined with one in {right}")]
    CurrencyMismatch {
        /// The first operand's currency.
        left: String,
        /// The second operand's currency.
        right: String,
    },
    /// The result is beyond what a `Money` can carry.
    #[error("the amount is beyond {} units", i64::MAX)]
    OutOfRange,
}

/// A validated amount.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount {
    currency: String,
    nanos: i128,
}

impl Amount {
    /// Parses a `Money`: ISO-4217-shaped code (three upper-case letters), nanos within
    /// ±999,999,999 and of the same sign as units.
    pub fn parse(money: &Money) -> Result<Self, &'static str> {
        let code = &money.currency_code;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err("currency_code must be three upper-case letters (ISO 4217)");
        }
        if !(-999_999_999..=999_999_999).contains(&money.nanos) {
            return Err("nanos must be between -999999999 and 999999999");
        }
        if (money.units > 0 && money.nanos < 0) || (money.units < 0 && money.nanos > 0) {
            return Err("units and nanos must have the same sign");
        }
        let nanos = i128::from(money.units) * NANOS_PER_UNIT + i128::from(money.nanos);
        if nanos.abs() > MAX_NANOS {
            // Only i64::MIN units: its negation is not an i64.
            return Err("units must be greater than -9223372036854775808");
        }
        Ok(Self {
            currency: code.clone(),
            nanos,
        })
    }

    /// Parses a strictly positive amount (a price).
    pub fn parse_positive(money: &Money) -> Result<Self, &'static str> {
        let amount = Self::parse(money)?;
        if amount.nanos <= 0 {
            return Err("must be greater than zero");
        }
        Ok(amount)
    }

    /// An amount from stored parts.
    pub fn from_parts(currency: &str, units: i64, nanos: i32) -> Self {
        Self {
            currency: currency.to_owned(),
            nanos: i128::from(units) * NANOS_PER_UNIT + i128::from(nanos),
        }
    }

    /// Zero in `currency`.
    pub fn zero(currency: &str) -> Self {
        Self {
            currency: currency.to_owned(),
            nanos: 0,
        }
    }

    /// The currency code.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// Whole units (truncated toward zero).
    pub fn units(&self) -> i64 {
        i64::try_from(self.nanos / NANOS_PER_UNIT).unwrap_or(i64::MAX)
    }

    /// Remaining nanos, same sign as units.
    pub fn nanos(&self) -> i32 {
        i32::try_from(self.nanos % NANOS_PER_UNIT).unwrap_or(0)
    }

    /// Total in nano-units.
    pub fn total_nanos(&self) -> i128 {
        self.nanos
    }

    /// `self × quantity`; out of range when `Money` cannot carry the product.
    pub fn times(&self, quantity: u32) -> Result<Self, MoneyError> {
        self.with_nanos(self.nanos * i128::from(quantity))
    }

    /// `self + other`, in one currency and within range.
    pub fn checked_add(&self, other: &Self) -> Result<Self, MoneyError> {
        self.same_currency(other)?;
        self.with_nanos(self.nanos + other.nanos)
    }

    /// `self - other`, in one currency and within range.
    pub fn checked_sub(&self, other: &Self) -> Result<Self, MoneyError> {
        self.same_currency(other)?;
        self.with_nanos(self.nanos - other.nanos)
    }

    fn same_currency(&self, other: &Self) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency.clone(),
                right: other.currency.clone(),
            })
        }
    }

    /// This currency, `nanos` nano-units (operands are within range, so `i128` holds the
    /// exact result; only whether `Money` can carry it is in question).
    fn with_nanos(&self, nanos: i128) -> Result<Self, MoneyError> {
        if nanos.abs() > MAX_NANOS {
            return Err(MoneyError::OutOfRange);
        }
        Ok(Self {
            currency: self.currency.clone(),
            nanos,
        })
    }

    /// An amount of `total_nanos` nano-units of `currency` (the inverse of
    /// [`Amount::total_nanos`]), e.g. for sums kept as one integer in storage.
    pub fn from_total_nanos(currency: &str, total_nanos: i128) -> Self {
        Self {
            currency: currency.to_owned(),
            nanos: total_nanos,
        }
    }

    /// `percent` % of the amount, rounded down to the cent (1/100 unit).
    pub fn percent_floor_cents(&self, percent: u32) -> Self {
        const CENT: i128 = NANOS_PER_UNIT / 100;
        let exact = self.nanos * i128::from(percent) / 100;
        Self {
            currency: self.currency.clone(),
            nanos: exact.div_euclid(CENT) * CENT,
        }
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Whether the amount is greater than zero.
    pub fn is_positive(&self) -> bool {
        self.nanos > 0
    }

    /// The proto message.
    pub fn to_proto(&self) -> Money {
        Money {
            currency_code: self.currency.clone(),
            units: self.units(),
            nanos: self.nanos(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(code: &str, units: i64, nanos: i32) -> Money {
        Money {
            currency_code: code.into(),
            units,
            nanos,
        }
    }

    #[test]
    fn valid_amounts_round_trip() {
        let a = Amount::parse(&money("EUR", 12, 500_000_000)).unwrap();
        assert_eq!(a.to_proto(), money("EUR", 12, 500_000_000));
        assert_eq!(
            a.times(3).unwrap().to_proto(),
            money("EUR", 37, 500_000_000)
        );
    }

    #[test]
    fn malformed_amounts_are_rejected() {
        assert!(Amount::parse(&money("eur", 1, 0)).is_err());
        assert!(Amount::parse(&money("EURO", 1, 0)).is_err());
        assert!(Amount::parse(&money("EUR", 1, -1)).is_err());
        assert!(Amount::parse(&money("EUR", 0, 1_000_000_000)).is_err());
        assert!(Amount::parse_positive(&money("EUR", 0, 0)).is_err());
        assert!(Amount::parse_positive(&money("EUR", -5, 0)).is_err());
        assert!(Amount::parse(&money("EUR", i64::MIN, 0)).is_err());
    }

    #[test]
    fn percentages_round_down_to_the_cent() {
        let a = Amount::parse(&money("EUR", 19, 990_000_000)).unwrap();
        assert_eq!(
            a.percent_floor_cents(15).to_proto(),
            money("EUR", 2, 990_000_000)
        );
        assert_eq!(a.percent_floor_cents(100), a);
        assert!(a.percent_floor_cents(0).is_zero());
        let b = a.checked_sub(&a.percent_floor_cents(15)).unwrap();
        assert_eq!(b.to_proto(), money("EUR", 17, 0));
        assert_eq!(Amount::from_total_nanos("EUR", b.total_nanos()), b);
    }

    #[test]
    fn currencies_do_not_mix() {
        let eur = Amount::parse(&money("EUR", 1, 0)).unwrap();
        let usd = Amount::parse(&money("USD", 1, 0)).unwrap();
        let mismatch = MoneyError::CurrencyMismatch {
            left: "EUR".into(),
            right: "USD".into(),
        };
        assert_eq!(eur.checked_add(&usd), Err(mismatch.clone()));
        assert_eq!(eur.checked_sub(&usd), Err(mismatch));
    }

    #[test]
    fn arithmetic_past_what_money_carries_is_an_error_not_a_wrong_figure() {
        let max = Amount::parse(&money("EUR", i64::MAX, 999_999_999)).unwrap();
        assert_eq!(max.to_proto(), money("EUR", i64::MAX, 999_999_999));
        assert_eq!(max.times(1).unwrap(), max);
        assert_eq!(max.times(99), Err(MoneyError::OutOfRange));
        let one = Amount::parse(&money("EUR", 0, 1)).unwrap();
        assert_eq!(max.checked_add(&one), Err(MoneyError::OutOfRange));
        let min = Amount::parse(&money("EUR", -i64::MAX, -999_999_999)).unwrap();
        assert_eq!(min.checked_sub(&one), Err(MoneyError::OutOfRange));
        assert_eq!(max.checked_sub(&one).unwrap().nanos(), 999_999_998);
    }
}
