//! REST/JSON transcoding: the route table from the `google.api.http` annotations finds the
//! RPC, [`request::build`] turns path, query and body into its request message, the call goes
//! upstream through tonic's client with [`DynamicCodec`], and the answer comes back as proto3
//! JSON (a stream as NDJSON or server-sent events). The same [`Gate`] as for gRPC runs first.

pub mod request;
pub mod response;
pub mod routes;
pub mod template;

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::StreamBody;
use mercato_kernel::client::context::{GRPC_TIMEOUT, parse_timeout};
use mercato_kernel::trace::REQUEST_ID;
use prost_reflect::DynamicMessage;
use tonic::body::Body;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::body::{self, BodyError};
use crate::breaker::GatewayDeadline;
use crate::codec::DynamicCodec;
use crate::contracts::Contracts;
use crate::gate::{ClientAddr, Gate, is_internal_header, sanitize};
use crate::settings::Settings;
use crate::upstream::Upstreams;
use response::StreamFormat;
use routes::{Lookup, Route, RouteTable};

/// Headers of the HTTP request that travel on as gRPC metadata.
const FORWARDED: [&str; 5] = [
    "authorization",
    REQUEST_ID,
    "traceparent",
    "tracestate",
    "x-forwarded-for",
];

/// The REST surface.
#[derive(Clone)]
pub struct RestApi {
    inner: Arc<Inner>,
}

struct Inner {
    contracts: Contracts,
    gate: Gate,
    upstreams: Upstreams,
    table: RouteTable,
    settings: Settings,
}

impl RestApi {
    /// Serves `table`'s routes, calling `upstreams`.
    pub fn new(
        contracts: Contracts,
        gate: Gate,
        upstreams: Upstreams,
        table: RouteTable,
        settings: Settings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                contracts,
                gate,
                upstreams,
                table,
                settings,
            }),
        }
    }

    /// Answers one HTTP request.
    pub async fn handle(&self, mut req: Request<Body>) -> Response<Body> {
        let client = req.extensions().get::<ClientAddr>().copied();
        let request_id = sanitize(req.headers_mut(), client);
        let inner = &self.inner;
        let (rpc, mut response) = match inner.table.find(req.method(), req.uri().path()) {
            Lookup::Found(route, bindings) => {
                let rpc = route.method.path.clone();
                let response = match inner.call(route, bindings, req, client).await {
                    Ok(response) => response,
                    Err(Failure::Status(status)) => self.error(&status),
                    Err(Failure::Body(err)) => {
                        let mut response = self.error(&err.status());
                        *response.status_mut() = err.http_status();
                        response
                    }
                };
                (rpc, response)
            }
            Lookup::MethodNotAllowed(allowed) => {
                let names: Vec<&str> = allowed.iter().map(http::Method::as_str).collect();
                let status = Status::new(
                    Code::Unimplemented,
                    format!(
                        "{} is not allowed on {}; allowed: {}",
                        req.method(),
                        req.uri().path(),
                        names.join(", ")
                    ),
                );
                let mut response = self.error(&status);
                *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                if let Ok(value) = HeaderValue::from_str(&names.join(", ")) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
                ("unmatched".to_owned(), response)
            }
            Lookup::NotFound => {
                let status = match inner.table.empty_path_field(req.method(), req.uri().path()) {
                    Some(field) => mercato_kernel::error::invalid_argument(
                        field,
                        "path field is missing (empty path segment)",
                    ),
                    None => Status::not_found(format!(
                        "no route for {} {}",
                        req.method(),
                        req.uri().path()
                    )),
                };
                ("unmatched".to_owned(), self.error(&status))
            }
        };
        metrics::counter!(
            "mercato_gateway_rest_requests_total",
            "rpc" => rpc,
            "status" => response.status().as_u16().to_string()
        )
        .increment(1);
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        response
    }

    fn error(&self, status: &Status) -> Response<Body> {
        response::error(self.inner.contracts.pool(), status)
    }
}

impl Inner {
    async fn call(
        &self,
        route: &Route,
        bindings: template::Bindings,
        req: Request<Body>,
        client: Option<ClientAddr>,
    ) -> Result<Response<Body>, Failure> {
        let arrived = tokio::time::Instant::now();
        let method = &route.method;
        let max = self.settings.max_request_bytes;
        if body::declared_too_large(req.headers(), max) {
            return Err(Failure::Body(BodyError::TooLarge { max }));
        }
        self.gate.admit(method, req.headers(), client).await?;
        if let Some(content_type) = req.headers().get(header::CONTENT_TYPE)
            && !content_type.to_str().is_ok_and(|t| t.contains("json"))
        {
            return Err(Failure::Status(mercato_kernel::error::invalid_argument(
                "body",
                "the request body must be application/json",
            )));
        }
        let (parts, body) = req.into_parts();
        // A body that stops arriving must not hold the connection past the read timeout.
        let waited = self.settings.body_read_timeout;
        let body = body::read(body, max, arrived + waited, waited)
            .await
            .map_err(Failure::Body)?;
        let message = request::build(route, bindings, parts.uri.query(), &body)?;

        let mut call = tonic::Request::new(message);
        forward_metadata(&parts.headers, call.metadata_mut());
        // A REST client may set a deadline the gRPC way; unary calls without one get the
        // gateway's default, streams none.
        let client_timeout = parts
            .headers
            .get(GRPC_TIMEOUT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_timeout);
        let timeout =
            client_timeout.or((!method.server_streaming()).then_some(self.settings.unary_timeout));
        if let Some(timeout) = timeout {
            call.set_timeout(timeout);
            if client_timeout.is_none() {
                // The breaker counts calls that outlive the gateway's own deadline.
                call.extensions_mut()
                    .insert(GatewayDeadline(arrived + timeout));
            }
        }
        let upstream = self
            .upstreams
            .get(method.component)
            .ok_or_else(|| Status::unavailable(format!("no upstream for {}", method.component)))?
            .clone();
        let mut grpc = tonic::client::Grpc::new(upstream);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_maybe_shared(Bytes::from(method.path.clone()))
            .map_err(|e| Status::internal(e.to_string()))?;
        let codec = DynamicCodec::new(method.descriptor.output());
        if method.server_streaming() {
            let format = StreamFormat::negotiate(&parts.headers);
            let stream = grpc.server_streaming(call, path, codec).await?.into_inner();
            Ok(self.stream_response(stream, format))
        } else {
            let deadline = timeout.unwrap_or(self.settings.unary_timeout);
            let reply = tokio::time::timeout(deadline, grpc.unary(call, path, codec))
                .await
                .map_err(|_| Status::deadline_exceeded("no answer before the deadline"))??;
            Ok(response::json(response::to_json(reply.get_ref())?))
        }
    }

    fn stream_response(
        &self,
        stream: tonic::Streaming<DynamicMessage>,
        format: StreamFormat,
    ) -> Response<Body> {
        let pool = self.contracts.pool().clone();
        // Each message becomes one frame; an error is written as the last frame, since the
        // HTTP status (200) is already on its way.
        let frames = futures::stream::unfold(Some(stream), move |state| {
            let pool = pool.clone();
            async move {
                let mut stream = state?;
                match stream.message().await {
                    Ok(Some(message)) => match response::to_json(&message) {
                        Ok(json) => Some((format.message(&json), Some(stream))),
                        Err(status) => Some((format.error(&pool, &status), None)),
                    },
                    Ok(None) => None,
                    Err(status) => Some((format.error(&pool, &status), None)),
                }
            }
        })
        .map(|bytes| Ok::<_, std::convert::Infallible>(Frame::data(bytes)));
        let mut response = Response::new(Body::new(StreamBody::new(frames)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

/// Why a REST call failed: a gRPC status (the HTTP status follows its code), or a body the
/// client got wrong, with an HTTP status of its own (413, 408).
enum Failure {
    Status(Status),
    Body(BodyError),
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Self::Status(status)
    }
}

impl From<request::BadRequest> for Failure {
    fn from(bad: request::BadRequest) -> Self {
        Self::Status(bad.into())
    }
}

/// Prefix of REST request headers passed on as gRPC metadata (grpc-gateway's convention):
/// `grpc-metadata-tenant: x` arrives upstream as `tenant: x`.
const METADATA_PREFIX: &str = "grpc-metadata-";

fn forward_metadata(headers: &http::HeaderMap, metadata: &mut MetadataMap) {
    for name in FORWARDED {
        if let Some(value) = headers
            .get(name)
            .and_then(|v| MetadataValue::try_from(v.as_bytes()).ok())
        {
            metadata.insert(name, value);
        }
    }
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix(METADATA_PREFIX) else {
            continue;
        };
        // The same hygiene as for native gRPC: nothing the mesh reserves, no protocol headers.
        if key.is_empty()
            || key.starts_with("grpc-")
            || is_internal_header(key)
            || FORWARDED.contains(&key)
        {
            continue;
        }
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::AsciiMetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_bytes()),
        ) {
            metadata.append(key, value);
        }
    }
}
