CREATE TABLE categories (
    id          UUID PRIMARY KEY,
    name        TEXT        NOT NULL,
    description TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX categories_name_key ON categories (lower(name));

CREATE TABLE products (
    id             UUID PRIMARY KEY,
    sku            TEXT        NOT NULL UNIQUE,
    name           TEXT        NOT NULL,
    description    TEXT        NOT NULL DEFAULT '',
    category_id    UUID        REFERENCES categories (id),
    price_currency TEXT        NOT NULL,
    price_units    BIGINT      NOT NULL,
    price_nanos    INTEGER     NOT NULL,
    image_url      TEXT        NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT products_price_positive CHECK (price_units > 0 OR (price_units = 0 AND price_nanos > 0))
);
-- Keyset pagination walks (name, id); the category filter uses the second index.
CREATE INDEX products_name_id ON products (name, id);
CREATE INDEX products_category_name_id ON products (category_id, name, id);
