//! Mercato basket service: one shopping basket per user in Redis (no database), forgotten
//! after a period without changes. Every answer is priced afresh from the catalog and the
//! discount service; Checkout turns the basket into an order through the order service,
//! on behalf of the customer. The basket publishes no events.

pub mod api;
pub mod checkout;
pub mod domain;
pub mod peers;
pub mod pricing;
pub mod store;

use std::time::Duration;

use mercato::pb::basket::v1::basket_service_server::BasketServiceServer;
use mercato_kernel::client::Peers;
use mercato_kernel::config::{ConfigError, Env, Vars};
use mercato_kernel::serve::Services;
use mercato_kernel::{RunningService, ServeError, ServiceConfig, ServiceHost};

/// Default lifetime of a basket without changes: a week.
const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Settings of the basket service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a basket lives after its last change (`MERCATO_BASKET_TTL_SECS`, default
    /// 604800 = 7 days; at least 1).
    pub ttl: Duration,
}

impl Settings {
    /// Reads the settings.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let vars = Vars(env);
        let ttl = vars.seconds_or("MERCATO_BASKET_TTL_SECS", DEFAULT_TTL)?;
        if ttl.is_zero() {
            return Err(ConfigError::Invalid {
                key: "MERCATO_BASKET_TTL_SECS".into(),
                value: "0".into(),
                reason: "a basket must live at least one second".into(),
            });
        }
        Ok(Self { ttl })
    }
}

/// Connects Redis (critical: it is the basket's only store, so the service reports
/// NOT_SERVING while it is down) and the peers, and serves.
pub async fn start(
    config: ServiceConfig,
    settings: Settings,
) -> Result<RunningService, ServeError> {
    let mut host = ServiceHost::new(config);
    let redis = host.with_redis(true)?;
    let store = store::BasketStore::new(redis, &host.config().redis.prefix, settings.ttl);
    let peers = peers::PeerClients::new(&Peers::new(&host.config().peers)?)?;
    let api = api::BasketApi::new(store, peers);
    let max = host.config().server.max_message_bytes;
    let services = Services::new().add_service(
        BasketServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    host.serve(services).await
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn baskets_live_a_week_unless_configured() {
        assert_eq!(Settings::from_env(&env(&[])).unwrap().ttl, DEFAULT_TTL);
        let short = Settings::from_env(&env(&[("MERCATO_BASKET_TTL_SECS", "60")])).unwrap();
        assert_eq!(short.ttl, Duration::from_secs(60));
        assert!(Settings::from_env(&env(&[("MERCATO_BASKET_TTL_SECS", "0")])).is_err());
        assert!(Settings::from_env(&env(&[("MERCATO_BASKET_TTL_SECS", "soon")])).is_err());
    }
}
