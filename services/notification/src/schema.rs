//! Diesel table definitions, matching `migrations/`.

diesel::table! {
    notifications (id) {
        id -> Uuid,
        user_id -> Text,
        kind -> Text,
        title -> Text,
        body -> Text,
        order_id -> Text,
        created_at -> Timestamptz,
        read_at -> Nullable<Timestamptz>,
        written_at -> Timestamptz,
    }
}
