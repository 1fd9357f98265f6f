//! The identity binary: configuration from the environment, then the kernel does the rest.

use mercato_kernel::config::ProcessEnv;
use mercato_kernel::{ServiceConfig, telemetry};

// Each login hashes with 19 MiB of Argon2id memory on a blocking thread. glibc's malloc keeps
// such blocks in its per-thread arenas after a burst (RSS past 1 GiB even with six hashes at
// a time); mimalloc holds a steady ~185 MiB, and gives it back at once with
// MIMALLOC_PURGE_DELAY=0 (docs/benchmarks.md, "Login bursts"). The static musl image gets
// mimalloc too, rather than musl's malloc.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ServiceConfig::from_env("identity")?;
    let _telemetry = telemetry::init(&config)?;
    let settings = identity::Settings::from_env(&ProcessEnv)?;
    let running = identity::start(config, settings).await?;
    running.run_until_signalled().await?;
    Ok(())
}
