//! Several catalog replicas on one database, as Kubernetes starts them.

use mercato_kernel::ServiceConfig;
use mercato_testkit::{TestDatabase, TestIdentity, service_env};

#[tokio::test]
async fn replicas_starting_at_once_on_an_empty_database_all_come_up() {
    let identity = TestIdentity::start().await;
    let database = TestDatabase::new("catalog");
    let mut env = service_env("catalog", &database, &identity.namespace);
    env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
    let config = ServiceConfig::from_source("catalog", &env).unwrap();
    // Each one creates the database, then migrates it: the creates race, and so would the
    // migrations without the lock.
    let started =
        futures::future::join_all((0..3).map(|_| catalog::start(config.clone(), false))).await;
    let mut running = Vec::new();
    for replica in started {
        running.push(replica.expect("every replica starts"));
    }
    for replica in running {
        replica.stop().await.unwrap();
    }
}

/// A TCP relay to one replica that counts the bytes callers send it, and can be cut like a
/// killed pod (its connections drop, new ones are refused).
struct Relay {
    addr: std::net::SocketAddr,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn to(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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

    fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Two catalog replicas, each behind a relay, and a peer channel over both relays, as a
/// service calling the catalog holds it.
async fn two_replicas() -> (
    Vec<mercato_kernel::RunningService>,
    [Relay; 2],
    mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient<
        mercato_kernel::client::PeerChannel,
    >,
    TestDatabase,
    TestIdentity,
) {
    let identity = TestIdentity::start().await;
    let database = TestDatabase::new("catalog");
    let mut env = service_env("catalog", &database, &identity.namespace);
    env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
    let config = ServiceConfig::from_source("catalog", &env).unwrap();
    let a = catalog::start(config.clone(), false).await.unwrap();
    let b = catalog::start(config, false).await.unwrap();
    let relays = [Relay::to(a.grpc_addr).await, Relay::to(b.grpc_addr).await];
    env.insert(
        "MERCATO_UPSTREAM_CATALOG".into(),
        format!("http://{},http://{}", relays[0].addr, relays[1].addr),
    );
    let caller = ServiceConfig::from_source("basket", &env).unwrap();
    let peers = mercato_kernel::client::Peers::new(&caller).unwrap();
    let client = mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient::new(
        peers.channel("catalog").unwrap(),
    );
    (vec![a, b], relays, client, database, identity)
}

#[tokio::test]
async fn calls_from_one_client_spread_over_both_replicas() {
    let (running, relays, mut client, _db, _id) = two_replicas().await;
    for _ in 0..1000 {
        client
            .list_categories(mercato::pb::catalog::v1::ListCategoriesRequest::default())
            .await
            .unwrap();
    }
    let (a, b) = (relays[0].sent() as f64, relays[1].sent() as f64);
    let share = a / (a + b);
    assert!(
        (0.35..=0.65).contains(&share),
        "replica A took {share:.2} of the calls"
    );
    for replica in running {
        replica.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_replica_killed_mid_run_fails_no_idempotent_call() {
    let (running, relays, client, _db, _id) = two_replicas().await;
    let [a, b] = relays;
    let calls = |n: usize| {
        let client = client.clone();
        async move {
            let mut failures = Vec::new();
            for _ in 0..n {
                if let Err(status) = client
                    .clone()
                    .list_categories(mercato::pb::catalog::v1::ListCategoriesRequest::default())
                    .await
                {
                    failures.push(status);
                }
            }
            failures
        }
    };
    // Four callers at once, so calls are in flight on B when it goes.
    let load: Vec<_> = (0..4).map(|_| tokio::spawn(calls(150))).collect();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    b.task.abort();
    let before = a.sent();
    let mut failures = Vec::new();
    for caller in load {
        failures.extend(caller.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(a.sent() > before, "A took over");
    for replica in running {
        replica.stop().await.unwrap();
    }
}
