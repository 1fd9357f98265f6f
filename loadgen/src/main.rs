//! `loadgen`: shoppers simulated through the Mercato edge gateway, over native gRPC, REST or
//! gRPC-web. An external client of the public API only (the contracts crate, no service
//! code): it signs shoppers up, browses, fills baskets, checks out with the test cards and
//! watches the orders settle, while an admin ships them; it reports latency per step from
//! HDR histograms, measured open-loop from each visit's scheduled start, and exits non-zero
//! when a threshold fails. docs/loadgen.md is the manual.
//!
//! Exit status: 0 the run passed (or had no thresholds), 1 a threshold failed, 2 the run
//! could not start (bad settings, the shop unreachable at set-up, no admin).

mod cli;
mod config;
mod duration;
mod failure;
mod grpc;
mod journeys;
mod mix;
mod progress;
mod rest;
mod run;
mod schedule;
mod session;
mod setup;
mod shop;
mod stats;
mod step;
mod summary;
mod thresholds;
mod users;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

use crate::cli::{Cli, Protocol};
use crate::config::Settings;
use crate::grpc::GrpcShop;
use crate::rest::RestShop;
use crate::summary::Summary;

fn main() -> ExitCode {
    let settings = match Settings::from_cli(Cli::parse()) {
        Ok(settings) => settings,
        Err(error) => return fail(&error.into()),
    };
    match measure(&settings).and_then(|summary| report(&settings, &summary).map(|()| summary)) {
        Ok(summary) if summary.thresholds.passed => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => fail(&error),
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    let _ = writeln!(std::io::stderr().lock(), "loadgen: error: {error:#}");
    ExitCode::from(2)
}

/// Runs the load on a runtime of `settings.threads` threads.
fn measure(settings: &Settings) -> anyhow::Result<Summary> {
    // One thread by default: a single-threaded runtime never hands a wake-up to another
    // core, which keeps the generator's own CPU per call low (it must stay a small share of
    // what it drives).
    let runtime = if settings.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads)
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;
    let summary = runtime.block_on(async {
        match settings.protocol {
            Protocol::Grpc => {
                let shop =
                    GrpcShop::native(&settings.target, settings.connections, settings.timeout)?;
                run::run(shop, settings).await
            }
            Protocol::GrpcWeb => {
                let shop = GrpcShop::web(&settings.target, settings.timeout)?;
                run::run(shop, settings).await
            }
            Protocol::Rest => {
                run::run(RestShop::new(&settings.target, settings.timeout), settings).await
            }
        }
        .map_err(anyhow::Error::from)
    })?;
    Ok(summary)
}

/// Prints the summary and writes its JSON.
fn report(settings: &Settings, summary: &Summary) -> anyhow::Result<()> {
    if let Some(path) = &settings.json {
        let json = serde_json::to_vec_pretty(summary).context("cannot encode the summary")?;
        std::fs::write(path, json)
            .with_context(|| format!("cannot write the summary to {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(summary.render().as_bytes())
        .and_then(|()| out.flush())
        .context("cannot print the summary")
}
