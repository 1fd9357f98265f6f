//! Checkout: the basket's items and coupon become an order through the order service's
//! PlaceOrder, placed with the customer's own token (PlaceOrder takes the buyer from it and
//! refuses service tokens). The basket is emptied once the order is CONFIRMED, and only if it
//! did not change meanwhile, so a line added during checkout survives.
//!
//! Validation: the card, the shipping address and the idempotency key are PlaceOrder's input,
//! checked there (with `mercato_kernel::validate`) and nowhere else; its INVALID_ARGUMENT,
//! with every field violation, reaches the client unchanged (the fields have the same names
//! in CheckoutRequest).
//!
//! Idempotency: PlaceOrder returns the same order for the same key and the same contents.
//! The first Checkout with a key records the items it sent; a repeat sends those again, so
//! it gets that same order even after the basket was emptied. A key reused once the basket
//! holds something else is refused (IDEMPOTENCY_KEY_REUSED), as PlaceOrder refuses it.

use mercato::pb::basket::v1::CheckoutRequest;
use mercato::pb::order::v1::{Order, OrderStatus, PlaceOrderRequest};
use mercato_kernel::auth::Principal;
use mercato_kernel::error;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::api::{BasketApi, store_failed};
use crate::domain::Contents;
use crate::store::CheckoutRecord;

/// Whether a failed PlaceOrder certainly placed no order: it refused the request before
/// storing anything. The checkout record is then dropped if this Checkout made it, so the
/// customer can fix the basket or the card and retry with the same key. A record an earlier
/// Checkout made stays whatever the answer (that checkout may have placed the order), as it
/// does after an outage or a timeout: a retry asks for the same order.
fn placed_nothing(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::Unauthenticated
            | Code::PermissionDenied
            | Code::NotFound
            | Code::OutOfRange
    )
}

/// Whether a Checkout with a recorded key is a repeat of that checkout (a retry, answered
/// with the same order) rather than a new basket under an old key (refused, as PlaceOrder
/// refuses a key reused for other items): the basket is as recorded, or emptied since (by
/// that checkout, or by the customer).
fn repeats(record: &CheckoutRecord, basket: &Contents) -> bool {
    basket.lines.is_empty()
        || basket.version == record.version
        || (basket.order_items() == record.items
            && basket.coupon_code.as_deref().unwrap_or_default() == record.coupon_code)
}

impl BasketApi {
    /// The items this checkout orders: recorded by an earlier Checkout with the same key, or
    /// taken from the basket now and recorded; and whether this call recorded them.
    async fn checkout_items(
        &self,
        user_id: &str,
        key: &str,
    ) -> Result<(CheckoutRecord, bool), Status> {
        let record = self
            .store
            .checkout_record(user_id, key)
            .await
            .map_err(store_failed)?;
        let contents = self.store.load(user_id).await.map_err(store_failed)?;
        if let Some(record) = record {
            return if repeats(&record, &contents) {
                Ok((record, false))
            } else {
                Err(error::failed_precondition(
                    "IDEMPOTENCY_KEY_REUSED",
                    "this idempotency_key was used for a different basket; use a new key for a new checkout",
                ))
            };
        }
        if contents.lines.is_empty() {
            return Err(error::failed_precondition(
                "BASKET_EMPTY",
                "the basket is empty; add products before checking out",
            ));
        }
        let snapshot = CheckoutRecord {
            items: contents.order_items(),
            coupon_code: contents.coupon_code.clone().unwrap_or_default(),
            version: contents.version,
        };
        // A concurrent Checkout with the same key may have recorded first: use its record.
        let recorded = self
            .store
            .record_checkout(user_id, key, &snapshot)
            .await
            .map_err(store_failed)?;
        let made_here = recorded == snapshot;
        Ok((recorded, made_here))
    }

    /// Places the order for the caller's basket; see the module docs.
    pub(crate) async fn place_order(
        &self,
        principal: &Principal,
        checkout: CheckoutRequest,
    ) -> Result<Order, Status> {
        let user_id = principal.subject.as_str();
        let key = checkout.idempotency_key;
        let (record, recorded_here) = self.checkout_items(user_id, &key).await?;

        let mut request = tonic::Request::new(PlaceOrderRequest {
            items: record.items.clone(),
            coupon_code: record.coupon_code.clone(),
            card: checkout.card,
            shipping_address: checkout.shipping_address,
            idempotency_key: key.clone(),
        });
        let bearer = MetadataValue::try_from(format!("Bearer {}", principal.token))
            .map_err(|_| error::internal("the caller's token is not a valid header value"))?;
        request.metadata_mut().insert("authorization", bearer);

        let order = match self.peers.order.clone().place_order(request).await {
            Ok(response) => response
                .into_inner()
                .order
                .ok_or_else(|| error::internal("PlaceOrder answered without an order"))?,
            Err(status) => {
                if recorded_here
                    && placed_nothing(&status)
                    && let Err(err) = self.store.forget_checkout(user_id, &key).await
                {
                    tracing::warn!(%user_id, error = %err, "could not forget a refused checkout");
                }
                // Field violations, coupon refusals and outages reach the client unchanged.
                return Err(status);
            }
        };

        if order.status() == OrderStatus::Confirmed {
            // The order is placed whatever happens here: a failure to empty the basket is
            // logged, not reported (a repeated Checkout with the key empties it then).
            match self.store.empty_if_unchanged(user_id, record.version).await {
                Ok(true) => {
                    tracing::info!(%user_id, order_id = %order.id, "checked out; basket emptied")
                }
                Ok(false) => tracing::info!(
                    %user_id,
                    order_id = %order.id,
                    "checked out; basket changed meanwhile, kept"
                ),
                Err(err) => tracing::warn!(
                    %user_id,
                    order_id = %order.id,
                    error = %err,
                    "checked out, but the basket could not be emptied"
                ),
            }
        }
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_before_any_order_free_the_key() {
        assert!(placed_nothing(&Status::invalid_argument(
            "items[0].product_id"
        )));
        assert!(placed_nothing(&Status::failed_precondition(
            "COUPON_EXPIRED"
        )));
        assert!(!placed_nothing(&Status::unavailable("order")));
        assert!(!placed_nothing(&Status::deadline_exceeded("slow")));
        assert!(!placed_nothing(&Status::internal("?")));
    }

    fn basket(items: &[(u128, u32)], coupon: Option<&str>, version: u64) -> Contents {
        Contents {
            lines: items
                .iter()
                .map(|&(id, quantity)| crate::domain::Line {
                    product_id: crate::domain::ProductId::parse(
                        &uuid::Uuid::from_u128(id).to_string(),
                    )
                    .unwrap(),
                    quantity,
                })
                .collect(),
            coupon_code: coupon.map(str::to_owned),
            version,
            ..Contents::default()
        }
    }

    #[test]
    fn a_key_repeats_its_checkout_only_for_the_same_or_an_emptied_basket() {
        let recorded = basket(&[(1, 2)], Some("TEN"), 7);
        let record = CheckoutRecord {
            items: recorded.order_items(),
            coupon_code: "TEN".into(),
            version: 7,
        };
        assert!(repeats(&record, &recorded), "unchanged");
        assert!(
            repeats(&record, &basket(&[], None, 8)),
            "emptied by the checkout"
        );
        assert!(
            repeats(&record, &basket(&[(1, 2)], Some("TEN"), 9)),
            "same contents, later version"
        );
        assert!(!repeats(
            &record,
            &basket(&[(1, 2), (2, 1)], Some("TEN"), 9)
        ));
        assert!(!repeats(&record, &basket(&[(1, 3)], Some("TEN"), 9)));
        assert!(!repeats(&record, &basket(&[(1, 2)], None, 9)));
    }
}
