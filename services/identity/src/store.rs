//! Identity's queries. Each takes the connection of the caller's transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{clients, refresh_tokens, users};

/// A stored user.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A stored refresh token.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A stored service account.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: Uuid,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// Inserts a user; `Ok(None)` when the e-mail is taken.
pub async fn insert_user(
    conn: &mut AsyncPgConnection,
    email: &str,
    display_name: &str,
    password_hash: &str,
    roles: &[&str],
) -> QueryResult<Option<UserRow>> {
    let inserted = diesel::insert_into(users::table)
        .values((
            users::id.eq(Uuid::now_v7()),
            users::email.eq(email),
            users::display_name.eq(display_name),
            users::password_hash.eq(password_hash),
            users::roles.eq(roles),
        ))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await;
    match inserted {
        Ok(user) => Ok(Some(user)),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The user with `email` (case-insensitive).
pub async fn user_by_email(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("lower(email) = ")
                .bind::<diesel::sql_types::Text, _>(email.to_lowercase()),
        )
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user with `id`.
pub async fn user_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Replaces a user's roles; `None` when there is no such user.
pub async fn set_roles(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    roles: &[String],
) -> QueryResult<Option<UserRow>> {
    diesel::update(users::table.find(id))
        .set(users::roles.eq(roles))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Stores a new refresh token (hash only).
pub async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    family_id: Uuid,
    user_id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::id.eq(Uuid::now_v7()),
            refresh_tokens::family_id.eq(family_id),
            refresh_tokens::user_id.eq(user_id),
            refresh_tokens::token_hash.eq(token_hash),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The refresh token with this hash, locked for the rest of the transaction so two
/// concurrent rotations of one token cannot both succeed.
pub async fn lock_refresh_token(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<RefreshTokenRow>> {
    refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select(RefreshTokenRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Marks a token spent by rotation.
pub async fn mark_used(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(refresh_tokens::table.find(id))
        .set(refresh_tokens::used_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Revokes every live token of a family.
pub async fn revoke_family(conn: &mut AsyncPgConnection, family_id: Uuid) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}

/// Stores a service account.
pub async fn insert_client(
    conn: &mut AsyncPgConnection,
    name: &str,
    secret_hash: &[u8],
    roles: &[&str],
) -> QueryResult<ClientRow> {
    diesel::insert_into(clients::table)
        .values((
            clients::id.eq(Uuid::now_v7()),
            clients::name.eq(name),
            clients::secret_hash.eq(secret_hash),
            clients::roles.eq(roles),
        ))
        .returning(ClientRow::as_returning())
        .get_result(conn)
        .await
}

/// Stores a service account with a given id, replacing the name, secret and roles of an
/// existing one.
pub async fn upsert_client(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    name: &str,
    secret_hash: &[u8],
    roles: &[&str],
) -> QueryResult<usize> {
    diesel::insert_into(clients::table)
        .values((
            clients::id.eq(id),
            clients::name.eq(name),
            clients::secret_hash.eq(secret_hash),
            clients::roles.eq(roles),
        ))
        .on_conflict(clients::id)
        .do_update()
        .set((
            clients::name.eq(name),
            clients::secret_hash.eq(secret_hash),
            clients::roles.eq(roles),
        ))
        .execute(conn)
        .await
}

/// The service account with `id`.
pub async fn client_by_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<ClientRow>> {
    clients::table
        .find(id)
        .select(ClientRow::as_select())
        .first(conn)
        .await
        .optional()
}
