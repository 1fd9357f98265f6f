//! Native gRPC passthrough: a request for `/package.Service/Method` is admitted by the
//! [`Gate`], its one request message is read whole and its framing checked ([`crate::body`],
//! [`crate::framing`]: the caller's mistakes are answered here), then it goes to the owning
//! component without being decoded; the response (messages, trailers, status details)
//! streams back untouched. gRPC-web requests reach this same service after tonic-web has
//! turned them into gRPC.
//!
//! Paths no contract declares are the gateway's own services: health (a public service's
//! health is forwarded to its upstream, see [`crate::health`]) and reflection.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use mercato_kernel::client::context::{GRPC_TIMEOUT, format_timeout, parse_timeout};
use tokio::time::Instant;
use tonic::Status;
use tonic::body::Body;
use tonic::service::Routes;
use tower::{Service, ServiceExt as _};

use crate::body::{self, BodyError};
use crate::breaker::GatewayDeadline;
use crate::contracts::Contracts;
use crate::framing;
use crate::gate::{ClientAddr, Gate, sanitize};
use crate::health;
use crate::settings::Settings;
use crate::upstream::{Upstream, Upstreams};

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

impl Inner {
    async fn forward(&self, mut req: Request<Body>) -> Response<Body> {
        let arrived = Instant::now();
        let path = req.uri().path().to_owned();
        if health::is_health(&path) {
            return self.health(req, arrived).await;
        }
        let Some(method) = self.contracts.method(&path).cloned() else {
            return match self.local.clone().oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        };
        let client = req.extensions().get::<ClientAddr>().copied();
        let max = self.settings.max_request_bytes;
        if body::declared_too_large(req.headers(), max) {
            return BodyError::TooLarge { max }.status().into_http();
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
        let (deadline, own) = match client_timeout {
            Some(timeout) => (Some(arrived + timeout), false),
            None if !method.server_streaming() => {
                (Some(arrived + self.settings.unary_timeout), true)
            }
            None => (None, false),
        };

        // The one request message is read whole first (see [`crate::body`]): a body the
        // caller got wrong is answered here and never reaches the upstream or its breaker.
        let (mut parts, body) = req.into_parts();
        let waited = self.settings.body_read_timeout;
        let by = deadline.map_or(arrived + waited, |d| d.min(arrived + waited));
        let bytes = match body::read(body, max, by, waited).await {
            Ok(bytes) => bytes,
            Err(err) => return err.status().into_http(),
        };
        if let Err(err) = framing::check_unary(&bytes, parts.headers.get("grpc-encoding")) {
            return err.status().into_http();
        }
        // After gRPC-web-text decoding the declared length is the base64 one; h2 would send
        // it upstream as a wrong content-length.
        parts.headers.remove(http::header::CONTENT_LENGTH);
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Status::deadline_exceeded("deadline exceeded at the gateway").into_http();
            }
            if let Ok(value) = HeaderValue::from_str(&format_timeout(left)) {
                parts.headers.insert(GRPC_TIMEOUT, value);
            }
        }
        let mut req = Request::from_parts(parts, Body::new(Full::new(bytes)));
        let outer_deadline = match deadline {
            // The gateway's own deadline is the breaker's to enforce: outliving it says the
            // upstream is not answering.
            Some(deadline) if own => {
                req.extensions_mut().insert(GatewayDeadline(deadline));
                None
            }
            client => client,
        };
        call_within(upstream, req, outer_deadline).await
    }
}

impl Inner {
    /// A health `Check` or `Watch`: a public service's health is its upstream's answer (see
    /// [`crate::health`]); the gateway's own health service answers the rest.
    async fn health(&self, req: Request<Body>, arrived: Instant) -> Response<Body> {
        let client = req.extensions().get::<ClientAddr>().copied();
        let (mut parts, body) = req.into_parts();
        let waited = self.settings.body_read_timeout;
        let max = self.settings.max_request_bytes;
        let bytes = match body::read(body, max, arrived + waited, waited).await {
            Ok(bytes) => bytes,
            Err(err) => return err.status().into_http(),
        };
        let service = match health::service_name(&bytes) {
            Ok(service) => service,
            Err(err) => return err.status().into_http(),
        };
        let component = Some(service.as_str())
            .filter(|name| !name.is_empty())
            .and_then(|name| self.contracts.public_component(name));
        let Some(component) = component else {
            let req = Request::from_parts(parts, Body::new(Full::new(bytes)));
            return match self.local.clone().oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        };
        // A health call costs the upstream a little: it is counted against the caller's
        // rate like any other call.
        if let Err(status) = self.gate.throttle(None, client) {
            return status.into_http();
        }
        let Some(upstream) = self.upstreams.get(component) else {
            return Status::unavailable(format!("no upstream for {component}")).into_http();
        };
        sanitize(&mut parts.headers, client);
        parts.headers.remove(http::header::CONTENT_LENGTH);
        let client_deadline = parts
            .headers
            .get(GRPC_TIMEOUT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_timeout)
            .map(|timeout| arrived + timeout);
        let mut req = Request::from_parts(parts, Body::new(Full::new(bytes)));
        if client_deadline.is_none() && req.uri().path() == health::CHECK {
            req.extensions_mut()
                .insert(GatewayDeadline(arrived + self.settings.unary_timeout));
        }
        call_within(upstream, req, client_deadline).await
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

/// `req` through `upstream`, answered DEADLINE_EXCEEDED when no answer arrives by `deadline`.
async fn call_within(
    upstream: &Upstream,
    req: Request<Body>,
    deadline: Option<Instant>,
) -> Response<Body> {
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
