//! Inventory's queries, each on the caller's connection (and transaction).
//!
//! Stock rows change only through guarded single-statement updates, so a row's counters are
//! checked and changed atomically under its row lock; the table's CHECKs back them up.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Int4, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::{Item, OrderId, ReservationStatus, StockShift};
use crate::schema::{reservation_items, reservations, stock};

/// A product's stored stock.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = stock)]
pub struct StockRow {
    pub product_id: Uuid,
    pub on_hand: i32,
    pub reserved: i32,
    pub updated_at: DateTime<Utc>,
}

impl StockRow {
    /// Units that can still be reserved.
    pub fn available(&self) -> i32 {
        self.on_hand - self.reserved
    }
}

/// A stored reservation, without its items.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = reservations)]
pub struct ReservationRow {
    pub order_id: String,
    pub status: String,
    pub restocked: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ReservationRow {
    /// The stored status; `None` only if the row holds a value the schema forbids.
    pub fn status(&self) -> Option<ReservationStatus> {
        ReservationStatus::from_db(&self.status)
    }
}

/// A reservation with its items (sorted by product id).
#[derive(Debug, Clone)]
pub struct Reservation {
    pub row: ReservationRow,
    pub items: Vec<Item>,
}

/// The stock of `product_id`, if it ever had any.
pub async fn stock(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
) -> QueryResult<Option<StockRow>> {
    stock::table
        .find(product_id)
        .select(StockRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The stock rows of `product_ids` that exist, in no particular order.
pub async fn stocks(
    conn: &mut AsyncPgConnection,
    product_ids: &[Uuid],
) -> QueryResult<Vec<StockRow>> {
    stock::table
        .filter(stock::product_id.eq_any(product_ids))
        .select(StockRow::as_select())
        .load(conn)
        .await
}

/// Adds `units` (> 0) on hand, creating the stock row when needed. `None` when the total would
/// no longer fit the counter.
pub async fn add_on_hand(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
    units: i32,
) -> QueryResult<Option<StockRow>> {
    // Raw SQL: diesel's upsert cannot express the guard on the conflict branch.
    diesel::sql_query(
        "INSERT INTO stock (product_id, on_hand) VALUES ($1, $2) \
         ON CONFLICT (product_id) DO UPDATE \
           SET on_hand = stock.on_hand + EXCLUDED.on_hand, updated_at = now() \
           WHERE stock.on_hand <= 2147483647 - EXCLUDED.on_hand \
         RETURNING product_id, on_hand, reserved, updated_at",
    )
    .bind::<SqlUuid, _>(product_id)
    .bind::<Int4, _>(units)
    .get_result(conn)
    .await
    .optional()
}

/// Removes `units` (> 0) from on hand unless that would take it below what is reserved (and
/// so below zero). `None` when there are not that many free units (or no stock row).
pub async fn remove_on_hand(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
    units: i32,
) -> QueryResult<Option<StockRow>> {
    diesel::update(
        stock::table
            .find(product_id)
            .filter((stock::on_hand - stock::reserved).ge(units)),
    )
    .set((
        stock::on_hand.eq(stock::on_hand - units),
        stock::updated_at.eq(diesel::dsl::now),
    ))
    .returning(StockRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Holds `units` of `product_id` if that many are available, in one guarded statement: the
/// check and the change happen under the row lock, so concurrent holds never oversell.
/// `None` when fewer are available (or the product has no stock row).
pub async fn hold(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
    units: i32,
) -> QueryResult<Option<StockRow>> {
    diesel::update(
        stock::table
            .find(product_id)
            .filter((stock::on_hand - stock::reserved).ge(units)),
    )
    .set((
        stock::reserved.eq(stock::reserved + units),
        stock::updated_at.eq(diesel::dsl::now),
    ))
    .returning(StockRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Applies `shift` to a product's counters. The row must exist (a reservation's items always
/// have one); the table's CHECKs reject a result that would be inconsistent.
pub async fn shift(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
    shift: StockShift,
) -> QueryResult<StockRow> {
    diesel::update(stock::table.find(product_id))
        .set((
            stock::on_hand.eq(stock::on_hand + shift.on_hand),
            stock::reserved.eq(stock::reserved + shift.reserved),
            stock::updated_at.eq(diesel::dsl::now),
        ))
        .returning(StockRow::as_returning())
        .get_result(conn)
        .await
}

/// Inserts a reservation of `order_id` with `status` unless the order has one already;
/// `None` when it had. Concurrent inserts of one order wait for each other here, so exactly
/// one of them proceeds.
pub async fn insert_reservation(
    conn: &mut AsyncPgConnection,
    order_id: &OrderId,
    status: ReservationStatus,
) -> QueryResult<Option<ReservationRow>> {
    diesel::insert_into(reservations::table)
        .values((
            reservations::order_id.eq(order_id.as_str()),
            reservations::status.eq(status.as_db()),
        ))
        .on_conflict_do_nothing()
        .returning(ReservationRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// The reservation of `order_id`, locked for update when `lock` (commit and release of one
/// order serialize on it).
pub async fn reservation(
    conn: &mut AsyncPgConnection,
    order_id: &OrderId,
    lock: bool,
) -> QueryResult<Option<ReservationRow>> {
    let query = reservations::table
        .find(order_id.as_str())
        .select(ReservationRow::as_select());
    if lock {
        query.for_update().first(conn).await.optional()
    } else {
        query.first(conn).await.optional()
    }
}

/// Records `items` of a reservation.
pub async fn insert_items(
    conn: &mut AsyncPgConnection,
    order_id: &OrderId,
    items: &[Item],
) -> QueryResult<()> {
    let rows: Vec<_> = items
        .iter()
        .map(|item| {
            (
                reservation_items::order_id.eq(order_id.as_str()),
                reservation_items::product_id.eq(item.product_id),
                reservation_items::quantity.eq(item.quantity),
            )
        })
        .collect();
    diesel::insert_into(reservation_items::table)
        .values(rows)
        .execute(conn)
        .await
        .map(drop)
}

/// The items of a reservation, sorted by product id (the lock order).
pub async fn items(conn: &mut AsyncPgConnection, order_id: &str) -> QueryResult<Vec<Item>> {
    let rows: Vec<(Uuid, i32)> = reservation_items::table
        .filter(reservation_items::order_id.eq(order_id))
        .order(reservation_items::product_id.asc())
        .select((reservation_items::product_id, reservation_items::quantity))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(product_id, quantity)| Item {
            product_id,
            quantity,
        })
        .collect())
}

/// Moves a reservation to `status`.
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    order_id: &str,
    status: ReservationStatus,
    restocked: bool,
) -> QueryResult<ReservationRow> {
    diesel::update(reservations::table.find(order_id))
        .set((
            reservations::status.eq(status.as_db()),
            reservations::restocked.eq(restocked),
            reservations::updated_at.eq(diesel::dsl::now),
        ))
        .returning(ReservationRow::as_returning())
        .get_result(conn)
        .await
}
