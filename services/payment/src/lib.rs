//! Mercato payment service: card charges through a simulated provider, refunds, and an
//! append-only ledger in Postgres. Only a card's brand and last four digits are stored; the
//! number and CVC never reach the database or the logs. PaymentCaptured, PaymentFailed and
//! PaymentRefunded are published through the outbox.
//!
//! [`card`] is public so the order service can reject a malformed card before a checkout.

pub mod api;
pub mod card;
pub mod domain;
pub mod events;
pub mod provider;
pub mod schema;
pub mod store;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use mercato::pb::payment::v1::payment_service_server::PaymentServiceServer;
use mercato_kernel::serve::Services;
use mercato_kernel::{RunningService, ServeError, ServiceConfig, ServiceHost};

/// The payment schema migrations, applied at start-up.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Connects the database and the event relay and starts serving.
pub async fn start(config: ServiceConfig) -> Result<RunningService, ServeError> {
    let (mut host, db) = ServiceHost::new(config).with_database(MIGRATIONS).await?;
    let outbox = host.with_event_relay(events::SOURCE).await?;
    let api = api::PaymentApi::new(db, outbox);
    let max = host.config().server.max_message_bytes;
    let services = Services::new().add_service(
        PaymentServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    host.serve(services).await
}
