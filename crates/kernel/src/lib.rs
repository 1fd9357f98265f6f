//! `mercato-kernel`: the runtime every Mercato service links, so that each cross-cutting
//! concern is written once — configuration, telemetry, the admin port, health, reflection,
//! graceful shutdown, Postgres and Redis pools, token verification and policy enforcement,
//! the error model, pagination cursors and the transactional outbox.
//!
//! Postgres, JetStream and Redis sit behind the cargo features `database`, `events` and
//! `redis`: a crate asks for the ones it uses, so the edge gateway links none of them.
//!
//! A service's `main.rs` is wiring only:
//!
//! ```ignore
//! let config = ServiceConfig::from_env("catalog")?;
//! let _telemetry = telemetry::init(&config)?;
//! // The host hands out what it builds: the pool (the database is prepared in the background),
//! // then the outbox notifier the API wakes after each commit.
//! let (mut host, db) = ServiceHost::new(config).with_database(MIGRATIONS).await?;
//! let outbox = host.with_event_relay("catalog").await?;
//! let services = Services::new().add_service(CatalogServiceServer::new(CatalogApi::new(db, outbox)));
//! host.serve(services).await?.run_until_signalled().await
//! ```

pub mod admin;
pub mod auth;
#[cfg(feature = "redis")]
pub mod cache;
pub mod client;
pub mod config;
pub mod contracts;
#[cfg(feature = "database")]
pub mod db;
pub mod error;
#[cfg(feature = "events")]
pub mod events;
pub mod health;
pub mod metrics;
pub mod money;
pub mod pagination;
#[cfg(feature = "redis")]
pub mod redis;
pub mod serve;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod time;
pub mod trace;
pub mod validate;
pub mod wire;

pub use config::ServiceConfig;
pub use serve::{RunningService, ServeError, ServiceHost};
