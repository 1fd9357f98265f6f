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
//! projection) exists only on a host that has one, [`ServiceHost<Database>`].

mod running;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use diesel_migrations::EmbeddedMigrations;
use http::{Request, Response};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;

use crate::auth::Verifier;
use crate::config::{ConfigError, ServiceConfig};
use crate::db::{DbError, DbPool};
use crate::events::consumer::{ConsumerConfig, Projector};
use crate::events::outbox::OutboxNotifier;
use crate::health::{Check, Dependency};
use crate::redis::{RedisError, RedisPool};
use crate::shutdown::{self, ShutdownSignal, ShutdownTrigger};
use crate::startup::{self, Gate, JobFuture, Opener};

pub use running::RunningService;

/// A service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Configuration is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Postgres could not be prepared.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Redis pool could not be built.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// NATS URL unusable.
    #[error("nats: {0}")]
    Nats(#[from] async_nats::ConnectError),
    /// The event streams could not be prepared (a projection rebuild).
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
    nats: Option<async_nats::Client>,
    verifier: Option<Arc<Verifier>>,
    checks: Vec<Check>,
    relay: Option<(String, OutboxNotifier)>,
    consumer: Option<(ConsumerConfig, Arc<dyn Projector>)>,
    started: (Opener, Gate),
    trigger: ShutdownTrigger,
    signal: ShutdownSignal,
}

/// A host without a database (the basket keeps its state in Redis).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDatabase;

/// The service's database as the host prepares it: the pool, whether it is migrated, and
/// what runs once it is.
pub struct Database {
    pool: DbPool,
    migrated: Gate,
    jobs: Vec<(&'static str, StartupJob)>,
}

/// Work a service does once its database is ready, before it reports ready (seed data,
/// accounts); retried until it succeeds, so it must be idempotent.
type StartupJob = Box<dyn Fn(DbPool) -> JobFuture + Send + Sync>;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoDatabase {}
    impl Sealed for super::Database {}
}

/// Whether a host has a database: [`NoDatabase`] or [`Database`].
pub trait DatabaseState: sealed::Sealed + Send + 'static {
    /// The database, if any, for serving.
    fn into_database(self) -> Option<Database>;
}

impl DatabaseState for NoDatabase {
    fn into_database(self) -> Option<Database> {
        None
    }
}

impl DatabaseState for Database {
    fn into_database(self) -> Option<Database> {
        Some(self)
    }
}

impl ServiceHost {
    /// A host with no dependencies yet.
    pub fn new(config: ServiceConfig) -> Self {
        let (trigger, signal) = shutdown::channel();
        Self {
            config,
            database: NoDatabase,
            nats: None,
            verifier: None,
            checks: Vec::new(),
            relay: None,
            consumer: None,
            started: startup::gate(),
            trigger,
            signal,
        }
    }

    /// Adds the service's database, a critical dependency, and returns its pool at once,
    /// while the database is created and migrated in the background, retried with back-off
    /// until Postgres answers (the service says NOT_SERVING meanwhile, see
    /// [`crate::startup`]).
    pub async fn with_database(
        self,
        migrations: EmbeddedMigrations,
    ) -> Result<(ServiceHost<Database>, DbPool), ServeError> {
        let url = self.config.database.require_url()?.clone();
        let pool = crate::db::pool(url.expose(), self.config.database.pool_size)?;
        let migrations = crate::db::Migrations::from(migrations);
        let (opener, migrated) = startup::gate();
        let signal = self.signal.clone();
        tokio::spawn(async move {
            let prepared = startup::retry("database", &signal, || {
                crate::db::prepare(url.expose(), migrations.clone())
            });
            if prepared.await.is_some() {
                opener.open();
            }
        });
        let mut host = ServiceHost {
            config: self.config,
            database: Database {
                pool: pool.clone(),
                migrated,
                jobs: Vec::new(),
            },
            nats: self.nats,
            verifier: self.verifier,
            checks: self.checks,
            relay: self.relay,
            consumer: self.consumer,
            started: self.started,
            trigger: self.trigger,
            signal: self.signal,
        };
        host.checks.push(Check {
            name: "postgres",
            dependency: Dependency::Postgres(pool.clone()),
            critical: true,
        });
        Ok((host, pool))
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

    /// Adds Redis and returns its pool; `critical` is false for a cache with a database
    /// fallback (the service stays ready while Redis is down).
    pub fn with_redis(&mut self, critical: bool) -> Result<RedisPool, ServeError> {
        let url = self.config.redis.require_url()?;
        let pool = crate::redis::pool(url.expose(), 32)?;
        self.checks.push(Check {
            name: "redis",
            dependency: Dependency::Redis(pool.clone()),
            critical,
        });
        Ok(pool)
    }

    /// Shares `feed` with every other replica of the service over NATS (see
    /// [`crate::events::changes`]), as the changes of `topic`.
    pub async fn with_change_feed<T>(
        &mut self,
        topic: &str,
        feed: &crate::events::ChangeFeed<T>,
    ) -> Result<(), ServeError>
    where
        T: prost::Message + Default + Send + Sync + 'static,
    {
        let client = self.nats_client().await?;
        let subject = crate::events::change_subject(
            &self.config.events.namespace,
            &self.config.service,
            topic,
        );
        feed.share(client, subject, self.signal.clone()).await?;
        Ok(())
    }

    /// Uses `verifier` for tokens instead of fetching identity's JWKS (identity itself).
    pub fn with_verifier(&mut self, verifier: Arc<Verifier>) {
        self.verifier = Some(verifier);
    }

    /// The NATS connection, made on first use (in the background: a NATS outage never blocks
    /// start-up, events wait in the outbox).
    async fn nats_client(&mut self) -> Result<async_nats::Client, ServeError> {
        if let Some(client) = &self.nats {
            return Ok(client.clone());
        }
        let url = self.config.events.require_nats_url()?;
        let client = async_nats::ConnectOptions::new()
            .name(&self.config.service)
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .connect(url.expose())
            .await?;
        self.checks.push(Check {
            name: "nats",
            dependency: Dependency::Nats(client.clone()),
            critical: false,
        });
        self.nats = Some(client.clone());
        Ok(client)
    }
}

impl ServiceHost<Database> {
    /// Runs `job` once the database is migrated and before the service reports ready,
    /// retrying it with back-off until it succeeds (it must be idempotent: every replica
    /// runs it, at every start).
    pub fn on_database_ready<F, Fut>(&mut self, name: &'static str, job: F)
    where
        F: Fn(DbPool) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), startup::JobError>> + Send + 'static,
    {
        self.database
            .jobs
            .push((name, Box::new(move |db| Box::pin(job(db)) as JobFuture)));
    }

    /// Relays the outbox of `domain` to JetStream once the service has started, connecting
    /// to NATS in the background; returns the notifier that wakes the relay after a commit.
    pub async fn with_event_relay(&mut self, domain: &str) -> Result<OutboxNotifier, ServeError> {
        if self.relay.is_some() {
            return Err(ServeError::Wiring(
                "with_event_relay: a service relays one outbox",
            ));
        }
        self.nats_client().await?;
        let notifier = OutboxNotifier::default();
        self.relay = Some((domain.to_owned(), notifier.clone()));
        Ok(notifier)
    }

    /// Follows the event streams of `domains` with `projector` (see
    /// [`crate::events::consumer`]); consumption starts when the service has started.
    pub async fn with_event_consumer(
        &mut self,
        domains: &[&str],
        projector: Arc<dyn Projector>,
    ) -> Result<(), ServeError> {
        if self.consumer.is_some() {
            return Err(ServeError::Wiring(
                "with_event_consumer: a service follows its streams with one projector",
            ));
        }
        self.nats_client().await?;
        let events = &self.config.events;
        let mut config = ConsumerConfig::new(&self.config.service, &events.namespace, domains);
        config.max_attempts = events.max_attempts.max(1);
        config.backoff = events.backoff;
        config.stream_replicas = events.stream_replicas;
        self.consumer = Some((config, projector));
        Ok(())
    }

    /// Empties the projection and forgets the consumers' positions, so that serving replays
    /// every stream from its start (`--rebuild`). Waits for the database to be migrated.
    pub async fn rebuild_projection(&self) -> Result<(), ServeError> {
        let (Some((config, projector)), Some(nats)) = (&self.consumer, &self.nats) else {
            return Err(ServeError::Wiring(
                "rebuild_projection needs with_event_consumer first",
            ));
        };
        if !self.database.migrated.opened_before(&self.signal).await {
            return Ok(());
        }
        crate::events::consumer::rebuild(nats, &self.database.pool, config, projector.as_ref())
            .await
            .map_err(|e| ServeError::Events(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ServiceConfig {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ServiceConfig::from_source("test", &env).unwrap()
    }

    #[tokio::test]
    async fn a_database_without_its_url_is_a_configuration_error() {
        let Err(err) = ServiceHost::new(config(&[]))
            .with_database(crate::db::KERNEL_MIGRATIONS)
            .await
        else {
            panic!("a host without DATABASE_URL has no database");
        };
        assert!(
            matches!(err, ServeError::Config(ConfigError::Missing(_))),
            "{err}"
        );
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }

    #[tokio::test]
    async fn rebuilding_without_a_consumer_is_a_wiring_defect() {
        // Nothing answers there: the host keeps preparing it in the background meanwhile.
        let url = "postgres://127.0.0.1:1/nothing";
        let (host, _db) = ServiceHost::new(config(&[("DATABASE_URL", url)]))
            .with_database(crate::db::KERNEL_MIGRATIONS)
            .await
            .unwrap();
        let err = host.rebuild_projection().await.unwrap_err();
        assert!(matches!(err, ServeError::Wiring(_)), "{err}");
        host.trigger.trigger();
    }
}
