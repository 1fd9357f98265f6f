//! Diesel table definitions, matching `migrations/`.

diesel::table! {
    coupons (code) {
        code -> Text,
        percent_off -> Nullable<Int4>,
        amount_off_currency -> Nullable<Text>,
        amount_off_units -> Nullable<Int8>,
        amount_off_nanos -> Nullable<Int4>,
        valid_from -> Nullable<Timestamptz>,
        valid_until -> Nullable<Timestamptz>,
        max_redemptions -> Int4,
        redemption_count -> Int4,
        min_subtotal_currency -> Nullable<Text>,
        min_subtotal_units -> Nullable<Int8>,
        min_subtotal_nanos -> Nullable<Int4>,
        description -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    redemptions (order_id) {
        order_id -> Text,
        code -> Nullable<Text>,
        user_id -> Text,
        discount_currency -> Nullable<Text>,
        discount_units -> Nullable<Int8>,
        discount_nanos -> Nullable<Int4>,
        status -> Text,
        created_at -> Timestamptz,
        released_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(redemptions -> coupons (code));
diesel::allow_tables_to_appear_in_same_query!(coupons, redemptions);
