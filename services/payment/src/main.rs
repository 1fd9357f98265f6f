//! The payment binary: configuration from the environment, then the kernel does the rest.

use mercato_kernel::{ServiceConfig, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ServiceConfig::from_env("payment")?;
    let _telemetry = telemetry::init(&config)?;
    payment::start(config).await?.run_until_signalled().await?;
    Ok(())
}
