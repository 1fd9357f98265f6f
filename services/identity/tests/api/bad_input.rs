use mercato::pb::identity::v1::{
    CreateClientRequest, IssueTokenRequest, RegisterRequest, RevokeTokenRequest,
    SetUserRolesRequest,
};
use mercato_testkit::authed;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::{assert_code, identity, register};

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn registration_reports_every_invalid_field() {
    let id = identity().await;
    let cases = [
        (
            RegisterRequest {
                email: String::new(),
                password: String::new(),
                display_name: String::new(),
            },
            vec!["email", "password", "display_name"],
        ),
        (
            RegisterRequest {
                email: "not-an-email".into(),
                password: "long enough pw".into(),
                display_name: "A".into(),
            },
            vec!["email"],
        ),
        (
            RegisterRequest {
                email: "a@example.com".into(),
                password: "short".into(),
                display_name: "A".into(),
            },
            vec!["password"],
        ),
        (
            RegisterRequest {
                email: "a@example.com".into(),
                password: "long enough pw".into(),
                display_name: "x".repeat(101),
            },
            vec!["display_name"],
        ),
        (
            RegisterRequest {
                email: format!("{}@example.com", "a".repeat(300)),
                password: "p".repeat(129),
                display_name: "A".into(),
            },
            vec!["email", "password"],
        ),
    ];
    for (request, fields) in cases {
        let status = assert_code(
            id.client().await.register(request).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), fields);
    }
}

#[tokio::test]
async fn an_email_is_unique_regardless_of_case() {
    let id = identity().await;
    let (email, password) = register(&id).await;
    let again = RegisterRequest {
        email: email.to_uppercase(),
        password,
        display_name: "Twin".into(),
    };
    assert_code(id.client().await.register(again).await, Code::AlreadyExists);
}

#[tokio::test]
async fn a_token_request_without_a_grant_is_invalid() {
    let id = identity().await;
    let status = assert_code(
        id.client()
            .await
            .issue_token(IssueTokenRequest { grant: None })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["grant"]);
    assert_code(
        id.client()
            .await
            .revoke_token(RevokeTokenRequest {
                refresh_token: String::new(),
            })
            .await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn admin_calls_validate_their_input() {
    let id = identity().await;
    let admin = id.admin_token().await;
    let bad_id = SetUserRolesRequest {
        user_id: "not-a-uuid".into(),
        roles: vec!["pirate".into()],
    };
    let status = assert_code(
        id.client()
            .await
            .set_user_roles(authed(bad_id, &admin))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["user_id", "roles"]);
    let unknown = SetUserRolesRequest {
        user_id: uuid::Uuid::now_v7().to_string(),
        roles: vec!["admin".into()],
    };
    assert_code(
        id.client()
            .await
            .set_user_roles(authed(unknown, &admin))
            .await,
        Code::NotFound,
    );
    let bad_name = CreateClientRequest {
        name: "no spaces allowed".into(),
    };
    assert_code(
        id.client()
            .await
            .create_client(authed(bad_name, &admin))
            .await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn a_nul_in_a_login_or_registration_is_a_field_violation_not_a_database_error() {
    use mercato::pb::identity::v1::PasswordGrant;
    use mercato::pb::identity::v1::issue_token_request::Grant;
    let id = identity().await;
    let login = IssueTokenRequest {
        grant: Some(Grant::Password(PasswordGrant {
            email: "ann\0@example.com".into(),
            password: "correct-horse-battery".into(),
        })),
    };
    let status = assert_code(
        id.client().await.issue_token(login).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["password.email"]);
    let register = RegisterRequest {
        email: "bob@example.com".into(),
        password: "correct-horse-battery".into(),
        display_name: "Bob\0".into(),
    };
    let status = assert_code(
        id.client().await.register(register).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["display_name"]);
}
