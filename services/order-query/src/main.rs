//! The order-query binary: configuration from the environment, then the kernel does the rest.
//!
//! `order-query --rebuild` empties the read model and resets the service's durable consumers
//! before serving, so the model is rebuilt by replaying the order and payment streams from
//! their start (GetOrder/ListOrders fill up again as the replay proceeds).

use mercato_kernel::{ServiceConfig, telemetry};
use order_query::StartOptions;

const USAGE: &str = "usage: order-query [--rebuild]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = StartOptions::default();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--rebuild" => options.rebuild = true,
            _ => anyhow::bail!("unknown argument {arg:?}\n{USAGE}"),
        }
    }
    let config = ServiceConfig::from_env("order-query")?;
    let _telemetry = telemetry::init(&config)?;
    order_query::start_with(config, options)
        .await?
        .run_until_signalled()
        .await?;
    Ok(())
}
