//! A host's events: the NATS connection, the outbox relay, the consumers of other domains'
//! streams and the change feeds shared between replicas.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{Database, ServeError, ServiceHost};
use crate::config::ServiceConfig;
use crate::db::DbPool;
use crate::events::consumer::{ConsumerConfig, Projector};
use crate::events::outbox::{OutboxNotifier, Relay};
use crate::health::{Check, Dependency};
use crate::shutdown::ShutdownSignal;
use crate::startup::Gate;

/// What a service asked the host to do with events, started when it serves.
#[derive(Default)]
pub(super) struct EventWiring {
    nats: Option<async_nats::Client>,
    relay: Option<(String, OutboxNotifier)>,
    consumer: Option<(ConsumerConfig, Arc<dyn Projector>)>,
}

impl EventWiring {
    /// Starts relaying and consuming once the service has `started` (both touch its tables);
    /// returns the relay's task, which flushes once more on shutdown.
    pub(super) fn spawn(
        self,
        db: Option<DbPool>,
        config: &ServiceConfig,
        started: &Gate,
        signal: &ShutdownSignal,
    ) -> Option<JoinHandle<()>> {
        let (Some(db), Some(nats)) = (db, self.nats) else {
            return None;
        };
        let mut relay = None;
        if let Some((domain, notifier)) = self.relay {
            let outbox = Relay::new(
                db.clone(),
                nats.clone(),
                &config.events.namespace,
                &domain,
                notifier,
            )
            .retention(config.events.outbox_retention)
            .stream_replicas(config.events.stream_replicas);
            let (started, signal) = (started.clone(), signal.clone());
            relay = Some(tokio::spawn(async move {
                if !started.opened_before(&signal).await {
                    return;
                }
                let _ = outbox.spawn(signal).await;
            }));
        }
        if let Some((consumer, projector)) = self.consumer {
            let (started, signal) = (started.clone(), signal.clone());
            tokio::spawn(async move {
                if !started.opened_before(&signal).await {
                    return;
                }
                crate::events::consumer::spawn(nats, db, consumer, projector, signal);
            });
        }
        relay
    }
}

impl<D> ServiceHost<D> {
    /// Shares `feed` with every other replica of the service over NATS (see
    /// [`crate::events::changes`]), as the changes of `topic`.
    pub async fn with_change_feed<T>(
        &mut self,
        topic: &str,
        feed: &crate::events::ChangeFeed<T>,
    ) -> Result<(), ServeError>
    where
        T: prost::Message + Default + Send + Sync + 'static,
    {
        let client = self.nats_client().await?;
        let subject = crate::events::change_subject(
            &self.config.events.namespace,
            &self.config.service,
            topic,
        );
        feed.share(client, subject, self.signal.clone()).await?;
        Ok(())
    }

    /// The NATS connection, made on first use (in the background: a NATS outage never blocks
    /// start-up, events wait in the outbox).
    async fn nats_client(&mut self) -> Result<async_nats::Client, ServeError> {
        if let Some(client) = &self.events.nats {
            return Ok(client.clone());
        }
        let url = self.config.events.require_nats_url()?;
        let client = async_nats::ConnectOptions::new()
            .name(&self.config.service)
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .connect(url.expose())
            .await?;
        self.checks.push(Check {
            name: "nats",
            dependency: Dependency::Nats(client.clone()),
            critical: false,
        });
        self.events.nats = Some(client.clone());
        Ok(client)
    }
}

impl ServiceHost<Database> {
    /// Relays the outbox of `domain` to JetStream once the service has started, connecting
    /// to NATS in the background; returns the notifier that wakes the relay after a commit.
    pub async fn with_event_relay(&mut self, domain: &str) -> Result<OutboxNotifier, ServeError> {
        if self.events.relay.is_some() {
            return Err(ServeError::Wiring(
                "with_event_relay: a service relays one outbox",
            ));
        }
        self.nats_client().await?;
        let notifier = OutboxNotifier::default();
        self.events.relay = Some((domain.to_owned(), notifier.clone()));
        Ok(notifier)
    }

    /// Follows the event streams of `domains` with `projector` (see
    /// [`crate::events::consumer`]); consumption starts when the service has started.
    pub async fn with_event_consumer(
        &mut self,
        domains: &[&str],
        projector: Arc<dyn Projector>,
    ) -> Result<(), ServeError> {
        if self.events.consumer.is_some() {
            return Err(ServeError::Wiring(
                "with_event_consumer: a service follows its streams with one projector",
            ));
        }
        self.nats_client().await?;
        let events = &self.config.events;
        let mut config = ConsumerConfig::new(&self.config.service, &events.namespace, domains);
        config.max_attempts = events.max_attempts.max(1);
        config.backoff = events.backoff;
        config.stream_replicas = events.stream_replicas;
        self.events.consumer = Some((config, projector));
        Ok(())
    }

    /// Empties the projection and forgets the consumers' positions, so that serving replays
    /// every stream from its start (`--rebuild`). Waits for the database to be migrated.
    pub async fn rebuild_projection(&self) -> Result<(), ServeError> {
        let (Some((config, projector)), Some(nats)) = (&self.events.consumer, &self.events.nats)
        else {
            return Err(ServeError::Wiring(
                "rebuild_projection needs with_event_consumer first",
            ));
        };
        if !self.database.migrated.opened_before(&self.signal).await {
            return Ok(());
        }
        crate::events::consumer::rebuild(nats, &self.database.pool, config, projector.as_ref())
            .await
            .map_err(|e| ServeError::Events(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::config;
    use super::*;

    #[tokio::test]
    async fn rebuilding_without_a_consumer_is_a_wiring_defect() {
        // Nothing answers there: the host keeps preparing it in the background meanwhile.
        let url = "postgres://127.0.0.1:1/nothing";
        let (host, _db) = ServiceHost::new(config(&[("DATABASE_URL", url)]))
            .with_database(crate::db::KERNEL_MIGRATIONS)
            .await
            .unwrap();
        let err = host.rebuild_projection().await.unwrap_err();
        assert!(matches!(err, ServeError::Wiring(_)), "{err}");
        host.trigger.trigger();
    }
}
