//! Postgres access for orders and their saga state. Every saga transition is a
//! compare-and-set on (`saga_step`, `version`), so two executors of one saga (a lease that
//! ran out while a step was slow) can never both apply a transition.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::{PricedLine, Status, Step};
use crate::schema::{order_lines, orders};

/// A stored order.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    pub id: Uuid,
    pub user_id: String,
    pub idempotency_key: String,
    pub request_hash: String,
    /// Parsed when read: a value that names no status fails the read.
    #[diesel(deserialize_as = String)]
    pub status: Status,
    pub currency: String,
    pub subtotal_nanos: i64,
    pub discount_nanos: i64,
    pub coupon_code: String,
    pub ship_name: String,
    pub ship_line1: String,
    pub ship_line2: String,
    pub ship_city: String,
    pub ship_postal_code: String,
    pub ship_country: String,
    pub payment_id: String,
    pub cancellation_reason: String,
    pub cancelled_by: String,
    pub tracking_number: String,
    pub version: i64,
    /// Parsed when read: a value that names no step fails the read (never a saga taken
    /// for done).
    #[diesel(deserialize_as = String)]
    pub saga_step: Step,
    pub saga_lease_until: Option<DateTime<Utc>>,
    pub saga_attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl OrderRow {
    /// Where the order stands.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The saga's next step.
    pub fn step(&self) -> Step {
        self.saga_step
    }

    /// What the customer pays.
    pub fn total_nanos(&self) -> i64 {
        self.subtotal_nanos - self.discount_nanos
    }
}

/// A stored line.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = order_lines)]
pub struct LineRow {
    pub order_id: Uuid,
    pub line_no: i32,
    pub product_id: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price_nanos: i64,
}

/// An order with its lines.
#[derive(Debug, Clone)]
pub struct StoredOrder {
    pub order: OrderRow,
    pub lines: Vec<LineRow>,
}

/// A new order, before insertion.
#[derive(Debug, Insertable)]
#[diesel(table_name = orders)]
pub struct InsertOrder<'a> {
    pub id: Uuid,
    pub user_id: &'a str,
    pub idempotency_key: &'a str,
    pub request_hash: &'a str,
    pub status: &'a str,
    pub currency: &'a str,
    pub subtotal_nanos: i64,
    pub discount_nanos: i64,
    pub coupon_code: &'a str,
    pub ship_name: &'a str,
    pub ship_line1: &'a str,
    pub ship_line2: &'a str,
    pub ship_city: &'a str,
    pub ship_postal_code: &'a str,
    pub ship_country: &'a str,
    pub saga_step: &'a str,
    pub saga_lease_until: Option<DateTime<Utc>>,
}

/// Inserts an order and its lines unless the user already used the idempotency key;
/// `None` then.
pub async fn insert_order(
    conn: &mut AsyncPgConnection,
    order: &InsertOrder<'_>,
    lines: &[PricedLine],
) -> QueryResult<Option<StoredOrder>> {
    let Some(row) = diesel::insert_into(orders::table)
        .values(order)
        .on_conflict_do_nothing()
        .returning(OrderRow::as_returning())
        .get_result(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    let values: Vec<_> = lines
        .iter()
        .zip(0..)
        .map(|(line, no)| {
            (
                order_lines::order_id.eq(row.id),
                order_lines::line_no.eq(no),
                order_lines::product_id.eq(&line.product_id),
                order_lines::name.eq(&line.name),
                order_lines::quantity.eq(line.quantity),
                order_lines::unit_price_nanos.eq(line.unit_price_nanos),
            )
        })
        .collect();
    diesel::insert_into(order_lines::table)
        .values(values)
        .execute(conn)
        .await?;
    load_lines(conn, row).await.map(Some)
}

/// The order of `row` with its lines, when there is one.
async fn with_lines(
    conn: &mut AsyncPgConnection,
    row: Option<OrderRow>,
) -> QueryResult<Option<StoredOrder>> {
    match row {
        Some(order) => load_lines(conn, order).await.map(Some),
        None => Ok(None),
    }
}

async fn load_lines(conn: &mut AsyncPgConnection, order: OrderRow) -> QueryResult<StoredOrder> {
    let lines = order_lines::table
        .filter(order_lines::order_id.eq(order.id))
        .order(order_lines::line_no)
        .select(LineRow::as_select())
        .load(conn)
        .await?;
    Ok(StoredOrder { order, lines })
}

/// The order with `id`.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<StoredOrder>> {
    let row = orders::table
        .find(id)
        .select(OrderRow::as_select())
        .first(conn)
        .await
        .optional()?;
    with_lines(conn, row).await
}

/// The order a user placed with an idempotency key.
pub async fn find_by_key(
    conn: &mut AsyncPgConnection,
    user_id: &str,
    key: &str,
) -> QueryResult<Option<StoredOrder>> {
    let row = orders::table
        .filter(orders::user_id.eq(user_id))
        .filter(orders::idempotency_key.eq(key))
        .select(OrderRow::as_select())
        .first(conn)
        .await
        .optional()?;
    with_lines(conn, row).await
}

/// Takes the saga lease of an unfinished order until `until`, unless another executor
/// holds it. Returns the order as it stands when taken.
pub async fn take_lease(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    until: DateTime<Utc>,
) -> QueryResult<Option<StoredOrder>> {
    let now = Utc::now();
    let row = diesel::update(
        orders::table
            .filter(orders::id.eq(id))
            .filter(orders::saga_step.ne(Step::Done.as_str()))
            .filter(
                orders::saga_lease_until
                    .is_null()
                    .or(orders::saga_lease_until.lt(now)),
            ),
    )
    .set((
        orders::saga_lease_until.eq(until),
        orders::saga_attempts.eq(orders::saga_attempts + 1),
    ))
    .returning(OrderRow::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    with_lines(conn, row).await
}

/// Gives the lease back, letting the recovery sweep retry no earlier than `retry_at`.
pub async fn release_lease(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    retry_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(orders::table.find(id))
        .set(orders::saga_lease_until.eq(retry_at))
        .execute(conn)
        .await
        .map(drop)
}

/// Unfinished sagas nobody holds, oldest lease first.
pub async fn orphaned(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<Uuid>> {
    orders::table
        .filter(orders::saga_step.ne(Step::Done.as_str()))
        .filter(
            orders::saga_lease_until
                .is_null()
                .or(orders::saga_lease_until.lt(Utc::now())),
        )
        .order(orders::saga_lease_until.asc())
        .select(orders::id)
        .limit(limit)
        .load(conn)
        .await
}

/// A change to apply to an order if it is still at (`step`, `version`).
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = orders)]
pub struct Transition<'a> {
    pub status: Option<&'a str>,
    pub saga_step: Option<&'a str>,
    pub discount_nanos: Option<i64>,
    pub payment_id: Option<&'a str>,
    pub cancellation_reason: Option<&'a str>,
    pub cancelled_by: Option<&'a str>,
    pub tracking_number: Option<&'a str>,
    pub version: Option<i64>,
    pub saga_lease_until: Option<Option<DateTime<Utc>>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Applies `change` when the order is still at `step` and `version`; the updated order, or
/// `None` when someone else moved it first.
pub async fn transition(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    step: Step,
    version: i64,
    change: &Transition<'_>,
) -> QueryResult<Option<StoredOrder>> {
    let row = diesel::update(
        orders::table
            .filter(orders::id.eq(id))
            .filter(orders::saga_step.eq(step.as_str()))
            .filter(orders::version.eq(version)),
    )
    .set(change)
    .returning(OrderRow::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    with_lines(conn, row).await
}
