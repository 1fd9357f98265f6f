//! CORS for browsers: which origins may call the gateway (`MERCATO_CORS_ALLOWED_ORIGINS`),
//! preflights answered here, and the headers gRPC-web clients must read exposed.
//!
//! An allowed origin is written exactly (`https://shop.example`), as `*` for any, or with
//! `:*` for any port of one scheme and host (`http://localhost:*`), so a local dev server
//! (Vite on 5173, another on 3000, …) works without naming its port: `make run` allows
//! `http://localhost:*` and `http://127.0.0.1:*`. The Kubernetes configuration allows none.

use std::time::Duration;

use http::{HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// An allowed-origin entry that cannot match any browser origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pattern:?} is not an origin: {reason}")]
pub struct PatternError {
    pattern: String,
    reason: &'static str,
}

/// One entry of the allowed origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: every origin.
    Any,
    /// `scheme://host[:port]`, compared exactly (ASCII case aside).
    Exact(String),
    /// `scheme://host:*`: that scheme and host on any port, or none.
    AnyPort {
        /// `http://localhost`, lower case.
        scheme_host: String,
    },
}

impl OriginPattern {
    /// Parses one entry.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let fail = |reason| PatternError {
            pattern: pattern.to_owned(),
            reason,
        };
        if pattern == "*" {
            return Ok(Self::Any);
        }
        let lower = pattern.to_ascii_lowercase();
        let (scheme, rest) = lower
            .split_once("://")
            .ok_or_else(|| fail("expected scheme://host[:port]"))?;
        if scheme.is_empty() || rest.is_empty() || rest.contains('/') {
            return Err(fail("expected scheme://host[:port], without a path"));
        }
        if let Some(host) = rest.strip_suffix(":*") {
            if host.is_empty() || host.contains('*') {
                return Err(fail("only the port may be '*'"));
            }
            return Ok(Self::AnyPort {
                scheme_host: format!("{scheme}://{host}"),
            });
        }
        if rest.contains('*') {
            return Err(fail("only the port may be '*'"));
        }
        Ok(Self::Exact(lower))
    }

    /// Whether a browser's `Origin` header value matches.
    pub fn matches(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        match self {
            Self::Any => true,
            Self::Exact(exact) => origin == *exact,
            Self::AnyPort { scheme_host } => match origin.strip_prefix(scheme_host.as_str()) {
                Some("") => true,
                Some(port) => port.strip_prefix(':').is_some_and(|digits| {
                    !digits.is_empty()
                        && digits.len() <= 5
                        && digits.bytes().all(|b| b.is_ascii_digit())
                }),
                None => false,
            },
        }
    }
}

/// The CORS layer for `origins`; none (no CORS headers at all) when the list is empty.
pub fn layer(origins: &[OriginPattern]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.contains(&OriginPattern::Any) {
        AllowOrigin::any()
    } else {
        let origins = origins.to_vec();
        AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin
                .to_str()
                .is_ok_and(|origin| origins.iter().any(|p| p.matches(origin)))
        })
    };
    let request_headers = [
        "authorization",
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "x-request-id",
        "accept",
    ];
    let exposed = [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "x-request-id",
        "retry-after",
    ];
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers(request_headers.map(http::HeaderName::from_static))
            .expose_headers(exposed.map(http::HeaderName::from_static))
            .max_age(Duration::from_secs(24 * 3600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> OriginPattern {
        OriginPattern::parse(text).unwrap()
    }

    #[test]
    fn any_port_patterns_match_that_host_on_every_port_only() {
        let local = pattern("http://localhost:*");
        for ok in [
            "http://localhost:5173",
            "http://localhost:3000",
            "http://LOCALHOST:8081",
            "http://localhost",
        ] {
            assert!(local.matches(ok), "{ok}");
        }
        for refused in [
            "https://localhost:5173",
            "http://localhost.evil.example:5173",
            "http://localhost:5173.evil.example",
            "http://localhost:",
            "http://127.0.0.1:5173",
            "null",
        ] {
            assert!(!local.matches(refused), "{refused}");
        }
        assert!(pattern("https://shop.example").matches("https://shop.example"));
        assert!(!pattern("https://shop.example").matches("https://shop.example:444"));
        assert!(pattern("*").matches("https://anything.example"));
    }

    #[test]
    fn entries_that_are_not_origins_are_refused() {
        for bad in [
            "localhost:5173",
            "http://",
            "http://*.example",
            "http://localhost:5173/app",
            "https://*:*",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
    }

    /// Whatever the local defaults are, the cluster's configuration allows no origin.
    #[test]
    fn the_kubernetes_configuration_allows_no_origin() {
        let config = include_str!("../../k8s/base/edge-gateway/config.env");
        for line in config.lines() {
            if let Some(value) = line.trim().strip_prefix("MERCATO_CORS_ALLOWED_ORIGINS=") {
                assert!(value.trim().is_empty(), "k8s allows {value:?}");
            }
        }
    }
}
