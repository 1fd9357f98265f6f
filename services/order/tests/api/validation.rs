use mercato::pb::order::v1::{
    CancelOrderRequest, GetOrderRequest, OrderStatus, ShipOrderRequest, ShippingAddress,
};
use mercato::pb::payment::v1::PaymentStatus;
use mercato_testkit::shop::{CARD_OK, TestShop, order_request};
use mercato_testkit::{assert_code, authed, violated_fields};
use tonic::Code;

use crate::{payment, place};

#[tokio::test]
async fn bad_orders_are_refused_with_every_field_named() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1000, 5).await;
    let (_, token) = shop.identity.customer().await;

    let mut request = order_request(&[(&lamp.id, 0), (&lamp.id, 100)], "4242424242424241", "");
    request.shipping_address.as_mut().unwrap().country = "Britain".into();
    let status = assert_code(place(&shop, &token, request).await, Code::InvalidArgument);
    let fields = violated_fields(&status);
    for field in [
        "items[0].quantity",
        "items[1].product_id",
        "items[1].quantity",
        "card.number",
        "shipping_address.country",
        "idempotency_key",
    ] {
        assert!(
            fields.iter().any(|f| f == field),
            "{field} not in {fields:?}"
        );
    }

    let mut request = order_request(&[(&lamp.id, 1)], CARD_OK, "k");
    request.card = None;
    request.shipping_address = None;
    request.items.clear();
    let status = assert_code(place(&shop, &token, request).await, Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        ["items", "card", "shipping_address"]
    );

    // Products the catalog does not know are named too.
    let unknown = "0190a3c1-1c2d-7e3f-8a4b-5c6d7e8f9a0b";
    let status = assert_code(
        place(
            &shop,
            &token,
            order_request(&[(&lamp.id, 1), (unknown, 1)], CARD_OK, "k"),
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["items[1].product_id"]);
    assert_eq!(shop.stock(&lamp.id).await.available, 5, "nothing reserved");
}

#[tokio::test]
async fn a_nul_in_any_text_is_a_field_violation_and_nothing_is_reserved() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1000, 5).await;
    let (_, token) = shop.identity.customer().await;
    for name in ["name", "line1", "line2", "city", "postal_code", "country"] {
        let mut request = order_request(&[(&lamp.id, 1)], CARD_OK, &format!("nul-{name}"));
        let address: &mut ShippingAddress = request.shipping_address.as_mut().unwrap();
        let field = match name {
            "name" => &mut address.name,
            "line1" => &mut address.line1,
            "line2" => &mut address.line2,
            "city" => &mut address.city,
            "postal_code" => &mut address.postal_code,
            _ => &mut address.country,
        };
        field.push('\0');
        let status = assert_code(place(&shop, &token, request).await, Code::InvalidArgument);
        assert_eq!(
            violated_fields(&status),
            [format!("shipping_address.{name}")]
        );
    }
    assert_eq!(shop.stock(&lamp.id).await.available, 5, "nothing reserved");

    let order = place(
        &shop,
        &token,
        order_request(&[(&lamp.id, 1)], CARD_OK, "nul-ok"),
    )
    .await
    .unwrap();
    let cancel = CancelOrderRequest {
        id: order.id,
        reason: "changed\0my mind".into(),
    };
    let status = assert_code(
        shop.orders()
            .await
            .cancel_order(authed(cancel, &token))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["reason"]);
}

#[tokio::test]
async fn who_may_do_what() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1000, 5).await;
    let (_, token) = shop.identity.customer().await;
    let request = || order_request(&[(&lamp.id, 1)], CARD_OK, "who");

    assert_code(
        shop.orders().await.place_order(request()).await,
        Code::Unauthenticated,
    );
    // A service account cannot buy: orders belong to users.
    assert_code(
        place(&shop, &shop.service, request()).await,
        Code::PermissionDenied,
    );
    let order = place(&shop, &token, request()).await.unwrap();

    // The write model's GetOrder is internal.
    let get = || GetOrderRequest {
        id: order.id.clone(),
    };
    assert_code(
        shop.orders().await.get_order(authed(get(), &token)).await,
        Code::PermissionDenied,
    );
    assert_code(
        shop.orders()
            .await
            .get_order(authed(get(), &shop.admin))
            .await,
        Code::PermissionDenied,
    );
    shop.orders()
        .await
        .get_order(authed(get(), &shop.service))
        .await
        .unwrap();

    // Malformed ids and tracking numbers.
    let status = assert_code(
        shop.orders()
            .await
            .cancel_order(authed(
                CancelOrderRequest {
                    id: "nope".into(),
                    reason: String::new(),
                },
                &token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["id"]);
    let status = assert_code(
        shop.orders()
            .await
            .ship_order(authed(
                ShipOrderRequest {
                    id: order.id.clone(),
                    tracking_number: "has spaces".into(),
                },
                &shop.admin,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["tracking_number"]);
}

#[tokio::test]
async fn the_shared_rules_apply_to_coupon_codes_keys_and_ids() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1000, 5).await;
    let (_, token) = shop.identity.customer().await;

    // A code shorter than any the discount service creates is refused where it is typed.
    let mut request = order_request(&[(&lamp.id, 1)], CARD_OK, "short-code");
    request.coupon_code = "ab".into();
    let status = assert_code(place(&shop, &token, request).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["coupon_code"]);

    // An idempotency key is one line, as the basket and the payment service take it.
    let request = order_request(&[(&lamp.id, 1)], CARD_OK, "two\nlines");
    let status = assert_code(place(&shop, &token, request).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["idempotency_key"]);

    // The same product spelled twice is one product.
    let simple = lamp.id.replace('-', "").to_ascii_uppercase();
    let request = order_request(&[(&lamp.id, 1), (&simple, 1)], CARD_OK, "twice");
    let status = assert_code(place(&shop, &token, request).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["items[1].product_id"]);
    assert_eq!(shop.stock(&lamp.id).await.available, 5, "nothing reserved");

    // Any spelling of a product id orders that product, under its canonical id.
    let order = place(
        &shop,
        &token,
        order_request(&[(&simple, 2)], CARD_OK, "simple-id"),
    )
    .await
    .unwrap();
    assert_eq!(order.lines[0].product_id, lamp.id);
    assert_eq!(shop.stock(&lamp.id).await.on_hand, 3);
}

#[tokio::test]
async fn a_cancellation_reason_the_refund_would_refuse_is_refused_first() {
    let shop = TestShop::start().await;
    let lamp = shop.product("Lamp", 1000, 5).await;
    let (_, token) = shop.identity.customer().await;
    let order = place(
        &shop,
        &token,
        order_request(&[(&lamp.id, 1)], CARD_OK, "reason"),
    )
    .await
    .unwrap();
    let cancel = |reason: &str| CancelOrderRequest {
        id: order.id.clone(),
        reason: reason.into(),
    };
    for reason in ["bell\u{7}", "carriage\rreturn", &"x".repeat(501)] {
        let status = assert_code(
            shop.orders()
                .await
                .cancel_order(authed(cancel(reason), &token))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["reason"], "{reason:?}");
    }
    let cancelled = shop
        .orders()
        .await
        .cancel_order(authed(cancel("changed my mind\nsorry"), &token))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(cancelled.status(), OrderStatus::Cancelled);
    assert_eq!(cancelled.cancellation_reason, "changed my mind\nsorry");
    let refunded = payment(&shop, &order.payment_id).await;
    assert_eq!(refunded.status(), PaymentStatus::Refunded, "{refunded:?}");
}
