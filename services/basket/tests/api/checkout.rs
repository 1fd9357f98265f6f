//! Checkout through the order service: the whole saga runs behind it.

use mercato::pb::basket::v1::CheckoutRequest;
use mercato::pb::order::v1::{OrderStatus, ShippingAddress};
use mercato::pb::payment::v1::{Card, LookupChargeRequest, Payment, PaymentStatus};
use mercato_testkit::shop::{CARD_DECLINED, CARD_OK, TestShop, address, card};
use mercato_testkit::{assert_code, authed, violated_fields};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::{TestBasket, cents, lines};

/// The payment of an order (the saga charges with the order id as key).
async fn payment_of(shop: &TestShop, order_id: &str) -> Payment {
    shop.payment_client()
        .await
        .lookup_charge(authed(
            LookupChargeRequest {
                idempotency_key: order_id.into(),
            },
            &shop.service,
        ))
        .await
        .unwrap()
        .into_inner()
        .payment
        .unwrap()
}

#[tokio::test]
async fn a_confirmed_checkout_charges_takes_stock_and_empties_the_basket() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 2000, 5).await;
    let mug = basket.shop.product("Mug", 850, 10).await;
    basket.shop.coupon("TENOFF", 10, 0).await;
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 2).await.unwrap();
    shopper.add(&mug.id, 1).await.unwrap();
    let priced = shopper.apply_coupon("tenoff").await.unwrap();

    let order = shopper.checkout(CARD_OK, "checkout-1").await.unwrap();
    assert_eq!(order.status(), OrderStatus::Confirmed, "{order:?}");
    assert_eq!(order.user_id, shopper.user_id);
    let ordered: Vec<_> = order
        .lines
        .iter()
        .map(|l| (l.product_id.clone(), l.quantity))
        .collect();
    assert_eq!(ordered, lines(&priced));
    assert_eq!(order.coupon_code, "TENOFF");
    assert_eq!(cents(&order.total), cents(&priced.total));
    assert_eq!(cents(&order.total), 4850 - 485);

    let paid = payment_of(&basket.shop, &order.id).await;
    assert_eq!(paid.status(), PaymentStatus::Captured);
    assert_eq!(cents(&paid.captured_amount), 4365);
    assert_eq!(basket.shop.stock(&lamp.id).await.on_hand, 3);
    assert_eq!(basket.shop.stock(&mug.id).await.on_hand, 9);

    let after = shopper.get().await.unwrap();
    assert!(after.lines.is_empty(), "{after:?}");
    assert_eq!(after.coupon_code, "");
}

#[tokio::test]
async fn a_declined_card_cancels_the_order_and_keeps_the_basket() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 2000, 5).await;
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 2).await.unwrap();

    let order = shopper.checkout(CARD_DECLINED, "declined").await.unwrap();
    assert_eq!(order.status(), OrderStatus::Cancelled, "{order:?}");
    assert!(
        order.cancellation_reason.contains("declined"),
        "{}",
        order.cancellation_reason
    );
    assert_eq!(lines(&shopper.get().await.unwrap()), [(lamp.id.clone(), 2)]);
    let stock = basket.shop.stock(&lamp.id).await;
    assert_eq!((stock.on_hand, stock.reserved), (5, 0));

    // The kept basket checks out with another card and a new key.
    let order = shopper.checkout(CARD_OK, "second-try").await.unwrap();
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert!(shopper.get().await.unwrap().lines.is_empty());
}

#[tokio::test]
async fn a_repeated_checkout_returns_the_same_order_and_a_reused_key_is_refused() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 2000, 5).await;
    let mug = basket.shop.product("Mug", 850, 5).await;
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 1).await.unwrap();

    let first = shopper.checkout(CARD_OK, "same-key").await.unwrap();
    assert_eq!(first.status(), OrderStatus::Confirmed);
    // A retry (the answer was lost): the basket was emptied by that checkout.
    let again = shopper.checkout(CARD_OK, "same-key").await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.status(), OrderStatus::Confirmed);

    // A new basket under the old key is refused, as PlaceOrder refuses it, not answered
    // with the earlier order while the new basket goes unordered.
    shopper.add(&mug.id, 1).await.unwrap();
    let status = assert_code(
        shopper.checkout(CARD_OK, "same-key").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "IDEMPOTENCY_KEY_REUSED"
    );
    assert_eq!(
        basket.shop.stock(&lamp.id).await.on_hand,
        4,
        "charged and taken once"
    );
    assert_eq!(basket.shop.stock(&mug.id).await.on_hand, 5);
    assert_eq!(
        lines(&shopper.get().await.unwrap()),
        [(mug.id.clone(), 1)],
        "the new basket is kept"
    );
    let second = shopper.checkout(CARD_OK, "new-key").await.unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(basket.shop.stock(&mug.id).await.on_hand, 4);
}

#[tokio::test]
async fn concurrent_checkouts_with_one_key_place_one_order() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 2000, 5).await;
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 1).await.unwrap();
    let results =
        futures::future::join_all((0..3).map(|_| shopper.checkout(CARD_OK, "double-click"))).await;
    let ids: Vec<_> = results.into_iter().map(|r| r.unwrap().id).collect();
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    assert_eq!(basket.shop.stock(&lamp.id).await.on_hand, 4);
}

#[tokio::test]
async fn an_empty_basket_cannot_be_checked_out() {
    let basket = TestBasket::start().await;
    let shopper = basket.shopper().await;
    let status = assert_code(
        shopper.checkout(CARD_OK, "nothing").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "BASKET_EMPTY"
    );
}

#[tokio::test]
async fn checkout_input_is_validated_with_every_problem_named() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 2000, 5).await;
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 1).await.unwrap();

    let request = CheckoutRequest {
        card: Some(Card {
            exp_month: 13,
            ..card("1234")
        }),
        shipping_address: Some(ShippingAddress {
            country: "germany".into(),
            ..address()
        }),
        idempotency_key: String::new(),
    };
    let status = assert_code(shopper.checkout_with(request).await, Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        [
            "card.number",
            "card.exp_month",
            "shipping_address.country",
            "idempotency_key"
        ]
    );
    let status = assert_code(
        shopper
            .checkout_with(CheckoutRequest {
                idempotency_key: "k".into(),
                ..CheckoutRequest::default()
            })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["card", "shipping_address"]);

    // A NUL, which no store accepts, is refused before anything is placed.
    let status = assert_code(
        shopper
            .checkout_with(CheckoutRequest {
                card: Some(card(CARD_OK)),
                shipping_address: Some(ShippingAddress {
                    line1: "Main St\0 1".into(),
                    ..address()
                }),
                idempotency_key: "nul".into(),
            })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["shipping_address.line1"]);
    assert_eq!(lines(&shopper.get().await.unwrap()), [(lamp.id.clone(), 1)]);
}

#[tokio::test]
async fn order_refusals_pass_through_and_free_the_key() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 2000, 5).await;
    basket.shop.coupon("ONCE", 10, 1).await;
    let shopper = basket.shopper().await;
    let other = basket.shopper().await;
    shopper.add(&lamp.id, 1).await.unwrap();
    other.add(&lamp.id, 1).await.unwrap();
    shopper.apply_coupon("once").await.unwrap();
    other.apply_coupon("once").await.unwrap();

    // The other customer uses the coupon up first: the order service refuses it.
    let used = other.checkout(CARD_OK, "k1").await.unwrap();
    assert_eq!(used.status(), OrderStatus::Confirmed);
    let status = assert_code(
        shopper.checkout(CARD_OK, "k1").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "COUPON_EXHAUSTED"
    );
    // Without the coupon, the same key now places the order.
    shopper.apply_coupon("").await.unwrap();
    let order = shopper.checkout(CARD_OK, "k1").await.unwrap();
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert_eq!(order.coupon_code, "");
}

#[tokio::test]
async fn checkout_input_is_judged_by_place_order_with_the_same_field_paths() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 2000, 5).await;
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 1).await.unwrap();

    let request = CheckoutRequest {
        card: Some(Card {
            number: "4242424242424241".into(),
            exp_month: 13,
            exp_year: 2099,
            cvc: "123".into(),
            holder_name: "Ada".into(),
        }),
        shipping_address: Some(ShippingAddress {
            country: "gb".into(),
            ..ShippingAddress::default()
        }),
        idempotency_key: "k".repeat(129),
    };
    let status = assert_code(shopper.checkout_with(request).await, Code::InvalidArgument);
    let got = violated_fields(&status);
    for field in [
        "card.number",
        "card.exp_month",
        "shipping_address.name",
        "shipping_address.country",
        "idempotency_key",
    ] {
        assert!(
            got.iter().any(|f| f == field),
            "{field} missing from {got:?}"
        );
    }
    let status = assert_code(
        shopper.checkout_with(CheckoutRequest::default()).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        ["card", "shipping_address", "idempotency_key"]
    );

    // A refused checkout frees its key and keeps the basket.
    let status = assert_code(
        shopper.checkout("4242", "fixed").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["card.number"]);
    assert_eq!(lines(&shopper.get().await.unwrap()), [(lamp.id.clone(), 1)]);
    let order = shopper.checkout(CARD_OK, "fixed").await.unwrap();
    assert_eq!(order.status(), OrderStatus::Confirmed);
}

#[tokio::test]
async fn a_refused_retry_keeps_the_record_of_the_order_its_key_placed() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 2000, 5).await;
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 1).await.unwrap();
    let first = shopper.checkout(CARD_OK, "placed").await.unwrap();
    assert_eq!(first.status(), OrderStatus::Confirmed);

    // A retry with a mistyped card is refused by PlaceOrder, but the key still names the
    // order it placed: the next retry gets that order, not an empty basket.
    let status = assert_code(
        shopper.checkout("4242", "placed").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["card.number"]);
    let again = shopper.checkout(CARD_OK, "placed").await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(basket.shop.stock(&lamp.id).await.on_hand, 4, "charged once");
}
