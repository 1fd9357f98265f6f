//! Redemptions: the requests of the internal RPCs, a redemption's status, and how a repeated
//! RedeemCoupon for an order is answered.

use mercato::pb::discount::v1 as pb;
use mercato::pb::r#type::v1::Money;
use mercato_kernel::error::FieldViolations;
use mercato_kernel::money::Amount;
use mercato_kernel::validate::{self, MAX_COUPON_CHARS, Text};

/// Longest user id.
pub const USER_ID_MAX: usize = 64;

/// Where a redemption stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedemptionStatus {
    /// Counts towards the coupon's max_redemptions.
    Redeemed,
    /// Given back (or a tombstone: released before anything was redeemed).
    Released,
}

impl RedemptionStatus {
    /// The stored spelling.
    pub fn as_db(self) -> &'static str {
        match self {
            RedemptionStatus::Redeemed => "REDEEMED",
            RedemptionStatus::Released => "RELEASED",
        }
    }

    /// Reads the stored spelling; the table's CHECK allows nothing else, and anything unknown
    /// is treated as released so it never counts as a use.
    pub fn from_db(raw: &str) -> Self {
        if raw == "REDEEMED" {
            RedemptionStatus::Redeemed
        } else {
            RedemptionStatus::Released
        }
    }

    /// The proto enum value.
    pub fn to_proto(self) -> pb::RedemptionStatus {
        match self {
            RedemptionStatus::Redeemed => pb::RedemptionStatus::Redeemed,
            RedemptionStatus::Released => pb::RedemptionStatus::Released,
        }
    }
}

/// How RedeemCoupon answers an order that already has a redemption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// The same coupon is redeemed: a retry, answered with the stored redemption unchanged.
    Same,
    /// The order's redemption was released (or tombstoned): it may not redeem again.
    Released,
    /// The order redeemed another coupon.
    OtherCode,
}

/// Decides how to answer a RedeemCoupon of `requested_code` for an order whose redemption
/// has `status` and `code` (`None` for a tombstone).
pub fn replay(status: RedemptionStatus, code: Option<&str>, requested_code: &str) -> Replay {
    match status {
        RedemptionStatus::Released => Replay::Released,
        RedemptionStatus::Redeemed if code == Some(requested_code) => Replay::Same,
        RedemptionStatus::Redeemed => Replay::OtherCode,
    }
}

/// Parses a code to look up: required, at most 32 characters, upper-cased. Its characters
/// are not checked: a code that cannot exist is simply not found.
pub fn parse_lookup_code(v: &mut FieldViolations, field: &str, raw: &str) -> Option<String> {
    if raw.is_empty() {
        v.add(field, "is required");
        None
    } else if raw.chars().count() > MAX_COUPON_CHARS {
        v.add(
            field,
            format!("must be at most {MAX_COUPON_CHARS} characters"),
        );
        None
    } else {
        Some(raw.to_ascii_uppercase())
    }
}

/// Parses an order id: 1 to 64 of A-Z, a-z, 0-9, '-' and '_'.
pub fn parse_order_id(v: &mut FieldViolations, field: &str, raw: &str) -> Option<String> {
    validate::order_ref(v, field, raw).then(|| raw.to_owned())
}

fn parse_user_id(v: &mut FieldViolations, field: &str, raw: &str) -> Option<String> {
    validate::text(v, field, raw, Text::one_line(USER_ID_MAX)).then(|| raw.to_owned())
}

fn parse_subtotal(v: &mut FieldViolations, field: &str, money: Option<&Money>) -> Option<Amount> {
    let Some(money) = money else {
        v.add(field, "is required");
        return None;
    };
    match Amount::parse(money) {
        Ok(amount) if amount.total_nanos() < 0 => {
            v.add(field, "must not be negative");
            None
        }
        Ok(amount) => Some(amount),
        Err(e) => {
            v.add(field, e);
            None
        }
    }
}

/// A validated QuoteDiscount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRequest {
    /// Upper-cased code.
    pub code: String,
    /// Non-negative subtotal.
    pub subtotal: Amount,
}

impl QuoteRequest {
    /// Parses the request, reporting every problem.
    pub fn parse(req: &pb::QuoteDiscountRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let code = parse_lookup_code(&mut v, "code", &req.code);
        let subtotal = parse_subtotal(&mut v, "subtotal", req.subtotal.as_ref());
        match (code, subtotal) {
            (Some(code), Some(subtotal)) => Ok(Self { code, subtotal }),
            _ => Err(v),
        }
    }
}

/// A validated RedeemCoupon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeemRequest {
    /// Upper-cased code.
    pub code: String,
    /// The order, the idempotency key.
    pub order_id: String,
    /// The buyer.
    pub user_id: String,
    /// Non-negative subtotal.
    pub subtotal: Amount,
}

impl RedeemRequest {
    /// Parses the request, reporting every problem.
    pub fn parse(req: &pb::RedeemCouponRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let code = parse_lookup_code(&mut v, "code", &req.code);
        let order_id = parse_order_id(&mut v, "order_id", &req.order_id);
        let user_id = parse_user_id(&mut v, "user_id", &req.user_id);
        let subtotal = parse_subtotal(&mut v, "subtotal", req.subtotal.as_ref());
        match (code, order_id, user_id, subtotal) {
            (Some(code), Some(order_id), Some(user_id), Some(subtotal)) => Ok(Self {
                code,
                order_id,
                user_id,
                subtotal,
            }),
            _ => Err(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt as _;

    fn eur(units: i64, nanos: i32) -> Option<Money> {
        Some(Money {
            currency_code: "EUR".into(),
            units,
            nanos,
        })
    }

    fn fields(err: FieldViolations) -> Vec<String> {
        err.into_status()
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_valid_redeem_parses_with_the_code_upper_cased() {
        let parsed = RedeemRequest::parse(&pb::RedeemCouponRequest {
            code: "spring".into(),
            order_id: "0198-abc_DEF".into(),
            user_id: "user-1".into(),
            subtotal: eur(0, 0),
        })
        .unwrap();
        assert_eq!(parsed.code, "SPRING");
        assert!(parsed.subtotal.is_zero());
    }

    #[test]
    fn every_bad_redeem_field_is_reported() {
        let err = RedeemRequest::parse(&pb::RedeemCouponRequest {
            code: "C".repeat(33),
            order_id: "order/1".into(),
            user_id: String::new(),
            subtotal: eur(-1, 0),
        })
        .unwrap_err();
        assert_eq!(fields(err), vec!["code", "order_id", "user_id", "subtotal"]);
        let err = RedeemRequest::parse(&pb::RedeemCouponRequest {
            code: String::new(),
            order_id: "o".repeat(65),
            user_id: "u".repeat(65),
            subtotal: None,
        })
        .unwrap_err();
        assert_eq!(fields(err), vec!["code", "order_id", "user_id", "subtotal"]);
    }

    #[test]
    fn a_quote_needs_a_well_formed_subtotal() {
        for subtotal in [None, eur(1, -5), eur(0, 1_000_000_000)] {
            let err = QuoteRequest::parse(&pb::QuoteDiscountRequest {
                code: "SPRING".into(),
                subtotal,
            })
            .unwrap_err();
            assert_eq!(fields(err), vec!["subtotal"]);
        }
        let lower = Money {
            currency_code: "eur".into(),
            units: 1,
            nanos: 0,
        };
        assert!(
            QuoteRequest::parse(&pb::QuoteDiscountRequest {
                code: "SPRING".into(),
                subtotal: Some(lower),
            })
            .is_err()
        );
    }

    #[test]
    fn a_repeat_is_answered_by_the_stored_redemption() {
        use RedemptionStatus::{Redeemed, Released};
        assert_eq!(replay(Redeemed, Some("SPRING"), "SPRING"), Replay::Same);
        assert_eq!(
            replay(Redeemed, Some("SPRING"), "SUMMER"),
            Replay::OtherCode
        );
        assert_eq!(replay(Released, Some("SPRING"), "SPRING"), Replay::Released);
        assert_eq!(replay(Released, None, "SPRING"), Replay::Released);
    }

    #[test]
    fn statuses_round_trip_through_storage() {
        for status in [RedemptionStatus::Redeemed, RedemptionStatus::Released] {
            assert_eq!(RedemptionStatus::from_db(status.as_db()), status);
        }
    }
}
