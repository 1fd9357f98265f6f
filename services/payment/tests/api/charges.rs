use futures::future::join_all;
use mercato::pb::payment::v1::{
    CardBrand, GetPaymentRequest, LookupChargeRequest, PaymentFailureReason, PaymentStatus,
};
use mercato_testkit::{assert_code, authed, unique_id, violated_fields};
use tonic::Code;

use crate::{TestPayment, VISA_DECLINED, VISA_NO_FUNDS, VISA_OK, charge_request, eur, reason};

#[tokio::test]
async fn ten_concurrent_charges_with_one_key_make_one_payment_and_one_capture() {
    let payments = TestPayment::start().await;
    let client = payments.client().await;
    let calls = (0..10).map(|_| {
        let mut client = client.clone();
        let request = charge_request("order-1", "same-key", 2500, VISA_OK);
        let token = payments.service.clone();
        async move { client.charge(authed(request, &token)).await }
    });
    let results = join_all(calls).await;
    let ids: Vec<String> = results
        .into_iter()
        .map(|r| r.unwrap().into_inner().payment.unwrap().id)
        .collect();
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    assert_eq!(
        payments.ledger(&ids[0]).await,
        vec![("capture".into(), 2500)]
    );
    let events = mercato_testkit::read_stream(&payments.identity.namespace, "payment", 1).await;
    assert_eq!(events[0].r#type, "mercato.payment.v1.PaymentCaptured");
}

#[tokio::test]
async fn the_success_card_is_captured() {
    let payments = TestPayment::start().await;
    let payment = payments
        .charge(charge_request("order-ok", &unique_id(), 1999, VISA_OK))
        .await;
    assert_eq!(payment.status(), PaymentStatus::Captured);
    assert_eq!(payment.failure_reason(), PaymentFailureReason::Unspecified);
    assert_eq!(payment.amount, Some(eur(1999)));
    assert_eq!(payment.captured_amount, Some(eur(1999)));
    assert_eq!(payment.refunded_amount, Some(eur(0)));
    let card = payment.card.unwrap();
    assert_eq!(
        (card.brand(), card.last4.as_str()),
        (CardBrand::Visa, "4242")
    );
    assert_eq!(payment.user_id, "user-1");
    assert_eq!(
        payments.ledger(&payment.id).await,
        vec![("capture".into(), 1999)]
    );
}

#[tokio::test]
async fn refused_cards_are_failed_payments_with_nothing_captured() {
    let payments = TestPayment::start().await;
    for (number, expected) in [
        (VISA_DECLINED, PaymentFailureReason::Declined),
        (VISA_NO_FUNDS, PaymentFailureReason::InsufficientFunds),
    ] {
        let payment = payments
            .charge(charge_request("order-x", &unique_id(), 1999, number))
            .await;
        assert_eq!(payment.status(), PaymentStatus::Failed, "{number}");
        assert_eq!(payment.failure_reason(), expected, "{number}");
        assert_eq!(payment.captured_amount, Some(eur(0)));
        assert!(payments.ledger(&payment.id).await.is_empty());
    }
}

#[tokio::test]
async fn an_expired_card_is_refused_by_the_provider_not_rejected_as_invalid() {
    let payments = TestPayment::start().await;
    let mut request = charge_request("order-exp", &unique_id(), 500, VISA_OK);
    if let Some(card) = request.card.as_mut() {
        card.exp_year = 2001;
    }
    let payment = payments.charge(request).await;
    assert_eq!(payment.status(), PaymentStatus::Failed);
    assert_eq!(payment.failure_reason(), PaymentFailureReason::ExpiredCard);
}

#[tokio::test]
async fn a_repeated_charge_answers_with_the_first_payment_even_when_it_failed() {
    let payments = TestPayment::start().await;
    let key = unique_id();
    let first = payments
        .charge(charge_request("order-r", &key, 700, VISA_DECLINED))
        .await;
    // Same key, now with a good card: still the first (failed) payment, nothing charged.
    let again = payments
        .charge(charge_request("order-r", &key, 700, VISA_OK))
        .await;
    assert_eq!(again.id, first.id);
    assert_eq!(again.status(), PaymentStatus::Failed);
    assert!(payments.ledger(&first.id).await.is_empty());
}

#[tokio::test]
async fn a_luhn_failure_is_invalid_argument_on_card_number() {
    let payments = TestPayment::start().await;
    let status = assert_code(
        payments
            .client()
            .await
            .charge(authed(
                charge_request("order-l", &unique_id(), 500, "4242424242424241"),
                &payments.service,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["card.number"]);
    assert!(status.message().contains("Luhn"), "{}", status.message());
}

#[tokio::test]
async fn every_malformed_field_is_reported_at_once() {
    let payments = TestPayment::start().await;
    let mut request = charge_request("", "", 0, "1234");
    if let Some(card) = request.card.as_mut() {
        card.exp_month = 13;
        card.exp_year = 99;
        card.cvc = "1".into();
        card.holder_name = String::new();
    }
    request.user_id = String::new();
    let status = assert_code(
        payments
            .client()
            .await
            .charge(authed(request, &payments.service))
            .await,
        Code::InvalidArgument,
    );
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "amount",
            "card.cvc",
            "card.exp_month",
            "card.exp_year",
            "card.holder_name",
            "card.number",
            "idempotency_key",
            "order_id",
            "user_id",
        ]
    );
    let mut conn = payments.sql().await;
    assert!(
        payment::store::payment_by_key(&mut conn, "")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_missing_card_is_reported() {
    let payments = TestPayment::start().await;
    let mut request = charge_request("order-m", &unique_id(), 500, VISA_OK);
    request.card = None;
    let status = assert_code(
        payments
            .client()
            .await
            .charge(authed(request, &payments.service))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["card"]);
}

#[tokio::test]
async fn reusing_a_key_for_another_amount_or_order_is_a_failed_precondition() {
    let payments = TestPayment::start().await;
    let key = unique_id();
    let first = payments
        .charge(charge_request("order-k", &key, 1000, VISA_OK))
        .await;
    for request in [
        charge_request("order-k", &key, 1001, VISA_OK),
        charge_request("order-other", &key, 1000, VISA_OK),
    ] {
        let status = assert_code(
            payments
                .client()
                .await
                .charge(authed(request, &payments.service))
                .await,
            Code::FailedPrecondition,
        );
        assert_eq!(reason(&status), "IDEMPOTENCY_KEY_REUSED");
    }
    assert_eq!(
        payments.ledger(&first.id).await,
        vec![("capture".into(), 1000)]
    );
}

#[tokio::test]
async fn lookup_charge_finds_the_payment_of_a_key() {
    let payments = TestPayment::start().await;
    let key = unique_id();
    let charged = payments
        .charge(charge_request("order-q", &key, 1234, VISA_OK))
        .await;
    let found = payments
        .client()
        .await
        .lookup_charge(authed(
            LookupChargeRequest {
                idempotency_key: key,
            },
            &payments.service,
        ))
        .await
        .unwrap()
        .into_inner()
        .payment
        .unwrap();
    assert_eq!(found, charged);
    let status = assert_code(
        payments
            .client()
            .await
            .lookup_charge(authed(
                LookupChargeRequest {
                    idempotency_key: "never-used".into(),
                },
                &payments.service,
            ))
            .await,
        Code::NotFound,
    );
    assert!(status.message().contains("never-used"));
    let status = assert_code(
        payments
            .client()
            .await
            .lookup_charge(authed(LookupChargeRequest::default(), &payments.service))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["idempotency_key"]);
}

#[tokio::test]
async fn only_service_accounts_charge_and_only_admins_read_payments() {
    let payments = TestPayment::start().await;
    let (_, customer) = payments.identity.customer().await;
    let request = || charge_request("order-a", &unique_id(), 500, VISA_OK);
    for token in [&customer, &payments.admin] {
        assert_code(
            payments
                .client()
                .await
                .charge(authed(request(), token))
                .await,
            Code::PermissionDenied,
        );
    }
    assert_code(
        payments.client().await.charge(request()).await,
        Code::Unauthenticated,
    );
    let payment = payments.captured(500).await;
    let get = |token: &str| {
        authed(
            GetPaymentRequest {
                id: payment.id.clone(),
            },
            token,
        )
    };
    for token in [&customer, &payments.service] {
        assert_code(
            payments.client().await.get_payment(get(token)).await,
            Code::PermissionDenied,
        );
    }
    assert_code(
        payments
            .client()
            .await
            .lookup_charge(authed(
                LookupChargeRequest {
                    idempotency_key: "k".into(),
                },
                &customer,
            ))
            .await,
        Code::PermissionDenied,
    );
    let fetched = payments
        .client()
        .await
        .get_payment(get(&payments.admin))
        .await
        .unwrap()
        .into_inner()
        .payment
        .unwrap();
    assert_eq!(fetched.id, payment.id);
}

#[tokio::test]
async fn get_payment_rejects_malformed_ids_and_reports_unknown_ones() {
    let payments = TestPayment::start().await;
    let get = |id: &str| authed(GetPaymentRequest { id: id.into() }, &payments.admin);
    let status = assert_code(
        payments.client().await.get_payment(get("not-a-uuid")).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["id"]);
    assert_code(
        payments
            .client()
            .await
            .get_payment(get(&uuid::Uuid::now_v7().to_string()))
            .await,
        Code::NotFound,
    );
}
