//! The authenticated caller of a request.

use tonic::Status;

use super::claims::PrincipalKind;
use super::{ROLE_ADMIN, ROLE_SERVICE};

/// Who is calling, as established by [`super::AuthLayer`] from a verified token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User id or service client id.
    pub subject: String,
    /// Person or service account.
    pub kind: PrincipalKind,
    /// Roles from the token.
    pub roles: Vec<String>,
    /// The raw bearer token, for forwarding on calls made on the caller's behalf.
    pub token: String,
}

impl Principal {
    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the principal is an administrator.
    pub fn is_admin(&self) -> bool {
        self.has_role(ROLE_ADMIN)
    }

    /// Whether the principal is a service account.
    pub fn is_service(&self) -> bool {
        self.kind == PrincipalKind::Service && self.has_role(ROLE_SERVICE)
    }

    /// The caller of `request`; UNAUTHENTICATED when the method admitted anonymous callers and
    /// none was given.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Principal, Status> {
        Self::maybe(request).ok_or_else(|| {
            crate::error::unauthenticated("MISSING_TOKEN", "this call needs a bearer token")
        })
    }

    /// The caller of `request`, if it sent a token.
    pub fn maybe<T>(request: &tonic::Request<T>) -> Option<&Principal> {
        request.extensions().get::<Principal>()
    }

    /// OK when the caller owns the resource (`owner` is a user id) or is an administrator;
    /// otherwise NOT_FOUND, so ids of other users' resources are not confirmed to exist.
    pub fn require_owner_or_admin(
        &self,
        owner: &str,
        kind: &str,
        name: &str,
    ) -> Result<(), Status> {
        if self.subject == owner || self.is_admin() {
            Ok(())
        } else {
            Err(crate::error::not_found(kind, name))
        }
    }
}
