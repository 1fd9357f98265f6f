//! Mercato review: product reviews and ratings, written only by verified buyers. Who bought
//! what is learned from the order events (no synchronous call to order) and authors' display
//! names from identity's UserRegistered, both projected into review's own Postgres tables.

pub mod api;
pub mod domain;
pub mod events;
pub mod schema;
pub mod store;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use mercato::pb::review::v1::review_service_server::ReviewServiceServer;
use mercato_kernel::serve::Services;
use mercato_kernel::{RunningService, ServeError, ServiceConfig, ServiceHost};

/// Review's schema migrations, applied at start-up.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Empty the projection (purchases, author names) and forget the consumers' positions
    /// before serving, so every order and identity event is replayed from the start of its
    /// stream. Reviews themselves are kept.
    pub rebuild: bool,
}

/// Connects review's dependencies, starts following the order and identity streams, and
/// serves.
pub async fn start(config: ServiceConfig, options: Options) -> Result<RunningService, ServeError> {
    let (mut host, db) = ServiceHost::new(config).with_database(MIGRATIONS).await?;
    host.with_event_consumer(&events::DOMAINS, Arc::new(events::ReviewProjector))
        .await?;
    if options.rebuild {
        host.rebuild_projection().await?;
    }
    let api = api::ReviewApi::new(db);
    let max = host.config().server.max_message_bytes;
    let services = Services::new().add_service(
        ReviewServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    host.serve(services).await
}
