//! Twelve-factor configuration: every knob comes from the environment, read through the
//! [`Env`] trait so tests never touch the process environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

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

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

/// The settings every service shares. Service-specific settings are read by the service
/// itself through [`Vars`].
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Component name, e.g. "catalog"; used in logs, metrics, health and stream names.
    pub service: String,
    /// gRPC listen address (`MERCATO_GRPC_ADDR`, default `0.0.0.0:<local port>`).
    pub grpc_addr: SocketAddr,
    /// Admin HTTP listen address for /metrics, /livez, /readyz (`MERCATO_ADMIN_ADDR`,
    /// default the gRPC port + 1000).
    pub admin_addr: SocketAddr,
    /// Postgres URL of the service's own database (`DATABASE_URL`).
    pub database_url: Option<String>,
    /// Connections in the Postgres pool (`MERCATO_DB_POOL_SIZE`, default 16).
    pub db_pool_size: usize,
    /// Redis URL (`REDIS_URL`).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this service writes (`MERCATO_REDIS_PREFIX`, default
    /// `mercato:<service>:`), so tests and deployments can share one Redis.
    pub redis_prefix: String,
    /// NATS URL (`NATS_URL`).
    pub nats_url: Option<String>,
    /// Prefix of NATS stream and subject names (`MERCATO_NAMESPACE`, default "mercato").
    pub namespace: String,
    /// Where the identity service answers, for the JWKS (`MERCATO_UPSTREAM_IDENTITY`).
    pub identity_url: String,
    /// Expected `iss` of access tokens (`MERCATO_JWT_ISSUER`, default "mercato-identity").
    pub jwt_issuer: String,
    /// Log format (`MERCATO_LOG_FORMAT` = json | pretty; default json).
    pub log_format: LogFormat,
    /// OTLP/gRPC collector (`OTEL_EXPORTER_OTLP_ENDPOINT`); tracing export is off when unset.
    pub otlp_endpoint: Option<String>,
    /// How long in-flight requests may take to finish after SIGTERM
    /// (`MERCATO_SHUTDOWN_GRACE_SECS`, default 20).
    pub shutdown_grace: Duration,
    /// Largest accepted gRPC message in bytes (`MERCATO_MAX_MESSAGE_BYTES`, default 4 MiB).
    pub max_message_bytes: usize,
    /// Age after which the server asks a client connection to go away (GOAWAY), so callers
    /// that balance per connection (grpcurl, generated clients behind a load balancer)
    /// spread over replicas again (`MERCATO_MAX_CONNECTION_AGE_SECS`, ± 10 % per process;
    /// default 0: connections are kept). Off by default because a tonic client, which every
    /// service's peer calls use, fails the one call that meets a connection being sent away
    /// (it has no transparent retry); grpc-go, grpc-java and grpcio clients move over
    /// without failing, and the gateway's upstreams do too.
    pub max_connection_age: Option<Duration>,
    /// How long calls in flight on a connection past its age may still finish before it is
    /// closed (`MERCATO_MAX_CONNECTION_AGE_GRACE_SECS`, default 30).
    pub max_connection_age_grace: Duration,
    /// Where each peer answers: `MERCATO_UPSTREAM_<SERVICE>` (e.g. `MERCATO_UPSTREAM_ORDER_QUERY`),
    /// default `http://127.0.0.1:<its local port>`.
    pub upstreams: HashMap<String, String>,
    /// This service's account for calling peers (`MERCATO_CLIENT_ID`, `MERCATO_CLIENT_SECRET`).
    pub client_credentials: Option<ClientCredentials>,
    /// Longest a single call to a peer may take, retries included, when the caller's own
    /// deadline is not shorter (`MERCATO_CALL_TIMEOUT_MS`, default 5000).
    pub call_timeout: Duration,
    /// Deliveries of an event a consumer fails to apply before it is dead-lettered
    /// (`MERCATO_EVENT_MAX_ATTEMPTS`, default 5).
    pub event_max_attempts: i64,
    /// Back-off before an event's second delivery, doubling after each failure
    /// (`MERCATO_EVENT_BACKOFF_MS`, default 500).
    pub event_backoff: Duration,
    /// Copies JetStream keeps of every stream the service creates or updates, 1 to 5
    /// (`MERCATO_EVENT_STREAM_REPLICAS`, default 1; one per server of a 3-node cluster). Every
    /// service must give the same number: each sets it on the streams it follows too.
    pub event_stream_replicas: usize,
    /// How long published events stay in the outbox for inspection before the relay deletes
    /// them (`MERCATO_OUTBOX_RETENTION_HOURS`, default 72). Unpublished events are never
    /// deleted.
    pub outbox_retention: Duration,
}

/// A service account's credentials; the secret never appears in `Debug` output.
#[derive(Clone)]
pub struct ClientCredentials {
    /// The client id (a UUID issued by identity).
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
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
        let port = default_grpc_port(service);
        let grpc_addr: SocketAddr =
            vars.parse_or("MERCATO_GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], port)))?;
        let admin_default = SocketAddr::new(grpc_addr.ip(), grpc_addr.port().saturating_add(1000));
        let log_format = match vars.get_or("MERCATO_LOG_FORMAT", "json").as_str() {
            "json" => LogFormat::Json,
            "pretty" | "text" => LogFormat::Pretty,
            other => {
                return Err(ConfigError::Invalid {
                    key: "MERCATO_LOG_FORMAT".into(),
                    value: other.into(),
                    reason: "expected json or pretty".into(),
                });
            }
        };
        Ok(Self {
            service: service.to_owned(),
            grpc_addr,
            admin_addr: vars.parse_or("MERCATO_ADMIN_ADDR", admin_default)?,
            database_url: vars.get("DATABASE_URL"),
            db_pool_size: vars.parse_or("MERCATO_DB_POOL_SIZE", 16)?,
            redis_url: vars.get("REDIS_URL"),
            redis_prefix: vars.get_or("MERCATO_REDIS_PREFIX", &format!("mercato:{service}:")),
            nats_url: vars.get("NATS_URL"),
            namespace: vars.get_or("MERCATO_NAMESPACE", "mercato"),
            identity_url: vars
                .get(&upstream_var("identity"))
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", default_grpc_port("identity"))),
            jwt_issuer: vars.get_or("MERCATO_JWT_ISSUER", crate::auth::DEFAULT_ISSUER),
            log_format,
            otlp_endpoint: vars.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            shutdown_grace: vars
                .seconds_or("MERCATO_SHUTDOWN_GRACE_SECS", Duration::from_secs(20))?,
            max_message_bytes: vars.parse_or("MERCATO_MAX_MESSAGE_BYTES", 4 * 1024 * 1024)?,
            max_connection_age: Some(
                vars.seconds_or("MERCATO_MAX_CONNECTION_AGE_SECS", Duration::ZERO)?,
            )
            .filter(|age| !age.is_zero()),
            max_connection_age_grace: vars.seconds_or(
                "MERCATO_MAX_CONNECTION_AGE_GRACE_SECS",
                Duration::from_secs(30),
            )?,
            upstreams: SERVICES
                .iter()
                .map(|peer| {
                    let url = vars
                        .get(&upstream_var(peer))
                        .unwrap_or_else(|| format!("http://127.0.0.1:{}", default_grpc_port(peer)));
                    ((*peer).to_owned(), url)
                })
                .collect(),
            client_credentials: match (
                vars.get("MERCATO_CLIENT_ID"),
                vars.get("MERCATO_CLIENT_SECRET"),
            ) {
                (Some(client_id), Some(client_secret)) => Some(ClientCredentials {
                    client_id,
                    client_secret,
                }),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::Missing(
                        "MERCATO_CLIENT_ID and MERCATO_CLIENT_SECRET together".into(),
                    ));
                }
            },
            call_timeout: Duration::from_millis(vars.parse_or("MERCATO_CALL_TIMEOUT_MS", 5000)?),
            event_max_attempts: vars.parse_or("MERCATO_EVENT_MAX_ATTEMPTS", 5)?,
            event_backoff: Duration::from_millis(vars.parse_or("MERCATO_EVENT_BACKOFF_MS", 500)?),
            event_stream_replicas: match vars.parse_or("MERCATO_EVENT_STREAM_REPLICAS", 1)? {
                n @ 1..=5 => n,
                n => {
                    return Err(ConfigError::Invalid {
                        key: "MERCATO_EVENT_STREAM_REPLICAS".into(),
                        value: n.to_string(),
                        reason: "JetStream keeps 1 to 5 copies of a stream".into(),
                    });
                }
            },
            outbox_retention: Duration::from_secs(3600u64.saturating_mul(vars.parse_or(
                "MERCATO_OUTBOX_RETENTION_HOURS",
                crate::events::outbox::DEFAULT_RETENTION.as_secs() / 3600,
            )?)),
        })
    }

    /// The database URL, or an error naming the variable.
    pub fn require_database_url(&self) -> Result<&str, ConfigError> {
        self.database_url
            .as_deref()
            .ok_or_else(|| ConfigError::Missing("DATABASE_URL".into()))
    }

    /// The Redis URL, or an error naming the variable.
    pub fn require_redis_url(&self) -> Result<&str, ConfigError> {
        self.redis_url
            .as_deref()
            .ok_or_else(|| ConfigError::Missing("REDIS_URL".into()))
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
        assert_eq!(config.grpc_addr.port(), 50062);
        assert_eq!(config.admin_addr.port(), 51062);
        assert_eq!(config.redis_prefix, "mercato:catalog:");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.outbox_retention, Duration::from_secs(72 * 3600));
        assert_eq!(config.max_connection_age, None);
        let aged = ServiceConfig::from_source(
            "catalog",
            &env(&[("MERCATO_MAX_CONNECTION_AGE_SECS", "600")]),
        )
        .unwrap();
        assert_eq!(aged.max_connection_age, Some(Duration::from_secs(600)));
        let config =
            ServiceConfig::from_source("catalog", &env(&[("MERCATO_OUTBOX_RETENTION_HOURS", "1")]))
                .unwrap();
        assert_eq!(config.outbox_retention, Duration::from_secs(3600));
    }

    #[test]
    fn admin_port_follows_an_overridden_grpc_port() {
        let config =
            ServiceConfig::from_source("catalog", &env(&[("MERCATO_GRPC_ADDR", "127.0.0.1:7000")]))
                .unwrap();
        assert_eq!(config.admin_addr.to_string(), "127.0.0.1:8000");
    }

    #[test]
    fn upstreams_default_to_local_ports_and_follow_their_variables() {
        let config = ServiceConfig::from_source(
            "order",
            &env(&[("MERCATO_UPSTREAM_ORDER_QUERY", "http://order-query:50051")]),
        )
        .unwrap();
        assert_eq!(config.upstreams["inventory"], "http://127.0.0.1:50063");
        assert_eq!(config.upstreams["order-query"], "http://order-query:50051");
        assert!(config.client_credentials.is_none());
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
    fn a_malformed_value_names_the_variable() {
        let err = ServiceConfig::from_source("catalog", &env(&[("MERCATO_GRPC_ADDR", "nope")]))
            .unwrap_err();
        assert!(err.to_string().contains("MERCATO_GRPC_ADDR"), "{err}");
    }

    #[test]
    fn stream_copies_are_one_to_five() {
        let copies = |value: &str| {
            ServiceConfig::from_source("catalog", &env(&[("MERCATO_EVENT_STREAM_REPLICAS", value)]))
                .map(|c| c.event_stream_replicas)
        };
        assert_eq!(
            ServiceConfig::from_source("catalog", &env(&[]))
                .unwrap()
                .event_stream_replicas,
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
