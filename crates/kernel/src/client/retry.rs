//! Retries for idempotent RPCs only, only when the peer could not be reached or answered
//! UNAVAILABLE, with full-jitter exponential back-off. A budget caps retries at a fraction of
//! the traffic, so a struggling peer sees at most ~20% extra load instead of 3×.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use rand::Rng as _;
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt as _};

use super::BoxError;
use super::idempotency::IdempotencyTable;

/// Attempts per call, the first included.
const MAX_ATTEMPTS: u32 = 3;
/// First back-off ceiling; doubles per retry.
const BASE_BACKOFF: Duration = Duration::from_millis(25);
/// Largest request body kept for a retry: a call with a larger one is sent once, so a burst
/// of big requests cannot pin their bodies in memory for every retry they might need.
pub const RETRY_BUFFER_LIMIT: usize = 64 * 1024;

/// Shared allowance of retries: every call deposits a fraction of a retry, every retry
/// withdraws a whole one.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    /// Thousandths of a retry.
    balance: Arc<AtomicI64>,
    deposit: i64,
    cap: i64,
}

impl Default for RetryBudget {
    /// 20% of calls may be retried, with a reserve of 10 retries for a quiet start.
    fn default() -> Self {
        Self::new(0.2, 10)
    }
}

impl RetryBudget {
    /// Retries for `ratio` of the calls, at most `reserve` in a burst.
    pub fn new(ratio: f64, reserve: u32) -> Self {
        let cap = i64::from(reserve) * 1000;
        Self {
            balance: Arc::new(AtomicI64::new(cap)),
            // Rounded to thousandths: the budget need not be exact.
            #[allow(clippy::cast_possible_truncation)]
            deposit: (ratio.clamp(0.0, 1.0) * 1000.0) as i64,
            cap,
        }
    }

    /// Records a call.
    pub fn deposit(&self) {
        let _ = self
            .balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((b + self.deposit).min(self.cap))
            });
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn withdraw(&self) -> bool {
        self.balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b >= 1000).then_some(b - 1000)
            })
            .is_ok()
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    table: &'static IdempotencyTable,
    budget: RetryBudget,
}

impl RetryLayer {
    /// Retries what `table` allows, within `budget`.
    pub fn new(table: &'static IdempotencyTable, budget: RetryBudget) -> Self {
        Self { table, budget }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            table: self.table,
            budget: self.budget.clone(),
        }
    }
}

/// See [`RetryLayer`].
#[derive(Debug, Clone)]
pub struct RetryService<S> {
    inner: S,
    table: &'static IdempotencyTable,
    budget: RetryBudget,
}

/// Whether an outcome is worth another attempt: the peer was not reached, or said it is
/// unavailable (gRPC errors of unary calls arrive as headers-only responses). The same rule
/// tells the balancer an endpoint is failing.
pub fn retryable(outcome: &Result<Response<Body>, BoxError>) -> bool {
    match outcome {
        Err(_) => true,
        Ok(response) => response
            .headers()
            .get("grpc-status")
            .is_some_and(|s| s.as_bytes() == b"14"),
    }
}

/// A request body read for a retry, or given back whole when it is over the limit.
enum Buffered {
    Whole(Bytes),
    TooLarge(Body),
}

/// Reads `body` while it stays within `limit` bytes; past it, hands back a body that yields
/// what was read and then the rest, unread.
async fn buffer(mut body: Body, limit: usize) -> Result<Buffered, BoxError> {
    let mut read = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            // Trailers: gRPC requests have none worth keeping.
            continue;
        };
        read.extend_from_slice(&data);
        if read.len() > limit {
            let head = futures::stream::once(std::future::ready(Ok::<_, tonic::Status>(
                http_body::Frame::data(read.freeze()),
            )));
            let rest = http_body_util::BodyStream::new(body);
            let whole = futures::StreamExt::chain(head, rest);
            return Ok(Buffered::TooLarge(Body::new(
                http_body_util::StreamBody::new(whole),
            )));
        }
    }
    Ok(Buffered::Whole(read.freeze()))
}

fn rebuild(parts: &http::request::Parts, body: &Bytes) -> Request<Body> {
    let mut request = Request::from_parts(parts.clone(), Body::new(Full::new(body.clone())));
    *request.extensions_mut() = parts.extensions.clone();
    request
}

impl<S> Service<Request<Body>> for RetryService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let mut inner = super::take_ready(&mut self.inner);
        self.budget.deposit();
        if !self.table.is_idempotent(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        let budget = self.budget.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            // Unary requests are one small message: buffering it makes the call repeatable.
            let body = match buffer(body, RETRY_BUFFER_LIMIT).await? {
                Buffered::Whole(body) => body,
                Buffered::TooLarge(body) => {
                    return inner.call(Request::from_parts(parts, body)).await;
                }
            };
            // The first attempt goes where `poll_ready` chose; each retry chooses again.
            let mut outcome = inner.call(rebuild(&parts, &body)).await;
            let mut attempt = 1;
            loop {
                if attempt >= MAX_ATTEMPTS || !retryable(&outcome) || !budget.withdraw() {
                    return outcome;
                }
                let ceiling = BASE_BACKOFF * 2u32.pow(attempt - 1);
                let pause = rand::rng().random_range(Duration::ZERO..=ceiling);
                tracing::debug!(path = %parts.uri.path(), attempt, ?pause, "retrying");
                tokio::time::sleep(pause).await;
                attempt += 1;
                outcome = inner.clone().oneshot(rebuild(&parts, &body)).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_a_reserve_then_a_fraction_of_calls() {
        let budget = RetryBudget::new(0.2, 2);
        assert!(budget.withdraw());
        assert!(budget.withdraw());
        assert!(!budget.withdraw());
        for _ in 0..4 {
            budget.deposit();
        }
        assert!(!budget.withdraw(), "four calls earn 0.8 of a retry");
        budget.deposit();
        assert!(budget.withdraw());
        for _ in 0..1000 {
            budget.deposit();
        }
        assert!(budget.withdraw() && budget.withdraw() && !budget.withdraw());
    }

    #[test]
    fn only_unavailable_is_retried() {
        let status = |code: &'static str| {
            Ok(Response::builder()
                .header("grpc-status", code)
                .body(Body::empty())
                .unwrap())
        };
        assert!(retryable(&status("14")));
        assert!(!retryable(&status("4")));
        assert!(!retryable(&status("9")));
        assert!(retryable(&Err("refused".into())));
    }

    type CallFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    /// A peer that answers UNAVAILABLE to everything, counting the calls and the bytes of
    /// each request it was sent.
    fn unavailable_peer(
        seen: Arc<std::sync::Mutex<Vec<usize>>>,
    ) -> impl Service<
        Request<Body>,
        Response = Response<Body>,
        Error = BoxError,
        Future = CallFuture,
    > + Clone {
        tower::service_fn(move |req: Request<Body>| {
            let seen = seen.clone();
            Box::pin(async move {
                let body = req.into_body().collect().await?.to_bytes();
                seen.lock().unwrap().push(body.len());
                Ok::<_, BoxError>(
                    Response::builder()
                        .header("grpc-status", "14")
                        .body(Body::empty())
                        .unwrap(),
                )
            }) as CallFuture
        })
    }

    #[tokio::test]
    async fn a_small_idempotent_call_is_retried_and_a_large_one_is_sent_once_whole() {
        let path = "/mercato.catalog.v1.CatalogService/ListProducts";
        assert!(IdempotencyTable::global().is_idempotent(path));
        for (size, attempts) in [(100, MAX_ATTEMPTS as usize), (RETRY_BUFFER_LIMIT + 1, 1)] {
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let service = RetryLayer::new(IdempotencyTable::global(), RetryBudget::new(1.0, 10))
                .layer(unavailable_peer(seen.clone()));
            let request = Request::builder()
                .uri(path)
                .body(Body::new(Full::new(Bytes::from(vec![7u8; size]))))
                .unwrap();
            let response = service.oneshot(request).await.unwrap();
            assert_eq!(response.headers()["grpc-status"], "14");
            assert_eq!(*seen.lock().unwrap(), vec![size; attempts], "{size} bytes");
        }
    }
}
