-- Money is stored as catalog does: <x>_currency, <x>_units, <x>_nanos (all NULL when unset).
CREATE TABLE coupons (
    -- Upper case; lookups upper-case the requested code, so codes are case-insensitive.
    code                  TEXT        PRIMARY KEY,
    percent_off           INTEGER,
    amount_off_currency   TEXT,
    amount_off_units      BIGINT,
    amount_off_nanos      INTEGER,
    valid_from            TIMESTAMPTZ,
    valid_until           TIMESTAMPTZ,
    -- 0 means unlimited.
    max_redemptions       INTEGER     NOT NULL DEFAULT 0,
    -- Redemptions currently REDEEMED; changed only in the transaction that redeems or releases.
    redemption_count      INTEGER     NOT NULL DEFAULT 0,
    min_subtotal_currency TEXT,
    min_subtotal_units    BIGINT,
    min_subtotal_nanos    INTEGER,
    description           TEXT        NOT NULL DEFAULT '',
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT coupons_code_format CHECK (code ~ '^[A-Z0-9_-]{3,32}$'),
    CONSTRAINT coupons_one_value CHECK ((percent_off IS NULL) <> (amount_off_units IS NULL)),
    CONSTRAINT coupons_percent_range CHECK (percent_off BETWEEN 1 AND 100),
    CONSTRAINT coupons_amount_off_whole CHECK (
        (amount_off_currency IS NULL) = (amount_off_units IS NULL)
        AND (amount_off_units IS NULL) = (amount_off_nanos IS NULL)),
    CONSTRAINT coupons_amount_off_positive CHECK (
        amount_off_units > 0 OR (amount_off_units = 0 AND amount_off_nanos > 0)),
    CONSTRAINT coupons_min_subtotal_whole CHECK (
        (min_subtotal_currency IS NULL) = (min_subtotal_units IS NULL)
        AND (min_subtotal_units IS NULL) = (min_subtotal_nanos IS NULL)),
    CONSTRAINT coupons_min_subtotal_not_negative CHECK (
        min_subtotal_units >= 0 AND min_subtotal_nanos >= 0),
    CONSTRAINT coupons_window CHECK (valid_until > valid_from),
    CONSTRAINT coupons_max_not_negative CHECK (max_redemptions >= 0),
    -- The last line of defence against over-redemption; the service checks before updating.
    CONSTRAINT coupons_count_in_range CHECK (
        redemption_count >= 0
        AND (max_redemptions = 0 OR redemption_count <= max_redemptions))
);
-- ListCoupons walks (created_at, code) newest first.
CREATE INDEX coupons_created_at_code ON coupons (created_at DESC, code DESC);

CREATE TABLE redemptions (
    -- One redemption per order: the idempotency key of RedeemCoupon.
    order_id          TEXT        PRIMARY KEY,
    -- NULL only for a tombstone: a release that arrived before (or instead of) the redeem.
    code              TEXT        REFERENCES coupons (code),
    user_id           TEXT        NOT NULL,
    discount_currency TEXT,
    discount_units    BIGINT,
    discount_nanos    INTEGER,
    status            TEXT        NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    released_at       TIMESTAMPTZ,
    CONSTRAINT redemptions_status CHECK (status IN ('REDEEMED', 'RELEASED')),
    CONSTRAINT redemptions_released_at CHECK ((status = 'RELEASED') = (released_at IS NOT NULL)),
    CONSTRAINT redemptions_tombstone_released CHECK (code IS NOT NULL OR status = 'RELEASED'),
    CONSTRAINT redemptions_discount_whole CHECK (
        (discount_currency IS NULL) = (discount_units IS NULL)
        AND (discount_units IS NULL) = (discount_nanos IS NULL)
        AND (code IS NULL) = (discount_units IS NULL))
);
CREATE INDEX redemptions_code ON redemptions (code);
