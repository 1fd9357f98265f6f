//! Diesel table definitions, matching `migrations/`.

diesel::table! {
    order_sales (order_id) {
        order_id -> Text,
        counted_hour -> Nullable<Timestamptz>,
        currency -> Text,
        total_nanos -> Int8,
        units -> Int8,
        cancelled -> Bool,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    order_sale_lines (order_id, product_id) {
        order_id -> Text,
        product_id -> Text,
        units -> Int8,
        revenue_nanos -> Int8,
    }
}

diesel::table! {
    sales_hourly (currency, hour) {
        currency -> Text,
        hour -> Timestamptz,
        order_count -> Int8,
        units_sold -> Int8,
        revenue_nanos -> Int8,
    }
}

diesel::table! {
    product_sales_hourly (currency, hour, product_id) {
        currency -> Text,
        hour -> Timestamptz,
        product_id -> Text,
        order_count -> Int8,
        units_sold -> Int8,
        revenue_nanos -> Int8,
    }
}

diesel::table! {
    product_names (product_id) {
        product_id -> Text,
        name -> Text,
        sold_at -> Timestamptz,
    }
}

diesel::joinable!(order_sale_lines -> order_sales (order_id));
diesel::allow_tables_to_appear_in_same_query!(
    order_sales,
    order_sale_lines,
    sales_hourly,
    product_sales_hourly,
    product_names,
);
