use mercato::pb::inventory::v1::ReservationStatus;
use mercato_testkit::{assert_code, authed};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::{TestInventory, reason, reserve_request};

#[tokio::test]
async fn a_hundred_concurrent_orders_never_oversell_thirty_units() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(30).await;
    let client = inventory.client().await;
    let calls = (0..100).map(|i| {
        let mut client = client.clone();
        let (inventory, id) = (&inventory, &id);
        async move {
            // As order's saga does: UNAVAILABLE (the pool exhausted on a loaded machine) is
            // retried with the same order id, which reserves at most once.
            let mut attempt = 0;
            loop {
                let request = authed(
                    reserve_request(&format!("order-{i}"), &[(id, 1)]),
                    &inventory.service,
                );
                match client.reserve_stock(request).await {
                    Err(status) if status.code() == Code::Unavailable && attempt < 20 => {
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                    }
                    answer => break answer,
                }
            }
        }
    });
    let results = futures::future::join_all(calls).await;

    let succeeded = results.iter().filter(|r| r.is_ok()).count();
    let out_of_stock = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|s| s.code() == Code::FailedPrecondition && reason(s) == "OUT_OF_STOCK")
        .count();
    assert_eq!((succeeded, out_of_stock), (30, 70), "{results:?}");
    assert_eq!(inventory.counts(&id).await, (30, 30, 0));
}

#[tokio::test]
async fn a_reservation_with_one_short_item_holds_nothing() {
    let inventory = TestInventory::start().await;
    let plenty = inventory.product(10).await;
    let short = inventory.product(3).await;

    let status = assert_code(
        inventory
            .reserve("order-1", &[(&plenty, 4), (&short, 5)])
            .await,
        Code::FailedPrecondition,
    );
    let details = status.get_error_details();
    let info = details.error_info().unwrap();
    assert_eq!(info.reason, "OUT_OF_STOCK");
    assert_eq!(info.metadata["product_id"], short);
    assert_eq!(
        status.message(),
        format!("only 3 units of {short} available, 5 requested")
    );
    let failure = details.precondition_failure().unwrap();
    assert_eq!(failure.violations.len(), 1);
    assert_eq!(
        (
            failure.violations[0].r#type.as_str(),
            failure.violations[0].subject.as_str()
        ),
        ("STOCK", short.as_str())
    );
    assert_eq!(inventory.counts(&plenty).await, (10, 0, 10));
    assert_eq!(inventory.counts(&short).await, (3, 0, 3));

    // Nothing of the failed attempt remains: the same order can reserve what is there.
    let held = inventory
        .reserve("order-1", &[(&plenty, 4), (&short, 3)])
        .await
        .unwrap();
    assert_eq!(held.status(), ReservationStatus::Held);
    assert_eq!(inventory.counts(&plenty).await, (10, 4, 6));
    assert_eq!(inventory.counts(&short).await, (3, 3, 0));
}

#[tokio::test]
async fn every_short_product_is_reported() {
    let inventory = TestInventory::start().await;
    let never_stocked = inventory.product(0).await;
    let short = inventory.product(1).await;
    let status = assert_code(
        inventory
            .reserve("order-1", &[(&never_stocked, 1), (&short, 2)])
            .await,
        Code::FailedPrecondition,
    );
    let subjects: Vec<String> = status
        .get_error_details()
        .precondition_failure()
        .unwrap()
        .violations
        .iter()
        .map(|v| v.subject.clone())
        .collect();
    let mut expected = vec![never_stocked.clone(), short.clone()];
    expected.sort();
    assert_eq!(subjects, expected);
    assert_eq!(inventory.counts(&short).await, (1, 0, 1));
}

#[tokio::test]
async fn reserve_commit_and_release_are_idempotent() {
    let inventory = TestInventory::start().await;
    let a = inventory.product(10).await;
    let b = inventory.product(10).await;
    let items = [(a.as_str(), 2), (b.as_str(), 1)];

    let first = inventory.reserve("order-1", &items).await.unwrap();
    assert_eq!(first.status(), ReservationStatus::Held);
    assert_eq!(first.items.len(), 2);
    // Items in another order are the same reservation.
    let again = inventory
        .reserve("order-1", &[(&b, 1), (&a, 2)])
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(inventory.counts(&a).await, (10, 2, 8));

    let committed = inventory.commit("order-1").await.unwrap();
    assert_eq!(committed.status(), ReservationStatus::Committed);
    assert_eq!(inventory.commit("order-1").await.unwrap(), committed);
    let repeat = inventory.reserve("order-1", &items).await.unwrap();
    assert_eq!(repeat, committed);
    assert_eq!(inventory.counts(&a).await, (8, 0, 8));
    assert_eq!(inventory.counts(&b).await, (9, 0, 9));

    let released = inventory.release("order-1").await.unwrap();
    assert_eq!(released.status(), ReservationStatus::Released);
    assert_eq!(inventory.release("order-1").await.unwrap(), released);
    assert_eq!(inventory.counts(&a).await, (10, 0, 10));
    assert_eq!(inventory.counts(&b).await, (10, 0, 10));
}

#[tokio::test]
async fn releasing_a_held_reservation_makes_its_units_available_again() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(5).await;
    inventory.reserve("order-1", &[(&id, 5)]).await.unwrap();
    assert_eq!(inventory.counts(&id).await, (5, 5, 0));

    let released = inventory.release("order-1").await.unwrap();
    assert_eq!(released.status(), ReservationStatus::Released);
    assert_eq!(released.items.len(), 1);
    assert_eq!(inventory.counts(&id).await, (5, 0, 5));

    let commit = assert_code(inventory.commit("order-1").await, Code::FailedPrecondition);
    assert_eq!(reason(&commit), "RESERVATION_RELEASED");
    let reserve = assert_code(
        inventory.reserve("order-1", &[(&id, 5)]).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&reserve), "RESERVATION_RELEASED");
    assert_eq!(inventory.counts(&id).await, (5, 0, 5));
}

#[tokio::test]
async fn releasing_a_committed_reservation_puts_its_units_back_on_hand() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(5).await;
    inventory.reserve("order-1", &[(&id, 3)]).await.unwrap();
    inventory.commit("order-1").await.unwrap();
    assert_eq!(inventory.counts(&id).await, (2, 0, 2));

    let released = inventory.release("order-1").await.unwrap();
    assert_eq!(released.status(), ReservationStatus::Released);
    assert_eq!(inventory.counts(&id).await, (5, 0, 5));
}

#[tokio::test]
async fn a_release_before_the_reservation_blocks_the_late_reservation() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(5).await;

    let tombstone = inventory.release("order-late").await.unwrap();
    assert_eq!(tombstone.status(), ReservationStatus::Released);
    assert!(tombstone.items.is_empty());
    assert_eq!(inventory.release("order-late").await.unwrap(), tombstone);

    let late = assert_code(
        inventory.reserve("order-late", &[(&id, 1)]).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&late), "RESERVATION_RELEASED");
    let commit = assert_code(
        inventory.commit("order-late").await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&commit), "RESERVATION_RELEASED");
    assert_eq!(inventory.counts(&id).await, (5, 0, 5));
}

#[tokio::test]
async fn the_same_order_with_other_items_is_a_mismatch() {
    let inventory = TestInventory::start().await;
    let a = inventory.product(5).await;
    let b = inventory.product(5).await;
    inventory.reserve("order-1", &[(&a, 1)]).await.unwrap();
    for items in [
        vec![(a.as_str(), 2)],
        vec![(a.as_str(), 1), (b.as_str(), 1)],
    ] {
        let status = assert_code(
            inventory.reserve("order-1", &items).await,
            Code::FailedPrecondition,
        );
        assert_eq!(reason(&status), "RESERVATION_MISMATCH");
    }
    assert_eq!(inventory.counts(&a).await, (5, 1, 4));
    assert_eq!(inventory.counts(&b).await, (5, 0, 5));
}

#[tokio::test]
async fn committing_an_unknown_order_is_not_found() {
    let inventory = TestInventory::start().await;
    assert_code(inventory.commit("order-unknown").await, Code::NotFound);
}

#[tokio::test]
async fn a_concurrent_commit_and_release_of_one_order_leave_consistent_stock() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(10).await;
    for i in 0..10 {
        let order = format!("order-{i}");
        inventory.reserve(&order, &[(&id, 1)]).await.unwrap();
        let (commit, release) = tokio::join!(inventory.commit(&order), inventory.release(&order));
        let released = release.unwrap();
        assert_eq!(released.status(), ReservationStatus::Released);
        if let Err(status) = commit {
            // The release came first; the commit must then refuse.
            assert_eq!(reason(&status), "RESERVATION_RELEASED");
        }
        // Either way the unit is back: released while held, or restocked after the commit.
        assert_eq!(inventory.counts(&id).await, (10, 0, 10));
    }
}

#[tokio::test]
async fn only_service_accounts_reserve_commit_and_release() {
    let inventory = TestInventory::start().await;
    let id = inventory.product(5).await;
    let (_, customer) = inventory.identity.customer().await;
    let request = || reserve_request("order-1", &[(&id, 1)]);
    let mut client = inventory.client().await;
    for token in [&customer, &inventory.admin] {
        let result = client.reserve_stock(authed(request(), token)).await;
        assert_code(result, Code::PermissionDenied);
    }
    assert_code(client.reserve_stock(request()).await, Code::Unauthenticated);
    let commit = mercato::pb::inventory::v1::CommitReservationRequest {
        order_id: "order-1".into(),
    };
    assert_code(
        client.commit_reservation(authed(commit, &customer)).await,
        Code::PermissionDenied,
    );
    let release = mercato::pb::inventory::v1::ReleaseReservationRequest {
        order_id: "order-1".into(),
    };
    assert_code(
        client
            .release_reservation(authed(release, &inventory.admin))
            .await,
        Code::PermissionDenied,
    );
    assert_eq!(inventory.counts(&id).await, (5, 0, 5));
}
