//! Redelivered, out-of-order and undecodable events, and a rebuild from the streams.

use mercato::pb::events::v1::Envelope;
use mercato::pb::notification::v1::{MarkReadRequest, NotificationKind};
use mercato::pb::order::v1::OrderConfirmed;
use mercato_testkit::{authed, publish_event, publish_raw, read_dlq};
use prost::{Message as _, Name as _};

use crate::{TestNotification, events, minutes_from_now, of_kind};

async fn jetstream() -> async_nats::jetstream::Context {
    async_nats::jetstream::new(
        async_nats::connect(mercato_testkit::nats_url())
            .await
            .unwrap(),
    )
}

fn subject(namespace: &str, type_name: &str) -> String {
    format!(
        "{namespace}.{}",
        mercato_kernel::events::event_subject(type_name).unwrap()
    )
}

#[tokio::test]
async fn the_same_event_delivered_twice_writes_one_notification() {
    let service = TestNotification::start().await;
    let (user_id, token) = service.customer().await;
    let ns = service.namespace();
    let order = uuid::Uuid::now_v7().to_string();
    let envelope = publish_event(ns, &order, &events::confirmed(&order, &user_id), None).await;
    service.wait_for_event(&token, &envelope.id).await;

    // Same envelope id under a new Nats-Msg-Id: JetStream stores it again, so only the
    // consumer's own bookkeeping can tell it is a duplicate.
    let js = jetstream().await;
    publish_raw(
        &js,
        &subject(ns, &OrderConfirmed::full_name()),
        &uuid::Uuid::now_v7().to_string(),
        envelope.encode_to_vec(),
    )
    .await;
    // The stream is consumed in order: once a later event is in, the duplicate was handled.
    let other = uuid::Uuid::now_v7().to_string();
    let marker = publish_event(ns, &other, &events::confirmed(&other, &user_id), None).await;
    service.wait_for_event(&token, &marker.id).await;

    let all = service.all(&token).await;
    let confirmed = of_kind(&all, NotificationKind::OrderConfirmed);
    assert_eq!(confirmed.len(), 2, "{all:#?}");
    assert_eq!(
        confirmed.iter().filter(|n| n.order_id == order).count(),
        1,
        "{all:#?}"
    );
}

#[tokio::test]
async fn events_out_of_order_are_all_told_and_listed_by_when_they_happened() {
    let service = TestNotification::start().await;
    let (user_id, token) = service.customer().await;
    let ns = service.namespace();
    let order = uuid::Uuid::now_v7().to_string();
    // Shipped before Confirmed before Placed: the reverse of what happened.
    let shipped = publish_event(ns, &order, &events::shipped(&order, &user_id, "T-9"), None).await;
    let confirmed = publish_event(ns, &order, &events::confirmed(&order, &user_id), None).await;
    let placed = publish_event(ns, &order, &events::placed(&order, &user_id), None).await;

    let all = service
        .wait_for(&token, |all| {
            [&shipped, &confirmed, &placed]
                .iter()
                .all(|e| all.iter().any(|n| n.id == e.id))
        })
        .await;
    let about_order: Vec<&str> = all
        .iter()
        .filter(|n| n.order_id == order)
        .map(|n| n.title.as_str())
        .collect();
    assert_eq!(
        about_order,
        ["Order shipped", "Order confirmed", "Order received"],
        "newest first by event time"
    );
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_later_events_still_arrive() {
    let service = TestNotification::start().await;
    let (user_id, token) = service.customer().await;
    let ns = service.namespace();
    let js = jetstream().await;
    mercato_kernel::events::stream::ensure_stream(&js, ns, "order")
        .await
        .unwrap();
    let confirmed_subject = subject(ns, &OrderConfirmed::full_name());
    // Not an envelope at all.
    publish_raw(&js, &confirmed_subject, "poison-1", vec![0xff, 0x01, 0x02]).await;
    // An envelope whose payload is not the message its type names.
    let bad_payload = Envelope {
        id: uuid::Uuid::now_v7().to_string(),
        r#type: OrderConfirmed::full_name(),
        source: "order".into(),
        subject: "o-1".into(),
        payload: vec![0xff, 0xff, 0xff],
        ..Default::default()
    };
    publish_raw(
        &js,
        &confirmed_subject,
        &bad_payload.id,
        bad_payload.encode_to_vec(),
    )
    .await;
    let order = uuid::Uuid::now_v7().to_string();
    let good = publish_event(ns, &order, &events::confirmed(&order, &user_id), None).await;

    let dead = read_dlq(ns, "notification", 2).await;
    let reasons: Vec<String> = dead
        .iter()
        .map(|(headers, _)| {
            headers
                .get("Mercato-Dlq-Reason")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        })
        .collect();
    assert!(
        reasons.iter().all(|r| r.contains("undecodable")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("OrderConfirmed")),
        "{reasons:?}"
    );
    service.wait_for_event(&token, &good.id).await;
}

#[tokio::test]
async fn a_rebuild_replays_the_streams_without_duplicates_and_keeps_read_marks() {
    let service = TestNotification::start().await;
    let (user_id, token) = service.customer().await;
    let ns = service.namespace().to_owned();
    let order = uuid::Uuid::now_v7().to_string();
    let confirmed = publish_event(&ns, &order, &events::confirmed(&order, &user_id), None).await;
    let note = service.wait_for_event(&token, &confirmed.id).await;
    service
        .client()
        .await
        .mark_read(authed(MarkReadRequest { id: note.id }, &token))
        .await
        .unwrap();
    let before = service.all(&token).await;

    let service = service
        .restart(notification::Options { rebuild: true })
        .await;
    // Replayed from the start of every stream; a new event behind the old ones shows the
    // replay is through.
    let mut shipped = events::shipped(&order, &user_id, "T-1");
    shipped.ship_time = minutes_from_now(1);
    let shipped = publish_event(&ns, &order, &shipped, None).await;
    let after = service.wait_for_event(&token, &shipped.id).await;
    assert_eq!(after.kind, NotificationKind::OrderShipped as i32);

    let all = service.all(&token).await;
    assert_eq!(all.len(), before.len() + 1, "{all:#?}");
    assert_eq!(&all[1..], &before[..]);
    let confirmed = all.iter().find(|n| n.id == confirmed.id).unwrap();
    assert!(confirmed.read);
}
