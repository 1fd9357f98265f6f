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
    let mut host = ServiceHost::new(config)
        .with_database(MIGRATIONS)
        .await?
        .with_redis(false)?
        .with_event_relay("catalog")
        .await?;
    if seed_demo {
        host = host.on_database_ready("demo catalog", |db| async move {
            Ok(seed::seed_demo(&db).await.map(drop)?)
        });
    }
    let redis = host
        .redis
        .clone()
        .ok_or_else(|| mercato_kernel::config::ConfigError::Missing("REDIS_URL".into()))?;
    let cache = cache::product_cache(redis, &host.config.redis_prefix);
    let api = api::CatalogApi::new(host.db()?, cache, host.outbox.clone());
    let max = host.config.max_message_bytes;
    let services = Services::new().add_service(
        CatalogServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    host.serve(services).await
}
