//! Event → read-model latency: order-query in this process on the local Postgres, Redis and
//! NATS; OrderPlaced events published at a steady rate, each watched (WatchOrder, opened
//! before the event is published) until its first state arrives. Run by `make bench`:
//!
//!     cargo run --release -p order-query --example projection_latency
//!
//! BENCH_RATE events per second (default 200) for BENCH_SECS seconds (default 10).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use mercato::pb::order::v1::{OrderLine, OrderPlaced, ShippingAddress};
use mercato::pb::orderquery::v1::WatchOrderRequest;
use mercato::pb::orderquery::v1::order_query_service_client::OrderQueryServiceClient;
use mercato::pb::r#type::v1::Money;
use mercato_testkit::{TestService, authed, channel, nats_url, publish_raw};
use prost::Message as _;

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn eur(cents: i64) -> Option<Money> {
    Some(Money {
        currency_code: "EUR".into(),
        units: cents / 100,
        nanos: i32::try_from(cents % 100).unwrap() * 10_000_000,
    })
}

#[tokio::main]
async fn main() {
    let rate = env_or("BENCH_RATE", 200);
    let seconds = env_or("BENCH_SECS", 10);
    let service = TestService::start("order-query", order_query::start).await;
    let (user_id, token) = service.identity.customer().await;
    let namespace = service.identity.namespace.clone();
    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    mercato_kernel::events::stream::ensure_stream(&js, &namespace, "order")
        .await
        .unwrap();
    let client = OrderQueryServiceClient::new(channel(service.running.grpc_addr).await);
    let subject = format!("{namespace}.order.v1.order_placed");

    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut watches = Vec::new();
    for n in 0..total {
        tokio::time::sleep_until((started + interval * u32::try_from(n).unwrap()).into()).await;
        let order_id = uuid::Uuid::now_v7().to_string();
        let event = OrderPlaced {
            order_id: order_id.clone(),
            user_id: user_id.clone(),
            version: 1,
            lines: vec![OrderLine {
                product_id: uuid::Uuid::now_v7().to_string(),
                name: "Benchmark Lamp".into(),
                quantity: 1,
                unit_price: eur(1999),
                line_total: eur(1999),
            }],
            subtotal: eur(1999),
            discount: eur(0),
            total: eur(1999),
            shipping_address: Some(ShippingAddress {
                name: "Ada".into(),
                line1: "1 Street".into(),
                city: "London".into(),
                postal_code: "N1".into(),
                country: "GB".into(),
                ..Default::default()
            }),
            place_time: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
            ..Default::default()
        };
        let envelope = mercato::pb::events::v1::Envelope {
            id: uuid::Uuid::now_v7().to_string(),
            r#type: "mercato.order.v1.OrderPlaced".into(),
            source: "order".into(),
            subject: order_id.clone(),
            payload: event.encode_to_vec(),
            ..Default::default()
        };
        // The watch is opened alongside the publication: WatchOrder answers with the first
        // projected state (or at once, if projection won the race), so the first message
        // marks when the event became visible.
        let mut client = client.clone();
        let token = token.clone();
        let published = Instant::now();
        watches.push(tokio::spawn(async move {
            let mut watch = client
                .watch_order(authed(WatchOrderRequest { id: order_id }, &token))
                .await
                .unwrap()
                .into_inner();
            watch.next().await.unwrap().unwrap();
            published.elapsed()
        }));
        publish_raw(&js, &subject, &envelope.id, envelope.encode_to_vec()).await;
    }
    let mut latencies = Vec::new();
    for watch in watches {
        latencies.push(watch.await.unwrap());
    }
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    println!(
        "| {rate} events/s for {seconds} s | {} | {:.1} | {:.1} | {:.1} |",
        latencies.len(),
        pct(0.5),
        pct(0.99),
        latencies.last().unwrap().as_secs_f64() * 1000.0
    );
}
