//! Argon2id under a memory budget.
//!
//! Every Argon2id hash or verification takes its memory cost (19 MiB with the parameters
//! identity uses) for as long as it runs. Unbounded, a burst of logins multiplies that by the
//! number of callers: 40 at once took a release identity past 1.9 GiB, and a pod limited to
//! 256 MiB is killed by the first burst. So hashes run under a semaphore with
//! `budget / per-hash memory` permits (at least one). A caller that finds every permit taken
//! queues, but only for as long as its gRPC deadline leaves room to hash and answer, and never
//! longer than the configured maximum wait; when the queue ahead of it would not drain in
//! time it is refused at once with RESOURCE_EXHAUSTED and a retry delay (a `google.rpc.RetryInfo`
//! detail and `retry-after` metadata), instead of waiting for a deadline it cannot meet.
//!
//! The permit travels into the blocking thread that hashes: a caller that gives up (deadline,
//! cancellation) does not free the permit while its hash is still running and holding memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::tokens;

/// Memory one Argon2id hash or verification takes with identity's parameters, in MiB
/// (`m_cost` of 19,456 KiB, the argon2 crate's and OWASP's default).
pub const HASH_MEMORY_MIB: usize = (argon2::Params::DEFAULT_M_COST as usize).div_ceil(1024);

/// Default `MERCATO_IDENTITY_HASH_MEMORY_MIB`: six hashes at once, about 114 MiB, which with
/// identity's ~17 MiB at idle fits the 256 MiB limit of the Kubernetes manifests with room
/// to spare.
pub const DEFAULT_MEMORY_BUDGET_MIB: usize = 128;

/// Default `MERCATO_IDENTITY_HASH_MAX_WAIT_MS`.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(3000);

/// `ErrorInfo.reason` of a refused hash.
pub const BUSY_REASON: &str = "PASSWORD_HASHING_BUSY";

/// How many hashes may run at once within `budget_mib`: at least one, so a budget below one
/// hash's memory slows logins down instead of refusing all of them.
pub fn permits_for_budget(budget_mib: usize) -> usize {
    (budget_mib / HASH_MEMORY_MIB).max(1)
}

/// The limits of [`Hasher`] (identity's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLimits {
    /// Memory that concurrent hashes may take together, in MiB
    /// (`MERCATO_IDENTITY_HASH_MEMORY_MIB`, default 128).
    pub memory_budget_mib: usize,
    /// Longest a request queues for a permit, whatever its deadline
    /// (`MERCATO_IDENTITY_HASH_MAX_WAIT_MS`, default 3000).
    pub max_wait: Duration,
}

impl Default for HashLimits {
    fn default() -> Self {
        Self {
            memory_budget_mib: DEFAULT_MEMORY_BUDGET_MIB,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// Hashing could not be done now or at all.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every permit is taken and the queue would not drain within the request's time.
    #[error("password hashing is saturated; retry in {retry_after:?}")]
    Busy {
        /// When a retry has a fair chance of a permit.
        retry_after: Duration,
    },
    /// The hash itself failed (never for valid input) or its thread died.
    #[error(transparent)]
    Failed(#[from] tokens::HashError),
}

impl HashError {
    /// RESOURCE_EXHAUSTED with `ErrorInfo` and `RetryInfo` plus `retry-after` (whole seconds,
    /// rounded up; what the gateway turns into HTTP `Retry-After`) when busy; INTERNAL
    /// otherwise.
    pub fn into_status(self) -> Status {
        match self {
            Self::Busy { retry_after } => {
                let millis = u64::try_from(retry_after.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                let mut details = ErrorDetails::new();
                details.set_error_info(BUSY_REASON, mercato_kernel::error::DOMAIN, HashMap::new());
                details.set_retry_info(Some(Duration::from_millis(millis)));
                let mut status = Status::with_error_details(
                    Code::ResourceExhausted,
                    format!("too many sign-ins at once; retry in {millis} ms"),
                    details,
                );
                if let Ok(value) = millis.div_ceil(1000).to_string().parse() {
                    status.metadata_mut().insert("retry-after", value);
                }
                status
            }
            Self::Failed(err) => mercato_kernel::error::internal(err),
        }
    }
}

/// Runs Argon2id hashes within a memory budget; cheap to clone (one shared semaphore).
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Arc<Semaphore>,
    size: usize,
    max_wait: Duration,
    /// Requests queued for a permit now.
    waiting: AtomicUsize,
    /// Moving average of a hash's wall time, in µs (0 until the first hash).
    mean_hash_micros: AtomicU64,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("permits", &self.inner.size)
            .field("max_wait", &self.inner.max_wait)
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher allowing as many concurrent hashes as `limits` has memory for.
    pub fn new(limits: HashLimits) -> Self {
        let size = permits_for_budget(limits.memory_budget_mib);
        tracing::info!(
            permits = size,
            memory_budget_mib = limits.memory_budget_mib,
            "password hashing bounded"
        );
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(size)),
                size,
                max_wait: limits.max_wait,
                waiting: AtomicUsize::new(0),
                mean_hash_micros: AtomicU64::new(0),
            }),
        }
    }

    /// How many hashes may run at once.
    pub fn permits(&self) -> usize {
        self.inner.size
    }

    /// Argon2id hash (PHC string) of `password`.
    pub async fn hash(&self, password: Vec<u8>) -> Result<String, HashError> {
        let permit = self.permit().await?;
        Ok(self
            .run(permit, move || tokens::hash_password(&password))
            .await??)
    }

    /// Whether `password` matches the stored PHC `hash`; with `None` (unknown user) a dummy
    /// verification runs all the same, so neither time nor queueing reveals which e-mails
    /// exist.
    pub async fn verify(&self, password: Vec<u8>, hash: Option<String>) -> Result<bool, HashError> {
        let permit = self.permit().await?;
        self.run(permit, move || {
            tokens::verify_password(&password, hash.as_deref())
        })
        .await
    }

    /// Runs `work` on a blocking thread that holds `permit` until it is done.
    async fn run<T: Send + 'static>(
        &self,
        permit: OwnedSemaphorePermit,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let out = work();
            inner.record(started.elapsed());
            drop(permit);
            out
        })
        .await
        .map_err(|e| HashError::Failed(tokens::HashError::new(e)))
    }

    /// A permit now, or after queueing as long as the request can afford.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, HashError> {
        let inner = &self.inner;
        if let Ok(permit) = Arc::clone(&inner.permits).try_acquire_owned() {
            return Ok(permit);
        }
        let hash_time = inner.mean_hash_time();
        let allowed = queue_allowance(
            inner.max_wait,
            mercato_kernel::client::remaining(),
            hash_time,
        );
        let ahead = inner.waiting.fetch_add(1, Ordering::SeqCst);
        let _queued = Queued(&inner.waiting);
        let expected = expected_wait(ahead, inner.size, hash_time);
        if expected > allowed {
            return Err(HashError::Busy {
                retry_after: expected,
            });
        }
        match tokio::time::timeout(allowed, Arc::clone(&inner.permits).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a timeout is the only real outcome here.
            Ok(Err(_)) | Err(_) => Err(HashError::Busy {
                retry_after: expected_wait(
                    inner.waiting.load(Ordering::SeqCst),
                    inner.size,
                    inner.mean_hash_time(),
                ),
            }),
        }
    }
}

impl Inner {
    fn mean_hash_time(&self) -> Duration {
        Duration::from_micros(self.mean_hash_micros.load(Ordering::Relaxed))
    }

    /// Folds one hash's wall time into the moving average (weight 1/8).
    fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let old = self.mean_hash_micros.load(Ordering::Relaxed);
        let new = if old == 0 {
            took
        } else {
            old - old / 8 + took / 8
        };
        self.mean_hash_micros.store(new, Ordering::Relaxed);
    }
}

/// Decrements the queue length when a waiter leaves, however it leaves.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long a request may queue: `max_wait`, shortened so that what is left of its deadline
/// still covers the hash itself (twice its usual time, as the machine may be busier than
/// on average) and the answer.
fn queue_allowance(
    max_wait: Duration,
    remaining: Option<Duration>,
    hash_time: Duration,
) -> Duration {
    match remaining {
        Some(left) => left.saturating_sub(hash_time * 2).min(max_wait),
        None => max_wait,
    }
}

/// Expected wait for a permit with `ahead` requests already queued for `permits` permits, each
/// hash taking `hash_time`: the queue moves one round of `permits` per hash.
fn expected_wait(ahead: usize, permits: usize, hash_time: Duration) -> Duration {
    let rounds = u32::try_from(ahead / permits.max(1) + 1).unwrap_or(u32::MAX);
    hash_time.saturating_mul(rounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_follow_the_memory_budget_and_never_drop_to_zero() {
        assert_eq!(HASH_MEMORY_MIB, 19);
        assert_eq!(permits_for_budget(DEFAULT_MEMORY_BUDGET_MIB), 6);
        assert_eq!(permits_for_budget(19), 1);
        assert_eq!(permits_for_budget(37), 1);
        assert_eq!(permits_for_budget(38), 2);
        assert_eq!(permits_for_budget(0), 1);
        assert_eq!(permits_for_budget(1900), 100);
    }

    #[test]
    fn the_default_budget_fits_the_kubernetes_memory_limit() {
        let hashing = permits_for_budget(DEFAULT_MEMORY_BUDGET_MIB) * HASH_MEMORY_MIB;
        // 256 MiB limit; identity idles at ~17 MiB (docs/benchmarks.md); keep half the rest
        // for connections, buffers and the allocator.
        assert!(hashing + 17 < 256 * 3 / 4, "{hashing} MiB of hashes");
    }

    #[test]
    fn a_request_queues_no_longer_than_its_deadline_leaves_for_hashing() {
        let hash = Duration::from_millis(100);
        let max = Duration::from_secs(3);
        assert_eq!(queue_allowance(max, None, hash), max);
        assert_eq!(
            queue_allowance(max, Some(Duration::from_secs(1)), hash),
            Duration::from_millis(800)
        );
        assert_eq!(
            queue_allowance(max, Some(Duration::from_secs(60)), hash),
            max
        );
        assert_eq!(
            queue_allowance(max, Some(Duration::from_millis(150)), hash),
            Duration::ZERO
        );
    }

    #[test]
    fn the_expected_wait_grows_by_one_hash_per_round_of_permits() {
        let hash = Duration::from_millis(40);
        assert_eq!(expected_wait(0, 6, hash), hash);
        assert_eq!(expected_wait(5, 6, hash), hash);
        assert_eq!(expected_wait(6, 6, hash), hash * 2);
        assert_eq!(expected_wait(59, 6, hash), hash * 10);
        assert_eq!(expected_wait(3, 0, hash), hash * 4);
    }

    #[test]
    fn a_busy_refusal_is_resource_exhausted_with_a_retry_delay() {
        let status = HashError::Busy {
            retry_after: Duration::from_millis(1200),
        }
        .into_status();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, BUSY_REASON);
        assert_eq!(
            details.retry_info().unwrap().retry_delay,
            Some(Duration::from_millis(1200))
        );
        assert_eq!(status.metadata().get("retry-after").unwrap(), "2");
    }

    #[tokio::test]
    async fn hashes_beyond_the_permits_wait_for_one_and_a_hash_verifies() {
        let hasher = Hasher::new(HashLimits {
            memory_budget_mib: 2 * HASH_MEMORY_MIB,
            max_wait: Duration::from_secs(600),
        });
        assert_eq!(hasher.permits(), 2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (hasher, running, peak) = (hasher.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    let permit = hasher.permit().await.unwrap();
                    hasher
                        .run(permit, move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(30));
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                        .unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(
            peak.load(Ordering::SeqCst) <= 2,
            "more hashes ran at once than permits"
        );
        let hash = hasher
            .hash(b"correct horse battery".to_vec())
            .await
            .unwrap();
        assert!(
            hasher
                .verify(b"correct horse battery".to_vec(), Some(hash))
                .await
                .unwrap()
        );
    }
}
