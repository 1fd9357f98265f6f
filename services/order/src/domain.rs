//! What an order is made of, and the rules of a valid PlaceOrder request, free of I/O.

use std::collections::HashSet;

use mercato::pb::catalog::v1::Product;
use mercato::pb::order::v1 as pb;
use mercato::pb::payment::v1::Card;
use mercato_kernel::error::FieldViolations;
use mercato_kernel::money::Amount;
use mercato_kernel::validate::{self, IDEMPOTENCY_KEY, MAX_ORDER_LINES, Text};
use sha2::{Digest as _, Sha256};

/// Longest cancellation reason, in characters: the longest refund reason the payment service
/// takes, as the reason is passed on to the refund.
pub const MAX_CANCEL_REASON_CHARS: usize = 500;

/// Where an order stands (the `status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The saga is running.
    Pending,
    /// Paid and stock committed.
    Confirmed,
    /// Ended without a sale; everything taken was given back.
    Cancelled,
    /// Handed to the carrier.
    Shipped,
}

impl Status {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
            Self::Shipped => "shipped",
        }
    }

    /// From the column value.
    pub fn parse(raw: &str) -> Result<Self, UnknownValue> {
        Ok(match raw {
            "pending" => Self::Pending,
            "confirmed" => Self::Confirmed,
            "cancelled" => Self::Cancelled,
            "shipped" => Self::Shipped,
            _ => return Err(UnknownValue::Status(raw.to_owned())),
        })
    }

    /// The proto enum.
    pub fn to_proto(self) -> pb::OrderStatus {
        match self {
            Self::Pending => pb::OrderStatus::Pending,
            Self::Confirmed => pb::OrderStatus::Confirmed,
            Self::Cancelled => pb::OrderStatus::Cancelled,
            Self::Shipped => pb::OrderStatus::Shipped,
        }
    }
}

/// The saga's next step (the `saga_step` column). Forward steps run in this order; any
/// failure switches to `Compensate`, which gives back whatever was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Reserve the stock of every line.
    Reserve,
    /// Redeem the coupon.
    Redeem,
    /// Charge the card.
    Charge,
    /// Turn the reservation into a sale.
    Commit,
    /// Refund, release the coupon and the stock, then cancel.
    Compensate,
    /// Nothing left to do.
    Done,
}

impl Step {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserve => "reserve",
            Self::Redeem => "redeem",
            Self::Charge => "charge",
            Self::Commit => "commit",
            Self::Compensate => "compensate",
            Self::Done => "done",
        }
    }

    /// From the column value.
    pub fn parse(raw: &str) -> Result<Self, UnknownValue> {
        Ok(match raw {
            "reserve" => Self::Reserve,
            "redeem" => Self::Redeem,
            "charge" => Self::Charge,
            "commit" => Self::Commit,
            "compensate" => Self::Compensate,
            "done" => Self::Done,
            _ => return Err(UnknownValue::Step(raw.to_owned())),
        })
    }
}

/// A stored status or saga step that names none. The table's CHECK constraints rule such
/// values out, so one is an error to report, never a value to guess: an unknown step read
/// as `Done` would silently stop a saga.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownValue {
    /// The `status` column.
    #[error("unknown order status {0:?}")]
    Status(String),
    /// The `saga_step` column.
    #[error("unknown saga step {0:?}")]
    Step(String),
}

/// Read from the `status` column.
impl TryFrom<String> for Status {
    type Error = UnknownValue;

    fn try_from(raw: String) -> Result<Self, UnknownValue> {
        Self::parse(&raw)
    }
}

/// Read from the `saga_step` column.
impl TryFrom<String> for Step {
    type Error = UnknownValue;

    fn try_from(raw: String) -> Result<Self, UnknownValue> {
        Self::parse(&raw)
    }
}

/// One requested line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Catalog product id: a UUID in canonical form (lower-case, hyphenated), however the
    /// client spelled it.
    pub product_id: String,
    /// Units, 1..=99.
    pub quantity: i32,
}

/// A validated PlaceOrder request.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// What to buy, in request order.
    pub items: Vec<Item>,
    /// Upper-case coupon code, if any.
    pub coupon_code: Option<String>,
    /// Where to deliver.
    pub address: pb::ShippingAddress,
    /// The card; kept in memory only, never stored by the order service.
    pub card: Card,
    /// The client's key for this checkout.
    pub idempotency_key: String,
}

/// The items of a PlaceOrder request, each product once, or the violations they add to `v`.
fn parse_items(v: &mut FieldViolations, items: &[pb::OrderItem]) -> Vec<Item> {
    validate::order_lines(v, "items", items.len());
    let mut seen = HashSet::new();
    let mut parsed = Vec::with_capacity(items.len().min(MAX_ORDER_LINES));
    for (i, item) in items.iter().enumerate() {
        let field = format!("items[{i}].product_id");
        let id = validate::uuid(v, &field, &item.product_id);
        if let Some(id) = id
            && !seen.insert(id)
        {
            v.add(
                field,
                "appears more than once; use one item with the total quantity",
            );
        }
        validate::line_quantity(v, &format!("items[{i}].quantity"), item.quantity);
        if let Some(id) = id {
            parsed.push(Item {
                product_id: id.to_string(),
                quantity: item.quantity,
            });
        }
    }
    parsed
}

/// Checks a CancelOrder `reason`: optional text of up to [`MAX_CANCEL_REASON_CHARS`]
/// characters, on several lines. The payment service refunds with this reason under the same
/// rule, so a reason accepted here can never be refused there (a compensation that would
/// retry forever).
pub fn parse_cancel_reason(raw: &str) -> Result<(), FieldViolations> {
    let mut v = FieldViolations::new();
    if validate::text(
        &mut v,
        "reason",
        raw,
        Text::multi_line(MAX_CANCEL_REASON_CHARS),
    ) {
        Ok(())
    } else {
        Err(v)
    }
}

impl NewOrder {
    /// Validates a PlaceOrder request, collecting every violation.
    pub fn parse(request: pb::PlaceOrderRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let items = parse_items(&mut v, &request.items);
        let coupon_code =
            validate::optional_coupon_code(&mut v, "coupon_code", &request.coupon_code);
        validate::card(&mut v, "card", request.card.as_ref());
        validate::address(
            &mut v,
            "shipping_address",
            request.shipping_address.as_ref(),
        );
        validate::text(
            &mut v,
            "idempotency_key",
            &request.idempotency_key,
            IDEMPOTENCY_KEY,
        );
        match (request.card, request.shipping_address) {
            (Some(card), Some(address)) if v.is_empty() => Ok(Self {
                items,
                coupon_code: coupon_code.map(validate::CouponCode::into_string),
                address,
                card,
                idempotency_key: request.idempotency_key,
            }),
            _ => Err(v),
        }
    }

    /// Fingerprint of what was asked for (not of the card), to recognise a reused key.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for item in &self.items {
            hash.update(item.product_id.as_bytes());
            hash.update(item.quantity.to_be_bytes());
        }
        hash.update([0]);
        hash.update(self.coupon_code.as_deref().unwrap_or("").as_bytes());
        for part in [
            &self.address.name,
            &self.address.line1,
            &self.address.line2,
            &self.address.city,
            &self.address.postal_code,
            &self.address.country,
        ] {
            hash.update([0]);
            hash.update(part.as_bytes());
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A line priced from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    /// Catalog product id.
    pub product_id: String,
    /// The product's name at the time of the order.
    pub name: String,
    /// Units.
    pub quantity: i32,
    /// Price of one unit, in nano-units of the order's currency.
    pub unit_price_nanos: i64,
}

/// An order priced from the catalog: one currency, its lines, their subtotal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedOrder {
    /// The currency every line is priced in.
    pub currency: String,
    /// The requested items, in request order, with the catalog's names and prices.
    pub lines: Vec<PricedLine>,
    /// Sum of the line totals, in nano-units of `currency`.
    pub subtotal_nanos: i64,
}

/// What is wrong with one requested item, by its index in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemProblem {
    /// The catalog does not know the product.
    Unknown {
        /// Index of the item.
        index: usize,
    },
    /// The product is priced in another currency than the items before it.
    OtherCurrency {
        /// Index of the item.
        index: usize,
        /// The product's currency.
        currency: String,
        /// The currency of the order's first priced item.
        order_currency: String,
    },
}

/// Why an order could not be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// Items the buyer can fix: unknown products, or products of another currency.
    #[error("{} item(s) cannot be priced", .0.len())]
    Items(Vec<ItemProblem>),
    /// No item at all to price.
    #[error("no items")]
    NoItems,
    /// The catalog's price of a product is not a positive amount: the catalog's fault.
    #[error("catalog price of {product_id} unusable")]
    CatalogPrice {
        /// The product.
        product_id: String,
    },
    /// One unit's price does not fit the ledger's range.
    #[error("the price of items[{index}] is too large")]
    UnitPriceTooLarge {
        /// Index of the item.
        index: usize,
    },
    /// The total does not fit the ledger's range.
    #[error("the order total is too large")]
    TooLarge,
}

/// Prices `items` with the catalog's `products` (found by id, case-insensitively): names and
/// prices are never taken from the client. Every item the buyer can fix is reported at once.
pub fn price(items: &[Item], products: &[Product]) -> Result<PricedOrder, PricingError> {
    let mut problems = Vec::new();
    let mut lines = Vec::with_capacity(items.len());
    let mut currency: Option<String> = None;
    for (index, item) in items.iter().enumerate() {
        let Some(product) = products
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(&item.product_id))
        else {
            problems.push(ItemProblem::Unknown { index });
            continue;
        };
        let price = product
            .price
            .as_ref()
            .and_then(|p| Amount::parse_positive(p).ok())
            .ok_or_else(|| PricingError::CatalogPrice {
                product_id: product.id.clone(),
            })?;
        match &currency {
            None => currency = Some(price.currency().to_owned()),
            Some(c) if c != price.currency() => problems.push(ItemProblem::OtherCurrency {
                index,
                currency: price.currency().to_owned(),
                order_currency: c.clone(),
            }),
            Some(_) => {}
        }
        lines.push(PricedLine {
            product_id: item.product_id.clone(),
            name: product.name.clone(),
            quantity: item.quantity,
            unit_price_nanos: i64::try_from(price.total_nanos())
                .map_err(|_| PricingError::UnitPriceTooLarge { index })?,
        });
    }
    if !problems.is_empty() {
        return Err(PricingError::Items(problems));
    }
    let currency = currency.ok_or(PricingError::NoItems)?;
    let subtotal_nanos = subtotal_nanos(&lines)?;
    Ok(PricedOrder {
        currency,
        lines,
        subtotal_nanos,
    })
}

/// Subtotal in nano-units of the lines' common currency.
pub fn subtotal_nanos(lines: &[PricedLine]) -> Result<i64, PricingError> {
    lines.iter().try_fold(0i64, |sum, line| {
        line.unit_price_nanos
            .checked_mul(i64::from(line.quantity))
            .and_then(|total| sum.checked_add(total))
            .ok_or(PricingError::TooLarge)
    })
}

/// What a customer reads when a card is refused, by `PaymentFailureReason`.
pub fn payment_failure_text(
    reason: mercato::pb::payment::v1::PaymentFailureReason,
) -> &'static str {
    use mercato::pb::payment::v1::PaymentFailureReason as R;
    match reason {
        R::InsufficientFunds => "the card was declined for insufficient funds",
        R::ExpiredCard => "the card has expired",
        R::IncorrectCvc => "the card's security code is incorrect",
        R::InvalidCard => "the card number is not valid",
        R::ProcessingError => "the payment provider failed; please try again",
        R::Declined | R::Unspecified => "the card was declined",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> Card {
        Card {
            number: "4242 4242 4242 4242".into(),
            exp_month: 12,
            exp_year: 2099,
            cvc: "123".into(),
            holder_name: "Ada Lovelace".into(),
        }
    }

    fn address() -> pb::ShippingAddress {
        pb::ShippingAddress {
            name: "Ada Lovelace".into(),
            line1: "1 Analytical Way".into(),
            line2: String::new(),
            city: "London".into(),
            postal_code: "N1 9GU".into(),
            country: "GB".into(),
        }
    }

    fn request(items: Vec<(&str, i32)>) -> pb::PlaceOrderRequest {
        pb::PlaceOrderRequest {
            items: items
                .into_iter()
                .map(|(id, q)| pb::OrderItem {
                    product_id: id.into(),
                    quantity: q,
                })
                .collect(),
            coupon_code: "spring-10".into(),
            card: Some(card()),
            shipping_address: Some(address()),
            idempotency_key: "k-1".into(),
        }
    }

    const P1: &str = "0190a3c1-1c2d-7e3f-8a4b-5c6d7e8f9a0b";
    const P2: &str = "0190a3c1-1c2d-7e3f-8a4b-5c6d7e8f9a0c";

    #[test]
    fn a_valid_request_parses_and_normalizes() {
        let order = NewOrder::parse(request(vec![(P1, 2), (P2, 1)])).unwrap();
        assert_eq!(order.coupon_code.as_deref(), Some("SPRING-10"));
        assert_eq!(order.items.len(), 2);
    }

    #[test]
    fn every_violation_is_reported_with_its_path() {
        let mut req = request(vec![(P1, 0), ("nope", 100), (P1, 1)]);
        req.coupon_code = "bad code!".into();
        req.card = Some(Card {
            number: "4242424242424241".into(),
            ..card()
        });
        req.shipping_address = Some(pb::ShippingAddress {
            country: "Germany".into(),
            ..address()
        });
        req.idempotency_key = String::new();
        let fields: Vec<String> = NewOrder::parse(req)
            .unwrap_err()
            .into_status()
            .message()
            .split(';')
            .map(str::to_owned)
            .collect();
        let text = fields.join(";");
        for field in [
            "items[0].quantity",
            "items[1].product_id",
            "items[1].quantity",
            "items[2].product_id",
            "coupon_code",
            "card.number",
            "shipping_address.country",
            "idempotency_key",
        ] {
            assert!(text.contains(field), "{field} missing from {text}");
        }
    }

    #[test]
    fn the_fingerprint_ignores_the_card_but_not_the_content() {
        let a = NewOrder::parse(request(vec![(P1, 2)])).unwrap();
        let mut other_card = request(vec![(P1, 2)]);
        other_card.card = Some(Card {
            cvc: "999".into(),
            ..card()
        });
        let b = NewOrder::parse(other_card).unwrap();
        let c = NewOrder::parse(request(vec![(P1, 3)])).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn subtotals_are_exact_and_overflow_is_caught() {
        let line = |nanos, quantity| PricedLine {
            product_id: P1.into(),
            name: "x".into(),
            quantity,
            unit_price_nanos: nanos,
        };
        assert_eq!(
            subtotal_nanos(&[line(1_990_000_000, 3), line(500_000_000, 1)]),
            Ok(6_470_000_000)
        );
        assert_eq!(
            subtotal_nanos(&[line(i64::MAX / 2, 3)]),
            Err(PricingError::TooLarge)
        );
    }

    fn product(id: &str, name: &str, currency: &str, units: i64) -> Product {
        Product {
            id: id.to_ascii_uppercase(),
            name: name.into(),
            price: Some(mercato::pb::r#type::v1::Money {
                currency_code: currency.into(),
                units,
                nanos: 0,
            }),
            ..Product::default()
        }
    }

    fn items(ids: &[(&str, i32)]) -> Vec<Item> {
        ids.iter()
            .map(|(id, quantity)| Item {
                product_id: (*id).into(),
                quantity: *quantity,
            })
            .collect()
    }

    #[test]
    fn every_step_and_status_reads_back_from_its_column_value() {
        for step in [
            Step::Reserve,
            Step::Redeem,
            Step::Charge,
            Step::Commit,
            Step::Compensate,
            Step::Done,
        ] {
            assert_eq!(Step::parse(step.as_str()), Ok(step));
        }
        for status in [
            Status::Pending,
            Status::Confirmed,
            Status::Cancelled,
            Status::Shipped,
        ] {
            assert_eq!(Status::parse(status.as_str()), Ok(status));
        }
    }

    #[test]
    fn an_unknown_step_is_an_error_not_done() {
        assert_eq!(
            Step::parse("paused"),
            Err(UnknownValue::Step("paused".into()))
        );
        assert_eq!(Step::parse(""), Err(UnknownValue::Step(String::new())));
        assert_eq!(
            Step::try_from("DONE".to_owned()),
            Err(UnknownValue::Step("DONE".into()))
        );
        assert_eq!(
            Status::parse("refunded"),
            Err(UnknownValue::Status("refunded".into()))
        );
    }

    #[test]
    fn an_order_is_priced_from_the_catalog_in_request_order() {
        let catalog = [
            product(P2, "Teapot", "EUR", 12),
            product(P1, "Mug", "EUR", 10),
        ];
        let priced = price(&items(&[(P1, 2), (P2, 1)]), &catalog).unwrap();
        assert_eq!(priced.currency, "EUR");
        assert_eq!(priced.subtotal_nanos, 32_000_000_000);
        let names: Vec<_> = priced.lines.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["Mug", "Teapot"]);
        assert_eq!(
            priced.lines[0].product_id, P1,
            "the request's id, not the catalog's"
        );
    }

    #[test]
    fn every_item_the_buyer_can_fix_is_reported_at_once() {
        let catalog = [
            product(P1, "Mug", "EUR", 10),
            product(P2, "Teapot", "USD", 12),
        ];
        let unknown = "0190a3c1-1c2d-7e3f-8a4b-5c6d7e8f9a0d";
        assert_eq!(
            price(&items(&[(P1, 1), (unknown, 1), (P2, 1)]), &catalog),
            Err(PricingError::Items(vec![
                ItemProblem::Unknown { index: 1 },
                ItemProblem::OtherCurrency {
                    index: 2,
                    currency: "USD".into(),
                    order_currency: "EUR".into(),
                },
            ]))
        );
    }

    #[test]
    fn an_unusable_catalog_price_is_the_catalogs_fault() {
        let catalog = [product(P1, "Mug", "EUR", 0)];
        assert_eq!(
            price(&items(&[(P1, 1)]), &catalog),
            Err(PricingError::CatalogPrice {
                product_id: P1.to_ascii_uppercase()
            })
        );
        assert_eq!(price(&[], &catalog), Err(PricingError::NoItems));
    }
}
