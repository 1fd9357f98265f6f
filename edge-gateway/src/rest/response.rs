//! Proto3 JSON out: single messages, streams as newline-delimited JSON or server-sent
//! events, and errors as `{"code", "message", "details"}` with the HTTP status that the gRPC
//! code maps to.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use tonic::body::Body;
use tonic::{Code, Status};

/// Content type of JSON responses.
pub const JSON: &str = "application/json";
/// Content type of newline-delimited JSON streams.
pub const NDJSON: &str = "application/x-ndjson";
/// Content type of server-sent event streams.
pub const EVENT_STREAM: &str = "text/event-stream";

/// lowerCamelCase names, 64-bit integers as strings, enums by name, and every field without
/// presence written even when it holds its default (clients need not know proto defaults).
pub fn serialize_options() -> SerializeOptions {
    SerializeOptions::new().skip_default_fields(false)
}

/// A message as proto3 JSON.
pub fn to_json(message: &DynamicMessage) -> Result<Vec<u8>, Status> {
    let mut out = Vec::with_capacity(message.encoded_len() * 2 + 16);
    let mut serializer = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut serializer, &serialize_options())
        .map_err(|e| Status::internal(format!("response is not representable as JSON: {e}")))?;
    Ok(out)
}

/// The HTTP status of a gRPC code (the mapping of `google/rpc/code.proto`).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON error body of `status`: its `google.rpc.Status` details rendered as proto3 JSON
/// (`{"@type": "type.googleapis.com/google.rpc.BadRequest", …}`).
pub fn error_json(pool: &DescriptorPool, status: &Status) -> serde_json::Value {
    let details = pool
        .get_message_by_name("google.rpc.Status")
        .filter(|_| !status.details().is_empty())
        .and_then(|descriptor| DynamicMessage::decode(descriptor, status.details()).ok())
        .and_then(|rpc_status| {
            let mut out = Vec::new();
            let mut serializer = serde_json::Serializer::new(&mut out);
            rpc_status
                .serialize_with_options(&mut serializer, &SerializeOptions::new())
                .ok()?;
            let value: serde_json::Value = serde_json::from_slice(&out).ok()?;
            value.get("details").cloned()
        })
        .unwrap_or_else(|| serde_json::Value::Array(Vec::new()));
    serde_json::json!({
        "code": status.code() as i32,
        "message": status.message(),
        "details": details,
    })
}

/// The HTTP response for a failed call.
pub fn error(pool: &DescriptorPool, status: &Status) -> Response<Body> {
    let body = serde_json::to_vec(&error_json(pool, status)).unwrap_or_default();
    let mut response = Response::new(Body::new(http_body_util::Full::new(Bytes::from(body))));
    *response.status_mut() = http_status(status.code());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    if let Some(retry_after) = status
        .metadata()
        .get("retry-after")
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after);
    }
    response
}

/// A 200 response with a JSON body.
pub fn json(body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::new(http_body_util::Full::new(Bytes::from(body))));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

/// How a server stream is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// One JSON document per line; an error ends the stream as `{"error": {…}}`.
    NdJson,
    /// `data: <json>` events; an error is an `event: error`.
    EventStream,
}

impl StreamFormat {
    /// Server-sent events when the client asks for them, NDJSON otherwise.
    pub fn negotiate(headers: &http::HeaderMap) -> Self {
        let wants_events = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(EVENT_STREAM));
        if wants_events {
            Self::EventStream
        } else {
            Self::NdJson
        }
    }

    /// The content type of the stream.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::NdJson => NDJSON,
            Self::EventStream => EVENT_STREAM,
        }
    }

    /// One message, framed.
    pub fn message(self, json: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(json.len() + 8);
        if self == Self::EventStream {
            out.extend_from_slice(b"data: ");
        }
        out.extend_from_slice(json);
        out.extend_from_slice(if self == Self::EventStream {
            b"\n\n"
        } else {
            b"\n"
        });
        out.into()
    }

    /// The error that ends the stream, framed.
    pub fn error(self, pool: &DescriptorPool, status: &Status) -> Bytes {
        let error = error_json(pool, status);
        match self {
            Self::NdJson => {
                let mut line =
                    serde_json::to_vec(&serde_json::json!({ "error": error })).unwrap_or_default();
                line.push(b'\n');
                line.into()
            }
            Self::EventStream => format!("event: error\ndata: {error}\n\n").into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_http_statuses() {
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(Code::PermissionDenied), StatusCode::FORBIDDEN);
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(
            http_status(Code::ResourceExhausted),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            http_status(Code::DeadlineExceeded),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(http_status(Code::Cancelled).as_u16(), 499);
    }

    #[test]
    fn errors_carry_their_details_as_proto3_json() {
        let pool = prost_reflect::DescriptorPool::decode(mercato::DESCRIPTOR_SET).unwrap();
        let status = mercato_kernel::error::invalid_argument("product.price", "must be > 0");
        let json = error_json(&pool, &status);
        assert_eq!(json["code"], 3);
        assert_eq!(
            json["details"][0]["@type"],
            "type.googleapis.com/google.rpc.BadRequest"
        );
        assert_eq!(
            json["details"][0]["fieldViolations"][0]["field"],
            "product.price"
        );
        let plain = error_json(&pool, &Status::not_found("no such product"));
        assert_eq!(plain["details"], serde_json::json!([]));
        assert_eq!(plain["message"], "no such product");
    }

    #[test]
    fn streams_are_framed_as_ndjson_or_events() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(StreamFormat::negotiate(&headers), StreamFormat::NdJson);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        let sse = StreamFormat::negotiate(&headers);
        assert_eq!(sse, StreamFormat::EventStream);
        assert_eq!(&sse.message(b"{}")[..], b"data: {}\n\n");
        assert_eq!(&StreamFormat::NdJson.message(b"{}")[..], b"{}\n");
    }
}
