//! The gateway's own settings (the shared ones live in [`mercato_kernel::ServiceConfig`]),
//! read through the kernel's [`Env`] so tests never touch the process environment.

use std::time::Duration;

use mercato_kernel::config::{ConfigError, Env, Vars};

use crate::cors::OriginPattern;

/// Gateway-specific configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Browser origins allowed to call the gateway (`MERCATO_CORS_ALLOWED_ORIGINS`, comma
    /// separated: exact origins, `*` for any, `scheme://host:*` for any port of a host;
    /// default none: cross-origin browser calls are refused). See [`crate::cors`].
    pub cors_origins: Vec<OriginPattern>,
    /// Sustained requests per second per principal, or per client IP when anonymous
    /// (`MERCATO_RATE_LIMIT_RPS`, default 50; 0 turns rate limiting off).
    pub rate_limit_rps: u32,
    /// Burst allowance of the same bucket (`MERCATO_RATE_LIMIT_BURST`, default 100).
    pub rate_limit_burst: u32,
    /// Largest accepted request body in bytes, for REST and gRPC alike
    /// (`MERCATO_MAX_REQUEST_BYTES`, default 1 MiB).
    pub max_request_bytes: usize,
    /// Longest wait for a request body to arrive completely once its headers are in
    /// (`MERCATO_BODY_READ_TIMEOUT_MS`, default 10000): a body that stalls is answered 408
    /// (REST) or DEADLINE_EXCEEDED (gRPC) instead of holding its connection.
    pub body_read_timeout: Duration,
    /// Deadline of a unary call whose client sets none (`MERCATO_UNARY_TIMEOUT_MS`, default
    /// 15000). Streams without a client deadline run until either side ends them.
    pub unary_timeout: Duration,
    /// Proxies in front of the gateway that append to `x-forwarded-for` (load balancer,
    /// ingress controller), whose word on the client's address is trusted for rate limiting
    /// and forwarding (`MERCATO_TRUSTED_PROXY_HOPS`, default 0: the TCP peer is the client).
    pub trusted_proxy_hops: usize,
    /// Open connections one client address may hold at once
    /// (`MERCATO_MAX_CONNECTIONS_PER_IP`; 0: no bound). Further ones are closed at once.
    /// The address is the TCP peer's, so the default is 256 when clients connect directly
    /// and no bound behind trusted proxies (`MERCATO_TRUSTED_PROXY_HOPS` > 0), whose own
    /// connections would otherwise be refused. See [`crate::connection_limit`].
    pub max_connections_per_ip: usize,
    /// Serving threads, each with its own connections to the clients it was dealt and to
    /// every upstream (`MERCATO_GATEWAY_WORKERS`, default the CPUs available, a container's
    /// CPU limit included; at least 1). See [`crate::workers`].
    pub workers: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            rate_limit_rps: 50,
            rate_limit_burst: 100,
            max_request_bytes: 1024 * 1024,
            body_read_timeout: Duration::from_secs(10),
            unary_timeout: Duration::from_secs(15),
            trusted_proxy_hops: 0,
            max_connections_per_ip: 256,
            workers: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

impl Settings {
    /// Reads the settings from `env`, with the defaults above.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let vars = Vars(env);
        let defaults = Self::default();
        let cors_origins = match vars.get("MERCATO_CORS_ALLOWED_ORIGINS") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(OriginPattern::parse)
                .collect::<Result<_, _>>()
                .map_err(|err| ConfigError::Invalid {
                    key: "MERCATO_CORS_ALLOWED_ORIGINS".to_owned(),
                    value: list.clone(),
                    reason: err.to_string(),
                })?,
        };
        let trusted_proxy_hops =
            vars.parse_or("MERCATO_TRUSTED_PROXY_HOPS", defaults.trusted_proxy_hops)?;
        Ok(Self {
            cors_origins,
            rate_limit_rps: vars.parse_or("MERCATO_RATE_LIMIT_RPS", defaults.rate_limit_rps)?,
            rate_limit_burst: vars
                .parse_or("MERCATO_RATE_LIMIT_BURST", defaults.rate_limit_burst)?,
            max_request_bytes: vars
                .parse_or("MERCATO_MAX_REQUEST_BYTES", defaults.max_request_bytes)?,
            body_read_timeout: Duration::from_millis(vars.parse_or(
                "MERCATO_BODY_READ_TIMEOUT_MS",
                u64::try_from(defaults.body_read_timeout.as_millis()).unwrap_or(10_000),
            )?),
            unary_timeout: Duration::from_millis(vars.parse_or(
                "MERCATO_UNARY_TIMEOUT_MS",
                u64::try_from(defaults.unary_timeout.as_millis()).unwrap_or(15_000),
            )?),
            trusted_proxy_hops,
            max_connections_per_ip: vars.parse_or(
                "MERCATO_MAX_CONNECTIONS_PER_IP",
                if trusted_proxy_hops > 0 {
                    0
                } else {
                    defaults.max_connections_per_ip
                },
            )?,
            workers: vars
                .parse_or("MERCATO_GATEWAY_WORKERS", defaults.workers)?
                .max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn settings_default_and_parse_from_the_environment() {
        let empty: HashMap<String, String> = HashMap::new();
        let settings = Settings::from_env(&empty).unwrap();
        assert!(settings.cors_origins.is_empty());
        assert_eq!(settings.rate_limit_rps, 50);

        let env: HashMap<String, String> = [
            (
                "MERCATO_CORS_ALLOWED_ORIGINS",
                "https://shop.example, http://localhost:*",
            ),
            ("MERCATO_RATE_LIMIT_RPS", "0"),
            ("MERCATO_UNARY_TIMEOUT_MS", "250"),
            ("MERCATO_GATEWAY_WORKERS", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let settings = Settings::from_env(&env).unwrap();
        assert_eq!(
            settings.cors_origins,
            [
                OriginPattern::Exact("https://shop.example".into()),
                OriginPattern::AnyPort {
                    scheme_host: "http://localhost".into()
                }
            ]
        );
        assert_eq!(settings.rate_limit_rps, 0);
        assert_eq!(settings.unary_timeout, Duration::from_millis(250));
        assert_eq!(settings.workers, 1, "never fewer than one worker");
        assert_eq!(
            Settings::from_env(&empty).unwrap().max_connections_per_ip,
            256
        );
        let proxied: HashMap<String, String> =
            [("MERCATO_TRUSTED_PROXY_HOPS".to_owned(), "1".to_owned())].into();
        assert_eq!(
            Settings::from_env(&proxied).unwrap().max_connections_per_ip,
            0,
            "behind proxies the peer is a proxy: no bound unless set"
        );
        let bad: HashMap<String, String> =
            [("MERCATO_RATE_LIMIT_RPS".to_owned(), "many".to_owned())].into();
        assert!(Settings::from_env(&bad).is_err());
        let bad: HashMap<String, String> = [(
            "MERCATO_CORS_ALLOWED_ORIGINS".to_owned(),
            "http://*.example".to_owned(),
        )]
        .into();
        assert!(
            Settings::from_env(&bad).is_err(),
            "a pattern that never matches"
        );
    }
}
