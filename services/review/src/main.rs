//! The review binary: configuration from the environment, then the kernel does the rest.
//!
//! `review --rebuild` empties the projection (who bought what, authors' names) and resets the
//! event consumers, then serves while every order and identity event is replayed from the
//! start of its stream. Reviews are kept. Run it on one replica only (e.g. as a one-off
//! `kubectl run` or by scaling to one first).

use mercato_kernel::{ServiceConfig, telemetry};

const USAGE: &str = "usage: review [--rebuild]\n\n  --rebuild  empty the purchase and author projection and replay the order and identity\n             streams from the start before serving (reviews are kept)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = review::Options::default();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--rebuild" => options.rebuild = true,
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let config = ServiceConfig::from_env("review")?;
    let _telemetry = telemetry::init(&config)?;
    review::start(config, options)
        .await?
        .run_until_signalled()
        .await?;
    Ok(())
}
