//! The gRPC surface of identity: request parsing, authorization beyond the declared policy,
//! and the mapping between stored rows and proto messages.

use std::sync::Arc;

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use mercato::pb::identity::v1 as pb;
use mercato::pb::identity::v1::identity_service_server::IdentityService;
use mercato_kernel::auth::{Claims, Principal, PrincipalKind, ROLE_CUSTOMER, ROLE_SERVICE};
use mercato_kernel::db::DbPool;
use mercato_kernel::error::{self, FieldViolations};
use mercato_kernel::events::outbox::{self, OutboxNotifier};
use mercato_kernel::validate;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::Settings;
use crate::domain::{NewUser, parse_client_name, parse_user_roles};
use crate::hashing::{HashError, Hasher};
use crate::store::{self, ClientRow, UserRow};
use crate::tokens;

/// Identity's gRPC service.
#[derive(Clone)]
pub struct IdentityApi {
    db: DbPool,
    hasher: Hasher,
    settings: Arc<Settings>,
    outbox: OutboxNotifier,
}

impl IdentityApi {
    /// A service over `db` signing with the keys in `settings`, hashing passwords with
    /// `hasher`.
    pub fn new(
        db: DbPool,
        hasher: Hasher,
        settings: Arc<Settings>,
        outbox: OutboxNotifier,
    ) -> Self {
        Self {
            db,
            hasher,
            settings,
            outbox,
        }
    }

    async fn conn(&self) -> Result<mercato_kernel::db::DbConn, Status> {
        self.db.get().await.map_err(error::pool)
    }

    fn access_token(
        &self,
        subject: &str,
        kind: PrincipalKind,
        roles: &[String],
    ) -> Result<String, Status> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            sub: subject.to_owned(),
            aud: mercato_kernel::auth::AUDIENCE.to_owned(),
            iat: now,
            exp: now + i64::try_from(self.settings.access_ttl.as_secs()).unwrap_or(900),
            jti: Uuid::now_v7().to_string(),
            roles: roles.to_vec(),
            kind,
        };
        self.settings.keys.sign(&claims).map_err(error::internal)
    }

    fn token_response(
        &self,
        access_token: String,
        refresh_token: String,
        roles: Vec<String>,
    ) -> pb::IssueTokenResponse {
        pb::IssueTokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: i32::try_from(self.settings.access_ttl.as_secs()).unwrap_or(i32::MAX),
            refresh_token,
            roles,
        }
    }

    /// Starts a new refresh-token family (a login) or continues one (a rotation).
    async fn new_refresh_token(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        family_id: Uuid,
        user_id: Uuid,
    ) -> Result<String, diesel::result::Error> {
        let token = tokens::random_secret();
        let ttl = chrono::Duration::from_std(self.settings.refresh_ttl)
            .unwrap_or(chrono::Duration::days(30));
        store::insert_refresh_token(
            conn,
            family_id,
            user_id,
            &tokens::secret_hash(&token),
            Utc::now() + ttl,
        )
        .await?;
        Ok(token)
    }

    async fn password_grant(
        &self,
        grant: pb::PasswordGrant,
    ) -> Result<pb::IssueTokenResponse, Status> {
        let mut violations = FieldViolations::new();
        if grant.email.trim().is_empty() {
            violations.add("password.email", "is required");
        }
        if grant.password.is_empty() {
            violations.add("password.password", "is required");
        }
        if grant.email.len() > 254 || grant.password.len() > 4 * crate::domain::MAX_PASSWORD {
            violations.add("password", "credentials too long");
        }
        violations.into_result()?;
        // The connection goes back to the pool before hashing: a verification takes tens of
        // milliseconds (longer while queued for a permit), and a pool of a few connections
        // held by hashes would answer every other request "database is unavailable".
        let user = {
            let mut conn = self.conn().await?;
            store::user_by_email(&mut conn, grant.email.trim())
                .await
                .map_err(error::database)?
        };
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let matches = self
            .hasher
            .verify(grant.password.into_bytes(), hash)
            .await
            .map_err(HashError::into_status)?;
        let user = user.filter(|_| matches).ok_or_else(|| {
            error::unauthenticated("INVALID_CREDENTIALS", "invalid e-mail or password")
        })?;
        let mut conn = self.conn().await?;
        let refresh = self
            .new_refresh_token(&mut conn, Uuid::now_v7(), user.id)
            .await
            .map_err(error::database)?;
        let access = self.access_token(&user.id.to_string(), PrincipalKind::User, &user.roles)?;
        Ok(self.token_response(access, refresh, user.roles))
    }

    async fn refresh_grant(
        &self,
        grant: pb::RefreshTokenGrant,
    ) -> Result<pb::IssueTokenResponse, Status> {
        if grant.refresh_token.is_empty() || grant.refresh_token.len() > 256 {
            return Err(error::invalid_argument(
                "refresh_token.refresh_token",
                "is required and at most 256 characters",
            ));
        }
        let hash = tokens::secret_hash(&grant.refresh_token);
        let mut conn = self.conn().await?;
        let this = self.clone();
        let outcome = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let Some(row) = store::lock_refresh_token(conn, &hash).await? else {
                    return Ok(Rotation::Unknown);
                };
                if row.revoked_at.is_some() {
                    return Ok(Rotation::Revoked);
                }
                if row.used_at.is_some() {
                    // A spent token came back: it was stolen or replayed. Kill the whole login.
                    store::revoke_family(conn, row.family_id).await?;
                    return Ok(Rotation::Reused);
                }
                if row.expires_at <= Utc::now() {
                    return Ok(Rotation::Expired);
                }
                let Some(user) = store::user_by_id(conn, row.user_id).await? else {
                    return Ok(Rotation::Unknown);
                };
                store::mark_used(conn, row.id).await?;
                let token = this
                    .new_refresh_token(conn, row.family_id, row.user_id)
                    .await?;
                Ok(Rotation::Rotated(user, token))
            })
            .await
            .map_err(error::database)?;
        match outcome {
            Rotation::Rotated(user, refresh) => {
                let access =
                    self.access_token(&user.id.to_string(), PrincipalKind::User, &user.roles)?;
                Ok(self.token_response(access, refresh, user.roles))
            }
            Rotation::Reused => {
                tracing::warn!("refresh token reuse detected; token family revoked");
                Err(error::unauthenticated(
                    "REFRESH_TOKEN_REUSED",
                    "refresh token was already used; the session is revoked",
                ))
            }
            Rotation::Revoked => Err(error::unauthenticated(
                "REFRESH_TOKEN_REVOKED",
                "refresh token was revoked",
            )),
            Rotation::Expired => Err(error::unauthenticated(
                "REFRESH_TOKEN_EXPIRED",
                "refresh token expired",
            )),
            Rotation::Unknown => Err(error::unauthenticated(
                "INVALID_REFRESH_TOKEN",
                "unknown refresh token",
            )),
        }
    }

    async fn client_credentials_grant(
        &self,
        grant: pb::ClientCredentialsGrant,
    ) -> Result<pb::IssueTokenResponse, Status> {
        let invalid = || error::unauthenticated("INVALID_CLIENT", "invalid client credentials");
        let mut violations = FieldViolations::new();
        if grant.client_id.is_empty() {
            violations.add("client_credentials.client_id", "is required");
        }
        if grant.client_secret.is_empty() {
            violations.add("client_credentials.client_secret", "is required");
        }
        violations.into_result()?;
        let Ok(id) = Uuid::parse_str(&grant.client_id) else {
            return Err(invalid());
        };
        let mut conn = self.conn().await?;
        let client = store::client_by_id(&mut conn, id)
            .await
            .map_err(error::database)?
            .ok_or_else(invalid)?;
        if !tokens::hashes_match(
            &client.secret_hash,
            &tokens::secret_hash(&grant.client_secret),
        ) {
            return Err(invalid());
        }
        let access = self.access_token(
            &client.id.to_string(),
            PrincipalKind::Service,
            &client.roles,
        )?;
        Ok(self.token_response(access, String::new(), client.roles))
    }
}

enum Rotation {
    Rotated(UserRow, String),
    Reused,
    Revoked,
    Expired,
    Unknown,
}

use mercato_kernel::time::to_timestamp as timestamp;

fn user_message(row: UserRow) -> pb::User {
    pb::User {
        id: row.id.to_string(),
        email: row.email,
        display_name: row.display_name,
        roles: row.roles,
        create_time: Some(timestamp(row.created_at)),
    }
}

fn client_message(row: ClientRow) -> pb::Client {
    pb::Client {
        id: row.id.to_string(),
        name: row.name,
        roles: row.roles,
        create_time: Some(timestamp(row.created_at)),
    }
}

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let req = request.into_inner();
        let new = NewUser::parse(&req.email, &req.password, &req.display_name)
            .map_err(FieldViolations::into_status)?;
        let hash = self
            .hasher
            .hash(new.password.as_bytes().to_vec())
            .await
            .map_err(HashError::into_status)?;
        let mut conn = self.conn().await?;
        let user = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let Some(user) = store::insert_user(
                    conn,
                    new.email.as_str(),
                    new.display_name.as_str(),
                    &hash,
                    &[ROLE_CUSTOMER],
                )
                .await?
                else {
                    return Ok(None);
                };
                let event = mercato::pb::identity::v1::UserRegistered {
                    user_id: user.id.to_string(),
                    email: user.email.clone(),
                    display_name: user.display_name.clone(),
                    create_time: Some(timestamp(user.created_at)),
                };
                outbox::enqueue(conn, "identity", &user.id.to_string(), &event).await?;
                Ok(Some(user))
            })
            .await
            .map_err(error::database)?;
        let user = user.ok_or_else(|| {
            error::already_exists("EMAIL_TAKEN", "an account with this e-mail already exists")
        })?;
        self.outbox.notify();
        tracing::info!(user_id = %user.id, "user registered");
        Ok(Response::new(pb::RegisterResponse {
            user: Some(user_message(user)),
        }))
    }

    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        use pb::issue_token_request::Grant;
        let response = match request.into_inner().grant {
            Some(Grant::Password(grant)) => self.password_grant(grant).await?,
            Some(Grant::RefreshToken(grant)) => self.refresh_grant(grant).await?,
            Some(Grant::ClientCredentials(grant)) => self.client_credentials_grant(grant).await?,
            None => {
                return Err(error::invalid_argument(
                    "grant",
                    "one of password, refresh_token or client_credentials is required",
                ));
            }
        };
        Ok(Response::new(response))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<()>, Status> {
        let token = request.into_inner().refresh_token;
        if token.is_empty() || token.len() > 256 {
            return Err(error::invalid_argument(
                "refresh_token",
                "is required and at most 256 characters",
            ));
        }
        let hash = tokens::secret_hash(&token);
        let mut conn = self.conn().await?;
        // RFC 7009: revoking an unknown token is not an error (nothing to reveal).
        if let Some(row) = store::lock_refresh_token(&mut conn, &hash)
            .await
            .map_err(error::database)?
        {
            store::revoke_family(&mut conn, row.family_id)
                .await
                .map_err(error::database)?;
        }
        Ok(Response::new(()))
    }

    async fn get_me(
        &self,
        request: Request<pb::GetMeRequest>,
    ) -> Result<Response<pb::GetMeResponse>, Status> {
        let principal = Principal::of(&request)?;
        if principal.kind == PrincipalKind::Service {
            return Err(error::failed_precondition(
                "NOT_A_USER",
                "service accounts have no user profile",
            ));
        }
        let id = Uuid::parse_str(&principal.subject)
            .map_err(|_| error::unauthenticated("INVALID_TOKEN", "bad subject"))?;
        let mut conn = self.conn().await?;
        let user = store::user_by_id(&mut conn, id)
            .await
            .map_err(error::database)?
            .ok_or_else(|| error::not_found("user", &principal.subject))?;
        Ok(Response::new(pb::GetMeResponse {
            user: Some(user_message(user)),
        }))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(pb::GetJwksResponse {
            keys: vec![self.settings.keys.jwk().clone()],
        }))
    }

    async fn set_user_roles(
        &self,
        request: Request<pb::SetUserRolesRequest>,
    ) -> Result<Response<pb::SetUserRolesResponse>, Status> {
        let req = request.into_inner();
        let mut violations = FieldViolations::new();
        let id = validate::uuid(&mut violations, "user_id", &req.user_id);
        let roles = parse_user_roles(&req.roles)
            .map_err(|e| violations.add("roles", e))
            .ok();
        let (Some(id), Some(roles)) = (id, roles) else {
            return Err(violations.into_status());
        };
        let mut conn = self.conn().await?;
        let user = store::set_roles(&mut conn, id, &roles)
            .await
            .map_err(error::database)?
            .ok_or_else(|| error::not_found("user", &req.user_id))?;
        tracing::info!(user_id = %user.id, roles = ?user.roles, "roles changed");
        Ok(Response::new(pb::SetUserRolesResponse {
            user: Some(user_message(user)),
        }))
    }

    async fn create_client(
        &self,
        request: Request<pb::CreateClientRequest>,
    ) -> Result<Response<pb::CreateClientResponse>, Status> {
        let name = parse_client_name(&request.into_inner().name)
            .map_err(|e| error::invalid_argument("name", e))?;
        let secret = tokens::random_secret();
        let mut conn = self.conn().await?;
        let client = store::insert_client(
            &mut conn,
            &name,
            &tokens::secret_hash(&secret),
            &[ROLE_SERVICE],
        )
        .await
        .map_err(error::database)?;
        tracing::info!(client_id = %client.id, name = %client.name, "service client created");
        Ok(Response::new(pb::CreateClientResponse {
            client: Some(client_message(client)),
            client_secret: secret,
        }))
    }
}
