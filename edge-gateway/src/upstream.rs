//! Every endpoint of every component, from `MERCATO_UPSTREAM_<SERVICE>` (a comma-separated
//! list of URLs whose names are resolved, so a headless Service stands for all its pods;
//! defaults match the local ports; cleartext `http://` only, as the mesh speaks inside the
//! cluster), with one HTTP/2 connection per endpoint and worker thread, and a choice per call
//! by the kernel's balancer (power of two choices on calls in flight, failing endpoints
//! ejected, removed ones drained). Around it, the parts of the kernel's client stack that
//! suit a proxy: failures become UNAVAILABLE naming the peer
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
use mercato_kernel::client::balance::Balancer;
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
    // Refused at start-up, with the reason, rather than on every call.
    for each in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let uri: Uri = each
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        Target::from_uri(&uri, CONNECT_TIMEOUT).map_err(invalid)?;
    }
    let endpoints = Balancer::with_connector(
        component,
        url,
        Box::new(move |address, uri| {
            let target = Target::from_uri(uri, CONNECT_TIMEOUT).ok()?.at(address);
            Some(
                (0..workers.max(1))
                    .map(|_| Connection::lazy(target.clone()))
                    .collect(),
            )
        }),
    )?;
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
        .service(Endpoints { endpoints });
    Ok(BoxCloneSyncService::new(service))
}

/// A peer that is down must answer UNAVAILABLE quickly, not hang the client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The endpoints of one component, each with HTTP/2 connections, one per serving worker: a
/// worker sends its streams over its own connection, driven by a task on its own thread, so
/// a call never leaves the thread it arrived on. Callers outside the workers take the
/// connections in turn.
#[derive(Clone)]
struct Endpoints {
    endpoints: Balancer<Arc<[Connection]>>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn for_this_worker(connections: &[Connection]) -> &Connection {
    let i = crate::workers::current().unwrap_or_else(|| NEXT.fetch_add(1, Ordering::Relaxed));
    &connections[i % connections.len()]
}

impl Service<Request<Body>> for Endpoints {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // HTTP/2 takes new streams until the peer's limit; beyond it `Connection::send` waits.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let endpoints = self.endpoints.clone();
        Box::pin(async move {
            let pick = endpoints.pick().await?;
            let connection = for_this_worker(pick.connection()).clone();
            let outcome = connection.send(req).await;
            pick.record(&outcome);
            outcome
        })
    }
}
