-- One row per notification. The id is the id of the event it was written from, so a
-- redelivered or replayed event (`--rebuild`) can never write a second one.
CREATE TABLE notifications (
    id         UUID PRIMARY KEY,
    user_id    TEXT        NOT NULL,
    -- NotificationKind name without its prefix, e.g. 'ORDER_CONFIRMED'.
    kind       TEXT        NOT NULL,
    title      TEXT        NOT NULL CHECK (char_length(title) <= 200),
    body       TEXT        NOT NULL CHECK (char_length(body) <= 2000),
    order_id   TEXT        NOT NULL DEFAULT '',
    -- When the event happened (its own time), which orders a user's list: events may arrive
    -- out of order, so arrival order would misplace them.
    created_at TIMESTAMPTZ NOT NULL,
    read_at    TIMESTAMPTZ,
    -- When the row was written; for operators only.
    written_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Keyset pagination of one user's list walks (created_at, id) backwards; the partial index
-- serves the unread filter and the unread count.
CREATE INDEX notifications_user_time ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_user_unread ON notifications (user_id, created_at DESC, id DESC)
    WHERE read_at IS NULL;
