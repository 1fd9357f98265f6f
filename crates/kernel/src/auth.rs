//! Authentication and authorization, the same everywhere: access tokens are EdDSA JWTs from
//! identity, verified against its JWKS; each RPC's `mercato.auth.v1.policy` is read from the
//! descriptor set and enforced by [`AuthLayer`] before any handler runs. Handlers get the
//! caller as a [`Principal`] and scope data to it.

mod claims;
mod layer;
mod policy;
mod principal;
mod verifier;

pub use claims::{AUDIENCE, Claims, DEFAULT_ISSUER, PrincipalKind};
pub use layer::{AuthLayer, AuthService, bearer_token};
pub use policy::{Decision, PolicyError, PolicyTable, Rule};
pub use principal::Principal;
pub use verifier::{AuthError, Verifier};

/// Role of administrators.
pub const ROLE_ADMIN: &str = "admin";
/// Role of customers (every registered user).
pub const ROLE_CUSTOMER: &str = "customer";
/// Role carried only by service-account tokens.
pub const ROLE_SERVICE: &str = "service";
