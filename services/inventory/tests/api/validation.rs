use mercato::pb::inventory::v1::{
    AdjustStockRequest, CommitReservationRequest, GetStockRequest, ReleaseReservationRequest,
};
use mercato_testkit::{assert_code, authed, violated_fields};
use tonic::Code;

use crate::{TestInventory, reserve_request};

#[tokio::test]
async fn get_stock_needs_a_uuid() {
    let inventory = TestInventory::start().await;
    for bad in ["", "not-a-uuid", "1234"] {
        let result = inventory
            .client()
            .await
            .get_stock(GetStockRequest {
                product_id: bad.into(),
            })
            .await;
        let status = assert_code(result, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["product_id"], "{bad:?}");
    }
}

#[tokio::test]
async fn adjust_stock_reports_every_bad_field() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(0).await;
    let adjust = |product_id: &str, delta: i32, reason: String| AdjustStockRequest {
        product_id: product_id.into(),
        delta,
        reason,
    };
    let cases = [
        (
            adjust("nope", 0, String::new()),
            vec!["product_id", "delta", "reason"],
        ),
        (adjust(&id, 1_000_001, "r".into()), vec!["delta"]),
        (adjust(&id, -1_000_001, "r".into()), vec!["delta"]),
        (adjust(&id, 1, "r".repeat(201)), vec!["reason"]),
        (adjust(&id, 1, "   ".into()), vec!["reason"]),
    ];
    for (request, fields) in cases {
        let result = inventory
            .client()
            .await
            .adjust_stock(authed(request, &inventory.admin))
            .await;
        let status = assert_code(result, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), fields);
    }
    assert_eq!(inventory.counts(&id).await, (0, 0, 0));
}

#[tokio::test]
async fn reserve_stock_reports_every_bad_field() {
    let inventory = TestInventory::start().await;
    let a = inventory.product(5).await;
    let b = inventory.product(5).await;
    let many: Vec<String> = (0..51).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let many: Vec<(&str, i32)> = many.iter().map(|id| (id.as_str(), 1)).collect();
    let cases = [
        (
            reserve_request("o-1", &[(&a, 0), (&b, 100)]),
            vec!["items[0].quantity", "items[1].quantity"],
        ),
        (
            reserve_request("o-1", &[(&a, 1), ("nope", 1), (&a, 2)]),
            vec!["items[1].product_id", "items[2].product_id"],
        ),
        (
            reserve_request("", &[("", -1)]),
            vec!["order_id", "items[0].product_id", "items[0].quantity"],
        ),
        (
            reserve_request(&"o".repeat(65), &[(&a, 1)]),
            vec!["order_id"],
        ),
        (reserve_request("o/1", &[(&a, 1)]), vec!["order_id"]),
        (reserve_request("o-1", &[]), vec!["items"]),
        (reserve_request("o-1", &many), vec!["items"]),
    ];
    for (request, fields) in cases {
        let result = inventory
            .client()
            .await
            .reserve_stock(authed(request, &inventory.service))
            .await;
        let status = assert_code(result, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), fields);
    }
    assert_eq!(inventory.counts(&a).await, (5, 0, 5));
    assert_eq!(inventory.counts(&b).await, (5, 0, 5));
}

#[tokio::test]
async fn commit_and_release_need_a_valid_order_id() {
    let inventory = TestInventory::start().await;
    for bad in ["", "with space", &"x".repeat(65)] {
        let commit = inventory
            .client()
            .await
            .commit_reservation(authed(
                CommitReservationRequest {
                    order_id: bad.into(),
                },
                &inventory.service,
            ))
            .await;
        assert_eq!(
            violated_fields(&assert_code(commit, Code::InvalidArgument)),
            ["order_id"]
        );
        let release = inventory
            .client()
            .await
            .release_reservation(authed(
                ReleaseReservationRequest {
                    order_id: bad.into(),
                },
                &inventory.service,
            ))
            .await;
        assert_eq!(
            violated_fields(&assert_code(release, Code::InvalidArgument)),
            ["order_id"]
        );
    }
}
