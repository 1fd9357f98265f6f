use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use mercato::pb::payment::v1::{
    CardBrand, GetPaymentRequest, PaymentCaptured, PaymentFailed, PaymentFailureReason,
    PaymentRefunded,
};
use mercato_testkit::{authed, unique_id};
use prost::Message as _;

use crate::{TestPayment, VISA_NO_FUNDS, VISA_OK, charge_request, eur, refund_request};

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows of any table of the database whose text form, or any bytea column, holds `needle`.
async fn rows_containing(payments: &TestPayment, needle: &str) -> Vec<String> {
    let mut conn = payments.sql().await;
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert!(
        tables.len() >= 4,
        "payments, refunds, ledger_entries, outbox"
    );
    let mut found = Vec::new();
    for table in &tables {
        let count: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM \"{}\" AS t WHERE t::text LIKE '%' || $1 || '%'",
            table.name
        ))
        .bind::<Text, _>(needle)
        .get_result(&mut conn)
        .await
        .unwrap();
        if count.n > 0 {
            found.push(table.name.clone());
        }
    }
    // Binary columns (the outbox's encoded events) render as hex in t::text: search the bytes.
    let binary: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name \
         FROM information_schema.columns WHERE table_schema = 'public' AND data_type = 'bytea'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert!(binary.iter().any(|c| c.table_name == "outbox"));
    for column in &binary {
        let count: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM \"{}\" WHERE position(convert_to($1, 'UTF8') IN \"{}\") > 0",
            column.table_name, column.column_name
        ))
        .bind::<Text, _>(needle)
        .get_result(&mut conn)
        .await
        .unwrap();
        if count.n > 0 {
            found.push(format!("{}.{}", column.table_name, column.column_name));
        }
    }
    found
}

#[tokio::test]
async fn only_brand_and_last4_of_a_card_are_kept_anywhere() {
    let payments = TestPayment::start().await;
    let mastercard = "5555 5555-5555 4444";
    let captured = payments
        .charge(charge_request("order-p", &unique_id(), 4200, mastercard))
        .await;
    payments
        .charge(charge_request(
            "order-p2",
            &unique_id(),
            4200,
            VISA_NO_FUNDS,
        ))
        .await;
    payments
        .refund(refund_request(&captured.id, Some(100), "k"))
        .await
        .unwrap();

    let fetched = payments
        .client()
        .await
        .get_payment(authed(
            GetPaymentRequest {
                id: captured.id.clone(),
            },
            &payments.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .payment
        .unwrap();
    let card = fetched.card.clone().unwrap();
    assert_eq!(
        (card.brand(), card.last4.as_str()),
        (CardBrand::Mastercard, "4444")
    );
    let encoded = fetched.encode_to_vec();
    assert!(
        !encoded.windows(16).any(|w| w == b"5555555555554444"),
        "the response must not carry the number"
    );

    // The sanity check proves the scan works: the last four digits are stored.
    assert!(!rows_containing(&payments, "4444").await.is_empty());
    for needle in ["5555555555554444", mastercard, VISA_NO_FUNDS, "5555 5555"] {
        assert_eq!(
            rows_containing(&payments, needle).await,
            Vec::<String>::new(),
            "{needle} found in the database"
        );
    }
}

#[tokio::test]
async fn every_change_is_published_exactly_once() {
    let payments = TestPayment::start().await;
    let key = unique_id();
    let captured = payments
        .charge(charge_request("order-e", &key, 1000, VISA_OK))
        .await;
    let failed = payments
        .charge(charge_request("order-f", &unique_id(), 800, VISA_NO_FUNDS))
        .await;
    let refund = payments
        .refund(refund_request(&captured.id, None, "once"))
        .await
        .unwrap()
        .refund
        .unwrap();
    // Repeats change nothing and publish nothing.
    payments
        .charge(charge_request("order-e", &key, 1000, VISA_OK))
        .await;
    payments
        .refund(refund_request(&captured.id, None, "once"))
        .await
        .unwrap();

    let events = mercato_testkit::read_stream(&payments.identity.namespace, "payment", 3).await;
    let types: Vec<&str> = events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "mercato.payment.v1.PaymentCaptured",
            "mercato.payment.v1.PaymentFailed",
            "mercato.payment.v1.PaymentRefunded",
        ]
    );
    assert!(events.iter().all(|e| e.source == "payment"));

    let event = PaymentCaptured::decode(events[0].payload.as_slice()).unwrap();
    assert_eq!(events[0].subject, captured.id);
    assert_eq!(
        (
            event.payment_id.as_str(),
            event.order_id.as_str(),
            event.user_id.as_str()
        ),
        (captured.id.as_str(), "order-e", "user-1")
    );
    assert_eq!(event.amount, Some(eur(1000)));
    assert_eq!(event.card.unwrap().last4, "4242");

    let event = PaymentFailed::decode(events[1].payload.as_slice()).unwrap();
    assert_eq!(events[1].subject, failed.id);
    assert_eq!(
        event.failure_reason(),
        PaymentFailureReason::InsufficientFunds
    );
    assert_eq!(event.amount, Some(eur(800)));

    let event = PaymentRefunded::decode(events[2].payload.as_slice()).unwrap();
    assert_eq!(event.refund_id, refund.id);
    assert_eq!(event.amount, Some(eur(1000)));
    assert_eq!(event.refunded_amount, Some(eur(1000)));
    assert!(event.fully_refunded);
    assert_eq!(event.reason, "order cancelled");
}
