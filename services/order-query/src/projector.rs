//! The projection of order and payment events into the read model, run by the kernel's
//! idempotent consumer (one transaction per event, with its id in `processed_events`).
//!
//! Order events carry the whole order, so each one upserts it when its version is newer than
//! the stored one and otherwise only adds its history entry: duplicates and any delivery
//! order end in the same state. Payment events merge into a per-payment row (see
//! [`crate::domain::PaymentState`]). An event of a type it does not know is an error, so it is
//! dead-lettered after its retries rather than applied as some other kind.
//!
//! Replicas share the durable consumer and apply events of one order at the same time: each
//! event locks its order's or payment's row (claiming it first when new) before comparing or
//! merging, and the after-commit refresh of the cache and the feed takes the order's refresh
//! lock, so the last state written is the latest.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use mercato::pb::events::v1::Envelope;
use mercato::pb::order::v1::{OrderCancelled, OrderConfirmed, OrderPlaced, OrderShipped};
use mercato::pb::payment::v1::{PaymentCaptured, PaymentFailed, PaymentRefunded};
use mercato_kernel::db::DbPool;
use mercato_kernel::events::consumer::{ApplyError, Projection, payload};
use uuid::Uuid;

use crate::cache::OrderCache;
use crate::domain::{self, EventError, OrderSnapshot};
use crate::store;
use crate::watch::OrderFeed;

/// The events this projection uses, by envelope type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Placed,
    Confirmed,
    Cancelled,
    Shipped,
    Captured,
    Failed,
    Refunded,
}

impl Kind {
    fn of(type_name: &str) -> Option<Self> {
        Some(match type_name {
            "mercato.order.v1.OrderPlaced" => Self::Placed,
            "mercato.order.v1.OrderConfirmed" => Self::Confirmed,
            "mercato.order.v1.OrderCancelled" => Self::Cancelled,
            "mercato.order.v1.OrderShipped" => Self::Shipped,
            "mercato.payment.v1.PaymentCaptured" => Self::Captured,
            "mercato.payment.v1.PaymentFailed" => Self::Failed,
            "mercato.payment.v1.PaymentRefunded" => Self::Refunded,
            _ => return None,
        })
    }
}

/// An event this projection uses, decoded.
enum Event {
    Placed(OrderPlaced),
    Confirmed(OrderConfirmed),
    Cancelled(OrderCancelled),
    Shipped(OrderShipped),
    Captured(PaymentCaptured),
    Failed(PaymentFailed),
    Refunded(PaymentRefunded),
}

/// The event in `envelope`. Every event of the order and payment streams is one this
/// projection uses: a type it does not know (a producer newer than this service) is an
/// error, retried (another replica may know it) and then dead-lettered, never guessed at.
fn decode(envelope: &Envelope) -> Result<Event, ApplyError> {
    let kind = Kind::of(&envelope.r#type)
        .ok_or_else(|| ApplyError::invalid(EventError::UnknownKind(envelope.r#type.clone())))?;
    Ok(match kind {
        Kind::Placed => Event::Placed(payload(envelope)?),
        Kind::Confirmed => Event::Confirmed(payload(envelope)?),
        Kind::Cancelled => Event::Cancelled(payload(envelope)?),
        Kind::Shipped => Event::Shipped(payload(envelope)?),
        Kind::Captured => Event::Captured(payload(envelope)?),
        Kind::Failed => Event::Failed(payload(envelope)?),
        Kind::Refunded => Event::Refunded(payload(envelope)?),
    })
}

/// When the event happened by the envelope; stands in for missing payload timestamps.
fn occurred(envelope: &Envelope) -> DateTime<Utc> {
    domain::time_or(envelope.occurred_at.as_ref(), Utc::now())
}

/// Why an order's cache entry and watchers were not refreshed after its event (which is
/// applied all the same).
#[derive(Debug, thiserror::Error)]
enum RefreshError {
    /// No connection to be had.
    #[error("database pool: {0}")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::PoolError),
    /// The lock or the read failed.
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
}

/// The order projection, with the cache and the watch feed it keeps up to date.
pub struct OrderProjector {
    db: DbPool,
    cache: OrderCache,
    feed: OrderFeed,
}

impl OrderProjector {
    /// A projector refreshing `cache` and `feed` after each event.
    pub fn new(db: DbPool, cache: OrderCache, feed: OrderFeed) -> Self {
        Self { db, cache, feed }
    }

    /// Reads the order's committed state and puts it in the cache and on the feed, under the
    /// order's refresh lock: replicas refresh concurrently, and without it one that read an
    /// older state could write it after another wrote a newer one, leaving the cache stale.
    /// With it, the last refresh of an order reads after every commit before it.
    async fn refresh(&self, order_id: Uuid) -> Result<(), RefreshError> {
        let mut conn = self.db.get().await?;
        conn.transaction(async |conn| {
            store::lock_refresh(conn, order_id).await?;
            match store::order_view(conn, order_id).await? {
                Some(view) => {
                    self.cache.put(&view.id, &view).await;
                    // Published whether or not anyone watches here: another replica may.
                    self.feed.publish(view);
                }
                // A payment event ahead of its order: nothing to show yet.
                None => self.cache.invalidate(&order_id.to_string()).await,
            }
            Ok::<_, diesel::result::Error>(())
        })
        .await?;
        Ok(())
    }
}

/// Applies an order event; returns its order.
async fn apply_order(
    conn: &mut AsyncPgConnection,
    snapshot: Result<OrderSnapshot, EventError>,
) -> Result<Uuid, ApplyError> {
    let snapshot = snapshot.map_err(ApplyError::invalid)?;
    store::apply_order(conn, &snapshot).await?;
    Ok(snapshot.id)
}

/// Merges a payment event into its payment's state so far (locked until the event's
/// transaction ends) with `merge`; returns the order paid for.
async fn apply_payment(
    conn: &mut AsyncPgConnection,
    payment_id: &str,
    order_id: &str,
    at: DateTime<Utc>,
    merge: impl FnOnce(&mut domain::PaymentState),
) -> Result<Uuid, ApplyError> {
    if payment_id.is_empty() {
        return Err(ApplyError::invalid(EventError::PaymentId));
    }
    let order_id = domain::payment_order_id(order_id).map_err(ApplyError::invalid)?;
    let mut state = store::payment_for_update(conn, payment_id, order_id, at).await?;
    merge(&mut state);
    store::save_payment(conn, payment_id, &state, at).await?;
    Ok(order_id)
}

#[tonic::async_trait]
impl Projection for OrderProjector {
    /// The order the event was about, whose cache entry and watchers are refreshed once the
    /// event is committed.
    type Touched = Uuid;

    async fn apply(
        &self,
        conn: &mut AsyncPgConnection,
        envelope: &Envelope,
    ) -> Result<Uuid, ApplyError> {
        let at = occurred(envelope);
        let order_id = match decode(envelope)? {
            Event::Placed(e) => apply_order(conn, OrderSnapshot::placed(&e, at)).await?,
            Event::Confirmed(e) => apply_order(conn, OrderSnapshot::confirmed(&e, at)).await?,
            Event::Cancelled(e) => apply_order(conn, OrderSnapshot::cancelled(&e, at)).await?,
            Event::Shipped(e) => apply_order(conn, OrderSnapshot::shipped(&e, at)).await?,
            Event::Captured(e) => {
                apply_payment(conn, &e.payment_id, &e.order_id, at, |s| s.captured(&e)).await?
            }
            Event::Failed(e) => {
                apply_payment(conn, &e.payment_id, &e.order_id, at, |s| s.failed(&e)).await?
            }
            Event::Refunded(e) => {
                apply_payment(conn, &e.payment_id, &e.order_id, at, |s| s.refunded(&e)).await?
            }
        };
        Ok(order_id)
    }

    async fn committed(&self, _envelope: &Envelope, order_id: Uuid) {
        // The order and payment streams are consumed concurrently: reading and publishing
        // under one lock keeps the cache and the feed from getting an older state last.
        let _serial = self.feed.serialize().await;
        if let Err(err) = self.refresh(order_id).await {
            // The event is applied; only the refresh failed. Dropping the entry makes the
            // next read go to Postgres; watchers catch up with the next change.
            tracing::warn!(order_id = %order_id, error = %err, "order refresh after event failed");
            self.cache.invalidate(&order_id.to_string()).await;
        }
    }

    async fn reset(&self, conn: &mut AsyncPgConnection) -> Result<(), ApplyError> {
        store::reset(conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Name as _;

    #[test]
    fn event_kinds_match_the_proto_names() {
        let cases = [
            (OrderPlaced::full_name(), Kind::Placed),
            (OrderConfirmed::full_name(), Kind::Confirmed),
            (OrderCancelled::full_name(), Kind::Cancelled),
            (OrderShipped::full_name(), Kind::Shipped),
            (PaymentCaptured::full_name(), Kind::Captured),
            (PaymentFailed::full_name(), Kind::Failed),
            (PaymentRefunded::full_name(), Kind::Refunded),
        ];
        for (name, kind) in cases {
            assert_eq!(Kind::of(&name), Some(kind), "{name}");
        }
        assert_eq!(Kind::of("mercato.identity.v1.UserRegistered"), None);
    }

    #[test]
    fn an_event_names_its_order() {
        let order_id = Uuid::now_v7();
        let envelope = Envelope {
            r#type: PaymentCaptured::full_name(),
            payload: prost::Message::encode_to_vec(&PaymentCaptured {
                order_id: order_id.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let named = match decode(&envelope) {
            Ok(Event::Captured(e)) => Some(e.order_id),
            _ => None,
        };
        assert_eq!(named, Some(order_id.to_string()));
        let garbage = Envelope {
            payload: vec![0xff; 3],
            ..envelope
        };
        assert!(decode(&garbage).is_err());
    }

    #[test]
    fn an_event_of_an_unknown_kind_is_an_error_not_a_refund() {
        let refund = PaymentRefunded {
            order_id: Uuid::now_v7().to_string(),
            payment_id: "pay-1".into(),
            fully_refunded: true,
            ..Default::default()
        };
        let envelope = Envelope {
            r#type: "mercato.payment.v1.PaymentDisputed".into(),
            payload: prost::Message::encode_to_vec(&refund),
            ..Default::default()
        };
        let err = match decode(&envelope) {
            Err(err) => err.to_string(),
            Ok(_) => String::from("decoded"),
        };
        assert!(err.contains("mercato.payment.v1.PaymentDisputed"), "{err}");
    }
}
