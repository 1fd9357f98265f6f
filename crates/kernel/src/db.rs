//! Postgres through diesel-async: the service's database is created when missing, the
//! kernel's own tables (outbox, processed events) and the service's embedded migrations are
//! applied at start-up (retried until Postgres answers, see [`crate::startup`]), and requests
//! borrow connections from a deadpool pool.

use std::sync::Arc;
use std::time::Duration;

use diesel::QueryableByName;
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::sql_types::Text;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// A pool of connections to the service's own database.
pub type DbPool = Pool<AsyncPgConnection>;
/// A pooled connection.
pub type DbConn = Object<AsyncPgConnection>;
/// Why no pooled connection could be had (the database is down or the pool saturated).
pub type PoolError = diesel_async::pooled_connection::deadpool::PoolError;

/// Tables every service has: the transactional outbox and the consumer's processed events.
pub const KERNEL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `DATABASE_URL` is not a URL.
    #[error("invalid database URL: {0}")]
    InvalidUrl(#[from] url::ParseError),
    /// `DATABASE_URL` names a database a service may not create: `CREATE DATABASE` takes no
    /// bind parameters, so only plain names are spliced into it.
    #[error("invalid database URL: unsupported database name {0:?}")]
    UnsupportedName(String),
    /// Connecting or querying failed.
    #[error("postgres: {0}")]
    Connection(#[from] diesel::ConnectionError),
    /// A query failed.
    #[error("postgres: {0}")]
    Query(#[from] diesel::result::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The blocking task running the migrations panicked or was cancelled.
    #[error("migration failed: {0}")]
    MigrationTask(#[from] tokio::task::JoinError),
    /// The pool could not be built.
    #[error("pool: {0}")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::BuildError),
    /// Postgres accepted the connection but did not answer in time.
    #[error("postgres did not answer within {0:?}")]
    Unanswered(Duration),
}

/// A pool of `size` connections to the database at `url`. Nothing connects yet: connections
/// open on first use, so a pool can be had before Postgres answers (see
/// [`crate::startup`]); [`prepare`] readies the database itself.
pub fn pool(url: &str, size: usize) -> Result<DbPool, DbError> {
    database_name(url)?;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(DbError::from)
}

/// A service's embedded migrations, cheap to clone into each attempt to apply them.
#[derive(Clone)]
pub struct Migrations(Arc<EmbeddedMigrations>);

impl From<EmbeddedMigrations> for Migrations {
    fn from(migrations: EmbeddedMigrations) -> Self {
        Self(Arc::new(migrations))
    }
}

impl MigrationSource<Pg> for Migrations {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<Pg>>>> {
        self.0.migrations()
    }
}

/// Creates the database if needed and applies the pending migrations.
pub async fn prepare(url: &str, migrations: Migrations) -> Result<(), DbError> {
    // A server that accepts but never answers must not stall start-up for good.
    const ANSWER_WITHIN: Duration = Duration::from_secs(10);
    tokio::time::timeout(ANSWER_WITHIN, ensure_database(url))
        .await
        .map_err(|_| DbError::Unanswered(ANSWER_WITHIN))??;
    migrate(url, migrations).await
}

/// The database named in `url`, when it is one a service may create: `CREATE DATABASE`
/// takes no bind parameters, so the name is spliced into the statement and must be plain.
fn database_name(url: &str) -> Result<(url::Url, String), DbError> {
    let parsed = url::Url::parse(url)?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(DbError::UnsupportedName(name));
    }
    Ok((parsed, name))
}

/// The advisory lock replicas of a service take to migrate its database one at a time
/// (advisory locks are per database, so one key serves every service).
const MIGRATION_LOCK: i64 = 0x6d65_7263_6174_6f00; // "mercato\0"

/// Applies the kernel's and the service's pending migrations, holding [`MIGRATION_LOCK`]:
/// replicas starting together migrate one after the other, and the later ones find nothing
/// left to do instead of failing on tables the first one just created.
pub async fn migrate(url: &str, migrations: Migrations) -> Result<(), DbError> {
    let url = url.to_owned();
    // diesel's migration harness is synchronous; the wrapper drives the async connection on a
    // blocking thread.
    tokio::task::spawn_blocking(move || {
        let mut conn: AsyncConnectionWrapper<AsyncPgConnection> =
            diesel::Connection::establish(&url)?;
        // Session-level: released by the unlock below, or by Postgres when the connection
        // ends (a replica killed mid-migration holds nobody up).
        diesel::RunQueryDsl::execute(
            diesel::sql_query("SELECT pg_advisory_lock($1)")
                .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK),
            &mut conn,
        )?;
        let migrated = match conn.run_pending_migrations(KERNEL_MIGRATIONS) {
            Ok(_) => conn.run_pending_migrations(migrations).map(drop),
            Err(err) => Err(err),
        }
        .map_err(DbError::Migration);
        diesel::RunQueryDsl::execute(
            diesel::sql_query("SELECT pg_advisory_unlock($1)")
                .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK),
            &mut conn,
        )?;
        migrated
    })
    .await?
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// Creates the database named in `url` when it does not exist (one database per service on
/// a shared server, in development and in the kind deployment alike).
pub async fn ensure_database(url: &str) -> Result<(), DbError> {
    let (parsed, name) = database_name(url)?;
    let mut admin = parsed.clone();
    admin.set_path("/postgres");
    let mut conn = AsyncPgConnection::establish(admin.as_str()).await?;
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<Text, _>(&name)
            .get_result(&mut conn)
            .await?;
    if !found.exists {
        match diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another replica (or test) created it first: "already exists" once it has
            // committed, a unique violation on pg_database while both are creating.
            Err(diesel::result::Error::DatabaseError(kind, info))
                if info.message().contains("already exists")
                    || matches!(kind, diesel::result::DatabaseErrorKind::UniqueViolation) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// Whether a pooled connection answers `SELECT 1`.
pub async fn ping(pool: &DbPool) -> bool {
    match pool.get().await {
        Ok(mut conn) => diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// Drops a database (tests clean up after themselves with it).
pub async fn drop_database(url: &str) -> Result<(), DbError> {
    let parsed = url::Url::parse(url)?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    let mut admin = parsed.clone();
    admin.set_path("/postgres");
    let mut conn = AsyncPgConnection::establish(admin.as_str()).await?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}
