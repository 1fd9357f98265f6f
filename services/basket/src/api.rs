//! The gRPC surface of the basket: authorization (a basket is its user's, named by the token
//! alone), request parsing, and every answer priced afresh.

use mercato::pb::basket::v1 as pb;
use mercato::pb::basket::v1::basket_service_server::BasketService;
use mercato::pb::discount::v1::InapplicableReason;
use mercato_kernel::auth::{Principal, PrincipalKind};
use mercato_kernel::error::{self, FieldViolations};
use tonic::{Request, Response, Status};

use crate::domain::{self, AddItem, Contents, CouponChange, UpdateItem};
use crate::peers::PeerClients;
use crate::pricing::{self, Pricer, Quote, unit_price};
use crate::store::{AddOutcome, BasketStore, StoreError, UpdateOutcome};

/// The basket service.
#[derive(Clone)]
pub struct BasketApi {
    pub(crate) store: BasketStore,
    pub(crate) peers: PeerClients,
}

/// The caller, who must be a user: the API has no basket id, the token alone says whose
/// basket it is, so a customer can only ever reach their own. Service accounts have none.
fn customer<T>(request: &Request<T>) -> Result<Principal, Status> {
    let principal = Principal::of(request)?;
    if principal.kind != PrincipalKind::User {
        return Err(error::permission_denied(
            "USER_REQUIRED",
            "baskets belong to users; call with the customer's own token",
        ));
    }
    Ok(principal.clone())
}

/// Redis is the basket's only store: when it fails, the basket is unavailable.
pub(crate) fn store_failed(err: StoreError) -> Status {
    match err {
        StoreError::Malformed(_) => error::internal(err),
        other => error::unavailable("redis", other),
    }
}

/// Whether ApplyCoupon refuses a coupon that does not apply now. A coupon that cannot apply
/// whatever the basket holds (unknown, expired, not yet valid) is refused and not stored. One
/// that fails only for the moment is stored anyway and shown with its reason: a subtotal below
/// the minimum (or in another currency) changes as the basket grows, and an exhausted coupon
/// gets uses back when orders that used it are cancelled. Checkout then decides for good.
fn coupon_refusal(code: &str, quote: &Quote) -> Option<Status> {
    let Quote::Inapplicable { message, .. } = quote else {
        return None;
    };
    let reason = quote.known_reason()?;
    match reason {
        InapplicableReason::NotFound
        | InapplicableReason::Expired
        | InapplicableReason::NotYetValid => {
            let name = reason
                .as_str_name()
                .trim_start_matches("INAPPLICABLE_REASON_");
            Some(error::failed_precondition(
                &format!("COUPON_{name}"),
                format!("coupon {code} cannot be used: {message}"),
            ))
        }
        _ => None,
    }
}

impl BasketApi {
    /// The service over its store and peers.
    pub fn new(store: BasketStore, peers: PeerClients) -> Self {
        Self { store, peers }
    }

    /// The Basket message of `contents`, priced now. Lines of products deleted from the
    /// catalog are left out and removed from the store.
    pub(crate) async fn render(
        &self,
        user_id: &str,
        contents: &Contents,
        pricer: &mut Pricer<'_>,
    ) -> Result<pb::Basket, Status> {
        let priced = pricer.price(contents).await?;
        if !priced.gone.is_empty() {
            // Best effort: the answer is right either way, and the next read tries again.
            match self.store.prune(user_id, &priced.gone).await {
                Ok(()) => {
                    tracing::info!(%user_id, gone = priced.gone.len(), "dropped products deleted from the catalog")
                }
                Err(err) => {
                    tracing::warn!(%user_id, error = %err, "could not drop deleted products")
                }
            }
        }
        let quote = match &contents.coupon_code {
            Some(code) => Some(pricer.quote(code, &priced.subtotal).await?),
            None => None,
        };
        Ok(pricing::basket_message(
            user_id,
            contents,
            &priced,
            quote.as_ref(),
        ))
    }
}

#[tonic::async_trait]
impl BasketService for BasketApi {
    async fn get_basket(
        &self,
        request: Request<pb::GetBasketRequest>,
    ) -> Result<Response<pb::GetBasketResponse>, Status> {
        let principal = customer(&request)?;
        let user_id = principal.subject.as_str();
        let contents = self.store.load(user_id).await.map_err(store_failed)?;
        let basket = self
            .render(user_id, &contents, &mut Pricer::new(&self.peers))
            .await?;
        Ok(Response::new(pb::GetBasketResponse {
            basket: Some(basket),
        }))
    }

    async fn add_item(
        &self,
        request: Request<pb::AddItemRequest>,
    ) -> Result<Response<pb::AddItemResponse>, Status> {
        let principal = customer(&request)?;
        let user_id = principal.subject.as_str();
        let item = AddItem::parse(request.get_ref()).map_err(FieldViolations::into_status)?;
        let before = self.store.load(user_id).await.map_err(store_failed)?;
        if let Some(refusal) = before.refuse_add(&item) {
            return Err(refusal.into_violations().into_status());
        }
        // One catalog call checks the new product and prices the whole basket.
        let mut pricer = Pricer::new(&self.peers);
        pricer
            .fetch(
                before
                    .lines
                    .iter()
                    .map(|l| &l.product_id)
                    .chain([&item.product_id]),
            )
            .await?;
        let Some(product) = pricer.product(&item.product_id) else {
            return Err(error::invalid_argument("product_id", "no such product"));
        };
        let price = unit_price(product)?;
        let basket_currency = before
            .lines
            .iter()
            .find_map(|l| pricer.product(&l.product_id))
            .map(unit_price)
            .transpose()?;
        if let Some(currency) = basket_currency
            && currency.currency() != price.currency()
        {
            return Err(error::invalid_argument(
                "product_id",
                format!(
                    "is priced in {}, the basket's products in {}; one basket holds one currency",
                    price.currency(),
                    currency.currency()
                ),
            ));
        }
        let current = before.quantity_of(&item.product_id);
        pricer
            .refuse_overflow(&before.with_quantity(&item.product_id, current + item.quantity))
            .await?;
        let after = match self
            .store
            .add(user_id, &item.product_id, item.quantity)
            .await
            .map_err(store_failed)?
        {
            AddOutcome::Added(contents) => contents,
            AddOutcome::Refused(refusal) => return Err(refusal.into_violations().into_status()),
        };
        let basket = self.render(user_id, &after, &mut pricer).await?;
        Ok(Response::new(pb::AddItemResponse {
            basket: Some(basket),
        }))
    }

    async fn update_item(
        &self,
        request: Request<pb::UpdateItemRequest>,
    ) -> Result<Response<pb::UpdateItemResponse>, Status> {
        let principal = customer(&request)?;
        let user_id = principal.subject.as_str();
        let change = UpdateItem::parse(request.get_ref()).map_err(FieldViolations::into_status)?;
        let mut pricer = Pricer::new(&self.peers);
        if change.quantity > 0 {
            let before = self.store.load(user_id).await.map_err(store_failed)?;
            pricer
                .refuse_overflow(&before.with_quantity(&change.product_id, change.quantity))
                .await?;
        }
        let after = match self
            .store
            .set_quantity(user_id, &change.product_id, change.quantity)
            .await
            .map_err(store_failed)?
        {
            UpdateOutcome::Updated(contents) => contents,
            UpdateOutcome::NotInBasket => {
                return Err(error::not_found("basket item", change.product_id.as_str()));
            }
        };
        let basket = self.render(user_id, &after, &mut pricer).await?;
        Ok(Response::new(pb::UpdateItemResponse {
            basket: Some(basket),
        }))
    }

    async fn remove_item(
        &self,
        request: Request<pb::RemoveItemRequest>,
    ) -> Result<Response<pb::RemoveItemResponse>, Status> {
        let principal = customer(&request)?;
        let user_id = principal.subject.as_str();
        let product_id =
            domain::parse_remove(request.get_ref()).map_err(FieldViolations::into_status)?;
        let after = self
            .store
            .remove(user_id, &product_id)
            .await
            .map_err(store_failed)?;
        let basket = self
            .render(user_id, &after, &mut Pricer::new(&self.peers))
            .await?;
        Ok(Response::new(pb::RemoveItemResponse {
            basket: Some(basket),
        }))
    }

    async fn apply_coupon(
        &self,
        request: Request<pb::ApplyCouponRequest>,
    ) -> Result<Response<pb::ApplyCouponResponse>, Status> {
        let principal = customer(&request)?;
        let user_id = principal.subject.as_str();
        let change = domain::parse_coupon(&request.get_ref().coupon_code)
            .map_err(FieldViolations::into_status)?;
        let mut pricer = Pricer::new(&self.peers);
        let after = match change {
            CouponChange::Remove => self.store.set_coupon(user_id, None).await,
            CouponChange::Set(code) => {
                let before = self.store.load(user_id).await.map_err(store_failed)?;
                let priced = pricer.price(&before).await?;
                let quote = pricer.quote(&code, &priced.subtotal).await?;
                if let Some(refusal) = coupon_refusal(&code, &quote) {
                    return Err(refusal);
                }
                self.store.set_coupon(user_id, Some(&code)).await
            }
        }
        .map_err(store_failed)?;
        let basket = self.render(user_id, &after, &mut pricer).await?;
        Ok(Response::new(pb::ApplyCouponResponse {
            basket: Some(basket),
        }))
    }

    async fn clear_basket(
        &self,
        request: Request<pb::ClearBasketRequest>,
    ) -> Result<Response<()>, Status> {
        let principal = customer(&request)?;
        self.store
            .clear(&principal.subject)
            .await
            .map_err(store_failed)?;
        Ok(Response::new(()))
    }

    async fn checkout(
        &self,
        request: Request<pb::CheckoutRequest>,
    ) -> Result<Response<pb::CheckoutResponse>, Status> {
        let principal = customer(&request)?;
        let order = self.place_order(&principal, request.into_inner()).await?;
        Ok(Response::new(pb::CheckoutResponse { order: Some(order) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use tonic_types::StatusExt as _;

    fn inapplicable(reason: InapplicableReason) -> Quote {
        Quote::Inapplicable {
            reason: reason as i32,
            message: "because".into(),
        }
    }

    #[test]
    fn coupons_that_can_never_apply_are_refused_with_their_reason() {
        for (reason, name) in [
            (InapplicableReason::NotFound, "COUPON_NOT_FOUND"),
            (InapplicableReason::Expired, "COUPON_EXPIRED"),
            (InapplicableReason::NotYetValid, "COUPON_NOT_YET_VALID"),
        ] {
            let status = coupon_refusal("X10", &inapplicable(reason)).unwrap();
            assert_eq!(status.code(), Code::FailedPrecondition);
            assert_eq!(
                status.get_error_details().error_info().unwrap().reason,
                name
            );
            assert!(status.message().contains("because"), "{}", status.message());
        }
    }

    #[test]
    fn coupons_that_may_apply_later_are_kept() {
        for reason in [
            InapplicableReason::MinSubtotalNotMet,
            InapplicableReason::Exhausted,
            InapplicableReason::CurrencyMismatch,
        ] {
            assert!(coupon_refusal("X10", &inapplicable(reason)).is_none());
        }
        let unknown = Quote::Inapplicable {
            reason: 99,
            message: String::new(),
        };
        assert!(coupon_refusal("X10", &unknown).is_none());
        let applies = Quote::Applies(mercato_kernel::money::Amount::zero("EUR"));
        assert!(coupon_refusal("X10", &applies).is_none());
    }

    #[test]
    fn a_malformed_store_is_internal_and_an_outage_unavailable() {
        assert_eq!(
            store_failed(StoreError::Malformed("x".into())).code(),
            Code::Internal
        );
        assert_eq!(
            store_failed(StoreError::Timeout(std::time::Duration::from_secs(1))).code(),
            Code::Unavailable
        );
    }
}
