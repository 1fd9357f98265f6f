//! Two order-query replicas on one database and one durable consumer, as Kubernetes runs
//! them: a watcher on either one sees every state, whichever replica projected it.

use std::time::Duration;

use mercato::pb::order::v1::OrderStatus;
use mercato::pb::orderquery::v1::OrderView;
use mercato_kernel::ServiceConfig;
use mercato_kernel::events::{ChangeFeed, change_subject};

use crate::watch::{next, watch};
use crate::{SERVICE, TestOrderQuery, confirmed, new_id, now, placed, shipped};

#[tokio::test]
async fn a_watcher_on_one_replica_sees_what_the_other_projected() {
    let a = TestOrderQuery::start().await;
    let config = ServiceConfig::from_source(SERVICE, &a.env).unwrap();
    let b = order_query::start(config).await.unwrap();
    let (user, token) = a.identity.customer().await;

    // Both replicas pull from the one durable consumer: each event is projected once, by
    // either; a watcher on A must see all of them.
    let orders: Vec<_> = (0..6).map(|_| new_id()).collect();
    let mut streams = Vec::new();
    for id in &orders {
        let p = placed(id, &user, now());
        a.publish(id, &p).await;
        a.wait_for_state(id, OrderStatus::Pending, 1).await;
        let stream = watch(&a, &token, id).await;
        streams.push((p, stream));
    }
    for (p, stream) in &mut streams {
        assert_eq!(next(stream).await.status(), OrderStatus::Pending);
        a.publish(&p.order_id, &confirmed(p, "pay-1")).await;
        a.publish(&p.order_id, &shipped(p, "pay-1", "TRK")).await;
    }
    for (_, stream) in &mut streams {
        let mut last = next(stream).await;
        if last.status() == OrderStatus::Confirmed {
            last = next(stream).await;
        }
        assert_eq!(last.status(), OrderStatus::Shipped);
    }

    // And deterministically: a state announced by another replica's feed (B stands aside;
    // this feed plays the projecting replica) reaches A's watcher.
    let id = &orders[0];
    let mut stream = watch(&a, &token, id).await;
    let current = next(&mut stream).await;
    let other = ChangeFeed::<OrderView>::new(8);
    let (_trigger, signal) = mercato_kernel::shutdown::channel();
    let nats = async_nats::connect(mercato_testkit::nats_url())
        .await
        .unwrap();
    other
        .share(
            nats,
            change_subject(a.namespace(), SERVICE, "orders"),
            signal,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    other.publish(OrderView {
        version: current.version + 1,
        tracking_number: "FROM-B".into(),
        ..current.clone()
    });
    assert_eq!(next(&mut stream).await.tracking_number, "FROM-B");
    b.stop().await.unwrap();
}
