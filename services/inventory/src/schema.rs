//! Diesel table definitions, matching `migrations/`.

diesel::table! {
    stock (product_id) {
        product_id -> Uuid,
        on_hand -> Int4,
        reserved -> Int4,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    reservations (order_id) {
        order_id -> Text,
        status -> Text,
        restocked -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    reservation_items (order_id, product_id) {
        order_id -> Text,
        product_id -> Uuid,
        quantity -> Int4,
    }
}

diesel::joinable!(reservation_items -> reservations (order_id));
diesel::joinable!(reservation_items -> stock (product_id));
diesel::allow_tables_to_appear_in_same_query!(stock, reservations, reservation_items);
