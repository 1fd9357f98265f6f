//! The client stack every service-to-service call goes through, as tower layers around a
//! [`balance::Balancer`] over the peer's endpoints (one lazily connected, HTTP/2-multiplexed
//! tonic channel each, a choice per call):
//!
//! 1. [`guard`]: whatever goes wrong below becomes a gRPC status the caller can act on —
//!    a peer that cannot be reached is a clear UNAVAILABLE naming the peer.
//! 2. [`context`]: the deadline (the caller's own, inherited from the request being served,
//!    capped by the per-call timeout) travels as `grpc-timeout` and bounds the whole call,
//!    retries included; the request id and W3C trace context travel along.
//! 3. [`tokens`]: the service's own client-credentials token, unless the request already
//!    carries one (a call made on behalf of the end user).
//! 4. [`retry`]: retries only for RPCs the contracts declare idempotent, only on
//!    UNAVAILABLE, with jittered back-off and a budget so retries cannot amplify an outage;
//!    the balancer sends a retry to another endpoint than the one that just failed.
//!
//! Readiness passes through: each layer's `poll_ready` is its inner service's, down to the
//! balancer, which chooses the endpoint there and waits for that endpoint's connection to
//! take another call; a caller (a generated client awaits `ready()`) so feels backpressure.

pub mod balance;
pub mod context;
pub mod guard;
pub mod idempotency;
pub mod retry;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Endpoint;
use tower::util::BoxCloneSyncService;

use crate::config::PeersConfig;

pub use context::{CallContext, remaining};
pub use tokens::ServiceTokens;

/// Errors inside the stack; the guard layer turns every one into a gRPC status.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The inner service a layer's `poll_ready` made ready, for the call it is about to make,
/// leaving a fresh clone for the next `poll_ready` (the clone-and-swap tower's docs
/// describe): the readiness the caller waited for is the one the call uses.
fn take_ready<S: Clone>(inner: &mut S) -> S {
    let fresh = inner.clone();
    std::mem::replace(inner, fresh)
}

/// A channel to one peer with the whole stack applied; generated clients take it as is, e.g.
/// `InventoryServiceClient::new(peers.channel("inventory")?)`.
pub type PeerChannel = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    std::convert::Infallible,
>;

/// A peer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The peer is not a known component.
    #[error("no upstream configured for {0}")]
    UnknownPeer(String),
    /// The configured URL is not usable.
    #[error("upstream URL of {peer} ({url}) is invalid: {reason}")]
    InvalidUrl {
        /// The peer.
        peer: String,
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Builds [`PeerChannel`]s for one service: shared service token, per-peer retry budgets.
#[derive(Clone)]
pub struct Peers {
    upstreams: std::collections::HashMap<String, String>,
    tokens: Option<Arc<ServiceTokens>>,
    call_timeout: Duration,
}

impl Peers {
    /// Peers as configured for this service; without client credentials, calls carry only
    /// the tokens their requests already hold. Tokens come from the `identity` upstream.
    pub fn new(config: &PeersConfig) -> Result<Self, ClientError> {
        let tokens = match &config.credentials {
            Some(credentials) => {
                let identity = config
                    .upstreams
                    .get("identity")
                    .ok_or_else(|| ClientError::UnknownPeer("identity".into()))?;
                Some(Arc::new(ServiceTokens::new(
                    balance::Balancer::new("identity", identity, Arc::new(settings))?,
                    credentials.clone(),
                )))
            }
            None => {
                tracing::warn!(
                    "MERCATO_CLIENT_ID / MERCATO_CLIENT_SECRET not set: calls to internal RPCs \
                     of peers will be refused"
                );
                None
            }
        };
        Ok(Self {
            upstreams: config.upstreams.clone(),
            tokens,
            call_timeout: config.call_timeout,
        })
    }

    /// The stacked channel to `peer`, balanced per call over every endpoint its upstream
    /// names (each connected on first use, reconnected as needed).
    pub fn channel(&self, peer: &str) -> Result<PeerChannel, ClientError> {
        let url = self
            .upstreams
            .get(peer)
            .ok_or_else(|| ClientError::UnknownPeer(peer.to_owned()))?;
        let balancer = balance::Balancer::new(peer, url, Arc::new(settings))?;
        Ok(stack(
            peer,
            balancer,
            self.tokens.clone(),
            self.call_timeout,
        ))
    }
}

/// The connection settings of every endpoint of every peer.
fn settings(endpoint: Endpoint) -> Endpoint {
    endpoint
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
}

/// Applies the stack to `channel` (a [`balance::Balancer`], or any channel in tests).
pub fn stack<S>(
    peer: &str,
    channel: S,
    tokens: Option<Arc<ServiceTokens>>,
    call_timeout: Duration,
) -> PeerChannel
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let service = tower::ServiceBuilder::new()
        .layer(guard::GuardLayer::new(peer))
        .layer(context::ContextLayer::new(call_timeout))
        .layer(tokens::BearerLayer::new(tokens))
        .layer(retry::RetryLayer::new(
            idempotency::IdempotencyTable::global(),
            retry::RetryBudget::default(),
        ))
        .map_err(Into::<BoxError>::into)
        .service(channel);
    BoxCloneSyncService::new(service)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;
    use crate::client::context::{CallContext, parse_timeout};

    /// Records the `grpc-timeout` of every request, then serves it.
    #[derive(Clone)]
    struct Recorder<S> {
        inner: S,
        seen: Arc<Mutex<Vec<Option<Duration>>>>,
    }

    impl<S, B> tower::Service<http::Request<B>> for Recorder<S>
    where
        S: tower::Service<http::Request<B>>,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = S::Future;

        fn poll_ready(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, req: http::Request<B>) -> Self::Future {
            let timeout = req
                .headers()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_timeout);
            self.seen.lock().unwrap().push(timeout);
            self.inner.call(req)
        }
    }

    /// A local health server that records the `grpc-timeout` of each request it receives.
    async fn recording_server() -> (String, Arc<Mutex<Vec<Option<Duration>>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let layer = tower::layer::layer_fn(move |inner| Recorder {
            inner,
            seen: record.clone(),
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .layer(layer)
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (format!("http://{addr}"), seen)
    }

    fn client(url: &str, timeout: Duration) -> HealthClient<PeerChannel> {
        let channel = balance::Balancer::new("peer", url, Arc::new(settings)).unwrap();
        HealthClient::new(stack("peer", channel, None, timeout))
    }

    #[tokio::test]
    async fn calls_carry_the_nearer_of_the_callers_deadline_and_the_call_timeout() {
        let (url, seen) = recording_server().await;
        let mut health = client(&url, Duration::from_secs(5));
        health.check(HealthCheckRequest::default()).await.unwrap();
        let context = CallContext {
            deadline: Some(tokio::time::Instant::now() + Duration::from_millis(300)),
            request_id: Some("r-1".into()),
        };
        context
            .scope(health.check(HealthCheckRequest::default()))
            .await
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        let own = seen[0].unwrap();
        let inherited = seen[1].unwrap();
        assert!(
            own > Duration::from_secs(4) && own <= Duration::from_secs(5),
            "{own:?}"
        );
        assert!(inherited <= Duration::from_millis(300), "{inherited:?}");
    }

    #[tokio::test]
    async fn an_expired_deadline_fails_without_calling() {
        let (url, seen) = recording_server().await;
        let mut health = client(&url, Duration::from_secs(5));
        let context = CallContext {
            deadline: Some(tokio::time::Instant::now()),
            request_id: None,
        };
        let status = context
            .scope(health.check(HealthCheckRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_peer_that_is_down_is_a_quick_unavailable_naming_it() {
        let mut health = client("http://127.0.0.1:1", Duration::from_secs(5));
        let started = std::time::Instant::now();
        let status = health
            .check(HealthCheckRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("peer"), "{status:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn endpoints_added_and_removed_under_traffic_take_calls_and_drain() {
        let mut servers = Vec::new();
        for _ in 0..3 {
            let (url, seen) = recording_server().await;
            let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
            servers.push((addr, seen));
        }
        let calls = |i: usize| servers[i].1.lock().unwrap().len();
        // The peer's name resolves to whatever the test says it does.
        let listed = Arc::new(Mutex::new(vec![servers[0].0, servers[1].0]));
        let answer = listed.clone();
        let resolve: balance::Resolve = Arc::new(move |_, _| {
            let found = answer.lock().unwrap().clone();
            Box::pin(async move { Ok(found) })
        });
        let balancer = balance::Balancer::resolved_by(
            "peer",
            "http://peer.test:1",
            Arc::new(settings),
            resolve,
        )
        .unwrap();
        let health = HealthClient::new(stack(
            "peer",
            balancer.clone(),
            None,
            Duration::from_secs(5),
        ));

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let traffic: Vec<_> = (0..4)
            .map(|_| {
                let (mut health, stop) = (health.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut failed = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if health.check(HealthCheckRequest::default()).await.is_err() {
                            failed += 1;
                        }
                    }
                    failed
                })
            })
            .collect();
        let pause = || tokio::time::sleep(Duration::from_millis(300));

        pause().await;
        assert!(
            calls(0) > 0 && calls(1) > 0,
            "both listed endpoints take calls"
        );
        assert_eq!(calls(2), 0, "an endpoint not listed takes none");

        listed.lock().unwrap().push(servers[2].0);
        balancer.refresh().await;
        pause().await;
        assert!(calls(2) > 0, "an added endpoint takes calls");

        listed.lock().unwrap().remove(0);
        balancer.refresh().await;
        let at_removal = calls(0);
        pause().await;
        // Calls already chosen for it (one per caller at most) may still land.
        assert!(
            calls(0) <= at_removal + 4,
            "a removed endpoint takes no new calls"
        );
        let (one, two) = (calls(1), calls(2));
        pause().await;
        assert!(
            calls(1) > one && calls(2) > two,
            "the others carry the traffic"
        );

        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for caller in traffic {
            assert_eq!(
                caller.await.unwrap(),
                0,
                "no call failed while endpoints changed"
            );
        }
    }
}
