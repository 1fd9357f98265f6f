//! Several catalog replicas on one database, as Kubernetes starts them.

use mercato_kernel::ServiceConfig;
use mercato_testkit::{Relay, TestDatabase, TestIdentity, service_env};

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
    let (running, relays, database) = mercato_testkit::relay::catalog_replicas(&identity, 2).await;
    let mut env = service_env("basket", &database, &identity.namespace);
    env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
    env.insert(
        "MERCATO_UPSTREAM_CATALOG".into(),
        mercato_testkit::relay::upstream(&relays),
    );
    let caller = ServiceConfig::from_source("basket", &env).unwrap();
    let peers = mercato_kernel::client::Peers::new(&caller).unwrap();
    let client = mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient::new(
        peers.channel("catalog").unwrap(),
    );
    let Ok(relays) = <[Relay; 2]>::try_from(relays) else {
        unreachable!("two relays")
    };
    (running, relays, client, database, identity)
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
    b.cut();
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
