//! Who may review, as learned from order events: cancellations, out-of-order and duplicate
//! deliveries, poison messages and a rebuild of the projection.

use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use mercato::pb::events::v1::Envelope;
use mercato::pb::order::v1::{OrderConfirmed, OrderStatus};
use mercato_testkit::{nats_url, publish_event, publish_raw, read_dlq};
use prost::Message as _;
use tonic::Code;

use crate::{
    TestReview, assert_code, cancelled, confirmed, new_id, placed, publish, reason, review_of,
    shipped,
};

async fn jetstream() -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap())
}

/// Asserts that the customer may not review `product` (after [`TestReview::settle`]).
async fn assert_not_a_buyer(svc: &TestReview, token: &str, product: &str) {
    let status = assert_code(
        svc.create(token, review_of(product, 3)).await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&status), "NOT_A_VERIFIED_BUYER");
}

#[tokio::test]
async fn a_cancelled_or_merely_placed_order_does_not_make_a_buyer() {
    let svc = TestReview::start().await;
    let (user_id, token) = svc.customer().await;
    let (refunded, failed, pending) = (new_id(), new_id(), new_id());
    let ns = svc.namespace();

    // Confirmed, then cancelled by the buyer (refunded).
    let order = new_id();
    publish(ns, &placed(&order, &user_id, &[&refunded])).await;
    publish(ns, &confirmed(&order, &user_id, &[&refunded])).await;
    publish(
        ns,
        &cancelled(&order, &user_id, &[&refunded], OrderStatus::Confirmed),
    )
    .await;
    // The saga failed: never confirmed.
    let order = new_id();
    publish(ns, &placed(&order, &user_id, &[&failed])).await;
    publish(
        ns,
        &cancelled(&order, &user_id, &[&failed], OrderStatus::Pending),
    )
    .await;
    // Still running.
    publish(ns, &placed(&new_id(), &user_id, &[&pending])).await;
    svc.settle(&user_id, &token).await;

    for product in [&refunded, &failed, &pending] {
        assert_not_a_buyer(&svc, &token, product).await;
    }
}

#[tokio::test]
async fn a_cancellation_arriving_before_its_confirmation_still_wins() {
    let svc = TestReview::start().await;
    let (user_id, token) = svc.customer().await;
    let (product, order) = (new_id(), new_id());
    let ns = svc.namespace();
    publish(
        ns,
        &cancelled(&order, &user_id, &[&product], OrderStatus::Confirmed),
    )
    .await;
    publish(ns, &confirmed(&order, &user_id, &[&product])).await;
    svc.settle(&user_id, &token).await;

    assert_not_a_buyer(&svc, &token, &product).await;
}

#[tokio::test]
async fn a_shipped_order_makes_a_buyer_whatever_order_its_events_arrive_in() {
    let svc = TestReview::start().await;
    let (user_id, token) = svc.customer().await;
    let (late_confirmation, shipped_only) = (new_id(), new_id());
    let ns = svc.namespace();

    let order = new_id();
    publish(ns, &shipped(&order, &user_id, &[&late_confirmation])).await;
    publish(ns, &confirmed(&order, &user_id, &[&late_confirmation])).await;
    // Shipping implies confirmation, even when the confirmation is never seen.
    publish(ns, &shipped(&new_id(), &user_id, &[&shipped_only])).await;

    svc.create_when_eligible(&token, review_of(&late_confirmation, 5))
        .await;
    svc.create_when_eligible(&token, review_of(&shipped_only, 4))
        .await;
}

#[tokio::test]
async fn a_buyer_of_several_products_may_review_each_and_others_none() {
    let svc = TestReview::start().await;
    let (user_id, token) = svc.customer().await;
    let (other_id, other) = svc.customer().await;
    let (a, b) = (new_id(), new_id());
    publish(
        svc.namespace(),
        &confirmed(&new_id(), &user_id, &[&a, &b, &a]),
    )
    .await;
    svc.create_when_eligible(&token, review_of(&a, 5)).await;
    svc.create(&token, review_of(&b, 2)).await.unwrap();
    svc.settle(&other_id, &other).await;
    assert_not_a_buyer(&svc, &other, &a).await;
}

#[tokio::test]
async fn a_redelivered_event_changes_nothing() {
    let svc = TestReview::start().await;
    let (user_id, token) = svc.customer().await;
    let (product, order) = (new_id(), new_id());
    let ns = svc.namespace();

    let confirmation = publish(ns, &confirmed(&order, &user_id, &[&product])).await;
    publish(
        ns,
        &cancelled(&order, &user_id, &[&product], OrderStatus::Confirmed),
    )
    .await;
    // The same confirmation again: once as the relay would re-publish it (JetStream drops it
    // by Nats-Msg-Id), once slipping past JetStream's window with a new message id (the
    // consumer's processed_events must catch it).
    publish_event(
        ns,
        &order,
        &confirmed(&order, &user_id, &[&product]),
        Some(&confirmation.id),
    )
    .await;
    publish_raw(
        &jetstream().await,
        &format!("{ns}.order.v1.order_confirmed"),
        &new_id(),
        confirmation.encode_to_vec(),
    )
    .await;
    svc.settle(&user_id, &token).await;

    assert_not_a_buyer(&svc, &token, &product).await;
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_later_events_still_apply() {
    let svc = TestReview::start().await;
    let (user_id, token) = svc.customer().await;
    let ns = svc.namespace().to_owned();
    let js = jetstream().await;
    let subject = format!("{ns}.order.v1.order_confirmed");

    // Not an envelope at all.
    publish_raw(&js, &subject, &new_id(), vec![0xff, 0x00, 0xfe, 0x13]).await;
    // An envelope whose payload is not the OrderConfirmed its type names.
    let bad_payload = Envelope {
        id: new_id(),
        r#type: "mercato.order.v1.OrderConfirmed".into(),
        source: "order".into(),
        subject: new_id(),
        payload: vec![0xff, 0xff, 0xff],
        ..Default::default()
    };
    publish_raw(&js, &subject, &bad_payload.id, bad_payload.encode_to_vec()).await;
    // A well-formed event naming an order that cannot exist.
    let bad_order = OrderConfirmed {
        order_id: "order-17".into(),
        ..confirmed("", &user_id, &[&new_id()])
    };
    publish_event(&ns, "order-17", &bad_order, None).await;

    // The consumer keeps going past them.
    let product = new_id();
    publish(&ns, &confirmed(&new_id(), &user_id, &[&product])).await;
    svc.create_when_eligible(&token, review_of(&product, 5))
        .await;

    let letters = read_dlq(&ns, "review", 3).await;
    let reasons: Vec<String> = letters
        .iter()
        .map(|(headers, _)| {
            headers
                .get("Mercato-Dlq-Reason")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        })
        .collect();
    // Each was retried on its own schedule, so the dead letters may come in any order.
    for expected in [
        "undecodable envelope",
        "undecodable mercato.order.v1.OrderConfirmed",
        "order_id \"order-17\" is not a UUID",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "{expected} not in {reasons:?}"
        );
    }
    for (headers, _) in &letters {
        assert_eq!(
            headers.get("Mercato-Dlq-Deliveries").map(|v| v.as_str()),
            Some("3")
        );
    }
}

#[tokio::test]
async fn a_rebuild_replays_the_streams_and_keeps_the_reviews() {
    let mut svc = TestReview::start().await;
    let (user_id, token) = svc.customer().await;
    let (reviewed, later) = (new_id(), new_id());
    publish(
        svc.namespace(),
        &confirmed(&new_id(), &user_id, &[&reviewed, &later]),
    )
    .await;
    let review = svc
        .create_when_eligible(&token, review_of(&reviewed, 5))
        .await;

    // The projection is lost (say, a bad manual fix); the events are still in the stream.
    let mut conn = AsyncPgConnection::establish(&svc.database.url)
        .await
        .unwrap();
    diesel::sql_query("DELETE FROM purchases")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    assert_not_a_buyer(&svc, &token, &later).await;

    svc.restart(review::Options { rebuild: true }).await;

    svc.create_when_eligible(&token, review_of(&later, 4)).await;
    let (kept, _) = svc.list(&reviewed, 0, "").await.unwrap();
    assert_eq!(kept, vec![review]);
}
