//! Gateway load: the same backend RPC (catalog `GetProduct`) at fixed concurrency for a fixed
//! time, over one or more paths, each measured in turn in this process. Run by `make bench`
//! (`scripts/bench`), which starts catalog, the gateway and nginx and passes the scenarios:
//!
//!     cargo run --release -p edge-gateway --example gateway_load -- \
//!         --scenario 'direct|direct gRPC|grpc|http://127.0.0.1:57062' \
//!         --scenario 'gateway|gateway passthrough|grpc|http://127.0.0.1:58080|<gateway pid>' \
//!         --scenario 'rest|gateway REST|rest|http://127.0.0.1:58080|<gateway pid>' \
//!         --scenario 'grpcweb|gateway gRPC-web|grpc-web|http://127.0.0.1:58080|<gateway pid>'
//!
//! A scenario is `KEY|LABEL|MODE|BASE_URL[|PID]`:
//! - MODE `grpc`: native gRPC with the tonic client (`--connections` HTTP/2 connections, the
//!   workers spread over them);
//! - `rest`: `GET {BASE_URL}/v1/products/{id}` with the hyper-util client (HTTP/1.1
//!   keep-alive, one pooled connection per worker);
//! - `grpc-web`: `POST {BASE_URL}/mercato.catalog.v1.CatalogService/GetProduct` with
//!   `application/grpc-web+proto` and a framed message, same client as REST; the answer's
//!   data frame and `grpc-status: 0` (trailer frame or header) are checked.
//!
//! PID is the proxy process of that path: its CPU time (utime + stime from /proc/PID/stat)
//! during the measured seconds, divided by the requests served, is reported as the proxy's
//! CPU µs per request. The first scenario is the reference of the ratio columns; with the keys
//! `direct`, `gateway`, `nginx`, `rest` and `grpcweb` the targets are checked too
//! (and with `gateway1`, the gateway held to one worker thread like nginx's one worker).
//!
//! The paths are measured in `--rounds N` (5) interleaved slices of `S/N` seconds each, every
//! path in turn within a round, so a machine that speeds up or slows down during the run
//! (a shared host does) weighs on every path alike instead of on whichever ran last.
//!
//! Options: `--concurrency N` (64), `--secs S` (10) measured after `--warmup S` (2),
//! `--connections N` (4, gRPC only), `--product ID` (default: the first product the first
//! scenario's ListProducts returns; that scenario must be gRPC), `--clk-tck N` (100, the
//! kernel's USER_HZ for /proc). Prints a Markdown table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient;
use mercato::pb::catalog::v1::{GetProductRequest, ListProductsRequest};
use prost::Message as _;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Grpc,
    Rest,
    GrpcWeb,
}

#[derive(Debug, Clone)]
struct Scenario {
    key: String,
    label: String,
    mode: Mode,
    url: String,
    pid: Option<u32>,
}

#[derive(Debug, Clone)]
struct Options {
    scenarios: Vec<Scenario>,
    concurrency: usize,
    secs: u64,
    warmup: u64,
    rounds: u32,
    connections: usize,
    product: Option<String>,
    clk_tck: u64,
}

fn usage(problem: &str) -> ! {
    eprintln!("gateway_load: {problem}");
    eprintln!(
        "usage: gateway_load --scenario 'KEY|LABEL|grpc|rest|grpc-web|BASE_URL[|PID]'... \
         [--concurrency N] [--secs S] [--warmup S] [--rounds N] [--connections N] [--product ID] \
         [--clk-tck N]"
    );
    std::process::exit(2)
}

fn parse_scenario(text: &str) -> Scenario {
    let parts: Vec<&str> = text.split('|').collect();
    if !(4..=5).contains(&parts.len()) {
        usage(&format!("bad scenario {text:?}"));
    }
    let mode = match parts[2] {
        "grpc" => Mode::Grpc,
        "rest" => Mode::Rest,
        "grpc-web" => Mode::GrpcWeb,
        other => usage(&format!("unknown mode {other:?}")),
    };
    let pid = parts.get(4).filter(|p| !p.is_empty()).map(|p| {
        p.parse()
            .unwrap_or_else(|_| usage(&format!("bad pid {p:?}")))
    });
    Scenario {
        key: parts[0].to_owned(),
        label: parts[1].to_owned(),
        mode,
        url: parts[3].trim_end_matches('/').to_owned(),
        pid,
    }
}

fn parse_args() -> Options {
    let mut options = Options {
        scenarios: Vec::new(),
        concurrency: 64,
        secs: 10,
        warmup: 2,
        rounds: 5,
        connections: 4,
        product: None,
        clk_tck: 100,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let number = |v: String| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("not a number: {v:?}")))
        };
        match flag.as_str() {
            "--scenario" => options.scenarios.push(parse_scenario(&value())),
            "--concurrency" => options.concurrency = number(value()).max(1) as usize,
            "--secs" => options.secs = number(value()).max(1),
            "--warmup" => options.warmup = number(value()),
            "--rounds" => options.rounds = u32::try_from(number(value()).max(1)).unwrap_or(1),
            "--connections" => options.connections = number(value()).max(1) as usize,
            "--product" => options.product = Some(value()),
            "--clk-tck" => options.clk_tck = number(value()).max(1),
            "-h" | "--help" => usage("help"),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    if options.scenarios.is_empty() {
        usage("no --scenario given");
    }
    options
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The client of a scenario, shared by its workers (one instance: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Driver {
    Grpc(Vec<CatalogServiceClient<Channel>>),
    Http {
        client: Client<HttpConnector, Full<Bytes>>,
        uri: http::Uri,
        grpc_web_body: Option<Bytes>,
    },
}

fn http_client(pool: usize) -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(pool)
        .build(connector)
}

async fn grpc_channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_owned())
        .expect("gRPC URL")
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap_or_else(|err| panic!("cannot connect to {url}: {err}"))
}

/// A gRPC(-web) frame: flag byte, big-endian length, message.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).expect("small message"));
    out.put_slice(message);
    out.freeze()
}

/// Whether a gRPC-web answer carries a message and ends with status 0.
fn grpc_web_ok(headers: &http::HeaderMap, mut body: &[u8]) -> bool {
    // A trailers-only answer (status in the headers) carries no message: not a product.
    if headers.contains_key("grpc-status") {
        return false;
    }
    let mut data = false;
    while body.len() >= 5 {
        let flag = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let Some(payload) = body.get(5..5 + len) else {
            return false;
        };
        if flag & 0x80 == 0 {
            data = true;
        } else {
            let trailers = String::from_utf8_lossy(payload);
            return data
                && trailers.lines().any(|line| {
                    let (name, value) = line.split_once(':').unwrap_or((line, ""));
                    name.trim().eq_ignore_ascii_case("grpc-status") && value.trim() == "0"
                });
        }
        body = &body[5 + len..];
    }
    false
}

impl Driver {
    async fn new(scenario: &Scenario, options: &Options, product: &str) -> Self {
        match scenario.mode {
            Mode::Grpc => {
                let mut clients = Vec::new();
                for _ in 0..options.connections {
                    clients.push(CatalogServiceClient::new(grpc_channel(&scenario.url).await));
                }
                Driver::Grpc(clients)
            }
            Mode::Rest => Driver::Http {
                client: http_client(options.concurrency),
                uri: format!("{}/v1/products/{product}", scenario.url)
                    .parse()
                    .expect("REST URL"),
                grpc_web_body: None,
            },
            Mode::GrpcWeb => Driver::Http {
                client: http_client(options.concurrency),
                uri: format!(
                    "{}/mercato.catalog.v1.CatalogService/GetProduct",
                    scenario.url
                )
                .parse()
                .expect("gRPC-web URL"),
                grpc_web_body: Some(frame(
                    &GetProductRequest {
                        id: product.to_owned(),
                    }
                    .encode_to_vec(),
                )),
            },
        }
    }

    /// One GetProduct; whether it succeeded.
    async fn call(&self, worker: usize, product: &str) -> bool {
        match self {
            Driver::Grpc(clients) => {
                let mut client = clients[worker % clients.len()].clone();
                client
                    .get_product(GetProductRequest {
                        id: product.to_owned(),
                    })
                    .await
                    .is_ok_and(|r| r.get_ref().product.is_some())
            }
            Driver::Http {
                client,
                uri,
                grpc_web_body,
            } => {
                let request = match grpc_web_body {
                    None => http::Request::get(uri.clone())
                        .header("accept", "application/json")
                        .body(Full::new(Bytes::new())),
                    Some(body) => http::Request::post(uri.clone())
                        .header("content-type", "application/grpc-web+proto")
                        .header("accept", "application/grpc-web+proto")
                        .header("x-grpc-web", "1")
                        .body(Full::new(body.clone())),
                }
                .expect("request");
                let Ok(response) = client.request(request).await else {
                    return false;
                };
                let (parts, body) = response.into_parts();
                let Ok(body) = body.collect().await else {
                    return false;
                };
                let body = body.to_bytes();
                if parts.status != http::StatusCode::OK {
                    return false;
                }
                match grpc_web_body {
                    None => !body.is_empty(),
                    Some(_) => grpc_web_ok(&parts.headers, &body),
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Outcome {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    /// Microseconds of each successful call, sorted.
    latencies: Vec<u32>,
}

impl Outcome {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        f64::from(self.latencies[rank.clamp(1, self.latencies.len()) - 1]) / 1000.0
    }
}

async fn drive(driver: &Arc<Driver>, concurrency: usize, product: &str, span: Duration) -> Outcome {
    let started = Instant::now();
    let until = started + span;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let driver = Arc::clone(driver);
            let product = product.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 14);
                let mut errors = 0u64;
                while Instant::now() < until {
                    let t = Instant::now();
                    if driver.call(worker, &product).await {
                        latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut outcome = Outcome::default();
    for worker in workers {
        let (latencies, errors) = worker.await.expect("worker");
        outcome.ok += latencies.len() as u64;
        outcome.errors += errors;
        outcome.latencies.extend(latencies);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

impl Outcome {
    fn add(&mut self, round: Outcome) {
        self.ok += round.ok;
        self.errors += round.errors;
        self.elapsed += round.elapsed;
        self.latencies.extend(round.latencies);
    }
}

async fn first_product(scenario: &Scenario) -> String {
    if scenario.mode != Mode::Grpc {
        usage("without --product the first scenario must be gRPC (to list the products)");
    }
    let mut client = CatalogServiceClient::new(grpc_channel(&scenario.url).await);
    let listed = client
        .list_products(ListProductsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("ListProducts")
        .into_inner();
    listed
        .products
        .first()
        .map(|p| p.id.clone())
        .unwrap_or_else(|| usage("the catalog has no product (seed it or pass --product)"))
}

struct Row {
    scenario: Scenario,
    outcome: Outcome,
    cpu_us_per_req: Option<f64>,
}

fn fmt_opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

#[tokio::main]
async fn main() {
    let options = parse_args();
    let product = match &options.product {
        Some(id) => id.clone(),
        None => first_product(&options.scenarios[0]).await,
    };
    eprintln!(
        "gateway_load: GetProduct {product}, concurrency {}, {} s in {} rounds after {} s warm-up",
        options.concurrency, options.secs, options.rounds, options.warmup
    );

    let mut drivers = Vec::new();
    for scenario in &options.scenarios {
        let driver = Arc::new(Driver::new(scenario, &options, &product).await);
        if !driver.call(0, &product).await {
            eprintln!(
                "gateway_load: {}: the first GetProduct failed ({})",
                scenario.label, scenario.url
            );
            std::process::exit(1);
        }
        if options.warmup > 0 {
            let warmup = Duration::from_secs(options.warmup);
            drive(&driver, options.concurrency, &product, warmup).await;
        }
        drivers.push(driver);
    }

    let slice = Duration::from_secs(options.secs) / options.rounds;
    let mut totals: Vec<(Outcome, Option<u64>)> = options
        .scenarios
        .iter()
        .map(|s| (Outcome::default(), s.pid.map(|_| 0)))
        .collect();
    for _ in 0..options.rounds {
        for ((scenario, driver), (outcome, ticks)) in
            options.scenarios.iter().zip(&drivers).zip(&mut totals)
        {
            let before = scenario.pid.and_then(cpu_ticks);
            outcome.add(drive(driver, options.concurrency, &product, slice).await);
            let after = scenario.pid.and_then(cpu_ticks);
            *ticks = match (*ticks, before, after) {
                (Some(sum), Some(b), Some(a)) => Some(sum + (a - b)),
                _ => None,
            };
        }
    }
    drop(drivers);

    let mut rows = Vec::new();
    for (scenario, (mut outcome, ticks)) in options.scenarios.iter().zip(totals) {
        outcome.latencies.sort_unstable();
        let cpu_us_per_req = ticks
            .filter(|_| outcome.ok > 0)
            .map(|t| t as f64 * 1e6 / options.clk_tck as f64 / outcome.ok as f64);
        eprintln!(
            "gateway_load: {:<40} {:>9.0} req/s  p50 {:.2} ms  p99 {:.2} ms  errors {}",
            scenario.label,
            outcome.rps(),
            outcome.percentile_ms(50.0),
            outcome.percentile_ms(99.0),
            outcome.errors
        );
        rows.push(Row {
            scenario: scenario.clone(),
            outcome,
            cpu_us_per_req,
        });
    }

    let reference = &rows[0];
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| path | req/s | p50 (ms) | p99 (ms) | errors | proxy CPU (µs/req) | req/s vs {0} | p50 vs {0} |",
        reference.scenario.key
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let _ = writeln!(
            table,
            "| {} | {:.0} | {:.2} | {:.2} | {} | {} | {:.2} | {:.2} |",
            row.scenario.label,
            row.outcome.rps(),
            row.outcome.percentile_ms(50.0),
            row.outcome.percentile_ms(99.0),
            row.outcome.errors,
            fmt_opt(row.cpu_us_per_req, 1),
            row.outcome.rps() / reference.outcome.rps(),
            row.outcome.percentile_ms(50.0) / reference.outcome.percentile_ms(50.0),
        );
    }
    println!("{table}");

    // The targets, when the scenarios carry the keys.
    let by_key: HashMap<&str, &Row> = rows.iter().map(|r| (r.scenario.key.as_str(), r)).collect();
    let ratio = |a: &str, b: &str| -> Option<f64> {
        Some(by_key.get(a)?.outcome.rps() / by_key.get(b)?.outcome.rps())
    };
    let mut checks = Vec::new();
    // `gateway1` is the gateway held to one worker thread, as nginx runs one worker.
    for (key, label) in [
        ("gateway", "passthrough"),
        ("gateway1", "passthrough (1 thread)"),
    ] {
        if let Some(r) = ratio(key, "nginx") {
            checks.push(format!("{label} / nginx grpc_pass = {r:.2} (target ≥ 1.2)"));
        }
    }
    if let Some(r) = ratio("rest", "gateway") {
        checks.push(format!("REST / passthrough = {r:.2} (target ≥ 0.8)"));
    }
    if let Some(r) = ratio("grpcweb", "gateway") {
        checks.push(format!("gRPC-web / passthrough = {r:.2} (target ≥ 0.9)"));
    }
    for (key, label) in [("gateway", "gateway"), ("gateway1", "gateway (1 thread)")] {
        if let (Some(g), Some(n)) = (
            by_key.get(key).and_then(|r| r.cpu_us_per_req),
            by_key.get("nginx").and_then(|r| r.cpu_us_per_req),
        ) {
            checks.push(format!(
                "proxy CPU per request: {label} {g:.1} µs, nginx {n:.1} µs (target: gateway below nginx)"
            ));
        }
    }
    for check in checks {
        println!("- {check}");
    }
}
