//! One HTTP/2 connection to an upstream, opened on first use and reopened when it closes.
//!
//! The gateway hands requests straight to hyper's HTTP/2 client instead of going through a
//! tonic `Channel`: a channel puts a buffer task in front of its connection, one more task
//! hop and queue per request, which a proxy that only forwards streams does not need.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
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
        /// hyper's error.
        source: hyper::Error,
    },
}

/// Where an upstream is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct Target {
    scheme: Scheme,
    authority: Authority,
    connect_timeout: Duration,
}

impl Target {
    /// The target of `uri` (`http://host:port`), or `None` when it names no host.
    pub fn from_uri(uri: &Uri, connect_timeout: Duration) -> Option<Self> {
        let authority = uri.authority()?.clone();
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTP);
        let authority = if authority.port_u16().is_some() {
            authority
        } else {
            let port = if scheme == Scheme::HTTPS { 443 } else { 80 };
            format!("{}:{port}", authority.host()).parse().ok()?
        };
        Some(Self {
            scheme,
            authority,
            connect_timeout,
        })
    }

    /// `uri` re-addressed to this target: its path and query, the target's scheme and
    /// authority (h2 sends them as `:scheme` and `:authority`).
    fn address(&self, uri: Uri) -> Uri {
        let mut parts = uri.into_parts();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        // Scheme, authority and path are all set, the one combination `from_parts` requires.
        Uri::from_parts(parts).unwrap_or_default()
    }
}

/// A shared HTTP/2 connection; cloning shares it.
#[derive(Clone)]
pub struct Connection {
    target: Arc<Target>,
    current: Arc<Mutex<Option<SendRequest<Body>>>>,
    // Held while connecting, so a burst of calls after a drop opens one connection, not many.
    connecting: Arc<tokio::sync::Mutex<()>>,
}

impl Connection {
    /// A connection to `target`, opened by the first call.
    pub fn lazy(target: Target) -> Self {
        Self {
            target: Arc::new(target),
            current: Arc::default(),
            connecting: Arc::default(),
        }
    }

    /// Sends `req` and waits for the response head; the body streams afterwards.
    pub async fn send(&self, mut req: Request<Body>) -> Result<Response<Body>, BoxError> {
        *req.uri_mut() = self.target.address(std::mem::take(req.uri_mut()));
        let mut sender = self.sender().await?;
        let response = sender.send_request(req).await?;
        Ok(response.map(Body::new))
    }

    fn open(&self) -> Option<SendRequest<Body>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|sender| !sender.is_closed())
            .cloned()
    }

    async fn sender(&self) -> Result<SendRequest<Body>, ConnectError> {
        if let Some(sender) = self.open() {
            return Ok(sender);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(sender) = self.open() {
            return Ok(sender);
        }
        let sender = self.connect().await?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender.clone());
        Ok(sender)
    }

    async fn connect(&self) -> Result<SendRequest<Body>, ConnectError> {
        let target = &self.target;
        let tcp = tokio::time::timeout(
            target.connect_timeout,
            TcpStream::connect(target.authority.as_str()),
        )
        .await
        .map_err(|_| ConnectError::Timeout(target.authority.clone()))?
        .map_err(|source| ConnectError::Tcp {
            authority: target.authority.clone(),
            source,
        })?;
        // Small gRPC frames must leave at once, not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // A peer that vanished without a FIN is noticed, and idle connections stay open
            // through NATs and load balancers.
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(Coalesce::new(tcp)))
            .await
            .map_err(|source| ConnectError::Handshake {
                authority: target.authority.clone(),
                source,
            })?;
        let authority = target.authority.clone();
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, %authority, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str) -> Target {
        Target::from_uri(&uri.parse().unwrap(), Duration::from_secs(1)).unwrap()
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
    fn the_port_defaults_by_scheme() {
        assert_eq!(target("http://catalog").authority.as_str(), "catalog:80");
        assert!(Target::from_uri(&"/no/host".parse().unwrap(), Duration::ZERO).is_none());
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
