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

#[tokio::test]
async fn a_stream_on_one_replica_gets_what_the_other_one_projected() {
    let a = TestNotification::start().await;
    let config = mercato_kernel::ServiceConfig::from_source("notification", &a.env).unwrap();
    let b = notification::start(config).await.unwrap();
    let (user, token) = a.customer().await;
    let mut stream = a
        .client()
        .await
        .stream_notifications(authed(StreamNotificationsRequest {}, &token))
        .await
        .unwrap()
        .into_inner();

    // Both replicas pull from the one durable consumer; each notification reaches the
    // stream on A, whichever of them wrote it.
    let ns = a.namespace();
    let mut expected = Vec::new();
    for _ in 0..8 {
        let order = uuid::Uuid::now_v7().to_string();
        expected.push(
            publish_event(ns, &order, &events::confirmed(&order, &user), None)
                .await
                .id,
        );
    }
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a notification within 10 s")
            .unwrap()
            .unwrap();
        got.push(next.notification.unwrap().id);
    }
    got.sort();
    expected.sort();
    assert_eq!(got, expected);

    // Deterministically: a notification announced by another replica's feed (this one
    // plays it) reaches A's stream.
    let other =
        mercato_kernel::events::ChangeFeed::<mercato::pb::notification::v1::Notification>::new(8);
    let (_trigger, signal) = mercato_kernel::shutdown::channel();
    let nats = async_nats::connect(mercato_testkit::nats_url())
        .await
        .unwrap();
    let subject = mercato_kernel::events::change_subject(ns, "notification", "notifications");
    other.share(nats, subject, signal).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    other.publish(mercato::pb::notification::v1::Notification {
        id: "from-b".into(),
        user_id: user.clone(),
        ..Default::default()
    });
    let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the other replica's notification within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(next.notification.unwrap().id, "from-b");
    b.stop().await.unwrap();
}
