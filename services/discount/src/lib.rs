//! Mercato discount: coupons and their redemptions in Postgres. The usage count changes in
//! the same transaction as the redemption and its outbox event, so a coupon is never redeemed
//! more than `max_redemptions` times, however many orders race for it.

pub mod api;
pub mod domain;
pub mod redemptions;
pub mod schema;
pub mod store;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use mercato::pb::discount::v1::discount_service_server::DiscountServiceServer;
use mercato_kernel::serve::Services;
use mercato_kernel::{RunningService, ServeError, ServiceConfig, ServiceHost};

/// The discount service's schema migrations, applied at start-up.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Connects Postgres and the event relay, then starts serving.
pub async fn start(config: ServiceConfig) -> Result<RunningService, ServeError> {
    let (mut host, db) = ServiceHost::new(config).with_database(MIGRATIONS).await?;
    let outbox = host.with_event_relay(redemptions::SOURCE).await?;
    let api = api::DiscountApi::new(db, outbox);
    let max = host.config().server.max_message_bytes;
    let services = Services::new().add_service(
        DiscountServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    host.serve(services).await
}
