//! Mercato statistics: sales aggregates (orders, units, revenue per UTC hour and per product
//! and hour) projected from the order event stream into Postgres, reported to admins per hour
//! or day and as best-selling products.
//!
//! A sale is an order that was confirmed and not cancelled since; it counts in the hour of
//! its confirmation time. Every order's counted contribution is stored with it, so a
//! cancellation subtracts exactly that, once, and a cancellation that arrives before its
//! confirmation keeps the late confirmation from counting. Amounts are kept as exact integer
//! nano-units per currency; reports are in the shop's currency (`MERCATO_SHOP_CURRENCY`).

pub mod api;
pub mod domain;
pub mod projector;
pub mod schema;
pub mod store;

use std::sync::Arc;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use mercato::pb::statistics::v1::statistics_service_server::StatisticsServiceServer;
use mercato_kernel::config::{ConfigError, Env, Vars};
use mercato_kernel::serve::Services;
use mercato_kernel::{RunningService, ServeError, ServiceConfig, ServiceHost};

/// The statistics' schema migrations, applied at start-up.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Settings of the statistics beyond the kernel's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `MERCATO_SHOP_CURRENCY` (default EUR): the currency reports are in. Sales in another
    /// currency are kept but not reported.
    pub currency: String,
    /// Empty the aggregates and replay the order stream from its start before serving
    /// (`--rebuild`).
    pub rebuild: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            currency: "EUR".into(),
            rebuild: false,
        }
    }
}

impl Settings {
    /// Reads the settings from `env`; `rebuild` stays off (it is a command-line flag).
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let currency = Vars(env).get_or("MERCATO_SHOP_CURRENCY", "EUR");
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError::Invalid {
                key: "MERCATO_SHOP_CURRENCY".into(),
                value: currency,
                reason: "must be three upper-case letters (ISO 4217)".into(),
            });
        }
        Ok(Self {
            currency,
            rebuild: false,
        })
    }
}

/// Connects the statistics' dependencies, starts following the order stream and serves.
pub async fn start(
    config: ServiceConfig,
    settings: Settings,
) -> Result<RunningService, ServeError> {
    let (mut host, db) = ServiceHost::new(config).with_database(MIGRATIONS).await?;
    host.with_event_consumer(projector::DOMAINS, Arc::new(projector::SalesProjector))
        .await?;
    if settings.rebuild {
        host.rebuild_projection().await?;
    }
    let api = api::StatisticsApi::new(db, settings.currency);
    let max = host.config().server.max_message_bytes;
    let services = Services::new().add_service(
        StatisticsServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    host.serve(services).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_shop_currency_defaults_to_euro_and_is_validated() {
        let empty: HashMap<String, String> = HashMap::new();
        assert_eq!(Settings::from_env(&empty).unwrap(), Settings::default());
        let usd = HashMap::from([("MERCATO_SHOP_CURRENCY".to_owned(), "USD".to_owned())]);
        assert_eq!(Settings::from_env(&usd).unwrap().currency, "USD");
        let bad = HashMap::from([("MERCATO_SHOP_CURRENCY".to_owned(), "usd".to_owned())]);
        assert!(Settings::from_env(&bad).is_err());
    }
}
