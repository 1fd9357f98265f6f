//! Start-up that waits for its dependencies instead of exiting: a replica scheduled before
//! Postgres answers binds its ports, says NOT_SERVING, and keeps preparing its database with
//! back-off until it can; then it runs its start-up jobs (seed data, accounts) and opens.
//!
//! Kubernetes starts pods in any order and restarts Postgres under running services; a
//! service that exits when its database is not there yet turns that into a crash loop whose
//! back-off outlasts the outage. Waiting keeps `/livez` answering (no restart) while
//! `/readyz` and gRPC health say the truth.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::{Request, Response};
use tokio::sync::watch;
use tonic::body::Body;

use crate::shutdown::ShutdownSignal;

/// The first pause after a failed attempt; doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest pause between attempts: a dependency that comes back is noticed within it.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether a step of start-up is done, shared by the tasks that wait for it.
#[derive(Clone, Debug)]
pub struct Gate(watch::Receiver<bool>);

/// Opens its [`Gate`]s, once.
#[derive(Debug)]
pub struct Opener(watch::Sender<bool>);

/// A closed gate and what opens it.
pub fn gate() -> (Opener, Gate) {
    let (tx, rx) = watch::channel(false);
    (Opener(tx), Gate(rx))
}

impl Gate {
    /// A gate that is open from the start (a service with nothing to prepare).
    pub fn open() -> Self {
        Self(watch::channel(true).1)
    }

    /// Whether the step is done.
    pub fn is_open(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the step is done; never returns if its opener is dropped unopened (the
    /// service is stopping), so callers select it against their shutdown signal.
    pub async fn opened(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|open| *open).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Gate {
    /// Waits until the step is done or `shutdown` is requested, whichever comes first; true
    /// when the step is done (the caller goes on), false when the service is stopping.
    pub async fn opened_before(&self, shutdown: &ShutdownSignal) -> bool {
        tokio::select! {
            () = self.opened() => true,
            () = shutdown.clone().requested() => false,
        }
    }
}

impl Opener {
    /// Opens every gate cloned from this one.
    pub fn open(self) {
        self.0.send_replace(true);
    }
}

/// A start-up job's failure, logged and retried.
pub type JobError = Box<dyn std::error::Error + Send + Sync>;
/// A start-up job's run.
pub type JobFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;

/// Runs `attempt` until it succeeds, pausing with doubling back-off after each failure;
/// `None` when shutdown is requested first.
pub async fn retry<T, E, F, Fut>(what: &str, shutdown: &ShutdownSignal, mut attempt: F) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = FIRST_BACKOFF;
    for tries in 1u32.. {
        let result = tokio::select! {
            result = attempt() => result,
            () = shutdown.clone().requested() => return None,
        };
        match result {
            Ok(value) => {
                if tries > 1 {
                    tracing::info!(step = what, tries, "start-up step done");
                }
                return Some(value);
            }
            Err(err) => {
                tracing::warn!(step = what, tries, error = %err, retry_in = ?backoff, "start-up step failed, retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.clone().requested() => return None,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    None
}

/// Refuses calls with UNAVAILABLE until its gate opens, so a replica whose database is not
/// ready yet answers a caller that ignored its health (a client balancing over every
/// address) with a clear, retryable status instead of an error from a missing table.
/// Health and reflection always pass.
#[derive(Clone)]
pub struct StartupGate<S> {
    inner: S,
    gate: Gate,
}

/// Layer of [`StartupGate`].
#[derive(Clone)]
pub struct StartupGateLayer(pub Gate);

impl<S> tower::Layer<S> for StartupGateLayer {
    type Service = StartupGate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StartupGate {
            inner,
            gate: self.0.clone(),
        }
    }
}

/// Paths served while the service is starting.
fn always_served(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

impl<S> tower::Service<Request<Body>> for StartupGate<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if self.gate.is_open() || always_served(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        let status =
            tonic::Status::unavailable("starting: the service's database is not ready yet");
        Box::pin(std::future::ready(Ok(status.into_http())))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_gate_opens_for_every_clone() {
        let (opener, gate) = gate();
        let waiter = gate.clone();
        let waiting = tokio::spawn(async move { waiter.opened().await });
        assert!(!gate.is_open());
        opener.open();
        waiting.await.unwrap();
        assert!(gate.is_open());
    }

    #[tokio::test]
    async fn waiting_for_a_gate_ends_with_shutdown() {
        let (opener, gate) = gate();
        let (trigger, signal) = crate::shutdown::channel();
        trigger.trigger();
        assert!(!gate.opened_before(&signal).await, "stopping, not opened");
        opener.open();
        let (_trigger, running) = crate::shutdown::channel();
        assert!(gate.opened_before(&running).await);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_backs_off_until_the_attempt_succeeds() {
        let (_trigger, signal) = crate::shutdown::channel();
        let tries = Arc::new(AtomicU32::new(0));
        let started = tokio::time::Instant::now();
        let counted = tries.clone();
        let value = retry("test", &signal, move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move { if n < 5 { Err("down") } else { Ok(n) } }
        })
        .await;
        assert_eq!(value, Some(5));
        // 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s of back-off before the sixth attempt.
        assert_eq!(started.elapsed(), Duration::from_millis(6200));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_on_shutdown() {
        let (trigger, signal) = crate::shutdown::channel();
        let stopped =
            tokio::spawn(
                async move { retry("test", &signal, || async { Err::<(), _>("down") }).await },
            );
        tokio::time::sleep(Duration::from_secs(30)).await;
        trigger.trigger();
        assert_eq!(stopped.await.unwrap(), None);
    }

    #[test]
    fn health_and_reflection_pass_while_starting() {
        assert!(always_served("/grpc.health.v1.Health/Check"));
        assert!(always_served(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!always_served(
            "/mercato.catalog.v1.CatalogService/GetProduct"
        ));
    }
}
