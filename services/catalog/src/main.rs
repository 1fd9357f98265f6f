//! The catalog binary: configuration from the environment, then the kernel does the rest.

use mercato_kernel::config::{ProcessEnv, Vars};
use mercato_kernel::{ServiceConfig, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ServiceConfig::from_env("catalog")?;
    let _telemetry = telemetry::init(&config)?;
    let seed_demo = Vars(&ProcessEnv).parse_or("MERCATO_SEED_DEMO", false)?;
    catalog::start(config, seed_demo)
        .await?
        .run_until_signalled()
        .await?;
    Ok(())
}
