//! Diesel table definitions, matching `migrations/`.

diesel::table! {
    purchases (order_id, product_id) {
        order_id -> Uuid,
        product_id -> Uuid,
        user_id -> Uuid,
        order_version -> Int8,
        status -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    authors (user_id) {
        user_id -> Uuid,
        display_name -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    reviews (id) {
        id -> Uuid,
        product_id -> Uuid,
        user_id -> Uuid,
        author_name -> Text,
        rating -> Int4,
        title -> Text,
        body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(purchases, authors, reviews);
