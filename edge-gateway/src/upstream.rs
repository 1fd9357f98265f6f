//! One HTTP/2 connection per worker thread and component, discovered from
//! `MERCATO_UPSTREAM_<SERVICE>` (defaults match the local ports and the k8s Service names,
//! cleartext `http://` only, as the mesh speaks inside the cluster), wrapped in the parts of the
//! kernel's client stack that suit a proxy: failures become UNAVAILABLE naming the peer
//! (guard), RPCs the contracts mark idempotent are retried within a budget (retry), and a
//! peer that keeps failing is cut off for a moment by a circuit breaker (breaker).
//! Deadlines are the client's own (see [`crate::grpc`]); the client's token is forwarded as
//! is, so the gateway never calls with a service identity of its own.

mod connection;

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, Uri};
use mercato_kernel::client::guard::GuardLayer;
use mercato_kernel::client::idempotency::IdempotencyTable;
use mercato_kernel::client::retry::{RetryBudget, RetryLayer};
use mercato_kernel::client::{BoxError, ClientError};
use tonic::body::Body;
use tower::Service;
use tower::util::BoxCloneSyncService;

use crate::breaker::{BreakerLayer, DEFAULT_OPEN_FOR, DEFAULT_THRESHOLD};
use connection::{Connection, Target};

/// A stacked channel to one component.
pub type Upstream = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// The channel of every component.
#[derive(Clone)]
pub struct Upstreams {
    channels: HashMap<String, Upstream>,
}

impl Upstreams {
    /// Lazily connected channels to every URL of `upstreams` (component → URL), with one
    /// connection per serving worker (see [`crate::workers`]).
    pub fn new(upstreams: &HashMap<String, String>, workers: usize) -> Result<Self, ClientError> {
        let mut channels = HashMap::new();
        for (component, url) in upstreams {
            channels.insert(component.clone(), channel(component, url, workers)?);
        }
        Ok(Self { channels })
    }

    /// The channel to `component`.
    pub fn get(&self, component: &str) -> Option<&Upstream> {
        self.channels.get(component)
    }
}

fn channel(component: &str, url: &str, workers: usize) -> Result<Upstream, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        peer: component.to_owned(),
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    // A peer that is down must answer UNAVAILABLE quickly, not hang the client.
    let target = Target::from_uri(&uri, Duration::from_secs(1)).map_err(invalid)?;
    let service = tower::ServiceBuilder::new()
        .layer(BreakerLayer::new(
            component,
            DEFAULT_THRESHOLD,
            DEFAULT_OPEN_FOR,
        ))
        .layer(GuardLayer::new(component))
        .layer(RetryLayer::new(
            IdempotencyTable::global(),
            RetryBudget::default(),
        ))
        .service(Connections::new(&target, workers));
    Ok(BoxCloneSyncService::new(service))
}

/// HTTP/2 connections to one component, one per serving worker: a worker sends its streams
/// over its own connection, driven by a task on its own thread, so a call never leaves the
/// thread it arrived on. Callers outside the workers take the connections in turn.
#[derive(Clone)]
struct Connections {
    connections: Arc<[Connection]>,
    next: Arc<AtomicUsize>,
}

impl Connections {
    fn new(target: &Target, workers: usize) -> Self {
        Self {
            connections: (0..workers.max(1))
                .map(|_| Connection::lazy(target.clone()))
                .collect(),
            next: Arc::default(),
        }
    }

    fn pick(&self) -> &Connection {
        let i =
            crate::workers::current().unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed));
        &self.connections[i % self.connections.len()]
    }
}

impl Service<Request<Body>> for Connections {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // HTTP/2 takes new streams until the peer's limit; beyond it `Connection::send` waits.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let connection = self.pick().clone();
        Box::pin(async move { connection.send(req).await })
    }
}
