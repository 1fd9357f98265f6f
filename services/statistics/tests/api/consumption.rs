//! Delivery trouble: duplicates, out-of-order events, poison messages, rebuilds.

use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use mercato::pb::events::v1::Envelope;
use mercato::pb::order::v1::OrderStatus;
use mercato_kernel::ServiceConfig;
use prost::Message as _;

use crate::{Order, TestStats, cents, fast_redelivery, jetstream, redeliver};

const MARCH: (&str, &str) = ("2030-03-01T00:00:00Z", "2030-04-01T00:00:00Z");

#[tokio::test]
async fn duplicate_deliveries_leave_the_totals_unchanged() {
    let stats = TestStats::start().await;
    let kept = Order::new(&[("p1", "Mug", 2, 1000)]);
    let cancelled = Order::new(&[("p2", "Tea", 1, 500)]);
    let confirmed = kept.publish_confirmed(&stats, "2030-03-04T10:00:00Z").await;
    cancelled
        .publish_confirmed(&stats, "2030-03-04T11:00:00Z")
        .await;
    let cancellation = cancelled
        .publish(&stats, &cancelled.cancelled(OrderStatus::Confirmed))
        .await;
    stats.sync().await;

    // The same envelopes again (past JetStream's de-duplication), and the same
    // confirmation under a new event id (an order service re-emitting it).
    redeliver(&stats, &confirmed).await;
    redeliver(&stats, &cancellation).await;
    kept.publish_confirmed(&stats, "2030-03-04T10:00:00Z").await;
    cancelled
        .publish(&stats, &cancelled.cancelled(OrderStatus::Confirmed))
        .await;
    stats.sync().await;

    let total = stats.total(MARCH.0, MARCH.1).await;
    assert_eq!(total.order_count, 1);
    assert_eq!(total.units_sold, 2);
    assert_eq!(cents(&total.revenue), 2000);
}

#[tokio::test]
async fn events_out_of_order_end_in_the_right_totals() {
    let stats = TestStats::start().await;
    // Cancelled (after confirmation) arrives before its confirmation: never counted.
    let refunded = Order::new(&[("p1", "Mug", 3, 1000)]);
    refunded
        .publish(&stats, &refunded.cancelled(OrderStatus::Confirmed))
        .await;
    refunded
        .publish_confirmed(&stats, "2030-03-04T10:00:00Z")
        .await;
    refunded.publish(&stats, &refunded.placed()).await;
    // Shipped before confirmed before placed: counted once, at its confirmation.
    let shipped = Order::new(&[("p2", "Tea", 1, 450)]);
    shipped.publish(&stats, &shipped.shipped()).await;
    shipped
        .publish_confirmed(&stats, "2030-03-05T08:15:00Z")
        .await;
    shipped.publish(&stats, &shipped.placed()).await;
    stats.sync().await;

    let total = stats.total(MARCH.0, MARCH.1).await;
    assert_eq!(total.order_count, 1);
    assert_eq!(total.units_sold, 1);
    assert_eq!(cents(&total.revenue), 450);
    let top = stats
        .top(mercato::pb::statistics::v1::GetTopProductsRequest {
            start_time: Some(crate::ts(MARCH.0)),
            end_time: Some(crate::ts(MARCH.1)),
            ..Default::default()
        })
        .await;
    let ids: Vec<&str> = top.products.iter().map(|p| p.product_id.as_str()).collect();
    assert_eq!(ids, ["p2"]);
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_later_events_still_count() {
    let stats = TestStats::start().await;
    let ns = stats.namespace().to_owned();
    let js = jetstream().await;
    mercato_kernel::events::stream::ensure_stream(&js, &ns, "order")
        .await
        .unwrap();
    let subject = format!("{ns}.order.v1.order_confirmed");
    // Not an envelope at all.
    mercato_testkit::publish_raw(&js, &subject, "poison-1", vec![0xff, 0x00, 0xfe, 0x01]).await;
    // An envelope whose payload is not an OrderConfirmed.
    let bad_payload = Envelope {
        id: uuid::Uuid::now_v7().to_string(),
        r#type: "mercato.order.v1.OrderConfirmed".into(),
        source: "order".into(),
        subject: "o-poison".into(),
        payload: vec![0xff, 0xff, 0xff],
        ..Default::default()
    };
    mercato_testkit::publish_raw(&js, &subject, "poison-2", bad_payload.encode_to_vec()).await;
    let good = Order::new(&[("p1", "Mug", 1, 1200)]);
    good.publish_confirmed(&stats, "2030-03-04T10:00:00Z").await;

    let letters = mercato_testkit::read_dlq(&ns, "statistics", 2).await;
    assert_eq!(letters.len(), 2);
    for (headers, _) in &letters {
        assert!(headers.get("Mercato-Dlq-Reason").is_some(), "{headers:?}");
    }
    assert_eq!(letters[0].1, vec![0xff, 0x00, 0xfe, 0x01]);
    let total = stats.wait_for_orders(MARCH.0, MARCH.1, 1).await;
    assert_eq!(cents(&total.revenue), 1200);
}

#[tokio::test]
async fn a_rebuild_replays_the_stream_into_fresh_aggregates() {
    let stats = TestStats::start().await;
    let a = Order::new(&[("p1", "Mug", 1, 1000)]);
    let b = Order::new(&[("p2", "Tea", 2, 300)]);
    a.publish_confirmed(&stats, "2030-03-04T10:00:00Z").await;
    b.publish_confirmed(&stats, "2030-03-04T11:00:00Z").await;
    b.publish(&stats, &b.cancelled(OrderStatus::Confirmed))
        .await;
    stats.sync().await;
    assert_eq!(stats.total(MARCH.0, MARCH.1).await.order_count, 1);

    // Restart on the same database and streams with --rebuild, after losing the hourly
    // aggregates (as a projection bug would): only a replay into emptied tables restores
    // them without counting anything twice.
    let TestStats { mut svc, markers } = stats;
    svc.running.stop().await.unwrap();
    let mut conn = AsyncPgConnection::establish(&svc.database.url)
        .await
        .unwrap();
    diesel::sql_query("DELETE FROM sales_hourly")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut config = ServiceConfig::from_source("statistics", &svc.env).unwrap();
    fast_redelivery(&mut config);
    let settings = statistics::Settings {
        rebuild: true,
        ..Default::default()
    };
    svc.running = statistics::start(config, settings).await.unwrap();
    let stats = TestStats { svc, markers };
    // The replay counts the earlier markers again, so this waits for the whole replay; had
    // the aggregates not been emptied, everything would now count twice.
    stats.sync().await;
    let total = stats.total(MARCH.0, MARCH.1).await;
    assert_eq!(total.order_count, 1);
    assert_eq!(cents(&total.revenue), 1000);
}
