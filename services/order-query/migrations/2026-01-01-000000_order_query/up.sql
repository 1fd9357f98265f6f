-- The order read model, fed only by order and payment events (see src/projector.rs).

-- One row per order: the state of the newest order event applied (`version`).
CREATE TABLE orders (
    id                   UUID PRIMARY KEY,
    user_id              TEXT        NOT NULL,
    -- mercato.order.v1.OrderStatus number.
    status               SMALLINT    NOT NULL,
    version              BIGINT      NOT NULL,
    subtotal_currency    TEXT        NOT NULL,
    subtotal_units       BIGINT      NOT NULL,
    subtotal_nanos       INTEGER     NOT NULL,
    discount_currency    TEXT        NOT NULL,
    discount_units       BIGINT      NOT NULL,
    discount_nanos       INTEGER     NOT NULL,
    total_currency       TEXT        NOT NULL,
    total_units          BIGINT      NOT NULL,
    total_nanos          INTEGER     NOT NULL,
    coupon_code          TEXT        NOT NULL DEFAULT '',
    ship_name            TEXT        NOT NULL DEFAULT '',
    ship_line1           TEXT        NOT NULL DEFAULT '',
    ship_line2           TEXT        NOT NULL DEFAULT '',
    ship_city            TEXT        NOT NULL DEFAULT '',
    ship_postal_code     TEXT        NOT NULL DEFAULT '',
    ship_country         TEXT        NOT NULL DEFAULT '',
    payment_id           TEXT        NOT NULL DEFAULT '',
    cancellation_reason  TEXT        NOT NULL DEFAULT '',
    tracking_number      TEXT        NOT NULL DEFAULT '',
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);
-- ListOrders walks (created_at, id) newest first, for everyone or for one user.
CREATE INDEX orders_created_id ON orders (created_at DESC, id DESC);
CREATE INDEX orders_user_created_id ON orders (user_id, created_at DESC, id DESC);

-- The lines of the newest event applied, in the order the event listed them.
CREATE TABLE order_lines (
    order_id             UUID        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position             INTEGER     NOT NULL,
    product_id           TEXT        NOT NULL,
    name                 TEXT        NOT NULL,
    quantity             INTEGER     NOT NULL,
    unit_price_currency  TEXT        NOT NULL,
    unit_price_units     BIGINT      NOT NULL,
    unit_price_nanos     INTEGER     NOT NULL,
    line_total_currency  TEXT        NOT NULL,
    line_total_units     BIGINT      NOT NULL,
    line_total_nanos     INTEGER     NOT NULL,
    PRIMARY KEY (order_id, position)
);

-- One row per order event version: every status once, whatever order the events came in.
-- No foreign key: a late event may bring history before the order row's newer state (and
-- the row always exists by then anyway, since every order event upserts it).
CREATE TABLE order_history (
    order_id             UUID        NOT NULL,
    version              BIGINT      NOT NULL,
    status               SMALLINT    NOT NULL,
    changed_at           TIMESTAMPTZ NOT NULL,
    note                 TEXT        NOT NULL DEFAULT '',
    PRIMARY KEY (order_id, version)
);

-- Payments as reported by the payment service's events, merged whatever their order
-- (a payment event may also arrive before any event of its order).
CREATE TABLE payments (
    payment_id           TEXT        PRIMARY KEY,
    order_id             UUID        NOT NULL,
    captured             BOOLEAN     NOT NULL DEFAULT false,
    failed               BOOLEAN     NOT NULL DEFAULT false,
    -- Captured amount, or the amount asked for when the card was refused.
    amount_currency      TEXT        NOT NULL DEFAULT '',
    amount_units         BIGINT      NOT NULL DEFAULT 0,
    amount_nanos         INTEGER     NOT NULL DEFAULT 0,
    refunded_currency    TEXT        NOT NULL DEFAULT '',
    refunded_units       BIGINT      NOT NULL DEFAULT 0,
    refunded_nanos       INTEGER     NOT NULL DEFAULT 0,
    fully_refunded       BOOLEAN     NOT NULL DEFAULT false,
    -- mercato.payment.v1.PaymentFailureReason and CardBrand numbers.
    failure_reason       SMALLINT    NOT NULL DEFAULT 0,
    card_brand           SMALLINT    NOT NULL DEFAULT 0,
    card_last4           TEXT        NOT NULL DEFAULT '',
    updated_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX payments_order ON payments (order_id);
