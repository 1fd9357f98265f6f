//! Login bursts against a running identity process: registers one account, then fires bursts
//! of concurrent password logins, each from its own HTTP/2 connection with a deadline, and
//! reads the identity process's RSS from `/proc/<pid>/status` while each burst runs (sampled
//! every 5 ms) and after the pause that follows it. Run by `BENCH_ONLY=login make bench`
//! (scripts/bench starts identity in the variants it compares); on its own:
//!
//!     BENCH_IDENTITY_URL=http://127.0.0.1:50061 BENCH_IDENTITY_PID=<pid> \
//!       cargo run --release -p identity --features bench --bin login-burst
//!
//! A binary of the identity package behind the `bench` feature rather than an example, so the
//! release build for the benchmark does not compile the test harness and every service it
//! depends on.
//!
//! BENCH_LOGINS (100) logins per burst, BENCH_BURSTS (20) bursts, BENCH_DEADLINE_MS (5000,
//! the gateway's call timeout) per login, BENCH_PAUSE_MS (2000) between bursts, BENCH_LABEL
//! (the first cell of the printed row), BENCH_MAX_RSS_MIB (3072): stop early once identity's
//! RSS after a burst is above this, so an unbounded variant cannot exhaust the machine.
//! Prints one Markdown row; one line per burst on stderr.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mercato::pb::identity::v1::identity_service_client::IdentityServiceClient;
use mercato::pb::identity::v1::{
    IssueTokenRequest, PasswordGrant, RegisterRequest, issue_token_request,
};
use tonic::Code;
use tonic::transport::Channel;

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("identity runs");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let url = std::env::var("BENCH_IDENTITY_URL").expect("BENCH_IDENTITY_URL");
    let pid: u32 = std::env::var("BENCH_IDENTITY_PID")
        .expect("BENCH_IDENTITY_PID")
        .parse()
        .expect("a pid");
    let logins = usize::try_from(env_or("BENCH_LOGINS", 100)).unwrap();
    let bursts = env_or("BENCH_BURSTS", 20);
    let deadline = Duration::from_millis(env_or("BENCH_DEADLINE_MS", 5000));
    let pause = Duration::from_millis(env_or("BENCH_PAUSE_MS", 2000));
    let label = std::env::var("BENCH_LABEL").unwrap_or_else(|_| "identity".into());
    let max_rss_kib = env_or("BENCH_MAX_RSS_MIB", 3072) * 1024;

    let mut clients = Vec::with_capacity(logins);
    for _ in 0..logins {
        let channel = Channel::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .expect("connect");
        clients.push(IdentityServiceClient::new(channel));
    }
    let email = format!("bench{}@example.com", uuid::Uuid::now_v7().simple());
    let password = "a long enough benchmark password".to_owned();
    clients[0]
        .register(RegisterRequest {
            email: email.clone(),
            password: password.clone(),
            display_name: "Bench".into(),
        })
        .await
        .expect("register");
    let idle = rss_kib(pid);

    let mut latencies = Vec::new();
    let (mut ok, mut refused, mut failed) = (0u64, 0u64, 0u64);
    let mut other_codes = Vec::new();
    let mut peak = 0u64;
    let mut after = Vec::new();
    let mut stopped = None;
    for burst in 1..=bursts {
        let sampling = Arc::new(AtomicBool::new(true));
        let burst_peak = Arc::new(AtomicU64::new(0));
        let sampler = std::thread::spawn({
            let (sampling, burst_peak) = (sampling.clone(), burst_peak.clone());
            move || {
                while sampling.load(Ordering::Relaxed) {
                    burst_peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for client in &clients {
            let mut client = client.clone();
            let mut request = tonic::Request::new(IssueTokenRequest {
                grant: Some(issue_token_request::Grant::Password(PasswordGrant {
                    email: email.clone(),
                    password: password.clone(),
                })),
            });
            request.set_timeout(deadline);
            set.spawn(async move {
                let sent = Instant::now();
                let outcome = client.issue_token(request).await;
                (sent.elapsed(), outcome.map(|_| ()))
            });
        }
        let outcomes = set.join_all().await;
        let took = started.elapsed();
        sampling.store(false, Ordering::Relaxed);
        sampler.join().unwrap();
        let (mut burst_ok, mut burst_refused) = (0, 0);
        for (latency, outcome) in outcomes {
            match outcome {
                Ok(()) => {
                    ok += 1;
                    burst_ok += 1;
                    latencies.push(latency);
                }
                Err(status) if status.code() == Code::ResourceExhausted => {
                    refused += 1;
                    burst_refused += 1;
                }
                Err(status) => {
                    failed += 1;
                    if !other_codes.contains(&status.code()) {
                        other_codes.push(status.code());
                    }
                }
            }
        }
        let burst_peak = burst_peak.load(Ordering::Relaxed);
        peak = peak.max(burst_peak);
        tokio::time::sleep(pause).await;
        let rest = rss_kib(pid);
        after.push(rest);
        eprintln!(
            "{label}: burst {burst}: {burst_ok} ok, {burst_refused} refused in {:.2} s; \
             RSS peak {:.0} MiB, after {:.0} MiB",
            took.as_secs_f64(),
            mib(burst_peak),
            mib(rest)
        );
        if rest > max_rss_kib && burst < bursts {
            stopped = Some(burst);
            break;
        }
    }

    latencies.sort();
    let pct = |p: f64| {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    let total = ok + refused + failed;
    let others = if other_codes.is_empty() {
        String::new()
    } else {
        format!(" ({other_codes:?})")
    };
    let label = match stopped {
        Some(burst) => format!(
            "{label} (stopped after burst {burst}: RSS above {} MiB)",
            max_rss_kib / 1024
        ),
        None => label,
    };
    println!(
        "| {label} | {:.1} % ({ok} of {total}) | {refused} | {failed}{others} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} | {:.0} |",
        ok as f64 * 100.0 / total as f64,
        pct(0.5),
        pct(0.99),
        mib(idle),
        mib(peak),
        mib(after[0]),
        mib(after[(after.len() - 1) / 2]),
        mib(*after.last().unwrap()),
        mib(*after.iter().max().unwrap()),
    );
}
