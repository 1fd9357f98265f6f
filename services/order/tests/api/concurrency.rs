use std::collections::HashSet;

use futures::future::join_all;
use mercato::pb::order::v1::OrderStatus;
use mercato_testkit::shop::{CARD_OK, TestShop, order_request};

use crate::{assert_settled_consistently, payment_of, place};

#[tokio::test]
async fn two_hundred_buyers_for_fifty_units_never_oversell() {
    // A quick sweep: a checkout whose step a saturated peer postponed is finished soon.
    let shop = TestShop::start_with(&[("MERCATO_SAGA_SWEEP_MS", "200")]).await;
    let lamp = shop.product("Last Lamps", 1200, 50).await;
    let mut buyers = Vec::new();
    for _ in 0..8 {
        buyers.push(shop.identity.customer().await.1);
    }
    let answered = join_all((0..200).map(|i| {
        let shop = &shop;
        let token = buyers[i % buyers.len()].clone();
        let id = lamp.id.clone();
        async move {
            // As a client does: UNAVAILABLE (the order service's own pool exhausted on a
            // loaded machine) is retried with the same key, which places the order once.
            let mut attempt = 0;
            loop {
                let request = order_request(&[(&id, 1)], CARD_OK, &format!("k{i}"));
                match place(shop, &token, request).await {
                    Err(status) if status.code() == tonic::Code::Unavailable && attempt < 20 => {
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                    }
                    answer => break answer.unwrap(),
                }
            }
        }
    }))
    .await;
    // On a loaded machine a peer can be too busy for a step (its pool exhausted): the order
    // then comes back PENDING and the sweep settles it, or it is cancelled at once; either
    // way it says nothing was charged.
    let postponed = answered
        .iter()
        .filter(|o| o.status() == OrderStatus::Pending)
        .count();
    let mut orders = Vec::new();
    for order in answered {
        orders.push(
            shop.wait_for_order(&order.id, std::time::Duration::from_secs(60), |o| {
                o.status() != OrderStatus::Pending
            })
            .await,
        );
    }

    let confirmed: Vec<_> = orders
        .iter()
        .filter(|o| o.status() == OrderStatus::Confirmed)
        .collect();
    let cancelled: Vec<_> = orders
        .iter()
        .filter(|o| o.status() == OrderStatus::Cancelled)
        .collect();
    let degraded: Vec<_> = cancelled
        .iter()
        .filter(|o| !o.cancellation_reason.contains("not enough stock"))
        .collect();
    assert!(confirmed.len() <= 50, "oversold: {}", confirmed.len());
    assert_eq!(confirmed.len() + cancelled.len(), 200);
    assert!(
        degraded
            .iter()
            .all(|o| o.cancellation_reason.contains("nothing was charged")),
        "{:?}",
        cancelled
            .iter()
            .map(|o| &o.cancellation_reason)
            .collect::<HashSet<_>>()
    );
    if postponed == 0 && degraded.is_empty() {
        // Nothing degraded: every unit sold, every other buyer told there is no stock.
        assert_eq!(confirmed.len(), 50);
    }
    let stock = shop.stock(&lamp.id).await;
    let left = 50 - i32::try_from(confirmed.len()).unwrap();
    assert_eq!(
        (stock.on_hand, stock.reserved, stock.available),
        (left, 0, left)
    );
    // Every charge belongs to a confirmed order; cancelled ones were never charged.
    for order in &orders {
        assert_settled_consistently(&shop, order).await;
    }
}

#[tokio::test]
async fn concurrent_retries_with_one_key_make_one_order_and_one_charge() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1000, 20).await;
    let (_, token) = shop.identity.customer().await;
    let orders = join_all((0..10).map(|_| {
        place(
            &shop,
            &token,
            order_request(&[(&lamp.id, 2)], CARD_OK, "same-key"),
        )
    }))
    .await;
    let ids: HashSet<_> = orders
        .iter()
        .map(|o| o.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids.len(), 1, "one order");
    let order = orders[0].as_ref().unwrap();
    assert!(
        orders
            .iter()
            .all(|o| o.as_ref().unwrap().status() == OrderStatus::Confirmed),
        "{orders:?}"
    );
    assert!(payment_of(&shop, &order.id).await.is_some());
    assert_eq!(shop.stock(&lamp.id).await.on_hand, 18, "stock taken once");

    // The same key with a different basket is a client bug, not a new order.
    let status = mercato_testkit::assert_code(
        place(
            &shop,
            &token,
            order_request(&[(&lamp.id, 3)], CARD_OK, "same-key"),
        )
        .await,
        tonic::Code::FailedPrecondition,
    );
    assert!(status.message().contains("idempotency_key"));
    // Keys are per user: another customer's "same-key" is another order.
    let (_, other) = shop.identity.customer().await;
    let theirs = place(
        &shop,
        &other,
        order_request(&[(&lamp.id, 2)], CARD_OK, "same-key"),
    )
    .await
    .unwrap();
    assert_ne!(theirs.id, order.id);
}

#[tokio::test]
async fn a_coupon_for_five_survives_twenty_concurrent_checkouts() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1000, 100).await;
    shop.coupon("FIRST5", 50, 5).await;
    let (_, token) = shop.identity.customer().await;
    let orders = join_all((0..20).map(|i| {
        let mut request = order_request(&[(&lamp.id, 1)], CARD_OK, &format!("c{i}"));
        request.coupon_code = "FIRST5".into();
        place(&shop, &token, request)
    }))
    .await;
    let orders: Vec<_> = orders.into_iter().map(Result::unwrap).collect();
    let confirmed = orders
        .iter()
        .filter(|o| o.status() == OrderStatus::Confirmed)
        .count();
    assert_eq!(confirmed, 5);
    for order in orders
        .iter()
        .filter(|o| o.status() == OrderStatus::Cancelled)
    {
        assert!(
            order.cancellation_reason.contains("FIRST5"),
            "{}",
            order.cancellation_reason
        );
        assert_settled_consistently(&shop, order).await;
    }
    let coupon = shop.coupon_now("FIRST5").await;
    assert_eq!(coupon.redemption_count, 5);
    let stock = shop.stock(&lamp.id).await;
    assert_eq!((stock.on_hand, stock.reserved), (95, 0));
}
