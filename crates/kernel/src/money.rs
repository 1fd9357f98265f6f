//! Money as exact nano-units in one currency, parsed from and rendered to
//! `mercato.type.v1.Money`. No floating point anywhere near a price.

use mercato::pb::r#type::v1::Money;

const NANOS_PER_UNIT: i128 = 1_000_000_000;

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
        Ok(Self {
            currency: code.clone(),
            nanos: i128::from(money.units) * NANOS_PER_UNIT + i128::from(money.nanos),
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

    /// `self × quantity`.
    pub fn times(&self, quantity: u32) -> Self {
        Self {
            currency: self.currency.clone(),
            nanos: self.nanos * i128::from(quantity),
        }
    }

    /// `self + other`, `None` on a currency mismatch.
    pub fn checked_add(&self, other: &Self) -> Option<Self> {
        (self.currency == other.currency).then(|| Self {
            currency: self.currency.clone(),
            nanos: self.nanos + other.nanos,
        })
    }

    /// `self - other`, `None` on a currency mismatch.
    pub fn checked_sub(&self, other: &Self) -> Option<Self> {
        (self.currency == other.currency).then(|| Self {
            currency: self.currency.clone(),
            nanos: self.nanos - other.nanos,
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
        assert_eq!(a.times(3).to_proto(), money("EUR", 37, 500_000_000));
    }

    #[test]
    fn malformed_amounts_are_rejected() {
        assert!(Amount::parse(&money("eur", 1, 0)).is_err());
        assert!(Amount::parse(&money("EURO", 1, 0)).is_err());
        assert!(Amount::parse(&money("EUR", 1, -1)).is_err());
        assert!(Amount::parse(&money("EUR", 0, 1_000_000_000)).is_err());
        assert!(Amount::parse_positive(&money("EUR", 0, 0)).is_err());
        assert!(Amount::parse_positive(&money("EUR", -5, 0)).is_err());
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
        assert!(eur.checked_add(&usd).is_none());
        assert!(eur.checked_sub(&usd).is_none());
    }
}
