-- Payments, their refunds and the append-only ledger. Amounts are exact nano-units of the
-- payment's currency (1 unit = 10^9 nanos) in BIGINT, so sums and the "never refund more than
-- was captured" rule are plain integer arithmetic the database can check itself.
-- Only a card's brand and last four digits are ever stored; the number and CVC are not.

CREATE TABLE payments (
    id              UUID PRIMARY KEY,
    order_id        TEXT        NOT NULL,
    user_id         TEXT        NOT NULL,
    -- One payment per key: concurrent Charge calls with the same key meet on this index.
    idempotency_key TEXT        NOT NULL UNIQUE,
    currency        TEXT        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_nanos    BIGINT      NOT NULL CHECK (amount_nanos > 0),
    status          TEXT        NOT NULL CHECK (status IN
                        ('pending', 'captured', 'failed', 'partially_refunded', 'refunded')),
    failure_reason  TEXT,
    card_brand      TEXT        NOT NULL,
    card_last4      TEXT        NOT NULL CHECK (card_last4 ~ '^[0-9]{4}$'),
    captured_nanos  BIGINT      NOT NULL DEFAULT 0,
    refunded_nanos  BIGINT      NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Captured is all or nothing, and refunds never exceed it.
    CONSTRAINT payments_captured_all_or_nothing CHECK (captured_nanos IN (0, amount_nanos)),
    CONSTRAINT payments_refunded_within_captured
        CHECK (refunded_nanos >= 0 AND refunded_nanos <= captured_nanos),
    CONSTRAINT payments_failure_reason_iff_failed
        CHECK ((status = 'failed') = (failure_reason IS NOT NULL))
);
CREATE INDEX payments_order_id ON payments (order_id);

CREATE TABLE refunds (
    id              UUID PRIMARY KEY,
    payment_id      UUID        NOT NULL REFERENCES payments (id),
    amount_nanos    BIGINT      NOT NULL CHECK (amount_nanos > 0),
    reason          TEXT        NOT NULL DEFAULT '',
    -- Optional; unique per payment (NULLs are distinct, so refunds without a key never clash).
    idempotency_key TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT refunds_payment_key UNIQUE (payment_id, idempotency_key)
);
CREATE INDEX refunds_payment_id ON refunds (payment_id, created_at);

-- The money movements: one 'capture' per captured payment, one 'refund' per refund.
CREATE TABLE ledger_entries (
    id           UUID PRIMARY KEY,
    payment_id   UUID        NOT NULL REFERENCES payments (id),
    refund_id    UUID        UNIQUE REFERENCES refunds (id),
    kind         TEXT        NOT NULL CHECK (kind IN ('capture', 'refund')),
    currency     TEXT        NOT NULL,
    amount_nanos BIGINT      NOT NULL CHECK (amount_nanos > 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT ledger_entries_refund_has_refund_id CHECK ((kind = 'refund') = (refund_id IS NOT NULL))
);
CREATE UNIQUE INDEX ledger_entries_one_capture ON ledger_entries (payment_id) WHERE kind = 'capture';
CREATE INDEX ledger_entries_payment_id ON ledger_entries (payment_id);

-- Append-only: a correction is a new entry, never an edit of history.
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER ledger_entries_append_only
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
CREATE TRIGGER ledger_entries_no_truncate
    BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();
