-- Transactional outbox: events written in the same transaction as the state change they
-- describe, published to JetStream by the relay, then marked published.
CREATE TABLE IF NOT EXISTS outbox (
    id            UUID PRIMARY KEY,
    subject       TEXT        NOT NULL,
    event_type    TEXT        NOT NULL,
    aggregate_id  TEXT        NOT NULL,
    envelope      BYTEA       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at  TIMESTAMPTZ,
    attempts      INTEGER     NOT NULL DEFAULT 0,
    last_error    TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE published_at IS NULL;

-- Events a consumer has applied, recorded in the same transaction as the effect, so a
-- redelivered event is recognised and skipped.
CREATE TABLE IF NOT EXISTS processed_events (
    consumer     TEXT        NOT NULL,
    event_id     UUID        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
