//! GetOrder and ListOrders: what a projected order looks like, paging, validation and who
//! may see what.

use mercato::pb::order::v1::OrderStatus;
use mercato::pb::orderquery::v1::{ListOrdersRequest, WatchOrderRequest};
use mercato_testkit::{authed, violated_fields};
use tonic::Code;

use crate::{TestOrderQuery, assert_code, confirmed, eur, history, new_id, now, placed};

#[tokio::test]
async fn a_placed_order_appears_with_its_status_totals_and_lines() {
    let svc = TestOrderQuery::start().await;
    let (user, token) = svc.identity.customer().await;
    let id = new_id();
    svc.publish(&id, &placed(&id, &user, now())).await;

    svc.wait_for_state(&id, OrderStatus::Pending, 1).await;
    let order = svc.get(&token, &id).await.unwrap();
    assert_eq!(order.id, id);
    assert_eq!(order.user_id, user);
    assert_eq!(order.status, OrderStatus::Pending as i32);
    assert_eq!(order.subtotal, Some(eur(3250)));
    assert_eq!(order.discount, Some(eur(500)));
    assert_eq!(order.total, Some(eur(2750)));
    assert_eq!(order.coupon_code, "SAVE5");
    assert_eq!(order.lines.len(), 2);
    assert_eq!(order.lines[0].name, "Mug");
    assert_eq!(order.lines[0].quantity, 2);
    assert_eq!(order.lines[1].line_total, Some(eur(1250)));
    assert_eq!(order.shipping_address.as_ref().unwrap().city, "London");
    assert_eq!(order.payment, None);
    assert_eq!(history(&order), [OrderStatus::Pending]);
    assert_eq!(order.create_time, order.update_time);

    let p = placed(&id, &user, now());
    svc.publish(&id, &confirmed(&p, "pay-1")).await;
    let order = svc.wait_for_state(&id, OrderStatus::Confirmed, 2).await;
    assert_eq!(
        history(&order),
        [OrderStatus::Pending, OrderStatus::Confirmed]
    );

    let listed = svc
        .list(&token, ListOrdersRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.orders, [order]);
    assert!(listed.next_page_token.is_empty());
}

#[tokio::test]
async fn a_missing_order_is_not_found_and_a_bad_id_is_invalid() {
    let svc = TestOrderQuery::start().await;
    let (_, token) = svc.identity.customer().await;
    assert_code(svc.get(&token, &new_id()).await, Code::NotFound);
    let status = assert_code(svc.get(&token, "not-a-uuid").await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["id"]);
    let status = assert_code(svc.get(&token, "").await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["id"]);
}

#[tokio::test]
async fn customers_cannot_get_list_or_watch_other_customers_orders() {
    let svc = TestOrderQuery::start().await;
    let (alice, alice_token) = svc.identity.customer().await;
    let (bob, bob_token) = svc.identity.customer().await;
    let id = new_id();
    svc.publish(&id, &placed(&id, &alice, now())).await;
    svc.wait_for_state(&id, OrderStatus::Pending, 1).await;

    // Bob: the order does not exist for him (its existence is not confirmed).
    assert_code(svc.get(&bob_token, &id).await, Code::NotFound);
    let watched = svc
        .client()
        .await
        .watch_order(authed(WatchOrderRequest { id: id.clone() }, &bob_token))
        .await;
    assert_code(watched.map(|_| ()), Code::NotFound);
    let listed = svc
        .list(&bob_token, ListOrdersRequest::default())
        .await
        .unwrap();
    assert!(listed.orders.is_empty());
    let own = ListOrdersRequest {
        user_id: bob.clone(),
        ..Default::default()
    };
    assert!(svc.list(&bob_token, own).await.unwrap().orders.is_empty());
    let other = ListOrdersRequest {
        user_id: alice.clone(),
        ..Default::default()
    };
    assert_code(
        svc.list(&bob_token, other.clone()).await,
        Code::PermissionDenied,
    );

    // Alice and the admin see it.
    assert_eq!(svc.get(&alice_token, &id).await.unwrap().id, id);
    let by_admin = svc.list(&svc.admin, other).await.unwrap();
    assert_eq!(by_admin.orders.len(), 1);
    let everyone = svc
        .list(&svc.admin, ListOrdersRequest::default())
        .await
        .unwrap();
    assert_eq!(everyone.orders.len(), 1);
    let for_bob = ListOrdersRequest {
        user_id: bob,
        ..Default::default()
    };
    assert!(
        svc.list(&svc.admin, for_bob)
            .await
            .unwrap()
            .orders
            .is_empty()
    );
}

#[tokio::test]
async fn orders_are_listed_newest_first_one_page_at_a_time() {
    let svc = TestOrderQuery::start().await;
    let (user, token) = svc.identity.customer().await;
    let base = now() - 1000;
    let mut ids = Vec::new();
    // Two orders share a place time: the id breaks the tie.
    for offset in [0, 10, 20, 20, 30] {
        let id = new_id();
        svc.publish(&id, &placed(&id, &user, base + offset)).await;
        ids.push(id);
    }
    for id in &ids {
        svc.wait_for_state(id, OrderStatus::Pending, 1).await;
    }
    // The one placed first is confirmed: the status filter finds it alone.
    let first = placed(&ids[0], &user, base);
    svc.publish(&ids[0], &confirmed(&first, "pay")).await;
    svc.wait_for_state(&ids[0], OrderStatus::Confirmed, 2).await;

    // Newest first; of the two placed at once, the larger (later UUIDv7) id first.
    let mut expected = ids.clone();
    expected.reverse();
    let mut seen = Vec::new();
    let mut token_ = String::new();
    let mut pages = 0;
    loop {
        let page = svc
            .list(
                &token,
                ListOrdersRequest {
                    page_size: 2,
                    page_token: token_.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        pages += 1;
        assert!(page.orders.len() <= 2);
        seen.extend(page.orders.into_iter().map(|o| o.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token_ = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);

    let confirmed_only = svc
        .list(
            &token,
            ListOrdersRequest {
                status: OrderStatus::Confirmed as i32,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        confirmed_only
            .orders
            .iter()
            .map(|o| &o.id)
            .collect::<Vec<_>>(),
        [&ids[0]]
    );

    // A token is bound to its filters.
    let page = svc
        .list(
            &token,
            ListOrdersRequest {
                page_size: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let status = assert_code(
        svc.list(
            &token,
            ListOrdersRequest {
                page_size: 2,
                page_token: page.next_page_token,
                status: OrderStatus::Pending as i32,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["page_token"]);
}

#[tokio::test]
async fn a_bad_list_request_names_every_bad_field() {
    let svc = TestOrderQuery::start().await;
    let status = assert_code(
        svc.list(
            &svc.admin,
            ListOrdersRequest {
                page_size: 1000,
                status: 42,
                user_id: "u".repeat(500),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["page_size", "status", "user_id"]);
    let status = assert_code(
        svc.list(
            &svc.admin,
            ListOrdersRequest {
                page_token: "garbage!".into(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["page_token"]);
}

#[tokio::test]
async fn calls_without_a_token_are_unauthenticated() {
    let svc = TestOrderQuery::start().await;
    let result = svc
        .client()
        .await
        .list_orders(ListOrdersRequest::default())
        .await;
    assert_code(result, Code::Unauthenticated);
}
