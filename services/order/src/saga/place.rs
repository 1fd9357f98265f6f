//! The start of a checkout, before any step runs: the items priced from the catalog, the
//! coupon quoted by the discount service (the Redeem step redeems it for real), and the
//! PENDING order stored with its OrderPlaced event.

use diesel_async::AsyncConnection as _;
use mercato::pb::catalog::v1::BatchGetProductsRequest;
use mercato::pb::discount::v1::{
    InapplicableReason, QuoteDiscountRequest, quote_discount_response,
};
use mercato_kernel::error::{self, FieldViolations};
use mercato_kernel::events::outbox;
use mercato_kernel::money::Amount;
use tonic::Status;
use uuid::Uuid;

use super::Saga;
use crate::domain::{
    self, ItemProblem, NewOrder, PricedOrder, PricingError, Status as OrderState, Step,
};
use crate::messages;
use crate::store::{self, InsertOrder, StoredOrder};

impl Saga {
    /// Stores `order` for `user_id`: priced, its coupon quoted, PENDING at the saga's first
    /// step with its OrderPlaced event, and leased to the caller, who drives it next. `None`
    /// when a concurrent request with the same idempotency key stored its order first.
    pub async fn start(
        &self,
        user_id: &str,
        order: &NewOrder,
    ) -> Result<Option<StoredOrder>, Status> {
        let priced = self.price(order).await?;
        let discount = match &order.coupon_code {
            Some(code) => self.quote(code, &priced).await?,
            None => 0,
        };
        let id = Uuid::now_v7();
        let hash = order.fingerprint();
        let insert = InsertOrder {
            id,
            user_id,
            idempotency_key: &order.idempotency_key,
            request_hash: &hash,
            status: OrderState::Pending.as_str(),
            currency: &priced.currency,
            subtotal_nanos: priced.subtotal_nanos,
            discount_nanos: discount,
            coupon_code: order.coupon_code.as_deref().unwrap_or(""),
            ship_name: order.address.name.trim(),
            ship_line1: order.address.line1.trim(),
            ship_line2: order.address.line2.trim(),
            ship_city: order.address.city.trim(),
            ship_postal_code: order.address.postal_code.trim(),
            ship_country: &order.address.country,
            saga_step: Step::Reserve.as_str(),
            saga_lease_until: Some(self.lease_until()),
        };
        let mut conn = self.db.get().await.map_err(error::pool)?;
        let stored = conn
            .transaction(async |conn| {
                let Some(stored) = store::insert_order(conn, &insert, &priced.lines).await? else {
                    return Ok(None);
                };
                outbox::enqueue(conn, "order", &id.to_string(), &messages::placed(&stored)).await?;
                Ok::<_, diesel::result::Error>(Some(stored))
            })
            .await
            .map_err(error::database)?;
        if stored.is_some() {
            self.outbox.notify();
            tracing::info!(order_id = %id, %user_id, "order placed");
        }
        Ok(stored)
    }

    /// The order's items priced by the catalog.
    async fn price(&self, order: &NewOrder) -> Result<PricedOrder, Status> {
        let ids = order.items.iter().map(|i| i.product_id.clone()).collect();
        let found = self
            .peers
            .catalog
            .clone()
            .batch_get_products(BatchGetProductsRequest { ids })
            .await?
            .into_inner();
        domain::price(&order.items, &found.products).map_err(pricing_status)
    }

    /// The discount the coupon `code` would give the priced order now, at most its subtotal.
    async fn quote(&self, code: &str, priced: &PricedOrder) -> Result<i64, Status> {
        let subtotal = priced.subtotal_nanos;
        let request = QuoteDiscountRequest {
            code: code.to_owned(),
            subtotal: Some(
                Amount::from_total_nanos(&priced.currency, i128::from(subtotal)).to_proto(),
            ),
        };
        let quote = self
            .peers
            .discount
            .clone()
            .quote_discount(request)
            .await?
            .into_inner();
        match quote.outcome {
            Some(quote_discount_response::Outcome::Discount(money)) => Ok(Amount::parse(&money)
                .ok()
                .and_then(|a| i64::try_from(a.total_nanos()).ok())
                .unwrap_or(0)
                .clamp(0, subtotal)),
            Some(quote_discount_response::Outcome::InapplicableReason(reason)) => {
                let reason = InapplicableReason::try_from(reason)
                    .map(|r| {
                        r.as_str_name()
                            .trim_start_matches("INAPPLICABLE_REASON_")
                            .to_owned()
                    })
                    .unwrap_or_else(|_| "INAPPLICABLE".into());
                Err(error::failed_precondition(
                    &format!("COUPON_{reason}"),
                    format!("coupon {code} cannot be used: {}", quote.message),
                ))
            }
            None => Err(error::internal("discount quote without an outcome")),
        }
    }
}

/// What the caller hears when the order cannot be priced.
fn pricing_status(err: PricingError) -> Status {
    match err {
        PricingError::Items(problems) => {
            let mut violations = FieldViolations::new();
            for problem in problems {
                match problem {
                    ItemProblem::Unknown { index } => {
                        violations.add(format!("items[{index}].product_id"), "no such product");
                    }
                    ItemProblem::OtherCurrency {
                        index,
                        currency,
                        order_currency,
                    } => violations.add(
                        format!("items[{index}].product_id"),
                        format!(
                            "is priced in {currency}, the rest of the order in {order_currency}"
                        ),
                    ),
                }
            }
            violations.into_status()
        }
        PricingError::NoItems => error::invalid_argument("items", "is empty"),
        PricingError::UnitPriceTooLarge { index } => {
            error::invalid_argument(format!("items[{index}].product_id"), "price too large")
        }
        PricingError::TooLarge => error::invalid_argument("items", "the order total is too large"),
        err @ PricingError::CatalogPrice { .. } => error::internal(err),
    }
}
