//! Payment queries, each on the caller's connection (and transaction).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use mercato_kernel::money::Amount;
use uuid::Uuid;

use crate::domain::{self, Balance, Charge, Status};
use crate::provider::Decision;
use crate::schema::{ledger_entries, payments, refunds};

/// A stored payment.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = payments)]
pub struct PaymentRow {
    pub id: Uuid,
    pub order_id: String,
    pub user_id: String,
    pub idempotency_key: String,
    pub currency: String,
    pub amount_nanos: i64,
    pub status: String,
    pub failure_reason: Option<String>,
    pub card_brand: String,
    pub card_last4: String,
    pub captured_nanos: i64,
    pub refunded_nanos: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PaymentRow {
    /// The stored status. The schema's CHECK admits only known values; should another ever
    /// appear, PENDING is the reading that allows no refund.
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Pending)
    }

    /// Amount asked for.
    pub fn amount(&self) -> Amount {
        self.money(self.amount_nanos)
    }

    /// `nanos` in the payment's currency.
    pub fn money(&self, nanos: i64) -> Amount {
        Amount::from_total_nanos(&self.currency, i128::from(nanos))
    }

    /// What the refund rules need.
    pub fn balance(&self) -> Balance {
        Balance {
            status: self.status(),
            captured: self.money(self.captured_nanos),
            refunded: self.money(self.refunded_nanos),
        }
    }
}

/// A stored refund.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refunds)]
pub struct RefundRow {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub amount_nanos: i64,
    pub reason: String,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A stored ledger entry.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ledger_entries)]
pub struct LedgerRow {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub refund_id: Option<Uuid>,
    pub kind: String,
    pub currency: String,
    pub amount_nanos: i64,
    pub created_at: DateTime<Utc>,
}

/// Kind of ledger entry for money taken.
pub const LEDGER_CAPTURE: &str = "capture";
/// Kind of ledger entry for money given back.
pub const LEDGER_REFUND: &str = "refund";

/// `amount` in nano-units as stored. Validated amounts always fit; anything else is a defect
/// reported as a query error rather than a silently wrong number.
fn nanos(amount: &Amount) -> QueryResult<i64> {
    i64::try_from(amount.total_nanos())
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// Records a charge under its idempotency key; `None` when the key is taken (by a payment
/// committed already, or by a concurrent one, whose commit this statement waits for).
pub async fn insert_payment(
    conn: &mut AsyncPgConnection,
    charge: &Charge,
) -> QueryResult<Option<PaymentRow>> {
    let amount = nanos(&charge.amount)?;
    let (status, failure_reason, captured) = match charge.decision {
        Decision::Captured => (Status::Captured, None, amount),
        Decision::Refused(reason) => (Status::Failed, Some(domain::failure_reason_str(reason)), 0),
    };
    diesel::insert_into(payments::table)
        .values((
            payments::id.eq(Uuid::now_v7()),
            payments::order_id.eq(&charge.order_id),
            payments::user_id.eq(&charge.user_id),
            payments::idempotency_key.eq(&charge.idempotency_key),
            payments::currency.eq(charge.amount.currency()),
            payments::amount_nanos.eq(amount),
            payments::status.eq(status.as_str()),
            payments::failure_reason.eq(failure_reason),
            payments::card_brand.eq(domain::brand_str(charge.card.brand)),
            payments::card_last4.eq(&charge.card.last4),
            payments::captured_nanos.eq(captured),
        ))
        .on_conflict(payments::idempotency_key)
        .do_nothing()
        .returning(PaymentRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// The payment with `id`, locked for update when `lock`.
pub async fn payment(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    lock: bool,
) -> QueryResult<Option<PaymentRow>> {
    let query = payments::table.find(id).select(PaymentRow::as_select());
    if lock {
        query.for_update().first(conn).await.optional()
    } else {
        query.first(conn).await.optional()
    }
}

/// The payment made under a Charge idempotency key.
pub async fn payment_by_key(
    conn: &mut AsyncPgConnection,
    key: &str,
) -> QueryResult<Option<PaymentRow>> {
    payments::table
        .filter(payments::idempotency_key.eq(key))
        .select(PaymentRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Refunds of a payment, oldest first.
pub async fn refunds_of(
    conn: &mut AsyncPgConnection,
    payment_id: Uuid,
) -> QueryResult<Vec<RefundRow>> {
    refunds::table
        .filter(refunds::payment_id.eq(payment_id))
        .order((refunds::created_at.asc(), refunds::id.asc()))
        .select(RefundRow::as_select())
        .load(conn)
        .await
}

/// The refund of `payment_id` made under `key`.
pub async fn refund_by_key(
    conn: &mut AsyncPgConnection,
    payment_id: Uuid,
    key: &str,
) -> QueryResult<Option<RefundRow>> {
    refunds::table
        .filter(refunds::payment_id.eq(payment_id))
        .filter(refunds::idempotency_key.eq(key))
        .select(RefundRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Inserts a refund of `amount`.
pub async fn insert_refund(
    conn: &mut AsyncPgConnection,
    payment_id: Uuid,
    amount: &Amount,
    reason: &str,
    idempotency_key: Option<&str>,
) -> QueryResult<RefundRow> {
    diesel::insert_into(refunds::table)
        .values((
            refunds::id.eq(Uuid::now_v7()),
            refunds::payment_id.eq(payment_id),
            refunds::amount_nanos.eq(nanos(amount)?),
            refunds::reason.eq(reason),
            refunds::idempotency_key.eq(idempotency_key),
        ))
        .returning(RefundRow::as_returning())
        .get_result(conn)
        .await
}

/// Sets the refunded total and status of a payment (whose row the caller has locked).
pub async fn record_refund(
    conn: &mut AsyncPgConnection,
    payment_id: Uuid,
    refunded: &Amount,
    status: Status,
) -> QueryResult<PaymentRow> {
    diesel::update(payments::table.find(payment_id))
        .set((
            payments::refunded_nanos.eq(nanos(refunded)?),
            payments::status.eq(status.as_str()),
            payments::updated_at.eq(diesel::dsl::now),
        ))
        .returning(PaymentRow::as_returning())
        .get_result(conn)
        .await
}

/// Appends a ledger entry: a capture (`refund_id` none) or a refund.
pub async fn append_ledger(
    conn: &mut AsyncPgConnection,
    payment_id: Uuid,
    refund_id: Option<Uuid>,
    amount: &Amount,
) -> QueryResult<()> {
    let kind = if refund_id.is_some() {
        LEDGER_REFUND
    } else {
        LEDGER_CAPTURE
    };
    diesel::insert_into(ledger_entries::table)
        .values((
            ledger_entries::id.eq(Uuid::now_v7()),
            ledger_entries::payment_id.eq(payment_id),
            ledger_entries::refund_id.eq(refund_id),
            ledger_entries::kind.eq(kind),
            ledger_entries::currency.eq(amount.currency()),
            ledger_entries::amount_nanos.eq(nanos(amount)?),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The ledger of a payment, oldest first.
pub async fn ledger_of(
    conn: &mut AsyncPgConnection,
    payment_id: Uuid,
) -> QueryResult<Vec<LedgerRow>> {
    ledger_entries::table
        .filter(ledger_entries::payment_id.eq(payment_id))
        .order(ledger_entries::id.asc())
        .select(LedgerRow::as_select())
        .load(conn)
        .await
}
