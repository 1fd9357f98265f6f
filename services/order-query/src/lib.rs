//! Mercato order-query: the read side of orders. Order and payment events are projected into
//! a denormalized Postgres model (order, lines, status history, payment) by the kernel's
//! idempotent consumer; GetOrder is cached in Redis, ListOrders pages newest first, and
//! WatchOrder streams every projected change, whichever replica projected it.

pub mod api;
pub mod cache;
pub mod domain;
pub mod projector;
pub mod schema;
pub mod store;
pub mod view;
pub mod watch;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use mercato::pb::orderquery::v1::order_query_service_server::OrderQueryServiceServer;
use mercato_kernel::serve::Services;
use mercato_kernel::{RunningService, ServeError, ServiceConfig, ServiceHost};

/// The read model's schema migrations, applied at start-up.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The producing domains whose streams are projected.
pub const SOURCES: [&str; 2] = ["order", "payment"];

/// How the service starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Empty the read model and forget the consumers' positions first, so the model is
    /// rebuilt by replaying the order and payment streams from their start (`--rebuild`).
    pub rebuild: bool,
}

/// Connects the dependencies and starts serving and projecting.
pub async fn start(config: ServiceConfig) -> Result<RunningService, ServeError> {
    start_with(config, StartOptions::default()).await
}

/// [`start`], with options. Redis is a soft dependency: GetOrder reads Postgres while it is
/// down.
pub async fn start_with(
    config: ServiceConfig,
    options: StartOptions,
) -> Result<RunningService, ServeError> {
    let (mut host, db) = ServiceHost::new(config).with_database(MIGRATIONS).await?;
    let redis = host.with_redis(false)?;
    let cache = cache::order_cache(redis, &host.config().redis.prefix);
    let feed = watch::OrderFeed::new(watch::FEED_CAPACITY);
    let projector = projector::OrderProjector::new(db.clone(), cache.clone(), feed.clone());
    host.with_event_consumer(&SOURCES, Arc::new(projector))
        .await?;
    host.with_change_feed("orders", feed.changes()).await?;
    if options.rebuild {
        host.rebuild_projection().await?;
    }
    let api = api::OrderQueryApi::new(db, cache, feed, host.shutdown_signal());
    let max = host.config().server.max_message_bytes;
    let services = Services::new().add_service(
        OrderQueryServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    host.serve(services).await
}
