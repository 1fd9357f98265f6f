//! What each event tells the user.

use mercato::pb::notification::v1::NotificationKind;
use mercato::pb::payment::v1::{
    CardBrand, CardSummary, PaymentCaptured, PaymentFailed, PaymentFailureReason, PaymentRefunded,
};
use mercato_testkit::publish_event;

use crate::{TestNotification, eur, events, minutes_from_now, of_kind};

fn order_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[tokio::test]
async fn a_new_user_is_welcomed_by_name() {
    let service = TestNotification::start().await;
    // The fixture's customer registers at identity, which publishes UserRegistered.
    let (user_id, token) = service.customer().await;
    let all = service.all(&token).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    let welcome = &all[0];
    assert_eq!(welcome.kind, NotificationKind::Welcome as i32);
    assert_eq!(welcome.user_id, user_id);
    assert_eq!(welcome.title, "Welcome to Mercato, Customer");
    assert!(welcome.body.contains("@mercato.test"), "{}", welcome.body);
    assert!(!welcome.read);
    assert!(welcome.create_time.is_some());
    assert!(uuid::Uuid::parse_str(&welcome.id).is_ok());
}

#[tokio::test]
async fn a_confirmed_order_tells_what_it_costs_and_where_it_goes() {
    let service = TestNotification::start().await;
    let (user_id, token) = service.customer().await;
    let order = order_id();
    let envelope = publish_event(
        service.namespace(),
        &order,
        &events::confirmed(&order, &user_id),
        None,
    )
    .await;
    let note = service.wait_for_event(&token, &envelope.id).await;
    assert_eq!(note.kind, NotificationKind::OrderConfirmed as i32);
    assert_eq!(note.order_id, order);
    assert_eq!(note.title, "Order confirmed");
    assert!(
        note.body.starts_with(&format!(
            "Your order {order} is confirmed: 2 items, total 48.48 EUR, arriving at Ada \
             Lovelace, London."
        )),
        "{}",
        note.body
    );
    assert!(
        note.body.contains("Stoneware mug: 12.50 EUR"),
        "{}",
        note.body
    );
}

#[tokio::test]
async fn a_placed_order_is_acknowledged() {
    let service = TestNotification::start().await;
    let (user_id, token) = service.customer().await;
    let order = order_id();
    let envelope = publish_event(
        service.namespace(),
        &order,
        &events::placed(&order, &user_id),
        None,
    )
    .await;
    let note = service.wait_for_event(&token, &envelope.id).await;
    assert_eq!(note.kind, NotificationKind::OrderPlaced as i32);
    assert!(
        note.body.contains(&format!(
            "We received your order {order}: 2 items, total 48.48 EUR"
        )),
        "{}",
        note.body
    );
}

#[tokio::test]
async fn a_cancelled_order_gives_the_reason() {
    let service = TestNotification::start().await;
    let (user_id, token) = service.customer().await;
    let order = order_id();
    let event = events::cancelled(&order, &user_id, "payment failed: the card was declined");
    let envelope = publish_event(service.namespace(), &order, &event, None).await;
    let note = service.wait_for_event(&token, &envelope.id).await;
    assert_eq!(note.kind, NotificationKind::OrderCancelled as i32);
    assert_eq!(
        note.body,
        format!(
            "Order {order} was cancelled: payment failed: the card was declined. Nothing was \
             charged."
        )
    );
}

#[tokio::test]
async fn a_shipped_order_gives_the_tracking_number() {
    let service = TestNotification::start().await;
    let (user_id, token) = service.customer().await;
    let order = order_id();
    let event = events::shipped(&order, &user_id, "T-123");
    let envelope = publish_event(service.namespace(), &order, &event, None).await;
    let note = service.wait_for_event(&token, &envelope.id).await;
    assert_eq!(note.kind, NotificationKind::OrderShipped as i32);
    assert!(
        note.body
            .starts_with(&format!("Order {order} has shipped — tracking T-123.")),
        "{}",
        note.body
    );
    assert!(note.body.contains("48.48 EUR"), "{}", note.body);
}

#[tokio::test]
async fn payment_failures_and_refunds_are_told_but_a_capture_is_not() {
    let service = TestNotification::start().await;
    let (user_id, token) = service.customer().await;
    let order = order_id();
    let ns = service.namespace();
    publish_event(
        ns,
        "pay-0",
        &PaymentCaptured {
            payment_id: "pay-0".into(),
            order_id: order.clone(),
            user_id: user_id.clone(),
            amount: eur(4848),
            capture_time: minutes_from_now(-5),
            ..Default::default()
        },
        None,
    )
    .await;
    let failed = PaymentFailed {
        payment_id: "pay-1".into(),
        order_id: order.clone(),
        user_id: user_id.clone(),
        amount: eur(4848),
        failure_reason: PaymentFailureReason::InsufficientFunds as i32,
        card: Some(CardSummary {
            brand: CardBrand::Mastercard as i32,
            last4: "4444".into(),
        }),
        fail_time: minutes_from_now(-4),
    };
    let failed = publish_event(ns, "pay-1", &failed, None).await;
    let refunded = PaymentRefunded {
        payment_id: "pay-0".into(),
        order_id: order.clone(),
        user_id: user_id.clone(),
        refund_id: "ref-1".into(),
        amount: eur(4848),
        refunded_amount: eur(4848),
        fully_refunded: true,
        reason: "order cancelled".into(),
        refund_time: minutes_from_now(-3),
    };
    let refunded = publish_event(ns, "pay-0", &refunded, None).await;

    let failed = service.wait_for_event(&token, &failed.id).await;
    assert_eq!(failed.kind, NotificationKind::PaymentFailed as i32);
    assert_eq!(
        failed.body,
        format!(
            "Your Mastercard card ending 4444 was refused for 48.48 EUR on order {order}: the \
             card was declined for insufficient funds. Nothing was charged."
        )
    );
    let refunded = service.wait_for_event(&token, &refunded.id).await;
    assert_eq!(refunded.kind, NotificationKind::PaymentRefunded as i32);
    assert!(
        refunded.body.starts_with(&format!(
            "We refunded 48.48 EUR for order {order}: order cancelled. The payment has now \
             been refunded in full."
        )),
        "{}",
        refunded.body
    );
    // The capture came first on the same stream, so it has been handled: it wrote nothing.
    let all = service.all(&token).await;
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(of_kind(&all, NotificationKind::Welcome).len(), 1);
}
