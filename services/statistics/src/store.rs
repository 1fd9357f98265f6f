//! Statistics queries, each on the caller's connection (and transaction).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::domain::{HourSales, Ranking, Sale};
use crate::schema::{
    order_sale_lines, order_sales, product_names, product_sales_hourly, sales_hourly,
};

/// What a cancellation did to the aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancellation {
    /// The sale had been counted and was subtracted again.
    Subtracted,
    /// The confirmation has not been seen yet: it will not be counted when it arrives.
    Remembered,
    /// Nothing to do: already cancelled (or never counted).
    Unchanged,
}

/// A counted sale as stored, to subtract exactly what was added.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = order_sales)]
struct CountedSale {
    counted_hour: Option<DateTime<Utc>>,
    currency: String,
    total_nanos: i64,
    units: i64,
}

/// Counts `sale` unless its order was counted or cancelled before; returns whether it counted.
/// Names its products either way.
pub async fn record_sale(conn: &mut AsyncPgConnection, sale: &Sale) -> QueryResult<bool> {
    // Before the claim: a confirmation arriving after its order's cancellation counts
    // nothing, but it is still the products' latest sale, as it would be had it come first.
    for product in &sale.products {
        record_name(conn, &product.product_id, &product.name, sale.sold_at).await?;
    }
    // Claiming the order row first makes the count happen once, whatever the delivery order
    // and however many replicas consume.
    let claimed = diesel::insert_into(order_sales::table)
        .values((
            order_sales::order_id.eq(&sale.order_id),
            order_sales::counted_hour.eq(Some(sale.hour)),
            order_sales::currency.eq(&sale.currency),
            order_sales::total_nanos.eq(sale.total_nanos),
            order_sales::units.eq(sale.units),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if claimed == 0 {
        return Ok(false);
    }
    let lines: Vec<_> = sale
        .products
        .iter()
        .map(|p| {
            (
                order_sale_lines::order_id.eq(&sale.order_id),
                order_sale_lines::product_id.eq(&p.product_id),
                order_sale_lines::units.eq(p.units),
                order_sale_lines::revenue_nanos.eq(p.revenue_nanos),
            )
        })
        .collect();
    if !lines.is_empty() {
        diesel::insert_into(order_sale_lines::table)
            .values(lines)
            .execute(conn)
            .await?;
    }
    diesel::insert_into(sales_hourly::table)
        .values((
            sales_hourly::currency.eq(&sale.currency),
            sales_hourly::hour.eq(sale.hour),
            sales_hourly::order_count.eq(1),
            sales_hourly::units_sold.eq(sale.units),
            sales_hourly::revenue_nanos.eq(sale.total_nanos),
        ))
        .on_conflict((sales_hourly::currency, sales_hourly::hour))
        .do_update()
        .set((
            sales_hourly::order_count
                .eq(sales_hourly::order_count + excluded(sales_hourly::order_count)),
            sales_hourly::units_sold
                .eq(sales_hourly::units_sold + excluded(sales_hourly::units_sold)),
            sales_hourly::revenue_nanos
                .eq(sales_hourly::revenue_nanos + excluded(sales_hourly::revenue_nanos)),
        ))
        .execute(conn)
        .await?;
    for product in &sale.products {
        diesel::insert_into(product_sales_hourly::table)
            .values((
                product_sales_hourly::currency.eq(&sale.currency),
                product_sales_hourly::hour.eq(sale.hour),
                product_sales_hourly::product_id.eq(&product.product_id),
                product_sales_hourly::order_count.eq(1),
                product_sales_hourly::units_sold.eq(product.units),
                product_sales_hourly::revenue_nanos.eq(product.revenue_nanos),
            ))
            .on_conflict((
                product_sales_hourly::currency,
                product_sales_hourly::hour,
                product_sales_hourly::product_id,
            ))
            .do_update()
            .set((
                product_sales_hourly::order_count
                    .eq(product_sales_hourly::order_count
                        + excluded(product_sales_hourly::order_count)),
                product_sales_hourly::units_sold
                    .eq(product_sales_hourly::units_sold
                        + excluded(product_sales_hourly::units_sold)),
                product_sales_hourly::revenue_nanos.eq(product_sales_hourly::revenue_nanos
                    + excluded(product_sales_hourly::revenue_nanos)),
            ))
            .execute(conn)
            .await?;
    }
    Ok(true)
}

/// Names `product_id` `name` if this sale is its latest (by confirmation time, then name, so
/// the outcome does not depend on the delivery order even for sales at the same instant).
async fn record_name(
    conn: &mut AsyncPgConnection,
    product_id: &str,
    name: &str,
    sold_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO product_names (product_id, name, sold_at) VALUES ($1, $2, $3) \
         ON CONFLICT (product_id) DO UPDATE SET name = EXCLUDED.name, sold_at = EXCLUDED.sold_at \
         WHERE (product_names.sold_at, product_names.name) <= (EXCLUDED.sold_at, EXCLUDED.name)",
    )
    .bind::<Text, _>(product_id)
    .bind::<Text, _>(name)
    .bind::<Timestamptz, _>(sold_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes back the sale of `order_id` if it was counted, once; remembers the cancellation when
/// the confirmation has not arrived yet.
pub async fn cancel_sale(
    conn: &mut AsyncPgConnection,
    order_id: &str,
) -> QueryResult<Cancellation> {
    let remembered = diesel::insert_into(order_sales::table)
        .values((
            order_sales::order_id.eq(order_id),
            order_sales::cancelled.eq(true),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if remembered == 1 {
        return Ok(Cancellation::Remembered);
    }
    // The update locks the row: concurrent cancellations of one order subtract once.
    let counted: Option<CountedSale> = diesel::update(
        order_sales::table
            .filter(order_sales::order_id.eq(order_id))
            .filter(order_sales::cancelled.eq(false)),
    )
    .set((
        order_sales::cancelled.eq(true),
        order_sales::updated_at.eq(diesel::dsl::now),
    ))
    .returning(CountedSale::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    let Some(sale) = counted else {
        return Ok(Cancellation::Unchanged);
    };
    let Some(hour) = sale.counted_hour else {
        return Ok(Cancellation::Unchanged);
    };
    diesel::update(
        sales_hourly::table
            .filter(sales_hourly::currency.eq(&sale.currency))
            .filter(sales_hourly::hour.eq(hour)),
    )
    .set((
        sales_hourly::order_count.eq(sales_hourly::order_count - 1),
        sales_hourly::units_sold.eq(sales_hourly::units_sold - sale.units),
        sales_hourly::revenue_nanos.eq(sales_hourly::revenue_nanos - sale.total_nanos),
    ))
    .execute(conn)
    .await?;
    let lines: Vec<(String, i64, i64)> = order_sale_lines::table
        .filter(order_sale_lines::order_id.eq(order_id))
        .select((
            order_sale_lines::product_id,
            order_sale_lines::units,
            order_sale_lines::revenue_nanos,
        ))
        .order(order_sale_lines::product_id)
        .load(conn)
        .await?;
    for (product_id, units, revenue) in lines {
        diesel::update(
            product_sales_hourly::table
                .filter(product_sales_hourly::currency.eq(&sale.currency))
                .filter(product_sales_hourly::hour.eq(hour))
                .filter(product_sales_hourly::product_id.eq(&product_id)),
        )
        .set((
            product_sales_hourly::order_count.eq(product_sales_hourly::order_count - 1),
            product_sales_hourly::units_sold.eq(product_sales_hourly::units_sold - units),
            product_sales_hourly::revenue_nanos.eq(product_sales_hourly::revenue_nanos - revenue),
        ))
        .execute(conn)
        .await?;
    }
    Ok(Cancellation::Subtracted)
}

/// Empties every aggregate (a rebuild replays the streams into empty tables).
pub async fn reset(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::delete(order_sale_lines::table)
        .execute(conn)
        .await?;
    diesel::delete(order_sales::table).execute(conn).await?;
    diesel::delete(sales_hourly::table).execute(conn).await?;
    diesel::delete(product_sales_hourly::table)
        .execute(conn)
        .await?;
    diesel::delete(product_names::table).execute(conn).await?;
    Ok(())
}

/// The stored hours of `currency` in `[start, end)`, in time order.
pub async fn hourly_sales(
    conn: &mut AsyncPgConnection,
    currency: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> QueryResult<Vec<HourSales>> {
    let rows: Vec<(DateTime<Utc>, i64, i64, i64)> = sales_hourly::table
        .filter(sales_hourly::currency.eq(currency))
        .filter(sales_hourly::hour.ge(start))
        .filter(sales_hourly::hour.lt(end))
        .order(sales_hourly::hour)
        .select((
            sales_hourly::hour,
            sales_hourly::order_count,
            sales_hourly::units_sold,
            sales_hourly::revenue_nanos,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(hour, orders, units, revenue_nanos)| HourSales {
            hour,
            orders,
            units,
            revenue_nanos,
        })
        .collect())
}

/// How one product sold in a period.
#[derive(Debug, Clone, QueryableByName)]
pub struct ProductTotals {
    /// The product.
    #[diesel(sql_type = Text)]
    pub product_id: String,
    /// Its name on its latest sale.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// Units sold.
    #[diesel(sql_type = BigInt)]
    pub units_sold: i64,
    /// Orders that contained it.
    #[diesel(sql_type = BigInt)]
    pub order_count: i64,
    /// Revenue in nano-units, as decimal text: the exact sum may exceed 64 bits.
    #[diesel(sql_type = Text)]
    pub revenue_nanos: String,
}

/// The sum per product is computed first, then ranked; SUM of BIGINT is NUMERIC in Postgres,
/// so revenue ranks exactly.
const TOP_BY_UNITS: &str = "\
SELECT s.product_id, COALESCE(n.name, '') AS name, s.units_sold, s.order_count, \
       s.revenue::TEXT AS revenue_nanos \
FROM (SELECT product_id, SUM(units_sold)::BIGINT AS units_sold, \
             SUM(order_count)::BIGINT AS order_count, SUM(revenue_nanos) AS revenue \
      FROM product_sales_hourly \
      WHERE currency = $1 AND hour >= $2 AND hour < $3 \
      GROUP BY product_id HAVING SUM(order_count) > 0) s \
LEFT JOIN product_names n ON n.product_id = s.product_id \
ORDER BY s.units_sold DESC, s.revenue DESC, s.product_id COLLATE \"C\" \
LIMIT $4";

const TOP_BY_REVENUE: &str = "\
SELECT s.product_id, COALESCE(n.name, '') AS name, s.units_sold, s.order_count, \
       s.revenue::TEXT AS revenue_nanos \
FROM (SELECT product_id, SUM(units_sold)::BIGINT AS units_sold, \
             SUM(order_count)::BIGINT AS order_count, SUM(revenue_nanos) AS revenue \
      FROM product_sales_hourly \
      WHERE currency = $1 AND hour >= $2 AND hour < $3 \
      GROUP BY product_id HAVING SUM(order_count) > 0) s \
LEFT JOIN product_names n ON n.product_id = s.product_id \
ORDER BY s.revenue DESC, s.units_sold DESC, s.product_id COLLATE \"C\" \
LIMIT $4";

/// The best `limit` products of `currency` in `[start, end)` by `ranking`.
pub async fn top_products(
    conn: &mut AsyncPgConnection,
    currency: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    limit: i64,
    ranking: Ranking,
) -> QueryResult<Vec<ProductTotals>> {
    let sql = match ranking {
        Ranking::Units => TOP_BY_UNITS,
        Ranking::Revenue => TOP_BY_REVENUE,
    };
    diesel::sql_query(sql)
        .bind::<Text, _>(currency)
        .bind::<Timestamptz, _>(start)
        .bind::<Timestamptz, _>(end)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await
}
