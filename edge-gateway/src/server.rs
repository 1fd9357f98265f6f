//! The one public port: HTTP/1.1 and HTTP/2 (cleartext, detected per connection) served by
//! hyper-util, each request dispatched by content type — native gRPC to the passthrough,
//! gRPC-web through tonic-web to the same passthrough, anything else to the gateway's own
//! endpoints or the REST surface. CORS ([`crate::cors`]) wraps it all, so browsers get
//! preflights answered and the gRPC status headers exposed.

use std::convert::Infallible;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use mercato_kernel::health::Health;
use mercato_kernel::shutdown::ShutdownSignal;
use mercato_kernel::trace::REQUEST_ID;
use tokio::net::TcpListener;
use tonic::body::Body;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt as _};

use crate::coalesce::Coalesce;
use crate::connection_limit::ConnectionLimit;
use crate::contracts::Contracts;
use crate::rest::RestApi;
use crate::workers::Workers;

/// A gRPC service (passthrough, possibly behind tonic-web).
pub type GrpcService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// Dispatches one request by content type and path.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    contracts: Contracts,
    grpc: GrpcService,
    grpc_web: GrpcService,
    rest: RestApi,
    openapi: Bytes,
    health: Health,
}

impl Gateway {
    /// The dispatcher over its parts.
    pub fn new(
        contracts: Contracts,
        grpc: GrpcService,
        grpc_web: GrpcService,
        rest: RestApi,
        openapi: Bytes,
        health: Health,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                contracts,
                grpc,
                grpc_web,
                rest,
                openapi,
                health,
            }),
        }
    }
}

fn content_type(req: &Request<Body>) -> &[u8] {
    req.headers()
        .get(header::CONTENT_TYPE)
        .map_or(&[][..], HeaderValue::as_bytes)
}

fn plain(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Body::new(http_body_util::Full::new(body.into())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A unary gRPC-web answer sent whole, with its length: its message and status frames are
/// complete moments apart, and one sized body is one write for the gateway and one read for
/// the browser instead of a chunked stream of two. A body that fails on the way ends the
/// call as the stream would have: UNAVAILABLE, in the headers of an empty answer.
async fn whole(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    match http_body_util::BodyExt::collect(body).await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            Response::from_parts(parts, Body::new(http_body_util::Full::new(bytes)))
        }
        Err(status) => {
            let mut response =
                tonic::Status::unavailable(format!("the answer broke off: {}", status.message()))
                    .into_http::<Body>();
            if let Some(kind) = parts.headers.get(header::CONTENT_TYPE) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, kind.clone());
            }
            response
        }
    }
}

/// The gateway's own gRPC services (health, reflection).
fn is_local(path: &str) -> bool {
    [
        "/grpc.health.v1.Health/",
        "/grpc.reflection.v1.ServerReflection/",
        "/grpc.reflection.v1alpha.ServerReflection/",
    ]
    .iter()
    .any(|prefix| path.starts_with(prefix))
}

impl Inner {
    async fn dispatch(&self, mut req: Request<Body>) -> Response<Body> {
        if content_type(&req).starts_with(b"application/grpc") {
            // Every gRPC and gRPC-web answer names its request, as REST ones do, so a
            // browser can match a failed call to the logs (CORS exposes the header).
            let request_id = crate::gate::request_id(req.headers_mut());
            let mut response = self.dispatch_grpc(req).await;
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            return response;
        }
        self.dispatch_http(req).await
    }

    async fn dispatch_grpc(&self, req: Request<Body>) -> Response<Body> {
        let kind = content_type(&req);
        // Unknown gRPC paths are answered here, before the metrics layer: a client inventing
        // paths must not invent metric series.
        if self.contracts.method(req.uri().path()).is_none() && !is_local(req.uri().path()) {
            let status = crate::gate::no_such_method(req.uri().path());
            let mut response = status.into_http();
            if kind.starts_with(b"application/grpc-web")
                && let Ok(value) = HeaderValue::from_str(&String::from_utf8_lossy(kind))
            {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            return response;
        }
        if kind.starts_with(b"application/grpc-web") {
            let unary = self
                .contracts
                .method(req.uri().path())
                .is_some_and(|method| !method.server_streaming());
            let response = match self.grpc_web.clone().oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            return if unary {
                whole(response).await
            } else {
                response
            };
        }
        match self.grpc.clone().oneshot(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    async fn dispatch_http(&self, req: Request<Body>) -> Response<Body> {
        if req.method() == Method::GET {
            match req.uri().path() {
                "/healthz" => return plain(StatusCode::OK, "text/plain", "ok\n"),
                "/readyz" => {
                    let report = self.health.report().await;
                    let status = if report.ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    let body = serde_json::to_vec(&report).unwrap_or_default();
                    return plain(status, "application/json", body);
                }
                "/openapi.json" => {
                    return plain(StatusCode::OK, "application/json", self.openapi.clone());
                }
                "/.well-known/jwks.json" => {
                    // The same call as GET /v1/auth/jwks: identity's GetJwks as JSON.
                    let (mut parts, body) = req.into_parts();
                    parts.uri = Uri::from_static("/v1/auth/jwks");
                    let mut response = self.rest.handle(Request::from_parts(parts, body)).await;
                    if response.status().is_success() {
                        response.headers_mut().insert(
                            header::CACHE_CONTROL,
                            HeaderValue::from_static("public, max-age=300"),
                        );
                    }
                    return response;
                }
                _ => {}
            }
        }
        self.rest.handle(req).await
    }
}

impl Service<Request<Incoming>> for Gateway {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.dispatch(req.map(Body::new)).await) })
    }
}

/// Serves `connection` to its end. On shutdown, or once it is `age` old, it is sent away
/// gracefully (no new requests; those in flight finish); one sent away for its age is closed
/// after `grace` even if requests are still running (the server's own shutdown grace bounds
/// the other case).
async fn drive<C>(
    connection: C,
    shutdown: ShutdownSignal,
    age: Option<Duration>,
    grace: Duration,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    C: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + GracefulClose,
{
    tokio::pin!(connection);
    let stop = shutdown.requested();
    tokio::pin!(stop);
    let aged = async {
        match age {
            Some(age) => tokio::time::sleep(age).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(aged);
    let mut closing = false;
    let mut cut_at = None;
    loop {
        let cut = async {
            match cut_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = connection.as_mut() => return ended,
            () = &mut stop, if !closing => {
                closing = true;
                connection.as_mut().close_gracefully();
            }
            () = &mut aged, if !closing => {
                closing = true;
                metrics::counter!("mercato_gateway_connections_aged_total").increment(1);
                connection.as_mut().close_gracefully();
                cut_at = Some(tokio::time::Instant::now() + grace);
            }
            () = cut => return Ok(()),
        }
    }
}

/// A connection that can be asked to finish what it has and take nothing new.
trait GracefulClose {
    fn close_gracefully(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulClose for auto::Connection<'static, I, S, TokioExecutor>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn close_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// How connections are admitted and how long they may live.
pub struct Admission {
    /// Proxies whose `x-forwarded-for` entries are trusted (see [`crate::gate::client_addr`]).
    pub trusted_proxy_hops: usize,
    /// Open connections per client address.
    pub limit: ConnectionLimit,
    /// Age after which a connection is sent away (GOAWAY, or `Connection: close` after the
    /// request in progress), ± 10 % per connection, so clients behind a load balancer that
    /// balances per connection spread over new gateway replicas; `None`: never.
    pub max_age: Option<Duration>,
    /// How long a connection sent away for its age may finish its requests.
    pub age_grace: Duration,
}

/// Accepts connections on `listener` until `shutdown`, each served whole by one of
/// `workers` in turn, then lets open requests finish for at most `grace`. Each request
/// learns its client's address (see [`crate::gate::client_addr`]).
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    workers: Workers,
    shutdown: ShutdownSignal,
    grace: Duration,
    admission: Admission,
) where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        // Fixed flow-control windows: requests are small (capped by the size limit), and the
        // adaptive window's bandwidth probes cost a clock read per frame and extra pings.
        .max_concurrent_streams(1024);
    let Admission {
        trusted_proxy_hops,
        limit,
        max_age,
        age_grace,
    } = admission;
    // Every connection task holds a sender; when all are gone, every connection has ended.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let stop = shutdown.clone().requested();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(permit) = limit.admit(peer.ip()) else {
                    metrics::counter!("mercato_gateway_connections_refused_total").increment(1);
                    tracing::debug!(%peer, "too many connections from this address, closed");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                // The socket moves to the worker's own IO driver.
                let stream = match stream.into_std() {
                    Ok(stream) => stream,
                    Err(err) => {
                        tracing::debug!(error = %err, %peer, "connection lost before serving");
                        continue;
                    }
                };
                let service = service.clone();
                let builder = builder.clone();
                let (open, shutdown) = (open.clone(), shutdown.clone());
                let age = max_age.map(mercato_kernel::time::jittered);
                workers.next().spawn(async move {
                    let _open = open;
                    // The place is held for as long as the connection is served.
                    let _permit = permit;
                    let stream = match tokio::net::TcpStream::from_std(stream) {
                        Ok(stream) => stream,
                        Err(err) => {
                            tracing::debug!(error = %err, %peer, "connection lost before serving");
                            return;
                        }
                    };
                    let hyper_service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                        let client = crate::gate::client_addr(peer, req.headers(), trusted_proxy_hops);
                        req.extensions_mut().insert(client);
                        service.clone().oneshot(req)
                    });
                    let connection = builder
                        .serve_connection(TokioIo::new(Coalesce::new(stream)), hyper_service)
                        .into_owned();
                    if let Err(err) = drive(connection, shutdown, age, age_grace).await {
                        tracing::debug!(error = %err, %peer, "connection ended with an error");
                    }
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    drop(open);
    if tokio::time::timeout(grace, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!("grace period over, closing remaining connections");
    }
    // Joining the worker threads blocks; they stop at once, their connections done or cut.
    let _ = tokio::task::spawn_blocking(move || drop(workers)).await;
}
