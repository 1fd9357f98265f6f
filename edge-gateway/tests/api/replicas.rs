//! The gateway in front of two replicas (catalog, order-query): calls spread per request over
//! both, and one replica killed mid-run fails no idempotent call.

use mercato::pb::catalog::v1::ListCategoriesRequest;
use mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient;
use mercato_testkit::TestIdentity;
use mercato_testkit::relay::{catalog_replicas, order_query_replicas, upstream};

use crate::helpers::{gateway, grpc};

/// One test client makes all the calls: no per-caller rate limit in the way.
const UNLIMITED: &[(&str, &str)] = &[
    ("MERCATO_RATE_LIMIT_RPS", "1000000"),
    ("MERCATO_RATE_LIMIT_BURST", "1000000"),
];

/// Replicas behind relays (see the testkit), and a gateway given all of them as `component`.
async fn gateway_over(
    identity: &TestIdentity,
    component: &str,
    (running, relays, db): mercato_testkit::relay::Replicas,
) -> (
    Vec<mercato_kernel::RunningService>,
    Vec<mercato_testkit::Relay>,
    mercato_testkit::TestDatabase,
    edge_gateway::RunningGateway,
) {
    let gw = gateway(
        &identity.url(),
        &[(component, upstream(&relays))],
        UNLIMITED,
    )
    .await;
    (running, relays, db, gw)
}

/// Two catalog replicas behind relays, and a gateway given both.
async fn two_replicas_behind_a_gateway() -> (
    TestIdentity,
    Vec<mercato_kernel::RunningService>,
    Vec<mercato_testkit::Relay>,
    mercato_testkit::TestDatabase,
    edge_gateway::RunningGateway,
) {
    let identity = TestIdentity::start().await;
    let replicas = catalog_replicas(&identity, 2).await;
    let (running, relays, db, gw) = gateway_over(&identity, "catalog", replicas).await;
    (identity, running, relays, db, gw)
}

#[tokio::test]
async fn calls_through_the_gateway_spread_over_both_replicas() {
    let (_identity, running, relays, _db, gw) = two_replicas_behind_a_gateway().await;
    // One client connection, as grpcurl or a generated client holds it: the gateway, not
    // the client, spreads the calls.
    let mut client = CatalogServiceClient::new(grpc(gw.addr).await);
    for _ in 0..1000 {
        client
            .list_categories(ListCategoriesRequest::default())
            .await
            .unwrap();
    }
    let share = share_of_first(&relays);
    assert!(
        (0.35..=0.65).contains(&share),
        "replica A took {share:.2} of the calls"
    );
    for replica in running {
        replica.stop().await.unwrap();
    }
}

/// The share of the calls the first of two relays carried.
fn share_of_first(relays: &[mercato_testkit::Relay]) -> f64 {
    let (a, b) = (relays[0].sent() as f64, relays[1].sent() as f64);
    a / (a + b)
}

#[tokio::test]
async fn order_reads_through_the_gateway_spread_over_both_order_query_replicas() {
    use mercato::pb::orderquery::v1::ListOrdersRequest;
    use mercato::pb::orderquery::v1::order_query_service_client::OrderQueryServiceClient;

    let identity = TestIdentity::start().await;
    let replicas = order_query_replicas(&identity, 2).await;
    let (running, relays, _db, gw) = gateway_over(&identity, "order-query", replicas).await;
    let (_, token) = identity.customer().await;
    let mut client = OrderQueryServiceClient::new(grpc(gw.addr).await);
    for _ in 0..1000 {
        client
            .list_orders(mercato_testkit::authed(
                ListOrdersRequest::default(),
                &token,
            ))
            .await
            .unwrap();
    }
    let share = share_of_first(&relays);
    assert!(
        (0.35..=0.65).contains(&share),
        "replica A took {share:.2} of the calls"
    );
    for replica in running {
        replica.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_replica_killed_mid_run_fails_no_idempotent_call_through_the_gateway() {
    let (_identity, running, relays, _db, gw) = two_replicas_behind_a_gateway().await;
    let channel = grpc(gw.addr).await;
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let mut client = CatalogServiceClient::new(channel.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                for _ in 0..150 {
                    if let Err(status) = client
                        .list_categories(ListCategoriesRequest::default())
                        .await
                    {
                        failures.push(status);
                    }
                }
                failures
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    relays[1].cut();
    let mut failures = Vec::new();
    for caller in callers {
        failures.extend(caller.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        failures.first()
    );
    for replica in running {
        replica.stop().await.unwrap();
    }
}
