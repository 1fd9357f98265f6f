use mercato::pb::discount::v1::quote_discount_response::Outcome;
use mercato::pb::discount::v1::{Coupon, InapplicableReason, QuoteDiscountRequest};
use mercato_testkit::authed;
use tonic::Code;

use crate::{
    TestDiscount, amount_off, assert_code, days_from_now, eur, money, percent_off, violated_fields,
};

fn refused(reason: InapplicableReason) -> Option<Outcome> {
    Some(Outcome::InapplicableReason(reason.into()))
}

#[tokio::test]
async fn a_quote_names_each_reason_a_coupon_does_not_apply() {
    let discount = TestDiscount::start().await;
    discount
        .create(Coupon {
            valid_from: Some(days_from_now(1)),
            ..percent_off("EARLY", 10)
        })
        .await;
    discount
        .create(Coupon {
            valid_from: Some(days_from_now(-10)),
            valid_until: Some(days_from_now(-1)),
            ..percent_off("LATE", 10)
        })
        .await;
    discount
        .create(Coupon {
            max_redemptions: 1,
            ..percent_off("ONCE", 10)
        })
        .await;
    discount.redeem("ONCE", "order-1", eur(1000)).await.unwrap();
    discount
        .create(Coupon {
            min_subtotal: Some(eur(5000)),
            ..percent_off("BIG-BASKET", 10)
        })
        .await;
    discount.create(amount_off("EURO-ONLY", eur(500))).await;

    let cases = [
        (
            "UNKNOWN",
            eur(1000),
            InapplicableReason::NotFound,
            "does not exist",
        ),
        (
            "EARLY",
            eur(1000),
            InapplicableReason::NotYetValid,
            "is valid from",
        ),
        ("LATE", eur(1000), InapplicableReason::Expired, "expired on"),
        ("ONCE", eur(1000), InapplicableReason::Exhausted, "used up"),
        (
            "BIG-BASKET",
            eur(4999),
            InapplicableReason::MinSubtotalNotMet,
            "at least 50.00 EUR",
        ),
        (
            "EURO-ONLY",
            money("USD", 1000),
            InapplicableReason::CurrencyMismatch,
            "EUR amounts only, not USD",
        ),
    ];
    for (code, subtotal, reason, message) in cases {
        let quote = discount.quote(code, subtotal).await;
        assert_eq!(quote.outcome, refused(reason), "{code}");
        assert!(
            quote.message.contains(code) && quote.message.contains(message),
            "{code}: {}",
            quote.message
        );
    }
    // Quotes change nothing.
    assert_eq!(discount.get("ONCE").await.redemption_count, 1);
    // The minimum itself qualifies.
    let quote = discount.quote("big-basket", eur(5000)).await;
    assert_eq!(quote.outcome, Some(Outcome::Discount(eur(500))));
    assert!(quote.message.is_empty());
}

#[tokio::test]
async fn percentages_round_down_to_the_cent() {
    let discount = TestDiscount::start().await;
    discount.create(percent_off("FIFTEEN", 15)).await;
    // 15 % of 19.99 is 2.9985.
    let quote = discount.quote("fifteen", eur(1999)).await;
    assert_eq!(quote.outcome, Some(Outcome::Discount(eur(299))));
    let redemption = discount
        .redeem("FIFTEEN", "order-1", eur(1999))
        .await
        .unwrap();
    assert_eq!(redemption.discount, Some(eur(299)));
    // A bare percentage works in any currency.
    let quote = discount.quote("FIFTEEN", money("USD", 1000)).await;
    assert_eq!(quote.outcome, Some(Outcome::Discount(money("USD", 150))));
}

#[tokio::test]
async fn a_fixed_amount_never_exceeds_the_subtotal() {
    let discount = TestDiscount::start().await;
    discount.create(amount_off("FIVER", eur(500))).await;
    let quote = discount.quote("FIVER", eur(1999)).await;
    assert_eq!(quote.outcome, Some(Outcome::Discount(eur(500))));
    let quote = discount.quote("FIVER", eur(300)).await;
    assert_eq!(quote.outcome, Some(Outcome::Discount(eur(300))));
    let redemption = discount.redeem("FIVER", "order-1", eur(300)).await.unwrap();
    assert_eq!(redemption.discount, Some(eur(300)));
}

#[tokio::test]
async fn bad_quote_input_is_rejected_with_field_violations() {
    let discount = TestDiscount::start().await;
    let mut client = discount.client().await;
    let cases = [
        (
            QuoteDiscountRequest {
                code: String::new(),
                subtotal: None,
            },
            vec!["code", "subtotal"],
        ),
        (
            QuoteDiscountRequest {
                code: "C".repeat(33),
                subtotal: Some(eur(-100)),
            },
            vec!["code", "subtotal"],
        ),
        (
            QuoteDiscountRequest {
                code: "SPRING".into(),
                subtotal: Some(money("euro", 100)),
            },
            vec!["subtotal"],
        ),
    ];
    for (request, fields) in cases {
        let status = assert_code(
            client
                .quote_discount(authed(request, &discount.service))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), fields);
    }
}
