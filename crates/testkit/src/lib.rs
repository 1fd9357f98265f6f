//! Test harness for Mercato's integration tests: every test gets its own Postgres database,
//! Redis key prefix and NATS namespace on the real servers (so tests run in parallel and
//! leave nothing behind), and services run in-process on ephemeral ports.
//!
//! The servers are found through `DATABASE_URL` (any database on the server; default
//! `postgres://postgres@127.0.0.1:5432/postgres`), `REDIS_URL` and `NATS_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;

use mercato::pb::identity::v1::identity_service_client::IdentityServiceClient;
use mercato::pb::identity::v1::{
    IssueTokenRequest, PasswordGrant, RegisterRequest, issue_token_request,
};
use mercato_kernel::{RunningService, ServiceConfig};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// Administrator created in every test identity.
pub const ADMIN_EMAIL: &str = "admin@mercato.test";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

fn server_url(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A unique, short, lowercase id for naming per-test resources.
pub fn unique_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A database created for one test and dropped when the test ends.
#[derive(Debug)]
pub struct TestDatabase {
    /// URL of the test's own database.
    pub url: String,
}

impl TestDatabase {
    /// A fresh database name on the test server (created by the service at start-up).
    pub fn new(service: &str) -> Self {
        let base = server_url(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
        let mut url = url::Url::parse(&base).expect("DATABASE_URL is a URL");
        url.set_path(&format!(
            "/test_{}_{}",
            service.replace('-', "_"),
            unique_id()
        ));
        Self {
            url: url.to_string(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Drop is synchronous and may run inside a runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(mercato_kernel::db::drop_database(&url));
            }
        })
        .join();
    }
}

/// Environment for a service under test: its own database, Redis prefix and NATS namespace,
/// ephemeral ports, quiet logs.
pub fn service_env(
    service: &str,
    database: &TestDatabase,
    namespace: &str,
) -> HashMap<String, String> {
    let mut env = HashMap::new();
    env.insert("DATABASE_URL".into(), database.url.clone());
    env.insert(
        "REDIS_URL".into(),
        server_url("REDIS_URL", "redis://127.0.0.1:6379"),
    );
    env.insert(
        "NATS_URL".into(),
        server_url("NATS_URL", "nats://127.0.0.1:4222"),
    );
    env.insert("MERCATO_GRPC_ADDR".into(), "127.0.0.1:0".into());
    env.insert("MERCATO_ADMIN_ADDR".into(), "127.0.0.1:0".into());
    env.insert("MERCATO_NAMESPACE".into(), namespace.into());
    env.insert(
        "MERCATO_REDIS_PREFIX".into(),
        format!("{namespace}:{service}:"),
    );
    env.insert("MERCATO_LOG_FORMAT".into(), "pretty".into());
    env.insert("MERCATO_DB_POOL_SIZE".into(), "8".into());
    env.insert("MERCATO_SHUTDOWN_GRACE_SECS".into(), "2".into());
    env
}

/// Installs a log subscriber once when `RUST_LOG` is set; tests are quiet otherwise.
pub fn init_logs() {
    if std::env::var("RUST_LOG").is_err() {
        return;
    }
    let env = HashMap::from([("MERCATO_LOG_FORMAT".to_owned(), "pretty".to_owned())]);
    let config = ServiceConfig::from_source("test", &env).expect("test config");
    // The guard would flush traces; tests export none, and the subscriber lives for the process.
    std::mem::forget(mercato_kernel::telemetry::init(&config));
}

/// A running identity service with an administrator.
pub struct TestIdentity {
    /// The service.
    pub running: RunningService,
    /// Its gRPC address.
    pub addr: SocketAddr,
    /// Its database (dropped with the fixture).
    pub database: TestDatabase,
    /// The NATS namespace of this test.
    pub namespace: String,
}

impl TestIdentity {
    /// Starts identity for one test, with `extra` environment on top of the defaults.
    pub async fn start_with(extra: &[(&str, &str)]) -> Self {
        init_logs();
        let database = TestDatabase::new("identity");
        let namespace = format!("t{}", unique_id());
        let mut env = service_env("identity", &database, &namespace);
        env.insert("MERCATO_ADMIN_EMAIL".into(), ADMIN_EMAIL.into());
        env.insert("MERCATO_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let config = ServiceConfig::from_source("identity", &env).expect("identity config");
        let settings = identity::Settings::from_env(&env).expect("identity settings");
        let running = identity::start(config, settings)
            .await
            .expect("identity starts");
        let addr = running.grpc_addr;
        Self {
            running,
            addr,
            database,
            namespace,
        }
    }

    /// Starts identity with defaults.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// `http://` URL of the service.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client.
    pub async fn client(&self) -> IdentityServiceClient<Channel> {
        IdentityServiceClient::new(channel(self.addr).await)
    }

    /// An access token of the administrator.
    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Registers a customer with a unique e-mail; returns (user id, access token).
    pub async fn customer(&self) -> (String, String) {
        let email = format!("c{}@mercato.test", unique_id());
        let user = self
            .client()
            .await
            .register(RegisterRequest {
                email: email.clone(),
                password: "customer-password".into(),
                display_name: "Customer".into(),
            })
            .await
            .expect("register customer")
            .into_inner()
            .user
            .expect("user");
        (user.id, self.login(&email, "customer-password").await)
    }

    /// An access token for e-mail and password.
    pub async fn login(&self, email: &str, password: &str) -> String {
        self.client()
            .await
            .issue_token(IssueTokenRequest {
                grant: Some(issue_token_request::Grant::Password(PasswordGrant {
                    email: email.into(),
                    password: password.into(),
                })),
            })
            .await
            .expect("login")
            .into_inner()
            .access_token
    }
}

/// A connected channel to `addr`.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

/// `message` with `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("token is ASCII");
    request.metadata_mut().insert("authorization", value);
    request
}
