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
