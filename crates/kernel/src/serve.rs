//! Hosting a service: dependencies, the gRPC server with the kernel's layers (trace, metrics,
//! auth), health, reflection, the admin port and graceful shutdown, in one place.
//!
//! A service's `lib.rs` asks the host for each dependency and gets back what was built for
//! it, so it never re-checks what it just configured:
//!
//! ```ignore
//! let (mut host, db) = ServiceHost::new(config).with_database(MIGRATIONS).await?;
//! let redis = host.with_redis(false)?;
//! let outbox = host.with_event_relay("catalog").await?;
//! let api = CatalogApi::new(db, cache(redis, &host.config().redis.prefix), outbox);
//! host.serve(Services::new().add_service(CatalogServiceServer::new(api))).await
//! ```
//!
//! What needs the database (start-up jobs, the outbox relay, event consumers, rebuilding a
//! projection) exists only on a host that has one, `ServiceHost<Database>`; the database and
//! the event parts exist only with the kernel's `database` and `events` features.

#[cfg(feature = "database")]
mod database;
#[cfg(feature = "events")]
mod events;
mod running;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::{Request, Response};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;

use crate::auth::Verifier;
use crate::config::{ConfigError, ServiceConfig};
use crate::health::Check;
use crate::shutdown::{self, ShutdownSignal, ShutdownTrigger};
use crate::startup::{self, Gate, Opener};

#[cfg(feature = "database")]
pub use database::Database;
pub use running::RunningService;

/// A service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Configuration is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Postgres could not be prepared.
    #[cfg(feature = "database")]
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// Redis pool could not be built.
    #[cfg(feature = "redis")]
    #[error(transparent)]
    Redis(#[from] crate::redis::RedisError),
    /// NATS URL unusable.
    #[cfg(feature = "events")]
    #[error("nats: {0}")]
    Nats(#[from] async_nats::ConnectError),
    /// The event streams could not be prepared (a projection rebuild).
    #[cfg(feature = "events")]
    #[error("events: {0}")]
    Events(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A peer the service calls is misconfigured.
    #[error(transparent)]
    Peer(#[from] crate::client::ClientError),
    /// The service asked the host for something it did not configure (a defect in its
    /// `lib.rs`, not in the environment).
    #[error("service wiring: {0}")]
    Wiring(&'static str),
    /// A change feed could not be shared with the other replicas.
    #[cfg(feature = "events")]
    #[error(transparent)]
    ChangeFeed(#[from] crate::events::changes::ChangeFeedError),
    /// Token verification could not be set up.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// A listener could not be bound.
    #[error("cannot listen: {0}")]
    Bind(#[from] std::io::Error),
    /// Reflection could not be built from the descriptor set.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A service task panicked or was aborted.
    #[error("service task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The gRPC services a binary serves, with their names for health and reflection.
#[derive(Default)]
pub struct Services {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
}

impl Services {
    /// No services yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a generated tonic server.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(service);
        self
    }
}

/// A service's dependencies and lifecycle, assembled step by step by its `lib.rs`. `D` says
/// whether it has a database: [`NoDatabase`] until [`ServiceHost::with_database`], then
/// [`Database`].
pub struct ServiceHost<D = NoDatabase> {
    config: ServiceConfig,
    database: D,
    #[cfg(feature = "events")]
    events: events::EventWiring,
    verifier: Option<Arc<Verifier>>,
    checks: Vec<Check>,
    started: (Opener, Gate),
    trigger: ShutdownTrigger,
    signal: ShutdownSignal,
}

/// A host without a database (the basket keeps its state in Redis).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDatabase;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoDatabase {}
    #[cfg(feature = "database")]
    impl Sealed for super::Database {}
}

/// Whether a host has a database: [`NoDatabase`] or `Database`.
pub trait DatabaseState: sealed::Sealed + Send + 'static {
    /// The pool, for the outbox relay and the consumers.
    #[cfg(feature = "database")]
    fn pool(&self) -> Option<crate::db::DbPool>;

    /// Resolves once the database (if any) is migrated and its start-up jobs have run; false
    /// when shutdown is requested first.
    fn prepared(self, signal: ShutdownSignal) -> impl Future<Output = bool> + Send;
}

impl DatabaseState for NoDatabase {
    #[cfg(feature = "database")]
    fn pool(&self) -> Option<crate::db::DbPool> {
        None
    }

    async fn prepared(self, _signal: ShutdownSignal) -> bool {
        true
    }
}

impl ServiceHost {
    /// A host with no dependencies yet.
    pub fn new(config: ServiceConfig) -> Self {
        let (trigger, signal) = shutdown::channel();
        Self {
            config,
            database: NoDatabase,
            #[cfg(feature = "events")]
            events: events::EventWiring::default(),
            verifier: None,
            checks: Vec::new(),
            started: startup::gate(),
            trigger,
            signal,
        }
    }
}

impl<D> ServiceHost<D> {
    /// The service's settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Opens once the database (if any) is migrated and the start-up jobs are done:
    /// background work that needs the database (a recovery sweep) waits for it instead of
    /// failing first.
    pub fn started(&self) -> Gate {
        self.started.1.clone()
    }

    /// The signal every background task of the service should stop on.
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        self.signal.clone()
    }

    #[cfg(feature = "redis")]
    /// Adds Redis and returns its pool; `critical` is false for a cache with a database
    /// fallback (the service stays ready while Redis is down).
    pub fn with_redis(&mut self, critical: bool) -> Result<crate::redis::RedisPool, ServeError> {
        let url = self.config.redis.require_url()?;
        let pool = crate::redis::pool(url.expose(), 32)?;
        self.checks.push(Check {
            name: "redis",
            dependency: crate::health::Dependency::Redis(pool.clone()),
            critical,
        });
        Ok(pool)
    }

    /// Uses `verifier` for tokens instead of fetching identity's JWKS (identity itself).
    pub fn with_verifier(&mut self, verifier: Arc<Verifier>) {
        self.verifier = Some(verifier);
    }
}

#[cfg(test)]
#[cfg(feature = "database")]
mod tests {
    use std::collections::HashMap;

    use super::*;

    pub(super) fn config(pairs: &[(&str, &str)]) -> ServiceConfig {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ServiceConfig::from_source("test", &env).unwrap()
    }
}
