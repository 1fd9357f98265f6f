//! What a user is told about an event: the pure part of the projection, from a decoded event
//! to a notification's words. No I/O here, so every wording is unit-tested.

use chrono::{DateTime, Utc};
use mercato::order_events::OrderEvent;
use mercato::pb::identity::v1::UserRegistered;
use mercato::pb::notification::v1::NotificationKind;
use mercato::pb::order::v1::{
    OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, OrderShipped, OrderSnapshot,
    OrderStatus, ShippingAddress,
};
use mercato::pb::payment::v1::{
    CardBrand, CardSummary, PaymentFailed, PaymentFailureReason, PaymentRefunded,
};
use mercato::pb::r#type::v1::Money;

/// Longest title, in characters (the contract's limit).
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest body, in characters (the contract's limit).
pub const MAX_BODY_CHARS: usize = 2000;
/// Lines listed in a body; the rest are summarised, so a 50-line order stays readable.
const MAX_LISTED_LINES: usize = 10;

/// The events that may concern a user, decoded.
#[derive(Debug, Clone)]
pub enum Event {
    /// An account was created.
    Registered(UserRegistered),
    /// An order was placed.
    Placed(OrderNews<OrderPlaced>),
    /// An order was confirmed.
    Confirmed(OrderNews<OrderConfirmed>),
    /// An order was cancelled.
    Cancelled(OrderNews<OrderCancelled>),
    /// An order was shipped.
    Shipped(OrderNews<OrderShipped>),
    /// A card was refused.
    PaymentFailed(PaymentFailed),
    /// Money was given back.
    Refunded(PaymentRefunded),
}

/// An order event with the order it carries, read once (see [`mercato::order_events`]).
#[derive(Debug, Clone)]
pub struct OrderNews<E> {
    /// The order as of the event.
    pub order: OrderSnapshot,
    /// What the event says beyond the order (when, why, the tracking number).
    pub event: E,
}

impl<E: OrderEvent> OrderNews<E> {
    /// The event with its order; an error when neither its snapshot nor its deprecated
    /// fields spell one.
    pub fn new(event: E) -> Result<Self, prost::DecodeError> {
        let order = event.order()?.into_owned();
        Ok(Self { order, event })
    }
}

/// A notification's content, before it gets its id and is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The recipient.
    pub user_id: String,
    /// What it is about.
    pub kind: NotificationKind,
    /// Headline, at most [`MAX_TITLE_CHARS`].
    pub title: String,
    /// Text, at most [`MAX_BODY_CHARS`].
    pub body: String,
    /// The order it is about; empty when none.
    pub order_id: String,
    /// When it happened according to the event itself, when the event says.
    pub happened_at: Option<DateTime<Utc>>,
}

impl Draft {
    fn new(
        user_id: &str,
        kind: NotificationKind,
        title: String,
        body: String,
        order_id: &str,
        happened_at: Option<&prost_types::Timestamp>,
    ) -> Self {
        Self {
            user_id: user_id.to_owned(),
            kind,
            title: clip(&title, MAX_TITLE_CHARS),
            body: clip(&body, MAX_BODY_CHARS),
            order_id: order_id.to_owned(),
            happened_at: happened_at.and_then(to_datetime),
        }
    }
}

/// The notification an event deserves, if any (a captured payment is told by the order's
/// confirmation that follows it, so it writes none).
pub fn draft(event: &Event) -> Option<Draft> {
    Some(match event {
        Event::Registered(e) => welcome(e),
        Event::Placed(e) => placed(e),
        Event::Confirmed(e) => confirmed(e),
        Event::Cancelled(e) => cancelled(e),
        Event::Shipped(e) => shipped(e),
        Event::PaymentFailed(e) => payment_failed(e),
        Event::Refunded(e) => refunded(e),
    })
}

fn welcome(e: &UserRegistered) -> Draft {
    let name = e.display_name.trim();
    let (title, greeting) = if name.is_empty() {
        ("Welcome to Mercato".to_owned(), "Hi".to_owned())
    } else {
        (format!("Welcome to Mercato, {name}"), format!("Hi {name}"))
    };
    let account = if e.email.is_empty() {
        "Your Mercato account is ready.".to_owned()
    } else {
        format!("Your Mercato account {} is ready.", e.email)
    };
    let body = format!(
        "{greeting}, welcome to Mercato! {account} Browse the catalog, fill your basket and \
         check out whenever you like; we will keep you posted here about every order."
    );
    Draft::new(
        &e.user_id,
        NotificationKind::Welcome,
        title,
        body,
        "",
        e.create_time.as_ref(),
    )
}

fn placed(news: &OrderNews<OrderPlaced>) -> Draft {
    let o = &news.order;
    let body = format!(
        "We received your order {}: {}, total {}. We are reserving your items and charging \
         your card, and will tell you as soon as the order is confirmed.{}",
        o.order_id,
        items(&o.lines),
        amount(o.total.as_ref()),
        line_list(&o.lines),
    );
    Draft::new(
        &o.user_id,
        NotificationKind::OrderPlaced,
        "Order received".into(),
        body,
        &o.order_id,
        o.place_time.as_ref(),
    )
}

fn confirmed(news: &OrderNews<OrderConfirmed>) -> Draft {
    let (o, e) = (&news.order, &news.event);
    let arriving = e
        .shipping_address
        .as_ref()
        .map(|a| format!(", arriving at {}", short_address(a)))
        .unwrap_or_default();
    let body = format!(
        "Your order {} is confirmed: {}, total {}{arriving}.{} We will tell you as soon as it \
         ships.{}",
        o.order_id,
        items(&o.lines),
        amount(o.total.as_ref()),
        coupon_saving(&o.coupon_code, o.discount.as_ref()),
        line_list(&o.lines),
    );
    Draft::new(
        &o.user_id,
        NotificationKind::OrderConfirmed,
        "Order confirmed".into(),
        body,
        &o.order_id,
        e.confirm_time.as_ref(),
    )
}

fn cancelled(news: &OrderNews<OrderCancelled>) -> Draft {
    let (o, e) = (&news.order, &news.event);
    let reason = e.reason.trim();
    let what = if !e.cancelled_by.is_empty() && e.cancelled_by == o.user_id {
        if reason.is_empty() {
            format!("You cancelled order {}.", o.order_id)
        } else {
            format!("You cancelled order {}: {}", o.order_id, sentence(reason))
        }
    } else if reason.is_empty() {
        format!("Order {} was cancelled.", o.order_id)
    } else {
        format!("Order {} was cancelled: {}", o.order_id, sentence(reason))
    };
    // Only a confirmed order had its payment kept; a pending one never stays charged.
    let money = if e.previous_status == OrderStatus::Confirmed as i32 {
        format!(
            "The {} you paid will be refunded to your card.",
            amount(o.total.as_ref())
        )
    } else {
        "Nothing was charged.".to_owned()
    };
    Draft::new(
        &o.user_id,
        NotificationKind::OrderCancelled,
        "Order cancelled".into(),
        format!("{what} {money}"),
        &o.order_id,
        e.cancel_time.as_ref(),
    )
}

fn shipped(news: &OrderNews<OrderShipped>) -> Draft {
    let (o, e) = (&news.order, &news.event);
    let tracking = e.tracking_number.trim();
    let headline = if tracking.is_empty() {
        format!("Order {} has shipped.", o.order_id)
    } else {
        format!("Order {} has shipped — tracking {tracking}.", o.order_id)
    };
    let destination = e
        .shipping_address
        .as_ref()
        .map(|a| format!(" on the way to {}", full_address(a)))
        .unwrap_or_default();
    let body = format!(
        "{headline} Your {} (total {}) {} now{destination}.",
        items(&o.lines),
        amount(o.total.as_ref()),
        if item_count(&o.lines) == 1 {
            "is"
        } else {
            "are"
        },
    );
    Draft::new(
        &o.user_id,
        NotificationKind::OrderShipped,
        "Order shipped".into(),
        body,
        &o.order_id,
        e.ship_time.as_ref(),
    )
}

fn payment_failed(e: &PaymentFailed) -> Draft {
    let reason = PaymentFailureReason::try_from(e.failure_reason)
        .unwrap_or(PaymentFailureReason::Unspecified);
    let body = format!(
        "{} was refused for {} on order {}: {}. Nothing was charged.",
        card(e.card.as_ref()),
        amount(e.amount.as_ref()),
        e.order_id,
        failure_reason(reason),
    );
    Draft::new(
        &e.user_id,
        NotificationKind::PaymentFailed,
        "Payment refused".into(),
        body,
        &e.order_id,
        e.fail_time.as_ref(),
    )
}

fn refunded(e: &PaymentRefunded) -> Draft {
    let reason = e.reason.trim();
    let why = if reason.is_empty() {
        ".".to_owned()
    } else {
        format!(": {}", sentence(reason))
    };
    let so_far = if e.fully_refunded {
        "The payment has now been refunded in full.".to_owned()
    } else {
        format!(
            "Refunded so far: {}.",
            amount(e.refunded_amount.as_ref().or(e.amount.as_ref()))
        )
    };
    let body = format!(
        "We refunded {} for order {}{why} {so_far} It may take a few days to show on your \
         statement.",
        amount(e.amount.as_ref()),
        e.order_id,
    );
    Draft::new(
        &e.user_id,
        NotificationKind::PaymentRefunded,
        "Refund issued".into(),
        body,
        &e.order_id,
        e.refund_time.as_ref(),
    )
}

/// Money as people read it: "48.48 EUR"; at least two decimals, more only when the amount
/// has them ("0.125 EUR"); no floating point.
pub fn format_money(money: &Money) -> String {
    const NANOS_PER_UNIT: i128 = 1_000_000_000;
    let total = i128::from(money.units) * NANOS_PER_UNIT + i128::from(money.nanos);
    let sign = if total < 0 { "-" } else { "" };
    let abs = total.unsigned_abs();
    let units = abs / NANOS_PER_UNIT.unsigned_abs();
    let mut fraction = format!("{:09}", abs % NANOS_PER_UNIT.unsigned_abs());
    while fraction.len() > 2 && fraction.ends_with('0') {
        fraction.pop();
    }
    let number = format!("{sign}{units}.{fraction}");
    if money.currency_code.is_empty() {
        number
    } else {
        format!("{number} {}", money.currency_code)
    }
}

fn amount(money: Option<&Money>) -> String {
    money.map_or_else(|| "an unknown amount".to_owned(), format_money)
}

fn item_count(lines: &[OrderLine]) -> i64 {
    lines.iter().map(|l| i64::from(l.quantity.max(0))).sum()
}

/// "1 item", "3 items": units, not lines, as a buyer counts them.
fn items(lines: &[OrderLine]) -> String {
    match item_count(lines) {
        1 => "1 item".to_owned(),
        n => format!("{n} items"),
    }
}

/// The lines, one per row, after a blank line; empty without lines.
fn line_list(lines: &[OrderLine]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n");
    for line in lines.iter().take(MAX_LISTED_LINES) {
        out.push_str(&format!(
            "\n- {} × {}: {}",
            line.quantity,
            line.name,
            amount(line.line_total.as_ref())
        ));
    }
    if lines.len() > MAX_LISTED_LINES {
        out.push_str(&format!("\n- and {} more", lines.len() - MAX_LISTED_LINES));
    }
    out
}

fn coupon_saving(code: &str, discount: Option<&Money>) -> String {
    match discount {
        Some(d) if !code.is_empty() && (d.units != 0 || d.nanos != 0) => {
            format!(" Coupon {code} saved you {}.", format_money(d))
        }
        _ => String::new(),
    }
}

/// "Ada Lovelace, London".
fn short_address(a: &ShippingAddress) -> String {
    join_non_empty(&[&a.name, &a.city])
}

/// "Ada Lovelace, 12 St James's Square, SW1Y 4JH London, GB".
fn full_address(a: &ShippingAddress) -> String {
    let city = join_with(" ", &[&a.postal_code, &a.city]);
    join_non_empty(&[&a.name, &a.line1, &a.line2, &city, &a.country])
}

fn join_non_empty(parts: &[&str]) -> String {
    join_with(", ", parts)
}

fn join_with(separator: &str, parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(separator)
}

/// "Your Visa card ending 4242", or just "Your card" when the event does not say.
fn card(card: Option<&CardSummary>) -> String {
    let Some(card) = card else {
        return "Your card".to_owned();
    };
    let brand = match CardBrand::try_from(card.brand).unwrap_or(CardBrand::Unspecified) {
        CardBrand::Visa => "Visa ",
        CardBrand::Mastercard => "Mastercard ",
        CardBrand::Amex => "American Express ",
        CardBrand::Discover => "Discover ",
        CardBrand::Unspecified => "",
    };
    if card.last4.is_empty() {
        format!("Your {brand}card")
    } else {
        format!("Your {brand}card ending {}", card.last4)
    }
}

fn failure_reason(reason: PaymentFailureReason) -> &'static str {
    use PaymentFailureReason as R;
    match reason {
        R::InsufficientFunds => "the card was declined for insufficient funds",
        R::ExpiredCard => "the card has expired",
        R::IncorrectCvc => "the card's security code is incorrect",
        R::InvalidCard => "the card number is not valid",
        R::ProcessingError => "the payment provider failed; please try again later",
        R::Declined | R::Unspecified => "the card was declined",
    }
}

/// `text` as the end of a sentence: ends with a full stop unless it has its own punctuation.
fn sentence(text: &str) -> String {
    if text.ends_with(['.', '!', '?']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

/// `text` cut to `max` characters (not bytes), marked with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn to_datetime(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    DateTime::from_timestamp(ts.seconds, nanos)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The event as an order event written before snapshots existed: the order in its
    /// deprecated fields (the tests below), or in its snapshot (the last one).
    fn news<E: OrderEvent>(event: E) -> OrderNews<E> {
        OrderNews::new(event).unwrap()
    }

    fn eur(units: i64, nanos: i32) -> Option<Money> {
        Some(Money {
            currency_code: "EUR".into(),
            units,
            nanos,
        })
    }

    fn lines() -> Vec<OrderLine> {
        vec![
            OrderLine {
                name: "Mug".into(),
                quantity: 1,
                line_total: eur(12, 500_000_000),
                ..Default::default()
            },
            OrderLine {
                name: "Tea".into(),
                quantity: 1,
                line_total: eur(35, 980_000_000),
                ..Default::default()
            },
        ]
    }

    fn address() -> Option<ShippingAddress> {
        Some(ShippingAddress {
            name: "Ada Lovelace".into(),
            line1: "12 St James's Square".into(),
            city: "London".into(),
            postal_code: "SW1Y 4JH".into(),
            country: "GB".into(),
            ..Default::default()
        })
    }

    #[test]
    fn money_reads_like_a_price() {
        let m = |units, nanos| Money {
            currency_code: "EUR".into(),
            units,
            nanos,
        };
        assert_eq!(format_money(&m(48, 480_000_000)), "48.48 EUR");
        assert_eq!(format_money(&m(12, 500_000_000)), "12.50 EUR");
        assert_eq!(format_money(&m(7, 0)), "7.00 EUR");
        assert_eq!(format_money(&m(0, 125_000_000)), "0.125 EUR");
        assert_eq!(format_money(&m(0, 0)), "0.00 EUR");
        assert_eq!(format_money(&m(-1, -500_000_000)), "-1.50 EUR");
        assert_eq!(
            format_money(&m(i64::MAX, 999_999_999)),
            "9223372036854775807.999999999 EUR"
        );
    }

    #[test]
    fn a_new_user_is_welcomed_by_name() {
        let d = draft(&Event::Registered(UserRegistered {
            user_id: "u1".into(),
            email: "ada@example.com".into(),
            display_name: "Ada".into(),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
        }))
        .unwrap();
        assert_eq!(d.kind, NotificationKind::Welcome);
        assert_eq!(d.title, "Welcome to Mercato, Ada");
        assert!(d.body.contains("ada@example.com"), "{}", d.body);
        assert_eq!(d.order_id, "");
        assert_eq!(d.happened_at.unwrap().timestamp(), 1_700_000_000);
    }

    #[test]
    fn a_nameless_user_is_still_welcomed() {
        let d = welcome(&UserRegistered {
            user_id: "u1".into(),
            ..Default::default()
        });
        assert_eq!(d.title, "Welcome to Mercato");
        assert!(d.body.starts_with("Hi, welcome"), "{}", d.body);
    }

    #[test]
    fn a_confirmation_says_what_it_costs_and_where_it_goes() {
        let d = confirmed(&news(OrderConfirmed {
            order_id: "0193-abc".into(),
            user_id: "u1".into(),
            lines: lines(),
            total: eur(48, 480_000_000),
            shipping_address: address(),
            ..Default::default()
        }));
        assert_eq!(d.title, "Order confirmed");
        assert!(
            d.body.starts_with(
                "Your order 0193-abc is confirmed: 2 items, total 48.48 EUR, arriving at Ada \
                 Lovelace, London."
            ),
            "{}",
            d.body
        );
        assert!(d.body.contains("- 1 × Tea: 35.98 EUR"), "{}", d.body);
        assert_eq!(d.order_id, "0193-abc");
    }

    #[test]
    fn a_coupon_saving_is_mentioned() {
        let d = confirmed(&news(OrderConfirmed {
            order_id: "o".into(),
            coupon_code: "WELCOME10".into(),
            discount: eur(5, 0),
            ..Default::default()
        }));
        assert!(
            d.body.contains("Coupon WELCOME10 saved you 5.00 EUR."),
            "{}",
            d.body
        );
    }

    #[test]
    fn a_failed_checkout_says_why_and_that_nothing_was_charged() {
        let d = cancelled(&news(OrderCancelled {
            order_id: "o1".into(),
            user_id: "u1".into(),
            previous_status: OrderStatus::Pending as i32,
            reason: "payment failed: the card was declined".into(),
            ..Default::default()
        }));
        assert_eq!(
            d.body,
            "Order o1 was cancelled: payment failed: the card was declined. Nothing was charged."
        );
    }

    #[test]
    fn cancelling_a_confirmed_order_promises_the_refund() {
        let d = cancelled(&news(OrderCancelled {
            order_id: "o1".into(),
            user_id: "u1".into(),
            cancelled_by: "u1".into(),
            previous_status: OrderStatus::Confirmed as i32,
            total: eur(48, 480_000_000),
            ..Default::default()
        }));
        assert_eq!(
            d.body,
            "You cancelled order o1. The 48.48 EUR you paid will be refunded to your card."
        );
    }

    #[test]
    fn a_shipment_gives_the_tracking_number_and_address() {
        let d = shipped(&news(OrderShipped {
            order_id: "o1".into(),
            user_id: "u1".into(),
            lines: lines(),
            total: eur(48, 480_000_000),
            shipping_address: address(),
            tracking_number: "T-123".into(),
            ..Default::default()
        }));
        assert_eq!(
            d.body,
            "Order o1 has shipped — tracking T-123. Your 2 items (total 48.48 EUR) are now on \
             the way to Ada Lovelace, 12 St James's Square, SW1Y 4JH London, GB."
        );
    }

    #[test]
    fn a_refused_card_is_named_with_the_reason() {
        let d = payment_failed(&PaymentFailed {
            order_id: "o1".into(),
            user_id: "u1".into(),
            amount: eur(10, 0),
            failure_reason: PaymentFailureReason::ExpiredCard as i32,
            card: Some(CardSummary {
                brand: CardBrand::Visa as i32,
                last4: "4242".into(),
            }),
            ..Default::default()
        });
        assert_eq!(
            d.body,
            "Your Visa card ending 4242 was refused for 10.00 EUR on order o1: the card has \
             expired. Nothing was charged."
        );
    }

    #[test]
    fn a_partial_refund_tells_the_running_total() {
        let d = refunded(&PaymentRefunded {
            order_id: "o1".into(),
            user_id: "u1".into(),
            amount: eur(5, 0),
            refunded_amount: eur(7, 500_000_000),
            reason: "damaged item".into(),
            ..Default::default()
        });
        assert!(
            d.body.starts_with(
                "We refunded 5.00 EUR for order o1: damaged item. Refunded so far: 7.50 EUR."
            ),
            "{}",
            d.body
        );
    }

    #[test]
    fn long_orders_stay_within_the_limits() {
        let many: Vec<OrderLine> = (0..50)
            .map(|i| OrderLine {
                name: format!("{i}{}", "x".repeat(100)),
                quantity: 99,
                line_total: eur(1, 0),
                ..Default::default()
            })
            .collect();
        let d = placed(&news(OrderPlaced {
            order_id: "o1".into(),
            user_id: "u1".into(),
            lines: many,
            total: eur(50, 0),
            ..Default::default()
        }));
        assert!(d.body.chars().count() <= MAX_BODY_CHARS);
        assert!(d.body.contains("4950 items"), "{}", d.body);
        assert!(d.body.contains("and 40 more"), "{}", d.body);
    }

    #[test]
    fn the_order_is_read_from_the_snapshot() {
        let d = confirmed(&news(OrderConfirmed {
            snapshot: Some(OrderSnapshot {
                order_id: "0193-abc".into(),
                user_id: "u1".into(),
                lines: lines(),
                total: eur(48, 480_000_000),
                shipping_address: address(),
                ..Default::default()
            }),
            ..Default::default()
        }));
        assert_eq!(d.user_id, "u1");
        assert_eq!(d.order_id, "0193-abc");
        assert!(
            d.body
                .starts_with("Your order 0193-abc is confirmed: 2 items, total 48.48 EUR"),
            "{}",
            d.body
        );
    }

    #[test]
    fn clipping_counts_characters_not_bytes() {
        assert_eq!(clip("ééé", 3), "ééé");
        assert_eq!(clip("éééé", 3), "éé…");
    }
}
