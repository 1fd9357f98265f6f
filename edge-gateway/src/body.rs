//! Reading a client's request body, whole, before any upstream is called: bounded in size
//! (`MERCATO_MAX_REQUEST_BYTES`) and in time (`MERCATO_BODY_READ_TIMEOUT_MS`, or the call's
//! deadline when nearer). Every Mercato RPC takes one request message (no client streams),
//! so nothing is lost by reading it first, and a body that is too large, never finishes or
//! cannot be decoded (gRPC-web-text that is not base64) is the caller's mistake, answered by
//! the gateway itself: it never reaches an upstream, so it never looks like an unhealthy one
//! to the circuit breaker.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use tokio::time::Instant;
use tonic::body::Body;
use tonic::{Code, Status};

/// Why a request body could not be read. All of them are the caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body (declared or sent) is larger than the limit.
    #[error("request body exceeds the limit of {max} bytes")]
    TooLarge {
        /// The limit in bytes.
        max: usize,
    },
    /// The body did not arrive completely in time.
    #[error("request body not received completely within {} ms", after.as_millis())]
    Timeout {
        /// How long the gateway waited.
        after: Duration,
    },
    /// The body could not be read or decoded (e.g. gRPC-web-text that is not base64).
    #[error("malformed request body: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
}

impl BodyError {
    /// The gRPC status the caller gets.
    pub fn status(&self) -> Status {
        let (code, reason) = match self {
            Self::TooLarge { .. } => (Code::ResourceExhausted, "REQUEST_TOO_LARGE"),
            Self::Timeout { .. } => (Code::DeadlineExceeded, "REQUEST_BODY_TIMEOUT"),
            Self::Malformed { .. } => (Code::InvalidArgument, "MALFORMED_REQUEST_BODY"),
        };
        mercato_kernel::error::with_reason(code, reason, self.to_string())
    }

    /// The HTTP status a REST caller gets: 413, 408 or 400.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Malformed { .. } => StatusCode::BAD_REQUEST,
        }
    }
}

/// Whether the `content-length` of `headers` already says the body is over `max`.
pub fn declared_too_large(headers: &http::HeaderMap, max: usize) -> bool {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > u64::try_from(max).unwrap_or(u64::MAX))
}

/// Reads `body` to its end: at most `max` bytes, complete by `by` (reported as a wait of
/// `waited`).
pub async fn read(
    body: Body,
    max: usize,
    by: Instant,
    waited: Duration,
) -> Result<Bytes, BodyError> {
    let collect = Limited::new(body, max).collect();
    match tokio::time::timeout_at(by, collect).await {
        Err(_) => Err(BodyError::Timeout { after: waited }),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.is::<LengthLimitError>() => Err(BodyError::TooLarge { max }),
        Ok(Err(err)) => {
            // tonic-web's decoding errors and the client's own connection failures arrive as
            // a status; its message says what was wrong without the "internal" framing.
            let reason = match err.downcast::<Status>() {
                Ok(status) => status.message().to_owned(),
                Err(other) => other.to_string(),
            };
            Err(BodyError::Malformed { reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    fn later(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let body = Body::new(Full::new(Bytes::from_static(b"hello")));
        let bytes = read(body, 5, later(1000), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"hello");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_resource_exhausted_or_413() {
        let body = Body::new(Full::new(Bytes::from_static(b"hello!")));
        let err = read(body, 5, later(1000), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(err.status().code(), Code::ResourceExhausted);
        assert_eq!(err.http_status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_times_out_with_408() {
        let never = futures::stream::pending::<Result<http_body::Frame<Bytes>, Status>>();
        let body = Body::new(http_body_util::StreamBody::new(never));
        let err = read(body, 5, later(300), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::Timeout { .. }), "{err}");
        assert_eq!(err.http_status(), StatusCode::REQUEST_TIMEOUT);
    }
}
