//! Checkout throughput: the whole checkout mesh (identity, catalog, inventory, discount,
//! payment, order) in this process on the local Postgres and NATS, N concurrent customers
//! placing orders for a fixed time. Run by `make bench`:
//!
//!     cargo run --release -p order --example checkout_load
//!
//! BENCH_CLIENTS (default 32) concurrent clients, BENCH_SECS (default 20) seconds of load
//! after a 3-second warm-up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use mercato::pb::order::v1::OrderStatus;
use mercato_testkit::authed;
use mercato_testkit::shop::{CARD_OK, TestShop, order_request};

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let clients = env_or("BENCH_CLIENTS", 32);
    let seconds = env_or("BENCH_SECS", 20);
    let shop = TestShop::start().await;
    let product = shop.product("Benchmark Lamp", 1999, 1_000_000).await;
    let mut tokens = Vec::new();
    for _ in 0..clients.min(16) {
        tokens.push(shop.identity.customer().await.1);
    }

    let run = |duration: Duration| {
        let shop = &shop;
        let tokens = &tokens;
        let product = &product.id;
        async move {
            let until = Instant::now() + duration;
            let workers = (0..clients).map(|c| async move {
                let mut client = shop.orders().await;
                let token = &tokens[usize::try_from(c).unwrap() % tokens.len()];
                let mut latencies = Vec::new();
                let mut confirmed = 0u64;
                let mut n = 0u64;
                while Instant::now() < until {
                    n += 1;
                    let key = format!("bench-{c}-{n}-{}", mercato_testkit::unique_id());
                    let started = Instant::now();
                    let order = client
                        .place_order(authed(order_request(&[(product, 1)], CARD_OK, &key), token))
                        .await
                        .expect("place order")
                        .into_inner()
                        .order
                        .expect("order");
                    latencies.push(started.elapsed());
                    confirmed += u64::from(order.status() == OrderStatus::Confirmed);
                }
                (latencies, confirmed)
            });
            futures::future::join_all(workers).await
        }
    };

    run(Duration::from_secs(3)).await;
    let started = Instant::now();
    let results = run(Duration::from_secs(seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<Duration> = results.iter().flat_map(|(l, _)| l.clone()).collect();
    let confirmed: u64 = results.iter().map(|(_, c)| c).sum();
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    println!(
        "| {clients} | {:.0} | {:.1} | {:.1} | {} of {} |",
        latencies.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        confirmed,
        latencies.len()
    );
}
