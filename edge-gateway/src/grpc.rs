//! Native gRPC passthrough: a request for `/package.Service/Method` is admitted by the
//! [`Gate`], then streamed to the owning component without being decoded; the response
//! (messages, trailers, status details) streams back untouched. gRPC-web requests reach this
//! same service after tonic-web has turned them into gRPC.
//!
//! Paths no contract declares are the gateway's own services: health and reflection.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use http_body_util::{BodyStream, Limited, StreamBody};
use mercato_kernel::client::context::{GRPC_TIMEOUT, format_timeout, parse_timeout};
use tokio::time::Instant;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::{Code, Status};
use tower::{Service, ServiceExt as _};

use crate::contracts::Contracts;
use crate::gate::{ClientAddr, Gate, sanitize};
use crate::settings::Settings;
use crate::upstream::Upstreams;

/// The passthrough service.
#[derive(Clone)]
pub struct GrpcProxy {
    inner: Arc<Inner>,
}

struct Inner {
    contracts: Contracts,
    gate: Gate,
    upstreams: Upstreams,
    local: Routes,
    settings: Settings,
}

impl GrpcProxy {
    /// Routes by `contracts` to `upstreams`; everything else goes to `local`.
    pub fn new(
        contracts: Contracts,
        gate: Gate,
        upstreams: Upstreams,
        local: Routes,
        settings: Settings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                contracts,
                gate,
                upstreams,
                local,
                settings,
            }),
        }
    }
}

/// Whether a declared body length is over `max`.
pub fn declared_too_large(headers: &http::HeaderMap, max: usize) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|len| *len > u64::try_from(max).unwrap_or(u64::MAX))
}

/// The status for a request body over the limit (tonic's own code for an oversized message).
pub fn too_large(max: usize) -> Status {
    Status::new(
        Code::OutOfRange,
        format!("request body exceeds the limit of {max} bytes"),
    )
}

impl Inner {
    async fn forward(&self, mut req: Request<Body>) -> Response<Body> {
        let arrived = Instant::now();
        let path = req.uri().path().to_owned();
        let Some(method) = self.contracts.method(&path).cloned() else {
            return match self.local.clone().oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        };
        let client = req.extensions().get::<ClientAddr>().copied();
        let max = self.settings.max_request_bytes;
        if declared_too_large(req.headers(), max).is_some() {
            return too_large(max).into_http();
        }
        if let Err(status) = self.gate.admit(&method, req.headers(), client).await {
            return status.into_http();
        }
        let Some(upstream) = self.upstreams.get(method.component) else {
            return Status::unavailable(format!("no upstream for {}", method.component))
                .into_http();
        };
        let request_id = sanitize(req.headers_mut(), client);
        tracing::debug!(%path, %request_id, upstream = method.component, "grpc passthrough");

        // The client's deadline bounds the call; unary calls without one get the gateway's
        // default, streams without one live as long as both ends want.
        let client_timeout = req
            .headers()
            .get(GRPC_TIMEOUT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_timeout);
        let deadline = match client_timeout {
            Some(timeout) => Some(arrived + timeout),
            None if !method.server_streaming() => Some(arrived + self.settings.unary_timeout),
            None => None,
        };
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Status::deadline_exceeded("deadline exceeded at the gateway").into_http();
            }
            if let Ok(value) = HeaderValue::from_str(&format_timeout(left)) {
                req.headers_mut().insert(GRPC_TIMEOUT, value);
            }
        }
        // The size hint is dropped: after gRPC-web-text decoding it still announces the
        // base64 length, and h2 would send it upstream as a wrong content-length.
        let req =
            req.map(|body| Body::new(StreamBody::new(BodyStream::new(Limited::new(body, max)))));
        let call = upstream.clone().oneshot(req);
        let response = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, call).await {
                Ok(result) => result,
                Err(_) => {
                    return Status::deadline_exceeded("no answer before the deadline").into_http();
                }
            },
            None => call.await,
        };
        match response {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

impl Service<Request<Body>> for GrpcProxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.forward(req).await) })
    }
}
