//! Finishes sagas nobody is driving: after a crash or restart, when a request's deadline
//! cut its checkout short, or when a step was postponed because a peer was down.

use std::time::Duration;

use futures::StreamExt as _;
use mercato_kernel::db::{DbPool, PoolError};
use mercato_kernel::shutdown::ShutdownSignal;
use mercato_kernel::startup::Gate;

use crate::saga::Saga;
use crate::store;

/// Sagas resumed per sweep.
const BATCH: i64 = 50;
/// Sagas driven at once by the sweep.
const PARALLEL: usize = 8;

/// Sweeps once the service has started (its database migrated) and then every `interval`
/// until shutdown.
pub fn spawn(db: DbPool, saga: Saga, interval: Duration, started: Gate, shutdown: ShutdownSignal) {
    tokio::spawn(async move {
        if !started.opened_before(&shutdown).await {
            return;
        }
        loop {
            if let Err(err) = sweep(&db, &saga).await {
                tracing::warn!(error = %err, "saga recovery sweep failed");
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.clone().requested() => break,
            }
        }
    });
}

/// Why a sweep could not list the orphaned sagas (it retries at the next interval).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// No connection could be had.
    #[error("no database connection: {0}")]
    Pool(#[from] PoolError),
    /// The query failed.
    #[error("listing orphaned sagas: {0}")]
    Query(#[from] diesel::result::Error),
}

/// Resumes every orphaned saga once; returns how many were taken.
pub async fn sweep(db: &DbPool, saga: &Saga) -> Result<usize, SweepError> {
    let ids = {
        let mut conn = db.get().await?;
        store::orphaned(&mut conn, BATCH).await?
    };
    let taken = futures::stream::iter(ids)
        .map(|id| {
            let (db, saga) = (db.clone(), saga.clone());
            async move {
            let mut conn = db.get().await.ok()?;
            let order = match store::take_lease(&mut conn, id, saga.lease_until()).await {
                Ok(taken) => taken?,
                // Said, not skipped: a row that cannot be read (an unknown step or status)
                // would otherwise be retried unseen after every lease.
                Err(err) => {
                    tracing::warn!(order_id = %id, error = %err, "saga lease not taken");
                    return None;
                }
            };
            drop(conn);
            tracing::info!(order_id = %id, step = order.order.step().as_str(), "resuming saga");
            if let Err(status) = saga.drive(order, None).await {
                tracing::warn!(order_id = %id, error = %status.message(), "resumed saga stopped");
            }
            Some(())
            }
        })
        .buffer_unordered(PARALLEL)
        .filter_map(std::future::ready)
        .count()
        .await;
    Ok(taken)
}
