//! Listing, paging, marking read, and who may see what.

use mercato::pb::notification::v1::{ListNotificationsRequest, MarkReadRequest};
use mercato_testkit::{authed, publish_event};
use tonic::Code;

use crate::{TestNotification, assert_code, events, violated_fields};

/// Publishes `count` confirmed orders for `user_id` and waits until all are listed.
async fn orders(service: &TestNotification, user_id: &str, token: &str, count: usize) {
    let mut ids = Vec::new();
    for _ in 0..count {
        let order = uuid::Uuid::now_v7().to_string();
        let e = publish_event(
            service.namespace(),
            &order,
            &events::confirmed(&order, user_id),
            None,
        )
        .await;
        ids.push(e.id);
    }
    service
        .wait_for(token, |all| {
            ids.iter().all(|id| all.iter().any(|n| &n.id == id))
        })
        .await;
}

#[tokio::test]
async fn pages_walk_the_whole_list_newest_first_without_overlap() {
    let service = TestNotification::start().await;
    let (user_id, token) = service.customer().await;
    orders(&service, &user_id, &token, 4).await;
    let everything = service.all(&token).await;
    assert_eq!(everything.len(), 5);

    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = service
            .list(
                &token,
                ListNotificationsRequest {
                    page_size: 2,
                    page_token: page_token.clone(),
                    unread_only: false,
                },
            )
            .await
            .unwrap();
        assert!(page.notifications.len() <= 2);
        assert_eq!(page.unread_count, 5);
        seen.extend(page.notifications);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, everything);
    let times: Vec<_> = seen
        .iter()
        .map(|n| {
            let t = n.create_time.unwrap();
            (t.seconds, t.nanos)
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
}

#[tokio::test]
async fn marking_read_is_idempotent_and_filters_the_unread_list() {
    let service = TestNotification::start().await;
    let (user_id, token) = service.customer().await;
    orders(&service, &user_id, &token, 2).await;
    let all = service.all(&token).await;
    let target = all[0].id.clone();

    let mut client = service.client().await;
    let first = client
        .mark_read(authed(MarkReadRequest { id: target.clone() }, &token))
        .await
        .unwrap()
        .into_inner()
        .notification
        .unwrap();
    assert!(first.read);
    assert!(first.read_time.is_some());
    let again = client
        .mark_read(authed(MarkReadRequest { id: target.clone() }, &token))
        .await
        .unwrap()
        .into_inner()
        .notification
        .unwrap();
    assert_eq!(again, first, "marking again changes nothing");

    let unread = service
        .list(
            &token,
            ListNotificationsRequest {
                unread_only: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(unread.unread_count, 2);
    assert_eq!(unread.notifications.len(), 2);
    assert!(
        unread
            .notifications
            .iter()
            .all(|n| n.id != target && !n.read)
    );
}

#[tokio::test]
async fn a_customer_cannot_see_or_mark_another_customers_notifications() {
    let service = TestNotification::start().await;
    let (a_id, a_token) = service.customer().await;
    let (_b_id, b_token) = service.customer().await;
    orders(&service, &a_id, &a_token, 1).await;
    let a_notes = service.all(&a_token).await;
    assert_eq!(a_notes.len(), 2);

    let b_notes = service.all(&b_token).await;
    assert_eq!(b_notes.len(), 1, "only B's own welcome: {b_notes:#?}");
    assert!(b_notes.iter().all(|n| n.user_id != a_id));

    let mut client = service.client().await;
    for note in &a_notes {
        let status = assert_code(
            client
                .mark_read(authed(
                    MarkReadRequest {
                        id: note.id.clone(),
                    },
                    &b_token,
                ))
                .await,
            Code::NotFound,
        );
        assert!(status.message().contains(&note.id));
    }
    // Not even an administrator reads someone else's mail.
    let admin = service.identity.admin_token().await;
    assert_code(
        client
            .mark_read(authed(
                MarkReadRequest {
                    id: a_notes[0].id.clone(),
                },
                &admin,
            ))
            .await,
        Code::NotFound,
    );
    assert!(service.all(&a_token).await.iter().all(|n| !n.read));
}

#[tokio::test]
async fn bad_requests_name_the_fields() {
    let service = TestNotification::start().await;
    let (_user_id, token) = service.customer().await;
    let mut client = service.client().await;
    for id in ["", "not-a-uuid"] {
        let status = assert_code(
            client
                .mark_read(authed(MarkReadRequest { id: id.into() }, &token))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["id"]);
    }
    let status = assert_code(
        service
            .list(
                &token,
                ListNotificationsRequest {
                    page_size: 101,
                    page_token: "garbage!".into(),
                    unread_only: false,
                },
            )
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["page_size", "page_token"]);
    assert_code(
        client
            .mark_read(MarkReadRequest {
                id: uuid::Uuid::now_v7().to_string(),
            })
            .await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn a_page_token_only_continues_the_listing_it_came_from() {
    let service = TestNotification::start().await;
    let (user_id, token) = service.customer().await;
    orders(&service, &user_id, &token, 2).await;
    let page = service
        .list(
            &token,
            ListNotificationsRequest {
                page_size: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!page.next_page_token.is_empty());
    let status = assert_code(
        service
            .list(
                &token,
                ListNotificationsRequest {
                    page_size: 1,
                    page_token: page.next_page_token,
                    unread_only: true,
                },
            )
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["page_token"]);
}
