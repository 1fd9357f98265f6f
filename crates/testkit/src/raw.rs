//! Calls with hand-made gRPC bodies, for tests of what a broken or hostile client sends: the
//! generated clients cannot send a bad varint or a frame shorter than its length prefix.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// `message` in one gRPC frame: flag 0, big-endian length, the bytes.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend(
        u32::try_from(message.len())
            .expect("small message")
            .to_be_bytes(),
    );
    out.extend(message);
    out
}

/// Sends `body` as it is as the request body of the RPC at `path` (`/package.Service/Method`)
/// and returns the call's status (code `Ok` when it succeeded).
pub async fn raw_grpc(
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> tonic::Status {
    let channel = crate::channel(addr).await;
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("http://{addr}{path}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers");
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from(body),
        )))
        .expect("request");
    let response = channel.oneshot(request).await.expect("call");
    if let Some(status) = tonic::Status::from_header_map(response.headers()) {
        return status;
    }
    let collected = response.into_body().collect().await.expect("response body");
    collected
        .trailers()
        .and_then(tonic::Status::from_header_map)
        .expect("grpc-status in the trailers")
}
