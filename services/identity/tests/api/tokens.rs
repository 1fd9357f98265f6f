use mercato::pb::identity::v1::{
    ClientCredentialsGrant, CreateClientRequest, GetJwksRequest, GetMeRequest, IssueTokenRequest,
    RefreshTokenGrant, RevokeTokenRequest, SetUserRolesRequest, issue_token_request::Grant,
};
use mercato_testkit::{TestIdentity, authed};
use tonic::Code;

use crate::{TEST_KID, assert_code, identity, login, register};

async fn refresh(
    id: &TestIdentity,
    token: &str,
) -> Result<mercato::pb::identity::v1::IssueTokenResponse, tonic::Status> {
    id.client()
        .await
        .issue_token(IssueTokenRequest {
            grant: Some(Grant::RefreshToken(RefreshTokenGrant {
                refresh_token: token.into(),
            })),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_registered_user_logs_in_and_reads_their_profile() {
    let id = identity().await;
    let (email, password) = register(&id).await;
    let tokens = login(&id, &email.to_uppercase(), &password).await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.roles, vec!["customer"]);
    assert!(tokens.expires_in > 0);
    assert!(!tokens.refresh_token.is_empty());
    let me = id
        .client()
        .await
        .get_me(authed(GetMeRequest {}, &tokens.access_token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me.email, email);
    assert_eq!(me.roles, vec!["customer"]);
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_answer() {
    let id = identity().await;
    let (email, _) = register(&id).await;
    let wrong = assert_code(
        login(&id, &email, "not the password").await,
        Code::Unauthenticated,
    );
    let unknown = assert_code(
        login(&id, "nobody@example.com", "not the password").await,
        Code::Unauthenticated,
    );
    assert_eq!(wrong.message(), unknown.message());
}

#[tokio::test]
async fn a_refresh_token_rotates_and_its_reuse_revokes_the_family() {
    let id = identity().await;
    let (email, password) = register(&id).await;
    let first = login(&id, &email, &password).await.unwrap();
    let second = refresh(&id, &first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    // Replaying the spent token is treated as theft: it fails and kills the newer token too.
    let reuse = assert_code(
        refresh(&id, &first.refresh_token).await,
        Code::Unauthenticated,
    );
    assert!(reuse.message().contains("already used"), "{reuse:?}");
    assert_code(
        refresh(&id, &second.refresh_token).await,
        Code::Unauthenticated,
    );
    // A fresh login is unaffected.
    let other = login(&id, &email, &password).await.unwrap();
    assert!(refresh(&id, &other.refresh_token).await.is_ok());
}

#[tokio::test]
async fn concurrent_rotations_of_one_token_succeed_once() {
    let id = identity().await;
    let (email, password) = register(&id).await;
    let token = login(&id, &email, &password).await.unwrap().refresh_token;
    let attempts = (0..8).map(|_| refresh(&id, &token));
    let results = futures::future::join_all(attempts).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_no_longer_works() {
    let id = identity().await;
    let (email, password) = register(&id).await;
    let tokens = login(&id, &email, &password).await.unwrap();
    id.client()
        .await
        .revoke_token(RevokeTokenRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await
        .unwrap();
    assert_code(
        refresh(&id, &tokens.refresh_token).await,
        Code::Unauthenticated,
    );
    // Revoking an unknown token is not an error (RFC 7009).
    id.client()
        .await
        .revoke_token(RevokeTokenRequest {
            refresh_token: "unknown".into(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_service_client_gets_a_service_token() {
    let id = identity().await;
    let admin = id.admin_token().await;
    let created = id
        .client()
        .await
        .create_client(authed(
            CreateClientRequest {
                name: "order".into(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let client = created.client.unwrap();
    assert_eq!(client.roles, vec!["service"]);
    let grant = |secret: &str| IssueTokenRequest {
        grant: Some(Grant::ClientCredentials(ClientCredentialsGrant {
            client_id: client.id.clone(),
            client_secret: secret.into(),
        })),
    };
    let token = id
        .client()
        .await
        .issue_token(grant(&created.client_secret))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(token.roles, vec!["service"]);
    assert!(token.refresh_token.is_empty());
    assert_code(
        id.client()
            .await
            .get_me(authed(GetMeRequest {}, &token.access_token))
            .await,
        Code::FailedPrecondition,
    );
    assert_code(
        id.client().await.issue_token(grant("wrong")).await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn roles_set_by_an_admin_appear_in_new_tokens() {
    let id = identity().await;
    let admin = id.admin_token().await;
    let (email, password) = register(&id).await;
    let customer = login(&id, &email, &password).await.unwrap().access_token;
    let me = id
        .client()
        .await
        .get_me(authed(GetMeRequest {}, &customer))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let request = SetUserRolesRequest {
        user_id: me.id.clone(),
        roles: vec!["customer".into(), "admin".into()],
    };
    // A customer cannot promote themselves.
    assert_code(
        id.client()
            .await
            .set_user_roles(authed(request.clone(), &customer))
            .await,
        Code::PermissionDenied,
    );
    let updated = id
        .client()
        .await
        .set_user_roles(authed(request, &admin))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(updated.roles, vec!["customer", "admin"]);
    assert_eq!(
        login(&id, &email, &password).await.unwrap().roles,
        vec!["customer", "admin"]
    );
}

#[tokio::test]
async fn the_jwks_publishes_the_signing_key() {
    let id = identity().await;
    let jwks = id
        .client()
        .await
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(jwks.keys.len(), 1);
    let key = &jwks.keys[0];
    assert_eq!(
        (
            key.kty.as_str(),
            key.crv.as_str(),
            key.alg.as_str(),
            key.kid.as_str()
        ),
        ("OKP", "Ed25519", "EdDSA", TEST_KID)
    );
}

#[tokio::test]
async fn the_admin_from_the_environment_exists_once() {
    let id = identity().await;
    let token = login(
        &id,
        mercato_testkit::ADMIN_EMAIL,
        mercato_testkit::ADMIN_PASSWORD,
    )
    .await
    .unwrap();
    assert!(token.roles.contains(&"admin".to_owned()));
}
