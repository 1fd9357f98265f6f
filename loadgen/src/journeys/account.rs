//! Account: the shopper's orders (and the newest one opened), then the notifications, the
//! first unread one marked read.

use crate::session::Session;
use crate::shop::{Bearer, Call, Shop};
use crate::step::Step;

pub(super) async fn run<S: Shop>(session: &mut Session<'_, S>, auth: &Bearer) -> Call<()> {
    let shop = session.shop;
    let orders = session
        .step(Step::Orders, shop.list_orders(auth, false, 10))
        .await?;
    if let Some(newest) = orders.first() {
        session
            .step(Step::Order, shop.get_order(auth, &newest.id))
            .await?;
    }
    let notices = session
        .step(Step::Notifications, shop.list_notifications(auth, false))
        .await?;
    if let Some(unread) = notices.iter().find(|n| !n.read) {
        session
            .step(Step::MarkRead, shop.mark_read(auth, &unread.id))
            .await?;
    }
    Ok(())
}
