//! Dependency health, checked in the background and published twice: as `grpc.health.v1`
//! serving status (for gRPC probes and clients) and as the admin port's `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::RwLock;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

#[cfg(feature = "database")]
use crate::db::DbPool;
#[cfg(feature = "redis")]
use crate::redis::RedisPool;
use crate::shutdown::ShutdownSignal;
use crate::startup::Gate;

/// How often dependencies are probed.
const INTERVAL: Duration = Duration::from_secs(5);
/// A probe slower than this counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Something a service depends on.
#[derive(Clone)]
pub enum Dependency {
    /// The service's database.
    #[cfg(feature = "database")]
    Postgres(DbPool),
    /// The cache.
    #[cfg(feature = "redis")]
    Redis(RedisPool),
    /// The event bus.
    #[cfg(feature = "events")]
    Nats(async_nats::Client),
}

/// One dependency and whether the service can serve without it.
#[derive(Clone)]
pub struct Check {
    /// Shown in `/readyz`.
    pub name: &'static str,
    /// What to probe.
    pub dependency: Dependency,
    /// A critical dependency that is down makes the service NOT_SERVING; a soft one (a cache
    /// with a database fallback, an event bus behind an outbox) only degrades it.
    pub critical: bool,
}

impl Dependency {
    async fn probe(&self) -> bool {
        let probe = async {
            // By value: with no storage feature the enum is empty, and only a match on the
            // value itself (not a reference) may then have no arms.
            match *self {
                #[cfg(feature = "database")]
                Dependency::Postgres(ref pool) => crate::db::ping(pool).await,
                #[cfg(feature = "redis")]
                Dependency::Redis(ref pool) => crate::redis::ping(pool).await,
                #[cfg(feature = "events")]
                Dependency::Nats(ref client) => {
                    client.connection_state() == async_nats::connection::State::Connected
                }
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, probe)
            .await
            .unwrap_or(false)
    }
}

/// The latest result of every check.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// True when the service has started, every critical dependency is up and the service is
    /// not draining.
    pub ready: bool,
    /// False while the service is still preparing its database and start-up jobs.
    pub started: bool,
    /// Per dependency: up or down.
    pub checks: Vec<(String, bool)>,
}

/// Shared health state of a service.
#[derive(Clone)]
pub struct Health {
    checks: Arc<Vec<Check>>,
    started: Gate,
    report: Arc<RwLock<Report>>,
    draining: Arc<AtomicBool>,
}

impl Health {
    /// A health state over `checks`; not ready until the first probe round finds `started`
    /// open.
    pub fn new(checks: Vec<Check>, started: Gate) -> Self {
        Self {
            checks: Arc::new(checks),
            started,
            report: Arc::default(),
            draining: Arc::default(),
        }
    }

    /// The latest report.
    pub async fn report(&self) -> Report {
        self.report.read().await.clone()
    }

    /// Probes every dependency once and publishes the result.
    pub async fn refresh(&self, reporter: &HealthReporter, services: &[String]) {
        let mut checks = Vec::with_capacity(self.checks.len());
        let started = self.started.is_open();
        let mut ready = started && !self.draining.load(Ordering::Relaxed);
        for check in self.checks.iter() {
            let up = check.dependency.probe().await;
            if !up {
                tracing::warn!(
                    dependency = check.name,
                    critical = check.critical,
                    "dependency down"
                );
                ready &= !check.critical;
            }
            checks.push((check.name.to_owned(), up));
        }
        let status = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
        for service in services {
            reporter.set_service_status(service, status).await;
        }
        *self.report.write().await = Report {
            ready,
            started,
            checks,
        };
    }

    /// Probes on an interval until shutdown, then reports NOT_SERVING so load balancers stop
    /// sending traffic while requests drain.
    pub fn spawn(self, reporter: HealthReporter, services: Vec<String>, shutdown: ShutdownSignal) {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(INTERVAL);
            let stop = shutdown.requested();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = ticker.tick() => self.refresh(&reporter, &services).await,
                    _ = &mut stop => break,
                }
            }
            self.draining.store(true, Ordering::Relaxed);
            self.refresh(&reporter, &services).await;
        });
    }
}
