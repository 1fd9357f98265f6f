//! The service's own identity on outgoing calls: an access token from identity's
//! client-credentials grant, cached and renewed before it expires, by one task at a time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use mercato::pb::identity::v1::identity_service_client::IdentityServiceClient;
use mercato::pb::identity::v1::{ClientCredentialsGrant, IssueTokenRequest, issue_token_request};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tonic::body::Body;
use tower::{Layer, Service};

use super::BoxError;
use crate::config::ClientCredentials;

/// How long fetching a token may take.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
struct Cached {
    header: HeaderValue,
    /// When to fetch a new one: well before the token expires.
    renew_at: Instant,
}

/// Fetches and caches the service's access token.
pub struct ServiceTokens {
    identity: IdentityServiceClient<super::balance::Balancer>,
    credentials: ClientCredentials,
    cached: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTokens")
            .field("client_id", &self.credentials.client_id)
            .finish_non_exhaustive()
    }
}

impl ServiceTokens {
    /// Tokens for `credentials` from identity, at any of its endpoints.
    pub fn new(identity: super::balance::Balancer, credentials: ClientCredentials) -> Self {
        Self {
            identity: IdentityServiceClient::new(identity),
            credentials,
            cached: Mutex::new(None),
        }
    }

    /// The `authorization` header value to send; fetched when missing or due for renewal.
    /// Holding the lock while fetching makes concurrent callers share one fetch.
    pub async fn authorization(&self) -> Result<HeaderValue, tonic::Status> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| t.renew_at > Instant::now()) {
            return Ok(token.header.clone());
        }
        let fresh = self.issue().await?;
        let header = fresh.header.clone();
        *cached = Some(fresh);
        Ok(header)
    }

    async fn issue(&self) -> Result<Cached, tonic::Status> {
        let mut request = tonic::Request::new(IssueTokenRequest {
            grant: Some(issue_token_request::Grant::ClientCredentials(
                ClientCredentialsGrant {
                    client_id: self.credentials.client_id.clone(),
                    client_secret: self.credentials.client_secret.expose().to_owned(),
                },
            )),
        });
        request.set_timeout(ISSUE_TIMEOUT);
        let response = self
            .identity
            .clone()
            .issue_token(request)
            .await
            .map_err(|status| match status.code() {
                tonic::Code::Unauthenticated | tonic::Code::InvalidArgument => {
                    tracing::error!(error = %status.message(), "identity refused this service's client credentials");
                    crate::error::unavailable("identity (service token)", status.message())
                }
                _ => crate::error::unavailable("identity", status.message()),
            })?
            .into_inner();
        let lifetime = Duration::from_secs(u64::try_from(response.expires_in).unwrap_or(0));
        // Renew at 80% of the lifetime (at least 1 s early), so a token never expires in flight.
        let renew_in = (lifetime * 4 / 5).min(lifetime.saturating_sub(Duration::from_secs(1)));
        let header = HeaderValue::from_str(&format!("Bearer {}", response.access_token))
            .map_err(|_| crate::error::internal("identity issued a token that is not ASCII"))?;
        Ok(Cached {
            header,
            renew_at: Instant::now() + renew_in,
        })
    }
}

/// Adds the service token to calls that carry no `authorization` yet.
#[derive(Debug, Clone)]
pub struct BearerLayer {
    tokens: Option<Arc<ServiceTokens>>,
}

impl BearerLayer {
    /// With `tokens`, or passing requests through unchanged without.
    pub fn new(tokens: Option<Arc<ServiceTokens>>) -> Self {
        Self { tokens }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

/// See [`BearerLayer`].
#[derive(Debug, Clone)]
pub struct BearerService<S> {
    inner: S,
    tokens: Option<Arc<ServiceTokens>>,
}

impl<S> Service<Request<Body>> for BearerService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let mut inner = super::take_ready(&mut self.inner);
        let tokens = self
            .tokens
            .clone()
            .filter(|_| !req.headers().contains_key(http::header::AUTHORIZATION));
        Box::pin(async move {
            if let Some(tokens) = tokens {
                match tokens.authorization().await {
                    Ok(value) => {
                        req.headers_mut().insert(http::header::AUTHORIZATION, value);
                    }
                    Err(status) => return Ok(status.into_http()),
                }
            }
            inner.call(req).await
        })
    }
}
