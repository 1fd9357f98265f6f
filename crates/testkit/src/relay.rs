//! A TCP relay in front of a server, for tests of what happens across replicas: it counts
//! the bytes callers send (so a test can tell how calls spread) and can be cut like a
//! killed pod.

/// A TCP relay to one replica that counts the bytes callers send it, and can be cut like a
/// killed pod (its connections drop, new ones are refused).
pub struct Relay {
    /// Where callers connect.
    pub addr: std::net::SocketAddr,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// A relay to `target`, listening on an ephemeral port.
    pub async fn to(target: std::net::SocketAddr) -> Self {
        Self::on("127.0.0.1:0".parse().unwrap(), target).await
    }

    /// A relay to `target` listening on `addr`: a server that comes up where callers were
    /// already told to find it (see [`free_addr`]).
    pub async fn on(addr: std::net::SocketAddr, target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let counter = counter.clone();
                connections.spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, mut to_server) = outbound.into_split();
                    let up = async {
                        let mut buf = vec![0; 16 * 1024];
                        while let Ok(n) = from_client.read(&mut buf).await {
                            if n == 0 || to_server.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            counter.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    };
                    let down = tokio::io::copy(&mut from_server, &mut to_client);
                    tokio::select! { () = up => {}, _ = down => {} }
                });
            }
        });
        Self { addr, sent, task }
    }

    /// Bytes callers have sent through the relay.
    pub fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops every connection and refuses new ones, as a killed pod would.
    pub fn cut(&self) {
        self.task.abort();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A local address nothing listens on (yet): where a test tells a service its dependency is
/// before starting it, so that connecting is refused until a [`Relay::on`] opens there.
pub fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Replicas of a service on one database, each behind a [`Relay`], as Kubernetes runs them.
pub type Replicas = (
    Vec<mercato_kernel::RunningService>,
    Vec<Relay>,
    crate::TestDatabase,
);

/// `n` replicas of `service` on one database and namespace, each started by `start` and put
/// behind a [`Relay`]; the relays' `http://` URLs joined by commas ([`upstream`]) are the
/// upstream a caller is given.
pub async fn replicas<F, Fut, E>(
    identity: &crate::TestIdentity,
    service: &str,
    n: usize,
    start: F,
) -> Replicas
where
    F: Fn(mercato_kernel::ServiceConfig) -> Fut,
    Fut: std::future::Future<Output = Result<mercato_kernel::RunningService, E>>,
    E: std::fmt::Debug,
{
    let database = crate::TestDatabase::new(service);
    let mut env = crate::service_env(service, &database, &identity.namespace);
    env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
    let config = mercato_kernel::ServiceConfig::from_source(service, &env).expect("config");
    let mut running = Vec::new();
    let mut relays = Vec::new();
    for _ in 0..n {
        let replica = start(config.clone()).await.expect("replica starts");
        relays.push(Relay::to(replica.grpc_addr).await);
        running.push(replica);
    }
    (running, relays, database)
}

/// `n` catalog replicas (see [`replicas`]).
pub async fn catalog_replicas(identity: &crate::TestIdentity, n: usize) -> Replicas {
    replicas(identity, "catalog", n, |config| {
        catalog::start(config, false)
    })
    .await
}

/// `n` order-query replicas (see [`replicas`]).
pub async fn order_query_replicas(identity: &crate::TestIdentity, n: usize) -> Replicas {
    replicas(identity, "order-query", n, order_query::start).await
}

/// The upstream URL list of `relays`.
pub fn upstream(relays: &[Relay]) -> String {
    relays
        .iter()
        .map(|relay| format!("http://{}", relay.addr))
        .collect::<Vec<_>>()
        .join(",")
}
