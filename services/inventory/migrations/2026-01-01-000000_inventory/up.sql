-- Stock per product. The CHECKs are the last line of defence against overselling: a bug in
-- the guarded updates fails the transaction instead of corrupting the counts.
CREATE TABLE stock (
    product_id UUID PRIMARY KEY,
    on_hand    INTEGER     NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved   INTEGER     NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One reservation per order. A RELEASED row without items is a tombstone: the order was
-- compensated before its reservation arrived, and a late ReserveStock must not hold stock.
CREATE TABLE reservations (
    order_id   TEXT        PRIMARY KEY CHECK (order_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    status     TEXT        NOT NULL CHECK (status IN ('HELD', 'RELEASED', 'COMMITTED')),
    -- True once committed units went back on hand (a confirmed order was cancelled).
    restocked  BOOLEAN     NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE reservation_items (
    order_id   TEXT    NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
    -- Only products with a stock row can be reserved, so the reference always holds.
    product_id UUID    NOT NULL REFERENCES stock (product_id),
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);
