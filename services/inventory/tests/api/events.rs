use mercato::pb::identity::v1::GetMeRequest;
use mercato::pb::inventory::v1::{StockAdjusted, StockCommitted, StockReleased, StockReserved};
use mercato_testkit::{assert_code, authed, read_stream};
use prost::Message as _;
use tonic::Code;

use crate::TestInventory;

#[tokio::test]
async fn every_change_reaches_the_stream_exactly_once() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(10).await; // StockAdjusted
    let items = [(id.as_str(), 3)];

    inventory.reserve("order-1", &items).await.unwrap(); // StockReserved
    inventory.reserve("order-1", &items).await.unwrap();
    inventory.commit("order-1").await.unwrap(); // StockCommitted
    inventory.commit("order-1").await.unwrap();
    inventory.release("order-1").await.unwrap(); // StockReleased, restocked
    inventory.release("order-1").await.unwrap();
    inventory.reserve("order-2", &[(&id, 2)]).await.unwrap(); // StockReserved
    inventory.release("order-2").await.unwrap(); // StockReleased, not restocked
    // Neither a tombstone nor a refused request is an event.
    inventory.release("order-3").await.unwrap();
    assert_code(
        inventory.reserve("order-4", &[(&id, 99)]).await,
        Code::FailedPrecondition,
    );
    assert_code(inventory.adjust(&id, -11).await, Code::FailedPrecondition);

    let envelopes = read_stream(&inventory.identity.namespace, "inventory", 6).await;
    let types: Vec<&str> = envelopes.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        [
            "mercato.inventory.v1.StockAdjusted",
            "mercato.inventory.v1.StockReserved",
            "mercato.inventory.v1.StockCommitted",
            "mercato.inventory.v1.StockReleased",
            "mercato.inventory.v1.StockReserved",
            "mercato.inventory.v1.StockReleased",
        ]
    );
    let subjects: Vec<&str> = envelopes.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            id.as_str(),
            "order-1",
            "order-1",
            "order-1",
            "order-2",
            "order-2"
        ]
    );
    assert!(envelopes.iter().all(|e| e.source == "inventory"));

    let admin_id = inventory
        .identity
        .client()
        .await
        .get_me(authed(GetMeRequest {}, &inventory.admin))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap()
        .id;
    let adjusted = StockAdjusted::decode(envelopes[0].payload.as_slice()).unwrap();
    assert_eq!(
        (
            adjusted.product_id.as_str(),
            adjusted.delta,
            adjusted.actor_id.as_str()
        ),
        (id.as_str(), 10, admin_id.as_str())
    );
    assert_eq!(adjusted.stock.unwrap().on_hand, 10);

    let reserved = StockReserved::decode(envelopes[1].payload.as_slice()).unwrap();
    assert_eq!(reserved.order_id, "order-1");
    assert_eq!(reserved.items[0].quantity, 3);
    assert_eq!(
        (reserved.stocks[0].on_hand, reserved.stocks[0].reserved),
        (10, 3)
    );

    let committed = StockCommitted::decode(envelopes[2].payload.as_slice()).unwrap();
    assert_eq!(
        (committed.stocks[0].on_hand, committed.stocks[0].reserved),
        (7, 0)
    );

    let restocked = StockReleased::decode(envelopes[3].payload.as_slice()).unwrap();
    assert!(restocked.restocked);
    assert_eq!(restocked.stocks[0].on_hand, 10);

    let unheld = StockReleased::decode(envelopes[5].payload.as_slice()).unwrap();
    assert!(!unheld.restocked);
    assert_eq!(
        (unheld.stocks[0].on_hand, unheld.stocks[0].reserved),
        (10, 0)
    );
}
