//! The error model: canonical gRPC codes with `google.rpc` details. Bad input becomes
//! INVALID_ARGUMENT with one `BadRequest.FieldViolation` per problem; infrastructure trouble
//! becomes UNAVAILABLE; an unexpected failure is logged once with its cause chain and becomes
//! INTERNAL without leaking the cause.

use std::collections::HashMap;
use std::fmt::Display;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};

/// `ErrorInfo.domain` of every Mercato error.
pub const DOMAIN: &str = "mercato.dev";

/// Collects every problem of a request before answering, so a client fixes them in one go.
#[derive(Debug, Default, Clone)]
pub struct FieldViolations(Vec<FieldViolation>);

impl FieldViolations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` (a proto field path such as `product.price.units`) is invalid.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Records the violation of a nested check under `prefix` (e.g. `product.`).
    pub fn extend_prefixed(&mut self, prefix: &str, other: FieldViolations) {
        for v in other.0 {
            self.0.push(FieldViolation::new(
                format!("{prefix}{}", v.field),
                v.description,
            ));
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when empty, otherwise the INVALID_ARGUMENT status carrying every violation.
    pub fn into_result(self) -> Result<(), Status> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.into_status())
        }
    }

    /// The INVALID_ARGUMENT status carrying every violation.
    pub fn into_status(self) -> Status {
        let message = match self.0.as_slice() {
            [one] => format!("invalid {}: {}", one.field, one.description),
            many => format!(
                "invalid request: {}",
                many.iter()
                    .map(|v| v.field.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Status::with_error_details(
            Code::InvalidArgument,
            message,
            ErrorDetails::with_bad_request(self.0),
        )
    }
}

/// INVALID_ARGUMENT for a single field.
pub fn invalid_argument(field: impl Into<String>, description: impl Into<String>) -> Status {
    let mut violations = FieldViolations::new();
    violations.add(field, description);
    violations.into_status()
}

/// NOT_FOUND for a resource of `kind` named `name`.
pub fn not_found(kind: &str, name: &str) -> Status {
    Status::with_error_details(
        Code::NotFound,
        format!("{kind} {name} not found"),
        ErrorDetails::with_resource_info(kind, name, "", "not found"),
    )
}

/// ALREADY_EXISTS with a machine-readable `reason`.
pub fn already_exists(reason: &str, message: impl Into<String>) -> Status {
    with_reason(Code::AlreadyExists, reason, message)
}

/// FAILED_PRECONDITION with a machine-readable `reason`.
pub fn failed_precondition(reason: &str, message: impl Into<String>) -> Status {
    with_reason(Code::FailedPrecondition, reason, message)
}

/// UNAUTHENTICATED with a machine-readable `reason`.
pub fn unauthenticated(reason: &str, message: impl Into<String>) -> Status {
    with_reason(Code::Unauthenticated, reason, message)
}

/// PERMISSION_DENIED with a machine-readable `reason`.
pub fn permission_denied(reason: &str, message: impl Into<String>) -> Status {
    with_reason(Code::PermissionDenied, reason, message)
}

/// Any code with an `ErrorInfo` whose `reason` (UPPER_SNAKE) clients can switch on.
pub fn with_reason(code: Code, reason: &str, message: impl Into<String>) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, DOMAIN, HashMap::new()),
    )
}

/// UNAVAILABLE because `dependency` failed; the cause is logged, the client may retry.
pub fn unavailable(dependency: &str, cause: impl Display) -> Status {
    tracing::warn!(dependency, error = %cause, "dependency unavailable");
    with_reason(
        Code::Unavailable,
        "DEPENDENCY_UNAVAILABLE",
        format!("{dependency} is unavailable, retry later"),
    )
}

/// INTERNAL for a failure the client cannot fix; the cause is logged here, once.
pub fn internal(cause: impl Display) -> Status {
    tracing::error!(error = %cause, "internal error");
    Status::internal("internal error")
}

#[cfg(feature = "database")]
/// A failed query: lost connections are UNAVAILABLE, serialization conflicts ABORTED (safe to
/// retry), everything else INTERNAL.
pub fn database(err: diesel::result::Error) -> Status {
    use diesel::result::{DatabaseErrorKind, Error};
    match &err {
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
            with_reason(Code::Aborted, "CONFLICT", "concurrent update, retry")
        }
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
        | Error::BrokenTransactionManager => unavailable("database", err),
        _ => internal(err),
    }
}

/// No pooled connection could be had: the database is down or saturated.
pub fn pool(err: impl Display) -> Status {
    unavailable("database", err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_all_reported_in_one_status() {
        let mut v = FieldViolations::new();
        v.add("email", "not an e-mail address");
        v.add("password", "must be at least 10 characters");
        let status = v.into_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        assert_eq!(bad.field_violations.len(), 2);
        assert_eq!(bad.field_violations[1].field, "password");
    }

    #[test]
    fn no_violation_is_ok() {
        assert!(FieldViolations::new().into_result().is_ok());
    }

    #[test]
    fn internal_hides_the_cause() {
        let status = internal("password for db is hunter2");
        assert_eq!(status.message(), "internal error");
    }
}
