//! Pricing a basket with current data: names and prices from the catalog (authoritative, so
//! never cached across requests), the coupon's discount from the discount service.
//!
//! A [`Pricer`] lives for one RPC and asks each question at most once: AddItem looks its
//! product up together with the basket's other lines, and the basket it answers with is
//! priced from that same lookup.

use std::collections::HashMap;

use mercato::pb::basket::v1 as pb;
use mercato::pb::catalog::v1::{BatchGetProductsRequest, Product};
use mercato::pb::discount::v1::{
    InapplicableReason, QuoteDiscountRequest, quote_discount_response,
};
use mercato_kernel::error;
use mercato_kernel::money::Amount;
use mercato_kernel::time::to_timestamp;
use tonic::Status;

use crate::domain::{self, Contents, PricedLine, ProductId, SubtotalError};
use crate::peers::{PeerClients, internal_call_failed};

/// What the discount service said about a coupon for a subtotal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quote {
    /// The coupon applies and takes this off (already clamped to the subtotal).
    Applies(Amount),
    /// The coupon does not apply.
    Inapplicable {
        /// `mercato.discount.v1.InapplicableReason` number (kept raw: a newer discount
        /// service may know reasons this build does not).
        reason: i32,
        /// The discount service's explanation.
        message: String,
    },
}

impl Quote {
    /// The reason as a known enum value, if it is one.
    pub fn known_reason(&self) -> Option<InapplicableReason> {
        match self {
            Self::Applies(_) => None,
            Self::Inapplicable { reason, .. } => InapplicableReason::try_from(*reason).ok(),
        }
    }
}

/// A basket's lines with current prices.
#[derive(Debug, Clone)]
pub struct Priced {
    /// Lines whose product still exists, in basket order.
    pub lines: Vec<PricedLine>,
    /// Products the catalog no longer has.
    pub gone: Vec<ProductId>,
    /// Sum of the line totals.
    pub subtotal: Amount,
}

/// The unit price of a catalog product.
pub fn unit_price(product: &Product) -> Result<Amount, Status> {
    product
        .price
        .as_ref()
        .and_then(|p| Amount::parse_positive(p).ok())
        .ok_or_else(|| error::internal(format!("catalog price of {} is unusable", product.id)))
}

/// Prices baskets for one RPC.
pub struct Pricer<'a> {
    peers: &'a PeerClients,
    /// Every product looked up so far; `None` for ids the catalog does not have.
    products: HashMap<ProductId, Option<Product>>,
    quotes: Vec<(String, Amount, Quote)>,
}

impl<'a> Pricer<'a> {
    /// A pricer that has looked nothing up yet.
    pub fn new(peers: &'a PeerClients) -> Self {
        Self {
            peers,
            products: HashMap::new(),
            quotes: Vec::new(),
        }
    }

    /// Looks up, in one catalog call, those of `ids` not looked up yet.
    pub async fn fetch<'i>(
        &mut self,
        ids: impl IntoIterator<Item = &'i ProductId>,
    ) -> Result<(), Status> {
        let mut unknown: Vec<ProductId> = Vec::new();
        for id in ids {
            if !self.products.contains_key(id) && !unknown.contains(id) {
                unknown.push(id.clone());
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let request = BatchGetProductsRequest {
            ids: unknown.iter().map(|id| id.as_str().to_owned()).collect(),
        };
        let found = self
            .peers
            .catalog
            .clone()
            .batch_get_products(request)
            .await
            .map_err(|status| internal_call_failed("catalog", status))?
            .into_inner();
        for product in found.products {
            if let Some(id) = ProductId::parse(&product.id) {
                self.products.insert(id, Some(product));
            }
        }
        for id in unknown {
            self.products.entry(id).or_insert(None);
        }
        Ok(())
    }

    /// A product looked up before; `None` when the catalog does not have it.
    pub fn product(&self, id: &ProductId) -> Option<&Product> {
        self.products.get(id).and_then(Option::as_ref)
    }

    /// Prices `contents` with current catalog data.
    pub async fn price(&mut self, contents: &Contents) -> Result<Priced, Status> {
        self.try_price(contents).await?.map_err(|err| match err {
            SubtotalError::Mixed(mixed) => error::failed_precondition(
                "BASKET_MIXED_CURRENCIES",
                format!("{mixed}; remove it from the basket to go on"),
            ),
            // Prices rose after the lines were added (AddItem and UpdateItem refuse this).
            SubtotalError::TooLarge => error::failed_precondition(
                "BASKET_TOTAL_TOO_LARGE",
                "the basket's total is more than a price can be; lower a quantity to go on",
            ),
        })
    }

    /// Refuses to store `after`, the basket an AddItem or UpdateItem would leave, when its
    /// total would be more than a price can be.
    pub async fn refuse_overflow(&mut self, after: &Contents) -> Result<(), Status> {
        match self.try_price(after).await? {
            Err(SubtotalError::TooLarge) => Err(error::invalid_argument(
                "quantity",
                "would make the basket's total more than a price can be",
            )),
            Ok(_) | Err(SubtotalError::Mixed(_)) => Ok(()),
        }
    }

    /// Prices `contents`: `Err` for a catalog failure, `Ok(Err)` for lines without a subtotal.
    async fn try_price(
        &mut self,
        contents: &Contents,
    ) -> Result<Result<Priced, SubtotalError>, Status> {
        self.fetch(contents.lines.iter().map(|l| &l.product_id))
            .await?;
        let mut lines = Vec::with_capacity(contents.lines.len());
        let mut gone = Vec::new();
        for line in &contents.lines {
            let Some(product) = self.product(&line.product_id) else {
                gone.push(line.product_id.clone());
                continue;
            };
            let priced = PricedLine::new(
                line.product_id.clone(),
                product.name.clone(),
                product.image_url.clone(),
                line.quantity,
                unit_price(product)?,
            );
            match priced {
                Ok(priced) => lines.push(priced),
                Err(_) => return Ok(Err(SubtotalError::TooLarge)),
            }
        }
        Ok(domain::subtotal(&lines).map(|subtotal| Priced {
            lines,
            gone,
            subtotal,
        }))
    }

    /// What coupon `code` takes off `subtotal` now.
    pub async fn quote(&mut self, code: &str, subtotal: &Amount) -> Result<Quote, Status> {
        if let Some((_, _, quote)) = self
            .quotes
            .iter()
            .find(|(c, s, _)| c == code && s == subtotal)
        {
            return Ok(quote.clone());
        }
        let request = QuoteDiscountRequest {
            code: code.to_owned(),
            subtotal: Some(subtotal.to_proto()),
        };
        let answer = self
            .peers
            .discount
            .clone()
            .quote_discount(request)
            .await
            .map_err(|status| internal_call_failed("discount", status))?
            .into_inner();
        let quote = match answer.outcome {
            Some(quote_discount_response::Outcome::Discount(money)) => {
                let discount = Amount::parse(&money)
                    .map_err(|e| error::internal(format!("discount quote unusable: {e}")))?;
                Quote::Applies(domain::clamp_discount(subtotal, &discount))
            }
            Some(quote_discount_response::Outcome::InapplicableReason(reason)) => {
                Quote::Inapplicable {
                    reason,
                    message: answer.message,
                }
            }
            None => return Err(error::internal("discount quote without an outcome")),
        };
        self.quotes
            .push((code.to_owned(), subtotal.clone(), quote.clone()));
        Ok(quote)
    }
}

/// The Basket message for `contents` priced as `priced`, with the coupon's `quote`.
pub fn basket_message(
    user_id: &str,
    contents: &Contents,
    priced: &Priced,
    quote: Option<&Quote>,
) -> pb::Basket {
    let zero = Amount::zero(priced.subtotal.currency());
    let (discount, reason) = match quote {
        Some(Quote::Applies(discount)) => (discount.clone(), 0),
        Some(Quote::Inapplicable { reason, .. }) => (zero, *reason),
        None => (zero, 0),
    };
    // The discount is clamped to the subtotal, in its currency: the difference always exists.
    let total = priced
        .subtotal
        .checked_sub(&discount)
        .unwrap_or_else(|_| priced.subtotal.clone());
    let item_count = priced.lines.iter().map(|l| l.quantity).sum::<u32>();
    pb::Basket {
        user_id: user_id.to_owned(),
        lines: priced.lines.iter().map(PricedLine::to_proto).collect(),
        subtotal: Some(priced.subtotal.to_proto()),
        discount: Some(discount.to_proto()),
        total: Some(total.to_proto()),
        coupon_code: contents.coupon_code.clone().unwrap_or_default(),
        coupon_inapplicable_reason: reason,
        item_count: i32::try_from(item_count).unwrap_or(i32::MAX),
        update_time: contents.update_time.map(to_timestamp),
        expire_time: contents.expire_time.map(to_timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Line;

    fn eur(cents: i64) -> Amount {
        Amount::from_total_nanos("EUR", i128::from(cents) * 10_000_000)
    }

    fn priced(lines: Vec<PricedLine>) -> Priced {
        let subtotal = domain::subtotal(&lines).unwrap();
        Priced {
            lines,
            gone: Vec::new(),
            subtotal,
        }
    }

    fn lamp(quantity: u32) -> PricedLine {
        PricedLine::new(
            ProductId::parse("0190a5a4-7b3e-7cc1-9d4e-000000000001").unwrap(),
            "Lamp".into(),
            String::new(),
            quantity,
            eur(2000),
        )
        .unwrap()
    }

    #[test]
    fn an_empty_basket_is_zero_euros_without_times() {
        let basket = basket_message("u1", &Contents::default(), &priced(Vec::new()), None);
        let subtotal = basket.subtotal.unwrap();
        assert_eq!(
            (subtotal.currency_code.as_str(), subtotal.units),
            ("EUR", 0)
        );
        assert_eq!(basket.total.unwrap().units, 0);
        assert!(basket.lines.is_empty() && basket.update_time.is_none());
        assert_eq!(basket.item_count, 0);
    }

    #[test]
    fn an_applying_coupon_comes_off_the_total() {
        let contents = Contents {
            lines: vec![Line {
                product_id: lamp(1).product_id,
                quantity: 3,
            }],
            coupon_code: Some("SPRING-25".into()),
            ..Contents::default()
        };
        let basket = basket_message(
            "u1",
            &contents,
            &priced(vec![lamp(3)]),
            Some(&Quote::Applies(eur(1500))),
        );
        assert_eq!(basket.subtotal.unwrap().units, 60);
        assert_eq!(basket.discount.unwrap().units, 15);
        assert_eq!(basket.total.unwrap().units, 45);
        assert_eq!(basket.item_count, 3);
        assert_eq!(basket.lines[0].line_total.clone().unwrap().units, 60);
        assert_eq!(basket.coupon_code, "SPRING-25");
        assert_eq!(basket.coupon_inapplicable_reason, 0);
    }

    #[test]
    fn an_inapplicable_coupon_gives_nothing_and_says_why() {
        let quote = Quote::Inapplicable {
            reason: InapplicableReason::MinSubtotalNotMet as i32,
            message: "needs 100 EUR".into(),
        };
        assert_eq!(
            quote.known_reason(),
            Some(InapplicableReason::MinSubtotalNotMet)
        );
        let basket = basket_message(
            "u1",
            &Contents::default(),
            &priced(vec![lamp(1)]),
            Some(&quote),
        );
        assert_eq!(basket.discount.unwrap().units, 0);
        assert_eq!(basket.total.unwrap().units, 20);
        assert_eq!(
            basket.coupon_inapplicable_reason,
            InapplicableReason::MinSubtotalNotMet as i32
        );
    }
}
