//! Checkout: the basket looked at (and emptied of anything an earlier visit left), products
//! found by listing or search, one to three product pages, each product in stock added, the
//! first line's quantity raised, a coupon applied for a share of visits, the basket looked
//! at again, then Checkout with the good card or, for the decline share, the declining one.
//! The order is then watched until it settles on the read side, and must have ended as the
//! card says: confirmed for the good card, cancelled with the card refused for the declining
//! one (a decline, counted as such, not as an error). Last, the shopper reads the
//! notifications the order brought. After a decline the shopper gives up and empties the
//! basket.

use rand::Rng as _;
use rand::seq::IndexedRandom as _;

use super::{Context, find_products, product_page};
use crate::failure::{CallError, Failure, Unexpected};
use crate::session::Session;
use crate::shop::{Bearer, CARD_DECLINED, CARD_OK, Call, OrderStatus, OrderView, Product, Shop};
use crate::stats::Outcomes;
use crate::step::Step;

/// How an order ended, when it ended as its card says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Confirmed,
    Declined,
}

/// Whether `order`, paid with the declining card when `declining`, ended as that card must
/// make it end.
fn expected(order: &OrderView, declining: bool) -> Call<Outcome> {
    match (declining, order.status) {
        (false, OrderStatus::Confirmed | OrderStatus::Shipped) => Ok(Outcome::Confirmed),
        (true, OrderStatus::Cancelled) if order.card_refused => Ok(Outcome::Declined),
        (true, OrderStatus::Confirmed | OrderStatus::Shipped) => Err(CallError::new(
            Failure::Unexpected(Unexpected::ConfirmedDespiteDecline),
            format!("order {} was confirmed with the declining card", order.id),
        )),
        (_, status) => Err(CallError::new(
            Failure::Unexpected(Unexpected::Cancelled),
            format!(
                "order {} ended {status:?}: {}",
                order.id, order.cancellation_reason
            ),
        )),
    }
}

pub(super) async fn run<S: Shop>(
    ctx: &Context<S>,
    session: &mut Session<'_, S>,
    auth: &Bearer,
    idempotency_key: &str,
) -> Call<()> {
    let shop = session.shop;
    let outcomes = &session.stats().outcomes;
    let basket = session.step(Step::Basket, shop.get_basket(auth)).await?;
    if basket.lines > 0 {
        session
            .step(Step::ClearBasket, shop.clear_basket(auth))
            .await?;
    }

    let found = find_products(ctx, session, auth).await?;
    let wanted = session.rng.random_range(1..=3);
    let picked: Vec<&Product> = found.choose_multiple(&mut session.rng, wanted).collect();
    let mut first_line: Option<(&str, i32)> = None;
    for product in picked {
        let available = product_page(session, auth, &product.id).await?;
        let quantity = session.rng.random_range(1..=2);
        // Room for the quantity raised below; a shopper does not order what is not there.
        if available <= quantity {
            continue;
        }
        session
            .step(Step::AddItem, shop.add_item(auth, &product.id, quantity))
            .await?;
        first_line.get_or_insert((product.id.as_str(), quantity));
    }
    let Some((product_id, quantity)) = first_line else {
        Outcomes::add(&outcomes.nothing_in_stock, 1);
        return Ok(());
    };
    session
        .step(
            Step::UpdateItem,
            shop.update_item(auth, product_id, quantity + 1),
        )
        .await?;

    if session.rng.random_bool(ctx.plan.coupon_share)
        && let Some(code) = ctx.catalog.coupons.choose(&mut session.rng)
    {
        let basket = session
            .step(Step::ApplyCoupon, shop.apply_coupon(auth, code))
            .await?;
        // A coupon used up meanwhile (or needing a larger basket) would cancel the order:
        // a shopper seeing it refused takes it off.
        if basket.coupon_inapplicable {
            session
                .step(Step::ApplyCoupon, shop.apply_coupon(auth, ""))
                .await?;
        }
    }
    session.step(Step::Basket, shop.get_basket(auth)).await?;

    let declining = session.rng.random_bool(ctx.plan.decline_share);
    let card = if declining { CARD_DECLINED } else { CARD_OK };
    let order_id = session
        .step(Step::Checkout, shop.checkout(auth, card, idempotency_key))
        .await?;
    let outcome = session
        .step_within(Step::WatchOrder, ctx.plan.settle_timeout, async {
            let order = shop.watch_until_settled(auth, &order_id).await?;
            expected(&order, declining)
        })
        .await?;
    match outcome {
        Outcome::Confirmed => Outcomes::add(&outcomes.confirmed, 1),
        Outcome::Declined => {
            Outcomes::add(&outcomes.declined, 1);
            session
                .step(Step::ClearBasket, shop.clear_basket(auth))
                .await?;
        }
    }
    session
        .step(Step::Notifications, shop.list_notifications(auth, true))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: OrderStatus, card_refused: bool) -> OrderView {
        OrderView {
            id: "o1".into(),
            user_id: "u1".into(),
            status,
            card_refused,
            cancellation_reason: if status == OrderStatus::Cancelled {
                "payment failed".into()
            } else {
                String::new()
            },
        }
    }

    #[test]
    fn a_good_card_must_confirm_and_the_declining_card_must_be_refused() {
        assert_eq!(
            expected(&order(OrderStatus::Confirmed, false), false),
            Ok(Outcome::Confirmed)
        );
        assert_eq!(
            expected(&order(OrderStatus::Shipped, false), false),
            Ok(Outcome::Confirmed)
        );
        assert_eq!(
            expected(&order(OrderStatus::Cancelled, true), true),
            Ok(Outcome::Declined)
        );
    }

    #[test]
    fn any_other_ending_is_an_error_saying_why() {
        let cancelled = expected(&order(OrderStatus::Cancelled, false), false).unwrap_err();
        assert_eq!(
            cancelled.failure,
            Failure::Unexpected(Unexpected::Cancelled)
        );
        assert!(
            cancelled.detail.contains("payment failed"),
            "{}",
            cancelled.detail
        );
        let paid = expected(&order(OrderStatus::Confirmed, false), true).unwrap_err();
        assert_eq!(
            paid.failure,
            Failure::Unexpected(Unexpected::ConfirmedDespiteDecline)
        );
        // Cancelled for another reason than the card (stock, coupon) with the declining card.
        let other = expected(&order(OrderStatus::Cancelled, false), true).unwrap_err();
        assert_eq!(other.failure, Failure::Unexpected(Unexpected::Cancelled));
    }
}
