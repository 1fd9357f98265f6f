//! Server-side tracing layer: one span per RPC, continuing the caller's W3C trace context
//! from the request headers, and an `x-request-id` kept (or generated) for every hop.

use std::task::{Context, Poll};

use http::{HeaderValue, Request};
use opentelemetry::propagation::Extractor;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Header carrying the request id across hops.
pub use crate::client::context::REQUEST_ID;

/// The request id of `headers` — the caller's when it is 1 to 128 visible ASCII characters,
/// else a new UUIDv7, stored in the headers for the next hop. The one rule for the id, at
/// the edge and on every service: an id with spaces or control characters would split log
/// lines and headers downstream.
pub fn request_id(headers: &mut http::HeaderMap) -> String {
    match headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()) {
        Some(id)
            if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            id.to_owned()
        }
        _ => {
            let id = uuid::Uuid::now_v7().to_string();
            if let Ok(value) = HeaderValue::from_str(&id) {
                headers.insert(REQUEST_ID, value);
            }
            id
        }
    }
}

/// Adds the span and the request id.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

/// See [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

impl<S, B> Service<Request<B>> for TraceService<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tokio::task::futures::TaskLocalFuture<
        crate::client::CallContext,
        tracing::instrument::Instrumented<S::Future>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let request_id = request_id(req.headers_mut());
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(req.headers()))
        });
        let span = tracing::info_span!(
            "rpc",
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = %req.uri().path(),
            request_id = %request_id,
        );
        let _ = span.set_parent(parent);
        // Calls made while serving this request inherit its deadline and request id.
        crate::client::CallContext::from_headers(req.headers())
            .scope(self.inner.call(req).instrument(span))
    }
}

/// The W3C `traceparent` of the current span, when tracing export is on (stored with
/// outgoing events so consumers continue the producer's trace).
pub fn current_traceparent() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    let context = tracing::Span::current().context();
    let span = context.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_request_id_is_kept_and_any_other_replaced() {
        let mut headers = http::HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("req-42"));
        assert_eq!(request_id(&mut headers), "req-42");
        for odd in ["", "two words", "tab\there"] {
            let mut headers = http::HeaderMap::new();
            headers.insert(REQUEST_ID, HeaderValue::from_str(odd).unwrap());
            let id = request_id(&mut headers);
            assert_ne!(id, odd);
            assert_eq!(headers[REQUEST_ID], id.as_str(), "stored for the next hop");
        }
        let mut headers = http::HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_str(&"x".repeat(129)).unwrap());
        assert_eq!(request_id(&mut headers).len(), 36, "too long: a new UUID");
    }
}
