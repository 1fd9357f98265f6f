//! Mercato order service, the write side: PlaceOrder runs the checkout saga (reserve stock,
//! redeem coupon, charge, commit stock) persisted with the order, so a checkout cut short
//! by a crash or a deadline is finished or compensated by the recovery sweep. Every state
//! change writes its event to the outbox in the same transaction.

pub mod api;
pub mod domain;
pub mod messages;
pub mod recovery;
pub mod saga;
pub mod schema;
pub mod store;

use std::time::Duration;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use mercato::pb::order::v1::order_service_server::OrderServiceServer;
use mercato_kernel::client::Peers;
use mercato_kernel::config::{ConfigError, Env, Vars};
use mercato_kernel::serve::Services;
use mercato_kernel::{RunningService, ServeError, ServiceConfig, ServiceHost};

/// The order service's schema migrations, applied at start-up.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Settings of the saga.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long one executor may hold a saga before the sweep may resume it
    /// (`MERCATO_SAGA_LEASE_MS`, default 30000).
    pub lease: Duration,
    /// How often the recovery sweep looks for orphaned sagas (`MERCATO_SAGA_SWEEP_MS`,
    /// default 2000).
    pub sweep: Duration,
}

impl Settings {
    /// Reads the settings.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let vars = Vars(env);
        Ok(Self {
            lease: Duration::from_millis(vars.parse_or("MERCATO_SAGA_LEASE_MS", 30_000)?),
            sweep: Duration::from_millis(vars.parse_or("MERCATO_SAGA_SWEEP_MS", 2_000)?),
        })
    }
}

/// Connects the order service's dependencies, starts the recovery sweep, and serves.
pub async fn start(
    config: ServiceConfig,
    settings: Settings,
) -> Result<RunningService, ServeError> {
    let (mut host, db) = ServiceHost::new(config).with_database(MIGRATIONS).await?;
    let outbox = host.with_event_relay("order").await?;
    let peers = saga::PeerClients::new(&Peers::new(&host.config().peers)?)?;
    let saga = saga::Saga::new(db.clone(), peers, outbox.clone(), settings.lease);
    recovery::spawn(
        db.clone(),
        saga.clone(),
        settings.sweep,
        host.started(),
        host.shutdown_signal(),
    );
    let api = api::OrderApi::new(db, saga, outbox);
    let max = host.config().server.max_message_bytes;
    let services = Services::new().add_service(
        OrderServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    host.serve(services).await
}
