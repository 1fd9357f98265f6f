//! Identity integration tests against the real Postgres and NATS: each test runs its own
//! identity on an ephemeral port with its own database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub use mercato_testkit::{assert_code, violated_fields};

mod auth;
mod bad_input;
mod hashing;
mod tokens;

use mercato::pb::identity::v1::{
    IssueTokenRequest, IssueTokenResponse, PasswordGrant, RegisterRequest, issue_token_request,
};
use mercato_testkit::{TestIdentity, unique_id};

/// A fixed key, so tests can forge and expire tokens signed exactly like identity's.
pub const TEST_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
/// Its key id.
pub const TEST_KID: &str = "test-key";

/// Identity with the fixed test key.
pub async fn identity() -> TestIdentity {
    TestIdentity::start_with(&[
        ("MERCATO_JWT_PRIVATE_KEY", TEST_PEM),
        ("MERCATO_JWT_KID", TEST_KID),
    ])
    .await
}

/// Registers a fresh user; returns (email, password).
pub async fn register(id: &TestIdentity) -> (String, String) {
    let email = format!("u{}@example.com", unique_id());
    let password = "a long enough password".to_owned();
    id.client()
        .await
        .register(RegisterRequest {
            email: email.clone(),
            password: password.clone(),
            display_name: "Ada".into(),
        })
        .await
        .unwrap();
    (email, password)
}

/// The password grant.
pub async fn login(
    id: &TestIdentity,
    email: &str,
    password: &str,
) -> Result<IssueTokenResponse, tonic::Status> {
    id.client()
        .await
        .issue_token(IssueTokenRequest {
            grant: Some(issue_token_request::Grant::Password(PasswordGrant {
                email: email.into(),
                password: password.into(),
            })),
        })
        .await
        .map(tonic::Response::into_inner)
}
