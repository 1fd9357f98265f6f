//! Mercato edge gateway: the one public port of the mesh. Native gRPC is passed through to
//! the owning service untouched, gRPC-web is translated to it, and REST/JSON is transcoded
//! from the `google.api.http` annotations — all derived from the compiled descriptor set, so
//! a new annotated RPC is routed, secured, transcoded and documented without gateway code.
//!
//! Every call passes the same [`gate::Gate`]: bearer token verified against identity's JWKS,
//! the RPC's declared `mercato.auth.v1.policy` enforced before any upstream is called
//! (service-only RPCs do not exist from outside), a per-caller rate limit, and headers only
//! the mesh may set removed.

pub mod body;
pub mod breaker;
pub mod coalesce;
pub mod codec;
pub mod connection_limit;
pub mod contracts;
pub mod cors;
pub mod framing;
pub mod gate;
pub mod grpc;
pub mod health;
pub mod limits;
pub mod openapi;
pub mod reflection;
pub mod rest;
pub mod server;
pub mod settings;
pub mod upstream;
pub mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use mercato_kernel::ServiceConfig;
use mercato_kernel::auth::{AuthError, Verifier};
use mercato_kernel::client::ClientError;
use mercato_kernel::health::Health;
use mercato_kernel::metrics::MetricsLayer;
use mercato_kernel::shutdown::{self, ShutdownTrigger};
use mercato_kernel::trace::TraceLayer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::Layer as _;
use tower::util::BoxCloneSyncService;

pub use settings::Settings;

use contracts::{Contracts, ContractsError};
use gate::Gate;
use grpc::GrpcProxy;
use limits::RateLimiter;
use rest::RestApi;
use rest::routes::RouteTable;
use server::Gateway;
use upstream::Upstreams;
use workers::Workers;

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The descriptor set is unusable (a build defect).
    #[error(transparent)]
    Contracts(#[from] ContractsError),
    /// Token verification could not be set up.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// An upstream URL is invalid.
    #[error(transparent)]
    Upstream(#[from] ClientError),
    /// A port could not be bound.
    #[error("cannot listen: {0}")]
    Bind(#[from] std::io::Error),
    /// The serving worker threads could not be started.
    #[error("cannot start worker threads: {0}")]
    Workers(std::io::Error),
    /// Reflection could not be built.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The descriptor set for reflection does not decode (a build defect).
    #[error("reflection descriptor set: {0}")]
    ReflectionDescriptors(#[from] prost::DecodeError),
}

/// A running gateway.
pub struct RunningGateway {
    /// The public port (port 0 resolved).
    pub addr: SocketAddr,
    /// The admin port (`/metrics`, `/livez`, `/readyz`).
    pub admin_addr: SocketAddr,
    trigger: ShutdownTrigger,
    task: JoinHandle<()>,
}

impl RunningGateway {
    /// The trigger that stops the gateway.
    pub fn trigger(&self) -> ShutdownTrigger {
        self.trigger.clone()
    }

    /// Serves until SIGTERM / Ctrl-C, then drains.
    pub async fn run_until_signalled(self) -> Result<(), tokio::task::JoinError> {
        shutdown::on_os_signals(self.trigger.clone());
        self.task.await
    }

    /// Stops and waits for the drain.
    pub async fn stop(self) -> Result<(), tokio::task::JoinError> {
        self.trigger.trigger();
        self.task.await
    }
}

/// The gateway's own gRPC services: health, and reflection of every public service.
fn local_services(
    contracts: &Contracts,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) -> Result<tonic::service::Routes, StartError> {
    // Reflection describes what the gateway serves: no service-only RPCs (see reflection.rs).
    let public = reflection::public_descriptor_set(mercato::DESCRIPTOR_SET, contracts)?;
    let mut v1 = tonic_reflection::server::Builder::configure()
        .register_file_descriptor_set(public.clone())
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    let mut v1alpha = tonic_reflection::server::Builder::configure()
        .register_file_descriptor_set(public)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    for name in contracts.public_services() {
        v1 = v1.with_service_name(name.clone());
        v1alpha = v1alpha.with_service_name(name);
    }
    Ok(tonic::service::Routes::new(health)
        .add_service(v1.build_v1()?)
        .add_service(v1alpha.build_v1alpha()?)
        .prepare())
}

/// The OpenAPI document of the compiled contracts, as served at `/openapi.json`.
pub fn openapi_document() -> Result<serde_json::Value, ContractsError> {
    let contracts = Contracts::mercato()?;
    let (table, _) = RouteTable::build(&contracts);
    Ok(openapi::document(&table))
}

/// Binds the public and admin ports of `config` and starts serving.
pub async fn start(
    config: ServiceConfig,
    settings: Settings,
) -> Result<RunningGateway, StartError> {
    let contracts = Contracts::mercato()?;
    let (table, skipped) = RouteTable::build(&contracts);
    for err in &skipped {
        tracing::warn!(error = %err, "HTTP annotation not served");
    }
    let verifier = Verifier::remote(&config.auth.identity_url, &config.auth.issuer)?;
    let limiter = Arc::new(RateLimiter::new(
        settings.rate_limit_rps,
        settings.rate_limit_burst,
    ));
    let gate = Gate::new(verifier, limiter);
    let workers = Workers::start(settings.workers).map_err(StartError::Workers)?;
    let upstreams = Upstreams::new(&config.peers.upstreams, workers.len())?;
    let openapi = Bytes::from(serde_json::to_vec(&openapi::document(&table)).unwrap_or_default());

    let (trigger, signal) = shutdown::channel();
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health::new(Vec::new(), mercato_kernel::startup::Gate::open());
    health.refresh(&reporter, &[]).await;
    health.clone().spawn(reporter, Vec::new(), signal.clone());
    let local = local_services(&contracts, health_service)?;

    let proxy = GrpcProxy::new(
        contracts.clone(),
        gate.clone(),
        upstreams.clone(),
        local,
        settings.clone(),
    );
    let grpc = MetricsLayer.layer(proxy);
    let grpc_web = tonic_web::GrpcWebLayer::new().layer(grpc.clone());
    let rest = RestApi::new(contracts.clone(), gate, upstreams, table, settings.clone());
    let gateway = Gateway::new(
        contracts,
        BoxCloneSyncService::new(grpc),
        BoxCloneSyncService::new(grpc_web),
        rest,
        openapi,
        health.clone(),
    );

    let admin_addr =
        mercato_kernel::admin::spawn(config.server.admin_addr, health, signal.clone()).await?;
    let listener = TcpListener::bind(config.server.grpc_addr).await?;
    let addr = listener.local_addr()?;
    let grace = config.server.shutdown_grace;
    let traced = TraceLayer.layer(gateway);
    let admission = server::Admission {
        trusted_proxy_hops: settings.trusted_proxy_hops,
        limit: connection_limit::ConnectionLimit::new(settings.max_connections_per_ip),
        max_age: config.server.max_connection_age,
        age_grace: config.server.max_connection_age_grace,
    };
    let task = match cors::layer(&settings.cors_origins) {
        Some(cors) => tokio::spawn(server::serve(
            listener,
            cors.layer(traced),
            workers,
            signal,
            grace,
            admission,
        )),
        None => tokio::spawn(server::serve(
            listener, traced, workers, signal, grace, admission,
        )),
    };
    tracing::info!(%addr, %admin_addr, "edge gateway serving");
    Ok(RunningGateway {
        addr,
        admin_addr,
        trigger,
        task,
    })
}
