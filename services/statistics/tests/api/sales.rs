//! Sales reports: buckets, exact revenue and averages, cancellations.

use mercato::pb::order::v1::OrderStatus;
use mercato::pb::statistics::v1::Granularity;

use crate::{Order, TestStats, cents};

#[tokio::test]
async fn confirmed_orders_appear_in_their_hour_and_day_with_exact_revenue_and_average() {
    let stats = TestStats::start().await;
    // Two sales in the 10:00 hour of 4 March (one with a coupon), one on 5 March.
    let a = Order::new(&[("p1", "Mug", 2, 999), ("p2", "Tea", 1, 501)]);
    let b = Order::new(&[("p1", "Mug", 1, 999)]).with_discount(100);
    let c = Order::new(&[("p3", "Pot", 3, 2500)]);
    a.publish_confirmed(&stats, "2030-03-04T10:00:00Z").await;
    b.publish_confirmed(&stats, "2030-03-04T10:59:59.999Z")
        .await;
    c.publish_confirmed(&stats, "2030-03-05T23:30:00Z").await;
    stats
        .wait_for_orders("2030-03-04T00:00:00Z", "2030-03-06T00:00:00Z", 3)
        .await;

    let hours = stats
        .report(
            "2030-03-04T09:30:00Z",
            "2030-03-04T11:00:00Z",
            Granularity::Hour,
        )
        .await;
    // Rounded outward to whole hours: 09:00 and 10:00.
    assert_eq!(hours.buckets.len(), 2);
    let (nine, ten) = (&hours.buckets[0], &hours.buckets[1]);
    assert_eq!(
        nine.start_time.unwrap().seconds,
        crate::at("2030-03-04T09:00:00Z").timestamp()
    );
    assert_eq!(nine.order_count, 0);
    assert_eq!(cents(&nine.revenue), 0);
    assert_eq!(cents(&nine.average_order_value), 0);
    assert_eq!(ten.order_count, 2);
    assert_eq!(ten.units_sold, 4);
    // 24.99 + 8.99 = 33.98; the average 16.99.
    assert_eq!(cents(&ten.revenue), a.total_cents() + b.total_cents());
    assert_eq!(cents(&ten.revenue), 3398);
    assert_eq!(cents(&ten.average_order_value), 1699);
    assert_eq!(
        ten.end_time.unwrap().seconds,
        crate::at("2030-03-04T11:00:00Z").timestamp()
    );

    let days = stats
        .report(
            "2030-03-03T12:00:00Z",
            "2030-03-05T00:00:01Z",
            Granularity::Unspecified,
        )
        .await;
    // 3, 4 and 5 March.
    assert_eq!(days.buckets.len(), 3);
    assert_eq!(days.buckets[0].order_count, 0);
    assert_eq!(days.buckets[1].order_count, 2);
    assert_eq!(cents(&days.buckets[1].revenue), 3398);
    assert_eq!(days.buckets[2].order_count, 1);
    assert_eq!(cents(&days.buckets[2].revenue), 7500);
    let total = days.total.unwrap();
    assert_eq!(
        total.start_time.unwrap().seconds,
        crate::at("2030-03-03T00:00:00Z").timestamp()
    );
    assert_eq!(
        total.end_time.unwrap().seconds,
        crate::at("2030-03-06T00:00:00Z").timestamp()
    );
    assert_eq!(total.order_count, 3);
    assert_eq!(total.units_sold, 7);
    assert_eq!(cents(&total.revenue), 10898);
    // 108.98 / 3 = 36.3266… → 36.32
    assert_eq!(cents(&total.average_order_value), 3632);
}

#[tokio::test]
async fn a_cancellation_after_confirmation_subtracts_the_sale_from_its_bucket() {
    let stats = TestStats::start().await;
    let kept = Order::new(&[("p1", "Mug", 1, 1000)]);
    let refunded = Order::new(&[("p1", "Mug", 2, 1000)]);
    let returned = Order::new(&[("p2", "Tea", 1, 700)]);
    kept.publish_confirmed(&stats, "2030-03-04T10:00:00Z").await;
    refunded
        .publish_confirmed(&stats, "2030-03-04T10:30:00Z")
        .await;
    returned
        .publish_confirmed(&stats, "2030-03-04T12:00:00Z")
        .await;
    stats
        .wait_for_orders("2030-03-04T00:00:00Z", "2030-03-05T00:00:00Z", 3)
        .await;

    refunded
        .publish(&stats, &refunded.cancelled(OrderStatus::Confirmed))
        .await;
    returned
        .publish(&stats, &returned.cancelled(OrderStatus::Shipped))
        .await;
    let total = stats
        .wait_for_orders("2030-03-04T00:00:00Z", "2030-03-05T00:00:00Z", 1)
        .await;
    assert_eq!(cents(&total.revenue), 1000);
    assert_eq!(total.units_sold, 1);
    let hours = stats
        .report(
            "2030-03-04T10:00:00Z",
            "2030-03-04T13:00:00Z",
            Granularity::Hour,
        )
        .await;
    let counts: Vec<i64> = hours.buckets.iter().map(|b| b.order_count).collect();
    assert_eq!(counts, [1, 0, 0]);
    assert_eq!(cents(&hours.buckets[0].average_order_value), 1000);
    assert_eq!(cents(&hours.buckets[2].revenue), 0);
}

#[tokio::test]
async fn a_cancellation_before_confirmation_changes_nothing() {
    let stats = TestStats::start().await;
    let sold = Order::new(&[("p1", "Mug", 1, 1000)]);
    sold.publish_confirmed(&stats, "2030-03-04T10:00:00Z").await;
    let failed = Order::new(&[("p1", "Mug", 5, 1000)]);
    failed.publish(&stats, &failed.placed()).await;
    failed
        .publish(&stats, &failed.cancelled(OrderStatus::Pending))
        .await;
    stats.sync().await;

    let total = stats
        .total("2030-03-01T00:00:00Z", "2030-04-01T00:00:00Z")
        .await;
    assert_eq!(total.order_count, 1);
    assert_eq!(total.units_sold, 1);
    assert_eq!(cents(&total.revenue), 1000);
}
