//! Hosting a service: dependencies, the gRPC server with the kernel's layers (trace, metrics,
//! auth), health, reflection, the admin port and graceful shutdown, in one place.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use diesel_migrations::EmbeddedMigrations;
use http::{Request, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;

use crate::auth::{AuthLayer, Verifier};
use crate::config::{ConfigError, ServiceConfig};
use crate::db::{DbError, DbPool};
use crate::events::consumer::{ConsumerConfig, Projector};
use crate::events::outbox::{OutboxNotifier, Relay};
use crate::health::{Check, Dependency, Health};
use crate::metrics::MetricsLayer;
use crate::redis::{RedisError, RedisPool};
use crate::shutdown::{self, ShutdownSignal, ShutdownTrigger};
use crate::startup::{self, Gate, JobFuture, Opener, StartupGateLayer};
use crate::trace::TraceLayer;

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

/// A service's dependencies and lifecycle, assembled step by step by its `lib.rs`.
pub struct ServiceHost {
    /// Shared settings.
    pub config: ServiceConfig,
    /// The service's database, when it has one.
    pub db: Option<DbPool>,
    /// The cache, when it has one.
    pub redis: Option<RedisPool>,
    /// The event bus, when the service publishes or consumes.
    pub nats: Option<async_nats::Client>,
    /// Wakes the outbox relay after commits.
    pub outbox: OutboxNotifier,
    verifier: Option<Arc<Verifier>>,
    checks: Vec<Check>,
    relay_domain: Option<String>,
    consumer: Option<(ConsumerConfig, Arc<dyn Projector>)>,
    migrated: Gate,
    jobs: Vec<(&'static str, StartupJob)>,
    started: (Opener, Gate),
    trigger: ShutdownTrigger,
    signal: ShutdownSignal,
}

/// Work a service does once its database is ready, before it reports ready (seed data,
/// accounts); retried until it succeeds, so it must be idempotent.
type StartupJob = Box<dyn Fn(DbPool) -> JobFuture + Send + Sync>;

impl ServiceHost {
    /// A host with no dependencies yet.
    pub fn new(config: ServiceConfig) -> Self {
        let (trigger, signal) = shutdown::channel();
        Self {
            config,
            db: None,
            redis: None,
            nats: None,
            outbox: OutboxNotifier::default(),
            verifier: None,
            checks: Vec::new(),
            relay_domain: None,
            consumer: None,
            migrated: Gate::open(),
            jobs: Vec::new(),
            started: startup::gate(),
            trigger,
            signal,
        }
    }

    /// Adds the service's database, a critical dependency: the pool is handed out at once,
    /// while the database is created and migrated in the background, retried with back-off
    /// until Postgres answers (the service says NOT_SERVING meanwhile, see
    /// [`crate::startup`]).
    pub async fn with_database(
        mut self,
        migrations: EmbeddedMigrations,
    ) -> Result<Self, ServeError> {
        let url = self.config.require_database_url()?.to_owned();
        let pool = crate::db::pool(&url, self.config.db_pool_size)?;
        let migrations = crate::db::Migrations::from(migrations);
        let (opener, migrated) = startup::gate();
        let signal = self.signal.clone();
        tokio::spawn(async move {
            let prepared = startup::retry("database", &signal, || {
                crate::db::prepare(&url, migrations.clone())
            });
            if prepared.await.is_some() {
                opener.open();
            }
        });
        self.migrated = migrated;
        self.checks.push(Check {
            name: "postgres",
            dependency: Dependency::Postgres(pool.clone()),
            critical: true,
        });
        self.db = Some(pool);
        Ok(self)
    }

    /// Runs `job` once the database is migrated and before the service reports ready,
    /// retrying it with back-off until it succeeds (it must be idempotent: every replica
    /// runs it, at every start).
    pub fn on_database_ready<F, Fut>(mut self, name: &'static str, job: F) -> Self
    where
        F: Fn(DbPool) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), startup::JobError>> + Send + 'static,
    {
        self.jobs
            .push((name, Box::new(move |db| Box::pin(job(db)) as JobFuture)));
        self
    }

    /// Opens once the database is migrated and the start-up jobs are done: background work
    /// that needs the database (a recovery sweep) waits for it instead of failing first.
    pub fn started(&self) -> Gate {
        self.started.1.clone()
    }

    /// Adds the Redis pool; `critical` is false for a cache with a database fallback.
    pub fn with_redis(mut self, critical: bool) -> Result<Self, ServeError> {
        let url = self.config.require_redis_url()?.to_owned();
        let pool = crate::redis::pool(&url, 32)?;
        self.checks.push(Check {
            name: "redis",
            dependency: Dependency::Redis(pool.clone()),
            critical,
        });
        self.redis = Some(pool);
        Ok(self)
    }

    /// Connects to NATS (in the background: a NATS outage never blocks start-up, events wait
    /// in the outbox) and relays the outbox of `domain` to JetStream.
    pub async fn with_event_relay(mut self, domain: &str) -> Result<Self, ServeError> {
        let client = self.nats_client().await?;
        self.relay_domain = Some(domain.to_owned());
        self.nats = Some(client);
        Ok(self)
    }

    async fn nats_client(&mut self) -> Result<async_nats::Client, ServeError> {
        if let Some(client) = &self.nats {
            return Ok(client.clone());
        }
        let url = self
            .config
            .nats_url
            .clone()
            .ok_or_else(|| ConfigError::Missing("NATS_URL".into()))?;
        let client = async_nats::ConnectOptions::new()
            .name(&self.config.service)
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .connect(url.as_str())
            .await?;
        self.checks.push(Check {
            name: "nats",
            dependency: Dependency::Nats(client.clone()),
            critical: false,
        });
        Ok(client)
    }

    /// Follows the event streams of `domains` with `projector` (see
    /// [`crate::events::consumer`]); consumption starts when the service serves.
    pub async fn with_event_consumer(
        mut self,
        domains: &[&str],
        projector: Arc<dyn Projector>,
    ) -> Result<Self, ServeError> {
        let client = self.nats_client().await?;
        self.nats = Some(client);
        let mut config = ConsumerConfig::new(&self.config.service, &self.config.namespace, domains);
        config.max_attempts = self.config.event_max_attempts.max(1);
        config.backoff = self.config.event_backoff;
        config.stream_replicas = self.config.event_stream_replicas;
        self.consumer = Some((config, projector));
        Ok(self)
    }

    /// Shares `feed` with every other replica of the service over NATS (see
    /// [`crate::events::changes`]), as the changes of `topic`.
    pub async fn with_change_feed<T>(
        mut self,
        topic: &str,
        feed: &crate::events::ChangeFeed<T>,
    ) -> Result<Self, ServeError>
    where
        T: prost::Message + Default + Send + Sync + 'static,
    {
        let client = self.nats_client().await?;
        self.nats = Some(client.clone());
        let subject =
            crate::events::change_subject(&self.config.namespace, &self.config.service, topic);
        feed.share(client, subject, self.signal.clone()).await?;
        Ok(self)
    }

    /// Empties the projection and forgets the consumers' positions, so that serving replays
    /// every stream from its start (`--rebuild`).
    pub async fn rebuild_projection(&self) -> Result<(), ServeError> {
        let (Some((config, projector)), Some(nats), Some(db)) =
            (&self.consumer, &self.nats, &self.db)
        else {
            return Err(ServeError::Wiring(
                "rebuild_projection needs with_database and with_event_consumer first",
            ));
        };
        tokio::select! {
            () = self.migrated.opened() => {}
            () = self.signal.clone().requested() => return Ok(()),
        }
        crate::events::consumer::rebuild(nats, db, config, projector.as_ref())
            .await
            .map_err(|e| ServeError::Events(e.into()))
    }

    /// Uses `verifier` for tokens instead of fetching identity's JWKS (identity itself).
    pub fn with_verifier(mut self, verifier: Arc<Verifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The database pool; a defect in the service's wiring if it was not configured.
    pub fn db(&self) -> Result<DbPool, ServeError> {
        self.db
            .clone()
            .ok_or(ServeError::Wiring("db() needs with_database first"))
    }

    /// The signal every background task of the service should stop on.
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        self.signal.clone()
    }

    /// Binds both ports and starts serving: health, reflection and `/livez` at once, the
    /// service's own calls once its start-up is done (database migrated, start-up jobs run;
    /// until then they are refused UNAVAILABLE and health says NOT_SERVING). Returns when it
    /// is (or when shutdown is requested first) with the bound addresses.
    pub async fn serve(self, services: Services) -> Result<RunningService, ServeError> {
        let verifier = match self.verifier {
            Some(v) => v,
            None => Verifier::remote(&self.config.identity_url, &self.config.jwt_issuer)?,
        };
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        let names: Vec<String> = services.names.iter().map(|n| (*n).to_owned()).collect();

        let mut reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(mercato::DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        let mut reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(mercato::DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for name in &services.names {
            reflection = reflection.with_service_name(*name);
            reflection_alpha = reflection_alpha.with_service_name(*name);
        }

        let mut routes = services.routes;
        routes
            .add_service(health_service)
            .add_service(reflection.build_v1()?)
            .add_service(reflection_alpha.build_v1alpha()?);

        let (opener, started) = self.started;
        let migrated = self.migrated;
        let (jobs, db, signal) = (self.jobs, self.db.clone(), self.signal.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = migrated.opened() => {}
                () = signal.clone().requested() => return,
            }
            for (name, job) in &jobs {
                let Some(db) = &db else { break };
                if startup::retry(name, &signal, || job(db.clone()))
                    .await
                    .is_none()
                {
                    return;
                }
            }
            opener.open();
        });

        let health = Health::new(self.checks, started.clone());
        // First probe before accepting traffic: NOT_SERVING while starting, not "unknown".
        health.refresh(&health_reporter, &names).await;
        health
            .clone()
            .spawn(health_reporter.clone(), names.clone(), self.signal.clone());

        let admin_addr =
            crate::admin::spawn(self.config.admin_addr, health.clone(), self.signal.clone())
                .await?;
        let listener = TcpListener::bind(self.config.grpc_addr).await?;
        let grpc_addr = listener.local_addr()?;

        // Relaying and consuming touch the service's tables: they start once it has started.
        let mut relay = None;
        if let (Some(domain), Some(db), Some(nats)) = (&self.relay_domain, &self.db, &self.nats) {
            let outbox = Relay::new(
                db.clone(),
                nats.clone(),
                &self.config.namespace,
                domain,
                self.outbox.clone(),
            )
            .retention(self.config.outbox_retention)
            .stream_replicas(self.config.event_stream_replicas);
            let (started, signal) = (started.clone(), self.signal.clone());
            relay = Some(tokio::spawn(async move {
                tokio::select! {
                    () = started.opened() => {}
                    () = signal.clone().requested() => return,
                }
                let _ = outbox.spawn(signal).await;
            }));
        }

        if let (Some((config, projector)), Some(db), Some(nats)) =
            (self.consumer, self.db.clone(), self.nats.clone())
        {
            let (started, signal) = (started.clone(), self.signal.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = started.opened() => {}
                    () = signal.clone().requested() => return,
                }
                crate::events::consumer::spawn(nats, db, config, projector, signal);
            });
        }

        let limit = self.config.max_message_bytes;
        let layers = tower::ServiceBuilder::new()
            .layer(StartupGateLayer(started.clone()))
            .layer(TraceLayer)
            .layer(MetricsLayer)
            .layer(AuthLayer::new(verifier))
            .map_request(move |request| crate::wire::check_request(request, limit));
        // The builder's `tcp_nodelay` does not reach sockets accepted from a listener of our
        // own; without it a small answer can sit in Nagle's buffer until the caller's delayed
        // ACK, 40 ms later.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut builder = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)));
        if let Some(age) = self.config.max_connection_age {
            builder = builder
                // Drawn once per process: replicas started together do not all send their
                // clients away at the same moment.
                .max_connection_age(crate::time::jittered(age))
                .max_connection_age_grace(self.config.max_connection_age_grace);
        }
        let server = builder
            .layer(layers)
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, self.signal.clone().requested());
        let task = tokio::spawn(server);
        tracing::info!(service = %self.config.service, %grpc_addr, %admin_addr, "listening");
        if !started.is_open() {
            tracing::info!("waiting for the database before serving");
        }
        tokio::select! {
            () = started.opened() => {}
            () = self.signal.clone().requested() => {}
        }
        // Probed again now that start-up is done, so readiness is true from the first call.
        health.refresh(&health_reporter, &names).await;
        tracing::info!(service = %self.config.service, "serving");
        Ok(RunningService {
            grpc_addr,
            admin_addr,
            grace: self.config.shutdown_grace,
            trigger: self.trigger,
            task,
            relay,
        })
    }
}

/// A started service.
pub struct RunningService {
    /// Bound gRPC address (port 0 resolved).
    pub grpc_addr: SocketAddr,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    grace: Duration,
    trigger: ShutdownTrigger,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    relay: Option<JoinHandle<()>>,
}

impl RunningService {
    /// The trigger that stops this service (tests; `main` wires OS signals to it).
    pub fn trigger(&self) -> ShutdownTrigger {
        self.trigger.clone()
    }

    /// Stops on SIGTERM / Ctrl-C, draining in-flight requests for at most the grace period.
    pub async fn run_until_signalled(self) -> Result<(), ServeError> {
        shutdown::on_os_signals(self.trigger.clone());
        self.wait().await
    }

    /// Requests shutdown and waits for the drain.
    pub async fn stop(self) -> Result<(), ServeError> {
        self.trigger.trigger();
        self.wait().await
    }

    /// Waits until the server has stopped (after a shutdown request, within the grace period).
    pub async fn wait(self) -> Result<(), ServeError> {
        let mut task = self.task;
        let served = tokio::select! {
            result = &mut task => result,
            _ = async {
                self.trigger.signal().requested().await;
                tokio::time::sleep(self.grace).await;
            } => {
                tracing::warn!("grace period over, closing remaining connections");
                task.abort();
                return Ok(());
            }
        };
        if let Some(relay) = self.relay {
            // The relay flushes once more on shutdown; give it a moment.
            let _ = tokio::time::timeout(Duration::from_secs(5), relay).await;
        }
        served??;
        Ok(())
    }
}
