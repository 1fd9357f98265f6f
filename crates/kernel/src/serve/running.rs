//! Serving a host: its ports, layers, health and background work, and the running service
//! that a shutdown drains.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use super::{DatabaseState, ServeError, ServiceHost, Services};
use crate::auth::{AuthLayer, Verifier};
use crate::health::Health;
use crate::metrics::MetricsLayer;
use crate::shutdown::{self, ShutdownTrigger};
use crate::startup::StartupGateLayer;
use crate::trace::TraceLayer;

impl<D: DatabaseState> ServiceHost<D> {
    /// Binds both ports and starts serving: health, reflection and `/livez` at once, the
    /// service's own calls once its start-up is done (database migrated, start-up jobs run;
    /// until then they are refused UNAVAILABLE and health says NOT_SERVING). Returns when it
    /// is (or when shutdown is requested first) with the bound addresses.
    pub async fn serve(self, services: Services) -> Result<RunningService, ServeError> {
        let verifier = match self.verifier {
            Some(v) => v,
            None => Verifier::remote(&self.config.auth.identity_url, &self.config.auth.issuer)?,
        };
        let config = self.config;
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
        #[cfg(feature = "events")]
        let db = self.database.pool();
        let signal = self.signal.clone();
        tokio::spawn(async move {
            if self.database.prepared(signal).await {
                opener.open();
            }
        });

        let health = Health::new(self.checks, started.clone());
        // First probe before accepting traffic: NOT_SERVING while starting, not "unknown".
        health.refresh(&health_reporter, &names).await;
        health
            .clone()
            .spawn(health_reporter.clone(), names.clone(), self.signal.clone());

        let admin_addr = crate::admin::spawn(
            config.server.admin_addr,
            health.clone(),
            self.signal.clone(),
        )
        .await?;
        let listener = TcpListener::bind(config.server.grpc_addr).await?;
        let grpc_addr = listener.local_addr()?;

        // Relaying and consuming touch the service's tables: they start once it has started.
        #[cfg(feature = "events")]
        let relay = self.events.spawn(db, &config, &started, &self.signal);
        #[cfg(not(feature = "events"))]
        let relay = None;

        let limit = config.server.max_message_bytes;
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
        if let Some(age) = config.server.max_connection_age {
            builder = builder
                // Drawn once per process: replicas started together do not all send their
                // clients away at the same moment.
                .max_connection_age(crate::time::jittered(age))
                .max_connection_age_grace(config.server.max_connection_age_grace);
        }
        let server = builder
            .layer(layers)
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, self.signal.clone().requested());
        let task = tokio::spawn(server);
        tracing::info!(service = %config.service, %grpc_addr, %admin_addr, "listening");
        if !started.is_open() {
            tracing::info!("waiting for the database before serving");
        }
        // Returns early when shutdown is requested first; `wait` then ends at once.
        started.opened_before(&self.signal).await;
        // Probed again now that start-up is done, so readiness is true from the first call.
        health.refresh(&health_reporter, &names).await;
        tracing::info!(service = %config.service, "serving");
        Ok(RunningService {
            grpc_addr,
            admin_addr,
            grace: config.server.shutdown_grace,
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
