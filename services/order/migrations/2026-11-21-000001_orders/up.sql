-- The order write model. Each order carries its own saga state: which step runs next and
-- who holds the lease to run it, so an interrupted checkout is resumed by any replica.
CREATE TABLE orders (
    id                  UUID PRIMARY KEY,
    user_id             TEXT        NOT NULL,
    idempotency_key     TEXT        NOT NULL,
    -- Fingerprint of what was asked for: a reused key with other content is refused.
    request_hash        TEXT        NOT NULL,
    status              TEXT        NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled', 'shipped')),
    currency            TEXT        NOT NULL,
    subtotal_nanos      BIGINT      NOT NULL CHECK (subtotal_nanos > 0),
    discount_nanos      BIGINT      NOT NULL DEFAULT 0 CHECK (discount_nanos >= 0),
    coupon_code         TEXT        NOT NULL DEFAULT '',
    ship_name           TEXT        NOT NULL,
    ship_line1          TEXT        NOT NULL,
    ship_line2          TEXT        NOT NULL DEFAULT '',
    ship_city           TEXT        NOT NULL,
    ship_postal_code    TEXT        NOT NULL,
    ship_country        TEXT        NOT NULL,
    payment_id          TEXT        NOT NULL DEFAULT '',
    cancellation_reason TEXT        NOT NULL DEFAULT '',
    cancelled_by        TEXT        NOT NULL DEFAULT '',
    tracking_number     TEXT        NOT NULL DEFAULT '',
    version             BIGINT      NOT NULL DEFAULT 1,
    saga_step           TEXT        NOT NULL CHECK (saga_step IN ('reserve', 'redeem', 'charge', 'commit', 'compensate', 'done')),
    saga_lease_until    TIMESTAMPTZ,
    saga_attempts       INTEGER     NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT orders_idempotency UNIQUE (user_id, idempotency_key),
    CONSTRAINT orders_discount_within_subtotal CHECK (discount_nanos <= subtotal_nanos)
);
-- The recovery sweep looks only at unfinished sagas.
CREATE INDEX orders_unfinished ON orders (saga_lease_until) WHERE saga_step <> 'done';

CREATE TABLE order_lines (
    order_id         UUID    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no          INTEGER NOT NULL,
    product_id       TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    unit_price_nanos BIGINT  NOT NULL CHECK (unit_price_nanos > 0),
    PRIMARY KEY (order_id, line_no)
);
