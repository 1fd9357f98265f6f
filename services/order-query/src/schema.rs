//! Diesel table definitions, matching `migrations/`.

diesel::table! {
    orders (id) {
        id -> Uuid,
        user_id -> Text,
        status -> Int2,
        version -> Int8,
        subtotal_currency -> Text,
        subtotal_units -> Int8,
        subtotal_nanos -> Int4,
        discount_currency -> Text,
        discount_units -> Int8,
        discount_nanos -> Int4,
        total_currency -> Text,
        total_units -> Int8,
        total_nanos -> Int4,
        coupon_code -> Text,
        ship_name -> Text,
        ship_line1 -> Text,
        ship_line2 -> Text,
        ship_city -> Text,
        ship_postal_code -> Text,
        ship_country -> Text,
        payment_id -> Text,
        cancellation_reason -> Text,
        tracking_number -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    order_lines (order_id, position) {
        order_id -> Uuid,
        position -> Int4,
        product_id -> Text,
        name -> Text,
        quantity -> Int4,
        unit_price_currency -> Text,
        unit_price_units -> Int8,
        unit_price_nanos -> Int4,
        line_total_currency -> Text,
        line_total_units -> Int8,
        line_total_nanos -> Int4,
    }
}

diesel::table! {
    order_history (order_id, version) {
        order_id -> Uuid,
        version -> Int8,
        status -> Int2,
        changed_at -> Timestamptz,
        note -> Text,
    }
}

diesel::table! {
    payments (payment_id) {
        payment_id -> Text,
        order_id -> Uuid,
        captured -> Bool,
        failed -> Bool,
        amount_currency -> Text,
        amount_units -> Int8,
        amount_nanos -> Int4,
        refunded_currency -> Text,
        refunded_units -> Int8,
        refunded_nanos -> Int4,
        fully_refunded -> Bool,
        failure_reason -> Int2,
        card_brand -> Int2,
        card_last4 -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(order_lines -> orders (order_id));
diesel::allow_tables_to_appear_in_same_query!(orders, order_lines, order_history, payments);
