//! Access-token verification against the identity service's JWKS. Keys are cached by `kid`;
//! a token signed with an unknown `kid` triggers one refresh (throttled), which is how key
//! rotation reaches every service without a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mercato::pb::identity::v1::identity_service_client::IdentityServiceClient;
use mercato::pb::identity::v1::{GetJwksRequest, Jwk};
use tokio::sync::{Mutex, RwLock};
use tonic::Status;

use super::claims::{AUDIENCE, Claims};
use super::principal::Principal;

/// Minimum time between two JWKS fetches caused by unknown key ids (forged `kid`s must not
/// turn into a flood of requests to identity).
const REFRESH_THROTTLE: Duration = Duration::from_secs(10);

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Signed with another algorithm than EdDSA.
    #[error("invalid token: algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    /// No `kid` in the header, so no key to verify it with.
    #[error("invalid token: missing kid")]
    MissingKid,
    /// Not a well-formed JWT, bad signature, wrong issuer/audience, missing claims.
    #[error("invalid token: {0}")]
    Malformed(#[source] jsonwebtoken::errors::Error),
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// Signed with a key identity does not publish.
    #[error("token signed with an unknown key")]
    UnknownKey,
    /// The JWKS could not be fetched.
    #[error("cannot fetch signing keys: {}", .0.message())]
    KeysUnavailable(#[source] Box<Status>),
    /// Identity's URL is not usable, so keys can never be fetched.
    #[error("cannot fetch signing keys: bad identity URL: {0}")]
    IdentityUrl(#[source] crate::client::ClientError),
}

impl From<AuthError> for Status {
    /// A fixed message per reason: the parser's words ("Base64 error: Invalid last symbol…")
    /// would tell a prober how far a forged token got. The detail goes to the log.
    fn from(err: AuthError) -> Self {
        let (reason, message) = match &err {
            AuthError::Algorithm(_) | AuthError::MissingKid | AuthError::Malformed(_) => {
                ("INVALID_TOKEN", "the access token is not valid")
            }
            AuthError::Expired => ("TOKEN_EXPIRED", "the access token has expired"),
            AuthError::UnknownKey => (
                "UNKNOWN_KEY",
                "the access token is signed with a key that is not in use",
            ),
            AuthError::KeysUnavailable(_) | AuthError::IdentityUrl(_) => {
                return crate::error::unavailable("identity (JWKS)", &err);
            }
        };
        tracing::info!(reason, detail = %err, "access token refused");
        crate::error::unauthenticated(reason, message)
    }
}

/// Verifies bearer tokens. Cheap to share behind an `Arc`.
pub struct Verifier {
    keys: RwLock<HashMap<String, DecodingKey>>,
    remote: Option<Remote>,
    validation: Validation,
}

struct Remote {
    client: IdentityServiceClient<crate::client::balance::Balancer>,
    last_fetch: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

fn validation(issuer: &str) -> Validation {
    // Only EdDSA: "none", HMAC with the public key as secret and every other algorithm
    // confusion are refused before the signature is even looked at.
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    validation
}

fn decoding_keys(jwks: &[Jwk]) -> HashMap<String, DecodingKey> {
    jwks.iter()
        .filter(|k| k.kty == "OKP" && k.crv == "Ed25519" && !k.kid.is_empty())
        .filter_map(|k| {
            DecodingKey::from_ed_components(&k.x)
                .ok()
                .map(|d| (k.kid.clone(), d))
        })
        .collect()
}

impl Verifier {
    /// A verifier with a fixed key set (the identity service verifies with its own keys).
    pub fn with_keys(jwks: &[Jwk], issuer: &str) -> Arc<Self> {
        Arc::new(Self {
            keys: RwLock::new(decoding_keys(jwks)),
            remote: None,
            validation: validation(issuer),
        })
    }

    /// A verifier that fetches the key set from identity at `identity_url` when it first
    /// needs it and whenever a token names an unknown key.
    pub fn remote(identity_url: &str, issuer: &str) -> Result<Arc<Self>, AuthError> {
        let balancer = crate::client::balance::Balancer::new(
            "identity",
            identity_url,
            Arc::new(|endpoint: tonic::transport::Endpoint| {
                endpoint
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(3))
            }),
        )
        .map_err(AuthError::IdentityUrl)?;
        Ok(Arc::new(Self {
            keys: RwLock::default(),
            remote: Some(Remote {
                client: IdentityServiceClient::new(balancer),
                last_fetch: Mutex::new(None),
            }),
            validation: validation(issuer),
        }))
    }

    /// The principal of the caller whose bearer token is `token` (`None`: an anonymous
    /// caller), or the status to answer: the one place, for the gateway and every service,
    /// where a token becomes a principal.
    pub async fn principal(&self, token: Option<&str>) -> Result<Option<Principal>, Status> {
        match token {
            Some(token) => Ok(Some(self.verify(token).await.map_err(Status::from)?)),
            None => Ok(None),
        }
    }

    /// [`Verifier::principal`] of the `authorization` header in `headers`; a header that is
    /// not `Bearer <token>` is UNAUTHENTICATED.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Option<Principal>, Status> {
        self.principal(super::bearer_token(headers)?).await
    }

    /// Verifies `token` and returns its principal.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(AuthError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or(AuthError::MissingKid)?;
        let key = match self.key(&kid).await {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.key(&kid).await.ok_or(AuthError::UnknownKey)?
            }
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Malformed(e),
            }
        })?;
        let claims = data.claims;
        Ok(Principal {
            subject: claims.sub,
            kind: claims.kind,
            roles: claims.roles,
            token: token.to_owned(),
        })
    }

    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().await.get(kid).cloned()
    }

    /// Replaces the keys with identity's current JWKS (no-op for a fixed key set; throttled).
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let mut last = remote.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFRESH_THROTTLE)
            && !self.keys.read().await.is_empty()
        {
            return Ok(());
        }
        let response = remote
            .client
            .clone()
            .get_jwks(GetJwksRequest {})
            .await
            .map_err(|s| AuthError::KeysUnavailable(Box::new(s)))?;
        let keys = decoding_keys(&response.into_inner().keys);
        tracing::debug!(count = keys.len(), "fetched JWKS");
        *self.keys.write().await = keys;
        *last = Some(Instant::now());
        Ok(())
    }
}
