//! From events to stored notifications: the kernel consumer calls [`NotificationProjector`]
//! inside the transaction that also records the event as processed, so a redelivered event
//! writes nothing; after the commit the new notification goes to the live feed.

use chrono::Utc;
use diesel_async::AsyncPgConnection;
use mercato::order_events::OrderEvent;
use mercato::pb::events::v1::Envelope;
use mercato::pb::notification::v1::Notification;
use mercato_kernel::events::consumer::{self, ApplyError, Projection};
use uuid::Uuid;

use crate::compose::{self, Event, OrderNews};
use crate::live::LiveFeed;
use crate::store::{self, NewNotification};

/// Producing domains whose events may concern a user.
pub const DOMAINS: [&str; 3] = ["identity", "order", "payment"];

/// Writes one notification per event that concerns a user.
#[derive(Debug, Default)]
pub struct NotificationProjector {
    live: LiveFeed,
}

impl NotificationProjector {
    /// A projector publishing to `live`.
    pub fn new(live: LiveFeed) -> Self {
        Self { live }
    }
}

/// The event in `envelope`, when it is one that may concern a user.
pub fn decode(envelope: &Envelope) -> Result<Option<Event>, ApplyError> {
    Ok(Some(match envelope.r#type.as_str() {
        "mercato.identity.v1.UserRegistered" => Event::Registered(consumer::payload(envelope)?),
        "mercato.order.v1.OrderPlaced" => Event::Placed(order_news(envelope)?),
        "mercato.order.v1.OrderConfirmed" => Event::Confirmed(order_news(envelope)?),
        "mercato.order.v1.OrderCancelled" => Event::Cancelled(order_news(envelope)?),
        "mercato.order.v1.OrderShipped" => Event::Shipped(order_news(envelope)?),
        "mercato.payment.v1.PaymentFailed" => Event::PaymentFailed(consumer::payload(envelope)?),
        "mercato.payment.v1.PaymentRefunded" => Event::Refunded(consumer::payload(envelope)?),
        _ => return Ok(None),
    }))
}

/// An order event's payload with the order it carries.
fn order_news<E: OrderEvent + Default>(envelope: &Envelope) -> Result<OrderNews<E>, ApplyError> {
    OrderNews::new(consumer::payload(envelope)?).map_err(|source| ApplyError::Decode {
        type_name: envelope.r#type.clone(),
        source,
    })
}

#[tonic::async_trait]
impl Projection for NotificationProjector {
    /// The notification written, published once its transaction committed: a stream must
    /// never see a notification whose transaction rolled back.
    type Touched = Option<Notification>;

    async fn apply(
        &self,
        conn: &mut AsyncPgConnection,
        envelope: &Envelope,
    ) -> Result<Option<Notification>, ApplyError> {
        let Some(event) = decode(envelope)? else {
            return Ok(None);
        };
        let Some(draft) = compose::draft(&event) else {
            return Ok(None);
        };
        if draft.user_id.is_empty() {
            return Err(ApplyError::invalid(format!(
                "{} {} names no user",
                envelope.r#type, envelope.id
            )));
        }
        // The event id is the notification id: a replay (`--rebuild`) cannot duplicate it.
        let id = Uuid::parse_str(&envelope.id).map_err(|_| {
            ApplyError::invalid(format!("event id {:?} is not a UUID", envelope.id))
        })?;
        let created_at = draft
            .happened_at
            .or_else(|| {
                envelope.occurred_at.as_ref().and_then(|t| {
                    chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
                })
            })
            .unwrap_or_else(Utc::now);
        let kind = crate::api::kind_name(draft.kind);
        let new = NewNotification {
            id,
            user_id: &draft.user_id,
            kind,
            title: &draft.title,
            body: &draft.body,
            order_id: &draft.order_id,
            created_at,
        };
        let Some(row) = store::insert(conn, &new).await? else {
            return Ok(None);
        };
        metrics::counter!("mercato_notifications_written_total", "kind" => kind).increment(1);
        Ok(Some(crate::api::notification_message(row)))
    }

    async fn committed(&self, _envelope: &Envelope, written: Option<Notification>) {
        if let Some(notification) = written {
            tracing::debug!(id = %notification.id, user_id = %notification.user_id, "notification written");
            self.live.publish(notification);
        }
    }

    /// Keeps the notifications: a replay re-derives the same ids and writes only what is
    /// missing, so the users' read marks survive a rebuild.
    async fn reset(&self, _conn: &mut AsyncPgConnection) -> Result<(), ApplyError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mercato::pb::{identity, order, payment};
    use prost::Name as _;

    use super::*;

    fn envelope<M: prost::Name>(event: &M) -> Envelope {
        Envelope {
            id: Uuid::now_v7().to_string(),
            r#type: M::full_name(),
            payload: event.encode_to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn every_event_of_interest_is_recognised_by_its_full_name() {
        let names = [
            identity::v1::UserRegistered::full_name(),
            order::v1::OrderPlaced::full_name(),
            order::v1::OrderConfirmed::full_name(),
            order::v1::OrderCancelled::full_name(),
            order::v1::OrderShipped::full_name(),
            payment::v1::PaymentFailed::full_name(),
            payment::v1::PaymentRefunded::full_name(),
        ];
        for name in names {
            let e = Envelope {
                r#type: name.clone(),
                ..Default::default()
            };
            assert!(decode(&e).unwrap().is_some(), "{name}");
        }
    }

    #[test]
    fn other_events_are_ignored() {
        let captured = envelope(&payment::v1::PaymentCaptured::default());
        let event = decode(&captured).unwrap();
        assert!(event.is_none());
    }

    #[test]
    fn an_undecodable_payload_is_an_error() {
        let mut e = envelope(&order::v1::OrderPlaced::default());
        e.payload = vec![0xff, 0xff, 0xff];
        assert!(matches!(decode(&e), Err(ApplyError::Decode { .. })));
    }
}
