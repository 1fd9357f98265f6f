//! Payment rules: what a valid charge and refund request are, the life cycle of a payment and
//! how much of it may still be refunded. Requests are parsed here once; everything past this
//! module holds valid values.

use std::fmt;

use chrono::{DateTime, Utc};
use mercato::pb::payment::v1 as pb;
use mercato::pb::payment::v1::{CardBrand, PaymentFailureReason};
use mercato_kernel::error::FieldViolations;
use mercato_kernel::money::Amount;
use mercato_kernel::validate::{self, IDEMPOTENCY_KEY, Text};
use uuid::Uuid;

use crate::card;
use crate::provider::{self, Decision};

mod refund;

pub use refund::{Balance, HumanAmount, RefundPlan, RefundRefusal, plan_refund};

/// Longest `order_id`.
pub const MAX_ORDER_ID_CHARS: usize = 64;
/// Longest `user_id`.
pub const MAX_USER_ID_CHARS: usize = 128;
/// Longest refund `reason`.
pub const MAX_REASON_CHARS: usize = 500;
/// Largest charge, in whole currency units. Amounts are stored as nano-units in a BIGINT,
/// which holds about 9.2 × 10⁹ units; a round, documented bound stays well inside it.
pub const MAX_AMOUNT_UNITS: i64 = 1_000_000_000;

/// Where a payment stands (the stored form of `PaymentStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Recorded, provider answer pending (not produced by the synchronous simulated provider,
    /// kept so the stored states match the contract).
    Pending,
    /// The money was taken.
    Captured,
    /// The card was refused.
    Failed,
    /// Captured, partly refunded.
    PartiallyRefunded,
    /// Captured, fully refunded.
    Refunded,
}

impl Status {
    /// The value stored in `payments.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Captured => "captured",
            Status::Failed => "failed",
            Status::PartiallyRefunded => "partially_refunded",
            Status::Refunded => "refunded",
        }
    }

    /// The status stored as `raw`; `None` for a value the schema's CHECK would not allow.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => Status::Pending,
            "captured" => Status::Captured,
            "failed" => Status::Failed,
            "partially_refunded" => Status::PartiallyRefunded,
            "refunded" => Status::Refunded,
            _ => return None,
        })
    }

    /// The proto enum.
    pub fn to_proto(self) -> pb::PaymentStatus {
        match self {
            Status::Pending => pb::PaymentStatus::Pending,
            Status::Captured => pb::PaymentStatus::Captured,
            Status::Failed => pb::PaymentStatus::Failed,
            Status::PartiallyRefunded => pb::PaymentStatus::PartiallyRefunded,
            Status::Refunded => pb::PaymentStatus::Refunded,
        }
    }

    /// Whether money was taken and not all of it given back.
    pub fn is_refundable(self) -> bool {
        matches!(self, Status::Captured | Status::PartiallyRefunded)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value stored in `payments.failure_reason`.
pub fn failure_reason_str(reason: PaymentFailureReason) -> &'static str {
    match reason {
        PaymentFailureReason::Unspecified => "unspecified",
        PaymentFailureReason::Declined => "declined",
        PaymentFailureReason::InsufficientFunds => "insufficient_funds",
        PaymentFailureReason::InvalidCard => "invalid_card",
        PaymentFailureReason::ExpiredCard => "expired_card",
        PaymentFailureReason::IncorrectCvc => "incorrect_cvc",
        PaymentFailureReason::ProcessingError => "processing_error",
    }
}

/// The failure reason stored as `raw` (unspecified for anything unknown).
pub fn parse_failure_reason(raw: &str) -> PaymentFailureReason {
    match raw {
        "declined" => PaymentFailureReason::Declined,
        "insufficient_funds" => PaymentFailureReason::InsufficientFunds,
        "invalid_card" => PaymentFailureReason::InvalidCard,
        "expired_card" => PaymentFailureReason::ExpiredCard,
        "incorrect_cvc" => PaymentFailureReason::IncorrectCvc,
        "processing_error" => PaymentFailureReason::ProcessingError,
        _ => PaymentFailureReason::Unspecified,
    }
}

/// The value stored in `payments.card_brand`.
pub fn brand_str(brand: CardBrand) -> &'static str {
    match brand {
        CardBrand::Unspecified => "unknown",
        CardBrand::Visa => "visa",
        CardBrand::Mastercard => "mastercard",
        CardBrand::Amex => "amex",
        CardBrand::Discover => "discover",
    }
}

/// The brand stored as `raw`.
pub fn parse_brand(raw: &str) -> CardBrand {
    match raw {
        "visa" => CardBrand::Visa,
        "mastercard" => CardBrand::Mastercard,
        "amex" => CardBrand::Amex,
        "discover" => CardBrand::Discover,
        _ => CardBrand::Unspecified,
    }
}

/// What is kept of a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSummary {
    /// Network.
    pub brand: CardBrand,
    /// Last four digits.
    pub last4: String,
}

/// A valid Charge request, already answered by the provider.
///
/// Parsing runs the provider so that the full card number lives only inside
/// [`Charge::parse`]: what leaves it (and may be stored or logged) is the brand and last four.
#[derive(Debug, Clone)]
pub struct Charge {
    /// The order paid for.
    pub order_id: String,
    /// The order's owner.
    pub user_id: String,
    /// Positive amount.
    pub amount: Amount,
    /// Caller's key ([`IDEMPOTENCY_KEY`]).
    pub idempotency_key: String,
    /// Brand and last four.
    pub card: CardSummary,
    /// The provider's answer.
    pub decision: Decision,
}

fn parse_amount(
    v: &mut FieldViolations,
    field: &str,
    money: &mercato::pb::r#type::v1::Money,
) -> Option<Amount> {
    match Amount::parse_positive(money) {
        Err(e) => {
            v.add(field, e);
            None
        }
        Ok(amount) if amount.units() >= MAX_AMOUNT_UNITS => {
            v.add(field, format!("must be less than {MAX_AMOUNT_UNITS} units"));
            None
        }
        Ok(amount) => Some(amount),
    }
}

impl Charge {
    /// Validates every field of `req` (all violations at once), then asks the provider.
    pub fn parse(req: &pb::ChargeRequest, now: DateTime<Utc>) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        validate::text(
            &mut v,
            "order_id",
            &req.order_id,
            Text::one_line(MAX_ORDER_ID_CHARS),
        );
        validate::text(
            &mut v,
            "user_id",
            &req.user_id,
            Text::one_line(MAX_USER_ID_CHARS),
        );
        let amount = match &req.amount {
            None => {
                v.add("amount", "is required");
                None
            }
            Some(money) => parse_amount(&mut v, "amount", money),
        };
        validate::text(
            &mut v,
            "idempotency_key",
            &req.idempotency_key,
            IDEMPOTENCY_KEY,
        );
        let number = validate::card(&mut v, "card", req.card.as_ref());
        match (amount, number, &req.card) {
            (Some(amount), Some(number), Some(card)) if v.is_empty() => Ok(Self {
                order_id: req.order_id.clone(),
                user_id: req.user_id.clone(),
                amount,
                idempotency_key: req.idempotency_key.clone(),
                card: CardSummary {
                    brand: card::brand(number.as_str()),
                    last4: card::last4(number.as_str()),
                },
                decision: provider::charge(number.as_str(), card, now),
            }),
            _ => Err(v),
        }
    }
}

/// A valid Refund request.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// The payment.
    pub payment_id: Uuid,
    /// Amount asked for; `None` refunds everything not yet refunded.
    pub amount: Option<Amount>,
    /// Why (may be empty).
    pub reason: String,
    /// Caller's key, if any.
    pub idempotency_key: Option<String>,
}

impl RefundRequest {
    /// Validates every field of `req`.
    pub fn parse(req: &pb::RefundRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let payment_id = validate::uuid(&mut v, "id", &req.id);
        let amount = req
            .amount
            .as_ref()
            .map(|money| parse_amount(&mut v, "amount", money));
        validate::text(
            &mut v,
            "reason",
            &req.reason,
            Text::multi_line(MAX_REASON_CHARS),
        );
        validate::text(
            &mut v,
            "idempotency_key",
            &req.idempotency_key,
            IDEMPOTENCY_KEY.optional(),
        );
        match payment_id {
            Some(payment_id) if v.is_empty() => Ok(Self {
                payment_id,
                amount: amount.flatten(),
                reason: req.reason.clone(),
                idempotency_key: (!req.idempotency_key.is_empty())
                    .then(|| req.idempotency_key.clone()),
            }),
            _ => Err(v),
        }
    }
}

/// Validates a LookupCharge key.
pub fn parse_lookup_key(raw: &str) -> Result<String, FieldViolations> {
    let mut v = FieldViolations::new();
    if validate::text(&mut v, "idempotency_key", raw, IDEMPOTENCY_KEY) {
        Ok(raw.to_owned())
    } else {
        Err(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use mercato::pb::r#type::v1::Money;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap()
    }

    fn eur(cents: i64) -> Amount {
        Amount::from_total_nanos("EUR", i128::from(cents) * 10_000_000)
    }

    fn charge_request(number: &str) -> pb::ChargeRequest {
        pb::ChargeRequest {
            order_id: "order-1".into(),
            user_id: "user-1".into(),
            amount: Some(eur(1999).to_proto()),
            card: Some(pb::Card {
                number: number.into(),
                exp_month: 12,
                exp_year: 2030,
                cvc: "123".into(),
                holder_name: "Ada Lovelace".into(),
            }),
            idempotency_key: "key-1".into(),
        }
    }

    fn violated(v: FieldViolations) -> String {
        v.into_status().message().to_owned()
    }

    #[test]
    fn a_valid_charge_keeps_only_brand_and_last4() {
        let charge = Charge::parse(&charge_request("4242 4242 4242 4242"), now()).unwrap();
        assert_eq!(charge.card.brand, CardBrand::Visa);
        assert_eq!(charge.card.last4, "4242");
        assert_eq!(charge.decision, Decision::Captured);
        assert!(!format!("{charge:?}").contains("4242424242424242"));
    }

    #[test]
    fn a_refused_card_is_a_valid_charge() {
        let charge = Charge::parse(&charge_request("4000000000000002"), now()).unwrap();
        assert_eq!(
            charge.decision,
            Decision::Refused(PaymentFailureReason::Declined)
        );
    }

    #[test]
    fn every_bad_charge_field_is_reported_with_its_path() {
        let mut req = charge_request("4242424242424241");
        req.order_id = "x".repeat(65);
        req.user_id = String::new();
        req.amount = Some(Money {
            currency_code: "EUR".into(),
            units: 0,
            nanos: 0,
        });
        req.idempotency_key = "k".repeat(129);
        if let Some(card) = req.card.as_mut() {
            card.exp_month = 0;
        }
        let message = violated(Charge::parse(&req, now()).unwrap_err());
        for field in [
            "order_id",
            "user_id",
            "amount",
            "idempotency_key",
            "card.number",
            "card.exp_month",
        ] {
            assert!(message.contains(field), "{field} missing in {message}");
        }
    }

    #[test]
    fn missing_amount_and_card_are_reported() {
        let mut req = charge_request("4242424242424242");
        req.amount = None;
        req.card = None;
        let message = violated(Charge::parse(&req, now()).unwrap_err());
        assert!(
            message.contains("amount") && message.contains("card"),
            "{message}"
        );
    }

    #[test]
    fn huge_amounts_are_rejected() {
        let mut req = charge_request("4242424242424242");
        req.amount = Some(Money {
            currency_code: "EUR".into(),
            units: i64::MAX,
            nanos: 0,
        });
        assert!(violated(Charge::parse(&req, now()).unwrap_err()).contains("amount"));
    }

    #[test]
    fn refund_requests_are_validated() {
        let req = pb::RefundRequest {
            id: "nope".into(),
            amount: Some(Money {
                currency_code: "EUR".into(),
                units: -1,
                nanos: 0,
            }),
            reason: "r".repeat(501),
            idempotency_key: "k".repeat(129),
        };
        let message = violated(RefundRequest::parse(&req).unwrap_err());
        for field in ["id", "amount", "reason", "idempotency_key"] {
            assert!(message.contains(field), "{field} missing in {message}");
        }
        let ok = RefundRequest::parse(&pb::RefundRequest {
            id: Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((ok.amount, ok.idempotency_key), (None, None));
    }

    #[test]
    fn stored_names_round_trip() {
        for status in [
            Status::Pending,
            Status::Captured,
            Status::Failed,
            Status::PartiallyRefunded,
            Status::Refunded,
        ] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        for reason in [
            PaymentFailureReason::Declined,
            PaymentFailureReason::InsufficientFunds,
            PaymentFailureReason::InvalidCard,
            PaymentFailureReason::ExpiredCard,
            PaymentFailureReason::IncorrectCvc,
            PaymentFailureReason::ProcessingError,
        ] {
            assert_eq!(parse_failure_reason(failure_reason_str(reason)), reason);
        }
        for brand in [
            CardBrand::Visa,
            CardBrand::Mastercard,
            CardBrand::Amex,
            CardBrand::Discover,
            CardBrand::Unspecified,
        ] {
            assert_eq!(parse_brand(brand_str(brand)), brand);
        }
    }
}
