//! What a basket is and the rules of each request, free of I/O. Requests are parsed here once
//! into valid values (a canonical product id, a quantity in range, a normalized coupon code);
//! the store and the API only ever see those.

use chrono::{DateTime, Utc};
use mercato::pb::basket::v1 as pb;
use mercato::pb::order::v1::OrderItem;
use mercato_kernel::error::FieldViolations;
use mercato_kernel::money::{Amount, MoneyError};
use mercato_kernel::validate::{self, MAX_LINE_QUANTITY, MAX_ORDER_LINES};
use uuid::Uuid;

/// Most lines a basket holds: the most an order may have, so every basket can be checked out.
pub const MAX_LINES: usize = MAX_ORDER_LINES;
/// Most units of one product in a basket: the most one order line may have.
pub const MAX_QUANTITY: u32 = MAX_LINE_QUANTITY.unsigned_abs();
/// Currency of the zero amounts of a basket without lines.
pub const DEFAULT_CURRENCY: &str = "EUR";

/// A catalog product id in canonical form (lower-case, hyphenated UUID), so that one product
/// is always one basket line however the client spelled its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProductId(String);

impl ProductId {
    /// The canonical id of `raw`, when it is a UUID.
    pub fn parse(raw: &str) -> Option<Self> {
        Uuid::parse_str(raw).ok().map(Self::from)
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Uuid> for ProductId {
    fn from(id: Uuid) -> Self {
        Self(id.to_string())
    }
}

impl std::fmt::Display for ProductId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_product_id(v: &mut FieldViolations, raw: &str) -> Option<ProductId> {
    validate::uuid(v, "product_id", raw).map(ProductId::from)
}

fn parse_quantity(v: &mut FieldViolations, raw: i32, min: u32) -> Option<u32> {
    match u32::try_from(raw) {
        Ok(quantity) if (min..=MAX_QUANTITY).contains(&quantity) => Some(quantity),
        _ => {
            v.add(
                "quantity",
                format!("must be between {min} and {MAX_QUANTITY}"),
            );
            None
        }
    }
}

/// A valid AddItem request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddItem {
    /// The product.
    pub product_id: ProductId,
    /// Units to add, 1..=99.
    pub quantity: u32,
}

impl AddItem {
    /// Parses the request, reporting every problem.
    pub fn parse(request: &pb::AddItemRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let product_id = parse_product_id(&mut v, &request.product_id);
        let quantity = parse_quantity(&mut v, request.quantity, 1);
        match (product_id, quantity) {
            (Some(product_id), Some(quantity)) => Ok(Self {
                product_id,
                quantity,
            }),
            _ => Err(v),
        }
    }
}

/// A valid UpdateItem request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateItem {
    /// The product.
    pub product_id: ProductId,
    /// The new quantity, 0..=99; 0 removes the line.
    pub quantity: u32,
}

impl UpdateItem {
    /// Parses the request, reporting every problem.
    pub fn parse(request: &pb::UpdateItemRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let product_id = parse_product_id(&mut v, &request.product_id);
        let quantity = parse_quantity(&mut v, request.quantity, 0);
        match (product_id, quantity) {
            (Some(product_id), Some(quantity)) => Ok(Self {
                product_id,
                quantity,
            }),
            _ => Err(v),
        }
    }
}

/// The product id of a RemoveItem request.
pub fn parse_remove(request: &pb::RemoveItemRequest) -> Result<ProductId, FieldViolations> {
    let mut v = FieldViolations::new();
    parse_product_id(&mut v, &request.product_id).ok_or(v)
}

/// Why AddItem cannot add to a line that already exists (or would be new).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddRefusal {
    /// The line would exceed [`MAX_QUANTITY`]; it holds `current` units.
    TooMany {
        /// Units already in the line.
        current: u32,
    },
    /// The product is not in the basket and the basket has [`MAX_LINES`] lines.
    Full,
}

impl AddRefusal {
    /// The field violation the client sees.
    pub fn into_violations(self) -> FieldViolations {
        let mut v = FieldViolations::new();
        match self {
            Self::TooMany { current } => {
                let room = MAX_QUANTITY.saturating_sub(current);
                if room == 0 {
                    v.add(
                        "quantity",
                        format!(
                            "the basket already holds {MAX_QUANTITY} units of this product, the most \
                             a line may have; no more fit"
                        ),
                    );
                } else {
                    v.add(
                        "quantity",
                        format!(
                            "a line holds at most {MAX_QUANTITY} units and the basket already holds \
                             {current}: at most {room} more fit"
                        ),
                    );
                }
            }
            Self::Full => v.add(
                "product_id",
                format!("the basket already holds {MAX_LINES} products, the most it may; remove one first"),
            ),
        }
        v
    }
}

/// One product in a basket, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The product.
    pub product_id: ProductId,
    /// Units, 1..=99.
    pub quantity: u32,
}

/// A basket's stored state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// Lines in the order their products were first added.
    pub lines: Vec<Line>,
    /// Upper-case coupon code, if one is set.
    pub coupon_code: Option<String>,
    /// Grows with every change; 0 for a basket never used.
    pub version: u64,
    /// Last change; `None` for a basket never used.
    pub update_time: Option<DateTime<Utc>>,
    /// When the basket is forgotten unless it changes again.
    pub expire_time: Option<DateTime<Utc>>,
}

impl Contents {
    /// Units of `product_id` in the basket (0 when absent).
    pub fn quantity_of(&self, product_id: &ProductId) -> u32 {
        self.lines
            .iter()
            .find(|l| &l.product_id == product_id)
            .map_or(0, |l| l.quantity)
    }

    /// Whether AddItem of `item` would break a limit, judged on this state. The store checks
    /// again atomically; this early check spares a catalog call for a request bound to fail.
    pub fn refuse_add(&self, item: &AddItem) -> Option<AddRefusal> {
        let current = self.quantity_of(&item.product_id);
        if current + item.quantity > MAX_QUANTITY {
            Some(AddRefusal::TooMany { current })
        } else if current == 0 && self.lines.len() >= MAX_LINES {
            Some(AddRefusal::Full)
        } else {
            None
        }
    }

    /// The basket with `product_id` at `quantity` units (added at the end when new): what a
    /// change would leave, to check before storing it.
    pub fn with_quantity(&self, product_id: &ProductId, quantity: u32) -> Contents {
        let mut after = self.clone();
        match after.lines.iter_mut().find(|l| &l.product_id == product_id) {
            Some(line) => line.quantity = quantity,
            None => after.lines.push(Line {
                product_id: product_id.clone(),
                quantity,
            }),
        }
        after
    }

    /// The lines as order items, in basket order.
    pub fn order_items(&self) -> Vec<OrderItem> {
        self.lines
            .iter()
            .map(|l| OrderItem {
                product_id: l.product_id.as_str().to_owned(),
                quantity: i32::try_from(l.quantity).unwrap_or(i32::MAX),
            })
            .collect()
    }
}

/// What ApplyCoupon asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponChange {
    /// Remove the coupon.
    Remove,
    /// Set this upper-case code.
    Set(String),
}

/// Parses ApplyCoupon's code ([`validate::optional_coupon_code`]: trimmed, upper-cased, the
/// discount service's rule); empty removes the coupon.
pub fn parse_coupon(raw: &str) -> Result<CouponChange, FieldViolations> {
    let mut v = FieldViolations::new();
    match validate::optional_coupon_code(&mut v, "coupon_code", raw) {
        Some(code) => Ok(CouponChange::Set(code.into_string())),
        None if v.is_empty() => Ok(CouponChange::Remove),
        None => Err(v),
    }
}

/// A line priced with the catalog's current data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    /// The product.
    pub product_id: ProductId,
    /// Its current name.
    pub name: String,
    /// Its picture, if any.
    pub image_url: String,
    /// Units.
    pub quantity: u32,
    /// Its current price.
    pub unit_price: Amount,
    /// `unit_price × quantity`, computed once, checked.
    line_total: Amount,
}

impl PricedLine {
    /// A line of `quantity` units at `unit_price`; out of range when the line total is more
    /// than a `Money` can carry.
    pub fn new(
        product_id: ProductId,
        name: String,
        image_url: String,
        quantity: u32,
        unit_price: Amount,
    ) -> Result<Self, MoneyError> {
        let line_total = unit_price.times(quantity)?;
        Ok(Self {
            product_id,
            name,
            image_url,
            quantity,
            unit_price,
            line_total,
        })
    }

    /// `unit_price × quantity`.
    pub fn line_total(&self) -> &Amount {
        &self.line_total
    }

    /// The proto message.
    pub fn to_proto(&self) -> pb::BasketLine {
        pb::BasketLine {
            product_id: self.product_id.as_str().to_owned(),
            name: self.name.clone(),
            image_url: self.image_url.clone(),
            quantity: i32::try_from(self.quantity).unwrap_or(i32::MAX),
            unit_price: Some(self.unit_price.to_proto()),
            line_total: Some(self.line_total.to_proto()),
        }
    }
}

/// Products priced in different currencies cannot be summed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} is priced in {found}, the rest of the basket in {expected}")]
pub struct MixedCurrencies {
    /// The product in the odd currency.
    pub name: String,
    /// The basket's currency (its first line's).
    pub expected: String,
    /// The odd currency.
    pub found: String,
}

/// Why a basket's lines have no subtotal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubtotalError {
    /// Two currencies.
    #[error(transparent)]
    Mixed(#[from] MixedCurrencies),
    /// More than a `Money` can carry.
    #[error("the basket's total is more than a price can be")]
    TooLarge,
}

/// Sum of the line totals, in the lines' currency ([`DEFAULT_CURRENCY`] without lines).
pub fn subtotal(lines: &[PricedLine]) -> Result<Amount, SubtotalError> {
    let currency = lines
        .first()
        .map_or(DEFAULT_CURRENCY, |l| l.unit_price.currency());
    lines.iter().try_fold(Amount::zero(currency), |sum, line| {
        sum.checked_add(line.line_total()).map_err(|err| match err {
            MoneyError::CurrencyMismatch { .. } => SubtotalError::Mixed(MixedCurrencies {
                name: line.name.clone(),
                expected: currency.to_owned(),
                found: line.unit_price.currency().to_owned(),
            }),
            MoneyError::OutOfRange => SubtotalError::TooLarge,
        })
    })
}

/// The discount actually applied: never negative, never more than the subtotal, and zero
/// when the quote came back in another currency (it cannot be subtracted).
pub fn clamp_discount(subtotal: &Amount, discount: &Amount) -> Amount {
    if discount.currency() != subtotal.currency() || !discount.is_positive() {
        Amount::zero(subtotal.currency())
    } else if discount > subtotal {
        subtotal.clone()
    } else {
        discount.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mercato::pb::r#type::v1::Money;

    const ID: &str = "0190a5a4-7b3e-7cc1-9d4e-6f7a8b9c0d1e";

    fn fields(v: FieldViolations) -> Vec<String> {
        mercato_testkit::violated_fields(&v.into_status())
    }

    fn eur(cents: i64) -> Amount {
        Amount::from_total_nanos("EUR", i128::from(cents) * 10_000_000)
    }

    fn line(name: &str, price: Amount, quantity: u32) -> PricedLine {
        PricedLine::new(
            ProductId::parse(ID).unwrap(),
            name.into(),
            String::new(),
            quantity,
            price,
        )
        .unwrap()
    }

    #[test]
    fn product_ids_are_canonical_uuids() {
        let upper = ProductId::parse(&ID.to_ascii_uppercase()).unwrap();
        assert_eq!(upper.as_str(), ID);
        let simple = ProductId::parse(&ID.replace('-', "")).unwrap();
        assert_eq!(simple, upper);
        assert!(ProductId::parse("lamp").is_none());
        assert!(ProductId::parse("").is_none());
    }

    #[test]
    fn add_item_reports_every_problem() {
        let bad = pb::AddItemRequest {
            product_id: "nope".into(),
            quantity: 0,
        };
        assert_eq!(
            fields(AddItem::parse(&bad).unwrap_err()),
            ["product_id", "quantity"]
        );
        for quantity in [-1, 0, 100] {
            let request = pb::AddItemRequest {
                product_id: ID.into(),
                quantity,
            };
            assert_eq!(fields(AddItem::parse(&request).unwrap_err()), ["quantity"]);
        }
        let good = pb::AddItemRequest {
            product_id: ID.into(),
            quantity: 99,
        };
        assert_eq!(AddItem::parse(&good).unwrap().quantity, 99);
    }

    #[test]
    fn update_item_accepts_zero_to_remove() {
        let request = |quantity| pb::UpdateItemRequest {
            product_id: ID.into(),
            quantity,
        };
        assert_eq!(UpdateItem::parse(&request(0)).unwrap().quantity, 0);
        assert_eq!(
            fields(UpdateItem::parse(&request(100)).unwrap_err()),
            ["quantity"]
        );
        assert_eq!(
            fields(UpdateItem::parse(&request(-3)).unwrap_err()),
            ["quantity"]
        );
    }

    #[test]
    fn limits_are_judged_per_line_and_per_basket() {
        let product_id = ProductId::parse(ID).unwrap();
        let mut contents = Contents {
            lines: vec![Line {
                product_id: product_id.clone(),
                quantity: 97,
            }],
            ..Contents::default()
        };
        let add = |quantity| AddItem {
            product_id: product_id.clone(),
            quantity,
        };
        assert_eq!(contents.refuse_add(&add(2)), None);
        assert_eq!(
            contents.refuse_add(&add(3)),
            Some(AddRefusal::TooMany { current: 97 })
        );
        contents.lines = (0..MAX_LINES)
            .map(|i| Line {
                product_id: ProductId::parse(&Uuid::from_u128(i as u128).to_string()).unwrap(),
                quantity: 1,
            })
            .collect();
        assert_eq!(contents.refuse_add(&add(1)), Some(AddRefusal::Full));
    }

    #[test]
    fn refusals_say_how_many_more_fit() {
        let status = AddRefusal::TooMany { current: 97 }
            .into_violations()
            .into_status();
        assert!(
            status.message().contains("at most 2 more"),
            "{}",
            status.message()
        );
        let status = AddRefusal::TooMany { current: 99 }
            .into_violations()
            .into_status();
        assert!(
            status.message().contains("no more fit"),
            "{}",
            status.message()
        );
        assert_eq!(fields(AddRefusal::Full.into_violations()), ["product_id"]);
    }

    #[test]
    fn coupons_are_trimmed_upper_cased_and_checked() {
        assert_eq!(parse_coupon("  ").unwrap(), CouponChange::Remove);
        assert_eq!(
            parse_coupon(" spring-25 ").unwrap(),
            CouponChange::Set("SPRING-25".into())
        );
        assert_eq!(
            parse_coupon("a_b").unwrap(),
            CouponChange::Set("A_B".into())
        );
        for bad in ["ab", "ten off", "CAFÉ10", &"X".repeat(33)] {
            assert_eq!(
                fields(parse_coupon(bad).unwrap_err()),
                ["coupon_code"],
                "{bad}"
            );
        }
    }

    #[test]
    fn subtotals_sum_line_totals_in_one_currency() {
        let lines = [line("Lamp", eur(1999), 2), line("Mug", eur(850), 1)];
        assert_eq!(subtotal(&lines).unwrap(), eur(4848));
        assert_eq!(lines[0].line_total(), &eur(3998));
        assert_eq!(subtotal(&[]).unwrap(), Amount::zero("EUR"));
        let usd = Amount::parse(&Money {
            currency_code: "USD".into(),
            units: 1,
            nanos: 0,
        })
        .unwrap();
        let mixed = [line("Lamp", eur(100), 1), line("Hat", usd, 1)];
        let Err(SubtotalError::Mixed(err)) = subtotal(&mixed) else {
            panic!("mixed currencies summed");
        };
        assert_eq!((err.name.as_str(), err.found.as_str()), ("Hat", "USD"));
    }

    #[test]
    fn a_line_or_basket_past_what_money_carries_is_refused() {
        let huge = Amount::from_parts("EUR", i64::MAX, 0);
        let line_err = PricedLine::new(
            ProductId::parse(ID).unwrap(),
            "Yacht".into(),
            String::new(),
            99,
            huge.clone(),
        );
        assert_eq!(line_err, Err(MoneyError::OutOfRange));
        let two = [line("Yacht", huge.clone(), 1), line("Dinghy", eur(100), 1)];
        assert_eq!(subtotal(&two), Err(SubtotalError::TooLarge));
        assert_eq!(subtotal(&[line("Yacht", huge.clone(), 1)]), Ok(huge));
    }

    #[test]
    fn discounts_stay_between_zero_and_the_subtotal() {
        assert_eq!(clamp_discount(&eur(1000), &eur(250)), eur(250));
        assert_eq!(clamp_discount(&eur(1000), &eur(5000)), eur(1000));
        assert!(clamp_discount(&eur(1000), &eur(-5)).is_zero());
        assert!(clamp_discount(&eur(1000), &Amount::zero("USD")).is_zero());
    }

    #[test]
    fn order_items_keep_the_basket_order() {
        let a = ProductId::parse(&Uuid::from_u128(2).to_string()).unwrap();
        let b = ProductId::parse(&Uuid::from_u128(1).to_string()).unwrap();
        let contents = Contents {
            lines: vec![
                Line {
                    product_id: a.clone(),
                    quantity: 3,
                },
                Line {
                    product_id: b.clone(),
                    quantity: 1,
                },
            ],
            ..Contents::default()
        };
        let items = contents.order_items();
        assert_eq!(items[0].product_id, a.as_str());
        assert_eq!(items[0].quantity, 3);
        assert_eq!(items[1].product_id, b.as_str());
    }
}
