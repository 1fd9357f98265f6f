//! The notification binary: configuration from the environment, then the kernel does the rest.
//!
//! Usage: `notification [--rebuild]`
//!
//! `--rebuild` forgets where the service's consumers stood in the identity, order and payment
//! streams, then serves and replays them from the start: notifications missing from the
//! database (e.g. after a restore) are written again, existing ones are kept as they are
//! (their ids are the event ids), read marks included.

use mercato_kernel::{ServiceConfig, telemetry};

const USAGE: &str = "usage: notification [--rebuild]";

fn options() -> anyhow::Result<notification::Options> {
    let mut options = notification::Options::default();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--rebuild" => options.rebuild = true,
            other => anyhow::bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let config = ServiceConfig::from_env("notification")?;
    let _telemetry = telemetry::init(&config)?;
    notification::start_with(config, options)
        .await?
        .run_until_signalled()
        .await?;
    Ok(())
}
