//! Diesel table definitions, matching `migrations/`.

diesel::table! {
    orders (id) {
        id -> Uuid,
        user_id -> Text,
        idempotency_key -> Text,
        request_hash -> Text,
        status -> Text,
        currency -> Text,
        subtotal_nanos -> Int8,
        discount_nanos -> Int8,
        coupon_code -> Text,
        ship_name -> Text,
        ship_line1 -> Text,
        ship_line2 -> Text,
        ship_city -> Text,
        ship_postal_code -> Text,
        ship_country -> Text,
        payment_id -> Text,
        cancellation_reason -> Text,
        cancelled_by -> Text,
        tracking_number -> Text,
        version -> Int8,
        saga_step -> Text,
        saga_lease_until -> Nullable<Timestamptz>,
        saga_attempts -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    order_lines (order_id, line_no) {
        order_id -> Uuid,
        line_no -> Int4,
        product_id -> Text,
        name -> Text,
        quantity -> Int4,
        unit_price_nanos -> Int8,
    }
}

diesel::joinable!(order_lines -> orders (order_id));
diesel::allow_tables_to_appear_in_same_query!(orders, order_lines);
