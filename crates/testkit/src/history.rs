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
//!
//! `story` holds what happened, `rng` the generator, `feed` the publication and the replicas.

mod feed;
mod rng;
mod story;

pub use feed::{
    Delivery, Published, Replicas, dead_letters, delete_streams, publish, wait_for_pullers,
    wait_until_consumed,
};
pub use rng::{DEFAULT_SEED, Rng, seed};
pub use story::{Customer, Fate, Instant, OrderStory, Product, Refund, eur};

use std::collections::BTreeMap;

use mercato::pb::events::v1::Envelope;
use mercato::pb::identity::v1::UserRegistered;
use mercato::pb::order::v1::{OrderLine, OrderStatus, ShippingAddress};
use mercato::pb::payment::v1::{
    CardBrand, CardSummary, PaymentCaptured, PaymentFailed, PaymentFailureReason, PaymentRefunded,
};

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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use mercato::pb::order::v1::{OrderCancelled, OrderConfirmed, OrderPlaced, OrderShipped};
    use prost::Message as _;

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
