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
    let peers = mercato_kernel::client::Peers::new(&caller.peers).unwrap();
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

/// The overall gRPC health status the server behind `health` reports.
async fn serving_status(
    health: &mut tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>,
) -> i32 {
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status
}

/// What `/readyz` on `admin` says, or `None` while nothing listens there.
async fn readyz(admin: std::net::SocketAddr) -> Option<String> {
    tokio::net::TcpStream::connect(admin).await.ok()?;
    Some(mercato_testkit::http_get(admin, "/readyz").await)
}

#[tokio::test]
async fn a_replica_started_before_postgres_and_nats_answer_serves_once_they_do() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let identity = TestIdentity::start().await;
    let database = TestDatabase::new("catalog");
    let real_postgres = {
        let url = url::Url::parse(&database.url).unwrap();
        let host = url.host_str().unwrap().to_owned();
        tokio::net::lookup_host((host, url.port().unwrap_or(5432)))
            .await
            .unwrap()
            .next()
            .unwrap()
    };
    let real_nats = tokio::net::lookup_host(
        mercato_testkit::nats_url()
            .trim_start_matches("nats://")
            .to_owned(),
    )
    .await
    .unwrap()
    .next()
    .unwrap();
    // Postgres and NATS "come up" later at these addresses; until then connecting is refused.
    let (postgres_at, nats_at) = (
        mercato_testkit::relay::free_addr(),
        mercato_testkit::relay::free_addr(),
    );
    let (grpc, admin) = (
        mercato_testkit::relay::free_addr(),
        mercato_testkit::relay::free_addr(),
    );
    let mut via_relay = url::Url::parse(&database.url).unwrap();
    via_relay.set_port(Some(postgres_at.port())).unwrap();

    let mut env = service_env("catalog", &database, &identity.namespace);
    env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
    env.insert("DATABASE_URL".into(), via_relay.to_string());
    env.insert("NATS_URL".into(), format!("nats://{nats_at}"));
    env.insert("MERCATO_GRPC_ADDR".into(), grpc.to_string());
    env.insert("MERCATO_ADMIN_ADDR".into(), admin.to_string());
    let config = ServiceConfig::from_source("catalog", &env).unwrap();
    let starting = tokio::spawn(catalog::start(config, false));

    // It listens, stays alive and says it is not ready, for as long as Postgres is away.
    let not_ready = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            if let Some(answer) = readyz(admin).await {
                break answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the admin port opens while Postgres is away");
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    assert!(not_ready.contains(r#""started":false"#), "{not_ready}");
    let live = mercato_testkit::http_get(admin, "/livez").await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let channel = mercato_testkit::channel(grpc).await;
    let mut health = HealthClient::new(channel.clone());
    assert_eq!(
        serving_status(&mut health).await,
        ServingStatus::NotServing as i32
    );
    let mut catalog = mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient::new(
        channel.clone(),
    );
    let refused = catalog
        .list_products(mercato::pb::catalog::v1::ListProductsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    // Several attempts fail while it waits; none of them ends the process.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(!starting.is_finished(), "start-up waits for Postgres");

    let _postgres = Relay::on(postgres_at, real_postgres).await;
    let running = tokio::time::timeout(std::time::Duration::from_secs(30), starting)
        .await
        .expect("ready within 30 s of Postgres answering")
        .unwrap()
        .expect("catalog starts");
    let ready = mercato_testkit::http_get(running.admin_addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(
        ready.contains(r#"["nats",false]"#),
        "NATS is still away: {ready}"
    );
    assert_eq!(
        serving_status(&mut health).await,
        ServingStatus::Serving as i32
    );
    let admin_token = identity.admin_token().await;
    let created = catalog
        .create_product(mercato_testkit::authed(
            mercato::pb::catalog::v1::CreateProductRequest {
                product: Some(crate::product("LATE-1", "Started late", 900, "")),
            },
            &admin_token,
        ))
        .await
        .expect("writes once Postgres answers")
        .into_inner()
        .product
        .unwrap();

    // NATS comes up too: the client connects on its own and the waiting event goes out.
    let _nats = Relay::on(nats_at, real_nats).await;
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while !mercato_testkit::http_get(running.admin_addr, "/readyz")
            .await
            .contains(r#"["nats",true]"#)
        {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("NATS reconnects within 30 s");
    let events = mercato_testkit::read_stream(&identity.namespace, "catalog", 1).await;
    assert!(
        events.iter().any(|e| e.subject == created.id),
        "the product's event is published once NATS answers"
    );
    running.stop().await.unwrap();
}
