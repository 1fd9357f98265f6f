//! The claims of a Mercato access token.

use serde::{Deserialize, Serialize};

/// `aud` of every access token.
pub const AUDIENCE: &str = "mercato";
/// Default `iss` (identity's `MERCATO_JWT_ISSUER`).
pub use crate::config::DEFAULT_ISSUER;

/// Whether a token stands for a person or a service account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A registered user.
    User,
    /// A service account (client credentials).
    Service,
}

/// JWT claims (RFC 7519 registered names plus Mercato's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// User id or client id.
    pub sub: String,
    /// Audience: [`AUDIENCE`].
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Token id.
    pub jti: String,
    /// Roles at issue time.
    pub roles: Vec<String>,
    /// User or service.
    pub kind: PrincipalKind,
}
