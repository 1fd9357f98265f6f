//! Diesel table definitions, matching `migrations/`.

diesel::table! {
    payments (id) {
        id -> Uuid,
        order_id -> Text,
        user_id -> Text,
        idempotency_key -> Text,
        currency -> Text,
        amount_nanos -> Int8,
        status -> Text,
        failure_reason -> Nullable<Text>,
        card_brand -> Text,
        card_last4 -> Text,
        captured_nanos -> Int8,
        refunded_nanos -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    refunds (id) {
        id -> Uuid,
        payment_id -> Uuid,
        amount_nanos -> Int8,
        reason -> Text,
        idempotency_key -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    ledger_entries (id) {
        id -> Uuid,
        payment_id -> Uuid,
        refund_id -> Nullable<Uuid>,
        kind -> Text,
        currency -> Text,
        amount_nanos -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(refunds -> payments (payment_id));
diesel::joinable!(ledger_entries -> payments (payment_id));
diesel::joinable!(ledger_entries -> refunds (refund_id));
diesel::allow_tables_to_appear_in_same_query!(payments, refunds, ledger_entries);
