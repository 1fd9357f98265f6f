//! Queries of the read model. Writes run inside the consumer's transaction (one per event);
//! reads assemble whole `OrderView`s with one query per table, whatever the page size.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use mercato::pb::orderquery::v1::OrderView;
use uuid::Uuid;

use crate::domain::{OrderSnapshot, PaymentState, supersedes};
use crate::schema::{order_history, order_lines, orders, payments};
use crate::view::{self, HistoryRow, LineRow, OrderRow, PaymentRow};

/// Applies an order event: the whole order when it is newer than the stored state, and its
/// history entry in any case (an older or repeated event adds nothing else).
/// Returns whether the order's state was replaced.
pub async fn apply_order(conn: &mut AsyncPgConnection, s: &OrderSnapshot) -> QueryResult<bool> {
    // The row lock serialises concurrent projections of one order (replicas sharing the
    // consumer, or a rebuild next to a running one), so the version check and the write stay
    // atomic. A new order has no row to lock yet: its insert is the claim, and an insert that
    // finds the row taken meanwhile (another replica applied another event of the order
    // first) waits for that commit, then locks the row and compares versions like any other.
    let mut stored = locked_version(conn, s.id).await?;
    let row = OrderRow::from_snapshot(s);
    if stored.is_none() {
        let inserted = diesel::insert_into(orders::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if inserted == 0 {
            stored = locked_version(conn, s.id).await?;
        }
    }
    let newer = supersedes(s.version, stored);
    if newer {
        if stored.is_some() {
            diesel::update(orders::table.find(s.id))
                .set(&row)
                .execute(conn)
                .await?;
            diesel::delete(order_lines::table.filter(order_lines::order_id.eq(s.id)))
                .execute(conn)
                .await?;
        }
        let lines = LineRow::from_snapshot(s);
        if !lines.is_empty() {
            diesel::insert_into(order_lines::table)
                .values(&lines)
                .execute(conn)
                .await?;
        }
    }
    diesel::insert_into(order_history::table)
        .values(&HistoryRow::from_snapshot(s))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(newer)
}

/// The stored version of order `id`, its row locked until the transaction ends.
async fn locked_version(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<i64>> {
    orders::table
        .find(id)
        .select(orders::version)
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// The payment's merged state so far, locked for the update that follows; a fresh state for
/// a payment not seen yet.
///
/// A new payment's row is claimed (written empty) before it is read: replicas apply events
/// concurrently, and two first events of one payment (a capture and its refund) would
/// otherwise both find no row to lock, each merge into a fresh state, and the second write
/// would replace the first's. With the claim, the second waits for the first to commit and
/// merges into its result. `at` is the claimed row's time until the update that follows.
pub async fn payment_for_update(
    conn: &mut AsyncPgConnection,
    payment_id: &str,
    order_id: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<PaymentState> {
    let fresh = PaymentState {
        order_id,
        ..PaymentState::default()
    };
    diesel::insert_into(payments::table)
        .values(&PaymentRow::new(payment_id, &fresh, at))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    let row: PaymentRow = payments::table
        .find(payment_id)
        .select(PaymentRow::as_select())
        .for_update()
        .first(conn)
        .await?;
    Ok(row.state())
}

/// Stores the merged state of a payment.
pub async fn save_payment(
    conn: &mut AsyncPgConnection,
    payment_id: &str,
    state: &PaymentState,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    let row = PaymentRow::new(payment_id, state, at);
    diesel::insert_into(payments::table)
        .values(&row)
        .on_conflict(payments::payment_id)
        .do_update()
        .set(&row)
        .execute(conn)
        .await?;
    Ok(())
}

/// Advisory lock class of [`lock_refresh`] (the two-key space, apart from one-key locks).
const REFRESH_LOCK_CLASS: i32 = 0x6f71_0001;

/// Holds the refresh lock of order `id` until the transaction ends, so replicas refresh one
/// order's cache entry one at a time. Orders sharing a key only wait for each other.
pub async fn lock_refresh(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    let (high, low) = id.as_u64_pair();
    let folded = high ^ low;
    // Any 32 bits of the id will do: the truncation is the point.
    let key = (folded ^ (folded >> 32)) as u32 as i32;
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind::<diesel::sql_types::Integer, _>(REFRESH_LOCK_CLASS)
        .bind::<diesel::sql_types::Integer, _>(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Empties the read model (rebuild).
pub async fn reset(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::delete(order_lines::table).execute(conn).await?;
    diesel::delete(order_history::table).execute(conn).await?;
    diesel::delete(orders::table).execute(conn).await?;
    diesel::delete(payments::table).execute(conn).await?;
    Ok(())
}

/// One order as shown to clients, if the read model has it.
pub async fn order_view(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<OrderView>> {
    let row: Option<OrderRow> = orders::table
        .find(id)
        .select(OrderRow::as_select())
        .first(conn)
        .await
        .optional()?;
    match row {
        Some(row) => Ok(assemble(conn, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// Filters and position of a ListOrders page.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Only this buyer's orders; everyone's when `None`.
    pub user_id: Option<String>,
    /// Only orders in this status (OrderStatus number).
    pub status: Option<i16>,
    /// The last row of the previous page: (create time in µs, id).
    pub after: Option<(i64, Uuid)>,
    /// Rows to return.
    pub limit: i64,
}

/// A page of orders, newest first (create time, then id, both descending).
pub async fn list_orders(
    conn: &mut AsyncPgConnection,
    q: &ListQuery,
) -> QueryResult<Vec<OrderView>> {
    let mut query = orders::table
        .select(OrderRow::as_select())
        .order((orders::created_at.desc(), orders::id.desc()))
        .limit(q.limit)
        .into_boxed();
    if let Some(user_id) = &q.user_id {
        query = query.filter(orders::user_id.eq(user_id.clone()));
    }
    if let Some(status) = q.status {
        query = query.filter(orders::status.eq(status));
    }
    if let Some((micros, id)) = q.after {
        let at = DateTime::from_timestamp_micros(micros).unwrap_or_default();
        query = query.filter(
            orders::created_at
                .lt(at)
                .or(orders::created_at.eq(at).and(orders::id.lt(id))),
        );
    }
    let rows = query.load(conn).await?;
    assemble(conn, rows).await
}

/// Completes order rows with their lines, history and payments, keeping the rows' order.
async fn assemble(
    conn: &mut AsyncPgConnection,
    rows: Vec<OrderRow>,
) -> QueryResult<Vec<OrderView>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut lines: HashMap<Uuid, Vec<LineRow>> = HashMap::new();
    for line in order_lines::table
        .filter(order_lines::order_id.eq_any(&ids))
        .order((order_lines::order_id, order_lines::position))
        .select(LineRow::as_select())
        .load::<LineRow>(conn)
        .await?
    {
        lines.entry(line.order_id).or_default().push(line);
    }
    let mut history: HashMap<Uuid, Vec<HistoryRow>> = HashMap::new();
    for step in order_history::table
        .filter(order_history::order_id.eq_any(&ids))
        .order((order_history::order_id, order_history::version))
        .select(HistoryRow::as_select())
        .load::<HistoryRow>(conn)
        .await?
    {
        history.entry(step.order_id).or_default().push(step);
    }
    let mut pays: HashMap<Uuid, Vec<PaymentRow>> = HashMap::new();
    for payment in payments::table
        .filter(payments::order_id.eq_any(&ids))
        .select(PaymentRow::as_select())
        .load::<PaymentRow>(conn)
        .await?
    {
        pays.entry(payment.order_id).or_default().push(payment);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let id = row.id;
            view::order_view(
                row,
                lines.remove(&id).unwrap_or_default(),
                history.remove(&id).unwrap_or_default(),
                pays.remove(&id).unwrap_or_default(),
            )
        })
        .collect())
}
