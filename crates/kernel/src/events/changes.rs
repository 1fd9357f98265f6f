//! A change feed every replica of a service sees, behind its live streams (WatchOrder,
//! StreamNotifications). The replica that projects a change hands it to its own streams
//! directly and publishes it on a core NATS subject that every other replica subscribes to,
//! so a stream held by replica A gets what replica B projected.
//!
//! Core NATS, not JetStream: a live stream wants the next change now, not a replay. What a
//! replica misses while NATS is away its streams miss too; the durable state is the read
//! model, which the streams' callers read back (GetOrder, ListNotifications). A replica's
//! own streams never depend on NATS.
//!
//! Subject: `<namespace>.changes.<service>.<topic>`; each message carries its origin, so a
//! replica skips its own changes coming back.

use std::sync::{Arc, OnceLock};

use futures::StreamExt as _;
use prost::Message;
use tokio::sync::{broadcast, mpsc};

use crate::shutdown::ShutdownSignal;

/// Header naming the replica a change comes from.
const ORIGIN: &str = "Mercato-Origin";

/// Changes waiting to be published before new ones are dropped (for other replicas only).
const OUTGOING: usize = 1024;

/// The subject of `topic`'s changes in `service`.
pub fn change_subject(namespace: &str, service: &str, topic: &str) -> String {
    format!("{namespace}.changes.{service}.{topic}")
}

/// The feed could not be joined to NATS.
#[derive(Debug, thiserror::Error)]
pub enum ChangeFeedError {
    /// Subscribing to the subject failed.
    #[error("subscribe to {subject}: {source}")]
    Subscribe {
        /// The feed's subject.
        subject: String,
        /// async-nats' error.
        #[source]
        source: async_nats::SubscribeError,
    },
    /// The feed was joined to NATS already.
    #[error("the change feed on {0} is shared already")]
    AlreadyShared(String),
}

/// A broadcast of changes of type `T` across every replica; cloning shares it.
pub struct ChangeFeed<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for ChangeFeed<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<T> {
    local: broadcast::Sender<Arc<T>>,
    /// This replica's id, in every change it publishes.
    origin: String,
    /// Set once the feed is shared over NATS.
    outgoing: OnceLock<mpsc::Sender<Arc<T>>>,
}

impl<T> std::fmt::Debug for ChangeFeed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("origin", &self.inner.origin)
            .field("shared", &self.inner.outgoing.get().is_some())
            .finish()
    }
}

impl<T> ChangeFeed<T>
where
    T: Message + Default + Send + Sync + 'static,
{
    /// A feed of this replica only, keeping up to `capacity` changes for a slow receiver.
    pub fn new(capacity: usize) -> Self {
        let (local, _) = broadcast::channel(capacity.max(1));
        Self {
            inner: Arc::new(Inner {
                local,
                origin: uuid::Uuid::now_v7().to_string(),
                outgoing: OnceLock::new(),
            }),
        }
    }

    /// Every change from now on, this replica's and (once shared) the others'.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<T>> {
        self.inner.local.subscribe()
    }

    /// Announces a change to this replica's receivers at once and to the other replicas'
    /// through NATS.
    pub fn publish(&self, change: T) {
        let change = Arc::new(change);
        if let Some(outgoing) = self.inner.outgoing.get()
            && outgoing.try_send(change.clone()).is_err()
        {
            tracing::warn!("change feed backlog full; other replicas miss a change");
        }
        // No receiver is not an error: nobody is watching here right now.
        let _ = self.inner.local.send(change);
    }

    /// Shares the feed over `subject` until `shutdown`: other replicas' changes arrive here,
    /// and this replica's are published for them.
    pub async fn share(
        &self,
        client: async_nats::Client,
        subject: String,
        shutdown: ShutdownSignal,
    ) -> Result<(), ChangeFeedError> {
        let (tx, rx) = mpsc::channel(OUTGOING);
        if self.inner.outgoing.set(tx).is_err() {
            return Err(ChangeFeedError::AlreadyShared(subject));
        }
        let subscriber = client.subscribe(subject.clone()).await.map_err(|source| {
            ChangeFeedError::Subscribe {
                subject: subject.clone(),
                source,
            }
        })?;
        tokio::spawn(self.clone().receive(subscriber, shutdown.clone()));
        tokio::spawn(publish(
            client,
            subject,
            self.inner.origin.clone(),
            rx,
            shutdown,
        ));
        Ok(())
    }

    async fn receive(self, mut subscriber: async_nats::Subscriber, shutdown: ShutdownSignal) {
        let stopping = shutdown.requested();
        tokio::pin!(stopping);
        loop {
            let message = tokio::select! {
                () = &mut stopping => return,
                message = subscriber.next() => message,
            };
            let Some(message) = message else { return };
            let from = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(ORIGIN))
                .map(|origin| origin.as_str());
            if from == Some(self.inner.origin.as_str()) {
                continue;
            }
            match T::decode(message.payload) {
                Ok(change) => {
                    metrics::counter!("mercato_change_feed_received_total").increment(1);
                    let _ = self.inner.local.send(Arc::new(change));
                }
                Err(err) => {
                    tracing::warn!(subject = %message.subject, error = %err, "undecodable change skipped");
                }
            }
        }
    }
}

/// Publishes this replica's changes in the order they were made.
async fn publish<T: Message>(
    client: async_nats::Client,
    subject: String,
    origin: String,
    mut changes: mpsc::Receiver<Arc<T>>,
    shutdown: ShutdownSignal,
) {
    let stopping = shutdown.requested();
    tokio::pin!(stopping);
    loop {
        let change = tokio::select! {
            () = &mut stopping => return,
            change = changes.recv() => change,
        };
        let Some(change) = change else { return };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(ORIGIN, origin.as_str());
        let payload = change.encode_to_vec().into();
        if let Err(err) = client
            .publish_with_headers(subject.clone(), headers, payload)
            .await
        {
            tracing::debug!(%subject, error = %err, "change not published to other replicas");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mercato::pb::r#type::v1::Money;

    use super::*;

    fn change(units: i64) -> Money {
        Money {
            currency_code: "EUR".into(),
            units,
            nanos: 0,
        }
    }

    async fn nats() -> async_nats::Client {
        let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        async_nats::connect(url).await.unwrap()
    }

    async fn next(rx: &mut broadcast::Receiver<Arc<Money>>) -> i64 {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a change within 5 s")
            .unwrap()
            .units
    }

    #[tokio::test]
    async fn a_local_feed_delivers_without_nats() {
        let feed = ChangeFeed::<Money>::new(8);
        let mut rx = feed.subscribe();
        feed.publish(change(1));
        assert_eq!(next(&mut rx).await, 1);
    }

    #[tokio::test]
    async fn a_change_made_on_one_replica_reaches_the_others_once_each() {
        let subject = change_subject(&format!("t{}", uuid::Uuid::now_v7().simple()), "svc", "x");
        let (_trigger, signal) = crate::shutdown::channel();
        let (a, b) = (ChangeFeed::<Money>::new(8), ChangeFeed::<Money>::new(8));
        a.share(nats().await, subject.clone(), signal.clone())
            .await
            .unwrap();
        b.share(nats().await, subject.clone(), signal.clone())
            .await
            .unwrap();
        assert!(matches!(
            a.share(nats().await, subject, signal).await,
            Err(ChangeFeedError::AlreadyShared(_))
        ));
        let (mut on_a, mut on_b) = (a.subscribe(), b.subscribe());
        // Let both subscriptions reach the server before publishing.
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.publish(change(7));
        b.publish(change(8));
        assert_eq!(next(&mut on_a).await, 7, "B's change on A");
        assert_eq!(next(&mut on_a).await, 8, "in order");
        assert_eq!(next(&mut on_b).await, 7, "B's own, once");
        assert_eq!(next(&mut on_b).await, 8);
        a.publish(change(9));
        assert_eq!(next(&mut on_b).await, 9);
        assert_eq!(next(&mut on_a).await, 9);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(on_a.try_recv().is_err(), "no echo of A's own change");
        assert!(on_b.try_recv().is_err(), "no echo of B's own changes");
    }
}
