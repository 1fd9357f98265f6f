//! The read model's rules, free of I/O: what an order event says about its order, how payment
//! events merge whatever order they arrive in, and the parsing of request fields.

use chrono::{DateTime, Utc};
use mercato::order_events::OrderEvent as _;
use mercato::pb::order::v1::{
    self as pb, OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, OrderShipped, OrderStatus,
    ShippingAddress,
};
use mercato::pb::orderquery::v1::PaymentView;
use mercato::pb::payment::v1::{
    CardSummary, PaymentCaptured, PaymentFailed, PaymentRefunded, PaymentStatus,
};
use mercato::pb::r#type::v1::Money;
use mercato_kernel::error::FieldViolations;
use uuid::Uuid;

/// Longest user id accepted as a ListOrders filter.
pub const MAX_USER_ID_LEN: usize = 128;

/// An event that cannot describe an order or payment; it is dead-lettered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// `order_id` is not a UUID.
    #[error("order_id {0:?} is not a UUID")]
    OrderId(String),
    /// `user_id` is empty.
    #[error("user_id is empty")]
    UserId,
    /// `version` is below 1.
    #[error("version {0} is below 1")]
    Version(i64),
    /// `payment_id` is empty.
    #[error("payment_id is empty")]
    PaymentId,
    /// An event type the projection does not know.
    #[error("unknown event type {0:?}: not one order-query applies")]
    UnknownKind(String),
    /// An event without a snapshot whose fields 1-11 do not decode as one.
    #[error("order fields 1-11 undecodable: {0}")]
    Legacy(#[source] prost::DecodeError),
}

/// The whole state of an order as one order event leaves it: the order the event carries
/// (its `snapshot`), plus what that event changed.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSnapshot {
    /// The order.
    pub id: Uuid,
    /// The buyer.
    pub user_id: String,
    /// The status the event moved the order to.
    pub status: OrderStatus,
    /// The order's version after the event.
    pub version: i64,
    /// What was bought.
    pub lines: Vec<OrderLine>,
    /// Sum of the line totals.
    pub subtotal: Money,
    /// Coupon discount.
    pub discount: Money,
    /// Amount charged.
    pub total: Money,
    /// The coupon; empty when none.
    pub coupon_code: String,
    /// Where the order goes.
    pub shipping_address: ShippingAddress,
    /// The payment; empty before one was attempted.
    pub payment_id: String,
    /// Why it was cancelled; empty unless CANCELLED.
    pub cancellation_reason: String,
    /// The carrier's number; empty unless SHIPPED.
    pub tracking_number: String,
    /// When the order was placed.
    pub placed_at: DateTime<Utc>,
    /// When this change happened.
    pub changed_at: DateTime<Utc>,
    /// The history note of this change: cancellation reason or tracking number.
    pub note: String,
}

/// `ts` as a UTC time; `fallback` when absent or out of range.
pub fn time_or(ts: Option<&prost_types::Timestamp>, fallback: DateTime<Utc>) -> DateTime<Utc> {
    ts.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .unwrap_or(fallback)
}

/// What one order event changed, beyond the order it carries.
struct Change<'a> {
    /// The status the event moved the order to.
    status: OrderStatus,
    /// When, as the event says.
    at: Option<&'a prost_types::Timestamp>,
    /// Why it was cancelled (cancellations).
    cancellation_reason: &'a str,
    /// The carrier's number (shipments).
    tracking_number: &'a str,
}

impl OrderSnapshot {
    /// The order as `order` describes it after `change`; `at` stands in for missing
    /// timestamps.
    fn new(
        order: pb::OrderSnapshot,
        change: Change<'_>,
        at: DateTime<Utc>,
    ) -> Result<Self, EventError> {
        let placed_at = time_or(order.place_time.as_ref(), at);
        // The history note: the cancellation reason or the tracking number, if any.
        let note = if change.cancellation_reason.is_empty() {
            change.tracking_number
        } else {
            change.cancellation_reason
        };
        let snapshot = Self {
            id: Uuid::parse_str(&order.order_id)
                .map_err(|_| EventError::OrderId(order.order_id.clone()))?,
            user_id: order.user_id,
            status: change.status,
            version: order.version,
            lines: order.lines,
            subtotal: order.subtotal.unwrap_or_default(),
            discount: order.discount.unwrap_or_default(),
            total: order.total.unwrap_or_default(),
            coupon_code: order.coupon_code,
            shipping_address: order.shipping_address.unwrap_or_default(),
            payment_id: order.payment_id,
            cancellation_reason: change.cancellation_reason.to_owned(),
            tracking_number: change.tracking_number.to_owned(),
            placed_at,
            changed_at: time_or(change.at, placed_at),
            note: note.to_owned(),
        };
        snapshot.validated()
    }

    fn validated(self) -> Result<Self, EventError> {
        if self.user_id.is_empty() {
            return Err(EventError::UserId);
        }
        if self.version < 1 {
            return Err(EventError::Version(self.version));
        }
        Ok(self)
    }

    /// The order as placed: PENDING. `at` stands in for missing timestamps.
    pub fn placed(e: &OrderPlaced, at: DateTime<Utc>) -> Result<Self, EventError> {
        let order = e.order().map_err(EventError::Legacy)?.into_owned();
        let placed = order.place_time;
        let change = Change {
            status: OrderStatus::Pending,
            at: placed.as_ref(),
            cancellation_reason: "",
            tracking_number: "",
        };
        Self::new(order, change, at)
    }

    /// The order as confirmed.
    pub fn confirmed(e: &OrderConfirmed, at: DateTime<Utc>) -> Result<Self, EventError> {
        let change = Change {
            status: OrderStatus::Confirmed,
            at: e.confirm_time.as_ref(),
            cancellation_reason: "",
            tracking_number: "",
        };
        Self::new(
            e.order().map_err(EventError::Legacy)?.into_owned(),
            change,
            at,
        )
    }

    /// The order as cancelled, with its reason.
    pub fn cancelled(e: &OrderCancelled, at: DateTime<Utc>) -> Result<Self, EventError> {
        let change = Change {
            status: OrderStatus::Cancelled,
            at: e.cancel_time.as_ref(),
            cancellation_reason: &e.reason,
            tracking_number: "",
        };
        Self::new(
            e.order().map_err(EventError::Legacy)?.into_owned(),
            change,
            at,
        )
    }

    /// The order as shipped, with its tracking number.
    pub fn shipped(e: &OrderShipped, at: DateTime<Utc>) -> Result<Self, EventError> {
        let change = Change {
            status: OrderStatus::Shipped,
            at: e.ship_time.as_ref(),
            cancellation_reason: "",
            tracking_number: &e.tracking_number,
        };
        Self::new(
            e.order().map_err(EventError::Legacy)?.into_owned(),
            change,
            at,
        )
    }
}

/// Whether an event of `version` replaces the stored state of `stored` version: only a newer
/// one does; an older or repeated one adds to the history alone.
pub fn supersedes(version: i64, stored: Option<i64>) -> bool {
    stored.is_none_or(|stored| version > stored)
}

/// What the payment events of one payment said so far. Merging is order-independent: a
/// refund seen before its capture, or an older refund after a newer one, ends the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentState {
    /// The order paid for.
    pub order_id: Uuid,
    /// The money was taken.
    pub captured: bool,
    /// The card was refused.
    pub failed: bool,
    /// Captured amount, or the amount asked for when refused.
    pub amount: Money,
    /// Sum of all refunds known (the largest cumulative amount reported).
    pub refunded: Money,
    /// The whole captured amount was refunded.
    pub fully_refunded: bool,
    /// Why the card was refused (PaymentFailureReason number).
    pub failure_reason: i32,
    /// Brand and last four digits.
    pub card: CardSummary,
}

fn total_nanos(m: &Money) -> i128 {
    i128::from(m.units) * 1_000_000_000 + i128::from(m.nanos)
}

/// The order id a payment event names.
pub fn payment_order_id(raw: &str) -> Result<Uuid, EventError> {
    Uuid::parse_str(raw).map_err(|_| EventError::OrderId(raw.to_owned()))
}

impl PaymentState {
    /// Merges a capture.
    pub fn captured(&mut self, e: &PaymentCaptured) {
        self.captured = true;
        if let Some(amount) = &e.amount {
            self.amount = amount.clone();
        }
        if let Some(card) = &e.card {
            self.card = card.clone();
        }
    }

    /// Merges a refusal.
    pub fn failed(&mut self, e: &PaymentFailed) {
        self.failed = true;
        self.failure_reason = e.failure_reason;
        // A capture of the same payment is impossible; keep its amount if one was seen anyway.
        if !self.captured
            && let Some(amount) = &e.amount
        {
            self.amount = amount.clone();
        }
        if let Some(card) = &e.card {
            self.card = card.clone();
        }
    }

    /// Merges a refund: the cumulative amount only grows, whatever order refunds arrive in.
    pub fn refunded(&mut self, e: &PaymentRefunded) {
        if let Some(total) = &e.refunded_amount
            && (self.refunded.currency_code.is_empty()
                || total_nanos(total) > total_nanos(&self.refunded))
        {
            self.refunded = total.clone();
        }
        self.fully_refunded |= e.fully_refunded;
    }

    /// The payment's status as far as the events tell.
    pub fn status(&self) -> PaymentStatus {
        if self.failed {
            PaymentStatus::Failed
        } else if self.fully_refunded {
            PaymentStatus::Refunded
        } else if total_nanos(&self.refunded) > 0 {
            PaymentStatus::PartiallyRefunded
        } else if self.captured {
            PaymentStatus::Captured
        } else {
            PaymentStatus::Pending
        }
    }

    /// The payment as shown on its order.
    pub fn view(&self, payment_id: &str) -> PaymentView {
        let refunded_known = !self.refunded.currency_code.is_empty();
        let refunded_amount = if refunded_known {
            Some(self.refunded.clone())
        } else if self.captured {
            Some(Money {
                currency_code: self.amount.currency_code.clone(),
                units: 0,
                nanos: 0,
            })
        } else {
            None
        };
        PaymentView {
            payment_id: payment_id.to_owned(),
            status: self.status() as i32,
            captured_amount: self.captured.then(|| self.amount.clone()),
            refunded_amount,
            failure_reason: if self.failed { self.failure_reason } else { 0 },
            card: (!self.card.last4.is_empty() || self.card.brand != 0).then(|| self.card.clone()),
        }
    }
}

/// An order id from a request: required, a UUID (the kernel's rule).
pub fn parse_order_id(field: &str, raw: &str) -> Result<Uuid, FieldViolations> {
    mercato_kernel::validate::parse_uuid(field, raw)
}

/// A ListOrders status filter: UNSPECIFIED (any) or a known status.
pub fn parse_status_filter(raw: i32) -> Result<Option<OrderStatus>, &'static str> {
    match OrderStatus::try_from(raw) {
        Ok(OrderStatus::Unspecified) => Ok(None),
        Ok(status) => Ok(Some(status)),
        Err(_) => Err("must be a known order status"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn eur(cents: i64) -> Money {
        Money {
            currency_code: "EUR".into(),
            units: cents / 100,
            nanos: i32::try_from(cents % 100).unwrap() * 10_000_000,
        }
    }

    fn placed() -> OrderPlaced {
        OrderPlaced {
            order_id: Uuid::now_v7().to_string(),
            user_id: "u1".into(),
            version: 1,
            total: Some(eur(1000)),
            place_time: Some(prost_types::Timestamp {
                seconds: 1_600_000_000,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_placed_order_is_pending_and_changed_when_placed() {
        let s = OrderSnapshot::placed(&placed(), at()).unwrap();
        assert_eq!(s.status, OrderStatus::Pending);
        assert_eq!(s.placed_at.timestamp(), 1_600_000_000);
        assert_eq!(s.changed_at, s.placed_at);
        assert_eq!(s.total, eur(1000));
        assert!(s.note.is_empty());
    }

    #[test]
    fn a_cancellation_carries_its_reason_as_note_and_reason() {
        let p = placed();
        let e = OrderCancelled {
            order_id: p.order_id,
            user_id: "u1".into(),
            version: 2,
            reason: "card declined".into(),
            ..Default::default()
        };
        let s = OrderSnapshot::cancelled(&e, at()).unwrap();
        assert_eq!(s.status, OrderStatus::Cancelled);
        assert_eq!(s.cancellation_reason, "card declined");
        assert_eq!(s.note, "card declined");
        // No timestamps at all: the envelope's time stands in.
        assert_eq!(s.changed_at, at());
    }

    #[test]
    fn a_shipment_carries_its_tracking_number() {
        let e = OrderShipped {
            order_id: Uuid::now_v7().to_string(),
            user_id: "u1".into(),
            version: 3,
            tracking_number: "TRK-1".into(),
            ..Default::default()
        };
        let s = OrderSnapshot::shipped(&e, at()).unwrap();
        assert_eq!(s.tracking_number, "TRK-1");
        assert_eq!(s.note, "TRK-1");
        assert!(s.cancellation_reason.is_empty());
    }

    #[test]
    fn malformed_order_events_are_rejected() {
        let mut e = placed();
        e.order_id = "nope".into();
        assert_eq!(
            OrderSnapshot::placed(&e, at()).unwrap_err(),
            EventError::OrderId("nope".into())
        );
        let mut e = placed();
        e.user_id.clear();
        assert_eq!(
            OrderSnapshot::placed(&e, at()).unwrap_err(),
            EventError::UserId
        );
        let mut e = placed();
        e.version = 0;
        assert_eq!(
            OrderSnapshot::placed(&e, at()).unwrap_err(),
            EventError::Version(0)
        );
    }

    #[test]
    fn the_snapshot_is_read_rather_than_the_deprecated_fields() {
        let old = placed();
        let snapshot = pb::OrderSnapshot {
            order_id: Uuid::now_v7().to_string(),
            user_id: "u2".into(),
            version: 2,
            total: Some(eur(2000)),
            place_time: old.place_time,
            ..Default::default()
        };
        let e = OrderConfirmed {
            order_id: old.order_id.clone(),
            user_id: old.user_id.clone(),
            version: 1,
            total: old.total.clone(),
            snapshot: Some(snapshot.clone()),
            ..Default::default()
        };
        let s = OrderSnapshot::confirmed(&e, at()).unwrap();
        assert_eq!(s.id.to_string(), snapshot.order_id);
        assert_eq!(s.user_id, "u2");
        assert_eq!(s.version, 2);
        assert_eq!(s.total, eur(2000));
    }

    #[test]
    fn an_event_without_a_snapshot_is_read_from_its_fields_1_to_11() {
        let p = placed();
        let e = OrderShipped {
            order_id: p.order_id.clone(),
            user_id: "u1".into(),
            version: 3,
            lines: vec![OrderLine {
                product_id: "p-1".into(),
                quantity: 2,
                ..Default::default()
            }],
            coupon_code: "SAVE5".into(),
            payment_id: "pay-1".into(),
            place_time: p.place_time,
            tracking_number: "TRK-1".into(),
            ship_time: Some(prost_types::Timestamp {
                seconds: 1_600_003_600,
                nanos: 0,
            }),
            snapshot: None,
            ..Default::default()
        };
        let s = OrderSnapshot::shipped(&e, at()).unwrap();
        assert_eq!(s.id.to_string(), p.order_id);
        assert_eq!(s.lines.len(), 1);
        assert_eq!(s.coupon_code, "SAVE5");
        assert_eq!(s.payment_id, "pay-1");
        assert_eq!(s.placed_at.timestamp(), 1_600_000_000);
        assert_eq!(s.changed_at.timestamp(), 1_600_003_600);
    }

    #[test]
    fn only_a_newer_version_supersedes() {
        assert!(supersedes(1, None));
        assert!(supersedes(2, Some(1)));
        assert!(!supersedes(2, Some(2)));
        assert!(!supersedes(1, Some(2)));
    }

    fn refund(total_cents: i64, fully: bool) -> PaymentRefunded {
        PaymentRefunded {
            refunded_amount: Some(eur(total_cents)),
            fully_refunded: fully,
            ..Default::default()
        }
    }

    fn capture(cents: i64) -> PaymentCaptured {
        PaymentCaptured {
            amount: Some(eur(cents)),
            card: Some(CardSummary {
                brand: 1,
                last4: "4242".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_captured_payment_shows_its_amount_and_card_and_nothing_refunded() {
        let mut p = PaymentState::default();
        p.captured(&capture(1000));
        let view = p.view("pay-1");
        assert_eq!(view.status, PaymentStatus::Captured as i32);
        assert_eq!(view.captured_amount, Some(eur(1000)));
        assert_eq!(view.refunded_amount, Some(eur(0)));
        assert_eq!(view.card.unwrap().last4, "4242");
    }

    #[test]
    fn refunds_merge_the_same_in_any_order() {
        let mut in_order = PaymentState::default();
        in_order.captured(&capture(1000));
        in_order.refunded(&refund(400, false));
        in_order.refunded(&refund(1000, true));

        let mut shuffled = PaymentState::default();
        shuffled.refunded(&refund(1000, true));
        shuffled.refunded(&refund(400, false));
        shuffled.captured(&capture(1000));

        assert_eq!(in_order, shuffled);
        assert_eq!(in_order.status(), PaymentStatus::Refunded);
        assert_eq!(in_order.view("p").refunded_amount, Some(eur(1000)));
    }

    #[test]
    fn a_partial_refund_is_partially_refunded() {
        let mut p = PaymentState::default();
        p.captured(&capture(1000));
        p.refunded(&refund(300, false));
        assert_eq!(p.status(), PaymentStatus::PartiallyRefunded);
    }

    #[test]
    fn a_refused_card_is_failed_with_its_reason_and_no_capture() {
        let mut p = PaymentState::default();
        p.failed(&PaymentFailed {
            amount: Some(eur(1000)),
            failure_reason: 2,
            ..Default::default()
        });
        let view = p.view("p");
        assert_eq!(view.status, PaymentStatus::Failed as i32);
        assert_eq!(view.failure_reason, 2);
        assert_eq!(view.captured_amount, None);
        assert_eq!(view.refunded_amount, None);
        assert_eq!(view.card, None);
    }

    #[test]
    fn order_ids_in_requests_must_be_uuids() {
        assert!(parse_order_id("id", &Uuid::now_v7().to_string()).is_ok());
        assert!(parse_order_id("id", "").is_err());
        assert!(parse_order_id("id", "x").is_err());
    }

    #[test]
    fn status_filters_must_be_known() {
        assert_eq!(parse_status_filter(0), Ok(None));
        assert_eq!(parse_status_filter(2), Ok(Some(OrderStatus::Confirmed)));
        assert!(parse_status_filter(99).is_err());
    }
}
