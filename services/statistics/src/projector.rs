//! The projection of order events into sales aggregates.
//!
//! Only two events change sales: `OrderConfirmed` counts a sale (at its confirmation time)
//! and `OrderCancelled` of a confirmed or shipped order takes it back. Placed and shipped
//! orders change nothing, and payment events are not followed: a captured payment is
//! always followed by `OrderConfirmed`, a refund of a sale by `OrderCancelled`.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use mercato::pb::events::v1::Envelope;
use mercato::pb::order::v1::{OrderCancelled, OrderConfirmed};
use mercato_kernel::events::consumer::{self, ApplyError, Projection};
use prost::Name as _;

use crate::domain::{self, Sale};
use crate::store;

/// Producing domains the statistics follow.
pub const DOMAINS: &[&str] = &["order"];

/// Counts confirmed orders and subtracts cancelled ones.
#[derive(Debug, Default)]
pub struct SalesProjector;

fn occurred_at(envelope: &Envelope) -> Option<DateTime<Utc>> {
    let ts = envelope.occurred_at.as_ref()?;
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

#[tonic::async_trait]
impl Projection for SalesProjector {
    type Touched = ();

    async fn apply(
        &self,
        conn: &mut AsyncPgConnection,
        envelope: &Envelope,
    ) -> Result<(), ApplyError> {
        if envelope.r#type == OrderConfirmed::full_name() {
            let event: OrderConfirmed = consumer::payload(envelope)?;
            let sale =
                Sale::from_confirmed(&event, occurred_at(envelope)).map_err(ApplyError::invalid)?;
            let counted = store::record_sale(conn, &sale).await?;
            tracing::debug!(order_id = %sale.order_id, counted, "order confirmed");
        } else if envelope.r#type == OrderCancelled::full_name() {
            let event: OrderCancelled = consumer::payload(envelope)?;
            if event.order_id.is_empty() {
                return Err(ApplyError::invalid("OrderCancelled without order_id"));
            }
            // A never-confirmed order was never counted: nothing to take back, and no
            // confirmation of it can follow.
            if domain::cancels_a_sale(event.previous_status) {
                let outcome = store::cancel_sale(conn, &event.order_id).await?;
                tracing::debug!(order_id = %event.order_id, ?outcome, "order cancelled");
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut AsyncPgConnection) -> Result<(), ApplyError> {
        store::reset(conn).await?;
        Ok(())
    }
}
