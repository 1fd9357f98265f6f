//! Twelve-factor configuration: every knob comes from the environment, read through the
//! [`Env`] trait so tests never touch the process environment.
//!
//! This module depends on no other part of the kernel: every other part may read its
//! section of [`ServiceConfig`] without an import cycle.

mod secret;
mod sections;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

pub use secret::{Secret, SecretUrl};
pub use sections::{
    AuthConfig, ClientCredentials, DEFAULT_ISSUER, DEFAULT_OUTBOX_RETENTION, DatabaseConfig,
    EventsConfig, LogFormat, PeersConfig, RedisConfig, ServerConfig, TelemetryConfig,
};

/// Where configuration values come from.
pub trait Env: Send + Sync {
    /// The value of `key`, if set and not empty.
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned().filter(|v| !v.is_empty())
    }
}

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The variable is set but does not parse.
    #[error("{key}={value:?} is not valid: {reason}")]
    Invalid {
        /// Variable name.
        key: String,
        /// The raw value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A required variable is missing.
    #[error("{0} must be set")]
    Missing(String),
}

/// Typed access to an [`Env`].
pub struct Vars<'a>(pub &'a dyn Env);

impl Vars<'_> {
    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.var(key)
    }

    /// The value of `key`, or `default`.
    pub fn get_or(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or_else(|| default.to_owned())
    }

    /// `key` parsed as `T`, or `default` when unset.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|e: T::Err| ConfigError::Invalid {
                key: key.to_owned(),
                reason: e.to_string(),
                value,
            }),
        }
    }

    /// `key` as a duration in seconds, or `default`.
    pub fn seconds_or(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        self.parse_or(key, default.as_secs())
            .map(Duration::from_secs)
    }
}

/// Local-development gRPC port of each component (`make run`); in Kubernetes every service
/// listens on 50051 and the port comes from `MERCATO_GRPC_ADDR`.
pub fn default_grpc_port(service: &str) -> u16 {
    match service {
        "edge-gateway" => 8080,
        "identity" => 50061,
        "catalog" => 50062,
        "inventory" => 50063,
        "basket" => 50064,
        "discount" => 50065,
        "payment" => 50066,
        "order" => 50067,
        "order-query" => 50068,
        "review" => 50069,
        "notification" => 50070,
        "statistics" => 50071,
        _ => 50051,
    }
}

/// The settings every service shares, in one section per concern. Service-specific
/// settings are read by the service itself through [`Vars`].
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Component name, e.g. "catalog"; used in logs, metrics, health and stream names.
    pub service: String,
    /// The gRPC server and the admin port.
    pub server: ServerConfig,
    /// The service's own database.
    pub database: DatabaseConfig,
    /// Redis.
    pub redis: RedisConfig,
    /// NATS JetStream.
    pub events: EventsConfig,
    /// The peers the service calls.
    pub peers: PeersConfig,
    /// Token verification.
    pub auth: AuthConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
}

/// Every component of the mesh, in port order.
pub const SERVICES: [&str; 11] = [
    "identity",
    "catalog",
    "inventory",
    "basket",
    "discount",
    "payment",
    "order",
    "order-query",
    "review",
    "notification",
    "statistics",
];

/// `MERCATO_UPSTREAM_<SERVICE>` for a component name.
pub fn upstream_var(service: &str) -> String {
    format!(
        "MERCATO_UPSTREAM_{}",
        service.to_ascii_uppercase().replace('-', "_")
    )
}

impl ServiceConfig {
    /// Reads the shared settings of `service` from the process environment.
    pub fn from_env(service: &str) -> Result<Self, ConfigError> {
        Self::from_source(service, &ProcessEnv)
    }

    /// Reads the shared settings of `service` from `env`.
    pub fn from_source(service: &str, env: &dyn Env) -> Result<Self, ConfigError> {
        let vars = Vars(env);
        Ok(Self {
            service: service.to_owned(),
            server: ServerConfig::read(&vars, service)?,
            telemetry: TelemetryConfig::read(&vars)?,
            database: DatabaseConfig::read(&vars)?,
            redis: RedisConfig::read(&vars, service),
            events: EventsConfig::read(&vars)?,
            peers: PeersConfig::read(&vars)?,
            auth: AuthConfig::read(&vars),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_local_port_plan() {
        let config = ServiceConfig::from_source("catalog", &env(&[])).unwrap();
        assert_eq!(config.server.grpc_addr.port(), 50062);
        assert_eq!(config.server.admin_addr.port(), 51062);
        assert_eq!(config.redis.prefix, "mercato:catalog:");
        assert_eq!(config.telemetry.log_format, LogFormat::Json);
        assert_eq!(
            config.events.outbox_retention,
            Duration::from_secs(72 * 3600)
        );
        assert_eq!(config.server.max_connection_age, None);
        let aged = ServiceConfig::from_source(
            "catalog",
            &env(&[("MERCATO_MAX_CONNECTION_AGE_SECS", "600")]),
        )
        .unwrap();
        assert_eq!(
            aged.server.max_connection_age,
            Some(Duration::from_secs(600))
        );
        let config =
            ServiceConfig::from_source("catalog", &env(&[("MERCATO_OUTBOX_RETENTION_HOURS", "1")]))
                .unwrap();
        assert_eq!(config.events.outbox_retention, Duration::from_secs(3600));
    }

    #[test]
    fn admin_port_follows_an_overridden_grpc_port() {
        let config =
            ServiceConfig::from_source("catalog", &env(&[("MERCATO_GRPC_ADDR", "127.0.0.1:7000")]))
                .unwrap();
        assert_eq!(config.server.admin_addr.to_string(), "127.0.0.1:8000");
    }

    #[test]
    fn upstreams_default_to_local_ports_and_follow_their_variables() {
        let config = ServiceConfig::from_source(
            "order",
            &env(&[("MERCATO_UPSTREAM_ORDER_QUERY", "http://order-query:50051")]),
        )
        .unwrap();
        assert_eq!(
            config.peers.upstreams["inventory"],
            "http://127.0.0.1:50063"
        );
        assert_eq!(
            config.peers.upstreams["order-query"],
            "http://order-query:50051"
        );
        assert!(config.peers.credentials.is_none());
    }

    #[test]
    fn client_credentials_come_in_pairs_and_hide_the_secret() {
        assert!(ServiceConfig::from_source("order", &env(&[("MERCATO_CLIENT_ID", "x")])).is_err());
        let config = ServiceConfig::from_source(
            "order",
            &env(&[
                ("MERCATO_CLIENT_ID", "x"),
                ("MERCATO_CLIENT_SECRET", "s3cr3t"),
            ]),
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }

    #[test]
    fn server_passwords_never_print() {
        let config = ServiceConfig::from_source(
            "catalog",
            &env(&[
                ("DATABASE_URL", "postgres://catalog:db-pass@db/catalog"),
                ("REDIS_URL", "redis://default:redis-pass@cache:6379"),
                ("NATS_URL", "nats://catalog:nats-pass@nats:4222"),
            ]),
        )
        .unwrap();
        let shown = format!("{config:?}");
        for password in ["db-pass", "redis-pass", "nats-pass"] {
            assert!(!shown.contains(password), "{shown}");
        }
        assert_eq!(
            config.database.require_url().unwrap().expose(),
            "postgres://catalog:db-pass@db/catalog"
        );
    }

    #[test]
    fn a_malformed_value_names_the_variable() {
        let err = ServiceConfig::from_source("catalog", &env(&[("MERCATO_GRPC_ADDR", "nope")]))
            .unwrap_err();
        assert!(err.to_string().contains("MERCATO_GRPC_ADDR"), "{err}");
    }

    #[test]
    fn stream_copies_are_one_to_five() {
        let copies = |value: &str| {
            ServiceConfig::from_source("catalog", &env(&[("MERCATO_EVENT_STREAM_REPLICAS", value)]))
                .map(|c| c.events.stream_replicas)
        };
        assert_eq!(
            ServiceConfig::from_source("catalog", &env(&[]))
                .unwrap()
                .events
                .stream_replicas,
            1
        );
        assert_eq!(copies("3").unwrap(), 3);
        for refused in ["0", "6", "three"] {
            let err = copies(refused).unwrap_err();
            assert!(
                err.to_string().contains("MERCATO_EVENT_STREAM_REPLICAS"),
                "{err}"
            );
        }
    }
}
