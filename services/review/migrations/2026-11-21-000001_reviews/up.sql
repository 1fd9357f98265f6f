-- Who bought what, learned from the order events: one row per (order, product). Each row
-- keeps the highest order version applied, so a redelivered or late older event of the same
-- order changes nothing (an OrderConfirmed arriving after the OrderCancelled that followed it
-- leaves the row cancelled).
CREATE TABLE purchases (
    order_id      UUID        NOT NULL,
    product_id    UUID        NOT NULL,
    user_id       UUID        NOT NULL,
    order_version BIGINT      NOT NULL,
    status        TEXT        NOT NULL CHECK (status IN ('confirmed', 'shipped', 'cancelled')),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, product_id)
);
-- The eligibility check of CreateReview: does this user hold a non-cancelled purchase?
CREATE INDEX purchases_eligible ON purchases (user_id, product_id) WHERE status <> 'cancelled';

-- Display names from identity's UserRegistered events, shown as the author of a review.
CREATE TABLE authors (
    user_id      UUID PRIMARY KEY,
    display_name TEXT        NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The reviews themselves: this service's own data, never touched by a projection rebuild.
CREATE TABLE reviews (
    id          UUID PRIMARY KEY,
    product_id  UUID        NOT NULL,
    user_id     UUID        NOT NULL,
    author_name TEXT        NOT NULL DEFAULT '',
    rating      INTEGER     NOT NULL CHECK (rating BETWEEN 1 AND 5),
    title       TEXT        NOT NULL,
    body        TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One review per user and product; concurrent creates race on this index and one wins.
CREATE UNIQUE INDEX reviews_one_per_author ON reviews (user_id, product_id);
-- ListReviews walks (created_at, id) newest first; the summary groups by rating.
CREATE INDEX reviews_newest ON reviews (product_id, created_at DESC, id DESC);
CREATE INDEX reviews_rating ON reviews (product_id, rating);
