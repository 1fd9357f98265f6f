use std::time::Duration;

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use futures::future::join_all;
use mercato::pb::inventory::v1::{ReserveStockRequest, StockItem};
use mercato::pb::order::v1::OrderStatus;
use mercato::pb::payment::v1::ChargeRequest;
use mercato_testkit::shop::{CARD_OK, TestShop, card, eur, order_request};
use mercato_testkit::{authed, nats_url, read_stream};
use order::domain::{PricedLine, Step};
use order::store::{InsertOrder, insert_order};

use crate::{assert_settled_consistently, place};

/// A quick sweep and a short lease, so resumed sagas finish within the test.
const FAST_RECOVERY: [(&str, &str); 2] = [
    ("MERCATO_SAGA_SWEEP_MS", "200"),
    ("MERCATO_SAGA_LEASE_MS", "1000"),
];

/// Writes an order as a live executor holds it at `step`: leased for an hour, so the sweep
/// leaves it alone while the test recreates what that executor did; [`crash`] then ends the
/// lease.
async fn leased_order(shop: &TestShop, user_id: &str, product_id: &str, step: Step) -> String {
    let mut conn = AsyncPgConnection::establish(&shop.order_db.url)
        .await
        .unwrap();
    let id = uuid::Uuid::now_v7();
    let line = PricedLine {
        product_id: product_id.into(),
        name: "Lamp".into(),
        quantity: 2,
        unit_price_nanos: 10_000_000_000,
    };
    let key = id.to_string();
    let insert = InsertOrder {
        id,
        user_id,
        idempotency_key: &key,
        request_hash: "x",
        status: "pending",
        currency: "EUR",
        subtotal_nanos: 20_000_000_000,
        discount_nanos: 0,
        coupon_code: "",
        ship_name: "Ada",
        ship_line1: "1 Street",
        ship_line2: "",
        ship_city: "London",
        ship_postal_code: "N1",
        ship_country: "GB",
        saga_step: step.as_str(),
        saga_lease_until: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
    };
    insert_order(&mut conn, &insert, &[line])
        .await
        .unwrap()
        .unwrap();
    id.to_string()
}

/// The executor holding `order_id` dies: its lease is over and the sweep may take the order.
async fn crash(shop: &TestShop, order_id: &str) {
    use diesel::{ExpressionMethods as _, QueryDsl as _};
    use diesel_async::RunQueryDsl as _;
    use order::schema::orders;

    let mut conn = AsyncPgConnection::establish(&shop.order_db.url)
        .await
        .unwrap();
    let id: uuid::Uuid = order_id.parse().unwrap();
    let updated = diesel::update(orders::table.filter(orders::id.eq(id)))
        .set(orders::saga_lease_until.eq(chrono::Utc::now() - chrono::Duration::seconds(1)))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(updated, 1);
}

async fn reserve_directly(shop: &TestShop, order_id: &str, product_id: &str) {
    shop.inventory_client()
        .await
        .reserve_stock(authed(
            ReserveStockRequest {
                order_id: order_id.into(),
                items: vec![StockItem {
                    product_id: product_id.into(),
                    quantity: 2,
                }],
            },
            &shop.service,
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_saga_that_died_before_payment_is_compensated_by_the_sweep() {
    let shop = TestShop::start_with(&FAST_RECOVERY).await;
    let lamp = shop.product("Lamp", 1000, 5).await;
    let (user_id, _) = shop.identity.customer().await;
    // The executor reserved stock and died before redeeming the coupon and charging.
    let order_id = leased_order(&shop, &user_id, &lamp.id, Step::Redeem).await;
    reserve_directly(&shop, &order_id, &lamp.id).await;
    assert_eq!(shop.stock(&lamp.id).await.reserved, 2);
    crash(&shop, &order_id).await;

    let order = shop
        .wait_for_order(&order_id, Duration::from_secs(15), |o| {
            o.status() != OrderStatus::Pending
        })
        .await;
    assert_eq!(order.status(), OrderStatus::Cancelled);
    assert!(order.cancellation_reason.contains("interrupted"));
    let stock = shop.stock(&lamp.id).await;
    assert_eq!(
        (stock.on_hand, stock.reserved),
        (5, 0),
        "reservation released"
    );
    assert_settled_consistently(&shop, &order).await;
}

#[tokio::test]
async fn a_saga_that_died_after_charging_is_confirmed_by_the_sweep() {
    let shop = TestShop::start_with(&FAST_RECOVERY).await;
    let lamp = shop.product("Lamp", 1000, 5).await;
    let (user_id, _) = shop.identity.customer().await;
    // The executor reserved, charged, and died before committing the stock.
    let order_id = leased_order(&shop, &user_id, &lamp.id, Step::Charge).await;
    reserve_directly(&shop, &order_id, &lamp.id).await;
    shop.payment_client()
        .await
        .charge(authed(
            ChargeRequest {
                order_id: order_id.clone(),
                user_id: user_id.clone(),
                amount: Some(eur(2000)),
                card: Some(card(CARD_OK)),
                idempotency_key: order_id.clone(),
            },
            &shop.service,
        ))
        .await
        .unwrap();
    crash(&shop, &order_id).await;

    let order = shop
        .wait_for_order(&order_id, Duration::from_secs(15), |o| {
            o.status() != OrderStatus::Pending
        })
        .await;
    assert_eq!(order.status(), OrderStatus::Confirmed, "{order:?}");
    assert!(!order.payment_id.is_empty());
    let stock = shop.stock(&lamp.id).await;
    assert_eq!((stock.on_hand, stock.reserved), (3, 0), "stock committed");
    assert_settled_consistently(&shop, &order).await;
}

#[tokio::test]
async fn checkouts_cut_short_by_deadlines_settle_consistently() {
    let shop = TestShop::start_with(&FAST_RECOVERY).await;
    let lamp = shop.product("Lamp", 1000, 30).await;
    let (_, token) = shop.identity.customer().await;
    // Deadlines so short the server drops most checkouts somewhere mid-saga.
    let cut = join_all((0..20u64).map(|i| {
        let shop = &shop;
        let token = token.clone();
        let id = lamp.id.clone();
        async move {
            let mut request = authed(
                order_request(&[(&id, 1)], CARD_OK, &format!("d{i}")),
                &token,
            );
            request.set_timeout(Duration::from_millis(5 + 3 * i));
            let _ = shop.orders().await.place_order(request).await;
        }
    }))
    .await;
    assert_eq!(cut.len(), 20);

    // The customer retries each checkout with its key: the same order comes back settled.
    for i in 0..20 {
        let order = place(
            &shop,
            &token,
            order_request(&[(&lamp.id, 1)], CARD_OK, &format!("d{i}")),
        )
        .await
        .unwrap();
        let order = shop
            .wait_for_order(&order.id, Duration::from_secs(20), |o| {
                o.status() != OrderStatus::Pending
            })
            .await;
        assert_settled_consistently(&shop, &order).await;
    }
    let stock = shop.stock(&lamp.id).await;
    assert_eq!(stock.reserved, 0, "nothing left reserved: {stock:?}");
}

#[tokio::test]
async fn orders_succeed_while_nats_is_down_and_their_events_follow_exactly_once() {
    let mut shop = TestShop::start_with(&[("NATS_URL", "nats://127.0.0.1:1")]).await;
    let lamp = shop.product("Lamp", 1000, 5).await;
    let (_, token) = shop.identity.customer().await;
    for i in 0..3 {
        let order = place(
            &shop,
            &token,
            order_request(&[(&lamp.id, 1)], CARD_OK, &format!("n{i}")),
        )
        .await
        .unwrap();
        assert_eq!(order.status(), OrderStatus::Confirmed);
    }
    // NATS "comes back": the restarted service finds its outbox and publishes it.
    shop.stop_order().await;
    shop.start_order(&[("NATS_URL", &nats_url())]).await;
    let events = read_stream(&shop.identity.namespace, "order", 6).await;
    let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 6, "each event once");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.r#type == "mercato.order.v1.OrderConfirmed")
            .count(),
        3
    );
}
