//! The outermost layer: a call that fails below (connection refused, reset, protocol error)
//! comes back as a gRPC UNAVAILABLE naming the peer, never as an opaque transport error.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

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
            unready: None,
        }
    }
}

/// See [`GuardLayer`].
#[derive(Debug)]
pub struct GuardService<S> {
    inner: S,
    peer: std::sync::Arc<str>,
    /// Why the stack below could not become ready (no endpoint known, say): the guard's own
    /// readiness cannot fail, so the call it was polled for answers with it.
    unready: Option<BoxError>,
}

impl<S: Clone> Clone for GuardService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            peer: self.peer.clone(),
            unready: None,
        }
    }
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

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => {
                self.unready = Some(err);
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let peer = self.peer.clone();
        let method = req.uri().path().to_owned();
        let called = match self.unready.take() {
            Some(err) => Err(err),
            None => Ok(super::take_ready(&mut self.inner).call(req)),
        };

        Box::pin(async move {
            let outcome = match called {
                Ok(call) => call.await,
                Err(err) => Err(err),
            };
            match outcome {
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
