//! Test harness for Mercato's integration tests: every test gets its own Postgres database,
//! Redis key prefix and NATS namespace on the real servers (so tests run in parallel and
//! leave nothing behind), and services run in-process on ephemeral ports.
//!
//! The servers are found through `DATABASE_URL` (any database on the server; default
//! `postgres://postgres@127.0.0.1:5432/postgres`), `REDIS_URL` and `NATS_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod history;
pub mod raw;
pub mod relay;
pub mod shop;

pub use raw::{grpc_frame, raw_grpc};
pub use relay::Relay;

use std::collections::HashMap;
use std::net::SocketAddr;

use mercato::pb::events::v1::Envelope;
use mercato::pb::identity::v1::identity_service_client::IdentityServiceClient;
use mercato::pb::identity::v1::{
    ClientCredentialsGrant, CreateClientRequest, IssueTokenRequest, PasswordGrant, RegisterRequest,
    issue_token_request,
};
use mercato_kernel::{RunningService, ServiceConfig};
use prost::Message as _;
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

/// The raw answer (status line, headers, body) to `GET path` on an HTTP/1.1 port such as a
/// service's admin port.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
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

/// One service under test beside its own identity, with an administrator's and a service
/// account's token at hand.
pub struct TestService {
    /// The identity issuing the tokens.
    pub identity: TestIdentity,
    /// The service.
    pub running: RunningService,
    /// Its database (dropped with the fixture).
    pub database: TestDatabase,
    /// The environment it was started with.
    pub env: HashMap<String, String>,
    /// An administrator's access token.
    pub admin: String,
    /// A service account's access token.
    pub service: String,
}

impl TestService {
    /// Starts `service` with `start` on its own database, next to a fresh identity.
    pub async fn start<F, Fut, E>(service: &str, start: F) -> Self
    where
        F: FnOnce(ServiceConfig) -> Fut,
        Fut: std::future::Future<Output = Result<RunningService, E>>,
        E: std::fmt::Debug,
    {
        let identity = TestIdentity::start().await;
        let database = TestDatabase::new(service);
        let mut env = service_env(service, &database, &identity.namespace);
        env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
        let config = ServiceConfig::from_source(service, &env).expect("service config");
        let running = start(config).await.expect("service starts");
        Self {
            admin: identity.admin_token().await,
            service: identity.service_token().await,
            identity,
            running,
            database,
            env,
        }
    }
}

/// A service account created in a test identity.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    /// `MERCATO_CLIENT_ID` of the service using it.
    pub client_id: String,
    /// `MERCATO_CLIENT_SECRET`.
    pub client_secret: String,
}

impl TestIdentity {
    /// Creates a service account (role `service`) through the admin API.
    pub async fn service_account(&self, name: &str) -> ServiceAccount {
        let admin = self.admin_token().await;
        let created = self
            .client()
            .await
            .create_client(authed(CreateClientRequest { name: name.into() }, &admin))
            .await
            .expect("create client")
            .into_inner();
        ServiceAccount {
            client_id: created.client.expect("client").id,
            client_secret: created.client_secret,
        }
    }

    /// An access token of a fresh service account (role `service`).
    pub async fn service_token(&self) -> String {
        let account = self.service_account("test-service").await;
        self.client()
            .await
            .issue_token(IssueTokenRequest {
                grant: Some(issue_token_request::Grant::ClientCredentials(
                    ClientCredentialsGrant {
                        client_id: account.client_id,
                        client_secret: account.client_secret,
                    },
                )),
            })
            .await
            .expect("client credentials")
            .into_inner()
            .access_token
    }
}

/// The environment a service needs to call its peers as a service account of `identity`.
pub async fn service_identity_env(
    identity: &TestIdentity,
    service: &str,
    env: &mut HashMap<String, String>,
) {
    let account = identity.service_account(service).await;
    env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
    env.insert("MERCATO_CLIENT_ID".into(), account.client_id);
    env.insert("MERCATO_CLIENT_SECRET".into(), account.client_secret);
}

/// Asserts that `result` failed with `code`; returns the status for further checks.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
) -> tonic::Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            status
        }
    }
}

/// The fields named in the status's BadRequest field violations.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// The NATS server tests use (`NATS_URL`).
pub fn nats_url() -> String {
    server_url("NATS_URL", "nats://127.0.0.1:4222")
}

/// Reads exactly `expected` events from the `domain` stream of `namespace` (waiting up to 10 s
/// for each), checks that no further event arrives, then deletes the stream.
pub async fn read_stream(namespace: &str, domain: &str, expected: usize) -> Vec<Envelope> {
    use futures::StreamExt as _;
    use prost::Message as _;
    use std::time::Duration;

    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.expect("nats"));
    let stream_name = mercato_kernel::events::stream_name(namespace, domain);
    let stream = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(stream) = js.get_stream(&stream_name).await {
                break stream;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("stream created");
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::new();
    while out.len() < expected {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} events published", out.len()))
            .expect("message")
            .expect("message");
        out.push(Envelope::decode(message.payload.as_ref()).expect("envelope"));
    }
    let extra = tokio::time::timeout(Duration::from_millis(700), messages.next()).await;
    assert!(extra.is_err(), "more events than expected");
    let _ = js.delete_stream(&stream_name).await;
    out
}

/// Publishes `event` as its producer's outbox relay would (envelope, subject, Nats-Msg-Id)
/// and returns the envelope; `id` chooses the event id (to send a duplicate), else a new one.
pub async fn publish_event<M: prost::Name>(
    namespace: &str,
    aggregate_id: &str,
    event: &M,
    id: Option<&str>,
) -> Envelope {
    let type_name = M::full_name();
    let subject = mercato_kernel::events::event_subject(&type_name).expect("a mercato event");
    let domain = subject.split('.').next().expect("domain").to_owned();
    let envelope = Envelope {
        id: id.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned),
        r#type: type_name,
        source: domain.clone(),
        subject: aggregate_id.into(),
        occurred_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        payload: event.encode_to_vec(),
        ..Default::default()
    };
    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.expect("nats"));
    mercato_kernel::events::stream::ensure_stream(&js, namespace, &domain)
        .await
        .expect("stream");
    publish_raw(
        &js,
        &format!("{namespace}.{subject}"),
        &envelope.id,
        envelope.encode_to_vec(),
    )
    .await;
    envelope
}

/// Publishes raw bytes on `subject` (e.g. a poison message) with a Nats-Msg-Id.
pub async fn publish_raw(
    js: &async_nats::jetstream::Context,
    subject: &str,
    msg_id: &str,
    payload: Vec<u8>,
) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(subject.to_owned(), headers, payload.into())
        .await
        .expect("publish")
        .await
        .expect("acknowledged");
}

/// Waits for `expected` dead letters of `service` and returns their headers and payloads.
pub async fn read_dlq(
    namespace: &str,
    service: &str,
    expected: usize,
) -> Vec<(async_nats::HeaderMap, Vec<u8>)> {
    use futures::StreamExt as _;
    use std::time::Duration;

    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.expect("nats"));
    let name = mercato_kernel::events::stream_name(namespace, "dlq");
    let stream = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(stream) = js.get_stream(&name).await {
                break stream;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("dead-letter stream created");
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            filter_subject: format!("{namespace}.dlq.{service}"),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::new();
    while out.len() < expected {
        let message = tokio::time::timeout(Duration::from_secs(60), messages.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} dead letters", out.len()))
            .expect("message")
            .expect("message");
        out.push((
            message.headers.clone().unwrap_or_default(),
            message.payload.to_vec(),
        ));
    }
    out
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
