//! The live feed behind StreamNotifications: one feed for the whole service, fed by the
//! projector after each commit and shared with every replica through the kernel's change
//! feed, which every open stream filters for its caller. No stream ever polls the database,
//! and a stream on one replica gets what another one projected.

use std::pin::Pin;

use futures::Stream;
use mercato::pb::notification::v1::{Notification, StreamNotificationsResponse};
use mercato_kernel::events::ChangeFeed;
use mercato_kernel::shutdown::ShutdownSignal;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tonic::Status;

/// Notifications a slow stream may fall behind by before it skips some.
pub const CAPACITY: usize = 1024;

/// A stream of one caller's new notifications.
pub type NotificationStream =
    Pin<Box<dyn Stream<Item = Result<StreamNotificationsResponse, Status>> + Send>>;

/// The process-wide feed of new notifications.
#[derive(Debug, Clone)]
pub struct LiveFeed {
    changes: ChangeFeed<Notification>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl LiveFeed {
    /// A feed keeping up to `capacity` notifications for slow streams.
    pub fn new(capacity: usize) -> Self {
        Self {
            changes: ChangeFeed::new(capacity),
        }
    }

    /// The feed to share with the other replicas.
    pub fn changes(&self) -> &ChangeFeed<Notification> {
        &self.changes
    }

    /// Hands a new notification to every open stream, on every replica.
    pub fn publish(&self, notification: Notification) {
        self.changes.publish(notification);
    }

    /// The notifications for `user_id` published from now on, until `shutdown`.
    pub fn subscribe(&self, user_id: String, shutdown: ShutdownSignal) -> NotificationStream {
        let updates = BroadcastStream::new(self.changes.subscribe());
        let mine = tokio_stream::StreamExt::filter_map(updates, move |update| match update {
            Ok(notification) if notification.user_id == user_id => {
                Some(Ok(StreamNotificationsResponse {
                    notification: Some(notification.as_ref().clone()),
                }))
            }
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(skipped)) => {
                // The client reads slower than notifications arrive; it can catch up with
                // ListNotifications, so skipping beats holding everyone else back.
                tracing::warn!(%user_id, skipped, "notification stream lagged; skipped some");
                None
            }
        });
        // Ends the stream on shutdown, so the server's drain is not held up by open streams.
        Box::pin(futures::StreamExt::take_until(mine, shutdown.requested()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::StreamExt as _;

    use super::*;

    fn note(user: &str, title: &str) -> Notification {
        Notification {
            user_id: user.into(),
            title: title.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_stream_gets_only_its_users_notifications() {
        let feed = LiveFeed::new(8);
        let (_trigger, signal) = mercato_kernel::shutdown::channel();
        let mut ada = feed.subscribe("ada".into(), signal);
        feed.publish(note("bob", "for bob"));
        feed.publish(note("ada", "for ada"));
        let got = ada.next().await.unwrap().unwrap();
        assert_eq!(got.notification.unwrap().title, "for ada");
    }

    #[tokio::test]
    async fn a_lagging_stream_skips_and_goes_on() {
        let feed = LiveFeed::new(2);
        let (_trigger, signal) = mercato_kernel::shutdown::channel();
        let mut ada = feed.subscribe("ada".into(), signal);
        for i in 0..5 {
            feed.publish(note("ada", &i.to_string()));
        }
        let got = ada.next().await.unwrap().unwrap();
        assert_eq!(got.notification.unwrap().title, "3");
    }

    #[tokio::test]
    async fn shutdown_ends_the_stream() {
        let feed = LiveFeed::new(2);
        let (trigger, signal) = mercato_kernel::shutdown::channel();
        let mut ada = feed.subscribe("ada".into(), signal);
        trigger.trigger();
        assert!(ada.next().await.is_none());
    }
}
