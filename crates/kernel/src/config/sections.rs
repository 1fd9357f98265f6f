//! The sections of [`super::ServiceConfig`], each read from its own variables, so a part of
//! the kernel takes only the settings it uses (the client stack its [`PeersConfig`], the
//! host its [`ServerConfig`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::{ConfigError, SERVICES, Secret, SecretUrl, Vars, default_grpc_port, upstream_var};

/// Expected `iss` of access tokens unless `MERCATO_JWT_ISSUER` says otherwise.
pub const DEFAULT_ISSUER: &str = "mercato-identity";

/// How long published events stay in the outbox unless `MERCATO_OUTBOX_RETENTION_HOURS`
/// says otherwise.
pub const DEFAULT_OUTBOX_RETENTION: Duration = Duration::from_secs(72 * 3600);

/// The gRPC server and the admin port.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// gRPC listen address (`MERCATO_GRPC_ADDR`, default `0.0.0.0:<local port>`).
    pub grpc_addr: SocketAddr,
    /// Admin HTTP listen address for /metrics, /livez, /readyz (`MERCATO_ADMIN_ADDR`,
    /// default the gRPC port + 1000).
    pub admin_addr: SocketAddr,
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
}

impl ServerConfig {
    pub(super) fn read(vars: &Vars<'_>, service: &str) -> Result<Self, ConfigError> {
        let port = default_grpc_port(service);
        let grpc_addr: SocketAddr =
            vars.parse_or("MERCATO_GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], port)))?;
        let admin_default = SocketAddr::new(grpc_addr.ip(), grpc_addr.port().saturating_add(1000));
        Ok(Self {
            grpc_addr,
            admin_addr: vars.parse_or("MERCATO_ADMIN_ADDR", admin_default)?,
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
        })
    }
}

/// The service's own Postgres database.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Postgres URL of the service's own database (`DATABASE_URL`); its password never
    /// prints.
    pub url: Option<SecretUrl>,
    /// Connections in the Postgres pool (`MERCATO_DB_POOL_SIZE`, default 16).
    pub pool_size: usize,
}

impl DatabaseConfig {
    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            url: vars.get("DATABASE_URL").map(SecretUrl::new),
            pool_size: vars.parse_or("MERCATO_DB_POOL_SIZE", 16)?,
        })
    }

    /// The database URL, or an error naming the variable.
    pub fn require_url(&self) -> Result<&SecretUrl, ConfigError> {
        self.url
            .as_ref()
            .ok_or_else(|| ConfigError::Missing("DATABASE_URL".into()))
    }
}

/// The Redis cache or store.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Redis URL (`REDIS_URL`); its password never prints.
    pub url: Option<SecretUrl>,
    /// Prefix of every Redis key this service writes (`MERCATO_REDIS_PREFIX`, default
    /// `mercato:<service>:`), so tests and deployments can share one Redis.
    pub prefix: String,
}

impl RedisConfig {
    pub(super) fn read(vars: &Vars<'_>, service: &str) -> Self {
        Self {
            url: vars.get("REDIS_URL").map(SecretUrl::new),
            prefix: vars.get_or("MERCATO_REDIS_PREFIX", &format!("mercato:{service}:")),
        }
    }

    /// The Redis URL, or an error naming the variable.
    pub fn require_url(&self) -> Result<&SecretUrl, ConfigError> {
        self.url
            .as_ref()
            .ok_or_else(|| ConfigError::Missing("REDIS_URL".into()))
    }
}

/// NATS JetStream: the outbox relay, the consumers and the change feeds.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// NATS URL (`NATS_URL`); a password in it never prints.
    pub nats_url: Option<SecretUrl>,
    /// Prefix of NATS stream and subject names (`MERCATO_NAMESPACE`, default "mercato").
    pub namespace: String,
    /// Deliveries of an event a consumer fails to apply before it is dead-lettered
    /// (`MERCATO_EVENT_MAX_ATTEMPTS`, default 5).
    pub max_attempts: i64,
    /// Back-off before an event's second delivery, doubling after each failure
    /// (`MERCATO_EVENT_BACKOFF_MS`, default 500).
    pub backoff: Duration,
    /// Copies JetStream keeps of every stream the service creates or updates, 1 to 5
    /// (`MERCATO_EVENT_STREAM_REPLICAS`, default 1; one per server of a 3-node cluster). Every
    /// service must give the same number: each sets it on the streams it follows too.
    pub stream_replicas: usize,
    /// How long published events stay in the outbox for inspection before the relay deletes
    /// them (`MERCATO_OUTBOX_RETENTION_HOURS`, default 72). Unpublished events are never
    /// deleted.
    pub outbox_retention: Duration,
}

impl EventsConfig {
    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            nats_url: vars.get("NATS_URL").map(SecretUrl::new),
            namespace: vars.get_or("MERCATO_NAMESPACE", "mercato"),
            max_attempts: vars.parse_or("MERCATO_EVENT_MAX_ATTEMPTS", 5)?,
            backoff: Duration::from_millis(vars.parse_or("MERCATO_EVENT_BACKOFF_MS", 500)?),
            stream_replicas: match vars.parse_or("MERCATO_EVENT_STREAM_REPLICAS", 1)? {
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
                DEFAULT_OUTBOX_RETENTION.as_secs() / 3600,
            )?)),
        })
    }

    /// The NATS URL, or an error naming the variable.
    pub fn require_nats_url(&self) -> Result<&SecretUrl, ConfigError> {
        self.nats_url
            .as_ref()
            .ok_or_else(|| ConfigError::Missing("NATS_URL".into()))
    }
}

/// The peers a service calls, and as whom.
#[derive(Debug, Clone)]
pub struct PeersConfig {
    /// Where each peer answers: `MERCATO_UPSTREAM_<SERVICE>` (e.g.
    /// `MERCATO_UPSTREAM_ORDER_QUERY`), default `http://127.0.0.1:<its local port>`.
    pub upstreams: HashMap<String, String>,
    /// This service's account for calling peers (`MERCATO_CLIENT_ID`, `MERCATO_CLIENT_SECRET`).
    pub credentials: Option<ClientCredentials>,
    /// Longest a single call to a peer may take, retries included, when the caller's own
    /// deadline is not shorter (`MERCATO_CALL_TIMEOUT_MS`, default 5000).
    pub call_timeout: Duration,
}

impl PeersConfig {
    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            upstreams: SERVICES
                .iter()
                .map(|peer| ((*peer).to_owned(), upstream_url(vars, peer)))
                .collect(),
            credentials: match (
                vars.get("MERCATO_CLIENT_ID"),
                vars.get("MERCATO_CLIENT_SECRET"),
            ) {
                (Some(client_id), Some(secret)) => Some(ClientCredentials {
                    client_id,
                    client_secret: Secret::new(secret),
                }),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::Missing(
                        "MERCATO_CLIENT_ID and MERCATO_CLIENT_SECRET together".into(),
                    ));
                }
            },
            call_timeout: Duration::from_millis(vars.parse_or("MERCATO_CALL_TIMEOUT_MS", 5000)?),
        })
    }
}

/// Where `peer` answers: its `MERCATO_UPSTREAM_<PEER>`, or its local port.
fn upstream_url(vars: &Vars<'_>, peer: &str) -> String {
    vars.get(&upstream_var(peer))
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", default_grpc_port(peer)))
}

/// A service account's credentials; the secret never appears in `Debug` output.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The client id (a UUID issued by identity).
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
}

/// Verifying the access tokens callers bring.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Where the identity service answers, for the JWKS (`MERCATO_UPSTREAM_IDENTITY`).
    pub identity_url: String,
    /// Expected `iss` of access tokens (`MERCATO_JWT_ISSUER`, default "mercato-identity").
    pub issuer: String,
}

impl AuthConfig {
    pub(super) fn read(vars: &Vars<'_>) -> Self {
        Self {
            identity_url: upstream_url(vars, "identity"),
            issuer: vars.get_or("MERCATO_JWT_ISSUER", DEFAULT_ISSUER),
        }
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

/// Logs and trace export.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Log format (`MERCATO_LOG_FORMAT` = json | pretty; default json).
    pub log_format: LogFormat,
    /// OTLP/gRPC collector (`OTEL_EXPORTER_OTLP_ENDPOINT`); tracing export is off when unset.
    pub otlp_endpoint: Option<String>,
}

impl TelemetryConfig {
    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
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
            log_format,
            otlp_endpoint: vars.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        })
    }
}
