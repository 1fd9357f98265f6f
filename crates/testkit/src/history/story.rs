//! What happened in the shop, as the history's truth: customers, products, and each order
//! from its placement to its fate, with the events each order's changes are told by.

use mercato::pb::order::v1::{
    OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, OrderShipped, OrderStatus,
    ShippingAddress,
};
use mercato::pb::payment::v1::{CardSummary, PaymentFailureReason};
use mercato::pb::r#type::v1::Money;

/// `cents` euro cents as Money.
pub fn eur(cents: i64) -> Money {
    Money {
        currency_code: "EUR".into(),
        units: cents / 100,
        nanos: i32::try_from(cents % 100).expect("cents") * 10_000_000,
    }
}

/// A point in the history: Unix seconds and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds within the second.
    pub nanos: i32,
}

impl Instant {
    /// As a protobuf timestamp.
    pub fn timestamp(self) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: self.seconds,
            nanos: self.nanos,
        }
    }

    /// `secs` later.
    pub fn plus(self, secs: i64) -> Self {
        Self {
            seconds: self.seconds + secs,
            nanos: self.nanos,
        }
    }
}

/// A customer: registered (UserRegistered) when the history starts.
#[derive(Debug, Clone)]
pub struct Customer {
    /// The user id (a UUID).
    pub id: String,
    /// Their e-mail.
    pub email: String,
    /// Their display name.
    pub display_name: String,
    /// When they registered.
    pub registered_at: Instant,
}

/// A product of the catalog, possibly renamed during the history.
#[derive(Debug, Clone)]
pub struct Product {
    /// Its id (a UUID).
    pub id: String,
    /// Its name before any rename.
    pub name: String,
    /// Its unit price in cents.
    pub price_cents: i64,
    /// When it was renamed and to what.
    pub renamed: Option<(Instant, String)>,
}

impl Product {
    /// Its name at `at`.
    pub fn name_at(&self, at: Instant) -> &str {
        match &self.renamed {
            Some((when, name)) if at >= *when => name,
            _ => &self.name,
        }
    }
}

/// How an order ended (as far as the history goes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Placed and nothing since (its saga was still running).
    Pending,
    /// The stock could not be reserved: cancelled from PENDING before any charge.
    OutOfStock {
        /// When it was cancelled.
        cancelled_at: Instant,
    },
    /// The card was refused (PaymentFailed), then the order was cancelled from PENDING.
    Declined {
        /// Why the card was refused.
        reason: PaymentFailureReason,
        /// When the card was refused; the cancellation follows a second later.
        failed_at: Instant,
    },
    /// Paid (PaymentCaptured) and confirmed.
    Confirmed {
        /// When it was confirmed.
        confirmed_at: Instant,
    },
    /// Confirmed, then handed to the carrier.
    Shipped {
        /// When it was confirmed.
        confirmed_at: Instant,
        /// When it shipped.
        shipped_at: Instant,
        /// The carrier's number.
        tracking: String,
    },
    /// Confirmed, then cancelled (by the buyer or an admin) and refunded in full.
    Cancelled {
        /// When it was confirmed.
        confirmed_at: Instant,
        /// When it was cancelled; the full refund follows a second later.
        cancelled_at: Instant,
        /// Who cancelled it (the buyer's id, or an admin's).
        by: String,
    },
}

impl Fate {
    /// The order's status at the end.
    pub fn status(&self) -> OrderStatus {
        match self {
            Self::Pending => OrderStatus::Pending,
            Self::OutOfStock { .. } | Self::Declined { .. } | Self::Cancelled { .. } => {
                OrderStatus::Cancelled
            }
            Self::Confirmed { .. } => OrderStatus::Confirmed,
            Self::Shipped { .. } => OrderStatus::Shipped,
        }
    }

    /// When it was confirmed, if it was.
    pub fn confirmed_at(&self) -> Option<Instant> {
        match self {
            Self::Confirmed { confirmed_at }
            | Self::Shipped { confirmed_at, .. }
            | Self::Cancelled { confirmed_at, .. } => Some(*confirmed_at),
            _ => None,
        }
    }

    /// The order's version at the end (one per event of it).
    pub fn version(&self) -> i64 {
        match self {
            Self::Pending => 1,
            Self::OutOfStock { .. } | Self::Declined { .. } | Self::Confirmed { .. } => 2,
            Self::Shipped { .. } | Self::Cancelled { .. } => 3,
        }
    }
}

/// A refund of an order's payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The refund's id.
    pub id: String,
    /// This refund, in cents.
    pub amount_cents: i64,
    /// Every refund of the payment so far, this one included, in cents.
    pub refunded_cents: i64,
    /// The whole captured amount is now refunded.
    pub fully: bool,
    /// When it was made.
    pub at: Instant,
}

/// One order from its placement to its fate: what every event of it says.
#[derive(Debug, Clone)]
pub struct OrderStory {
    /// The order id (a UUID).
    pub id: String,
    /// The buyer.
    pub user_id: String,
    /// What was bought (one line per product).
    pub lines: Vec<OrderLine>,
    /// Sum of the line totals, in cents.
    pub subtotal_cents: i64,
    /// The coupon's discount, in cents.
    pub discount_cents: i64,
    /// The coupon; empty when none.
    pub coupon_code: String,
    /// Where it goes.
    pub address: ShippingAddress,
    /// The payment; empty when no charge was attempted.
    pub payment_id: String,
    /// The card charged (or refused).
    pub card: CardSummary,
    /// When it was placed.
    pub placed_at: Instant,
    /// How it ended.
    pub fate: Fate,
    /// Refunds of its payment, oldest first.
    pub refunds: Vec<Refund>,
}

impl OrderStory {
    /// The amount charged, in cents.
    pub fn total_cents(&self) -> i64 {
        self.subtotal_cents - self.discount_cents
    }

    /// Units over all lines.
    pub fn units(&self) -> i64 {
        self.lines.iter().map(|l| i64::from(l.quantity)).sum()
    }

    pub(super) fn placed(&self) -> OrderPlaced {
        OrderPlaced {
            order_id: self.id.clone(),
            user_id: self.user_id.clone(),
            version: 1,
            lines: self.lines.clone(),
            subtotal: Some(eur(self.subtotal_cents)),
            discount: Some(eur(self.discount_cents)),
            total: Some(eur(self.total_cents())),
            coupon_code: self.coupon_code.clone(),
            shipping_address: Some(self.address.clone()),
            payment_id: String::new(),
            place_time: Some(self.placed_at.timestamp()),
            snapshot: None,
        }
    }

    pub(super) fn confirmed(&self, at: Instant) -> OrderConfirmed {
        OrderConfirmed {
            order_id: self.id.clone(),
            user_id: self.user_id.clone(),
            version: 2,
            lines: self.lines.clone(),
            subtotal: Some(eur(self.subtotal_cents)),
            discount: Some(eur(self.discount_cents)),
            total: Some(eur(self.total_cents())),
            coupon_code: self.coupon_code.clone(),
            shipping_address: Some(self.address.clone()),
            payment_id: self.payment_id.clone(),
            place_time: Some(self.placed_at.timestamp()),
            confirm_time: Some(at.timestamp()),
            snapshot: None,
        }
    }

    pub(super) fn shipped(&self, at: Instant, tracking: &str) -> OrderShipped {
        OrderShipped {
            order_id: self.id.clone(),
            user_id: self.user_id.clone(),
            version: 3,
            lines: self.lines.clone(),
            subtotal: Some(eur(self.subtotal_cents)),
            discount: Some(eur(self.discount_cents)),
            total: Some(eur(self.total_cents())),
            coupon_code: self.coupon_code.clone(),
            shipping_address: Some(self.address.clone()),
            payment_id: self.payment_id.clone(),
            place_time: Some(self.placed_at.timestamp()),
            tracking_number: tracking.into(),
            ship_time: Some(at.timestamp()),
            snapshot: None,
        }
    }

    pub(super) fn cancelled(
        &self,
        version: i64,
        previous: OrderStatus,
        reason: &str,
        by: &str,
        at: Instant,
    ) -> OrderCancelled {
        OrderCancelled {
            order_id: self.id.clone(),
            user_id: self.user_id.clone(),
            version,
            lines: self.lines.clone(),
            subtotal: Some(eur(self.subtotal_cents)),
            discount: Some(eur(self.discount_cents)),
            total: Some(eur(self.total_cents())),
            coupon_code: self.coupon_code.clone(),
            shipping_address: Some(self.address.clone()),
            payment_id: self.payment_id.clone(),
            place_time: Some(self.placed_at.timestamp()),
            previous_status: previous as i32,
            reason: reason.into(),
            cancelled_by: by.into(),
            cancel_time: Some(at.timestamp()),
            snapshot: None,
        }
    }

    /// Why it was cancelled (the order's cancellation reason), when it was.
    pub fn cancellation_reason(&self) -> Option<String> {
        match &self.fate {
            Fate::OutOfStock { .. } => Some(format!(
                "insufficient stock for product {}",
                self.lines[0].product_id
            )),
            Fate::Declined { .. } => Some("payment declined".into()),
            Fate::Cancelled { by, .. } if *by == self.user_id => Some("changed my mind".into()),
            Fate::Cancelled { .. } => Some("cancelled by the shop: item damaged".into()),
            _ => None,
        }
    }
}
