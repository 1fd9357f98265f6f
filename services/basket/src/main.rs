//! The basket binary: configuration from the environment, then the kernel does the rest.

use mercato_kernel::config::ProcessEnv;
use mercato_kernel::{ServiceConfig, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ServiceConfig::from_env("basket")?;
    let _telemetry = telemetry::init(&config)?;
    let settings = basket::Settings::from_env(&ProcessEnv)?;
    basket::start(config, settings)
        .await?
        .run_until_signalled()
        .await?;
    Ok(())
}
