use mercato::pb::discount::v1::{Coupon, CouponRedeemed, CouponRedemptionReleased};
use prost::Message as _;

use crate::{TestDiscount, eur, percent_off};

#[tokio::test]
async fn each_redemption_and_release_is_published_exactly_once() {
    let discount = TestDiscount::start().await;
    discount
        .create(Coupon {
            max_redemptions: 3,
            ..percent_off("EVENTS", 10)
        })
        .await;
    discount
        .redeem("EVENTS", "order-1", eur(1000))
        .await
        .unwrap();
    // Replays, a second release and a tombstone publish nothing.
    discount
        .redeem("events", "order-1", eur(1000))
        .await
        .unwrap();
    discount.release("order-1").await;
    discount.release("order-1").await;
    discount.release("order-2").await;

    let namespace = &discount.identity.namespace;
    let envelopes = mercato_testkit::read_stream(namespace, "discount", 2).await;
    let types: Vec<&str> = envelopes.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "mercato.discount.v1.CouponRedeemed",
            "mercato.discount.v1.CouponRedemptionReleased"
        ]
    );
    assert!(
        envelopes
            .iter()
            .all(|e| e.subject == "order-1" && e.source == "discount")
    );
    let redeemed = CouponRedeemed::decode(envelopes[0].payload.as_slice()).unwrap();
    assert_eq!(
        (
            redeemed.code.as_str(),
            redeemed.order_id.as_str(),
            redeemed.user_id.as_str(),
            redeemed.redemption_count
        ),
        ("EVENTS", "order-1", "user-1", 1)
    );
    assert_eq!(redeemed.discount, Some(eur(100)));
    assert!(redeemed.redeem_time.is_some());
    let released = CouponRedemptionReleased::decode(envelopes[1].payload.as_slice()).unwrap();
    assert_eq!(
        (
            released.code.as_str(),
            released.order_id.as_str(),
            released.user_id.as_str(),
            released.redemption_count
        ),
        ("EVENTS", "order-1", "user-1", 0)
    );
    assert_eq!(released.discount, Some(eur(100)));
    assert!(released.release_time.is_some());
}
