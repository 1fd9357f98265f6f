//! Adding, changing and removing lines, priced with current catalog data, within the limits.

use mercato::pb::catalog::v1::{DeleteProductRequest, Product, UpdateProductRequest};
use mercato_testkit::shop::eur;
use mercato_testkit::{assert_code, authed, violated_fields};
use tonic::Code;

use crate::{TestBasket, cents, lines};

#[tokio::test]
async fn a_basket_never_used_is_empty_and_in_euros() {
    let basket = TestBasket::start().await;
    let shopper = basket.shopper().await;
    let empty = shopper.get().await.unwrap();
    assert_eq!(empty.user_id, shopper.user_id);
    assert!(empty.lines.is_empty());
    assert_eq!(empty.subtotal.as_ref().unwrap().currency_code, "EUR");
    assert_eq!((cents(&empty.subtotal), cents(&empty.total)), (0, 0));
    assert_eq!(cents(&empty.discount), 0);
    assert_eq!(empty.item_count, 0);
    assert!(empty.update_time.is_none() && empty.expire_time.is_none());
}

#[tokio::test]
async fn lines_are_added_changed_removed_and_cleared_at_current_prices() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 1999, 5).await;
    let mug = basket.shop.product("Mug", 850, 5).await;
    let shopper = basket.shopper().await;

    let after = shopper.add(&lamp.id, 2).await.unwrap();
    assert_eq!(lines(&after), [(lamp.id.clone(), 2)]);
    assert_eq!(after.lines[0].name, "Lamp");
    assert_eq!(cents(&after.lines[0].unit_price), 1999);
    assert_eq!(cents(&after.lines[0].line_total), 3998);
    assert!(after.update_time.is_some() && after.expire_time.is_some());

    // The same product again sums the quantities; an upper-case id is the same product.
    shopper.add(&mug.id, 1).await.unwrap();
    let after = shopper.add(&lamp.id.to_uppercase(), 1).await.unwrap();
    assert_eq!(lines(&after), [(lamp.id.clone(), 3), (mug.id.clone(), 1)]);
    assert_eq!(cents(&after.subtotal), 3 * 1999 + 850);
    assert_eq!(cents(&after.total), 3 * 1999 + 850);
    assert_eq!(after.item_count, 4);

    let after = shopper.update(&lamp.id, 1).await.unwrap();
    assert_eq!(lines(&after), [(lamp.id.clone(), 1), (mug.id.clone(), 1)]);
    let after = shopper.update(&mug.id, 0).await.unwrap();
    assert_eq!(lines(&after), [(lamp.id.clone(), 1)]);
    let status = assert_code(shopper.update(&mug.id, 2).await, Code::NotFound);
    assert!(status.message().contains(&mug.id), "{}", status.message());

    // Removing is idempotent.
    let after = shopper.remove(&lamp.id).await.unwrap();
    assert!(after.lines.is_empty());
    let again = shopper.remove(&lamp.id).await.unwrap();
    assert!(again.lines.is_empty());
    assert_eq!(
        again.update_time, after.update_time,
        "removing nothing changes nothing"
    );

    shopper.add(&mug.id, 3).await.unwrap();
    shopper.apply_coupon("").await.unwrap();
    shopper.clear().await.unwrap();
    let cleared = shopper.get().await.unwrap();
    assert!(cleared.lines.is_empty());
    assert_eq!(cents(&cleared.total), 0);
    assert!(cleared.update_time.is_some(), "a cleared basket was used");
}

#[tokio::test]
async fn the_basket_shows_prices_of_now_and_drops_deleted_products() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 2000, 5).await;
    let mug = basket.shop.product("Mug", 500, 5).await;
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 2).await.unwrap();
    shopper.add(&mug.id, 1).await.unwrap();

    let mut catalog = basket.shop.catalog_client().await;
    let update = UpdateProductRequest {
        product: Some(Product {
            id: lamp.id.clone(),
            name: "Desk Lamp".into(),
            price: Some(eur(2500)),
            ..Product::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["price".into(), "name".into()],
        }),
    };
    catalog
        .update_product(authed(update, &basket.shop.admin))
        .await
        .unwrap();
    let now = shopper.get().await.unwrap();
    assert_eq!(now.lines[0].name, "Desk Lamp");
    assert_eq!(cents(&now.lines[0].unit_price), 2500);
    assert_eq!(cents(&now.subtotal), 2 * 2500 + 500);

    catalog
        .delete_product(authed(
            DeleteProductRequest { id: mug.id.clone() },
            &basket.shop.admin,
        ))
        .await
        .unwrap();
    let now = shopper.get().await.unwrap();
    assert_eq!(lines(&now), [(lamp.id.clone(), 2)]);
    assert_eq!(cents(&now.subtotal), 5000);
    // Removed from Redis too, not only hidden.
    let stored: Vec<String> = deadpool_redis::redis::cmd("HKEYS")
        .arg(basket.redis_key(&shopper.user_id))
        .query_async(&mut basket.redis().get().await.unwrap())
        .await
        .unwrap();
    assert!(!stored.iter().any(|f| f.contains(&mug.id)), "{stored:?}");
}

#[tokio::test]
async fn unknown_products_and_malformed_requests_are_invalid_arguments() {
    let basket = TestBasket::start().await;
    let shopper = basket.shopper().await;

    let unknown = uuid::Uuid::now_v7().to_string();
    let status = assert_code(shopper.add(&unknown, 1).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["product_id"]);
    assert!(
        status.message().contains("no such product"),
        "{}",
        status.message()
    );

    let status = assert_code(shopper.add("lamp", 0).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["product_id", "quantity"]);
    let status = assert_code(shopper.update("lamp", -1).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["product_id", "quantity"]);
    let status = assert_code(shopper.remove("").await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["product_id"]);
    assert!(
        shopper.get().await.unwrap().update_time.is_none(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn quantities_and_lines_stay_within_the_limits() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 100, 0).await;
    let shopper = basket.shopper().await;

    for quantity in [0, 100] {
        let status = assert_code(shopper.add(&lamp.id, quantity).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["quantity"]);
    }
    let status = assert_code(shopper.update(&lamp.id, 100).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["quantity"]);

    shopper.add(&lamp.id, 97).await.unwrap();
    let status = assert_code(shopper.add(&lamp.id, 3).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["quantity"]);
    assert!(
        status.message().contains("at most 2 more"),
        "{}",
        status.message()
    );
    let full = shopper.add(&lamp.id, 2).await.unwrap();
    assert_eq!(lines(&full), [(lamp.id.clone(), 99)]);
    let status = assert_code(shopper.add(&lamp.id, 1).await, Code::InvalidArgument);
    assert!(
        status.message().contains("no more fit"),
        "{}",
        status.message()
    );

    // 50 lines fit, the 51st does not.
    let names: Vec<String> = (1..=50).map(|i| format!("Product {i}")).collect();
    let products =
        futures::future::join_all(names.iter().map(|name| basket.shop.product(name, 100, 0))).await;
    for product in &products[..49] {
        shopper.add(&product.id, 1).await.unwrap();
    }
    let status = assert_code(
        shopper.add(&products[49].id, 1).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["product_id"]);
    assert!(status.message().contains("50"), "{}", status.message());
    let now = shopper.get().await.unwrap();
    assert_eq!(now.lines.len(), 50);
    assert_eq!(now.item_count, 99 + 49);
    // A product already in a full basket can still get more units.
    shopper.update(&lamp.id, 98).await.unwrap();
    shopper.add(&lamp.id, 1).await.unwrap();
}

#[tokio::test]
async fn concurrent_additions_of_one_product_all_count() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 1000, 0).await;
    let shopper = basket.shopper().await;
    let results = futures::future::join_all((0..10).map(|_| shopper.add(&lamp.id, 1))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let now = shopper.get().await.unwrap();
    assert_eq!(lines(&now), [(lamp.id.clone(), 10)]);
    assert_eq!(cents(&now.subtotal), 10_000);
}

#[tokio::test]
async fn concurrent_additions_never_break_the_quantity_limit() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 1000, 0).await;
    let shopper = basket.shopper().await;
    shopper.add(&lamp.id, 90).await.unwrap();
    let results = futures::future::join_all((0..10).map(|_| shopper.add(&lamp.id, 3))).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(accepted, 3, "{results:?}");
    assert_eq!(
        lines(&shopper.get().await.unwrap()),
        [(lamp.id.clone(), 99)]
    );
}

#[tokio::test]
async fn each_customer_sees_only_their_own_basket() {
    let basket = TestBasket::start().await;
    let lamp = basket.shop.product("Lamp", 1000, 0).await;
    let mug = basket.shop.product("Mug", 300, 0).await;
    let alice = basket.shopper().await;
    let bob = basket.shopper().await;
    alice.add(&lamp.id, 2).await.unwrap();
    bob.add(&mug.id, 1).await.unwrap();

    let seen_by_bob = bob.get().await.unwrap();
    assert_eq!(seen_by_bob.user_id, bob.user_id);
    assert_eq!(lines(&seen_by_bob), [(mug.id.clone(), 1)]);
    // Bob cannot touch Alice's line either: his basket has no such product.
    assert_code(bob.update(&lamp.id, 5).await, Code::NotFound);
    bob.clear().await.unwrap();
    assert_eq!(lines(&alice.get().await.unwrap()), [(lamp.id.clone(), 2)]);
}

#[tokio::test]
async fn a_line_or_basket_whose_total_would_overflow_is_refused_not_mispriced() {
    let basket = TestBasket::start().await;
    let yacht = basket.shop.product("Yacht", 100, 0).await;
    let mug = basket.shop.product("Mug", 850, 5).await;
    let mut catalog = basket.shop.catalog_client().await;
    let most = mercato::pb::r#type::v1::Money {
        currency_code: "EUR".into(),
        units: i64::MAX,
        nanos: 0,
    };
    let update = UpdateProductRequest {
        product: Some(Product {
            id: yacht.id.clone(),
            price: Some(most.clone()),
            ..Product::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["price".into()],
        }),
    };
    catalog
        .update_product(authed(update, &basket.shop.admin))
        .await
        .unwrap();
    let shopper = basket.shopper().await;

    // 99 of them would be 99 × i64::MAX units: refused, nothing stored.
    let status = assert_code(shopper.add(&yacht.id, 99).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["quantity"]);
    assert!(shopper.get().await.unwrap().lines.is_empty());

    // One is exactly representable; a second line on top is not, and neither is 2 of it.
    let one = shopper.add(&yacht.id, 1).await.unwrap();
    assert_eq!(one.total.unwrap(), most);
    let status = assert_code(shopper.add(&mug.id, 1).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["quantity"]);
    let status = assert_code(shopper.update(&yacht.id, 2).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["quantity"]);
    assert_eq!(
        lines(&shopper.get().await.unwrap()),
        [(yacht.id.clone(), 1)]
    );
}
