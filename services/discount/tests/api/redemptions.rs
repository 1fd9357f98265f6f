use futures::future::join_all;
use mercato::pb::discount::v1::{
    Coupon, RedeemCouponRequest, RedemptionStatus, ReleaseRedemptionRequest,
};
use mercato_testkit::authed;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::{TestDiscount, assert_code, eur, percent_off, reason, violated_fields};

#[tokio::test]
async fn concurrent_redemptions_never_exceed_the_limit() {
    let discount = TestDiscount::start().await;
    discount
        .create(Coupon {
            max_redemptions: 5,
            ..percent_off("RUSH", 10)
        })
        .await;
    let client = discount.client().await;
    let attempts = (0..20).map(|i| {
        let mut client = client.clone();
        let request = RedeemCouponRequest {
            code: "rush".into(),
            order_id: format!("order-{i}"),
            user_id: format!("user-{i}"),
            subtotal: Some(eur(1000)),
        };
        let token = discount.service.clone();
        async move { client.redeem_coupon(authed(request, &token)).await }
    });
    let results = join_all(attempts).await;
    let (won, lost): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(won.len(), 5);
    assert_eq!(lost.len(), 15);
    for result in lost {
        let status = assert_code(result, Code::FailedPrecondition);
        assert_eq!(reason(&status), "COUPON_EXHAUSTED");
    }
    assert_eq!(discount.get("RUSH").await.redemption_count, 5);
}

#[tokio::test]
async fn a_release_frees_a_use_for_another_order() {
    let discount = TestDiscount::start().await;
    discount
        .create(Coupon {
            max_redemptions: 1,
            ..percent_off("SINGLE", 10)
        })
        .await;
    let first = discount
        .redeem("SINGLE", "order-1", eur(2000))
        .await
        .unwrap();
    assert_eq!(first.status(), RedemptionStatus::Redeemed);
    assert_eq!(first.discount, Some(eur(200)));
    assert_eq!(first.user_id, "user-1");
    assert!(first.release_time.is_none());
    let status = assert_code(
        discount.redeem("SINGLE", "order-2", eur(2000)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status), "COUPON_EXHAUSTED");
    assert!(status.message().contains("SINGLE"), "{}", status.message());

    let released = discount.release("order-1").await;
    assert_eq!(released.status(), RedemptionStatus::Released);
    assert_eq!(released.code, "SINGLE");
    assert_eq!(released.discount, Some(eur(200)));
    assert!(released.release_time.is_some());
    assert_eq!(discount.get("SINGLE").await.redemption_count, 0);
    // Releasing again changes nothing.
    assert_eq!(discount.release("order-1").await, released);
    assert_eq!(discount.get("SINGLE").await.redemption_count, 0);

    discount
        .redeem("SINGLE", "order-2", eur(2000))
        .await
        .unwrap();
    assert_eq!(discount.get("SINGLE").await.redemption_count, 1);
    // A released order may not take the coupon back.
    let status = assert_code(
        discount.redeem("SINGLE", "order-1", eur(2000)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status), "REDEMPTION_RELEASED");
}

#[tokio::test]
async fn redeeming_again_for_the_same_order_counts_once() {
    let discount = TestDiscount::start().await;
    discount.create(percent_off("TWICE", 10)).await;
    discount.create(percent_off("OTHER", 20)).await;
    let first = discount
        .redeem("TWICE", "order-1", eur(1000))
        .await
        .unwrap();
    // A retry, whatever the case of the code or the subtotal, answers the stored redemption.
    let again = discount
        .redeem("twice", "order-1", eur(5000))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(discount.get("TWICE").await.redemption_count, 1);

    let status = assert_code(
        discount.redeem("OTHER", "order-1", eur(1000)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status), "REDEMPTION_MISMATCH");
    assert_eq!(discount.get("OTHER").await.redemption_count, 0);

    // Concurrent retries of one order still count once.
    let retries = (0..5).map(|_| discount.redeem("OTHER", "order-2", eur(1000)));
    let results = join_all(retries).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(discount.get("OTHER").await.redemption_count, 1);
}

#[tokio::test]
async fn releasing_an_unknown_order_leaves_a_tombstone() {
    let discount = TestDiscount::start().await;
    discount.create(percent_off("LATECOMER", 10)).await;
    let tombstone = discount.release("order-9").await;
    assert_eq!(tombstone.status(), RedemptionStatus::Released);
    assert_eq!(tombstone.order_id, "order-9");
    assert_eq!(tombstone.code, "");
    assert_eq!(tombstone.discount, None);
    assert!(tombstone.release_time.is_some());
    assert_eq!(discount.release("order-9").await, tombstone);

    // The redeem that arrives after the compensation is refused and uses nothing.
    let status = assert_code(
        discount.redeem("LATECOMER", "order-9", eur(1000)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status), "REDEMPTION_RELEASED");
    assert_eq!(discount.get("LATECOMER").await.redemption_count, 0);
}

#[tokio::test]
async fn a_coupon_that_does_not_apply_is_refused_with_its_reason() {
    let discount = TestDiscount::start().await;
    discount
        .create(Coupon {
            min_subtotal: Some(eur(5000)),
            ..percent_off("BIG", 10)
        })
        .await;
    for (code, expected) in [
        ("NOPE", "COUPON_NOT_FOUND"),
        ("BIG", "COUPON_MIN_SUBTOTAL_NOT_MET"),
    ] {
        let status = assert_code(
            discount.redeem(code, "order-1", eur(1000)).await,
            Code::FailedPrecondition,
        );
        assert_eq!(reason(&status), expected);
        assert!(status.message().contains(code), "{}", status.message());
        // The proto's enum name travels along for clients that switch on it.
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(
            info.metadata["inapplicable_reason"],
            format!("INAPPLICABLE_REASON_{}", &expected["COUPON_".len()..])
        );
    }
    assert_eq!(discount.get("BIG").await.redemption_count, 0);
    // A refused order is not recorded: it may still redeem once it qualifies.
    discount.redeem("BIG", "order-1", eur(5000)).await.unwrap();
}

#[tokio::test]
async fn redemptions_are_for_service_accounts_only() {
    let discount = TestDiscount::start().await;
    discount.create(percent_off("INTERNAL", 10)).await;
    let (user_id, customer) = discount.identity.customer().await;
    let mut client = discount.client().await;
    let redeem = || RedeemCouponRequest {
        code: "INTERNAL".into(),
        order_id: "order-1".into(),
        user_id: user_id.clone(),
        subtotal: Some(eur(1000)),
    };
    let release = || ReleaseRedemptionRequest {
        order_id: "order-1".into(),
    };
    assert_code(client.redeem_coupon(redeem()).await, Code::Unauthenticated);
    for token in [&customer, &discount.admin] {
        assert_code(
            client.redeem_coupon(authed(redeem(), token)).await,
            Code::PermissionDenied,
        );
        assert_code(
            client.release_redemption(authed(release(), token)).await,
            Code::PermissionDenied,
        );
    }
    assert_eq!(discount.get("INTERNAL").await.redemption_count, 0);
}

#[tokio::test]
async fn bad_redemption_input_is_rejected_with_field_violations() {
    let discount = TestDiscount::start().await;
    let mut client = discount.client().await;
    let status = assert_code(
        client
            .redeem_coupon(authed(
                RedeemCouponRequest {
                    code: "C".repeat(33),
                    order_id: "order/1".into(),
                    user_id: String::new(),
                    subtotal: Some(eur(-1)),
                },
                &discount.service,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        vec!["code", "order_id", "user_id", "subtotal"]
    );
    let status = assert_code(
        client
            .redeem_coupon(authed(
                RedeemCouponRequest {
                    code: String::new(),
                    order_id: "o".repeat(65),
                    user_id: "u".repeat(65),
                    subtotal: None,
                },
                &discount.service,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        vec!["code", "order_id", "user_id", "subtotal"]
    );
    for order_id in [String::new(), "has space".into(), "o".repeat(65)] {
        let status = assert_code(
            client
                .release_redemption(authed(
                    ReleaseRedemptionRequest { order_id },
                    &discount.service,
                ))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), vec!["order_id"]);
    }
}
