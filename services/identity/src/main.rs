//! The identity binary: configuration from the environment, then the kernel does the rest.

use mercato_kernel::config::ProcessEnv;
use mercato_kernel::{ServiceConfig, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ServiceConfig::from_env("identity")?;
    let _telemetry = telemetry::init(&config)?;
    let settings = identity::Settings::from_env(&ProcessEnv)?;
    let running = identity::start(config, settings).await?;
    running.run_until_signalled().await?;
    Ok(())
}
