//! Whether a coupon applies to a subtotal now, and what it takes off: the one rule that
//! QuoteDiscount answers with and RedeemCoupon enforces.

use chrono::{DateTime, Utc};
use mercato::pb::discount::v1::InapplicableReason;
use mercato_kernel::money::Amount;

use super::coupon::{Benefit, CouponTerms};

/// Why a coupon does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No coupon has the code.
    NotFound,
    /// `valid_from` lies ahead.
    NotYetValid,
    /// `valid_until` has passed.
    Expired,
    /// `max_redemptions` uses are taken.
    Exhausted,
    /// The subtotal is below `min_subtotal`.
    MinSubtotalNotMet,
    /// The subtotal is in another currency than the coupon's amounts.
    CurrencyMismatch,
}

impl Reason {
    /// The proto enum value.
    pub fn to_proto(self) -> InapplicableReason {
        match self {
            Reason::NotFound => InapplicableReason::NotFound,
            Reason::NotYetValid => InapplicableReason::NotYetValid,
            Reason::Expired => InapplicableReason::Expired,
            Reason::Exhausted => InapplicableReason::Exhausted,
            Reason::MinSubtotalNotMet => InapplicableReason::MinSubtotalNotMet,
            Reason::CurrencyMismatch => InapplicableReason::CurrencyMismatch,
        }
    }

    /// `ErrorInfo.reason` of a RedeemCoupon refused for this reason.
    pub fn error_reason(self) -> &'static str {
        match self {
            Reason::NotFound => "COUPON_NOT_FOUND",
            Reason::NotYetValid => "COUPON_NOT_YET_VALID",
            Reason::Expired => "COUPON_EXPIRED",
            Reason::Exhausted => "COUPON_EXHAUSTED",
            Reason::MinSubtotalNotMet => "COUPON_MIN_SUBTOTAL_NOT_MET",
            Reason::CurrencyMismatch => "COUPON_CURRENCY_MISMATCH",
        }
    }
}

/// A coupon that does not apply: the reason, and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Inapplicable {
    /// Why.
    pub reason: Reason,
    /// E.g. "coupon SPRING expired on 2026-03-31".
    pub message: String,
}

fn refuse(reason: Reason, message: String) -> Result<Amount, Inapplicable> {
    Err(Inapplicable { reason, message })
}

/// The discount `coupon` (looked up by `code`; `None` when there is none) gives on
/// `subtotal` at `now`, or why it gives none. Checks run in the order a customer can act on:
/// existence, validity window, usage, currency, minimum. A percentage is rounded down to the
/// cent; a fixed amount is capped at the subtotal.
pub fn discount_for(
    code: &str,
    coupon: Option<&CouponTerms>,
    subtotal: &Amount,
    now: DateTime<Utc>,
) -> Result<Amount, Inapplicable> {
    let Some(coupon) = coupon else {
        return refuse(Reason::NotFound, format!("coupon {code} does not exist"));
    };
    let code = &coupon.code;
    if let Some(from) = coupon.valid_from
        && now < from
    {
        return refuse(
            Reason::NotYetValid,
            format!("coupon {code} is valid from {}", display_instant(from)),
        );
    }
    if let Some(until) = coupon.valid_until
        && now >= until
    {
        return refuse(
            Reason::Expired,
            format!("coupon {code} expired on {}", display_instant(until)),
        );
    }
    if coupon.max_redemptions > 0 && coupon.redemption_count >= coupon.max_redemptions {
        return refuse(
            Reason::Exhausted,
            format!(
                "coupon {code} is used up (limit: {} redemptions)",
                coupon.max_redemptions
            ),
        );
    }
    let coupon_currency = match (&coupon.benefit, &coupon.min_subtotal) {
        (Benefit::AmountOff(off), _) => Some(off.currency()),
        (_, Some(min)) => Some(min.currency()),
        (Benefit::PercentOff(_), None) => None,
    };
    if let Some(currency) = coupon_currency
        && currency != subtotal.currency()
    {
        return refuse(
            Reason::CurrencyMismatch,
            format!(
                "coupon {code} applies to {currency} amounts only, not {}",
                subtotal.currency()
            ),
        );
    }
    if let Some(min) = &coupon.min_subtotal
        && subtotal.total_nanos() < min.total_nanos()
    {
        return refuse(
            Reason::MinSubtotalNotMet,
            format!(
                "coupon {code} needs a subtotal of at least {}",
                display_amount(min)
            ),
        );
    }
    Ok(match &coupon.benefit {
        Benefit::PercentOff(percent) => subtotal.percent_floor_cents(*percent),
        Benefit::AmountOff(off) if off.total_nanos() > subtotal.total_nanos() => subtotal.clone(),
        Benefit::AmountOff(off) => off.clone(),
    })
}

/// A date for people: "2026-03-31" at midnight UTC, otherwise with the time of day.
fn display_instant(at: DateTime<Utc>) -> String {
    if at.time() == chrono::NaiveTime::MIN {
        at.format("%Y-%m-%d").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}

/// An amount for people: "50.00 EUR", "0.125 EUR" (at least two decimals, no trailing noise).
fn display_amount(amount: &Amount) -> String {
    let total = amount.total_nanos();
    let sign = if total < 0 { "-" } else { "" };
    let abs = total.unsigned_abs();
    let units = abs / 1_000_000_000;
    let mut fraction = format!("{:09}", abs % 1_000_000_000);
    while fraction.len() > 2 && fraction.ends_with('0') {
        fraction.pop();
    }
    format!("{sign}{units}.{fraction} {}", amount.currency())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn eur(cents: i64) -> Amount {
        Amount::from_total_nanos("EUR", i128::from(cents) * 10_000_000)
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 15, 9, 30, 0).unwrap()
    }

    fn percent(p: u32) -> CouponTerms {
        CouponTerms {
            code: "SPRING".into(),
            benefit: Benefit::PercentOff(p),
            valid_from: None,
            valid_until: None,
            max_redemptions: 0,
            redemption_count: 0,
            min_subtotal: None,
        }
    }

    fn amount_off(cents: i64) -> CouponTerms {
        CouponTerms {
            benefit: Benefit::AmountOff(eur(cents)),
            ..percent(1)
        }
    }

    fn reason(result: Result<Amount, Inapplicable>) -> Reason {
        result.unwrap_err().reason
    }

    #[test]
    fn an_unknown_code_does_not_apply() {
        let err = discount_for("NOPE", None, &eur(100), now()).unwrap_err();
        assert_eq!(err.reason, Reason::NotFound);
        assert_eq!(err.message, "coupon NOPE does not exist");
    }

    #[test]
    fn the_window_is_from_inclusive_until_exclusive() {
        let from = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
        let until = Utc.with_ymd_and_hms(2026, 3, 31, 0, 0, 0).unwrap();
        let early = CouponTerms {
            valid_from: Some(from),
            ..percent(10)
        };
        let err = discount_for("SPRING", Some(&early), &eur(100), now()).unwrap_err();
        assert_eq!(err.reason, Reason::NotYetValid);
        assert_eq!(err.message, "coupon SPRING is valid from 2026-04-01");
        assert!(discount_for("SPRING", Some(&early), &eur(100), from).is_ok());

        let late = CouponTerms {
            valid_until: Some(until),
            ..percent(10)
        };
        let after = until + chrono::Duration::days(1);
        let err = discount_for("SPRING", Some(&late), &eur(100), after).unwrap_err();
        assert_eq!(err.reason, Reason::Expired);
        assert_eq!(err.message, "coupon SPRING expired on 2026-03-31");
        assert_eq!(
            reason(discount_for("SPRING", Some(&late), &eur(100), until)),
            Reason::Expired
        );
        let before = until - chrono::Duration::nanoseconds(1);
        assert!(discount_for("SPRING", Some(&late), &eur(100), before).is_ok());
    }

    #[test]
    fn times_of_day_are_shown_when_not_midnight() {
        let late = CouponTerms {
            valid_until: Some(Utc.with_ymd_and_hms(2026, 3, 1, 18, 5, 0).unwrap()),
            ..percent(10)
        };
        let err = discount_for("SPRING", Some(&late), &eur(100), now()).unwrap_err();
        assert_eq!(
            err.message,
            "coupon SPRING expired on 2026-03-01 18:05:00 UTC"
        );
    }

    #[test]
    fn a_used_up_coupon_is_exhausted_and_zero_means_unlimited() {
        let used = CouponTerms {
            max_redemptions: 5,
            redemption_count: 5,
            ..percent(10)
        };
        assert_eq!(
            reason(discount_for("SPRING", Some(&used), &eur(100), now())),
            Reason::Exhausted
        );
        let one_left = CouponTerms {
            redemption_count: 4,
            ..used.clone()
        };
        assert!(discount_for("SPRING", Some(&one_left), &eur(100), now()).is_ok());
        let unlimited = CouponTerms {
            max_redemptions: 0,
            redemption_count: 1_000_000,
            ..used
        };
        assert!(discount_for("SPRING", Some(&unlimited), &eur(100), now()).is_ok());
    }

    #[test]
    fn the_minimum_subtotal_is_inclusive() {
        let coupon = CouponTerms {
            min_subtotal: Some(eur(5000)),
            ..percent(10)
        };
        let err = discount_for("SPRING", Some(&coupon), &eur(4999), now()).unwrap_err();
        assert_eq!(err.reason, Reason::MinSubtotalNotMet);
        assert_eq!(
            err.message,
            "coupon SPRING needs a subtotal of at least 50.00 EUR"
        );
        assert_eq!(
            discount_for("SPRING", Some(&coupon), &eur(5000), now()).unwrap(),
            eur(500)
        );
    }

    #[test]
    fn currencies_must_match_the_coupons_amounts() {
        let usd = Amount::from_total_nanos("USD", 10_000_000_000);
        assert_eq!(
            reason(discount_for("SPRING", Some(&amount_off(500)), &usd, now())),
            Reason::CurrencyMismatch
        );
        let with_minimum = CouponTerms {
            min_subtotal: Some(eur(0)),
            ..percent(10)
        };
        let err = discount_for("SPRING", Some(&with_minimum), &usd, now()).unwrap_err();
        assert_eq!(err.reason, Reason::CurrencyMismatch);
        assert_eq!(
            err.message,
            "coupon SPRING applies to EUR amounts only, not USD"
        );
        // A bare percentage works in any currency.
        assert_eq!(
            discount_for("SPRING", Some(&percent(10)), &usd, now()).unwrap(),
            Amount::from_total_nanos("USD", 1_000_000_000)
        );
    }

    #[test]
    fn percentages_round_down_to_the_cent() {
        // 15 % of 19.99 is 2.9985.
        assert_eq!(
            discount_for("SPRING", Some(&percent(15)), &eur(1999), now()).unwrap(),
            eur(299)
        );
        // 33 % of 0.01 is less than a cent.
        assert!(
            discount_for("SPRING", Some(&percent(33)), &eur(1), now())
                .unwrap()
                .is_zero()
        );
        assert_eq!(
            discount_for("SPRING", Some(&percent(100)), &eur(1999), now()).unwrap(),
            eur(1999)
        );
    }

    #[test]
    fn a_fixed_amount_never_exceeds_the_subtotal() {
        assert_eq!(
            discount_for("SPRING", Some(&amount_off(500)), &eur(1999), now()).unwrap(),
            eur(500)
        );
        assert_eq!(
            discount_for("SPRING", Some(&amount_off(500)), &eur(300), now()).unwrap(),
            eur(300)
        );
        assert!(
            discount_for("SPRING", Some(&amount_off(500)), &eur(0), now())
                .unwrap()
                .is_zero()
        );
    }

    #[test]
    fn reasons_map_to_the_proto_and_to_error_reasons() {
        assert_eq!(
            Reason::Exhausted.to_proto().as_str_name(),
            "INAPPLICABLE_REASON_EXHAUSTED"
        );
        assert_eq!(
            Reason::MinSubtotalNotMet.error_reason(),
            "COUPON_MIN_SUBTOTAL_NOT_MET"
        );
    }

    #[test]
    fn amounts_read_naturally() {
        assert_eq!(display_amount(&eur(5000)), "50.00 EUR");
        assert_eq!(display_amount(&eur(5)), "0.05 EUR");
        assert_eq!(
            display_amount(&Amount::from_total_nanos("EUR", 125_000_000)),
            "0.125 EUR"
        );
    }
}
