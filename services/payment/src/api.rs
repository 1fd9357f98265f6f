//! The gRPC surface of the payment service. Authorization is the kernel's: each RPC's
//! `mercato.auth.v1.policy` (Charge and LookupCharge: service accounts; Refund: admin or
//! service; GetPayment: admin) is enforced before a handler runs.

use diesel_async::AsyncConnection as _;
use mercato::pb::payment::v1 as pb;
use mercato::pb::payment::v1::payment_service_server::PaymentService;
use mercato_kernel::db::{DbConn, DbPool};
use mercato_kernel::error::{self, FieldViolations};
use mercato_kernel::events::outbox::OutboxNotifier;
use mercato_kernel::time::to_timestamp;
use mercato_kernel::validate;
use tonic::{Request, Response, Status};

use crate::domain::{self, Charge, RefundRefusal, RefundRequest};
use crate::events;
use crate::provider::Decision;
use crate::store::{self, PaymentRow, RefundRow};

/// The payment service.
#[derive(Clone)]
pub struct PaymentApi {
    db: DbPool,
    outbox: OutboxNotifier,
}

impl PaymentApi {
    /// A payment service over `db`, waking the outbox relay after each commit.
    pub fn new(db: DbPool, outbox: OutboxNotifier) -> Self {
        Self { db, outbox }
    }

    async fn conn(&self) -> Result<DbConn, Status> {
        self.db.get().await.map_err(error::pool)
    }
}

fn refund_message(payment: &PaymentRow, refund: &RefundRow) -> pb::Refund {
    pb::Refund {
        id: refund.id.to_string(),
        amount: Some(payment.money(refund.amount_nanos).to_proto()),
        reason: refund.reason.clone(),
        create_time: Some(to_timestamp(refund.created_at)),
    }
}

fn payment_message(row: &PaymentRow, refunds: &[RefundRow]) -> pb::Payment {
    pb::Payment {
        id: row.id.to_string(),
        order_id: row.order_id.clone(),
        user_id: row.user_id.clone(),
        amount: Some(row.amount().to_proto()),
        status: row.status().to_proto().into(),
        captured_amount: Some(row.money(row.captured_nanos).to_proto()),
        refunded_amount: Some(row.money(row.refunded_nanos).to_proto()),
        failure_reason: row
            .failure_reason
            .as_deref()
            .map(domain::parse_failure_reason)
            .unwrap_or_default()
            .into(),
        card: Some(pb::CardSummary {
            brand: domain::parse_brand(&row.card_brand).into(),
            last4: row.card_last4.clone(),
        }),
        refunds: refunds.iter().map(|r| refund_message(row, r)).collect(),
        create_time: Some(to_timestamp(row.created_at)),
        update_time: Some(to_timestamp(row.updated_at)),
    }
}

/// What a Charge transaction found.
enum Charged {
    /// This call made the payment.
    New(PaymentRow),
    /// An earlier call with the same key did.
    Existing(PaymentRow),
}

/// Why a Charge transaction stopped.
#[derive(Debug, thiserror::Error)]
enum ChargeError {
    /// The key is taken, yet its payment cannot be read: a defect, not a client error.
    #[error("idempotency key conflicts but no payment holds it")]
    KeyWithoutPayment,
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Why a Refund transaction stopped.
#[derive(Debug, thiserror::Error)]
enum RefundError {
    #[error("payment not found")]
    NotFound,
    #[error(transparent)]
    Refused(#[from] RefundRefusal),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// The payment after a refund, the refund, and every refund of the payment.
struct Refunded {
    payment: PaymentRow,
    refund: RefundRow,
    refunds: Vec<RefundRow>,
    new: bool,
}

fn decision_label(decision: Decision) -> &'static str {
    match decision {
        Decision::Captured => "captured",
        Decision::Refused(reason) => domain::failure_reason_str(reason),
    }
}

#[tonic::async_trait]
impl PaymentService for PaymentApi {
    async fn charge(
        &self,
        request: Request<pb::ChargeRequest>,
    ) -> Result<Response<pb::ChargeResponse>, Status> {
        let charge = Charge::parse(request.get_ref(), chrono::Utc::now())
            .map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let outcome = conn
            .transaction::<_, ChargeError, _>(async |conn| {
                match store::insert_payment(conn, &charge).await? {
                    Some(row) => {
                        if row.captured_nanos > 0 {
                            store::append_ledger(conn, row.id, None, &row.amount()).await?;
                        }
                        events::charged(conn, &row).await?;
                        Ok(Charged::New(row))
                    }
                    None => store::payment_by_key(conn, &charge.idempotency_key)
                        .await?
                        .map(Charged::Existing)
                        .ok_or(ChargeError::KeyWithoutPayment),
                }
            })
            .await
            .map_err(|e| match e {
                ChargeError::Db(e) => error::database(e),
                other => error::internal(other),
            })?;
        let (row, refunds) = match outcome {
            Charged::New(row) => {
                self.outbox.notify();
                metrics::counter!(
                    "mercato_payment_charges_total",
                    "outcome" => decision_label(charge.decision)
                )
                .increment(1);
                tracing::info!(
                    payment_id = %row.id,
                    order_id = %row.order_id,
                    status = %row.status,
                    card_brand = %row.card_brand,
                    "charge recorded"
                );
                (row, Vec::new())
            }
            Charged::Existing(row) => {
                if row.order_id != charge.order_id || row.amount() != charge.amount {
                    return Err(error::failed_precondition(
                        "IDEMPOTENCY_KEY_REUSED",
                        "this idempotency_key was used for a charge of another order or amount",
                    ));
                }
                let refunds = store::refunds_of(&mut conn, row.id)
                    .await
                    .map_err(error::database)?;
                (row, refunds)
            }
        };
        Ok(Response::new(pb::ChargeResponse {
            payment: Some(payment_message(&row, &refunds)),
        }))
    }

    async fn refund(
        &self,
        request: Request<pb::RefundRequest>,
    ) -> Result<Response<pb::RefundResponse>, Status> {
        let req = RefundRequest::parse(request.get_ref()).map_err(FieldViolations::into_status)?;
        let id = req.payment_id;
        let mut conn = self.conn().await?;
        let outcome = conn
            .transaction::<_, RefundError, _>(async |conn| {
                // The row lock serialises refunds of one payment: each sees the total of the
                // ones before it, so together they never exceed the capture.
                let payment = store::payment(conn, id, true)
                    .await?
                    .ok_or(RefundError::NotFound)?;
                if let Some(key) = &req.idempotency_key
                    && let Some(refund) = store::refund_by_key(conn, id, key).await?
                {
                    let refunds = store::refunds_of(conn, id).await?;
                    return Ok(Refunded {
                        payment,
                        refund,
                        refunds,
                        new: false,
                    });
                }
                let plan = domain::plan_refund(&payment.balance(), req.amount.as_ref())?;
                let refund = store::insert_refund(
                    conn,
                    id,
                    &plan.amount,
                    &req.reason,
                    req.idempotency_key.as_deref(),
                )
                .await?;
                store::append_ledger(conn, id, Some(refund.id), &plan.amount).await?;
                let payment =
                    store::record_refund(conn, id, &plan.refunded_after, plan.status_after).await?;
                events::refunded(conn, &payment, &refund).await?;
                let refunds = store::refunds_of(conn, id).await?;
                Ok(Refunded {
                    payment,
                    refund,
                    refunds,
                    new: true,
                })
            })
            .await
            .map_err(|e| refund_status(e, &request.get_ref().id))?;
        if outcome.new {
            self.outbox.notify();
            tracing::info!(
                payment_id = %id,
                refund_id = %outcome.refund.id,
                status = %outcome.payment.status,
                "refund recorded"
            );
        }
        Ok(Response::new(pb::RefundResponse {
            refund: Some(refund_message(&outcome.payment, &outcome.refund)),
            payment: Some(payment_message(&outcome.payment, &outcome.refunds)),
        }))
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, Status> {
        let raw = &request.get_ref().id;
        let id = validate::parse_uuid("id", raw).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let row = store::payment(&mut conn, id, false)
            .await
            .map_err(error::database)?
            .ok_or_else(|| error::not_found("payment", raw))?;
        let refunds = store::refunds_of(&mut conn, id)
            .await
            .map_err(error::database)?;
        Ok(Response::new(pb::GetPaymentResponse {
            payment: Some(payment_message(&row, &refunds)),
        }))
    }

    async fn lookup_charge(
        &self,
        request: Request<pb::LookupChargeRequest>,
    ) -> Result<Response<pb::LookupChargeResponse>, Status> {
        let key = domain::parse_lookup_key(&request.get_ref().idempotency_key)
            .map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let row = store::payment_by_key(&mut conn, &key)
            .await
            .map_err(error::database)?
            .ok_or_else(|| error::not_found("payment", &key))?;
        let refunds = store::refunds_of(&mut conn, row.id)
            .await
            .map_err(error::database)?;
        Ok(Response::new(pb::LookupChargeResponse {
            payment: Some(payment_message(&row, &refunds)),
        }))
    }
}

/// Maps a failed refund to what the caller can act on.
fn refund_status(err: RefundError, id: &str) -> Status {
    match err {
        RefundError::NotFound => error::not_found("payment", id),
        RefundError::Refused(refusal @ RefundRefusal::NotCaptured(_)) => {
            error::failed_precondition("NOT_CAPTURED", refusal.to_string())
        }
        RefundError::Refused(refusal @ RefundRefusal::CurrencyMismatch(_)) => {
            error::invalid_argument("amount", refusal.to_string())
        }
        RefundError::Refused(refusal @ RefundRefusal::Exceeds { .. }) => {
            error::failed_precondition("REFUND_EXCEEDS_CAPTURED", refusal.to_string())
        }
        RefundError::Db(e) => error::database(e),
    }
}
