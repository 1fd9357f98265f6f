//! A circuit breaker per upstream: after `threshold` consecutive calls that found the peer
//! unhealthy, calls fail at once for `open_for` instead of each waiting on a connect attempt;
//! then one probe call is let through, and its outcome closes or re-opens the circuit.
//!
//! Only what says the upstream cannot serve counts: UNAVAILABLE (from the upstream, or from
//! the kernel's guard for a connect failure or connect timeout), and a call that outlives
//! the gateway's own default deadline ([`GatewayDeadline`]). Application errors (NOT_FOUND,
//! INVALID_ARGUMENT, …) and the caller's own choices never count: a client deadline that
//! expires is the client's budget, and bodies the caller got wrong are answered before any
//! call (see [`crate::body`]), so no client can open the circuit for everyone else.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tokio::time::Instant;
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt as _};

/// The instant a call must be answered by when the deadline is the gateway's own
/// (`MERCATO_UNARY_TIMEOUT_MS`, for callers that set none), as a request extension: the
/// breaker enforces it, and a call that outlives it says the upstream is not answering.
#[derive(Debug, Clone, Copy)]
pub struct GatewayDeadline(pub Instant);

/// Consecutive failures that open the circuit.
pub const DEFAULT_THRESHOLD: u32 = 5;
/// How long an open circuit refuses calls before a probe.
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    peer: Arc<str>,
    threshold: u32,
    open_for: Duration,
}

impl BreakerLayer {
    /// A breaker for calls to `peer`.
    pub fn new(peer: &str, threshold: u32, open_for: Duration) -> Self {
        Self {
            peer: peer.into(),
            threshold: threshold.max(1),
            open_for,
        }
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = BreakerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            peer: self.peer.clone(),
            threshold: self.threshold,
            open_for: self.open_for,
            state: Arc::default(),
        }
    }
}

/// See [`BreakerLayer`]. Clones share one circuit.
#[derive(Debug, Clone)]
pub struct BreakerService<S> {
    inner: S,
    peer: Arc<str>,
    threshold: u32,
    open_for: Duration,
    state: Arc<Mutex<State>>,
}

fn unavailable(response: &Response<Body>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|s| s.as_bytes() == b"14")
}

impl<S> BreakerService<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one step.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go out now (and, when half-open, claims the probe).
    fn admit(&self) -> bool {
        let mut state = self.lock();
        match state.open_until {
            None => true,
            Some(until) if Instant::now() < until => false,
            Some(_) if state.probing => false,
            Some(_) => {
                state.probing = true;
                true
            }
        }
    }

    /// A call ended without an outcome (its caller went away): the probe claim, if it held
    /// it, is given back so the next call can probe instead of the circuit staying open.
    fn abandon(&self) {
        self.lock().probing = false;
    }

    fn record(&self, failed: bool) {
        let mut state = self.lock();
        state.probing = false;
        if failed {
            state.failures = state.failures.saturating_add(1);
            if state.failures >= self.threshold {
                if state.open_until.is_none() {
                    tracing::warn!(peer = %self.peer, "circuit opened");
                }
                state.open_until = Some(Instant::now() + self.open_for);
            }
        } else {
            if state.open_until.is_some() {
                tracing::info!(peer = %self.peer, "circuit closed");
            }
            *state = State::default();
        }
    }
}

impl<S> Service<Request<Body>> for BreakerService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if !self.admit() {
            metrics::counter!("mercato_gateway_circuit_rejections_total", "peer" => self.peer.to_string())
                .increment(1);
            let status = mercato_kernel::error::with_reason(
                tonic::Code::Unavailable,
                "CIRCUIT_OPEN",
                format!("{} is unavailable, retry later", self.peer),
            );
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let outcome = Outcome {
            breaker: Some(self.clone()),
        };
        let inner = self.inner.clone();
        let deadline = req.extensions().get::<GatewayDeadline>().copied();
        Box::pin(async move {
            let call = inner.oneshot(req);
            let response = match deadline {
                Some(GatewayDeadline(at)) => match tokio::time::timeout_at(at, call).await {
                    Ok(result) => result,
                    Err(_) => {
                        outcome.record(true);
                        let status =
                            tonic::Status::deadline_exceeded("no answer before the deadline");
                        return Ok(status.into_http());
                    }
                },
                None => call.await,
            };
            let response = match response {
                Ok(response) => response,
                Err(never) => match never {},
            };
            outcome.record(unavailable(&response));
            Ok(response)
        })
    }
}

/// Records a call's outcome once; dropped without one (the caller left), it abandons.
struct Outcome<S> {
    breaker: Option<BreakerService<S>>,
}

impl<S> Outcome<S> {
    fn record(mut self, failed: bool) {
        if let Some(breaker) = self.breaker.take() {
            breaker.record(failed);
        }
    }
}

impl<S> Drop for Outcome<S> {
    fn drop(&mut self) {
        if let Some(breaker) = self.breaker.take() {
            breaker.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    fn request() -> Request<Body> {
        Request::builder()
            .uri("/mercato.catalog.v1.CatalogService/GetProduct")
            .body(Body::empty())
            .unwrap()
    }

    fn code(response: &Response<Body>) -> String {
        response.headers()["grpc-status"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_unavailability_opens_the_circuit_until_a_probe_succeeds() {
        let down = Arc::new(AtomicBool::new(true));
        let calls = Arc::new(AtomicUsize::new(0));
        let (d, c) = (down.clone(), calls.clone());
        let inner = tower::service_fn(move |_req: Request<Body>| {
            c.fetch_add(1, Ordering::SeqCst);
            let status = if d.load(Ordering::SeqCst) {
                tonic::Status::unavailable("connection refused")
            } else {
                tonic::Status::not_found("no such product")
            };
            async move { Ok::<_, Infallible>(status.into_http()) }
        });
        let mut breaker = BreakerLayer::new("catalog", 3, Duration::from_secs(2)).layer(inner);
        for _ in 0..3 {
            assert_eq!(code(&breaker.call(request()).await.unwrap()), "14");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let refused = breaker.call(request()).await.unwrap();
        assert_eq!(code(&refused), "14");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "an open circuit calls nobody"
        );

        // After the pause one probe goes out; the peer is still down: open again.
        tokio::time::advance(Duration::from_secs(3)).await;
        breaker.call(request()).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        breaker.call(request()).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        // Back up: the next probe closes it, and application errors never open it.
        down.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(3)).await;
        for _ in 0..5 {
            assert_eq!(code(&breaker.call(request()).await.unwrap()), "5");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_whose_caller_leaves_lets_the_next_call_probe() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let inner = tower::service_fn(move |_req: Request<Body>| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 1 {
                    // The probe: it hangs until its caller gives up.
                    std::future::pending::<()>().await;
                }
                Ok::<_, Infallible>(tonic::Status::unavailable("down").into_http())
            }
        });
        let mut breaker = BreakerLayer::new("catalog", 1, Duration::from_secs(2)).layer(inner);
        breaker.call(request()).await.unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        let probe = breaker.call(request());
        assert!(
            tokio::time::timeout(Duration::from_millis(10), probe)
                .await
                .is_err()
        );
        breaker.call(request()).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3, "a new probe went out");
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_gateways_own_deadline_counts_as_a_failure() {
        let inner = tower::service_fn(|_req: Request<Body>| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, Infallible>(tonic::Status::ok("").into_http())
        });
        let mut breaker = BreakerLayer::new("catalog", 2, Duration::from_secs(2)).layer(inner);
        // A caller's own deadline is enforced outside: the call is dropped, nothing counts.
        for _ in 0..3 {
            let call = breaker.call(request());
            assert!(
                tokio::time::timeout(Duration::from_millis(10), call)
                    .await
                    .is_err()
            );
        }
        for _ in 0..2 {
            let mut req = request();
            req.extensions_mut()
                .insert(GatewayDeadline(Instant::now() + Duration::from_millis(10)));
            assert_eq!(code(&breaker.call(req).await.unwrap()), "4");
        }
        let refused = breaker.call(request()).await.unwrap();
        assert_eq!(code(&refused), "14", "open after two gateway timeouts");
    }
}
