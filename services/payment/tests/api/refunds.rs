use futures::future::join_all;
use mercato::pb::payment::v1::{GetPaymentRequest, PaymentStatus};
use mercato::pb::r#type::v1::Money;
use mercato_testkit::{assert_code, authed, unique_id, violated_fields};
use tonic::Code;

use crate::{TestPayment, VISA_DECLINED, charge_request, eur, reason, refund_request};

#[tokio::test]
async fn a_partial_then_a_full_refund_give_everything_back_once() {
    let payments = TestPayment::start().await;
    let payment = payments.captured(1000).await;

    let partial = payments
        .refund(refund_request(&payment.id, Some(300), ""))
        .await
        .unwrap();
    let after = partial.payment.unwrap();
    assert_eq!(after.status(), PaymentStatus::PartiallyRefunded);
    assert_eq!(after.refunded_amount, Some(eur(300)));
    assert_eq!(partial.refund.as_ref().unwrap().amount, Some(eur(300)));

    // No amount: the rest.
    let rest = payments
        .refund(refund_request(&payment.id, None, ""))
        .await
        .unwrap();
    let after = rest.payment.unwrap();
    assert_eq!(after.status(), PaymentStatus::Refunded);
    assert_eq!(after.refunded_amount, Some(eur(1000)));
    assert_eq!(after.captured_amount, Some(eur(1000)));
    assert_eq!(rest.refund.unwrap().amount, Some(eur(700)));
    let refunds: Vec<_> = after.refunds.iter().map(|r| r.amount.clone()).collect();
    assert_eq!(refunds, vec![Some(eur(300)), Some(eur(700))]);
    assert_eq!(after.refunds[0].reason, "order cancelled");

    assert_eq!(
        payments.ledger(&payment.id).await,
        vec![
            ("capture".into(), 1000),
            ("refund".into(), 300),
            ("refund".into(), 700)
        ]
    );

    // Nothing is left: a further refund is refused.
    let status = assert_code(
        payments
            .refund(refund_request(&payment.id, Some(1), ""))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status), "NOT_CAPTURED");
}

#[tokio::test]
async fn a_refund_over_what_is_left_is_refused_and_says_how_much_is_refundable() {
    let payments = TestPayment::start().await;
    let payment = payments.captured(1000).await;
    payments
        .refund(refund_request(&payment.id, Some(400), ""))
        .await
        .unwrap();
    let status = assert_code(
        payments
            .refund(refund_request(&payment.id, Some(601), ""))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status), "REFUND_EXCEEDS_CAPTURED");
    assert!(
        status.message().contains("6.00 EUR"),
        "{}",
        status.message()
    );
    assert_eq!(payments.ledger(&payment.id).await.len(), 2);
}

#[tokio::test]
async fn ten_concurrent_partial_refunds_never_exceed_the_capture() {
    let payments = TestPayment::start().await;
    let payment = payments.captured(1000).await;
    let client = payments.client().await;
    let calls = (0..10).map(|_| {
        let mut client = client.clone();
        let request = refund_request(&payment.id, Some(150), "");
        let token = payments.service.clone();
        async move { client.refund(authed(request, &token)).await }
    });
    let results = join_all(calls).await;
    let mut accepted = 0;
    for result in results {
        match result {
            Ok(_) => accepted += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(reason(&status), "REFUND_EXCEEDS_CAPTURED");
            }
        }
    }
    assert_eq!(accepted, 6, "6 × 1.50 fit in 10.00, a 7th does not");
    let ledger = payments.ledger(&payment.id).await;
    let refunded: i64 = ledger
        .iter()
        .filter(|(kind, _)| kind == "refund")
        .map(|(_, cents)| cents)
        .sum();
    assert_eq!(refunded, 900);
    assert!(refunded <= 1000);
    let stored = payments
        .client()
        .await
        .get_payment(authed(
            GetPaymentRequest {
                id: payment.id.clone(),
            },
            &payments.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .payment
        .unwrap();
    assert_eq!(stored.refunded_amount, Some(eur(900)));
    assert_eq!(stored.refunds.len(), 6);
    assert_eq!(stored.status(), PaymentStatus::PartiallyRefunded);
}

#[tokio::test]
async fn a_failed_payment_cannot_be_refunded() {
    let payments = TestPayment::start().await;
    let failed = payments
        .charge(charge_request("order-f", &unique_id(), 500, VISA_DECLINED))
        .await;
    let status = assert_code(
        payments.refund(refund_request(&failed.id, None, "")).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status), "NOT_CAPTURED");
    assert!(payments.ledger(&failed.id).await.is_empty());
}

#[tokio::test]
async fn a_repeated_refund_key_returns_the_first_refund() {
    let payments = TestPayment::start().await;
    let payment = payments.captured(1000).await;
    let first = payments
        .refund(refund_request(&payment.id, Some(200), "cancel-1"))
        .await
        .unwrap();
    let again = payments
        .refund(refund_request(&payment.id, Some(200), "cancel-1"))
        .await
        .unwrap();
    assert_eq!(again.refund, first.refund);
    assert_eq!(again.payment.unwrap().refunded_amount, Some(eur(200)));
    // The key is per payment: another payment may use it.
    let other = payments.captured(500).await;
    payments
        .refund(refund_request(&other.id, Some(100), "cancel-1"))
        .await
        .unwrap();
    // A new key refunds again.
    payments
        .refund(refund_request(&payment.id, Some(200), "cancel-2"))
        .await
        .unwrap();
    assert_eq!(
        payments.ledger(&payment.id).await,
        vec![
            ("capture".into(), 1000),
            ("refund".into(), 200),
            ("refund".into(), 200)
        ]
    );
}

#[tokio::test]
async fn refund_input_is_validated() {
    let payments = TestPayment::start().await;
    let payment = payments.captured(1000).await;
    let mut request = refund_request("nope", Some(-5), &"k".repeat(129));
    request.reason = "r".repeat(501);
    let status = assert_code(payments.refund(request).await, Code::InvalidArgument);
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, vec!["amount", "id", "idempotency_key", "reason"]);

    assert_code(
        payments
            .refund(refund_request(&payment.id, Some(0), ""))
            .await,
        Code::InvalidArgument,
    );

    let mut usd = refund_request(&payment.id, None, "");
    usd.amount = Some(Money {
        currency_code: "USD".into(),
        units: 1,
        nanos: 0,
    });
    let status = assert_code(payments.refund(usd).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["amount"]);

    assert_code(
        payments
            .refund(refund_request(&uuid::Uuid::now_v7().to_string(), None, ""))
            .await,
        Code::NotFound,
    );
    assert_eq!(payments.ledger(&payment.id).await.len(), 1);
}

#[tokio::test]
async fn admins_and_services_refund_customers_do_not() {
    let payments = TestPayment::start().await;
    let payment = payments.captured(1000).await;
    let (_, customer) = payments.identity.customer().await;
    assert_code(
        payments
            .client()
            .await
            .refund(authed(
                refund_request(&payment.id, Some(100), ""),
                &customer,
            ))
            .await,
        Code::PermissionDenied,
    );
    let by_admin = payments
        .client()
        .await
        .refund(authed(
            refund_request(&payment.id, Some(100), ""),
            &payments.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_admin.payment.unwrap().refunded_amount, Some(eur(100)));
    payments
        .refund(refund_request(&payment.id, Some(100), ""))
        .await
        .unwrap();
}
