//! The notification queries, each on the caller's connection (and transaction).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::notifications;

/// A stored notification.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = notifications)]
pub struct NotificationRow {
    pub id: Uuid,
    pub user_id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub order_id: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// A notification to write.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = notifications)]
pub struct NewNotification<'a> {
    pub id: Uuid,
    pub user_id: &'a str,
    pub kind: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub order_id: &'a str,
    pub created_at: DateTime<Utc>,
}

/// Writes `new` unless a notification with its id exists; the row when it was written.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: &NewNotification<'_>,
) -> QueryResult<Option<NotificationRow>> {
    diesel::insert_into(notifications::table)
        .values(new)
        .on_conflict(notifications::id)
        .do_nothing()
        .returning(NotificationRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Where a page of a user's list starts: after this (created_at, id), going back in time.
pub type Cursor = (DateTime<Utc>, Uuid);

/// One page of `user_id`'s notifications, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    user_id: &str,
    unread_only: bool,
    after: Option<Cursor>,
    limit: i64,
) -> QueryResult<Vec<NotificationRow>> {
    let mut query = notifications::table
        .filter(notifications::user_id.eq(user_id))
        .select(NotificationRow::as_select())
        .order((notifications::created_at.desc(), notifications::id.desc()))
        .limit(limit)
        .into_boxed();
    if unread_only {
        query = query.filter(notifications::read_at.is_null());
    }
    if let Some((at, id)) = after {
        query = query.filter(
            notifications::created_at
                .lt(at)
                .or(notifications::created_at
                    .eq(at)
                    .and(notifications::id.lt(id))),
        );
    }
    query.load(conn).await
}

/// How many of `user_id`'s notifications are unread.
pub async fn unread_count(conn: &mut AsyncPgConnection, user_id: &str) -> QueryResult<i64> {
    notifications::table
        .filter(notifications::user_id.eq(user_id))
        .filter(notifications::read_at.is_null())
        .count()
        .get_result(conn)
        .await
}

/// Marks `user_id`'s notification `id` read (keeping the first read time when it already
/// was); `None` when the user has no such notification.
pub async fn mark_read(
    conn: &mut AsyncPgConnection,
    user_id: &str,
    id: Uuid,
) -> QueryResult<Option<NotificationRow>> {
    // COALESCE keeps the first read time, so marking again changes nothing; one statement,
    // so concurrent marks cannot race.
    diesel::update(
        notifications::table
            .filter(notifications::id.eq(id))
            .filter(notifications::user_id.eq(user_id)),
    )
    .set(notifications::read_at.eq(diesel::dsl::sql::<
        diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
    >("COALESCE(read_at, now())")))
    .returning(NotificationRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}
