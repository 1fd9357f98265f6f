use mercato::pb::order::v1::{CancelOrderRequest, OrderStatus, ShipOrderRequest};
use mercato_testkit::shop::{CARD_DECLINED, CARD_NO_FUNDS, CARD_OK, TestShop, order_request};
use mercato_testkit::{assert_code, authed, read_stream};
use tonic::Code;

use crate::{net_cents, payment, payment_of, place};

#[tokio::test]
async fn a_checkout_confirms_charges_and_commits_stock() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1999, 5).await;
    let mug = shop.product("Mug", 850, 10).await;
    let (user_id, token) = shop.identity.customer().await;

    let order = place(
        &shop,
        &token,
        order_request(&[(&lamp.id, 2), (&mug.id, 1)], CARD_OK, "k1"),
    )
    .await
    .unwrap();
    assert_eq!(order.status(), OrderStatus::Confirmed, "{order:?}");
    assert_eq!(order.user_id, user_id);
    assert_eq!(order.lines.len(), 2);
    assert_eq!(order.lines[0].name, "Lamp");
    let total = order.total.clone().unwrap();
    assert_eq!((total.units, total.nanos), (48, 480_000_000));
    assert_eq!(order.version, 2);

    let paid = payment(&shop, &order.payment_id).await;
    assert_eq!(net_cents(&paid), 4848);
    assert_eq!(paid.card.unwrap().last4, "4242");
    let stock = shop.stock(&lamp.id).await;
    assert_eq!((stock.on_hand, stock.reserved, stock.available), (3, 0, 3));

    // Placed then confirmed, in that order, each once.
    let events = read_stream(&shop.identity.namespace, "order", 2).await;
    let types: Vec<_> = events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        [
            "mercato.order.v1.OrderPlaced",
            "mercato.order.v1.OrderConfirmed"
        ]
    );
    assert!(events.iter().all(|e| e.subject == order.id));
}

#[tokio::test]
async fn refused_cards_cancel_and_give_everything_back() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1000, 3).await;
    shop.coupon("TENOFF", 10, 5).await;
    let (_, token) = shop.identity.customer().await;

    for (card, reason) in [
        (CARD_DECLINED, "declined"),
        (CARD_NO_FUNDS, "insufficient funds"),
    ] {
        let mut request = order_request(&[(&lamp.id, 2)], card, card);
        request.coupon_code = "tenoff".into();
        let order = place(&shop, &token, request).await.unwrap();
        assert_eq!(order.status(), OrderStatus::Cancelled, "{order:?}");
        assert!(
            order.cancellation_reason.contains(reason),
            "{}",
            order.cancellation_reason
        );
        let failed = payment_of(&shop, &order.id).await.unwrap();
        assert_eq!(net_cents(&failed), 0, "nothing captured");
    }
    let stock = shop.stock(&lamp.id).await;
    assert_eq!((stock.on_hand, stock.reserved), (3, 0));
    let coupon = shop.coupon_now("TENOFF").await;
    assert_eq!(coupon.redemption_count, 0, "coupon uses were released");
}

#[tokio::test]
async fn out_of_stock_cancels_with_a_readable_reason() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Desk Lamp", 1000, 1).await;
    let (_, token) = shop.identity.customer().await;
    let order = place(&shop, &token, order_request(&[(&lamp.id, 2)], CARD_OK, "k"))
        .await
        .unwrap();
    assert_eq!(order.status(), OrderStatus::Cancelled);
    assert!(
        order.cancellation_reason.contains("Desk Lamp"),
        "{}",
        order.cancellation_reason
    );
    assert!(
        payment_of(&shop, &order.id).await.is_none(),
        "never charged"
    );
}

#[tokio::test]
async fn a_coupon_discounts_the_charge() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 2000, 3).await;
    shop.coupon("SPRING-25", 25, 0).await;
    let (_, token) = shop.identity.customer().await;
    let mut request = order_request(&[(&lamp.id, 1)], CARD_OK, "c1");
    request.coupon_code = "spring-25".into();
    let order = place(&shop, &token, request).await.unwrap();
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert_eq!(order.coupon_code, "SPRING-25");
    assert_eq!(order.discount.unwrap().units, 5);
    assert_eq!(net_cents(&payment(&shop, &order.payment_id).await), 1500);

    // An unknown coupon is refused before anything is reserved.
    let mut request = order_request(&[(&lamp.id, 1)], CARD_OK, "c2");
    request.coupon_code = "NOPE".into();
    let status = assert_code(
        place(&shop, &token, request).await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("NOPE"), "{status:?}");
    assert_eq!(shop.stock(&lamp.id).await.available, 2);
}

#[tokio::test]
async fn cancelling_a_confirmed_order_refunds_and_restocks_then_shipping_is_refused() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1500, 4).await;
    let (_, token) = shop.identity.customer().await;
    let (_, other) = shop.identity.customer().await;
    let order = place(&shop, &token, order_request(&[(&lamp.id, 3)], CARD_OK, "x"))
        .await
        .unwrap();
    assert_eq!(shop.stock(&lamp.id).await.on_hand, 1);

    let cancel = |token: &str| {
        authed(
            CancelOrderRequest {
                id: order.id.clone(),
                reason: String::new(),
            },
            token,
        )
    };
    // Another customer cannot see it, let alone cancel it.
    assert_code(
        shop.orders().await.cancel_order(cancel(&other)).await,
        Code::NotFound,
    );
    let cancelled = shop
        .orders()
        .await
        .cancel_order(cancel(&token))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(cancelled.status(), OrderStatus::Cancelled);
    assert_eq!(cancelled.cancellation_reason, "cancelled by the customer");
    assert_eq!(cancelled.version, 3);
    assert_eq!(net_cents(&payment(&shop, &order.payment_id).await), 0);
    let stock = shop.stock(&lamp.id).await;
    assert_eq!((stock.on_hand, stock.reserved), (4, 0));

    // Cancelling again changes nothing; shipping a cancelled order is refused.
    let again = shop
        .orders()
        .await
        .cancel_order(cancel(&token))
        .await
        .unwrap();
    assert_eq!(again.into_inner().order.unwrap().version, 3);
    let ship = ShipOrderRequest {
        id: order.id.clone(),
        tracking_number: "TRACK-1".into(),
    };
    assert_code(
        shop.orders()
            .await
            .ship_order(authed(ship, &shop.admin))
            .await,
        Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn shipping_is_for_admins_and_ends_cancellation() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1500, 4).await;
    let (_, token) = shop.identity.customer().await;
    let order = place(&shop, &token, order_request(&[(&lamp.id, 1)], CARD_OK, "s"))
        .await
        .unwrap();
    let ship = |tracking: &str| ShipOrderRequest {
        id: order.id.clone(),
        tracking_number: tracking.into(),
    };
    assert_code(
        shop.orders()
            .await
            .ship_order(authed(ship("T-1"), &token))
            .await,
        Code::PermissionDenied,
    );
    let shipped = shop
        .orders()
        .await
        .ship_order(authed(ship("T-1"), &shop.admin))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(shipped.status(), OrderStatus::Shipped);
    assert_eq!(shipped.tracking_number, "T-1");
    // Idempotent with the same tracking number.
    shop.orders()
        .await
        .ship_order(authed(ship("T-1"), &shop.admin))
        .await
        .unwrap();
    let status = assert_code(
        shop.orders()
            .await
            .cancel_order(authed(
                CancelOrderRequest {
                    id: order.id.clone(),
                    reason: String::new(),
                },
                &token,
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("shipped"));
    let events = read_stream(&shop.identity.namespace, "order", 3).await;
    assert_eq!(events[2].r#type, "mercato.order.v1.OrderShipped");
}
