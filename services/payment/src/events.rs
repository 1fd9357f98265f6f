//! What the payment service publishes (through the outbox, in the transaction of the change):
//! PaymentCaptured or PaymentFailed for each new charge, PaymentRefunded for each refund.
//! It consumes nothing.

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use mercato::pb::payment::v1 as pb;
use mercato_kernel::events::outbox;
use mercato_kernel::time::to_timestamp;

use crate::domain::{self, Status};
use crate::store::{PaymentRow, RefundRow};

/// `source` of every event of this service.
pub const SOURCE: &str = "payment";

fn card(row: &PaymentRow) -> pb::CardSummary {
    pb::CardSummary {
        brand: domain::parse_brand(&row.card_brand).into(),
        last4: row.card_last4.clone(),
    }
}

/// Enqueues the outcome of a new charge: PaymentCaptured or PaymentFailed.
pub async fn charged(conn: &mut AsyncPgConnection, row: &PaymentRow) -> QueryResult<()> {
    let aggregate = row.id.to_string();
    if row.status() == Status::Failed {
        let event = pb::PaymentFailed {
            payment_id: aggregate.clone(),
            order_id: row.order_id.clone(),
            user_id: row.user_id.clone(),
            amount: Some(row.amount().to_proto()),
            failure_reason: domain::parse_failure_reason(
                row.failure_reason.as_deref().unwrap_or_default(),
            )
            .into(),
            card: Some(card(row)),
            fail_time: Some(to_timestamp(row.created_at)),
        };
        outbox::enqueue(conn, SOURCE, &aggregate, &event).await?;
    } else {
        let event = pb::PaymentCaptured {
            payment_id: aggregate.clone(),
            order_id: row.order_id.clone(),
            user_id: row.user_id.clone(),
            amount: Some(row.money(row.captured_nanos).to_proto()),
            card: Some(card(row)),
            capture_time: Some(to_timestamp(row.created_at)),
        };
        outbox::enqueue(conn, SOURCE, &aggregate, &event).await?;
    }
    Ok(())
}

/// Enqueues PaymentRefunded for `refund`; `row` is the payment after it.
pub async fn refunded(
    conn: &mut AsyncPgConnection,
    row: &PaymentRow,
    refund: &RefundRow,
) -> QueryResult<()> {
    let aggregate = row.id.to_string();
    let event = pb::PaymentRefunded {
        payment_id: aggregate.clone(),
        order_id: row.order_id.clone(),
        user_id: row.user_id.clone(),
        refund_id: refund.id.to_string(),
        amount: Some(row.money(refund.amount_nanos).to_proto()),
        refunded_amount: Some(row.money(row.refunded_nanos).to_proto()),
        fully_refunded: row.status() == Status::Refunded,
        reason: refund.reason.clone(),
        refund_time: Some(to_timestamp(refund.created_at)),
    };
    outbox::enqueue(conn, SOURCE, &aggregate, &event)
        .await
        .map(|_| ())
}
