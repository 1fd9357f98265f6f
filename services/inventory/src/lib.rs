//! Mercato inventory: stock per product and reservations per order in Postgres. Reservations
//! are all-or-nothing, never oversell under concurrency and are idempotent per order; every
//! change publishes its event through the outbox.

pub mod api;
pub mod domain;
pub mod error;
pub mod messages;
pub mod schema;
pub mod store;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use mercato::pb::inventory::v1::inventory_service_server::InventoryServiceServer;
use mercato_kernel::serve::Services;
use mercato_kernel::{RunningService, ServeError, ServiceConfig, ServiceHost};

/// The inventory's schema migrations, applied at start-up.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Connects the inventory's dependencies (Postgres, NATS for the outbox relay) and starts
/// serving.
pub async fn start(config: ServiceConfig) -> Result<RunningService, ServeError> {
    let (mut host, db) = ServiceHost::new(config).with_database(MIGRATIONS).await?;
    let outbox = host.with_event_relay("inventory").await?;
    let api = api::InventoryApi::new(db, outbox);
    let max = host.config().server.max_message_bytes;
    let services = Services::new().add_service(
        InventoryServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    host.serve(services).await
}
