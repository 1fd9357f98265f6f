-- What the projection counted for each order it has seen confirmed or cancelled, so that a
-- cancellation subtracts exactly what was added, once, from the bucket it was added to.
-- A row with `cancelled` and no `counted_hour` is a cancellation that arrived before its
-- confirmation: the late confirmation finds the row and counts nothing.
CREATE TABLE order_sales (
    order_id      TEXT PRIMARY KEY,
    -- The UTC hour the sale counts in (its confirmation time); NULL when never counted.
    counted_hour  TIMESTAMPTZ,
    currency      TEXT        NOT NULL DEFAULT '',
    total_nanos   BIGINT      NOT NULL DEFAULT 0,
    units         BIGINT      NOT NULL DEFAULT 0,
    cancelled     BOOLEAN     NOT NULL DEFAULT false,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The per-product part of a counted sale (lines of the same product merged).
CREATE TABLE order_sale_lines (
    order_id      TEXT   NOT NULL REFERENCES order_sales (order_id) ON DELETE CASCADE,
    product_id    TEXT   NOT NULL,
    units         BIGINT NOT NULL,
    revenue_nanos BIGINT NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

-- Sales per UTC hour and currency; days are summed from hours at query time.
CREATE TABLE sales_hourly (
    currency      TEXT        NOT NULL,
    hour          TIMESTAMPTZ NOT NULL,
    order_count   BIGINT      NOT NULL,
    units_sold    BIGINT      NOT NULL,
    revenue_nanos BIGINT      NOT NULL,
    PRIMARY KEY (currency, hour)
);

-- Sales per product, UTC hour and currency (revenue = line totals, before order discounts).
CREATE TABLE product_sales_hourly (
    currency      TEXT        NOT NULL,
    hour          TIMESTAMPTZ NOT NULL,
    product_id    TEXT        NOT NULL,
    order_count   BIGINT      NOT NULL,
    units_sold    BIGINT      NOT NULL,
    revenue_nanos BIGINT      NOT NULL,
    PRIMARY KEY (currency, hour, product_id)
);

-- The name of each product on its latest counted sale (by confirmation time).
CREATE TABLE product_names (
    product_id TEXT        PRIMARY KEY,
    name       TEXT        NOT NULL,
    sold_at    TIMESTAMPTZ NOT NULL
);
