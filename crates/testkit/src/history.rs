//! A shop's history of integration events, generated from a seed, and what it takes to feed
//! it to a projecting service as the producers' relays would: publication with duplicates and
//! reordering, and a wait until the service's durable consumers have acknowledged all of it.
//!
//! The replica tests of the projecting services (order-query, notification, statistics,
//! review) feed one history to three replicas sharing a database and a durable consumer and
//! to a single replica, then compare what both ended with, and with what the history says.
//! The history is the truth: every order's fate, payment and refunds, so a test can compute
//! the expected read model without looking at what the service did.
//!
//! `MERCATO_TEST_SEED` picks another history (the default one is fixed, so a failure
//! reproduces); a failing test names its seed.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mercato::pb::events::v1::Envelope;
use mercato::pb::identity::v1::UserRegistered;
use mercato::pb::order::v1::{
    OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, OrderShipped, OrderStatus,
    ShippingAddress,
};
use mercato::pb::payment::v1::{
    CardBrand, CardSummary, PaymentCaptured, PaymentFailed, PaymentFailureReason, PaymentRefunded,
};
use mercato::pb::r#type::v1::Money;
use mercato_kernel::{RunningService, ServiceConfig};
use prost::Message as _;

use crate::{TestDatabase, TestIdentity};

/// The history used when `MERCATO_TEST_SEED` is not set.
pub const DEFAULT_SEED: u64 = 20_310_303;

/// `MERCATO_TEST_SEED` (decimal), else [`DEFAULT_SEED`].
pub fn seed() -> u64 {
    std::env::var("MERCATO_TEST_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// A small deterministic generator (SplitMix64): the same seed gives the same history on
/// every machine, with no dependency on a crate's algorithm choices across versions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..hi` (`hi` > `lo`).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + i64::try_from(self.below(hi.abs_diff(lo))).expect("range fits i64")
    }

    /// True `percent` times out of 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).expect("index fits usize")]
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.below(i as u64 + 1)).expect("index fits usize");
            items.swap(i, j);
        }
    }

    /// A random (version 4) UUID, as text.
    pub fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

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

    fn placed(&self) -> OrderPlaced {
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
        }
    }

    fn confirmed(&self, at: Instant) -> OrderConfirmed {
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
        }
    }

    fn shipped(&self, at: Instant, tracking: &str) -> OrderShipped {
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
        }
    }

    fn cancelled(
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

/// How big a history to generate.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Orders placed.
    pub orders: usize,
    /// Customers who registered (the given ones first, then made-up ones).
    pub customers: usize,
    /// Products in the catalog.
    pub products: usize,
    /// When the history starts (the first registration).
    pub start: Instant,
    /// Over how many seconds the orders are placed.
    pub span_secs: i64,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            orders: 500,
            customers: 60,
            products: 40,
            // 2031-03-03T00:00:00Z: clear of the other tests' periods.
            start: Instant {
                seconds: 1_930_262_400,
                nanos: 0,
            },
            span_secs: 2 * 24 * 3600,
        }
    }
}

/// Everything that happened in the shop, and the events that told it, in the order they
/// happened.
#[derive(Debug, Clone)]
pub struct History {
    /// The seed it was generated from.
    pub seed: u64,
    /// Who registered.
    pub customers: Vec<Customer>,
    /// The catalog.
    pub products: Vec<Product>,
    /// Every order.
    pub orders: Vec<OrderStory>,
    /// Every event once, in the order it happened; `source` is the producing domain and
    /// `subject` the aggregate (user, order or payment id).
    pub events: Vec<Envelope>,
}

const FIRST_NAMES: [&str; 12] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Dennis",
    "Margaret", "Tony",
];
const LAST_NAMES: [&str; 10] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman",
    "Ritchie",
];
const THINGS: [&str; 10] = [
    "Stoneware mug",
    "Loose-leaf tea",
    "Cast-iron teapot",
    "Linen napkins",
    "Walnut board",
    "Copper kettle",
    "Espresso cups",
    "Oak spoon",
    "Glass carafe",
    "Wool throw",
];
const CITIES: [(&str, &str, &str); 5] = [
    ("London", "N1 9GU", "GB"),
    ("Berlin", "10115", "DE"),
    ("Lisboa", "1100-148", "PT"),
    ("Lyon", "69002", "FR"),
    ("Gent", "9000", "BE"),
];
const DECLINES: [PaymentFailureReason; 4] = [
    PaymentFailureReason::Declined,
    PaymentFailureReason::InsufficientFunds,
    PaymentFailureReason::ExpiredCard,
    PaymentFailureReason::IncorrectCvc,
];

impl History {
    /// A history of `plan` from `seed`, whose first customers are `known` (real users of a
    /// test identity, so a test can call as them); the rest are made up.
    pub fn generate(seed: u64, plan: &Plan, known: &[String]) -> Self {
        let mut rng = Rng::new(seed);
        let customers = (0..plan.customers.max(known.len()))
            .map(|i| {
                let first = FIRST_NAMES[i % FIRST_NAMES.len()];
                let last = LAST_NAMES[(i / FIRST_NAMES.len() + i) % LAST_NAMES.len()];
                // Drawn for known customers too, so the rest of the history does not depend
                // on how many are known.
                let made_up = rng.uuid();
                Customer {
                    id: known.get(i).cloned().unwrap_or(made_up),
                    email: format!("{}.{}{i}@mercato.test", first, last).to_lowercase(),
                    display_name: format!("{first} {last}"),
                    registered_at: Instant {
                        seconds: plan.start.seconds + i as i64 * 7,
                        nanos: 1000 * (i as i32 + 1),
                    },
                }
            })
            .collect::<Vec<_>>();
        let products = (0..plan.products)
            .map(|i| {
                let name = format!("{} no. {}", THINGS[i % THINGS.len()], i + 1);
                let renamed = rng.chance(20).then(|| {
                    let at = plan.start.plus(rng.range(3600, plan.span_secs));
                    (at, format!("{name} (new edition)"))
                });
                Product {
                    id: rng.uuid(),
                    name,
                    price_cents: rng.range(150, 12_000),
                    renamed,
                }
            })
            .collect::<Vec<_>>();
        // Orders start once everyone registered, at distinct microseconds (the order's index),
        // so nothing two orders say happened at the same instant.
        let first_order = plan.start.plus(customers.len() as i64 * 7 + 60);
        let spacing = (plan.span_secs / plan.orders.max(1) as i64).max(2);
        let mut orders = Vec::with_capacity(plan.orders);
        for i in 0..plan.orders {
            let placed_at = Instant {
                seconds: first_order.seconds + i as i64 * spacing + rng.range(0, spacing),
                nanos: 1000 * (i as i32 + 1),
            };
            let user_id = rng.pick(&customers).id.clone();
            orders.push(Self::order(&mut rng, &products, user_id, placed_at));
        }
        let events = Self::events(&mut rng, &customers, &orders);
        Self {
            seed,
            customers,
            products,
            orders,
            events,
        }
    }

    fn order(
        rng: &mut Rng,
        products: &[Product],
        user_id: String,
        placed_at: Instant,
    ) -> OrderStory {
        let mut chosen: Vec<&Product> = Vec::new();
        let wanted = 1 + rng.below(4);
        while (chosen.len() as u64) < wanted {
            let p = rng.pick(products);
            if !chosen.iter().any(|c| c.id == p.id) {
                chosen.push(p);
            }
        }
        let lines: Vec<OrderLine> = chosen
            .iter()
            .map(|p| {
                let quantity = if rng.chance(70) { 1 } else { rng.range(2, 5) };
                OrderLine {
                    product_id: p.id.clone(),
                    name: p.name_at(placed_at).to_owned(),
                    quantity: i32::try_from(quantity).expect("quantity"),
                    unit_price: Some(eur(p.price_cents)),
                    line_total: Some(eur(p.price_cents * quantity)),
                }
            })
            .collect();
        let subtotal_cents: i64 = chosen
            .iter()
            .zip(&lines)
            .map(|(p, l)| p.price_cents * i64::from(l.quantity))
            .sum();
        let (coupon_code, discount_cents) = match rng.below(10) {
            0 => ("WELCOME10".to_owned(), subtotal_cents / 10),
            1 if subtotal_cents > 2000 => ("SAVE5".to_owned(), 500),
            _ => (String::new(), 0),
        };
        let (city, postal_code, country) = *rng.pick(&CITIES);
        let address = ShippingAddress {
            name: format!("{} {}", rng.pick(&FIRST_NAMES), rng.pick(&LAST_NAMES)),
            line1: format!("{} Market Street", rng.range(1, 200)),
            line2: if rng.chance(20) {
                "Flat 2".into()
            } else {
                String::new()
            },
            city: city.into(),
            postal_code: postal_code.into(),
            country: country.into(),
        };
        let card = CardSummary {
            brand: *rng.pick(&[CardBrand::Visa, CardBrand::Mastercard, CardBrand::Amex]) as i32,
            last4: format!("{:04}", rng.below(10_000)),
        };
        let paid_at = placed_at.plus(rng.range(2, 90));
        let roll = rng.below(100);
        let fate = match roll {
            0..5 => Fate::Pending,
            5..10 => Fate::OutOfStock {
                cancelled_at: placed_at.plus(rng.range(1, 10)),
            },
            10..20 => Fate::Declined {
                reason: *rng.pick(&DECLINES),
                failed_at: paid_at,
            },
            20..45 => Fate::Confirmed {
                confirmed_at: paid_at.plus(1),
            },
            45..85 => Fate::Shipped {
                confirmed_at: paid_at.plus(1),
                shipped_at: paid_at.plus(rng.range(3600, 20 * 3600)),
                tracking: format!("TRK-{:08}", rng.below(100_000_000)),
            },
            _ => Fate::Cancelled {
                confirmed_at: paid_at.plus(1),
                cancelled_at: paid_at.plus(rng.range(600, 10 * 3600)),
                by: if rng.chance(70) {
                    user_id.clone()
                } else {
                    rng.uuid()
                },
            },
        };
        let payment_id = match fate {
            Fate::Pending | Fate::OutOfStock { .. } => String::new(),
            _ => rng.uuid(),
        };
        let total = subtotal_cents - discount_cents;
        let mut refunds = Vec::new();
        match &fate {
            Fate::Cancelled { cancelled_at, .. } => refunds.push(Refund {
                id: rng.uuid(),
                amount_cents: total,
                refunded_cents: total,
                fully: true,
                at: cancelled_at.plus(1),
            }),
            // Returns: part of a shipped order given back, sometimes all of it in a second go.
            Fate::Shipped { shipped_at, .. } if total > 100 && rng.chance(25) => {
                let first = rng.range(1, total);
                let at = shipped_at.plus(rng.range(3600, 30 * 3600));
                refunds.push(Refund {
                    id: rng.uuid(),
                    amount_cents: first,
                    refunded_cents: first,
                    fully: false,
                    at,
                });
                if rng.chance(40) {
                    refunds.push(Refund {
                        id: rng.uuid(),
                        amount_cents: total - first,
                        refunded_cents: total,
                        fully: true,
                        at: at.plus(rng.range(60, 3600)),
                    });
                }
            }
            _ => {}
        }
        OrderStory {
            id: rng.uuid(),
            user_id,
            lines,
            subtotal_cents,
            discount_cents,
            coupon_code,
            address,
            payment_id,
            card,
            placed_at,
            fate,
            refunds,
        }
    }

    /// Every event of the history, in the order it happened.
    fn events(rng: &mut Rng, customers: &[Customer], orders: &[OrderStory]) -> Vec<Envelope> {
        let mut timed: Vec<(Instant, Envelope)> = Vec::new();
        let mut push = |rng: &mut Rng, at: Instant, subject: &str, envelope: Envelope| {
            timed.push((
                at,
                Envelope {
                    id: rng.uuid(),
                    subject: subject.to_owned(),
                    occurred_at: Some(at.timestamp()),
                    ..envelope
                },
            ));
        };
        for c in customers {
            let event = UserRegistered {
                user_id: c.id.clone(),
                email: c.email.clone(),
                display_name: c.display_name.clone(),
                create_time: Some(c.registered_at.timestamp()),
            };
            push(rng, c.registered_at, &c.id, envelope_of(&event));
        }
        for o in orders {
            push(rng, o.placed_at, &o.id, envelope_of(&o.placed()));
            let captured = |at: Instant| PaymentCaptured {
                payment_id: o.payment_id.clone(),
                order_id: o.id.clone(),
                user_id: o.user_id.clone(),
                amount: Some(eur(o.total_cents())),
                card: Some(o.card.clone()),
                capture_time: Some(at.timestamp()),
            };
            match &o.fate {
                Fate::Pending => {}
                Fate::OutOfStock { cancelled_at } => {
                    let reason = o.cancellation_reason().unwrap_or_default();
                    let event = o.cancelled(2, OrderStatus::Pending, &reason, "", *cancelled_at);
                    push(rng, *cancelled_at, &o.id, envelope_of(&event));
                }
                Fate::Declined { reason, failed_at } => {
                    let failed = PaymentFailed {
                        payment_id: o.payment_id.clone(),
                        order_id: o.id.clone(),
                        user_id: o.user_id.clone(),
                        amount: Some(eur(o.total_cents())),
                        failure_reason: *reason as i32,
                        card: Some(o.card.clone()),
                        fail_time: Some(failed_at.timestamp()),
                    };
                    push(rng, *failed_at, &o.payment_id, envelope_of(&failed));
                    let at = failed_at.plus(1);
                    let why = o.cancellation_reason().unwrap_or_default();
                    let event = o.cancelled(2, OrderStatus::Pending, &why, "", at);
                    push(rng, at, &o.id, envelope_of(&event));
                }
                Fate::Confirmed { confirmed_at } => {
                    let paid = confirmed_at.plus(-1);
                    push(rng, paid, &o.payment_id, envelope_of(&captured(paid)));
                    let event = o.confirmed(*confirmed_at);
                    push(rng, *confirmed_at, &o.id, envelope_of(&event));
                }
                Fate::Shipped {
                    confirmed_at,
                    shipped_at,
                    tracking,
                } => {
                    let paid = confirmed_at.plus(-1);
                    push(rng, paid, &o.payment_id, envelope_of(&captured(paid)));
                    let event = o.confirmed(*confirmed_at);
                    push(rng, *confirmed_at, &o.id, envelope_of(&event));
                    let event = o.shipped(*shipped_at, tracking);
                    push(rng, *shipped_at, &o.id, envelope_of(&event));
                }
                Fate::Cancelled {
                    confirmed_at,
                    cancelled_at,
                    by,
                } => {
                    let paid = confirmed_at.plus(-1);
                    push(rng, paid, &o.payment_id, envelope_of(&captured(paid)));
                    let event = o.confirmed(*confirmed_at);
                    push(rng, *confirmed_at, &o.id, envelope_of(&event));
                    let why = o.cancellation_reason().unwrap_or_default();
                    let event = o.cancelled(3, OrderStatus::Confirmed, &why, by, *cancelled_at);
                    push(rng, *cancelled_at, &o.id, envelope_of(&event));
                }
            }
            for r in &o.refunds {
                let event = PaymentRefunded {
                    payment_id: o.payment_id.clone(),
                    order_id: o.id.clone(),
                    user_id: o.user_id.clone(),
                    refund_id: r.id.clone(),
                    amount: Some(eur(r.amount_cents)),
                    refunded_amount: Some(eur(r.refunded_cents)),
                    fully_refunded: r.fully,
                    reason: if matches!(o.fate, Fate::Cancelled { .. }) {
                        "order cancelled".into()
                    } else {
                        "returned".into()
                    },
                    refund_time: Some(r.at.timestamp()),
                };
                push(rng, r.at, &o.payment_id, envelope_of(&event));
            }
        }
        timed.sort_by_key(|(at, _)| *at);
        timed.into_iter().map(|(_, e)| e).collect()
    }

    /// The events of `domains`, as the relays would publish them with at-least-once
    /// delivery and no order across aggregates: the history order, each event moved up to
    /// about 40 places; one aggregate in seven with its events in a random order (a later
    /// event before an earlier one, possibly far ahead); and one event in ten published
    /// again later with the same event id, half under the same `Nats-Msg-Id` (JetStream's
    /// de-duplication drops it) and half under a new one (only the consumer can tell).
    pub fn deliveries(&self, domains: &[&str]) -> Vec<Delivery> {
        const STEP: u64 = 64;
        let mut rng = Rng::new(self.seed ^ 0x5eed_de11_7e21_e500);
        let events: Vec<&Envelope> = self
            .events
            .iter()
            .filter(|e| domains.contains(&e.source.as_str()))
            .collect();
        let mut keys: Vec<u64> = (0..events.len() as u64)
            .map(|i| i * STEP + rng.below(STEP * 40))
            .collect();
        let mut by_aggregate: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            by_aggregate.entry(e.subject.as_str()).or_default().push(i);
        }
        for indices in by_aggregate.values() {
            if indices.len() > 1 && rng.chance(15) {
                let mut shuffled: Vec<u64> = indices.iter().map(|&i| keys[i]).collect();
                rng.shuffle(&mut shuffled);
                for (&i, key) in indices.iter().zip(shuffled) {
                    keys[i] = key;
                }
            }
        }
        let mut out: Vec<(u64, Delivery)> = Vec::with_capacity(events.len() * 11 / 10);
        for (i, e) in events.iter().enumerate() {
            out.push((
                keys[i],
                Delivery {
                    envelope: (*e).clone(),
                    msg_id: e.id.clone(),
                },
            ));
            if rng.chance(10) {
                let later = keys[i] + 1 + rng.below(STEP * 400);
                let msg_id = if rng.chance(50) {
                    e.id.clone()
                } else {
                    rng.uuid()
                };
                out.push((
                    later,
                    Delivery {
                        envelope: (*e).clone(),
                        msg_id,
                    },
                ));
            }
        }
        out.sort_by_key(|(key, _)| *key);
        out.into_iter().map(|(_, d)| d).collect()
    }
}

fn envelope_of<M: prost::Name>(event: &M) -> Envelope {
    let type_name = M::full_name();
    let domain = type_name.split('.').nth(1).unwrap_or_default().to_owned();
    Envelope {
        r#type: type_name,
        source: domain,
        payload: event.encode_to_vec(),
        ..Default::default()
    }
}

/// One publication of an event.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event.
    pub envelope: Envelope,
    /// Its `Nats-Msg-Id`: the event id, or another one for a duplicate JetStream must store.
    pub msg_id: String,
}

/// What publishing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Messages sent.
    pub sent: usize,
    /// Messages JetStream dropped as duplicates (same `Nats-Msg-Id` within its window).
    pub deduplicated: usize,
}

async fn connect() -> async_nats::jetstream::Context {
    async_nats::jetstream::new(
        async_nats::connect(crate::nats_url())
            .await
            .expect("nats connects"),
    )
}

/// Publishes `deliveries` in order onto the streams of `namespace` (created if need be), as
/// the producers' relays do (`Nats-Msg-Id` header, one subject per event type), over one
/// connection with the acknowledgements awaited in batches.
pub async fn publish(namespace: &str, deliveries: &[Delivery]) -> Published {
    let js = connect().await;
    let mut domains: Vec<&str> = deliveries
        .iter()
        .map(|d| d.envelope.source.as_str())
        .collect();
    domains.sort_unstable();
    domains.dedup();
    for domain in domains {
        mercato_kernel::events::stream::ensure_stream(&js, namespace, domain)
            .await
            .expect("stream");
    }
    let mut deduplicated = 0;
    for batch in deliveries.chunks(256) {
        let mut acks = Vec::with_capacity(batch.len());
        for d in batch {
            let subject =
                mercato_kernel::events::event_subject(&d.envelope.r#type).expect("a mercato event");
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", d.msg_id.as_str());
            let ack = js
                .publish_with_headers(
                    format!("{namespace}.{subject}"),
                    headers,
                    d.envelope.encode_to_vec().into(),
                )
                .await
                .expect("publish");
            acks.push(ack);
        }
        for ack in acks {
            if ack.await.expect("acknowledged").duplicate {
                deduplicated += 1;
            }
        }
    }
    Published {
        sent: deliveries.len(),
        deduplicated,
    }
}

/// The durable consumer name the kernel gives `service`.
fn durable(service: &str) -> String {
    service.replace(['.', '*', '>', ' '], "_")
}

/// Waits (up to 30 s) until `service`'s durable consumer of every stream of `domains` in
/// `namespace` has pull requests from at least `pullers` followers waiting: every replica is
/// then ready to take its share of what is published next.
pub async fn wait_for_pullers(namespace: &str, service: &str, domains: &[&str], pullers: usize) {
    let js = connect().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for domain in domains {
        let name = mercato_kernel::events::stream_name(namespace, domain);
        loop {
            let waiting = match js.get_stream(&name).await {
                Ok(stream) => stream
                    .consumer_info(durable(service))
                    .await
                    .map_or(0, |info| info.num_waiting),
                Err(_) => 0,
            };
            if waiting >= pullers {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{service} has {waiting} of {pullers} pull requests waiting on {name}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits (up to `within`) until `service`'s durable consumer of every stream of `domains`
/// in `namespace` has acknowledged every message of its stream: nothing pending, nothing in
/// flight, the acknowledgement floor at the stream's last message. Every effect of every
/// event is then committed, and its after-commit work (cache, live feed) done, since the
/// consumer acknowledges only after both.
pub async fn wait_until_consumed(
    namespace: &str,
    service: &str,
    domains: &[&str],
    within: Duration,
) {
    let js = connect().await;
    let deadline = tokio::time::Instant::now() + within;
    for domain in domains {
        let name = mercato_kernel::events::stream_name(namespace, domain);
        loop {
            let stream = js.get_stream(&name).await.expect("stream");
            let last = stream
                .get_info()
                .await
                .expect("stream info")
                .state
                .last_sequence;
            let info = stream
                .consumer_info(durable(service))
                .await
                .expect("consumer info");
            if info.num_pending == 0
                && info.num_ack_pending == 0
                && info.ack_floor.stream_sequence >= last
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{service} did not consume {name} within {within:?}: {} of {last} acknowledged, \
                 {} pending, {} in flight",
                info.ack_floor.stream_sequence,
                info.num_pending,
                info.num_ack_pending
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// How many dead letters `namespace` holds (0 when its dead-letter stream does not exist).
pub async fn dead_letters(namespace: &str) -> u64 {
    let js = connect().await;
    match js
        .get_stream(mercato_kernel::events::stream_name(namespace, "dlq"))
        .await
    {
        Ok(stream) => stream.get_info().await.map_or(0, |i| i.state.messages),
        Err(_) => 0,
    }
}

/// Deletes the streams of `domains` and the dead-letter stream of `namespace`.
pub async fn delete_streams(namespace: &str, domains: &[&str]) {
    let js = connect().await;
    for domain in domains.iter().copied().chain(["dlq"]) {
        let _ = js
            .delete_stream(mercato_kernel::events::stream_name(namespace, domain))
            .await;
    }
}

/// Replicas of one projecting service on one database and one namespace (so one durable
/// consumer per stream, shared), verifying tokens of a given identity.
pub struct Replicas {
    /// The service's name (durable consumer, database prefix).
    pub service: String,
    /// The namespace of its streams: its own, not the identity's (whose UserRegistered events
    /// would otherwise mix with the history).
    pub namespace: String,
    /// The database they share.
    pub database: TestDatabase,
    /// The environment each was started with.
    pub env: HashMap<String, String>,
    /// The replicas.
    pub running: Vec<RunningService>,
}

impl Replicas {
    /// Starts `n` replicas of `service` with `start`, one after the other, on a fresh
    /// database and namespace. Failed events are retried after 50 ms (doubling), 5 times.
    pub async fn start<F, Fut, E>(
        service: &str,
        identity: &TestIdentity,
        n: usize,
        start: F,
    ) -> Self
    where
        F: Fn(ServiceConfig) -> Fut,
        Fut: std::future::Future<Output = Result<RunningService, E>>,
        E: std::fmt::Debug,
    {
        let database = TestDatabase::new(service);
        let namespace = format!("t{}", crate::unique_id());
        let mut env = crate::service_env(service, &database, &namespace);
        env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
        env.insert("MERCATO_EVENT_MAX_ATTEMPTS".into(), "5".into());
        env.insert("MERCATO_EVENT_BACKOFF_MS".into(), "50".into());
        let config = ServiceConfig::from_source(service, &env).expect("service config");
        let mut running = Vec::with_capacity(n);
        for _ in 0..n {
            running.push(start(config.clone()).await.expect("replica starts"));
        }
        Self {
            service: service.to_owned(),
            namespace,
            database,
            env,
            running,
        }
    }

    /// Publishes `deliveries` once every replica is pulling from every stream of `domains`,
    /// and returns when all of it has been acknowledged (at most `within`), with no dead
    /// letter.
    pub async fn consume(
        &self,
        domains: &[&str],
        deliveries: &[Delivery],
        within: Duration,
    ) -> Published {
        wait_for_pullers(&self.namespace, &self.service, domains, self.running.len()).await;
        let published = publish(&self.namespace, deliveries).await;
        wait_until_consumed(&self.namespace, &self.service, domains, within).await;
        assert_eq!(
            dead_letters(&self.namespace).await,
            0,
            "{} replicas of {} dead-lettered events",
            self.running.len(),
            self.service
        );
        published
    }

    /// The gRPC address of replica `i`.
    pub fn addr(&self, i: usize) -> std::net::SocketAddr {
        self.running[i].grpc_addr
    }

    /// Stops every replica and deletes the streams of `domains`.
    pub async fn stop(self, domains: &[&str]) {
        for replica in self.running {
            replica.stop().await.expect("replica stops");
        }
        delete_streams(&self.namespace, domains).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_history_and_deliveries() {
        let plan = Plan {
            orders: 50,
            ..Plan::default()
        };
        let a = History::generate(7, &plan, &[]);
        let b = History::generate(7, &plan, &[]);
        assert_eq!(a.events, b.events);
        let domains = ["order", "payment"];
        let (da, db) = (a.deliveries(&domains), b.deliveries(&domains));
        assert_eq!(
            da.iter().map(|d| &d.msg_id).collect::<Vec<_>>(),
            db.iter().map(|d| &d.msg_id).collect::<Vec<_>>()
        );
        let c = History::generate(8, &plan, &[]);
        assert_ne!(a.events, c.events);
    }

    #[test]
    fn deliveries_hold_every_event_of_the_domains_some_twice_and_some_out_of_order() {
        let history = History::generate(7, &Plan::default(), &[]);
        let deliveries = history.deliveries(&["order"]);
        let orders: Vec<&Envelope> = history
            .events
            .iter()
            .filter(|e| e.source == "order")
            .collect();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for d in &deliveries {
            assert_eq!(d.envelope.source, "order");
            *seen.entry(d.envelope.id.as_str()).or_default() += 1;
        }
        assert_eq!(seen.len(), orders.len());
        let twice = seen.values().filter(|&&n| n > 1).count();
        assert!(twice > orders.len() / 20, "{twice} duplicates");
        // Some order has a later version published before an earlier one.
        let mut last_version: HashMap<&str, i64> = HashMap::new();
        let mut reordered = 0;
        for d in &deliveries {
            let version = version_of(&d.envelope);
            let last = last_version.entry(d.envelope.subject.as_str()).or_default();
            if version < *last {
                reordered += 1;
            }
            *last = (*last).max(version);
        }
        assert!(reordered > 10, "{reordered} events behind a later one");
    }

    fn version_of(e: &Envelope) -> i64 {
        let bytes = e.payload.as_slice();
        match e.r#type.as_str() {
            "mercato.order.v1.OrderPlaced" => OrderPlaced::decode(bytes).unwrap().version,
            "mercato.order.v1.OrderConfirmed" => OrderConfirmed::decode(bytes).unwrap().version,
            "mercato.order.v1.OrderShipped" => OrderShipped::decode(bytes).unwrap().version,
            "mercato.order.v1.OrderCancelled" => OrderCancelled::decode(bytes).unwrap().version,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn fates_tell_their_status_and_version() {
        let history = History::generate(7, &Plan::default(), &[]);
        for o in &history.orders {
            let events = history.events.iter().filter(|e| e.subject == o.id).count();
            assert_eq!(events as i64, o.fate.version(), "{:?}", o.fate);
            let refunded = o.refunds.iter().map(|r| r.amount_cents).sum::<i64>();
            assert!(refunded <= o.total_cents());
            let fully = o.refunds.last().is_some_and(|r| r.fully);
            assert_eq!(fully, refunded == o.total_cents() && refunded > 0);
        }
    }
}
