//! The checks every call passes at the door, whichever protocol it came in: the bearer token
//! is verified with the kernel's verifier, the RPC's declared policy is enforced before any
//! upstream is called, the caller is rate limited, and headers a client must not set for the
//! mesh are removed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use mercato_kernel::auth::{Principal, Verifier};
use mercato_kernel::error;
use tonic::{Code, Status};

use crate::contracts::Method;
use crate::limits::RateLimiter;

/// The peer address of the connection a request came in on (set by the server).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The caller's address: the TCP peer, or — behind `hops` trusted proxies that each append
/// the address they saw to `x-forwarded-for` — the address the outermost trusted proxy saw.
/// Entries further left were written by the client and are ignored.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, hops: usize) -> ClientAddr {
    if hops == 0 {
        return ClientAddr(peer);
    }
    let mut chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| entry.trim().parse().ok())
        .collect();
    chain.push(peer.ip());
    let index = chain.len().saturating_sub(1 + hops);
    let ip = chain.get(index).copied().unwrap_or(peer.ip());
    ClientAddr(SocketAddr::new(ip, 0))
}

/// Header prefixes and names that only the mesh itself may set. A client sending them could
/// otherwise impersonate a hop (forwarding chain) or smuggle identity claims past the gateway.
const INTERNAL_PREFIXES: [&str; 3] = ["x-mercato-", "x-internal-", "x-forwarded-"];
const INTERNAL_HEADERS: [&str; 6] = [
    "forwarded",
    "x-real-ip",
    "x-user-id",
    "x-principal",
    "x-roles",
    "x-client-id",
];

/// Token verification, policies and rate limits.
#[derive(Clone)]
pub struct Gate {
    verifier: Arc<Verifier>,
    limiter: Arc<RateLimiter>,
}

/// The answer for an RPC that does not exist from outside (unknown or internal): the same
/// in both cases, so internal RPCs are not even confirmed to exist.
pub fn no_such_method(path: &str) -> Status {
    Status::new(Code::Unimplemented, format!("unknown method {path}"))
}

impl Gate {
    /// A gate verifying tokens with `verifier` and limiting with `limiter`.
    pub fn new(verifier: Arc<Verifier>, limiter: Arc<RateLimiter>) -> Self {
        Self { verifier, limiter }
    }

    /// Admits a call to `method`: the caller's principal (if it sent a token) when the
    /// declared policy allows it and the caller is within its rate, the status to answer
    /// otherwise. The upstream is never called for a refused request.
    pub async fn admit(
        &self,
        method: &Method,
        headers: &HeaderMap,
        client: Option<ClientAddr>,
    ) -> Result<Option<Principal>, Status> {
        if method.is_internal() {
            return Err(no_such_method(&method.path));
        }
        let principal = self.verifier.authenticate(headers).await?;
        method.rule.decide(principal.as_ref()).into_result()?;
        self.throttle(principal.as_ref(), client)?;
        Ok(principal)
    }

    /// Takes a token from the caller's bucket: the principal's when it sent a valid token,
    /// its client address's otherwise. RESOURCE_EXHAUSTED with `retry-after` when empty.
    pub fn throttle(
        &self,
        principal: Option<&Principal>,
        client: Option<ClientAddr>,
    ) -> Result<(), Status> {
        let key = match (principal, client) {
            (Some(p), _) => format!("sub:{}", p.subject),
            (None, Some(ClientAddr(addr))) => format!("ip:{}", addr.ip()),
            (None, None) => "ip:unknown".to_owned(),
        };
        if let Err(wait) = self.limiter.acquire(&key) {
            metrics::counter!("mercato_gateway_rate_limited_total").increment(1);
            let mut status = error::with_reason(
                Code::ResourceExhausted,
                "RATE_LIMITED",
                format!("too many requests; retry in {} s", wait.as_secs().max(1)),
            );
            if let Ok(value) = wait.as_secs().max(1).to_string().parse() {
                status.metadata_mut().insert("retry-after", value);
            }
            return Err(status);
        }
        Ok(())
    }
}

/// Whether only the mesh itself may set the header `name` (lower case).
pub fn is_internal_header(name: &str) -> bool {
    INTERNAL_HEADERS.contains(&name) || INTERNAL_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Removes what a client may not tell the mesh, and adds what the mesh should know: the
/// request id (kept when the client sent a sane one) and the client address.
pub fn sanitize(headers: &mut HeaderMap, client: Option<ClientAddr>) -> String {
    let internal: Vec<_> = headers
        .keys()
        .filter(|name| is_internal_header(name.as_str()))
        .cloned()
        .collect();
    for name in internal {
        headers.remove(name);
    }
    if let Some(ClientAddr(addr)) = client
        && let Ok(value) = HeaderValue::from_str(&client_ip(addr.ip()))
    {
        headers.insert("x-forwarded-for", value);
    }
    request_id(headers)
}

fn client_ip(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// The request id of `headers` (the kernel's one rule, see
/// [`mercato_kernel::trace::request_id`]).
pub use mercato_kernel::trace::request_id;

#[cfg(test)]
mod tests {
    use mercato_kernel::trace::REQUEST_ID;

    use super::*;

    #[test]
    fn internal_headers_are_stripped_and_the_client_address_set() {
        let mut headers = HeaderMap::new();
        headers.insert("x-mercato-principal", HeaderValue::from_static("admin"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.insert("x-user-id", HeaderValue::from_static("someone"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.insert(REQUEST_ID, HeaderValue::from_static("req-42"));
        let client = ClientAddr("192.0.2.7:5000".parse().unwrap());
        let id = sanitize(&mut headers, Some(client));
        assert_eq!(id, "req-42");
        assert!(headers.get("x-mercato-principal").is_none());
        assert!(headers.get("x-user-id").is_none());
        assert_eq!(headers["x-forwarded-for"], "192.0.2.7");
        assert_eq!(headers["authorization"], "Bearer t");
    }

    #[test]
    fn the_client_is_the_peer_unless_proxies_are_trusted() {
        let peer: SocketAddr = "10.0.0.9:4000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.5"),
        );
        assert_eq!(client_addr(peer, &headers, 0).0, peer);
        // One trusted proxy (the peer): the client is what it appended.
        assert_eq!(
            client_addr(peer, &headers, 1).0.ip().to_string(),
            "203.0.113.5"
        );
        // More hops than entries: the leftmost address.
        assert_eq!(client_addr(peer, &headers, 5).0.ip().to_string(), "6.6.6.6");
        assert_eq!(client_addr(peer, &HeaderMap::new(), 1).0.ip(), peer.ip());
    }

    #[test]
    fn a_missing_or_odd_request_id_is_replaced() {
        let mut headers = HeaderMap::new();
        let id = request_id(&mut headers);
        assert_eq!(headers[REQUEST_ID], id.as_str());
        let mut headers = HeaderMap::new();
        let long = "x".repeat(129);
        headers.insert(REQUEST_ID, HeaderValue::from_str(&long).unwrap());
        assert_ne!(request_id(&mut headers), long);
    }
}
