//! A circuit breaker per upstream: after `threshold` consecutive calls that found the peer
//! unreachable (UNAVAILABLE), calls fail at once for `open_for` instead of each waiting on a
//! connect attempt; then one probe call is let through, and its outcome closes or re-opens
//! the circuit. Application errors (NOT_FOUND, INVALID_ARGUMENT, …) never count: only a peer
//! that cannot serve at all trips it.

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
        let this = self.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            let response = match inner.oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            this.record(unavailable(&response));
            Ok(response)
        })
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
}
