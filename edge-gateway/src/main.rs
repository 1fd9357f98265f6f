//! The edge-gateway binary: configuration from the environment, then [`edge_gateway::start`].
//!
//! `edge-gateway openapi` prints the OpenAPI document instead of serving (for validation in
//! CI and for client generators, with no mesh running).

use std::io::Write as _;

use mercato_kernel::config::ProcessEnv;
use mercato_kernel::{ServiceConfig, telemetry};

// Every forwarded call allocates and frees headers, frames and futures on every worker
// thread; musl's malloc (the static image) and glibc's both spend a visible share of the
// gateway's CPU on that, mimalloc's thread-local heaps far less (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Calls are served by the gateway's own worker threads (`MERCATO_GATEWAY_WORKERS`); this
// runtime only accepts connections and runs the admin port and background work.
#[tokio::main(worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        let document = edge_gateway::openapi_document()?;
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &document)?;
        writeln!(stdout)?;
        return Ok(());
    }
    let config = ServiceConfig::from_env("edge-gateway")?;
    let _telemetry = telemetry::init(&config)?;
    let settings = edge_gateway::Settings::from_env(&ProcessEnv)?;
    edge_gateway::start(config, settings)
        .await?
        .run_until_signalled()
        .await?;
    Ok(())
}
