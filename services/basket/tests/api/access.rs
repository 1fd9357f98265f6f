//! Who may use a basket, how long it lives, and what happens when a dependency is down.

use std::time::Duration;

use mercato::pb::basket::v1::{AddItemRequest, GetBasketRequest};
use mercato_testkit::{assert_code, authed};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::{TestBasket, lines};

#[tokio::test]
async fn service_accounts_have_no_basket_and_anonymous_callers_are_refused() {
    let basket = TestBasket::start().await;
    let mut client = basket.client().await;

    let status = assert_code(
        client
            .get_basket(authed(GetBasketRequest {}, &basket.shop.service))
            .await,
        Code::PermissionDenied,
    );
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "USER_REQUIRED"
    );
    assert_code(
        client
            .get_basket(tonic::Request::new(GetBasketRequest {}))
            .await,
        Code::Unauthenticated,
    );
    assert_code(
        client
            .add_item(tonic::Request::new(AddItemRequest {
                product_id: uuid::Uuid::now_v7().to_string(),
                quantity: 1,
            }))
            .await,
        Code::Unauthenticated,
    );
    assert_code(
        client
            .get_basket(authed(GetBasketRequest {}, "not-a-token"))
            .await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn every_change_sets_the_time_to_live() {
    let basket = TestBasket::start_with(&[("MERCATO_BASKET_TTL_SECS", "3600")]).await;
    let lamp = basket.shop.product("Lamp", 1000, 0).await;
    let shopper = basket.shopper().await;
    let key = basket.redis_key(&shopper.user_id);
    let mut redis = basket.redis().get().await.unwrap();
    let ttl = async |redis: &mut deadpool_redis::Connection| -> i64 {
        deadpool_redis::redis::cmd("TTL")
            .arg(&key)
            .query_async(redis)
            .await
            .unwrap()
    };
    assert_eq!(
        ttl(&mut redis).await,
        -2,
        "nothing stored before the first change"
    );

    let added = shopper.add(&lamp.id, 1).await.unwrap();
    let left = ttl(&mut redis).await;
    assert!((3590..=3600).contains(&left), "ttl {left}");
    let (updated, expires) = (added.update_time.unwrap(), added.expire_time.unwrap());
    assert_eq!(expires.seconds - updated.seconds, 3600);

    // Shorten it by hand, then a change sets it back to the full period.
    let _: i64 = deadpool_redis::redis::cmd("EXPIRE")
        .arg(&key)
        .arg(100)
        .query_async(&mut redis)
        .await
        .unwrap();
    shopper.update(&lamp.id, 2).await.unwrap();
    let left = ttl(&mut redis).await;
    assert!((3590..=3600).contains(&left), "ttl {left}");
}

#[tokio::test]
async fn without_the_catalog_no_basket_is_priced() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 1000, 0).await;
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 1).await.unwrap();

    basket.shop.catalog.running.trigger().trigger();
    // The catalog drains its connections: wait for the basket to notice, never serving a
    // price it could not check.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        match shopper.get().await {
            Ok(priced) => assert_eq!(lines(&priced), [(lamp.id.clone(), 1)]),
            Err(status) => break status,
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "catalog never went down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("catalog"), "{}", status.message());
    assert_code(shopper.add(&lamp.id, 1).await, Code::Unavailable);
}

#[tokio::test]
async fn without_redis_the_basket_is_unavailable() {
    let basket = TestBasket::start().await;
    let shopper = basket.shopper().await;
    // Port 1 refuses connections: a Redis that is down.
    let cut_off = basket
        .another_instance(&[("REDIS_URL", "redis://127.0.0.1:1")])
        .await;
    let stranded = shopper.via(&cut_off).await;
    let status = assert_code(stranded.get().await, Code::Unavailable);
    assert!(status.message().contains("redis"), "{}", status.message());
    assert_code(stranded.clear().await, Code::Unavailable);
    // The instance with Redis still answers.
    shopper.get().await.unwrap();
}
