//! WatchOrder: the current state first, then every projected change.

use std::time::Duration;

use mercato::pb::order::v1::OrderStatus;
use mercato::pb::orderquery::v1::{OrderView, WatchOrderRequest};
use mercato_testkit::authed;
use tonic::Code;
use tonic::codec::Streaming;

use crate::{TestOrderQuery, assert_code, confirmed, history, new_id, now, placed, shipped};

pub async fn watch(
    svc: &TestOrderQuery,
    token: &str,
    id: &str,
) -> Streaming<mercato::pb::orderquery::v1::WatchOrderResponse> {
    svc.client()
        .await
        .watch_order(authed(WatchOrderRequest { id: id.into() }, token))
        .await
        .unwrap()
        .into_inner()
}

pub async fn next(
    stream: &mut Streaming<mercato::pb::orderquery::v1::WatchOrderResponse>,
) -> OrderView {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a change within 10 s")
        .expect("stream ok")
        .expect("stream open")
        .order
        .expect("order")
}

#[tokio::test]
async fn a_watcher_gets_the_current_state_then_confirmed_then_shipped() {
    let svc = TestOrderQuery::start().await;
    let (user, token) = svc.identity.customer().await;
    let id = new_id();
    let p = placed(&id, &user, now());
    svc.publish(&id, &p).await;
    svc.wait_for_state(&id, OrderStatus::Pending, 1).await;

    let mut stream = watch(&svc, &token, &id).await;
    assert_eq!(next(&mut stream).await.status, OrderStatus::Pending as i32);

    svc.publish(&id, &confirmed(&p, "pay-1")).await;
    let order = next(&mut stream).await;
    assert_eq!(order.status, OrderStatus::Confirmed as i32);
    assert_eq!(order.version, 2);

    svc.publish(&id, &shipped(&p, "pay-1", "TRK-9")).await;
    let order = next(&mut stream).await;
    assert_eq!(order.status, OrderStatus::Shipped as i32);
    assert_eq!(order.tracking_number, "TRK-9");
    assert_eq!(
        history(&order),
        [
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            OrderStatus::Shipped
        ]
    );
}

#[tokio::test]
async fn a_watch_started_before_the_order_is_projected_waits_for_it() {
    let svc = TestOrderQuery::start().await;
    let (user, token) = svc.identity.customer().await;
    let id = new_id();
    let watcher = {
        let token = token.clone();
        let id = id.clone();
        let client = svc.client().await;
        tokio::spawn(async move {
            let mut client = client;
            let mut stream = client
                .watch_order(authed(WatchOrderRequest { id }, &token))
                .await
                .unwrap()
                .into_inner();
            next(&mut stream).await
        })
    };
    // Give the call a moment to subscribe; correctness does not depend on it (the order
    // would then simply be found on the first read).
    tokio::time::sleep(Duration::from_millis(200)).await;
    svc.publish(&id, &placed(&id, &user, now())).await;
    let first = watcher.await.unwrap();
    assert_eq!(first.id, id);
    assert_eq!(first.status, OrderStatus::Pending as i32);
}

#[tokio::test]
async fn another_customers_order_is_answered_as_a_made_up_id_is() {
    let svc = TestOrderQuery::start().await;
    let (owner, _) = svc.identity.customer().await;
    let (_, stranger) = svc.identity.customer().await;
    let id = new_id();
    svc.publish(&id, &placed(&id, &owner, now())).await;
    svc.wait_for_state(&id, OrderStatus::Pending, 1).await;

    let mut answers = Vec::new();
    for probe in [id.clone(), new_id()] {
        let started = std::time::Instant::now();
        let result = svc
            .client()
            .await
            .watch_order(authed(WatchOrderRequest { id: probe.clone() }, &stranger))
            .await;
        let status = assert_code(result.map(|_| ()), Code::NotFound);
        // Same path: both wait out the appearance window (a real order used to answer at
        // once, a made-up id only after the wait).
        assert!(started.elapsed() >= Duration::from_millis(2900), "{probe}");
        answers.push(status.message().replace(&probe, "<id>"));
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test]
async fn watching_an_order_that_never_appears_is_not_found() {
    let svc = TestOrderQuery::start().await;
    let (_, token) = svc.identity.customer().await;
    let result = svc
        .client()
        .await
        .watch_order(authed(WatchOrderRequest { id: new_id() }, &token))
        .await;
    assert_code(result.map(|_| ()), Code::NotFound);
    let result = svc
        .client()
        .await
        .watch_order(authed(WatchOrderRequest { id: "x".into() }, &token))
        .await;
    assert_code(result.map(|_| ()), Code::InvalidArgument);
}
