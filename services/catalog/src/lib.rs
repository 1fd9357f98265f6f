//! Mercato catalog: products, categories and authoritative prices in Postgres, single-product
//! reads cached in Redis, and product events published through the outbox.

pub mod api;
pub mod cache;
pub mod domain;
pub mod schema;
pub mod seed;
pub mod store;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use mercato::pb::catalog::v1::catalog_service_server::CatalogServiceServer;
use mercato_kernel::serve::Services;
use mercato_kernel::{RunningService, ServeError, ServiceConfig, ServiceHost};

/// The catalog's schema migrations, applied at start-up.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Connects the catalog's dependencies and starts serving. Redis is a soft dependency: the
/// catalog stays ready (reads from Postgres) while it is down.
///
/// With `seed_demo` (`MERCATO_SEED_DEMO=true`) an empty catalog is filled with demo products.
pub async fn start(config: ServiceConfig, seed_demo: bool) -> Result<RunningService, ServeError> {
    let (mut host, db) = ServiceHost::new(config).with_database(MIGRATIONS).await?;
    let redis = host.with_redis(false)?;
    let outbox = host.with_event_relay("catalog").await?;
    if seed_demo {
        host.on_database_ready("demo catalog", |db| async move {
            Ok(seed::seed_demo(&db).await.map(drop)?)
        });
    }
    let cache = cache::product_cache(redis, &host.config().redis.prefix);
    let api = api::CatalogApi::new(db, cache, outbox);
    let max = host.config().server.max_message_bytes;
    let services = Services::new().add_service(
        CatalogServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    host.serve(services).await
}
