//! The context a request carries into the calls it makes: its deadline and request id.
//!
//! The server side ([`crate::trace::TraceLayer`]) scopes every RPC's future with a
//! [`CallContext`] read from the incoming `grpc-timeout` and `x-request-id`; calls made while
//! serving it find the context here, so deadlines shrink along a chain of calls instead of
//! restarting at every hop.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use opentelemetry::propagation::Injector;
use tokio::time::Instant;
use tonic::body::Body;
use tower::{Layer, Service};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::BoxError;
use crate::trace::REQUEST_ID;

/// Header carrying a gRPC deadline.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// What an RPC being served hands down to the calls it makes.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// When the caller stops waiting.
    pub deadline: Option<Instant>,
    /// The request id of the chain.
    pub request_id: Option<String>,
}

tokio::task_local! {
    static CURRENT: CallContext;
}

impl CallContext {
    /// The context of an incoming request.
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let deadline = headers
            .get(GRPC_TIMEOUT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_timeout)
            .map(|timeout| Instant::now() + timeout);
        let request_id = headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Self {
            deadline,
            request_id,
        }
    }

    /// The context of the RPC being served, if any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `future` with this context as the current one.
    pub fn scope<F: Future>(self, future: F) -> tokio::task::futures::TaskLocalFuture<Self, F> {
        CURRENT.scope(self, future)
    }
}

/// Time left until the deadline of the RPC being served (`None` when it has none).
pub fn remaining() -> Option<Duration> {
    CallContext::current()
        .and_then(|c| c.deadline)
        .map(|d| d.saturating_duration_since(Instant::now()))
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Renders a `grpc-timeout` value, in milliseconds (rounded up, so a tiny remainder is not
/// sent as zero) or in coarser units when milliseconds would need more than 8 digits.
pub fn format_timeout(timeout: Duration) -> String {
    let millis = timeout.as_nanos().div_ceil(1_000_000).max(1);
    if millis < 100_000_000 {
        format!("{millis}m")
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    }
}

/// Applies the deadline and the request's context to an outgoing call.
#[derive(Debug, Clone)]
pub struct ContextLayer {
    call_timeout: Duration,
}

impl ContextLayer {
    /// Calls take at most `call_timeout`, less when the caller's deadline is nearer.
    pub fn new(call_timeout: Duration) -> Self {
        Self { call_timeout }
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = ContextService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ContextService {
            inner,
            call_timeout: self.call_timeout,
        }
    }
}

/// See [`ContextLayer`].
#[derive(Debug, Clone)]
pub struct ContextService<S> {
    inner: S,
    call_timeout: Duration,
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

impl<S> Service<Request<Body>> for ContextService<S>
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

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let inherited = CallContext::current().unwrap_or_default();
        let own = Instant::now() + self.call_timeout;
        let deadline = inherited.deadline.map_or(own, |d| d.min(own));
        let headers = req.headers_mut();
        if let Some(id) = inherited
            .request_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            headers.insert(REQUEST_ID, id);
        }
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut HeaderInjector(headers));
        });
        let mut inner = super::take_ready(&mut self.inner);
        Box::pin(async move {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(tonic::Status::deadline_exceeded(
                    "deadline exceeded before the call was made",
                )
                .into_http());
            }
            if let Ok(value) = HeaderValue::from_str(&format_timeout(left)) {
                req.headers_mut().insert(GRPC_TIMEOUT, value);
            }
            match tokio::time::timeout_at(deadline, inner.call(req)).await {
                Ok(result) => result,
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "no answer within {} ms",
                    left.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("150m"), Some(Duration::from_millis(150)));
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_timeout("123456789S"), None);
        assert_eq!(parse_timeout("S"), None);
        assert_eq!(parse_timeout("10x"), None);
        assert_eq!(parse_timeout("-1S"), None);
    }

    #[test]
    fn formatted_timeouts_round_trip_and_never_read_zero() {
        for d in [
            Duration::from_millis(1500),
            Duration::from_secs(7),
            Duration::from_micros(10),
        ] {
            let back = parse_timeout(&format_timeout(d)).unwrap();
            assert!(back >= d && back - d < Duration::from_millis(2), "{d:?}");
        }
        assert_eq!(format_timeout(Duration::ZERO), "1m");
        assert_eq!(
            format_timeout(Duration::from_secs(200_000_000)),
            "99999999S"
        );
    }

    #[tokio::test]
    async fn the_served_request_context_is_visible_to_calls_it_makes() {
        assert!(CallContext::current().is_none());
        let mut headers = http::HeaderMap::new();
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("300m"));
        headers.insert(REQUEST_ID, HeaderValue::from_static("req-1"));
        let left = CallContext::from_headers(&headers)
            .scope(async {
                assert_eq!(
                    CallContext::current().unwrap().request_id.as_deref(),
                    Some("req-1")
                );
                remaining().unwrap()
            })
            .await;
        assert!(left <= Duration::from_millis(300) && left > Duration::from_millis(200));
    }
}
