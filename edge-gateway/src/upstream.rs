//! One HTTP/2 connection pool per component, discovered from `MERCATO_UPSTREAM_<SERVICE>`
//! (defaults match the local ports and the k8s Service names), wrapped in the parts of the
//! kernel's client stack that suit a proxy: failures become UNAVAILABLE naming the peer
//! (guard), RPCs the contracts mark idempotent are retried within a budget (retry), and a
//! peer that keeps failing is cut off for a moment by a circuit breaker (breaker).
//! Deadlines are the client's own (see [`crate::grpc`]); the client's token is forwarded as
//! is, so the gateway never calls with a service identity of its own.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use mercato_kernel::client::guard::GuardLayer;
use mercato_kernel::client::idempotency::IdempotencyTable;
use mercato_kernel::client::retry::{RetryBudget, RetryLayer};
use mercato_kernel::client::{BoxError, ClientError};
use tonic::body::Body;
use tonic::transport::Endpoint;
use tower::util::BoxCloneSyncService;

use crate::breaker::{BreakerLayer, DEFAULT_OPEN_FOR, DEFAULT_THRESHOLD};

/// A stacked channel to one component.
pub type Upstream = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// The channel of every component.
#[derive(Clone)]
pub struct Upstreams {
    channels: HashMap<String, Upstream>,
}

impl Upstreams {
    /// Lazily connected channels to every URL of `upstreams` (component → URL).
    pub fn new(upstreams: &HashMap<String, String>) -> Result<Self, ClientError> {
        let mut channels = HashMap::new();
        for (component, url) in upstreams {
            channels.insert(component.clone(), channel(component, url)?);
        }
        Ok(Self { channels })
    }

    /// The channel to `component`.
    pub fn get(&self, component: &str) -> Option<&Upstream> {
        self.channels.get(component)
    }
}

fn channel(component: &str, url: &str) -> Result<Upstream, ClientError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| ClientError::InvalidUrl {
            peer: component.to_owned(),
            url: url.to_owned(),
            reason: e.to_string(),
        })?
        // A peer that is down must answer UNAVAILABLE quickly, not hang the client.
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
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
        .map_err(BoxError::from)
        .service(Connections::new(&endpoint));
    Ok(BoxCloneSyncService::new(service))
}

/// HTTP/2 connections to one component, used in turn: one connection is driven by one
/// task, so a busy gateway spreads its streams over several to use every core.
#[derive(Clone)]
struct Connections {
    channels: std::sync::Arc<[tonic::transport::Channel]>,
    next: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Connections per component.
const CONNECTIONS: usize = 4;

impl Connections {
    fn new(endpoint: &Endpoint) -> Self {
        Self {
            channels: (0..CONNECTIONS).map(|_| endpoint.connect_lazy()).collect(),
            next: std::sync::Arc::default(),
        }
    }
}

impl tower::Service<Request<Body>> for Connections {
    type Response = Response<Body>;
    type Error = tonic::transport::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Body>, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // Readiness is that of the channel a call is given to (checked by `oneshot`).
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.channels.len();
        let channel = self.channels[i].clone();
        Box::pin(tower::ServiceExt::oneshot(channel, req))
    }
}
