//! The inventory binary: configuration from the environment, then the kernel does the rest.

use mercato_kernel::{ServiceConfig, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ServiceConfig::from_env("inventory")?;
    let _telemetry = telemetry::init(&config)?;
    inventory::start(config)
        .await?
        .run_until_signalled()
        .await?;
    Ok(())
}
