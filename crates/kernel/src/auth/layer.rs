//! The tower layer that authenticates the bearer token and enforces the RPC's declared
//! policy before the request reaches a handler.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::Status;
use tower::{Layer, Service};

use super::policy::PolicyTable;
use super::verifier::Verifier;
use crate::error;

/// Enforces `mercato.auth.v1.policy` on every RPC.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
    policies: &'static PolicyTable,
}

impl AuthLayer {
    /// Verifies tokens with `verifier` and enforces the policies of the compiled contracts.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self {
            verifier,
            policies: PolicyTable::global(),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
            policies: self.policies,
        }
    }
}

/// See [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<Verifier>,
    policies: &'static PolicyTable,
}

/// The bearer token of a request: `None` when absent, `Err` when the header is malformed.
pub fn bearer_token(headers: &http::HeaderMap) -> Result<Option<&str>, Status> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| error::unauthenticated("INVALID_TOKEN", "authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(error::unauthenticated(
            "INVALID_TOKEN",
            "authorization header must be `Bearer <token>`",
        )),
    }
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The ready service is the one to call; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let rule = self.policies.get(req.uri().path()).cloned();
        let token = bearer_token(req.headers()).map(|t| t.map(str::to_owned));
        Box::pin(async move {
            let checked = async {
                let principal = verifier.principal(token?.as_deref()).await?;
                // Paths no contract declares (health, reflection, unknown methods) are left to
                // the router: they are public or answered UNIMPLEMENTED.
                if let Some(rule) = rule {
                    rule.decide(principal.as_ref()).into_result()?;
                }
                Ok::<_, Status>(principal)
            };
            match checked.await {
                Ok(principal) => {
                    if let Some(principal) = principal {
                        req.extensions_mut().insert(principal);
                    }
                    inner.call(req).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(bearer_token(&http::HeaderMap::new()).unwrap(), None);
        assert_eq!(bearer_token(&headers("Bearer abc")).unwrap(), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer abc")).unwrap(), Some("abc"));
        assert!(bearer_token(&headers("Basic abc")).is_err());
        assert!(bearer_token(&headers("Bearer ")).is_err());
        assert!(bearer_token(&headers("abc")).is_err());
    }
}
