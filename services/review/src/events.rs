//! What review consumes: order events (who bought what, so only verified buyers review) and
//! identity's UserRegistered (authors' display names). Review publishes no events.
//!
//! The kernel's consumer runs [`ReviewProjector::apply`] in one transaction with the event's
//! id in `processed_events`, so a redelivered event changes nothing; out-of-order events are
//! handled by keeping the highest order version per (order, product).

use diesel_async::AsyncPgConnection;
use mercato::pb::events::v1::Envelope;
use mercato::pb::identity::v1::UserRegistered;
use mercato::pb::order::v1::{OrderCancelled, OrderConfirmed, OrderShipped, OrderSnapshot};
use mercato_kernel::events::consumer::{self, ApplyError, Projection};
use prost::Name as _;
use uuid::Uuid;

use crate::domain::{OrderFact, PurchaseStatus};
use crate::store;

/// Producing domains whose streams review follows.
pub const DOMAINS: [&str; 2] = ["order", "identity"];

/// Projects order and identity events into `purchases` and `authors`.
#[derive(Debug, Clone, Default)]
pub struct ReviewProjector;

impl ReviewProjector {
    /// Records what `order` says its buyer bought, as of `status`.
    async fn record(
        conn: &mut AsyncPgConnection,
        order: OrderSnapshot,
        status: PurchaseStatus,
    ) -> Result<(), ApplyError> {
        let fact = OrderFact::new(
            &order.order_id,
            &order.user_id,
            order.version,
            &order.lines,
            status,
        )
        .map_err(ApplyError::invalid)?;
        let changed = store::record_order(conn, &fact).await?;
        tracing::debug!(
            order_id = %fact.order_id,
            version = fact.version,
            status = fact.status.as_str(),
            changed,
            "purchases recorded"
        );
        Ok(())
    }
}

/// The order an order event carries: its `snapshot`, or, for an event written before
/// snapshots existed, its deprecated fields 1-11, which are numbered as the snapshot's own
/// fields, so the event's payload decodes as its snapshot.
fn order_of(
    snapshot: Option<OrderSnapshot>,
    event: &Envelope,
) -> Result<OrderSnapshot, ApplyError> {
    match snapshot {
        Some(snapshot) => Ok(snapshot),
        None => consumer::payload(event),
    }
}

#[tonic::async_trait]
impl Projection for ReviewProjector {
    type Touched = ();

    async fn apply(
        &self,
        conn: &mut AsyncPgConnection,
        event: &Envelope,
    ) -> Result<(), ApplyError> {
        let kind = event.r#type.as_str();
        if kind == OrderConfirmed::full_name() {
            let e: OrderConfirmed = consumer::payload(event)?;
            Self::record(
                conn,
                order_of(e.snapshot, event)?,
                PurchaseStatus::Confirmed,
            )
            .await
        } else if kind == OrderShipped::full_name() {
            let e: OrderShipped = consumer::payload(event)?;
            Self::record(conn, order_of(e.snapshot, event)?, PurchaseStatus::Shipped).await
        } else if kind == OrderCancelled::full_name() {
            // Recorded even when the order was never confirmed: should its (older)
            // confirmation arrive later, the higher version here keeps it from counting.
            let e: OrderCancelled = consumer::payload(event)?;
            Self::record(
                conn,
                order_of(e.snapshot, event)?,
                PurchaseStatus::Cancelled,
            )
            .await
        } else if kind == UserRegistered::full_name() {
            let e: UserRegistered = consumer::payload(event)?;
            let user_id = Uuid::parse_str(&e.user_id).map_err(|_| {
                ApplyError::invalid(format!("user_id {:?} is not a UUID", e.user_id))
            })?;
            store::record_author(conn, user_id, &e.display_name).await?;
            Ok(())
        } else {
            // OrderPlaced and anything else: nothing to learn for reviews.
            Ok(())
        }
    }

    async fn reset(&self, conn: &mut AsyncPgConnection) -> Result<(), ApplyError> {
        store::reset_projection(conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use mercato::pb::order::v1::OrderLine;
    use prost::Message as _;

    use super::*;

    fn envelope(event: &OrderConfirmed) -> Envelope {
        Envelope {
            r#type: OrderConfirmed::full_name(),
            payload: event.encode_to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn the_order_is_read_from_the_snapshot_when_there_is_one() {
        let snapshot = OrderSnapshot {
            order_id: "o-new".into(),
            user_id: "u1".into(),
            version: 2,
            ..Default::default()
        };
        let event = OrderConfirmed {
            order_id: "o-old".into(),
            snapshot: Some(snapshot.clone()),
            ..Default::default()
        };
        let order = order_of(event.snapshot.clone(), &envelope(&event)).unwrap();
        assert_eq!(order, snapshot);
    }

    #[test]
    fn an_event_without_a_snapshot_is_read_from_its_fields_1_to_11() {
        let event = OrderConfirmed {
            order_id: "o1".into(),
            user_id: "u1".into(),
            version: 2,
            lines: vec![OrderLine {
                product_id: "p1".into(),
                quantity: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        let order = order_of(None, &envelope(&event)).unwrap();
        assert_eq!(order.order_id, "o1");
        assert_eq!(order.user_id, "u1");
        assert_eq!(order.version, 2);
        assert_eq!(order.lines, event.lines);
    }
}
