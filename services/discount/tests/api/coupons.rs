use mercato::pb::discount::v1::{
    Coupon, CreateCouponRequest, GetCouponRequest, ListCouponsRequest, coupon,
};
use mercato_testkit::authed;
use tonic::Code;

use crate::{
    TestDiscount, amount_off, assert_code, days_from_now, eur, money, percent_off, reason,
    violated_fields,
};

#[tokio::test]
async fn an_admin_creates_a_coupon_and_reads_it_back_in_any_case() {
    let discount = TestDiscount::start().await;
    let created = discount
        .create(Coupon {
            valid_from: Some(days_from_now(-1)),
            valid_until: Some(days_from_now(30)),
            max_redemptions: 100,
            min_subtotal: Some(eur(2000)),
            description: "Spring sale".into(),
            ..amount_off("spring-26", eur(500))
        })
        .await;
    assert_eq!(created.code, "SPRING-26");
    assert_eq!(created.value, Some(coupon::Value::AmountOff(eur(500))));
    assert_eq!(created.redemption_count, 0);
    assert!(created.create_time.is_some());
    let fetched = discount.get("Spring-26").await;
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn a_taken_code_is_already_exists_whatever_its_case() {
    let discount = TestDiscount::start().await;
    discount.create(percent_off("SUMMER", 10)).await;
    let status = assert_code(
        discount
            .client()
            .await
            .create_coupon(authed(
                CreateCouponRequest {
                    coupon: Some(percent_off("summer", 20)),
                },
                &discount.admin,
            ))
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(reason(&status), "COUPON_CODE_TAKEN");
}

#[tokio::test]
async fn bad_coupons_are_rejected_with_field_violations() {
    let discount = TestDiscount::start().await;
    let mut client = discount.client().await;
    let cases: Vec<(Coupon, Vec<&str>)> = vec![
        (percent_off("AB", 10), vec!["coupon.code"]),
        (percent_off(&"A".repeat(33), 10), vec!["coupon.code"]),
        (percent_off("NO SPACES", 10), vec!["coupon.code"]),
        (percent_off("ZERO", 0), vec!["coupon.percent_off"]),
        (percent_off("TOO-MUCH", 101), vec!["coupon.percent_off"]),
        (
            Coupon {
                value: None,
                ..percent_off("NOTHING", 10)
            },
            vec!["coupon.percent_off"],
        ),
        (amount_off("FREE", eur(0)), vec!["coupon.amount_off"]),
        (amount_off("NEGATIVE", eur(-100)), vec!["coupon.amount_off"]),
        (
            amount_off("LOWER", money("eur", 100)),
            vec!["coupon.amount_off"],
        ),
        (
            Coupon {
                valid_from: Some(days_from_now(2)),
                valid_until: Some(days_from_now(1)),
                ..percent_off("BACKWARDS", 10)
            },
            vec!["coupon.valid_until"],
        ),
        (
            Coupon {
                valid_until: Some(days_from_now(-1)),
                ..percent_off("DEAD", 10)
            },
            vec!["coupon.valid_until"],
        ),
        (
            Coupon {
                valid_from: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
                ..percent_off("BAD-TIME", 10)
            },
            vec!["coupon.valid_from"],
        ),
        (
            Coupon {
                max_redemptions: -1,
                ..percent_off("NEG-MAX", 10)
            },
            vec!["coupon.max_redemptions"],
        ),
        (
            Coupon {
                min_subtotal: Some(eur(-1)),
                ..percent_off("NEG-MIN", 10)
            },
            vec!["coupon.min_subtotal"],
        ),
        (
            Coupon {
                min_subtotal: Some(money("USD", 1000)),
                ..amount_off("MIXED", eur(500))
            },
            vec!["coupon.min_subtotal"],
        ),
        (
            Coupon {
                description: "x".repeat(501),
                ..percent_off("WORDY", 10)
            },
            vec!["coupon.description"],
        ),
        (
            Coupon {
                code: "x".into(),
                value: Some(coupon::Value::PercentOff(200)),
                valid_from: Some(days_from_now(2)),
                valid_until: Some(days_from_now(1)),
                max_redemptions: -5,
                min_subtotal: Some(eur(-1)),
                description: "\u{7}".into(),
                ..Default::default()
            },
            vec![
                "coupon.code",
                "coupon.percent_off",
                "coupon.valid_until",
                "coupon.max_redemptions",
                "coupon.min_subtotal",
                "coupon.description",
            ],
        ),
    ];
    for (coupon, fields) in cases {
        let request = authed(
            CreateCouponRequest {
                coupon: Some(coupon.clone()),
            },
            &discount.admin,
        );
        let status = assert_code(client.create_coupon(request).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), fields, "{coupon:?}");
    }
    let status = assert_code(
        client
            .create_coupon(authed(
                CreateCouponRequest { coupon: None },
                &discount.admin,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["coupon"]);
    // Nothing was stored.
    let listed = client
        .list_coupons(authed(ListCouponsRequest::default(), &discount.admin))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.coupons.is_empty());
}

#[tokio::test]
async fn get_coupon_validates_and_reports_unknown_codes() {
    let discount = TestDiscount::start().await;
    let mut client = discount.client().await;
    let get = |code: &str| authed(GetCouponRequest { code: code.into() }, &discount.admin);
    let status = assert_code(client.get_coupon(get("")).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["code"]);
    assert_code(
        client.get_coupon(get(&"A".repeat(33))).await,
        Code::InvalidArgument,
    );
    assert_code(client.get_coupon(get("NOPE")).await, Code::NotFound);
    // A NUL reaches no query: Postgres would refuse it as an internal error.
    let status = assert_code(
        client.get_coupon(get("SAVE\0")).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["code"]);
}

#[tokio::test]
async fn listing_pages_through_every_coupon_newest_first() {
    let discount = TestDiscount::start().await;
    let codes = ["ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO"];
    for code in codes {
        discount.create(percent_off(code, 10)).await;
    }
    let mut client = discount.client().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let request = ListCouponsRequest {
            page_size: 2,
            page_token: token.clone(),
        };
        let page = client
            .list_coupons(authed(request, &discount.admin))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.coupons.into_iter().map(|c| c.code));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, vec!["ECHO", "DELTA", "CHARLIE", "BRAVO", "ALPHA"]);

    for bad in [
        ListCouponsRequest {
            page_size: 101,
            ..Default::default()
        },
        ListCouponsRequest {
            page_size: -1,
            ..Default::default()
        },
        ListCouponsRequest {
            page_token: "garbage!".into(),
            ..Default::default()
        },
    ] {
        assert_code(
            client.list_coupons(authed(bad, &discount.admin)).await,
            Code::InvalidArgument,
        );
    }
}

#[tokio::test]
async fn coupon_administration_needs_the_admin_role() {
    let discount = TestDiscount::start().await;
    let (_, customer) = discount.identity.customer().await;
    let mut client = discount.client().await;
    let create = || CreateCouponRequest {
        coupon: Some(percent_off("SNEAKY", 50)),
    };
    assert_code(client.create_coupon(create()).await, Code::Unauthenticated);
    for token in [&customer, &discount.service] {
        assert_code(
            client.create_coupon(authed(create(), token)).await,
            Code::PermissionDenied,
        );
        assert_code(
            client
                .list_coupons(authed(ListCouponsRequest::default(), token))
                .await,
            Code::PermissionDenied,
        );
        assert_code(
            client
                .get_coupon(authed(
                    GetCouponRequest {
                        code: "SNEAKY".into(),
                    },
                    token,
                ))
                .await,
            Code::PermissionDenied,
        );
    }
}
