//! The statistics binary: configuration from the environment, then the kernel does the rest.
//!
//! `statistics --rebuild` empties the sales aggregates and forgets the consumer's position
//! before serving, so the order stream is replayed from its start into fresh aggregates
//! (after a projection bug fix, or to recount with changed rules). Run it on one replica.

use mercato_kernel::config::ProcessEnv;
use mercato_kernel::{ServiceConfig, telemetry};

const USAGE: &str = "usage: statistics [--rebuild]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut rebuild = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--rebuild" => rebuild = true,
            _ => anyhow::bail!("unknown argument {arg:?}\n{USAGE}"),
        }
    }
    let config = ServiceConfig::from_env("statistics")?;
    let _telemetry = telemetry::init(&config)?;
    let mut settings = statistics::Settings::from_env(&ProcessEnv)?;
    settings.rebuild = rebuild;
    statistics::start(config, settings)
        .await?
        .run_until_signalled()
        .await?;
    Ok(())
}
