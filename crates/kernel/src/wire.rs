//! Every request checked on the wire before its handler decodes it, so the caller's mistakes
//! are answered as theirs: a broken gRPC frame or protobuf encoding is INVALID_ARGUMENT
//! "malformed request body" (tonic and prost call it INTERNAL, which reads as our fault and
//! gets retried), and a string holding U+0000 is INVALID_ARGUMENT with a field violation
//! naming it, for every string of every RPC, before it can reach Postgres (which refuses NUL
//! in `text`) or Redis.
//!
//! The check streams: complete frames are checked and passed on as they arrive (the common
//! single-frame body is passed on without a copy); only a frame split across reads is held
//! until it is whole.

mod scan;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes, BytesMut};
use http::Request;
use http_body::Frame;
use prost_reflect::MessageDescriptor;
use tonic::body::Body;
use tonic::{Code, Status};

use scan::{Problem, check};

/// The gRPC message header: compressed flag and big-endian length.
const HEADER: usize = 5;

/// Wraps the body of a request to a Mercato RPC in the check, with messages of at most
/// `limit` bytes (`MERCATO_MAX_MESSAGE_BYTES`); other paths (health, reflection, unknown
/// methods) pass untouched. For `ServiceBuilder::map_request`.
pub fn check_request(request: Request<Body>, limit: usize) -> Request<Body> {
    let Some(input) = inputs().get(request.uri().path()) else {
        return request;
    };
    let compressed = request
        .headers()
        .get("grpc-encoding")
        .is_some_and(|encoding| encoding != "identity");
    let frames = Frames::new(input.clone(), compressed, limit);
    request.map(|body| Body::new(CheckedBody::new(body, frames)))
}

/// RPC path (`/package.Service/Method`) → its request message, for every contract.
fn inputs() -> &'static HashMap<String, MessageDescriptor> {
    static INPUTS: OnceLock<HashMap<String, MessageDescriptor>> = OnceLock::new();
    INPUTS.get_or_init(|| match crate::contracts::pool() {
        Ok(pool) => pool
            .services()
            .flat_map(|service| service.methods().collect::<Vec<_>>())
            .map(|method| {
                let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
                (path, method.input())
            })
            .collect(),
        // Compiled in by build.rs: unreadable only through a build defect. Requests then go
        // unchecked to prost, as before this layer existed.
        Err(err) => {
            tracing::error!(error = %err, "cannot read the descriptor set; requests go unchecked");
            HashMap::new()
        }
    })
}

/// The status a caller gets for `problem`.
fn problem_status(problem: Problem) -> Status {
    match problem {
        Problem::Malformed => malformed("malformed request body"),
        Problem::Text { field, description } => crate::error::invalid_argument(field, description),
    }
}

fn malformed(message: &str) -> Status {
    crate::error::with_reason(Code::InvalidArgument, "MALFORMED_REQUEST", message)
}

/// Splits a request body into gRPC frames and checks each one as it completes.
#[derive(Debug)]
struct Frames {
    input: MessageDescriptor,
    /// The request declares a `grpc-encoding`: compressed frames are legal (and opaque here).
    compressed: bool,
    /// Largest message accepted, in bytes: a longer one is refused before it is buffered.
    limit: usize,
    /// The start of a frame that has not fully arrived.
    pending: BytesMut,
}

impl Frames {
    fn new(input: MessageDescriptor, compressed: bool, limit: usize) -> Self {
        Self {
            input,
            compressed,
            limit,
            pending: BytesMut::new(),
        }
    }

    /// Takes the next chunk of the body; returns the complete, checked frames to pass on
    /// (empty while a frame is still arriving).
    fn push(&mut self, chunk: Bytes) -> Result<Bytes, Status> {
        if self.pending.is_empty() {
            let whole = self.complete(&chunk)?;
            if whole < chunk.len() {
                self.pending.extend_from_slice(&chunk[whole..]);
            }
            return Ok(chunk.slice(..whole));
        }
        self.pending.extend_from_slice(&chunk);
        let whole = self.complete(&self.pending)?;
        Ok(self.pending.split_to(whole).freeze())
    }

    /// The body ended: a frame left half-sent is the caller's mistake.
    fn finish(&self) -> Result<(), Status> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err(malformed(
                "malformed request body: the last message is shorter than its length prefix",
            ))
        }
    }

    /// How many bytes at the start of `buf` are complete frames, each checked.
    fn complete(&self, mut buf: &[u8]) -> Result<usize, Status> {
        let mut whole = 0;
        while buf.len() >= HEADER {
            let flag = buf[0];
            let len = (&buf[1..HEADER]).get_u32() as usize;
            match flag {
                0 => {}
                1 if self.compressed => {}
                1 => {
                    return Err(malformed(
                        "malformed request body: compressed message without grpc-encoding",
                    ));
                }
                _ => {
                    return Err(malformed(
                        "malformed request body: message flag must be 0 or 1",
                    ));
                }
            }
            if len > self.limit {
                return Err(Status::resource_exhausted(format!(
                    "request message of {len} bytes is over the limit of {} bytes",
                    self.limit
                )));
            }
            let Some(message) = buf.get(HEADER..HEADER + len) else {
                break;
            };
            if flag == 0 {
                check(&self.input, message).map_err(problem_status)?;
            }
            whole += HEADER + len;
            buf = &buf[HEADER + len..];
        }
        Ok(whole)
    }
}

pin_project_lite::pin_project! {
    /// A request body whose frames have passed [`Frames`]; a failed check ends it with the
    /// status, which the handler's decoder returns as the call's answer.
    struct CheckedBody {
        #[pin]
        inner: Body,
        frames: Frames,
        failed: bool,
    }
}

impl CheckedBody {
    fn new(inner: Body, frames: Frames) -> Self {
        Self {
            inner,
            frames,
            failed: false,
        }
    }
}

impl http_body::Body for CheckedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let mut this = self.project();
        loop {
            if *this.failed {
                return Poll::Ready(None);
            }
            let checked = match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(chunk) => this.frames.push(chunk),
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Some(Err(status)) => return Poll::Ready(Some(Err(status))),
                None => match this.frames.finish() {
                    Ok(()) => return Poll::Ready(None),
                    Err(status) => Err(status),
                },
            };
            match checked {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Err(status) => {
                    tracing::debug!(code = ?status.code(), message = status.message(), "request refused on the wire");
                    *this.failed = true;
                    return Poll::Ready(Some(Err(status)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.inner.is_end_stream() && self.frames.pending.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use mercato::pb::catalog::v1::ListProductsRequest;
    use prost::Message as _;

    const LIST: &str = "/mercato.catalog.v1.CatalogService/ListProducts";
    const LIMIT: usize = 4 * 1024 * 1024;

    fn frame(message: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend((message.len() as u32).to_be_bytes());
        out.extend(message);
        out
    }

    fn frames() -> Frames {
        Frames::new(inputs()[LIST].clone(), false, LIMIT)
    }

    fn list(query: &str) -> Vec<u8> {
        ListProductsRequest {
            query: query.into(),
            page_size: 5,
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn every_contract_method_has_its_request_type() {
        assert_eq!(
            inputs()[LIST].full_name(),
            "mercato.catalog.v1.ListProductsRequest"
        );
        assert!(inputs().contains_key("/mercato.order.v1.OrderService/PlaceOrder"));
    }

    #[test]
    fn a_whole_frame_passes_as_it_came() {
        let body = Bytes::from(frame(&list("lamp")));
        let passed = frames().push(body.clone()).unwrap();
        assert_eq!(passed, body);
        assert_eq!(passed.as_ptr(), body.as_ptr(), "no copy");
    }

    #[test]
    fn a_frame_split_across_chunks_passes_once_whole() {
        let body = frame(&list("lamp"));
        let mut frames = frames();
        let mut passed = Vec::new();
        for chunk in body.chunks(3) {
            passed.extend(frames.push(Bytes::copy_from_slice(chunk)).unwrap());
        }
        frames.finish().unwrap();
        assert_eq!(passed, body);
    }

    #[test]
    fn bad_frames_and_encodings_are_invalid_argument() {
        let cases: Vec<Vec<u8>> = vec![
            vec![1, 0, 0, 0, 1, 0x08], // compressed flag, no grpc-encoding
            vec![7, 0, 0, 0, 1, 0x08], // flag 7
            frame(&[0x08 | 0x80]),     // truncated varint
            frame(&list("a\0b")),      // NUL in text
        ];
        for case in cases {
            let status = frames().push(case.into()).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
        }
        let nul = frames().push(frame(&list("a\0b")).into()).unwrap_err();
        assert_eq!(
            nul.message(),
            "invalid query: must not contain NUL characters"
        );
    }

    #[test]
    fn a_frame_shorter_than_its_prefix_is_refused_at_the_end() {
        let mut frames = frames();
        let passed = frames.push(Bytes::from_static(b"\x00\x00\x00\x00\x64\x08\x01"));
        assert!(passed.unwrap().is_empty());
        assert_eq!(frames.finish().unwrap_err().code(), Code::InvalidArgument);
    }

    #[test]
    fn a_message_over_the_limit_is_resource_exhausted_before_it_is_buffered() {
        let mut header = vec![0];
        header.extend((LIMIT as u32 + 1).to_be_bytes());
        let status = frames().push(header.into()).unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
    }

    #[test]
    fn compressed_frames_pass_when_an_encoding_is_declared() {
        let mut frames = Frames::new(inputs()[LIST].clone(), true, LIMIT);
        let body = Bytes::from_static(&[1, 0, 0, 0, 2, 0xff, 0xff]);
        assert_eq!(frames.push(body.clone()).unwrap(), body);
    }

    #[tokio::test]
    async fn the_body_ends_with_the_status_the_decoder_returns() {
        let request = Request::builder()
            .uri(LIST)
            .body(Body::new(http_body_util::Full::new(Bytes::from(frame(
                &list("a\0"),
            )))))
            .unwrap();
        let error = check_request(request, LIMIT)
            .into_body()
            .collect()
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);

        let untouched = Request::builder()
            .uri("/grpc.health.v1.Health/Check")
            .body(Body::new(http_body_util::Full::new(Bytes::from_static(
                b"\x07",
            ))))
            .unwrap();
        let bytes = check_request(untouched, LIMIT)
            .into_body()
            .collect()
            .await
            .unwrap();
        assert_eq!(bytes.to_bytes().as_ref(), b"\x07");
    }
}
