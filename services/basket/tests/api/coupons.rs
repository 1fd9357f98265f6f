//! Coupons: quoted by the discount service for the basket's current subtotal.

use chrono::{Duration, Utc};
use mercato::pb::discount::v1::{
    Coupon, CreateCouponRequest, InapplicableReason, RedeemCouponRequest, coupon,
};
use mercato_kernel::time::to_timestamp;
use mercato_testkit::shop::eur;
use mercato_testkit::{assert_code, authed, violated_fields};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::{TestBasket, cents};

async fn create_coupon(basket: &TestBasket, coupon: Coupon) {
    basket
        .shop
        .discount_client()
        .await
        .create_coupon(authed(
            CreateCouponRequest {
                coupon: Some(coupon),
            },
            &basket.shop.admin,
        ))
        .await
        .unwrap();
}

fn percent_off(code: &str, percent: i32) -> Coupon {
    Coupon {
        code: code.into(),
        value: Some(coupon::Value::PercentOff(percent)),
        ..Coupon::default()
    }
}

fn reason_of(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .unwrap()
        .reason
        .clone()
}

#[tokio::test]
async fn a_percent_coupon_comes_off_the_total_and_follows_the_basket() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 2000, 0).await;
    basket.shop.coupon("SPRING-25", 25, 0).await;
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 2).await.unwrap();

    let with = shopper.apply_coupon("  spring-25 ").await.unwrap();
    assert_eq!(with.coupon_code, "SPRING-25");
    assert_eq!(with.coupon_inapplicable_reason, 0);
    assert_eq!(
        (
            cents(&with.subtotal),
            cents(&with.discount),
            cents(&with.total)
        ),
        (4000, 1000, 3000)
    );

    // The discount is quoted again for every answer.
    let more = shopper.add(&lamp.id, 2).await.unwrap();
    assert_eq!((cents(&more.discount), cents(&more.total)), (2000, 6000));

    let without = shopper.apply_coupon("").await.unwrap();
    assert_eq!(without.coupon_code, "");
    assert_eq!((cents(&without.discount), cents(&without.total)), (0, 8000));
}

#[tokio::test]
async fn coupons_that_can_never_apply_are_refused_and_not_kept() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 2000, 0).await;
    let now = Utc::now();
    create_coupon(
        &basket,
        Coupon {
            valid_from: Some(to_timestamp(now - Duration::days(10))),
            valid_until: Some(to_timestamp(now - Duration::days(1))),
            ..percent_off("WINTER", 10)
        },
    )
    .await;
    create_coupon(
        &basket,
        Coupon {
            valid_from: Some(to_timestamp(now + Duration::days(30))),
            ..percent_off("SUMMER", 10)
        },
    )
    .await;
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 1).await.unwrap();

    for (code, reason) in [
        ("NOSUCHCODE", "COUPON_NOT_FOUND"),
        ("winter", "COUPON_EXPIRED"),
        ("summer", "COUPON_NOT_YET_VALID"),
    ] {
        let status = assert_code(shopper.apply_coupon(code).await, Code::FailedPrecondition);
        assert_eq!(reason_of(&status), reason);
        assert!(
            status.message().contains(&code.to_uppercase()),
            "{}",
            status.message()
        );
    }
    assert_eq!(shopper.get().await.unwrap().coupon_code, "");

    for bad in ["ab", "ten percent", &"X".repeat(33)] {
        let status = assert_code(shopper.apply_coupon(bad).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["coupon_code"]);
    }
}

#[tokio::test]
async fn coupons_that_may_apply_later_are_kept_with_their_reason() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 2000, 0).await;
    create_coupon(
        &basket,
        Coupon {
            min_subtotal: Some(eur(5000)),
            ..percent_off("BIGSPENDER", 10)
        },
    )
    .await;
    basket.shop.coupon("ONCE", 50, 1).await;
    // Someone else's order used the only redemption.
    basket
        .shop
        .discount_client()
        .await
        .redeem_coupon(authed(
            RedeemCouponRequest {
                code: "ONCE".into(),
                order_id: uuid::Uuid::now_v7().to_string(),
                user_id: uuid::Uuid::now_v7().to_string(),
                subtotal: Some(eur(1000)),
            },
            &basket.shop.service,
        ))
        .await
        .unwrap();
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 1).await.unwrap();

    let below = shopper.apply_coupon("bigspender").await.unwrap();
    assert_eq!(below.coupon_code, "BIGSPENDER");
    assert_eq!(
        below.coupon_inapplicable_reason,
        InapplicableReason::MinSubtotalNotMet as i32
    );
    assert_eq!((cents(&below.discount), cents(&below.total)), (0, 2000));
    // The basket grows past the minimum: the kept coupon now applies.
    let above = shopper.add(&lamp.id, 2).await.unwrap();
    assert_eq!(above.coupon_inapplicable_reason, 0);
    assert_eq!((cents(&above.discount), cents(&above.total)), (600, 5400));

    let used_up = shopper.apply_coupon("once").await.unwrap();
    assert_eq!(used_up.coupon_code, "ONCE");
    assert_eq!(
        used_up.coupon_inapplicable_reason,
        InapplicableReason::Exhausted as i32
    );
    assert_eq!(cents(&used_up.discount), 0);
}
