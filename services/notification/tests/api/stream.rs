//! StreamNotifications: new notifications of the caller, live.

use std::time::Duration;

use futures::StreamExt as _;
use mercato::pb::notification::v1::StreamNotificationsRequest;
use mercato_testkit::{authed, publish_event};

use crate::{TestNotification, events};

#[tokio::test]
async fn a_stream_gets_the_callers_new_notifications_and_no_one_elses() {
    let service = TestNotification::start().await;
    let (a_id, a_token) = service.customer().await;
    let (b_id, b_token) = service.customer().await;
    let mut stream = service
        .client()
        .await
        .stream_notifications(authed(StreamNotificationsRequest {}, &a_token))
        .await
        .unwrap()
        .into_inner();

    let ns = service.namespace();
    // B's first, then A's, on the same stream: had B's been sent to A, it would come first.
    let b_order = uuid::Uuid::now_v7().to_string();
    let b_event = publish_event(ns, &b_order, &events::confirmed(&b_order, &b_id), None).await;
    let a_order = uuid::Uuid::now_v7().to_string();
    let a_event = publish_event(ns, &a_order, &events::shipped(&a_order, &a_id, "T-7"), None).await;

    let got = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a notification within 10 s")
        .unwrap()
        .unwrap()
        .notification
        .unwrap();
    assert_eq!(got.id, a_event.id);
    assert_eq!(got.user_id, a_id);
    assert_eq!(got.order_id, a_order);
    assert!(got.body.contains("T-7"), "{}", got.body);
    assert!(!got.read);
    // B's was written all the same, for B.
    service.wait_for_event(&b_token, &b_event.id).await;
}

#[tokio::test]
async fn a_stream_does_not_replay_older_notifications() {
    let service = TestNotification::start().await;
    let (a_id, a_token) = service.customer().await;
    let ns = service.namespace();
    let old_order = uuid::Uuid::now_v7().to_string();
    let old = publish_event(ns, &old_order, &events::confirmed(&old_order, &a_id), None).await;
    service.wait_for_event(&a_token, &old.id).await;

    let mut stream = service
        .client()
        .await
        .stream_notifications(authed(StreamNotificationsRequest {}, &a_token))
        .await
        .unwrap()
        .into_inner();
    let new_order = uuid::Uuid::now_v7().to_string();
    let new = publish_event(ns, &new_order, &events::confirmed(&new_order, &a_id), None).await;
    let got = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a notification within 10 s")
        .unwrap()
        .unwrap()
        .notification
        .unwrap();
    assert_eq!(
        got.id, new.id,
        "the welcome and the older order are not sent"
    );
}
