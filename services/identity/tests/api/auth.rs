//! Token verification and policy enforcement at the service boundary.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mercato::pb::identity::v1::{CreateClientRequest, GetMeRequest};
use mercato_kernel::auth::{AUDIENCE, Claims, DEFAULT_ISSUER, PrincipalKind};
use mercato_testkit::authed;
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use crate::{TEST_KID, TEST_PEM, assert_code, identity};

fn claims(sub: &str, roles: &[&str], exp_offset: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: DEFAULT_ISSUER.into(),
        sub: sub.into(),
        aud: AUDIENCE.into(),
        exp: now + exp_offset,
        iat: now,
        jti: "t".into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        kind: PrincipalKind::User,
    }
}

#[tokio::test]
async fn calls_without_or_with_broken_tokens_are_unauthenticated() {
    let id = identity().await;
    assert_code(
        id.client().await.get_me(GetMeRequest {}).await,
        Code::Unauthenticated,
    );
    for token in ["garbage", "a.b.c", ""] {
        let mut request = tonic::Request::new(GetMeRequest {});
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        assert_code(
            id.client().await.get_me(request).await,
            Code::Unauthenticated,
        );
    }
    let mut basic = tonic::Request::new(GetMeRequest {});
    basic
        .metadata_mut()
        .insert("authorization", "Basic dXNlcjpwdw==".parse().unwrap());
    assert_code(id.client().await.get_me(basic).await, Code::Unauthenticated);
}

#[tokio::test]
async fn forged_tokens_are_rejected() {
    let id = identity().await;
    let admin_claims = claims(
        "00000000-0000-7000-8000-000000000000",
        &["customer", "admin"],
        600,
    );
    let request = || CreateClientRequest {
        name: "evil".into(),
    };

    // alg "none": header and payload, no signature.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"test-key"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&admin_claims).unwrap());
    let none = format!("{header}.{payload}.");
    assert_code(
        id.client()
            .await
            .create_client(authed(request(), &none))
            .await,
        Code::Unauthenticated,
    );

    // Right kid, wrong key.
    let impostor = identity::SigningKeys::from_pem(OTHER_PEM, Some(TEST_KID.into())).unwrap();
    let wrong_key = impostor.sign(&admin_claims).unwrap();
    assert_code(
        id.client()
            .await
            .create_client(authed(request(), &wrong_key))
            .await,
        Code::Unauthenticated,
    );

    // Unknown kid.
    let unknown_kid = identity::SigningKeys::generate()
        .unwrap()
        .sign(&admin_claims)
        .unwrap();
    assert_code(
        id.client()
            .await
            .create_client(authed(request(), &unknown_kid))
            .await,
        Code::Unauthenticated,
    );

    // The real key but expired, or for another audience.
    let real = identity::SigningKeys::from_pem(TEST_PEM, Some(TEST_KID.into())).unwrap();
    let expired = real
        .sign(&claims(
            "00000000-0000-7000-8000-000000000000",
            &["admin"],
            -3600,
        ))
        .unwrap();
    let status = assert_code(
        id.client()
            .await
            .create_client(authed(request(), &expired))
            .await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("expired"), "{status:?}");
    let mut foreign = admin_claims.clone();
    foreign.aud = "someone-else".into();
    let foreign = real.sign(&foreign).unwrap();
    assert_code(
        id.client()
            .await
            .create_client(authed(request(), &foreign))
            .await,
        Code::Unauthenticated,
    );

    // And the real key with the right claims is accepted: the checks above are not vacuous.
    let genuine = real.sign(&admin_claims).unwrap();
    id.client()
        .await
        .create_client(authed(request(), &genuine))
        .await
        .unwrap();
}

/// A second key, unrelated to identity's.
const OTHER_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIO2uB914Z2yPBBBPW+QWKrKfxUM1jeeE3yDTOz7j0NST\n-----END PRIVATE KEY-----\n";

#[tokio::test]
async fn a_customer_cannot_call_an_admin_rpc() {
    let id = identity().await;
    let (_, customer) = id.customer().await;
    let status = assert_code(
        id.client()
            .await
            .create_client(authed(CreateClientRequest { name: "x".into() }, &customer))
            .await,
        Code::PermissionDenied,
    );
    assert!(!status.message().is_empty());
}

#[tokio::test]
async fn health_reports_serving_with_its_dependencies_up() {
    let id = identity().await;
    let mut health = HealthClient::new(mercato_testkit::channel(id.addr).await);
    for service in ["", "mercato.identity.v1.IdentityService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving);
    }
}
