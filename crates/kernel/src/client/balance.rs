//! Per-request balancing over every endpoint of a peer: a Kubernetes Service balances per
//! *connection*, and a client holding one HTTP/2 connection would send every call to one
//! replica. Here each endpoint gets its own connection and each call picks one.
//!
//! - **Endpoints**: the peer's upstream is a comma-separated list of URLs; each host is
//!   resolved, so a headless Service's name stands for all its pods. Names are resolved
//!   again every few seconds and after a connection failure; an endpoint that disappears
//!   takes no new calls, and its calls in flight finish on its connection (drained).
//! - **Choice**: power of two choices on calls in flight (two endpoints drawn at random, the
//!   less busy one wins), which follows load without the herd effect of least-loaded.
//! - **Outliers**: a call that cannot reach its endpoint, or is answered UNAVAILABLE, puts
//!   that endpoint behind the others for a moment, so the retry layer's next attempt goes
//!   elsewhere; after [`EJECT_AFTER`] such failures in a row it is ejected for
//!   [`EJECTION`]. When every endpoint is ejected they are all tried again (failing open
//!   beats refusing every call).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, Uri};
use rand::Rng as _;
use tokio::sync::Notify;
use tokio::time::Instant;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::{Service, ServiceExt as _};

use super::{BoxError, ClientError};

/// How often names are resolved again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(5);
/// Failures in a row after which an endpoint is ejected.
pub const EJECT_AFTER: u32 = 3;
/// How long an ejected endpoint takes no calls.
pub const EJECTION: Duration = Duration::from_secs(10);
/// How long an endpoint that just failed stays behind the others.
const PENALTY: Duration = Duration::from_secs(1);

/// No endpoint of the peer is known (its names resolve to nothing).
#[derive(Debug, thiserror::Error)]
#[error("no endpoint of {peer} is known ({upstream})")]
pub struct NoEndpoints {
    peer: String,
    upstream: String,
}

/// One URL of the upstream list.
#[derive(Debug, Clone)]
struct Target {
    uri: Uri,
    host: String,
    port: u16,
}

/// How each endpoint's tonic connection is set up.
pub type Connect = Arc<dyn Fn(Endpoint) -> Endpoint + Send + Sync>;

/// Looks a host and port up (DNS by default; tests hand in a resolver they control).
pub type Resolve = Arc<
    dyn Fn(String, u16) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>
        + Send
        + Sync,
>;

/// The system resolver (a Kubernetes headless Service's name: its ready pods).
pub fn dns() -> Resolve {
    Arc::new(|host, port| {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    })
}

/// Opens the connection (of type `C`) to one endpoint: its address, and the URL it was
/// found for (whose authority callers keep addressing).
pub type Connector<C> = Box<dyn Fn(SocketAddr, &Uri) -> Option<C> + Send + Sync>;

/// A peer's endpoints with one connection (`C`) each; cloning shares them. The kernel's
/// client uses tonic channels; the gateway its own HTTP/2 connections.
pub struct Balancer<C = Channel> {
    shared: Arc<Shared<C>>,
    /// This handle's choice for its next call, made and made ready in `poll_ready`.
    chosen: Option<(Pick<C>, C)>,
    /// A lookup `poll_ready` waits for when no endpoint is known yet.
    resolving: Option<tokio::task::JoinHandle<()>>,
}

impl<C> Clone for Balancer<C> {
    /// Shares the endpoints; the clone makes its own choice.
    fn clone(&self) -> Self {
        Self::sharing(self.shared.clone())
    }
}

impl<C> Balancer<C> {
    fn sharing(shared: Arc<Shared<C>>) -> Self {
        Self {
            shared,
            chosen: None,
            resolving: None,
        }
    }
}

struct Shared<C> {
    peer: String,
    upstream: String,
    targets: Vec<Target>,
    connect: Connector<C>,
    resolve: Resolve,
    backends: RwLock<Arc<Vec<Arc<Backend<C>>>>>,
    /// Wakes the resolver early (a connection failed).
    resolve_now: Arc<Notify>,
}

/// One endpoint.
struct Backend<C> {
    addr: SocketAddr,
    conn: C,
    in_flight: AtomicUsize,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    penalized_until: Option<Instant>,
    ejected_until: Option<Instant>,
}

impl<C> std::fmt::Debug for Balancer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("peer", &self.shared.peer)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

fn parse_targets(peer: &str, upstream: &str) -> Result<Vec<Target>, ClientError> {
    let invalid = |url: &str, reason: &str| ClientError::InvalidUrl {
        peer: peer.to_owned(),
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let targets = upstream
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            let uri: Uri = url.parse().map_err(|_| invalid(url, "not a URL"))?;
            if uri.scheme_str() != Some("http") {
                return Err(invalid(url, "only http:// upstreams are supported"));
            }
            let host = uri.host().ok_or_else(|| invalid(url, "no host"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(80);
            Ok(Target { uri, host, port })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err(invalid(upstream, "no URL"));
    }
    Ok(targets)
}

impl Balancer<Channel> {
    /// A balancer over the endpoints `upstream` (comma-separated URLs) names, each a tonic
    /// channel with `connect`'s settings; must be called inside a Tokio runtime (it resolves
    /// in the background).
    pub fn new(peer: &str, upstream: &str, connect: Connect) -> Result<Self, ClientError> {
        Self::resolved_by(peer, upstream, connect, dns())
    }

    /// [`Balancer::new`], with names looked up by `resolve`.
    pub fn resolved_by(
        peer: &str,
        upstream: &str,
        connect: Connect,
        resolve: Resolve,
    ) -> Result<Self, ClientError> {
        Self::with_parts(
            peer,
            upstream,
            Box::new(move |addr, origin| {
                let endpoint = Endpoint::from_shared(format!("http://{addr}")).ok()?;
                Some(connect(endpoint.origin(origin.clone())).connect_lazy())
            }),
            resolve,
        )
    }
}

impl<C: Send + Sync + 'static> Balancer<C> {
    /// A balancer over the endpoints `upstream` (comma-separated URLs) names, each connected
    /// by `connect`; must be called inside a Tokio runtime (it resolves in the background).
    pub fn with_connector(
        peer: &str,
        upstream: &str,
        connect: Connector<C>,
    ) -> Result<Self, ClientError> {
        Self::with_parts(peer, upstream, connect, dns())
    }

    /// [`Balancer::with_connector`], with names looked up by `resolve`.
    pub fn with_parts(
        peer: &str,
        upstream: &str,
        connect: Connector<C>,
        resolve: Resolve,
    ) -> Result<Self, ClientError> {
        let targets = parse_targets(peer, upstream)?;
        let resolve_now = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            peer: peer.to_owned(),
            upstream: upstream.to_owned(),
            targets,
            connect,
            resolve,
            backends: RwLock::default(),
            resolve_now: resolve_now.clone(),
        });
        // Addresses given as IPs need no lookup: usable from the first call.
        let literal: Option<Vec<(SocketAddr, usize)>> = shared
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.host
                    .parse()
                    .ok()
                    .map(|ip| (SocketAddr::new(ip, t.port), i))
            })
            .collect();
        match literal {
            // Nothing to look up, ever.
            Some(addrs) => shared.install(addrs),
            None => {
                tokio::spawn(resolve_forever(Arc::downgrade(&shared), resolve_now));
            }
        }
        Ok(Self::sharing(shared))
    }

    /// The endpoints known now (for tests and diagnostics).
    pub fn endpoints(&self) -> Vec<SocketAddr> {
        self.shared.snapshot().iter().map(|b| b.addr).collect()
    }

    /// Resolves the upstream's names now instead of at the next interval.
    pub async fn refresh(&self) {
        self.shared.refresh().await;
    }

    /// The endpoint for the next call, counted in flight until the pick is recorded or
    /// dropped; see the module docs.
    pub async fn pick(&self) -> Result<Pick<C>, NoEndpoints> {
        let backend = self.shared.pick().await?;
        Ok(self.counted(backend))
    }

    fn counted(&self, backend: Arc<Backend<C>>) -> Pick<C> {
        Pick {
            in_flight: InFlight::new(backend),
            peer: self.shared.peer.clone(),
            resolve_now: self.shared.resolve_now.clone(),
        }
    }
}

/// A chosen endpoint, with its call counted in flight.
pub struct Pick<C> {
    in_flight: InFlight<C>,
    peer: String,
    resolve_now: Arc<Notify>,
}

impl<C> Pick<C> {
    /// The endpoint's connection.
    pub fn connection(&self) -> &C {
        &self.in_flight.0.conn
    }

    /// Ends the call: `outcome` (see [`super::retry::retryable`]) counts for or against the
    /// endpoint; an endpoint that could not be reached makes the names resolve again now.
    pub fn record(self, outcome: &Result<Response<Body>, BoxError>) {
        let backend = self.in_flight.0.clone();
        drop(self.in_flight);
        backend.record(&self.peer, outcome);
        if outcome.is_err() {
            // The endpoint may be gone: look the names up again now.
            self.resolve_now.notify_one();
        }
    }
}

async fn resolve_forever<C: Send + Sync + 'static>(
    shared: Weak<Shared<C>>,
    resolve_now: Arc<Notify>,
) {
    loop {
        if let Some(shared) = shared.upgrade() {
            shared.refresh().await;
        } else {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(RESOLVE_EVERY) => {}
            () = resolve_now.notified() => {}
        }
    }
}

impl<C> Shared<C> {
    fn snapshot(&self) -> Arc<Vec<Arc<Backend<C>>>> {
        self.backends
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Resolves every target; a lookup that fails keeps the current endpoints (DNS trouble
    /// must not empty a working set).
    async fn refresh(&self) {
        let mut addrs = Vec::new();
        for (i, target) in self.targets.iter().enumerate() {
            match (self.resolve)(target.host.clone(), target.port).await {
                Ok(found) => addrs.extend(found.into_iter().map(|addr| (addr, i))),
                Err(err) => {
                    tracing::warn!(peer = %self.peer, host = %target.host, error = %err, "cannot resolve upstream; keeping its endpoints");
                    return;
                }
            }
        }
        self.install(addrs);
    }

    /// Makes `addrs` (each with the target it was found for) the endpoint set, keeping the
    /// connection and health of those already there; removed ones finish their calls in
    /// flight and close.
    fn install(&self, mut addrs: Vec<(SocketAddr, usize)>) {
        addrs.sort_unstable();
        addrs.dedup_by_key(|(addr, _)| *addr);
        let current = self.snapshot();
        if current
            .iter()
            .map(|b| b.addr)
            .eq(addrs.iter().map(|(addr, _)| *addr))
        {
            return;
        }
        let next: Vec<Arc<Backend<C>>> = addrs
            .iter()
            .filter_map(|(addr, target)| {
                if let Some(kept) = current.iter().find(|b| b.addr == *addr) {
                    return Some(kept.clone());
                }
                let target = self.targets.get(*target)?;
                Some(Arc::new(Backend {
                    addr: *addr,
                    conn: (self.connect)(*addr, &target.uri)?,
                    in_flight: AtomicUsize::new(0),
                    health: Mutex::default(),
                }))
            })
            .collect();
        let endpoints: Vec<SocketAddr> = next.iter().map(|b| b.addr).collect();
        tracing::info!(peer = %self.peer, ?endpoints, "upstream endpoints changed");
        *self
            .backends
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }

    /// The endpoint for the next call; see the module docs.
    async fn pick(&self) -> Result<Arc<Backend<C>>, NoEndpoints> {
        if self.snapshot().is_empty() {
            self.refresh().await;
        }
        self.choose().ok_or_else(|| self.no_endpoints())
    }

    fn no_endpoints(&self) -> NoEndpoints {
        NoEndpoints {
            peer: self.peer.clone(),
            upstream: self.upstream.clone(),
        }
    }

    /// Power of two choices among the endpoints not ejected (all of them when every one
    /// is); `None` when none is known.
    fn choose(&self) -> Option<Arc<Backend<C>>> {
        let backends = self.snapshot();
        let now = Instant::now();
        let healthy: Vec<&Arc<Backend<C>>> = backends.iter().filter(|b| !b.ejected(now)).collect();
        let pool: Vec<&Arc<Backend<C>>> = if healthy.is_empty() {
            backends.iter().collect()
        } else {
            healthy
        };
        let chosen = match pool.as_slice() {
            [] => None,
            [one] => Some(*one),
            many => {
                let mut rng = rand::rng();
                let first = rng.random_range(0..many.len());
                let mut second = rng.random_range(0..many.len() - 1);
                if second >= first {
                    second += 1;
                }
                let (a, b) = (many[first], many[second]);
                Some(if b.load(now) < a.load(now) { b } else { a })
            }
        };
        chosen.cloned()
    }
}

impl<C> Backend<C> {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ejected(&self, now: Instant) -> bool {
        self.health().ejected_until.is_some_and(|until| until > now)
    }

    /// Calls in flight, with a penalty that puts an endpoint that just failed last.
    fn load(&self, now: Instant) -> usize {
        let penalty = if self
            .health()
            .penalized_until
            .is_some_and(|until| until > now)
        {
            1 << 20
        } else {
            0
        };
        self.in_flight.load(Ordering::Relaxed) + penalty
    }

    /// Records how a call went: unreachable or UNAVAILABLE counts against the endpoint.
    fn record(&self, peer: &str, outcome: &Result<Response<Body>, BoxError>) {
        let mut health = self.health();
        if !super::retry::retryable(outcome) {
            *health = Health::default();
            return;
        }
        let now = Instant::now();
        health.failures += 1;
        health.penalized_until = Some(now + PENALTY);
        if health.failures >= EJECT_AFTER {
            health.failures = 0;
            health.ejected_until = Some(now + EJECTION);
            metrics::counter!("mercato_peer_ejections_total", "peer" => peer.to_owned())
                .increment(1);
            tracing::warn!(%peer, endpoint = %self.addr, "endpoint ejected after repeated failures");
        }
    }
}

/// Counts a call in flight on its endpoint until the answer's head arrives.
struct InFlight<C>(Arc<Backend<C>>);

impl<C> InFlight<C> {
    fn new(backend: Arc<Backend<C>>) -> Self {
        backend.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(backend)
    }
}

impl<C> Drop for InFlight<C> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balancer<Channel> {
    fn choose(&mut self, backend: Arc<Backend<Channel>>) {
        let conn = backend.conn.clone();
        self.chosen = Some((self.counted(backend), conn));
    }
}

impl Service<Request<Body>> for Balancer<Channel> {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    /// Chooses the endpoint for the next call and is ready when its connection can take
    /// it; before any endpoint is known, waits for a lookup, and fails if it finds none.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            if let Some((_, conn)) = &mut self.chosen {
                return match conn.poll_ready(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
                    Poll::Ready(Err(err)) => {
                        let err = BoxError::from(err);
                        if let Some((pick, _)) = self.chosen.take() {
                            pick.record(&Err(err.to_string().into()));
                        }
                        Poll::Ready(Err(err))
                    }
                };
            }
            if let Some(lookup) = &mut self.resolving {
                std::task::ready!(Pin::new(lookup).poll(cx)).ok();
                self.resolving = None;
                match self.shared.choose() {
                    Some(backend) => self.choose(backend),
                    None => return Poll::Ready(Err(self.shared.no_endpoints().into())),
                }
                continue;
            }
            match self.shared.choose() {
                Some(backend) => self.choose(backend),
                None => {
                    let shared = self.shared.clone();
                    self.resolving = Some(tokio::spawn(async move { shared.refresh().await }));
                }
            }
        }
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let chosen = self.chosen.take();
        let balancer = self.clone();
        Box::pin(async move {
            // Called without `poll_ready` (against tower's contract): choose now.
            let (pick, mut conn) = match chosen {
                Some(chosen) => chosen,
                None => {
                    let pick = balancer.pick().await?;
                    let mut conn = pick.connection().clone();
                    conn.ready().await?;
                    (pick, conn)
                }
            };
            let outcome = conn.call(req).await.map_err(BoxError::from);
            pick.record(&outcome);
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Connect {
        Arc::new(|endpoint: Endpoint| endpoint.connect_timeout(Duration::from_millis(300)))
    }

    #[test]
    fn upstreams_are_lists_of_http_urls() {
        let targets = parse_targets("catalog", "http://a:1, http://127.0.0.1:2,").unwrap();
        let hosts: Vec<_> = targets.iter().map(|t| (t.host.as_str(), t.port)).collect();
        assert_eq!(hosts, [("a", 1), ("127.0.0.1", 2)]);
        assert_eq!(parse_targets("c", "http://[::1]").unwrap()[0].host, "::1");
        assert!(parse_targets("c", "https://a:1").is_err());
        assert!(parse_targets("c", " , ").is_err());
        assert!(parse_targets("c", "not a url").is_err());
    }

    #[tokio::test]
    async fn names_resolve_to_every_address_and_literals_need_no_lookup() {
        let literal =
            Balancer::new("p", "http://127.0.0.1:7001,http://127.0.0.1:7002", plain()).unwrap();
        assert_eq!(literal.endpoints().len(), 2, "known before any lookup");
        let named = Balancer::new("p", "http://localhost:7003", plain()).unwrap();
        named.refresh().await;
        assert!(!named.endpoints().is_empty());
        assert!(named.endpoints().iter().all(|a| a.port() == 7003));
    }

    #[tokio::test]
    async fn repeated_failures_eject_an_endpoint_and_the_others_take_the_calls() {
        let balancer =
            Balancer::new("p", "http://127.0.0.1:7011,http://127.0.0.1:7012", plain()).unwrap();
        let backends = balancer.shared.snapshot();
        let (bad, good) = (&backends[0], &backends[1]);
        for _ in 0..EJECT_AFTER {
            bad.record("p", &Err("refused".into()));
        }
        assert!(bad.ejected(Instant::now()));
        for _ in 0..20 {
            assert_eq!(balancer.shared.pick().await.unwrap().addr, good.addr);
        }
        // Every endpoint ejected: all are tried again rather than none.
        for _ in 0..EJECT_AFTER {
            good.record("p", &Err("refused".into()));
        }
        assert!(balancer.shared.pick().await.is_ok());
        // A success clears the record.
        bad.record("p", &Ok(Response::new(Body::empty())));
        assert!(!bad.ejected(Instant::now()));
    }

    #[tokio::test]
    async fn an_endpoint_that_just_failed_loses_the_choice() {
        let balancer =
            Balancer::new("p", "http://127.0.0.1:7021,http://127.0.0.1:7022", plain()).unwrap();
        let backends = balancer.shared.snapshot();
        backends[0].record("p", &Err("refused".into()));
        for _ in 0..20 {
            assert_eq!(balancer.shared.pick().await.unwrap().addr, backends[1].addr);
        }
    }

    #[tokio::test]
    async fn the_less_busy_of_two_endpoints_is_chosen() {
        let balancer =
            Balancer::new("p", "http://127.0.0.1:7031,http://127.0.0.1:7032", plain()).unwrap();
        let backends = balancer.shared.snapshot();
        let _busy: Vec<_> = (0..5).map(|_| InFlight::new(backends[0].clone())).collect();
        for _ in 0..20 {
            assert_eq!(balancer.shared.pick().await.unwrap().addr, backends[1].addr);
        }
    }

    #[tokio::test]
    async fn a_changed_set_keeps_the_endpoints_that_stay() {
        let balancer =
            Balancer::new("p", "http://127.0.0.1:7041,http://127.0.0.1:7042", plain()).unwrap();
        let before = balancer.shared.snapshot();
        let kept: SocketAddr = "127.0.0.1:7042".parse().unwrap();
        let added: SocketAddr = "127.0.0.1:7043".parse().unwrap();
        balancer.shared.install(vec![(added, 0), (kept, 1)]);
        let after = balancer.shared.snapshot();
        assert_eq!(balancer.endpoints(), [kept, added]);
        let old = before.iter().find(|b| b.addr == kept).unwrap();
        assert!(Arc::ptr_eq(old, &after[0]), "same connection and health");
    }

    #[tokio::test]
    async fn readiness_chooses_the_endpoint_and_counts_it_in_flight_until_used() {
        let mut balancer =
            Balancer::new("p", "http://127.0.0.1:7051,http://127.0.0.1:7052", plain()).unwrap();
        let backends = balancer.shared.snapshot();
        balancer.ready().await.unwrap();
        let chosen = balancer.chosen.as_ref().unwrap().0.in_flight.0.addr;
        let in_flight = |addr| {
            backends
                .iter()
                .find(|b| b.addr == addr)
                .unwrap()
                .in_flight
                .load(Ordering::Relaxed)
        };
        assert_eq!(in_flight(chosen), 1, "reserved from poll_ready to call");
        assert!(
            balancer.clone().chosen.is_none(),
            "a clone chooses for itself"
        );
        drop(balancer);
        assert_eq!(in_flight(chosen), 0, "released when the call is never made");
    }

    #[tokio::test]
    async fn readiness_waits_for_a_lookup_and_fails_when_it_finds_nothing() {
        // Every address the name resolves to is refused by the connector: none is known.
        let mut balancer: Balancer<Channel> =
            Balancer::with_connector("p", "http://localhost:7061", Box::new(|_, _| None)).unwrap();
        let err = balancer.ready().await.unwrap_err();
        assert!(err.to_string().contains("no endpoint of p"), "{err}");
    }
}
