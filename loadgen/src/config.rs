//! The run's settings: the mix file (`--config`), overridden by the command line, completed
//! with defaults, and checked once here so the run itself never meets a bad value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::{Cli, Protocol};
use crate::duration::{self, BadDuration};
use crate::mix::{Journey, Mix, MixError};
use crate::schedule::Spacing;
use crate::thresholds::Thresholds;

/// The gateway `make run` starts.
pub const DEFAULT_TARGET: &str = "http://127.0.0.1:8080";
/// The administrator `make run` creates (scripts/run: MERCATO_ADMIN_EMAIL).
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@mercato.local";
/// Its password (scripts/run: MERCATO_ADMIN_PASSWORD).
pub const DEFAULT_ADMIN_PASSWORD: &str = "admin-password";

/// Settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The mix file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The mix file is not valid TOML of the expected shape.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A duration setting.
    #[error("{setting}: {source}")]
    Duration {
        /// Its name.
        setting: &'static str,
        /// Why.
        #[source]
        source: BadDuration,
    },
    /// The mix.
    #[error(transparent)]
    Mix(#[from] MixError),
    /// Any other value out of its range.
    #[error("{setting} {problem}")]
    Invalid {
        /// Its name.
        setting: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        problem: problem.into(),
    }
}

/// The mix file: every setting optional, named as the flags are (with underscores).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    target: Option<String>,
    protocol: Option<Protocol>,
    rate: Option<f64>,
    users: Option<usize>,
    closed_loop: Option<bool>,
    arrivals: Option<Spacing>,
    ramp_up: Option<String>,
    duration: Option<String>,
    think: Option<String>,
    decline_share: Option<f64>,
    coupon_share: Option<f64>,
    coupons: Option<Vec<String>>,
    connections: Option<usize>,
    timeout: Option<String>,
    settle_timeout: Option<String>,
    max_in_flight: Option<usize>,
    json: Option<PathBuf>,
    max_error_rate: Option<f64>,
    max_p99: Option<String>,
    seed: Option<u64>,
    threads: Option<usize>,
    progress: Option<String>,
    /// Journey weights.
    mix: Option<BTreeMap<String, f64>>,
    admin: Option<AdminFile>,
}

/// The `[admin]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminFile {
    email: Option<String>,
    password: Option<String>,
    every: Option<String>,
    ship_per_round: Option<usize>,
    restock: Option<bool>,
    restock_below: Option<i32>,
    restock_to: Option<i32>,
}

impl FileConfig {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// How visits are started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Visits arrive on their own clock at `visit_rate` per second.
    Open {
        /// Visits per second (the checkout rate over the checkout share).
        visit_rate: f64,
        /// How they are spaced.
        spacing: Spacing,
    },
    /// `users` shoppers visit back to back, each paced to `visit_rate / users` when given.
    Closed {
        /// Visits per second over all shoppers, when paced.
        visit_rate: Option<f64>,
    },
}

/// The admin's work.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// Sign-in e-mail.
    pub email: String,
    /// Password.
    pub password: String,
    /// Time between rounds; `None`: no admin rounds.
    pub every: Option<Duration>,
    /// Orders shipped per round at most.
    pub ship_per_round: usize,
    /// Whether products are topped up.
    pub restock: bool,
    /// Stock below which a product is topped up.
    pub restock_below: i32,
    /// Stock it is topped up to.
    pub restock_to: i32,
}

/// Everything the run needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The gateway.
    pub target: String,
    /// The protocol.
    pub protocol: Protocol,
    /// Target checkouts per second (always set in open loop; a closed loop is paced only
    /// when it is set).
    pub rate: Option<f64>,
    /// Open or closed loop.
    pub load: Load,
    /// Shoppers prepared before the clock starts (closed loop: exactly these visit).
    pub users: usize,
    /// Ramp-up.
    pub ramp_up: Duration,
    /// How long visits keep arriving; `None` until interrupted.
    pub duration: Option<Duration>,
    /// Pause between steps.
    pub think: Duration,
    /// The journeys' weights.
    pub mix: Mix,
    /// Share of checkouts with the declining card.
    pub decline_share: f64,
    /// Share of checkouts with a coupon.
    pub coupon_share: f64,
    /// Coupon codes; empty: discovered.
    pub coupons: Vec<String>,
    /// The admin.
    pub admin: Admin,
    /// Native gRPC connections.
    pub connections: usize,
    /// Call deadline.
    pub timeout: Duration,
    /// Settle wait.
    pub settle_timeout: Duration,
    /// Visits in flight at most.
    pub max_in_flight: usize,
    /// JSON summary file.
    pub json: Option<PathBuf>,
    /// Exit-status thresholds.
    pub thresholds: Thresholds,
    /// Seed of the random choices.
    pub seed: u64,
    /// Runtime threads.
    pub threads: usize,
    /// Progress interval; `None`: by whether stderr is a terminal.
    pub progress: Option<Duration>,
}

fn parse_duration(setting: &'static str, text: &str) -> Result<Duration, ConfigError> {
    duration::parse(text).map_err(|source| ConfigError::Duration { setting, source })
}

fn share(setting: &'static str, value: f64) -> Result<f64, ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            setting,
            format!("must be between 0 and 1, not {value}"),
        ))
    }
}

impl Settings {
    /// The command line over the file (`file` when `--config` was given) over the defaults.
    pub fn resolve(cli: Cli, file: FileConfig) -> Result<Self, ConfigError> {
        let admin_file = file.admin.unwrap_or_default();
        let target = cli
            .target
            .or(file.target)
            .unwrap_or_else(|| DEFAULT_TARGET.to_owned());
        if !target.starts_with("http://") {
            return Err(invalid(
                "--target",
                format!("must be an http:// URL (the gateway speaks cleartext), not '{target}'"),
            ));
        }
        let mix = match (cli.mix, file.mix) {
            (Some(text), _) => Mix::parse(&text)?,
            (None, Some(table)) => Mix::from_table(&table)?,
            (None, None) => Mix::default(),
        };
        let closed_loop = cli.closed_loop || file.closed_loop.unwrap_or(false);
        let rate = cli.rate.or(file.rate);
        if let Some(rate) = rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(invalid("--rate", format!("must be above 0, not {rate}")));
        }
        let checkout_share = mix.share(Journey::Checkout);
        let visit_rate = |rate: f64| {
            if checkout_share > 0.0 {
                Ok(rate / checkout_share)
            } else {
                Err(invalid(
                    "--rate",
                    "counts checkouts per second, but the mix has no checkout journey",
                ))
            }
        };
        // Open loop needs a rate to aim at; closed loop runs unpaced without one.
        let rate = if closed_loop {
            rate
        } else {
            Some(rate.unwrap_or(5.0))
        };
        let load = match rate.filter(|_| !closed_loop) {
            Some(rate) => Load::Open {
                visit_rate: visit_rate(rate)?,
                spacing: cli.arrivals.or(file.arrivals).unwrap_or(Spacing::Poisson),
            },
            None => Load::Closed {
                visit_rate: rate.map(visit_rate).transpose()?,
            },
        };
        let users = match (cli.users.or(file.users), load) {
            (Some(0), _) => return Err(invalid("--users", "must be at least 1")),
            (Some(n), _) => n,
            (None, Load::Open { visit_rate, .. }) => {
                // Two visits a second per shopper keeps each well under the gateway's
                // per-principal rate limit (50 calls/s by default).
                (visit_rate / 2.0).ceil().max(10.0) as usize
            }
            (None, Load::Closed { .. }) => 10,
        };
        let text = |flag: Option<String>, file: Option<String>, default: &str| {
            flag.or(file).unwrap_or_else(|| default.to_owned())
        };
        let ramp_up = parse_duration("--ramp-up", &text(cli.ramp_up, file.ramp_up, "0s"))?;
        let duration = parse_duration("--duration", &text(cli.duration, file.duration, "30s"))?;
        let think = parse_duration("--think", &text(cli.think, file.think, "0s"))?;
        let timeout = parse_duration("--timeout", &text(cli.timeout, file.timeout, "10s"))?;
        let settle_timeout = parse_duration(
            "--settle-timeout",
            &text(cli.settle_timeout, file.settle_timeout, "15s"),
        )?;
        if timeout.is_zero() || settle_timeout.is_zero() {
            return Err(invalid("--timeout", "and --settle-timeout must be above 0"));
        }
        let every = parse_duration(
            "--admin-every",
            &text(cli.admin_every, admin_file.every, "5s"),
        )?;
        let progress = cli
            .progress
            .or(file.progress)
            .map(|p| parse_duration("--progress", &p))
            .transpose()?;
        if progress.is_some_and(|p| p.is_zero()) {
            return Err(invalid("--progress", "must be above 0"));
        }
        let restock_below = admin_file.restock_below.unwrap_or(500);
        let restock_to = admin_file.restock_to.unwrap_or(2000);
        if restock_below < 0 || restock_to <= restock_below {
            return Err(invalid(
                "admin.restock_to",
                format!(
                    "must be above admin.restock_below (0 or more): {restock_to} vs {restock_below}"
                ),
            ));
        }
        let connections = cli.connections.or(file.connections).unwrap_or(4);
        if !(1..=64).contains(&connections) {
            return Err(invalid("--connections", "must be 1 to 64"));
        }
        let threads = cli.threads.or(file.threads).unwrap_or(1);
        if !(1..=64).contains(&threads) {
            return Err(invalid("--threads", "must be 1 to 64"));
        }
        let max_in_flight = cli.max_in_flight.or(file.max_in_flight).unwrap_or(5000);
        if max_in_flight == 0 {
            return Err(invalid("--max-in-flight", "must be at least 1"));
        }
        let max_error_rate = cli.max_error_rate.or(file.max_error_rate);
        if let Some(rate) = max_error_rate {
            share("--max-error-rate", rate)?;
        }
        let max_p99 = cli
            .max_p99
            .or(file.max_p99)
            .map(|p| parse_duration("--max-p99", &p))
            .transpose()?;
        let coupons = if cli.coupons.is_empty() {
            file.coupons.unwrap_or_default()
        } else {
            cli.coupons
        };
        Ok(Self {
            target: target.trim_end_matches('/').to_owned(),
            protocol: cli.protocol.or(file.protocol).unwrap_or(Protocol::Grpc),
            rate,
            load,
            users,
            ramp_up,
            duration: (!duration.is_zero()).then_some(duration),
            think,
            mix,
            decline_share: share(
                "--decline-share",
                cli.decline_share.or(file.decline_share).unwrap_or(0.1),
            )?,
            coupon_share: share(
                "--coupon-share",
                cli.coupon_share.or(file.coupon_share).unwrap_or(0.3),
            )?,
            coupons,
            admin: Admin {
                email: cli
                    .admin_email
                    .or(admin_file.email)
                    .unwrap_or_else(|| DEFAULT_ADMIN_EMAIL.to_owned()),
                password: cli
                    .admin_password
                    .or(admin_file.password)
                    .unwrap_or_else(|| DEFAULT_ADMIN_PASSWORD.to_owned()),
                every: (!every.is_zero()).then_some(every),
                ship_per_round: cli
                    .ship_per_round
                    .or(admin_file.ship_per_round)
                    .unwrap_or(10),
                restock: !cli.no_restock && admin_file.restock.unwrap_or(true),
                restock_below,
                restock_to,
            },
            connections,
            timeout,
            settle_timeout,
            max_in_flight,
            json: cli.json.or(file.json),
            thresholds: Thresholds {
                max_error_rate,
                max_p99,
            },
            seed: cli.seed.or(file.seed).unwrap_or_else(rand::random),
            threads,
            progress,
        })
    }

    /// The settings of this command line, reading its `--config` file if any.
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        Self::resolve(cli, file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied())).unwrap()
    }

    fn settings(args: &[&str], file: &str) -> Result<Settings, ConfigError> {
        Settings::resolve(cli(args), FileConfig::parse(file).unwrap())
    }

    #[test]
    fn defaults_drive_make_runs_gateway_in_open_loop() {
        let s = settings(&["--seed", "1"], "").unwrap();
        assert_eq!(s.target, DEFAULT_TARGET);
        assert_eq!(s.protocol, Protocol::Grpc);
        assert_eq!(s.duration, Some(Duration::from_secs(30)));
        assert_eq!(s.admin.email, DEFAULT_ADMIN_EMAIL);
        // 5 checkouts/s at a 50 % checkout share: 10 visits/s.
        assert_eq!(
            s.load,
            Load::Open {
                visit_rate: 10.0,
                spacing: Spacing::Poisson
            }
        );
        assert_eq!(s.users, 10);
        assert_eq!(s.rate, Some(5.0));
        assert!(s.admin.restock);
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let file = r#"
            target = "http://gateway:50051"
            protocol = "grpc-web"
            rate = 40
            duration = "2m"
            coupons = ["WELCOME10"]
            [mix]
            browse = 1
            checkout = 1
            [admin]
            every = "0"
            restock = false
        "#;
        let s = settings(&["--rate", "10", "--protocol", "rest"], file).unwrap();
        assert_eq!(s.target, "http://gateway:50051");
        assert_eq!(s.protocol, Protocol::Rest);
        assert_eq!(s.rate, Some(10.0));
        assert_eq!(s.duration, Some(Duration::from_secs(120)));
        assert_eq!(s.coupons, ["WELCOME10"]);
        assert_eq!(s.mix, Mix::parse("browse=1,checkout=1").unwrap());
        assert_eq!(s.admin.every, None);
        assert!(!s.admin.restock);
        // 10 checkouts/s at half the visits: 20 visits/s.
        assert!(matches!(s.load, Load::Open { visit_rate, .. } if visit_rate == 20.0));
        assert_eq!(s.users, 10);
        let flag_mix = settings(&["--mix", "checkout=1"], file).unwrap();
        assert_eq!(flag_mix.mix.share(Journey::Checkout), 1.0);
    }

    #[test]
    fn closed_loop_is_unpaced_unless_a_rate_is_given() {
        let s = settings(&["--closed-loop", "--users", "3"], "").unwrap();
        assert_eq!(s.load, Load::Closed { visit_rate: None });
        assert_eq!(s.users, 3);
        let paced = settings(&["--closed-loop", "--rate", "4", "--mix", "checkout=1"], "").unwrap();
        assert_eq!(
            paced.load,
            Load::Closed {
                visit_rate: Some(4.0)
            }
        );
    }

    #[test]
    fn high_rates_prepare_enough_shoppers() {
        let s = settings(&["--rate", "200", "--mix", "checkout=1"], "").unwrap();
        assert_eq!(s.users, 100);
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        for (args, file, wanted) in [
            (&["--rate", "0"][..], "", "--rate"),
            (
                &["--rate", "5", "--mix", "browse=1"][..],
                "",
                "no checkout journey",
            ),
            (&["--decline-share", "1.5"][..], "", "--decline-share"),
            (&["--duration", "30"][..], "", "--duration"),
            (&["--target", "https://shop.example"][..], "", "http://"),
            (&["--users", "0"][..], "", "--users"),
            (&["--connections", "0"][..], "", "--connections"),
            (&["--max-error-rate", "2"][..], "", "--max-error-rate"),
            (
                &[][..],
                "[admin]\nrestock_below = 10\nrestock_to = 5",
                "restock_to",
            ),
        ] {
            let error = settings(args, file).unwrap_err().to_string();
            assert!(error.contains(wanted), "{args:?}: {error}");
        }
        assert!(
            FileConfig::parse("rates = 5").is_err(),
            "unknown keys are refused"
        );
        assert!(FileConfig::parse("[mix]\nbrowse = \"a lot\"").is_err());
    }

    #[test]
    fn a_zero_duration_runs_until_interrupted() {
        let s = settings(&["--duration", "0"], "").unwrap();
        assert_eq!(s.duration, None);
    }

    #[test]
    fn the_shipped_example_file_parses_and_resolves() {
        let text = include_str!("../loadgen.toml");
        let file = FileConfig::parse(text).unwrap();
        let s = Settings::resolve(cli(&[]), file).unwrap();
        assert_eq!(s.target, DEFAULT_TARGET);
        assert!(s.mix.share(Journey::Checkout) > 0.0);
    }
}
