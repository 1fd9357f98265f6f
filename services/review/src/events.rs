//! What review consumes: order events (who bought what, so only verified buyers review) and
//! identity's UserRegistered (authors' display names). Review publishes no events.
//!
//! The kernel's consumer runs [`ReviewProjector::apply`] in one transaction with the event's
//! id in `processed_events`, so a redelivered event changes nothing; out-of-order events are
//! handled by keeping the highest order version per (order, product).

use diesel_async::AsyncPgConnection;
use mercato::pb::events::v1::Envelope;
use mercato::pb::identity::v1::UserRegistered;
use mercato::pb::order::v1::{OrderCancelled, OrderConfirmed, OrderShipped};
use mercato_kernel::events::consumer::{self, ApplyError, Projector};
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
    async fn record(
        conn: &mut AsyncPgConnection,
        fact: Result<OrderFact, crate::domain::FactError>,
    ) -> Result<(), ApplyError> {
        let fact = fact.map_err(|e| ApplyError::Other(e.to_string()))?;
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

#[tonic::async_trait]
impl Projector for ReviewProjector {
    async fn apply(
        &self,
        conn: &mut AsyncPgConnection,
        event: &Envelope,
    ) -> Result<(), ApplyError> {
        let kind = event.r#type.as_str();
        if kind == OrderConfirmed::full_name() {
            let e: OrderConfirmed = consumer::payload(event)?;
            let fact = OrderFact::new(
                &e.order_id,
                &e.user_id,
                e.version,
                &e.lines,
                PurchaseStatus::Confirmed,
            );
            Self::record(conn, fact).await
        } else if kind == OrderShipped::full_name() {
            let e: OrderShipped = consumer::payload(event)?;
            let fact = OrderFact::new(
                &e.order_id,
                &e.user_id,
                e.version,
                &e.lines,
                PurchaseStatus::Shipped,
            );
            Self::record(conn, fact).await
        } else if kind == OrderCancelled::full_name() {
            // Recorded even when the order was never confirmed: should its (older)
            // confirmation arrive later, the higher version here keeps it from counting.
            let e: OrderCancelled = consumer::payload(event)?;
            let fact = OrderFact::new(
                &e.order_id,
                &e.user_id,
                e.version,
                &e.lines,
                PurchaseStatus::Cancelled,
            );
            Self::record(conn, fact).await
        } else if kind == UserRegistered::full_name() {
            let e: UserRegistered = consumer::payload(event)?;
            let user_id = Uuid::parse_str(&e.user_id)
                .map_err(|_| ApplyError::Other(format!("user_id {:?} is not a UUID", e.user_id)))?;
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
