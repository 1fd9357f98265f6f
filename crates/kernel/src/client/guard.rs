//! The outermost layer: a call that fails below (connection refused, reset, protocol error)
//! comes back as a gRPC UNAVAILABLE naming the peer, never as an opaque transport error.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt as _};

use super::BoxError;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    peer: std::sync::Arc<str>,
}

impl GuardLayer {
    /// For calls to `peer`.
    pub fn new(peer: &str) -> Self {
        Self { peer: peer.into() }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            peer: self.peer.clone(),
        }
    }
}

/// See [`GuardLayer`].
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    inner: S,
    peer: std::sync::Arc<str>,
}

impl<S> Service<Request<Body>> for GuardService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    // Every failure is already a gRPC status in the response: a concrete, lifetime-free
    // error type also keeps generated clients usable in `Send` futures.
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let peer = self.peer.clone();
        let method = req.uri().path().to_owned();

        Box::pin(async move {
            match inner.oneshot(req).await {
                Ok(response) => Ok(response),
                Err(err) => {
                    let cause = error_chain(err.as_ref());
                    metrics::counter!("mercato_peer_failures_total", "peer" => peer.to_string())
                        .increment(1);
                    tracing::debug!(%method, "peer call failed");
                    Ok(crate::error::unavailable(&peer, cause).into_http())
                }
            }
        })
    }
}

/// "outer: inner: root" — transport errors hide the useful part (e.g. "Connection refused")
/// in their sources.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
