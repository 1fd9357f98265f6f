use mercato::pb::inventory::v1::{AdjustStockRequest, GetStockRequest};
use mercato_testkit::{assert_code, authed};
use tonic::Code;

use crate::{TestInventory, reason};

#[tokio::test]
async fn a_product_never_stocked_reads_as_zero_to_anyone() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(0).await;
    let stock = inventory
        .client()
        .await
        .get_stock(GetStockRequest {
            product_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stock
        .unwrap();
    assert_eq!(stock.product_id, id);
    assert_eq!((stock.on_hand, stock.reserved, stock.available), (0, 0, 0));
    assert_eq!(stock.update_time, None);
}

#[tokio::test]
async fn an_admin_adds_and_removes_units_and_anyone_reads_them() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(0).await;
    let added = inventory.adjust(&id, 12).await.unwrap();
    assert_eq!(
        (added.on_hand, added.reserved, added.available),
        (12, 0, 12)
    );
    assert!(added.update_time.is_some());
    let removed = inventory.adjust(&id, -5).await.unwrap();
    assert_eq!(removed.on_hand, 7);
    inventory.adjust(&id, 3).await.unwrap();
    assert_eq!(inventory.counts(&id).await, (10, 0, 10));
}

#[tokio::test]
async fn removing_units_that_are_reserved_is_rejected() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(10).await;
    inventory.reserve("order-1", &[(&id, 4)]).await.unwrap();

    let status = assert_code(inventory.adjust(&id, -7).await, Code::FailedPrecondition);
    assert_eq!(reason(&status), "INSUFFICIENT_STOCK");
    assert!(
        status.message().contains("only 6 units"),
        "{}",
        status.message()
    );
    assert_eq!(inventory.counts(&id).await, (10, 4, 6));

    let stock = inventory.adjust(&id, -6).await.unwrap();
    assert_eq!((stock.on_hand, stock.reserved, stock.available), (4, 4, 0));
    assert_code(inventory.adjust(&id, -1).await, Code::FailedPrecondition);
}

#[tokio::test]
async fn removing_units_of_a_product_never_stocked_is_rejected() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(0).await;
    let status = assert_code(inventory.adjust(&id, -1).await, Code::FailedPrecondition);
    assert_eq!(reason(&status), "INSUFFICIENT_STOCK");
    assert_eq!(inventory.stock(&id).await.update_time, None);
}

#[tokio::test]
async fn only_an_admin_adjusts_stock() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(0).await;
    let request = || AdjustStockRequest {
        product_id: id.clone(),
        delta: 5,
        reason: "delivery".into(),
    };
    let (_, customer) = inventory.identity.customer().await;
    for token in [&customer, &inventory.service] {
        let result = inventory
            .client()
            .await
            .adjust_stock(authed(request(), token))
            .await;
        assert_code(result, Code::PermissionDenied);
    }
    let anonymous = inventory.client().await.adjust_stock(request()).await;
    assert_code(anonymous, Code::Unauthenticated);
    assert_eq!(inventory.counts(&id).await, (0, 0, 0));
}
