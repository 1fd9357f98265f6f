//! A host's database: the pool handed out at once, the migrations run in the background, and
//! the start-up jobs that run once they are.

use diesel_migrations::EmbeddedMigrations;

use super::{DatabaseState, ServeError, ServiceHost};
use crate::db::DbPool;
use crate::health::{Check, Dependency};
use crate::shutdown::ShutdownSignal;
use crate::startup::{self, Gate, JobFuture};

/// The service's database as the host prepares it: the pool, whether it is migrated, and
/// what runs once it is.
pub struct Database {
    pub(super) pool: DbPool,
    pub(super) migrated: Gate,
    jobs: Vec<(&'static str, StartupJob)>,
}

/// Work a service does once its database is ready, before it reports ready (seed data,
/// accounts); retried until it succeeds, so it must be idempotent.
type StartupJob = Box<dyn Fn(DbPool) -> JobFuture + Send + Sync>;

impl DatabaseState for Database {
    fn pool(&self) -> Option<DbPool> {
        Some(self.pool.clone())
    }

    async fn prepared(self, signal: ShutdownSignal) -> bool {
        if !self.migrated.opened_before(&signal).await {
            return false;
        }
        for (name, job) in &self.jobs {
            if startup::retry(name, &signal, || job(self.pool.clone()))
                .await
                .is_none()
            {
                return false;
            }
        }
        true
    }
}

impl ServiceHost {
    /// Adds the service's database, a critical dependency, and returns its pool at once,
    /// while the database is created and migrated in the background, retried with back-off
    /// until Postgres answers (the service says NOT_SERVING meanwhile, see
    /// [`crate::startup`]).
    pub async fn with_database(
        self,
        migrations: EmbeddedMigrations,
    ) -> Result<(ServiceHost<Database>, DbPool), ServeError> {
        let url = self.config.database.require_url()?.clone();
        let pool = crate::db::pool(url.expose(), self.config.database.pool_size)?;
        let migrations = crate::db::Migrations::from(migrations);
        let (opener, migrated) = startup::gate();
        let signal = self.signal.clone();
        tokio::spawn(async move {
            let prepared = startup::retry("database", &signal, || {
                crate::db::prepare(url.expose(), migrations.clone())
            });
            if prepared.await.is_some() {
                opener.open();
            }
        });
        let mut host = ServiceHost {
            config: self.config,
            database: Database {
                pool: pool.clone(),
                migrated,
                jobs: Vec::new(),
            },
            #[cfg(feature = "events")]
            events: self.events,
            verifier: self.verifier,
            checks: self.checks,
            started: self.started,
            trigger: self.trigger,
            signal: self.signal,
        };
        host.checks.push(Check {
            name: "postgres",
            dependency: Dependency::Postgres(pool.clone()),
            critical: true,
        });
        Ok((host, pool))
    }
}

impl ServiceHost<Database> {
    /// Runs `job` once the database is migrated and before the service reports ready,
    /// retrying it with back-off until it succeeds (it must be idempotent: every replica
    /// runs it, at every start).
    pub fn on_database_ready<F, Fut>(&mut self, name: &'static str, job: F)
    where
        F: Fn(DbPool) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), startup::JobError>> + Send + 'static,
    {
        self.database
            .jobs
            .push((name, Box::new(move |db| Box::pin(job(db)) as JobFuture)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::config;
    use super::*;
    use crate::config::ConfigError;

    #[tokio::test]
    async fn a_database_without_its_url_is_a_configuration_error() {
        let Err(err) = ServiceHost::new(config(&[]))
            .with_database(crate::db::KERNEL_MIGRATIONS)
            .await
        else {
            panic!("a host without DATABASE_URL has no database");
        };
        assert!(
            matches!(err, ServeError::Config(ConfigError::Missing(_))),
            "{err}"
        );
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }
}
