//! Mercato notification: what would be e-mailed to a user, written from integration events
//! (UserRegistered, order and payment events) into Postgres by the kernel's idempotent
//! consumer, one notification per event; served by ListNotifications, MarkRead and
//! StreamNotifications (a live feed every replica shares).
//!
//! Rebuilding: start with `--rebuild` (see `main.rs`) to forget the consumer positions and
//! replay every stream; notifications are keyed by event id, so only missing ones are written
//! and read marks survive.

pub mod api;
pub mod compose;
pub mod live;
pub mod projector;
pub mod schema;
pub mod store;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use mercato::pb::notification::v1::notification_service_server::NotificationServiceServer;
use mercato_kernel::serve::Services;
use mercato_kernel::{RunningService, ServeError, ServiceConfig, ServiceHost};

/// The notification service's schema migrations, applied at start-up.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Forget the consumer positions and replay every stream from its start before serving.
    pub rebuild: bool,
}

/// Connects Postgres and NATS, follows the identity, order and payment streams, and serves.
pub async fn start(config: ServiceConfig) -> Result<RunningService, ServeError> {
    start_with(config, Options::default()).await
}

/// [`start`] with `options`.
pub async fn start_with(
    config: ServiceConfig,
    options: Options,
) -> Result<RunningService, ServeError> {
    let live = live::LiveFeed::default();
    let projector = Arc::new(projector::NotificationProjector::new(live.clone()));
    let (mut host, db) = ServiceHost::new(config).with_database(MIGRATIONS).await?;
    host.with_event_consumer(&projector::DOMAINS, projector)
        .await?;
    host.with_change_feed("notifications", live.changes())
        .await?;
    if options.rebuild {
        host.rebuild_projection().await?;
    }
    let api = api::NotificationApi::new(db, live, host.shutdown_signal());
    let max = host.config().server.max_message_bytes;
    let services = Services::new().add_service(
        NotificationServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    host.serve(services).await
}
