//! The admin's round, at a low fixed rate beside the shoppers: the confirmed orders listed
//! (as an admin's back office shows them), this run's shoppers' ones shipped with a tracking
//! number, and products running low topped up, so a long run does not end up measuring
//! sold-out checkouts. Orders of other users are left alone: the shop may be someone's
//! development stack.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::Context;
use crate::session::Session;
use crate::shop::{Bearer, Call, Product, Shop};
use crate::stats::Outcomes;
use crate::step::Step;
use crate::users::Account;

/// Products whose stock one round looks at, in turn through the catalog.
const STOCK_CHECKS_PER_ROUND: usize = 20;

/// The tracking number of an order: letters, digits and '-' only (ShipOrder's rule), and
/// the same on a repeat, so shipping twice changes nothing.
fn tracking_number(order_id: &str) -> String {
    let id: String = order_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(60)
        .collect();
    format!("LG-{id}")
}

/// One round, due at `due`; its calls are recorded as the admin steps.
pub async fn round<S: Shop>(ctx: &Context<S>, admin: &mut Account, due: Instant) {
    let (_, mut session) = ctx.session(due);
    // A failed call ends the round; it is recorded, and the next round tries again.
    let _ = ship_and_restock(ctx, &mut session, admin).await;
}

async fn ship_and_restock<S: Shop>(
    ctx: &Context<S>,
    session: &mut Session<'_, S>,
    admin: &mut Account,
) -> Call<()> {
    admin.keep_fresh(session, &ctx.plan.admin.password).await?;
    let auth = &admin.bearer;
    let shop = session.shop;
    let outcomes = &session.stats().outcomes;
    let orders = session
        .step(Step::AdminOrders, shop.list_orders(auth, true, 50))
        .await?;
    let ours = orders
        .iter()
        .filter(|o| ctx.users.knows(&o.user_id))
        .take(ctx.plan.admin.ship_per_round);
    for order in ours {
        session
            .step(
                Step::AdminShip,
                shop.ship_order(auth, &order.id, &tracking_number(&order.id)),
            )
            .await?;
        Outcomes::add(&outcomes.shipped, 1);
    }
    if ctx.plan.admin.restock {
        let products = &ctx.catalog.products;
        let count = products.len().min(STOCK_CHECKS_PER_ROUND);
        let from = ctx.restock_cursor.fetch_add(count, Ordering::Relaxed);
        let window = (0..count).map(|i| &products[(from + i) % products.len()]);
        top_up(session, auth, window, &ctx.plan.admin).await?;
    }
    Ok(())
}

/// Tops up each of `products` whose available stock is below `admin.restock_below` to
/// `admin.restock_to`; counts the units added.
pub async fn top_up<'p, S: Shop>(
    session: &mut Session<'_, S>,
    auth: &Bearer,
    products: impl IntoIterator<Item = &'p Product>,
    admin: &crate::config::Admin,
) -> Call<()> {
    let shop = session.shop;
    let outcomes = &session.stats().outcomes;
    for product in products {
        let available = session
            .step(Step::AdminStock, shop.stock(auth, &product.id))
            .await?;
        if available < admin.restock_below {
            let delta = admin.restock_to - available;
            session
                .step(
                    Step::AdminRestock,
                    shop.adjust_stock(auth, &product.id, delta),
                )
                .await?;
            Outcomes::add(&outcomes.restocked, u64::try_from(delta).unwrap_or(0));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_numbers_follow_ship_orders_rule() {
        let number = tracking_number("0190f0a8-7c3e-7b1a-9a3e-5b2f6d1c4e8a");
        assert_eq!(number, "LG-0190f0a8-7c3e-7b1a-9a3e-5b2f6d1c4e8a");
        assert!(number.len() <= 64);
        assert!(
            number
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        );
        assert_eq!(tracking_number("a/b c"), "LG-abc");
    }
}
