//! Review's queries, each on the caller's connection (and transaction).

use chrono::{DateTime, Utc};
use diesel::dsl::{count_star, exists, now};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::{NewReview, OrderFact, PurchaseStatus};
use crate::schema::{authors, purchases, reviews};

/// A stored review.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = reviews)]
pub struct ReviewRow {
    pub id: Uuid,
    pub product_id: Uuid,
    pub user_id: Uuid,
    pub author_name: String,
    pub rating: i32,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// A review could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// The author has already reviewed the product.
    #[error("already reviewed")]
    Duplicate,
    /// Anything else.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Whether `user_id` holds a purchase of `product_id` that was confirmed (or shipped) and not
/// cancelled.
pub async fn is_verified_buyer(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    product_id: Uuid,
) -> QueryResult<bool> {
    diesel::select(exists(
        purchases::table
            .filter(purchases::user_id.eq(user_id))
            .filter(purchases::product_id.eq(product_id))
            .filter(purchases::status.ne(PurchaseStatus::Cancelled.as_str())),
    ))
    .get_result(conn)
    .await
}

/// The display name identity announced for `user_id`, if any event said so yet.
pub async fn author_name(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<String> {
    authors::table
        .find(user_id)
        .select(authors::display_name)
        .first(conn)
        .await
        .optional()
        .map(Option::unwrap_or_default)
}

/// Stores a review by `user_id`.
pub async fn insert_review(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    author_name: &str,
    review: &NewReview,
) -> Result<ReviewRow, InsertError> {
    use diesel::result::{DatabaseErrorKind, Error};
    diesel::insert_into(reviews::table)
        .values((
            reviews::id.eq(Uuid::now_v7()),
            reviews::product_id.eq(review.product_id),
            reviews::user_id.eq(user_id),
            reviews::author_name.eq(author_name),
            reviews::rating.eq(review.rating),
            reviews::title.eq(&review.title),
            reviews::body.eq(&review.body),
        ))
        .returning(ReviewRow::as_returning())
        .get_result(conn)
        .await
        .map_err(|err| match err {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => InsertError::Duplicate,
            other => InsertError::Db(other),
        })
}

/// One page of a product's reviews, newest first, starting after `after`
/// (created_at, id) when given.
pub async fn list_reviews(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<ReviewRow>> {
    let mut query = reviews::table
        .filter(reviews::product_id.eq(product_id))
        .select(ReviewRow::as_select())
        .into_boxed();
    if let Some((created_at, id)) = after {
        query = query.filter(
            reviews::created_at
                .lt(created_at)
                .or(reviews::created_at.eq(created_at).and(reviews::id.lt(id))),
        );
    }
    query
        .order((reviews::created_at.desc(), reviews::id.desc()))
        .limit(limit)
        .load(conn)
        .await
}

/// A product's reviews counted per rating, in one statement (one consistent snapshot, however
/// many creates and deletes run meanwhile).
pub async fn rating_counts(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
) -> QueryResult<Vec<(i32, i64)>> {
    reviews::table
        .filter(reviews::product_id.eq(product_id))
        .group_by(reviews::rating)
        .select((reviews::rating, count_star()))
        .load(conn)
        .await
}

/// What became of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The review is gone.
    Yes,
    /// There is no such review.
    NotFound,
    /// The review exists but belongs to someone else.
    NotYours,
}

/// Deletes review `id`: any review when `by` is `None` (an administrator), else only one
/// written by `by`. Checked and deleted in one statement, so no concurrent change slips in
/// between.
pub async fn delete_review(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    by: Option<Uuid>,
) -> QueryResult<Deleted> {
    let deleted = match by {
        None => {
            diesel::delete(reviews::table.find(id))
                .execute(conn)
                .await?
        }
        Some(author) => {
            diesel::delete(reviews::table.find(id).filter(reviews::user_id.eq(author)))
                .execute(conn)
                .await?
        }
    };
    if deleted > 0 {
        return Ok(Deleted::Yes);
    }
    let exists: bool = diesel::select(exists(reviews::table.find(id)))
        .get_result(conn)
        .await?;
    Ok(if exists {
        Deleted::NotYours
    } else {
        Deleted::NotFound
    })
}

/// Records what an order event says for each of its products, unless a newer event of the
/// same order was applied already (then the row stays as it is: events may arrive out of
/// order, and the highest version is the truth).
pub async fn record_order(conn: &mut AsyncPgConnection, fact: &OrderFact) -> QueryResult<usize> {
    // The WHERE of ON CONFLICT DO UPDATE comes from this trait, not from `QueryDsl`.
    use diesel::query_dsl::methods::FilterDsl as _;
    if fact.product_ids.is_empty() {
        return Ok(0);
    }
    let rows: Vec<_> = fact
        .product_ids
        .iter()
        .map(|product_id| {
            (
                purchases::order_id.eq(fact.order_id),
                purchases::product_id.eq(*product_id),
                purchases::user_id.eq(fact.user_id),
                purchases::order_version.eq(fact.version),
                purchases::status.eq(fact.status.as_str()),
            )
        })
        .collect();
    diesel::insert_into(purchases::table)
        .values(rows)
        .on_conflict((purchases::order_id, purchases::product_id))
        .do_update()
        .set((
            purchases::user_id.eq(excluded(purchases::user_id)),
            purchases::order_version.eq(excluded(purchases::order_version)),
            purchases::status.eq(excluded(purchases::status)),
            purchases::updated_at.eq(now),
        ))
        .filter(purchases::order_version.lt(excluded(purchases::order_version)))
        .execute(conn)
        .await
}

/// Remembers a user's display name and gives it to their reviews written before it was
/// known (a review keeps the name it was written with otherwise).
pub async fn record_author(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    display_name: &str,
) -> QueryResult<()> {
    diesel::insert_into(authors::table)
        .values((
            authors::user_id.eq(user_id),
            authors::display_name.eq(display_name),
        ))
        .on_conflict(authors::user_id)
        .do_update()
        .set((
            authors::display_name.eq(display_name),
            authors::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    diesel::update(
        reviews::table
            .filter(reviews::user_id.eq(user_id))
            .filter(reviews::author_name.eq("")),
    )
    .set(reviews::author_name.eq(display_name))
    .execute(conn)
    .await?;
    Ok(())
}

/// Empties the projected tables (not the reviews: they are this service's own data).
pub async fn reset_projection(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::delete(purchases::table).execute(conn).await?;
    diesel::delete(authors::table).execute(conn).await?;
    Ok(())
}
