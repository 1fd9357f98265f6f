//! One HTTP/2 connection to an upstream, opened on first use and reopened when it closes or
//! the upstream sends it away (GOAWAY: it is draining, e.g. past its maximum connection
//! age); the calls still running on a connection sent away finish on it.
//!
//! Requests go straight onto the h2 connection from the task serving them. A tonic `Channel`
//! would queue each one through a buffer task, and hyper's client through its connection
//! task plus a task per request that waits for the answer; a proxy that only forwards
//! streams needs neither hop (docs/benchmarks.md has the measurements).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Ping, RecvStream, SendStream};
use http::header::{CONNECTION, TE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, Request, Response, Uri};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt as _;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tonic::body::Body;

use mercato_kernel::client::BoxError;

use crate::coalesce::Coalesce;

/// Why an upstream could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No TCP connection within the connect timeout.
    #[error("connect to {0} timed out")]
    Timeout(Authority),
    /// The TCP connection was refused or failed.
    #[error("connect to {authority}: {source}")]
    Tcp {
        /// The upstream's address.
        authority: Authority,
        /// The socket error.
        source: std::io::Error,
    },
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 handshake with {authority}: {source}")]
    Handshake {
        /// The upstream's address.
        authority: Authority,
        /// h2's error.
        source: h2::Error,
    },
}

/// Headers that name a property of one HTTP/1.1 connection; HTTP/2 forbids them (RFC 9113
/// §8.2.2), and REST and gRPC-web requests arrive over HTTP/1.1 with them.
const CONNECTION_HEADERS: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

fn strip_connection_headers(headers: &mut HeaderMap) {
    if let Some(listed) = headers.get(CONNECTION).cloned()
        && let Ok(listed) = listed.to_str()
    {
        for name in listed.split(',') {
            if let Ok(name) = HeaderName::try_from(name.trim()) {
                headers.remove(name);
            }
        }
    }
    for name in CONNECTION_HEADERS {
        headers.remove(name);
    }
    if headers.get(TE).is_some_and(|te| te != "trailers") {
        headers.remove(TE);
    }
}

/// Where an upstream is (cleartext HTTP/2, as the mesh speaks inside the cluster) and how
/// long to wait for it.
#[derive(Debug, Clone)]
pub struct Target {
    authority: Authority,
    /// The one address of the upstream's name this connection goes to (the name itself is
    /// still what requests address); `None` connects to the name.
    address: Option<std::net::SocketAddr>,
    connect_timeout: Duration,
}

impl Target {
    /// The target of `uri` (`http://host[:port]`), or why it cannot be one.
    pub fn from_uri(uri: &Uri, connect_timeout: Duration) -> Result<Self, &'static str> {
        if uri.scheme().is_some_and(|scheme| *scheme != Scheme::HTTP) {
            // Speaking cleartext to a TLS port would fail on every call, far from the cause.
            return Err("only http:// upstreams are supported");
        }
        let authority = uri.authority().ok_or("no host to connect to")?.clone();
        let authority = if authority.port_u16().is_some() {
            authority
        } else {
            format!("{}:80", authority.host())
                .parse()
                .map_err(|_| "no host to connect to")?
        };
        Ok(Self {
            authority,
            address: None,
            connect_timeout,
        })
    }

    /// This target, reached at `address` (one endpoint of its name).
    pub fn at(&self, address: std::net::SocketAddr) -> Self {
        Self {
            address: Some(address),
            ..self.clone()
        }
    }

    /// `uri` re-addressed to this target: its path and query, the target's authority (h2
    /// sends scheme and authority as `:scheme` and `:authority`).
    fn address(&self, uri: Uri) -> Uri {
        let mut parts = uri.into_parts();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        // Scheme, authority and path are all set, the one combination `from_parts` requires.
        Uri::from_parts(parts).unwrap_or_default()
    }
}

/// An open connection: where requests go, and the task driving it (finished = closed).
struct Open {
    sender: SendRequest<Bytes>,
    driver: JoinHandle<()>,
    /// Tells this connection from the one that replaces it.
    generation: u64,
}

/// A shared HTTP/2 connection; cloning shares it.
#[derive(Clone)]
pub struct Connection {
    target: Arc<Target>,
    current: Arc<Mutex<Option<Open>>>,
    generations: Arc<std::sync::atomic::AtomicU64>,
    // Held while connecting, so a burst of calls after a drop opens one connection, not many.
    connecting: Arc<tokio::sync::Mutex<()>>,
}

/// Silence after which a connection is probed with a PING, and how long the answer may take
/// before the connection counts as dead: a peer that vanished without a FIN is noticed, and
/// idle connections stay open through NATs and load balancers.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

impl Connection {
    /// A connection to `target`, opened by the first call.
    pub fn lazy(target: Target) -> Self {
        Self {
            target: Arc::new(target),
            current: Arc::default(),
            generations: Arc::default(),
            connecting: Arc::default(),
        }
    }

    /// Sends `req` and waits for the response head; the body streams afterwards.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Body>, BoxError> {
        let (mut parts, body) = req.into_parts();
        parts.uri = self.target.address(parts.uri);
        strip_connection_headers(&mut parts.headers);
        let mut sender = self.ready_sender().await?;
        let end_of_stream = body.is_end_stream();
        let (response, stream) =
            sender.send_request(Request::from_parts(parts, ()), end_of_stream)?;
        if !end_of_stream {
            // A unary request's one message is usually there already: sent right here; a body
            // still arriving is piped by a task of its own while the answer is awaited.
            let mut pipe = Box::pin(pipe(body, stream));
            if futures::poll!(pipe.as_mut()).is_pending() {
                tokio::spawn(pipe);
            }
        }
        let response = response.await?;
        Ok(response.map(|recv| {
            Body::new(UpstreamBody {
                recv,
                data_done: false,
                done: false,
            })
        }))
    }

    /// A sender with room for a new stream. A connection the upstream has sent away takes
    /// none (h2 fails every new stream on it at once), so it is set aside for a fresh one;
    /// nothing was sent on it, so even a non-idempotent call is safe to place anew.
    async fn ready_sender(&self) -> Result<SendRequest<Bytes>, BoxError> {
        let (sender, generation) = self.sender().await?;
        match sender.ready().await {
            Ok(ready) => Ok(ready),
            Err(err) if err.is_go_away() => {
                tracing::debug!(authority = %self.target.authority, "upstream sent the connection away; opening another");
                self.retire(generation);
                let (sender, _) = self.sender().await?;
                Ok(sender.ready().await?)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Forgets connection `generation` (not a newer one another call opened meanwhile).
    fn retire(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current
            .as_ref()
            .is_some_and(|open| open.generation == generation)
        {
            *current = None;
        }
    }

    fn open(&self) -> Option<(SendRequest<Bytes>, u64)> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|open| !open.driver.is_finished())
            .map(|open| (open.sender.clone(), open.generation))
    }

    async fn sender(&self) -> Result<(SendRequest<Bytes>, u64), ConnectError> {
        if let Some(open) = self.open() {
            return Ok(open);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(open) = self.open() {
            return Ok(open);
        }
        let open = self.connect().await?;
        let sender = (open.sender.clone(), open.generation);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(open);
        Ok(sender)
    }

    async fn connect(&self) -> Result<Open, ConnectError> {
        let target = &self.target;
        let connect = async {
            match target.address {
                Some(address) => TcpStream::connect(address).await,
                None => TcpStream::connect(target.authority.as_str()).await,
            }
        };
        let tcp = tokio::time::timeout(target.connect_timeout, connect)
            .await
            .map_err(|_| ConnectError::Timeout(target.authority.clone()))?
            .map_err(|source| ConnectError::Tcp {
                authority: target.authority.clone(),
                source,
            })?;
        // Small gRPC frames must leave at once, not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let (sender, mut connection) = h2::client::Builder::new()
            // hyper's client windows: a response of a few MiB streams without stalls.
            .initial_window_size(2 * 1024 * 1024)
            .initial_connection_window_size(5 * 1024 * 1024)
            .enable_push(false)
            .handshake::<_, Bytes>(Coalesce::new(tcp))
            .await
            .map_err(|source| ConnectError::Handshake {
                authority: target.authority.clone(),
                source,
            })?;
        let pings = connection.ping_pong();
        let authority = target.authority.clone();
        let driver = tokio::spawn(async move {
            tokio::select! {
                result = &mut connection => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, %authority, "upstream connection ended");
                    }
                }
                () = keep_alive(pings) => {
                    tracing::warn!(%authority, "upstream connection unresponsive, closed");
                }
            }
        });
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Open {
            sender,
            driver,
            generation,
        })
    }
}

/// Returns when the peer leaves a PING unanswered (never, without PING support).
async fn keep_alive(pings: Option<h2::PingPong>) {
    let Some(mut pings) = pings else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(KEEP_ALIVE_INTERVAL).await;
        match tokio::time::timeout(KEEP_ALIVE_TIMEOUT, pings.ping(Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// Forwards the request body, respecting the peer's flow-control window; on failure the
/// stream is reset, so the upstream does not wait for the rest.
async fn pipe(mut body: Body, mut stream: SendStream<Bytes>) {
    if let Err(err) = pipe_frames(&mut body, &mut stream).await {
        tracing::debug!(error = %err, "request body not forwarded");
        stream.send_reset(h2::Reason::CANCEL);
    }
}

async fn pipe_frames(body: &mut Body, stream: &mut SendStream<Bytes>) -> Result<(), BoxError> {
    while let Some(frame) = body.frame().await {
        match frame?.into_data() {
            Ok(mut data) => {
                let end = body.is_end_stream();
                while !data.is_empty() {
                    stream.reserve_capacity(data.len());
                    let granted = poll_fn(|cx| stream.poll_capacity(cx))
                        .await
                        .ok_or("the upstream closed the stream")??;
                    let chunk = data.split_to(granted.min(data.len()));
                    stream.send_data(chunk, end && data.is_empty())?;
                }
                if end {
                    return Ok(());
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    stream.send_trailers(trailers)?;
                    return Ok(());
                }
            }
        }
    }
    stream.send_data(Bytes::new(), true)?;
    Ok(())
}

/// The response body: data frames (their window handed back as they are taken), then the
/// trailers, where gRPC puts its status.
struct UpstreamBody {
    recv: RecvStream,
    data_done: bool,
    done: bool,
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(err)));
                }
                None => this.data_done = true,
            }
        }
        let trailers = ready!(this.recv.poll_trailers(cx));
        this.done = true;
        Poll::Ready(match trailers {
            Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
            Ok(None) => None,
            Err(err) => Some(Err(err)),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.recv.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use hyper_util::rt::{TokioExecutor, TokioIo};

    use super::*;

    fn target(uri: &str) -> Target {
        Target::from_uri(&uri.parse().unwrap(), Duration::from_secs(1)).unwrap()
    }

    fn refused(uri: &str) -> &'static str {
        Target::from_uri(&uri.parse().unwrap(), Duration::ZERO).unwrap_err()
    }

    #[test]
    fn requests_are_addressed_to_the_upstream() {
        let target = target("http://catalog:50052");
        let uri = target.address("http://gateway.example:8080/a.B/C?x=1".parse().unwrap());
        assert_eq!(uri.to_string(), "http://catalog:50052/a.B/C?x=1");
        let uri = target.address("/a.B/C".parse().unwrap());
        assert_eq!(uri.to_string(), "http://catalog:50052/a.B/C");
    }

    #[test]
    fn the_port_defaults_to_80_and_only_cleartext_http_is_a_target() {
        assert_eq!(target("http://catalog").authority.as_str(), "catalog:80");
        assert_eq!(refused("/no/host"), "no host to connect to");
        assert_eq!(
            refused("https://catalog:443"),
            "only http:// upstreams are supported"
        );
    }

    /// An HTTP/2 server answering 200 to everything on `listener`, until the handle is aborted
    /// (which also drops its open connections).
    fn serve(listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
                });
                connections.spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service),
                );
            }
        })
    }

    fn get() -> Request<Body> {
        Request::builder()
            .uri("/a.B/C")
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn a_closed_connection_is_reopened_by_the_next_call() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = serve(listener);
        let connection = Connection::lazy(target(&format!("http://{addr}")));
        assert_eq!(connection.send(get()).await.unwrap().status(), 200);

        server.abort();
        let _ = server.await;
        // The upstream restarts on the same address; the next calls find the old connection
        // closed and open a new one instead of failing for good.
        let server = serve(tokio::net::TcpListener::bind(addr).await.unwrap());
        let mut answered = false;
        for _ in 0..50 {
            if let Ok(response) = connection.send(get()).await {
                assert_eq!(response.status(), 200);
                answered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(answered, "no answer after the upstream restarted");
        server.abort();
    }

    #[tokio::test]
    async fn a_connection_the_upstream_sends_away_is_replaced_while_its_calls_finish() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let drain = Arc::new(tokio::sync::Notify::new());
        let slow_started = Arc::new(tokio::sync::Notify::new());
        let server = {
            let drain = drain.clone();
            let slow_started = slow_started.clone();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let drain = drain.clone();
                    let slow_started = slow_started.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: Request<_>| {
                            let slow_started = slow_started.clone();
                            async move {
                                if req.uri().path() == "/slow" {
                                    slow_started.notify_one();
                                    tokio::time::sleep(Duration::from_millis(1500)).await;
                                }
                                Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
                            }
                        });
                        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tcp), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            () = drain.notified() => {
                                // GOAWAY, then the calls in flight run to their end.
                                conn.as_mut().graceful_shutdown();
                                let _ = conn.await;
                            }
                        }
                    });
                }
            })
        };
        let connection = Connection::lazy(target(&format!("http://{addr}")));
        assert_eq!(connection.send(get()).await.unwrap().status(), 200);
        let slow = {
            let connection = connection.clone();
            tokio::spawn(async move {
                let request = Request::builder().uri("/slow").body(Body::empty()).unwrap();
                connection.send(request).await.map(|r| r.status())
            })
        };
        slow_started.notified().await;
        drain.notify_waiters();
        // Both GOAWAY frames (and the PING between them) are a loopback round trip; the slow
        // call keeps the first connection open well past this.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The first connection is draining: new calls go onto a second one.
        for _ in 0..3 {
            assert_eq!(connection.send(get()).await.unwrap().status(), 200);
        }
        assert_eq!(
            slow.await.unwrap().unwrap(),
            200,
            "the call in flight finished"
        );
        server.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error_naming_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let connection = Connection::lazy(target(&format!("http://{addr}")));
        let err = connection
            .send(Request::new(Body::empty()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
