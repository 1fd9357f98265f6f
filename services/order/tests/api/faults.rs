use std::time::{Duration, Instant};

use mercato::pb::order::v1::OrderStatus;
use mercato_testkit::assert_code;
use mercato_testkit::shop::{CARD_OK, TestShop, order_request};
use tonic::Code;

use crate::{assert_settled_consistently, place};

const NOWHERE: &str = "http://127.0.0.1:1";

#[tokio::test]
async fn a_catalog_that_is_down_is_a_quick_unavailable_and_nothing_is_placed() {
    let mut shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1000, 5).await;
    let (_, token) = shop.identity.customer().await;
    shop.stop_order().await;
    shop.start_order(&[("MERCATO_UPSTREAM_CATALOG", NOWHERE)])
        .await;

    let started = Instant::now();
    let status = assert_code(
        place(
            &shop,
            &token,
            order_request(&[(&lamp.id, 1)], CARD_OK, "down"),
        )
        .await,
        Code::Unavailable,
    );
    assert!(status.message().contains("catalog"), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(shop.stock(&lamp.id).await.available, 5);
}

#[tokio::test]
async fn an_inventory_that_is_down_cancels_the_checkout_with_a_reason_and_no_charge() {
    let mut shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1000, 5).await;
    let (_, token) = shop.identity.customer().await;
    shop.stop_order().await;
    shop.start_order(&[
        ("MERCATO_UPSTREAM_INVENTORY", NOWHERE),
        ("MERCATO_SAGA_SWEEP_MS", "200"),
    ])
    .await;

    let order = place(
        &shop,
        &token,
        order_request(&[(&lamp.id, 1)], CARD_OK, "inv"),
    )
    .await
    .unwrap();
    // Stock cannot be released while inventory is down: the order stays in compensation
    // until it returns, then settles as cancelled.
    assert!(
        order.cancellation_reason.contains("inventory"),
        "{}",
        order.cancellation_reason
    );
    shop.stop_order().await;
    shop.start_order(&[("MERCATO_SAGA_SWEEP_MS", "200")]).await;
    let order = shop
        .wait_for_order(&order.id, Duration::from_secs(40), |o| {
            o.status() == OrderStatus::Cancelled
        })
        .await;
    assert_settled_consistently(&shop, &order).await;
    assert_eq!(shop.stock(&lamp.id).await.available, 5);
}
