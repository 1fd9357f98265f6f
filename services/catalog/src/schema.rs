//! Diesel table definitions, matching `migrations/`.

diesel::table! {
    categories (id) {
        id -> Uuid,
        name -> Text,
        description -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    products (id) {
        id -> Uuid,
        sku -> Text,
        name -> Text,
        description -> Text,
        category_id -> Nullable<Uuid>,
        price_currency -> Text,
        price_units -> Int8,
        price_nanos -> Int4,
        image_url -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(products -> categories (category_id));
diesel::allow_tables_to_appear_in_same_query!(categories, products);
