//! Starting a gateway for one test, and a plain HTTP client to talk to it.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use edge_gateway::{RunningGateway, Settings};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mercato_kernel::ServiceConfig;
use mercato_kernel::config::{SERVICES, upstream_var};

/// An address nothing listens on: calls to it fail at once with "connection refused".
pub const DOWN: &str = "http://127.0.0.1:9";

/// Starts a gateway verifying tokens with the identity at `identity_url`, with every
/// component at `upstreams` (component → URL; the rest are down) and `extra` settings.
pub async fn gateway(
    identity_url: &str,
    upstreams: &[(&str, String)],
    extra: &[(&str, &str)],
) -> RunningGateway {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("MERCATO_GRPC_ADDR".into(), "127.0.0.1:0".into());
    env.insert("MERCATO_ADMIN_ADDR".into(), "127.0.0.1:0".into());
    env.insert("MERCATO_LOG_FORMAT".into(), "pretty".into());
    env.insert("MERCATO_SHUTDOWN_GRACE_SECS".into(), "1".into());
    for service in SERVICES {
        env.insert(upstream_var(service), DOWN.into());
    }
    env.insert(upstream_var("identity"), identity_url.into());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let mut config = ServiceConfig::from_source("edge-gateway", &env).expect("config");
    for (component, url) in upstreams {
        // The verifier keeps the real identity; only the routing changes.
        config
            .peers
            .upstreams
            .insert((*component).into(), url.clone());
    }
    let settings = Settings::from_env(&env).expect("settings");
    edge_gateway::start(config, settings)
        .await
        .expect("gateway starts")
}

/// A tonic channel to the gateway.
pub async fn grpc(addr: SocketAddr) -> tonic::transport::Channel {
    mercato_testkit::channel(addr).await
}

/// A response read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A plain HTTP/1.1 client, as a browser or curl would talk to the gateway.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
        }
    }

    /// A request builder for `method path` on the gateway.
    pub fn builder(&self, method: &str, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
    }

    /// Sends `request` and reads the whole answer.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        let response = self.client.request(request).await.expect("request sent");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body read").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Sends `request` and returns the answer with its body still streaming.
    pub async fn open(
        &self,
        request: Request<Full<Bytes>>,
    ) -> http::Response<hyper::body::Incoming> {
        self.client.request(request).await.expect("request sent")
    }

    /// A JSON call: `body` (if any) as JSON, `token` as bearer.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Reply {
        let mut builder = self.builder(method, path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(&json).unwrap())
            }
            None => Bytes::new(),
        };
        self.send(builder.body(Full::new(body)).unwrap()).await
    }
}

/// Asserts the status of `reply`, showing its body when it differs.
#[track_caller]
pub fn expect_status(reply: &Reply, status: u16) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "unexpected status; body: {}",
        reply.text()
    );
}

/// A raw HTTP/1.1 exchange, as curl would have it: `head` (request line and headers, without
/// the blank line), then the `body` bytes as given (already chunked, if the head says so),
/// then the answer read until the gateway closes the connection (`connection: close`).
/// Returns the status and everything after the status line, headers and body.
pub async fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{head}\r\nhost: {addr}\r\nconnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the gateway answers and closes")
    .ok();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    (status, text)
}

/// `data` as one HTTP/1.1 chunk followed by the last chunk.
pub fn chunked(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n0\r\n\r\n");
    out
}
