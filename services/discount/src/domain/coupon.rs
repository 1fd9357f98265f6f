//! A coupon: its code, what it takes off, and when and how often it applies.

use chrono::{DateTime, Utc};
use mercato::pb::discount::v1 as pb;
use mercato::pb::discount::v1::coupon::Value;
use mercato_kernel::error::FieldViolations;
use mercato_kernel::money::Amount;
use mercato_kernel::validate::{self, Text};

/// A well-formed coupon code, upper case: the kernel's rule, which the basket and PlaceOrder
/// apply to the codes customers type, so a code they accept is one this service can create.
pub use mercato_kernel::validate::CouponCode;

/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 500;
/// Latest instant a validity bound may name (9999-12-31T23:59:59Z): later dates are typos,
/// and keeping to four-digit years stays inside both chrono's and Postgres' ranges.
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// What a coupon takes off a subtotal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Benefit {
    /// A percentage, 1..=100, of the subtotal, rounded down to the cent.
    PercentOff(u32),
    /// A fixed amount (> 0), capped at the subtotal.
    AmountOff(Amount),
}

/// A coupon's rules as stored, with its current usage: what applicability is decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponTerms {
    /// Upper-case code.
    pub code: String,
    /// What it takes off.
    pub benefit: Benefit,
    /// Applies from this instant on; `None` = since creation.
    pub valid_from: Option<DateTime<Utc>>,
    /// Applies until before this instant; `None` = forever.
    pub valid_until: Option<DateTime<Utc>>,
    /// Total uses allowed; 0 = unlimited.
    pub max_redemptions: i32,
    /// Uses now (released ones excluded).
    pub redemption_count: i32,
    /// Smallest subtotal it applies to.
    pub min_subtotal: Option<Amount>,
}

/// A validated coupon to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCoupon {
    /// Unique code.
    pub code: CouponCode,
    /// What it takes off.
    pub benefit: Benefit,
    /// Start of validity.
    pub valid_from: Option<DateTime<Utc>>,
    /// End of validity (exclusive), after the start.
    pub valid_until: Option<DateTime<Utc>>,
    /// Total uses allowed, >= 0 (0 = unlimited).
    pub max_redemptions: i32,
    /// Smallest subtotal, >= 0, in amount_off's currency when both are set.
    pub min_subtotal: Option<Amount>,
    /// Note for administrators.
    pub description: String,
}

/// Parses a protobuf timestamp between 1970 and the end of 9999.
pub fn parse_timestamp(ts: &prost_types::Timestamp) -> Result<DateTime<Utc>, &'static str> {
    const BAD: &str = "must be a valid timestamp between 1970 and 9999";
    if !(0..=MAX_TIMESTAMP_SECONDS).contains(&ts.seconds) {
        return Err(BAD);
    }
    let nanos = u32::try_from(ts.nanos).map_err(|_| BAD)?;
    if nanos >= 1_000_000_000 {
        return Err(BAD);
    }
    DateTime::from_timestamp(ts.seconds, nanos).ok_or(BAD)
}

impl NewCoupon {
    /// Parses the settable fields of `coupon` (output-only fields are ignored), reporting
    /// every problem under `coupon.<field>`. `now` is the creation instant: with no
    /// `valid_from`, `valid_until` must lie after it.
    pub fn parse(coupon: &pb::Coupon, now: DateTime<Utc>) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let code = validate::coupon_code(&mut v, "coupon.code", &coupon.code);
        let benefit = match &coupon.value {
            None => {
                v.add(
                    "coupon.percent_off",
                    "exactly one of percent_off or amount_off is required",
                );
                None
            }
            Some(Value::PercentOff(percent)) => match u32::try_from(*percent) {
                Ok(p @ 1..=100) => Some(Benefit::PercentOff(p)),
                _ => {
                    v.add("coupon.percent_off", "must be between 1 and 100");
                    None
                }
            },
            Some(Value::AmountOff(money)) => Amount::parse_positive(money)
                .map(Benefit::AmountOff)
                .map_err(|e| v.add("coupon.amount_off", e))
                .ok(),
        };
        let mut timestamp = |field: &str, ts: &Option<prost_types::Timestamp>| {
            ts.as_ref()
                .and_then(|ts| parse_timestamp(ts).map_err(|e| v.add(field, e)).ok())
        };
        let valid_from = timestamp("coupon.valid_from", &coupon.valid_from);
        let valid_until = timestamp("coupon.valid_until", &coupon.valid_until);
        if let Some(until) = valid_until {
            match valid_from {
                Some(from) if until <= from => {
                    v.add("coupon.valid_until", "must be after valid_from");
                }
                None if coupon.valid_from.is_none() && until <= now => v.add(
                    "coupon.valid_until",
                    "must be in the future (without valid_from the coupon starts now)",
                ),
                _ => {}
            }
        }
        if coupon.max_redemptions < 0 {
            v.add("coupon.max_redemptions", "must be 0 (unlimited) or greater");
        }
        let min_subtotal = coupon.min_subtotal.as_ref().and_then(|money| {
            let amount = Amount::parse(money)
                .map_err(|e| v.add("coupon.min_subtotal", e))
                .ok()?;
            if amount.total_nanos() < 0 {
                v.add("coupon.min_subtotal", "must not be negative");
                return None;
            }
            if let Some(Benefit::AmountOff(off)) = &benefit
                && off.currency() != amount.currency()
            {
                v.add(
                    "coupon.min_subtotal",
                    format!("must be in the currency of amount_off ({})", off.currency()),
                );
                return None;
            }
            Some(amount)
        });
        validate::text(
            &mut v,
            "coupon.description",
            &coupon.description,
            Text::multi_line(DESCRIPTION_MAX),
        );
        match (code, benefit) {
            (Some(code), Some(benefit)) if v.is_empty() => Ok(Self {
                code,
                benefit,
                valid_from,
                valid_until,
                max_redemptions: coupon.max_redemptions,
                min_subtotal,
                description: coupon.description.clone(),
            }),
            _ => Err(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use mercato::pb::r#type::v1::Money;
    use tonic_types::StatusExt as _;

    fn eur(units: i64, nanos: i32) -> Money {
        Money {
            currency_code: "EUR".into(),
            units,
            nanos,
        }
    }

    fn ts(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
        Some(mercato_kernel::time::to_timestamp(at))
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    fn coupon() -> pb::Coupon {
        pb::Coupon {
            code: "spring-26".into(),
            value: Some(Value::PercentOff(15)),
            ..Default::default()
        }
    }

    fn fields(err: FieldViolations) -> Vec<String> {
        err.into_status()
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn codes_are_case_insensitive_and_stored_upper_case() {
        assert_eq!(
            CouponCode::parse("Spring_26-x").unwrap().as_str(),
            "SPRING_26-X"
        );
        assert!(CouponCode::parse("abc").is_ok());
        assert!(CouponCode::parse(&"A".repeat(32)).is_ok());
        for bad in ["", "ab", "has space", "ÄÖÜ", "semi;colon", &"A".repeat(33)] {
            assert!(CouponCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_valid_coupon_parses() {
        let parsed = NewCoupon::parse(&coupon(), now()).unwrap();
        assert_eq!(parsed.code.as_str(), "SPRING-26");
        assert_eq!(parsed.benefit, Benefit::PercentOff(15));
        assert_eq!(parsed.max_redemptions, 0);
    }

    #[test]
    fn an_amount_coupon_with_window_and_minimum_parses() {
        let c = pb::Coupon {
            value: Some(Value::AmountOff(eur(5, 0))),
            valid_from: ts(now() - chrono::Duration::days(30)),
            valid_until: ts(now() - chrono::Duration::days(1)),
            max_redemptions: 10,
            min_subtotal: Some(eur(0, 0)),
            description: "line one\nline two".into(),
            ..coupon()
        };
        let parsed = NewCoupon::parse(&c, now()).unwrap();
        assert_eq!(
            parsed.benefit,
            Benefit::AmountOff(Amount::parse(&eur(5, 0)).unwrap())
        );
        assert!(parsed.min_subtotal.unwrap().is_zero());
    }

    #[test]
    fn every_bad_field_is_reported_under_coupon() {
        let c = pb::Coupon {
            code: "x".into(),
            value: Some(Value::PercentOff(101)),
            valid_from: ts(now()),
            valid_until: ts(now()),
            max_redemptions: -1,
            min_subtotal: Some(eur(-1, 0)),
            description: "d".repeat(501),
            ..Default::default()
        };
        assert_eq!(
            fields(NewCoupon::parse(&c, now()).unwrap_err()),
            vec![
                "coupon.code",
                "coupon.percent_off",
                "coupon.valid_until",
                "coupon.max_redemptions",
                "coupon.min_subtotal",
                "coupon.description",
            ]
        );
    }

    #[test]
    fn exactly_one_value_is_required() {
        let none = pb::Coupon {
            value: None,
            ..coupon()
        };
        assert_eq!(
            fields(NewCoupon::parse(&none, now()).unwrap_err()),
            vec!["coupon.percent_off"]
        );
        for percent in [0, -5, 101] {
            let c = pb::Coupon {
                value: Some(Value::PercentOff(percent)),
                ..coupon()
            };
            assert!(NewCoupon::parse(&c, now()).is_err(), "{percent}");
        }
        for money in [eur(0, 0), eur(-1, 0), eur(1, -1)] {
            let c = pb::Coupon {
                value: Some(Value::AmountOff(money)),
                ..coupon()
            };
            assert_eq!(
                fields(NewCoupon::parse(&c, now()).unwrap_err()),
                vec!["coupon.amount_off"]
            );
        }
    }

    #[test]
    fn the_minimum_is_in_the_currency_of_the_amount() {
        let c = pb::Coupon {
            value: Some(Value::AmountOff(eur(5, 0))),
            min_subtotal: Some(Money {
                currency_code: "USD".into(),
                units: 20,
                nanos: 0,
            }),
            ..coupon()
        };
        assert_eq!(
            fields(NewCoupon::parse(&c, now()).unwrap_err()),
            vec!["coupon.min_subtotal"]
        );
    }

    #[test]
    fn without_a_start_the_end_must_lie_ahead() {
        let past = pb::Coupon {
            valid_until: ts(now() - chrono::Duration::seconds(1)),
            ..coupon()
        };
        assert_eq!(
            fields(NewCoupon::parse(&past, now()).unwrap_err()),
            vec!["coupon.valid_until"]
        );
        let future = pb::Coupon {
            valid_until: ts(now() + chrono::Duration::days(1)),
            ..coupon()
        };
        assert!(NewCoupon::parse(&future, now()).is_ok());
    }

    #[test]
    fn out_of_range_timestamps_are_rejected() {
        for bad in [
            prost_types::Timestamp {
                seconds: -1,
                nanos: 0,
            },
            prost_types::Timestamp {
                seconds: 0,
                nanos: 1_000_000_000,
            },
            prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            },
            prost_types::Timestamp {
                seconds: MAX_TIMESTAMP_SECONDS + 1,
                nanos: 0,
            },
        ] {
            let c = pb::Coupon {
                valid_from: Some(bad),
                ..coupon()
            };
            assert_eq!(
                fields(NewCoupon::parse(&c, now()).unwrap_err()),
                vec!["coupon.valid_from"]
            );
        }
    }

    #[test]
    fn descriptions_may_not_hide_control_characters() {
        let c = pb::Coupon {
            description: "bell\u{7}".into(),
            ..coupon()
        };
        assert_eq!(
            fields(NewCoupon::parse(&c, now()).unwrap_err()),
            vec!["coupon.description"]
        );
        let c = pb::Coupon {
            description: "é".repeat(500),
            ..coupon()
        };
        assert!(NewCoupon::parse(&c, now()).is_ok(), "500 characters fit");
    }
}
