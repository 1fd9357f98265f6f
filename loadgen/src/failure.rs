//! How a call failed, classified once where the answer arrives, so summaries count errors by
//! the gRPC code or HTTP status a client saw rather than by message text.

use std::fmt;

/// The class of a failed call: what the error tables count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// A gRPC status other than OK (native gRPC and gRPC-web).
    Grpc(tonic::Code),
    /// An HTTP status other than 2xx (REST).
    Http(u16),
    /// No answer: the connection could not be made or broke.
    Transport,
    /// No answer within the call's timeout (or, for a watched order, the settle timeout).
    Timeout,
    /// An answer that does not have the shape of the contract.
    Malformed,
    /// An answer that is well formed but not what the shopper's action must lead to.
    Unexpected(Unexpected),
}

/// Outcomes no correct shop produces for the action taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unexpected {
    /// The order was cancelled although the card was good.
    Cancelled,
    /// The order was confirmed although the card was the declining one.
    ConfirmedDespiteDecline,
    /// The stream ended before the order settled.
    StreamEnded,
}

impl Failure {
    /// The label of error tables: `UNAVAILABLE`, `HTTP 503`, `timeout`, …
    pub fn label(self) -> String {
        match self {
            Failure::Grpc(code) => code_name(code).to_owned(),
            Failure::Http(status) => format!("HTTP {status}"),
            Failure::Transport => "transport".to_owned(),
            Failure::Timeout => "timeout".to_owned(),
            Failure::Malformed => "malformed answer".to_owned(),
            Failure::Unexpected(what) => match what {
                Unexpected::Cancelled => "order cancelled",
                Unexpected::ConfirmedDespiteDecline => "declining card confirmed",
                Unexpected::StreamEnded => "stream ended unsettled",
            }
            .to_owned(),
        }
    }
}

/// The canonical name of a gRPC code, as `google/rpc/code.proto` spells it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A failed call: its class and what the answer said (shown once per class in the summary).
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    /// What the error tables count.
    pub failure: Failure,
    /// The message, for a person reading why.
    pub detail: String,
    /// Seconds the server asked the caller to wait (`retry-after`), when it did.
    pub retry_after: Option<u64>,
}

impl CallError {
    /// A failure with a message.
    pub fn new(failure: Failure, detail: impl Into<String>) -> Self {
        Self {
            failure,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// An answer that does not fit the contract.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(Failure::Malformed, detail)
    }

    /// Whether the server refused for a rate limit (gRPC RESOURCE_EXHAUSTED, HTTP 429).
    pub fn is_rate_limited(&self) -> bool {
        matches!(
            self.failure,
            Failure::Grpc(tonic::Code::ResourceExhausted) | Failure::Http(429)
        )
    }
}

impl From<tonic::Status> for CallError {
    fn from(status: tonic::Status) -> Self {
        let retry_after = status
            .metadata()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Self {
            failure: Failure::Grpc(status.code()),
            detail: status.message().to_owned(),
            retry_after,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            f.write_str(&self.failure.label())
        } else {
            write!(f, "{}: {}", self.failure.label(), self.detail)
        }
    }
}

impl std::error::Error for CallError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_labelled_by_their_canonical_code() {
        let mut status = tonic::Status::resource_exhausted("slow down");
        status.metadata_mut().insert(
            "retry-after",
            tonic::metadata::MetadataValue::from_static("2"),
        );
        let error = CallError::from(status);
        assert_eq!(error.failure.label(), "RESOURCE_EXHAUSTED");
        assert_eq!(error.retry_after, Some(2));
        assert!(error.is_rate_limited());
        assert_eq!(error.to_string(), "RESOURCE_EXHAUSTED: slow down");
        assert_eq!(Failure::Http(503).label(), "HTTP 503");
        assert!(CallError::new(Failure::Http(429), "").is_rate_limited());
        assert!(!CallError::new(Failure::Http(503), "").is_rate_limited());
    }
}
