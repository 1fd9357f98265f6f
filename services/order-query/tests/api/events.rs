//! The projection under redelivery, reordering, payment news and poison messages.

use mercato::pb::events::v1::Envelope;
use mercato::pb::order::v1::{
    OrderConfirmed, OrderPlaced, OrderShipped, OrderSnapshot, OrderStatus,
};
use mercato::pb::payment::v1::{
    CardSummary, PaymentCaptured, PaymentFailed, PaymentFailureReason, PaymentRefunded,
    PaymentStatus,
};
use prost::{Message as _, Name as _};

use crate::{
    SERVICE, TestOrderQuery, cancelled, confirmed, eur, history, new_id, now, placed, shipped,
};

async fn jetstream() -> async_nats::jetstream::Context {
    async_nats::jetstream::new(
        async_nats::connect(mercato_testkit::nats_url())
            .await
            .unwrap(),
    )
}

/// Publishes `envelope` again under a fresh Nats-Msg-Id, so JetStream's own de-duplication
/// lets it through and only the consumer's can stop it.
async fn redeliver(svc: &TestOrderQuery, envelope: &Envelope) {
    let subject = mercato_kernel::events::event_subject(&envelope.r#type).unwrap();
    mercato_testkit::publish_raw(
        &jetstream().await,
        &format!("{}.{subject}", svc.namespace()),
        &new_id(),
        envelope.encode_to_vec(),
    )
    .await;
}

/// Publishes an unrelated order and waits for it: every order event published before it has
/// then been handled (one stream is consumed in order).
async fn drain_order_stream(svc: &TestOrderQuery) {
    let id = new_id();
    svc.publish(&id, &placed(&id, "someone-else", now())).await;
    svc.wait_for_state(&id, OrderStatus::Pending, 1).await;
}

#[tokio::test]
async fn an_event_delivered_twice_changes_nothing_the_second_time() {
    let svc = TestOrderQuery::start().await;
    let (user, _) = svc.identity.customer().await;
    let id = new_id();
    let p = placed(&id, &user, now());
    let placed_event = svc.publish(&id, &p).await;
    let confirmed_event = svc.publish(&id, &confirmed(&p, "pay-1")).await;
    let before = svc.wait_for_state(&id, OrderStatus::Confirmed, 2).await;

    redeliver(&svc, &placed_event).await;
    redeliver(&svc, &confirmed_event).await;
    // A redelivery whose id was processed is skipped even if its content would change the
    // order: the consumer's processed_events, not the version check, stops it.
    let forged = Envelope {
        r#type: OrderShipped::full_name(),
        payload: shipped(&p, "pay-1", "TRK-FORGED").encode_to_vec(),
        ..confirmed_event.clone()
    };
    redeliver(&svc, &forged).await;
    drain_order_stream(&svc).await;

    let after = svc.get(&svc.admin, &id).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(
        history(&after),
        [OrderStatus::Pending, OrderStatus::Confirmed]
    );
}

#[tokio::test]
async fn events_out_of_order_end_in_the_right_state_and_history() {
    let svc = TestOrderQuery::start().await;
    let (user, token) = svc.identity.customer().await;
    let id = new_id();
    let placed_at = now() - 7200;
    let p = placed(&id, &user, placed_at);
    svc.publish(&id, &shipped(&p, "pay-1", "TRK-1")).await;
    svc.publish(&id, &confirmed(&p, "pay-1")).await;
    svc.publish(&id, &p).await;

    let order = svc.wait_for(&id, |o| o.history.len() == 3).await;
    assert_eq!(order.status, OrderStatus::Shipped as i32);
    assert_eq!(order.version, 3);
    assert_eq!(order.tracking_number, "TRK-1");
    assert_eq!(order.payment, None);
    assert_eq!(
        history(&order),
        [
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            OrderStatus::Shipped
        ]
    );
    assert_eq!(order.history[2].note, "TRK-1");
    assert_eq!(order.history[0].change_time.unwrap().seconds, placed_at);
    assert_eq!(
        order.history[1].change_time.unwrap().seconds,
        placed_at + 60
    );
    assert_eq!(order.create_time.unwrap().seconds, placed_at);
    assert_eq!(order.update_time.unwrap().seconds, placed_at + 3600);
    assert_eq!(order.lines.len(), 2);
    assert_eq!(svc.get(&token, &id).await.unwrap(), order);
}

#[tokio::test]
async fn a_late_placed_event_does_not_undo_a_cancellation() {
    let svc = TestOrderQuery::start().await;
    let (user, _) = svc.identity.customer().await;
    let id = new_id();
    let p = placed(&id, &user, now());
    svc.publish(&id, &cancelled(&p, 3, "changed my mind")).await;
    svc.publish(&id, &p).await;
    svc.publish(&id, &confirmed(&p, "pay-1")).await;

    let order = svc.wait_for(&id, |o| o.history.len() == 3).await;
    assert_eq!(order.status, OrderStatus::Cancelled as i32);
    assert_eq!(order.cancellation_reason, "changed my mind");
    assert_eq!(order.version, 3);
    assert_eq!(
        history(&order),
        [
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            OrderStatus::Cancelled
        ]
    );
    assert_eq!(order.history[2].note, "changed my mind");
}

#[tokio::test]
async fn payment_events_show_on_the_order_whatever_their_timing() {
    let svc = TestOrderQuery::start().await;
    let (user, _) = svc.identity.customer().await;
    let id = new_id();
    let payment_id = new_id();
    // The capture is reported before the order is projected at all.
    svc.publish(
        &payment_id,
        &PaymentCaptured {
            payment_id: payment_id.clone(),
            order_id: id.clone(),
            user_id: user.clone(),
            amount: Some(eur(2750)),
            card: Some(CardSummary {
                brand: 1,
                last4: "4242".into(),
            }),
            capture_time: None,
        },
    )
    .await;
    let p = placed(&id, &user, now());
    svc.publish(&id, &p).await;
    svc.publish(&id, &confirmed(&p, &payment_id)).await;
    let order = svc.wait_for_state(&id, OrderStatus::Confirmed, 2).await;
    let payment = order.payment.unwrap();
    assert_eq!(payment.payment_id, payment_id);
    assert_eq!(payment.status, PaymentStatus::Captured as i32);
    assert_eq!(payment.captured_amount, Some(eur(2750)));
    assert_eq!(payment.refunded_amount, Some(eur(0)));
    assert_eq!(payment.card.unwrap().last4, "4242");

    svc.publish(&id, &cancelled(&p, 3, "out of stock")).await;
    svc.publish(
        &payment_id,
        &PaymentRefunded {
            payment_id: payment_id.clone(),
            order_id: id.clone(),
            user_id: user.clone(),
            refund_id: new_id(),
            amount: Some(eur(2750)),
            refunded_amount: Some(eur(2750)),
            fully_refunded: true,
            reason: "order cancelled".into(),
            refund_time: None,
        },
    )
    .await;
    let order = svc
        .wait_for(&id, |o| {
            o.payment
                .as_ref()
                .is_some_and(|p| p.status == PaymentStatus::Refunded as i32)
        })
        .await;
    assert_eq!(order.status, OrderStatus::Cancelled as i32);
    assert_eq!(order.payment.unwrap().refunded_amount, Some(eur(2750)));

    // A refused card on another order.
    let other = new_id();
    let failed_payment = new_id();
    let q = placed(&other, &user, now());
    svc.publish(&other, &q).await;
    svc.publish(
        &failed_payment,
        &PaymentFailed {
            payment_id: failed_payment.clone(),
            order_id: other.clone(),
            user_id: user,
            amount: Some(eur(2750)),
            failure_reason: PaymentFailureReason::InsufficientFunds as i32,
            card: None,
            fail_time: None,
        },
    )
    .await;
    let order = svc.wait_for(&other, |o| o.payment.is_some()).await;
    let payment = order.payment.unwrap();
    assert_eq!(payment.status, PaymentStatus::Failed as i32);
    assert_eq!(
        payment.failure_reason,
        PaymentFailureReason::InsufficientFunds as i32
    );
    assert_eq!(payment.captured_amount, None);
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_the_events_behind_them_still_flow() {
    let svc = TestOrderQuery::start().await;
    let (user, _) = svc.identity.customer().await;
    let js = jetstream().await;
    let subject = format!("{}.order.v1.order_placed", svc.namespace());
    let garbage = b"not an envelope".to_vec();
    mercato_testkit::publish_raw(&js, &subject, &new_id(), garbage.clone()).await;
    let undecodable = Envelope {
        id: new_id(),
        r#type: OrderPlaced::full_name(),
        source: "order".into(),
        subject: new_id(),
        payload: vec![0xff, 0xff, 0xff],
        ..Default::default()
    };
    mercato_testkit::publish_raw(&js, &subject, &new_id(), undecodable.encode_to_vec()).await;

    let id = new_id();
    svc.publish(&id, &placed(&id, &user, now())).await;
    svc.wait_for_state(&id, OrderStatus::Pending, 1).await;

    let dead = mercato_testkit::read_dlq(svc.namespace(), SERVICE, 2).await;
    let reasons: Vec<String> = dead
        .iter()
        .map(|(headers, _)| {
            headers
                .get("Mercato-Dlq-Reason")
                .expect("reason header")
                .to_string()
        })
        .collect();
    assert!(reasons[0].contains("undecodable envelope"), "{reasons:?}");
    assert!(reasons[1].contains("OrderPlaced"), "{reasons:?}");
    assert_eq!(dead[0].1, garbage);
    assert_eq!(dead[1].1, undecodable.encode_to_vec());
}

/// `event` as producers write it now: the order in `snapshot` only, nothing in the
/// deprecated fields 1-11 (which share the snapshot's numbers, so the old encoding decodes as
/// the snapshot).
fn snapshot_of<M: prost::Message>(event: &M) -> OrderSnapshot {
    OrderSnapshot::decode(event.encode_to_vec().as_slice()).unwrap()
}

#[tokio::test]
async fn an_order_told_by_snapshots_alone_reads_as_one_told_by_the_old_fields() {
    let svc = TestOrderQuery::start().await;
    let (user, _) = svc.identity.customer().await;
    let (old_id, new_id_) = (new_id(), new_id());
    let placed_at = now() - 600;

    let old = placed(&old_id, &user, placed_at);
    svc.publish(&old_id, &old).await;
    svc.publish(&old_id, &confirmed(&old, "pay-1")).await;
    svc.publish(&old_id, &shipped(&old, "pay-1", "TRK-1")).await;

    let p = placed(&new_id_, &user, placed_at);
    let (c, s) = (confirmed(&p, "pay-1"), shipped(&p, "pay-1", "TRK-1"));
    let new_placed = OrderPlaced {
        snapshot: Some(snapshot_of(&p)),
        ..Default::default()
    };
    let new_confirmed = OrderConfirmed {
        snapshot: Some(snapshot_of(&c)),
        confirm_time: c.confirm_time,
        ..Default::default()
    };
    let new_shipped = OrderShipped {
        snapshot: Some(snapshot_of(&s)),
        tracking_number: s.tracking_number.clone(),
        ship_time: s.ship_time,
        ..Default::default()
    };
    svc.publish(&new_id_, &new_placed).await;
    svc.publish(&new_id_, &new_confirmed).await;
    svc.publish(&new_id_, &new_shipped).await;

    let told_old = svc.wait_for_state(&old_id, OrderStatus::Shipped, 3).await;
    let told_new = svc.wait_for_state(&new_id_, OrderStatus::Shipped, 3).await;
    assert_eq!(told_new.lines.len(), 2);
    assert_eq!(told_new.total, Some(eur(2750)));
    assert_eq!(told_new.tracking_number, "TRK-1");
    assert_eq!(
        mercato::pb::orderquery::v1::OrderView {
            id: told_old.id.clone(),
            ..told_new
        },
        told_old
    );
}

#[tokio::test]
async fn an_event_of_an_unknown_kind_is_dead_lettered_not_applied_as_a_refund() {
    let svc = TestOrderQuery::start().await;
    let (user, _) = svc.identity.customer().await;
    let id = new_id();
    let payment_id = new_id();
    let p = placed(&id, &user, now());
    svc.publish(&id, &p).await;
    svc.publish(&id, &confirmed(&p, &payment_id)).await;
    let capture = PaymentCaptured {
        payment_id: payment_id.clone(),
        order_id: id.clone(),
        user_id: user.clone(),
        amount: Some(eur(2750)),
        card: None,
        capture_time: None,
    };
    svc.publish(&payment_id, &capture).await;
    svc.wait_for(&id, |o| {
        o.payment
            .as_ref()
            .is_some_and(|p| p.status == PaymentStatus::Captured as i32)
    })
    .await;

    // A payment event of a type order-query does not know, whose payload happens to read as
    // a full refund of the payment.
    let unknown = Envelope {
        id: new_id(),
        r#type: "mercato.payment.v1.PaymentDisputed".into(),
        source: "payment".into(),
        subject: payment_id.clone(),
        payload: PaymentRefunded {
            payment_id: payment_id.clone(),
            order_id: id.clone(),
            user_id: user.clone(),
            refund_id: new_id(),
            amount: Some(eur(2750)),
            refunded_amount: Some(eur(2750)),
            fully_refunded: true,
            reason: "disputed".into(),
            refund_time: None,
        }
        .encode_to_vec(),
        ..Default::default()
    };
    mercato_testkit::publish_raw(
        &jetstream().await,
        &format!("{}.payment.v1.payment_disputed", svc.namespace()),
        &new_id(),
        unknown.encode_to_vec(),
    )
    .await;

    let dead = mercato_testkit::read_dlq(svc.namespace(), SERVICE, 1).await;
    let reason = dead[0]
        .0
        .get("Mercato-Dlq-Reason")
        .expect("reason header")
        .to_string();
    assert!(
        reason.contains("mercato.payment.v1.PaymentDisputed"),
        "{reason}"
    );
    assert_eq!(dead[0].1, unknown.encode_to_vec());
    let order = svc.get(&svc.admin, &id).await.unwrap();
    let payment = order.payment.unwrap();
    assert_eq!(payment.status, PaymentStatus::Captured as i32);
    assert_eq!(payment.refunded_amount, Some(eur(0)));
}
