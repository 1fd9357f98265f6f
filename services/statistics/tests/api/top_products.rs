//! Best-selling products.

use mercato::pb::order::v1::OrderStatus;
use mercato::pb::statistics::v1::{GetTopProductsRequest, ProductRanking};

use crate::{Order, TestStats, cents, ts};

fn request(limit: i32, order_by: ProductRanking) -> GetTopProductsRequest {
    GetTopProductsRequest {
        start_time: Some(ts("2030-03-04T00:00:00Z")),
        end_time: Some(ts("2030-03-05T00:00:00Z")),
        limit,
        order_by: order_by as i32,
    }
}

#[tokio::test]
async fn products_rank_by_units_then_revenue_with_their_latest_names() {
    let stats = TestStats::start().await;
    // mug: 3 units, 30.00 in 2 orders; tea: 3 units, 15.00; pot: 1 unit, 80.00;
    // spoon: 1 unit, 80.00 too (ties with pot: broken by product id).
    let first = Order::new(&[("mug", "Mug", 2, 1000), ("tea", "Tea", 3, 500)]);
    let second = Order::new(&[("mug", "Mug XL", 1, 1000), ("pot", "Pot", 1, 8000)]);
    let third = Order::new(&[("spoon", "Spoon", 1, 8000)]);
    // Outside the period: does not count.
    let later = Order::new(&[("pot", "Pot", 9, 8000)]);
    // Cancelled: taken back.
    let cancelled = Order::new(&[("tea", "Tea", 10, 500)]);
    first
        .publish_confirmed(&stats, "2030-03-04T09:00:00Z")
        .await;
    second
        .publish_confirmed(&stats, "2030-03-04T15:00:00Z")
        .await;
    third
        .publish_confirmed(&stats, "2030-03-04T16:00:00Z")
        .await;
    later
        .publish_confirmed(&stats, "2030-03-05T00:00:00Z")
        .await;
    cancelled
        .publish_confirmed(&stats, "2030-03-04T10:00:00Z")
        .await;
    cancelled
        .publish(&stats, &cancelled.cancelled(OrderStatus::Confirmed))
        .await;
    stats.sync().await;

    let by_units = stats.top(request(0, ProductRanking::Unspecified)).await;
    let ranked: Vec<(&str, &str, i64, i64, i64)> = by_units
        .products
        .iter()
        .map(|p| {
            (
                p.product_id.as_str(),
                p.name.as_str(),
                p.units_sold,
                cents(&p.revenue),
                p.order_count,
            )
        })
        .collect();
    assert_eq!(
        ranked,
        [
            ("mug", "Mug XL", 3, 3000, 2),
            ("tea", "Tea", 3, 1500, 1),
            ("pot", "Pot", 1, 8000, 1),
            ("spoon", "Spoon", 1, 8000, 1),
        ]
    );

    let by_revenue = stats.top(request(3, ProductRanking::Revenue)).await;
    let ids: Vec<&str> = by_revenue
        .products
        .iter()
        .map(|p| p.product_id.as_str())
        .collect();
    assert_eq!(ids, ["pot", "spoon", "mug"]);

    let one = stats.top(request(1, ProductRanking::Units)).await;
    assert_eq!(one.products.len(), 1);
    assert_eq!(one.products[0].product_id, "mug");
}

#[tokio::test]
async fn a_product_is_named_by_its_latest_confirmation_whatever_the_delivery_order() {
    let stats = TestStats::start().await;
    // Each product sold under its old name, then confirmed under its new name in an order
    // that was cancelled since; the second product's cancellation arrives before its
    // confirmation (which then counts nothing, but still happened last).
    for (product, cancellation_first) in [("in-order", false), ("cancel-first", true)] {
        let kept = Order::new(&[(product, "Old name", 1, 1000)]);
        let withdrawn = Order::new(&[(product, "New name", 1, 1000)]);
        kept.publish_confirmed(&stats, "2030-03-04T09:00:00Z").await;
        let cancellation = withdrawn.cancelled(OrderStatus::Confirmed);
        if cancellation_first {
            withdrawn.publish(&stats, &cancellation).await;
        }
        withdrawn
            .publish_confirmed(&stats, "2030-03-04T10:00:00Z")
            .await;
        if !cancellation_first {
            withdrawn.publish(&stats, &cancellation).await;
        }
    }
    stats.sync().await;

    let top = stats.top(request(0, ProductRanking::Units)).await;
    let named: Vec<(&str, &str, i64)> = top
        .products
        .iter()
        .map(|p| (p.product_id.as_str(), p.name.as_str(), p.order_count))
        .collect();
    assert_eq!(
        named,
        [("cancel-first", "New name", 1), ("in-order", "New name", 1)]
    );
}
