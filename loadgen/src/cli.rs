//! The command line. Every flag may also come from the mix file (`--config`, the same names
//! with underscores); a flag given on the command line wins over the file, the file over the
//! defaults (docs/loadgen.md lists them all).

use std::path::PathBuf;

use clap::Parser;

use crate::schedule::Spacing;

/// Which of the gateway's three protocols the shoppers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Native gRPC over HTTP/2 (the generated tonic clients).
    Grpc,
    /// REST/JSON over HTTP/1.1 (the google.api.http routes).
    Rest,
    /// gRPC-web over HTTP/1.1, as a browser sends it.
    GrpcWeb,
}

impl Protocol {
    /// The name used on the command line and in summaries.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Rest => "rest",
            Protocol::GrpcWeb => "grpc-web",
        }
    }
}

/// Simulated shoppers through the Mercato edge gateway: browse, search, product pages,
/// basket, coupon, checkout with the test cards, the order watched until it settles,
/// notifications; an admin ships confirmed orders.
#[derive(Debug, Default, Parser)]
#[command(name = "loadgen", version, about, long_about = None)]
pub struct Cli {
    /// TOML file with any of the settings below (see loadgen/loadgen.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The gateway's URL [default: http://127.0.0.1:8080, the gateway of `make run`].
    #[arg(long, env = "LOADGEN_TARGET", value_name = "URL")]
    pub target: Option<String>,

    /// Protocol the shoppers speak [default: grpc].
    #[arg(long, value_enum)]
    pub protocol: Option<Protocol>,

    /// Target checkouts per second; visits arrive at this rate divided by the mix's checkout
    /// share [default: 5 in open loop; unpaced in closed loop].
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,

    /// Shoppers signed up before the clock starts (open loop: more sign up when all are
    /// busy) or, with --closed-loop, the number of shoppers visiting back to back
    /// [default: open loop max(10, visits per second / 2); closed loop 10].
    #[arg(long, value_name = "N")]
    pub users: Option<usize>,

    /// Each of --users shoppers starts its next visit when the previous one ends (paced to
    /// --rate when given), instead of open-loop arrivals.
    #[arg(long)]
    pub closed_loop: bool,

    /// How open-loop visits are spaced [default: poisson].
    #[arg(long, value_enum)]
    pub arrivals: Option<Spacing>,

    /// Linear ramp from 0 to the full rate (or from 1 to all closed-loop shoppers)
    /// [default: 0s].
    #[arg(long, value_name = "DURATION")]
    pub ramp_up: Option<String>,

    /// How long visits keep arriving; 0 runs until Ctrl-C or SIGTERM [default: 30s].
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,

    /// Weighted mix of journeys, e.g. browse=3,checkout=5,account=2
    /// [default: browse=30,checkout=50,account=20].
    #[arg(long, value_name = "JOURNEY=WEIGHT,...")]
    pub mix: Option<String>,

    /// A shopper's pause between two steps of a visit (and between closed-loop visits)
    /// [default: 0s].
    #[arg(long, value_name = "DURATION")]
    pub think: Option<String>,

    /// Share of checkouts paid with the declining test card, 0 to 1 [default: 0.1].
    #[arg(long, value_name = "FRACTION")]
    pub decline_share: Option<f64>,

    /// Share of checkouts that apply a coupon, 0 to 1 [default: 0.3].
    #[arg(long, value_name = "FRACTION")]
    pub coupon_share: Option<f64>,

    /// A coupon code shoppers apply (repeat for more) [default: every coupon the admin lists
    /// that applies to any basket, e.g. make run's WELCOME10].
    #[arg(long = "coupon", value_name = "CODE")]
    pub coupons: Vec<String>,

    /// The admin's e-mail [default: admin@mercato.local, make run's].
    #[arg(long, env = "MERCATO_ADMIN_EMAIL", value_name = "EMAIL")]
    pub admin_email: Option<String>,

    /// The admin's password [default: admin-password, make run's].
    #[arg(
        long,
        env = "MERCATO_ADMIN_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub admin_password: Option<String>,

    /// How often the admin ships confirmed orders and restocks; 0 never [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub admin_every: Option<String>,

    /// Confirmed orders the admin ships per round [default: 10].
    #[arg(long, value_name = "N")]
    pub ship_per_round: Option<usize>,

    /// Never add stock (by default the admin tops up products running low, so a long run
    /// does not turn into a run of sold-out checkouts).
    #[arg(long)]
    pub no_restock: bool,

    /// HTTP/2 connections of native gRPC (the gateway serves each on one core) [default: 4].
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,

    /// Deadline of each call [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// Longest wait for a watched order to settle [default: 15s].
    #[arg(long, value_name = "DURATION")]
    pub settle_timeout: Option<String>,

    /// Visits in flight beyond which new arrivals are dropped and counted as errors
    /// [default: 5000].
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<usize>,

    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Exit with status 1 when more than this fraction of calls failed (0 allows none).
    #[arg(long, value_name = "FRACTION")]
    pub max_error_rate: Option<f64>,

    /// Exit with status 1 when any step's p99 latency is above this.
    #[arg(long, value_name = "DURATION")]
    pub max_p99: Option<String>,

    /// Seed of every random choice (journeys, products, cards, arrivals) [default: random].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Runtime threads of the generator [default: 1: one core drives hundreds of checkouts
    /// per second].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Progress line interval [default: 1s on a terminal, 5s otherwise].
    #[arg(long, value_name = "DURATION")]
    pub progress: Option<String>,
}
