//! The discount service's queries, each on the caller's connection (and transaction).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use mercato_kernel::money::Amount;

use crate::domain::{Benefit, CouponTerms, NewCoupon, RedemptionStatus};
use crate::schema::{coupons, redemptions};

/// A stored coupon.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = coupons)]
pub struct CouponRow {
    pub code: String,
    pub percent_off: Option<i32>,
    pub amount_off_currency: Option<String>,
    pub amount_off_units: Option<i64>,
    pub amount_off_nanos: Option<i32>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub max_redemptions: i32,
    pub redemption_count: i32,
    pub min_subtotal_currency: Option<String>,
    pub min_subtotal_units: Option<i64>,
    pub min_subtotal_nanos: Option<i32>,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

/// An amount from nullable stored parts; `None` unless all three are set.
fn money(currency: &Option<String>, units: Option<i64>, nanos: Option<i32>) -> Option<Amount> {
    match (currency, units, nanos) {
        (Some(currency), Some(units), Some(nanos)) => {
            Some(Amount::from_parts(currency, units, nanos))
        }
        _ => None,
    }
}

/// An optional amount as nullable stored parts.
fn parts(amount: Option<&Amount>) -> (Option<&str>, Option<i64>, Option<i32>) {
    match amount {
        Some(a) => (Some(a.currency()), Some(a.units()), Some(a.nanos())),
        None => (None, None, None),
    }
}

impl CouponRow {
    /// The fixed amount off, when the coupon has one.
    pub fn amount_off(&self) -> Option<Amount> {
        money(
            &self.amount_off_currency,
            self.amount_off_units,
            self.amount_off_nanos,
        )
    }

    /// The smallest subtotal, when the coupon has one.
    pub fn min_subtotal(&self) -> Option<Amount> {
        money(
            &self.min_subtotal_currency,
            self.min_subtotal_units,
            self.min_subtotal_nanos,
        )
    }

    /// The rules applicability is decided on. The table's CHECKs guarantee exactly one of
    /// percent_off and amount_off; a row breaking that would give no discount rather than
    /// fail the request.
    pub fn terms(&self) -> CouponTerms {
        let benefit = match (self.percent_off, self.amount_off()) {
            (_, Some(off)) => Benefit::AmountOff(off),
            (Some(percent), None) => Benefit::PercentOff(u32::try_from(percent).unwrap_or(0)),
            (None, None) => Benefit::PercentOff(0),
        };
        CouponTerms {
            code: self.code.clone(),
            benefit,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            max_redemptions: self.max_redemptions,
            redemption_count: self.redemption_count,
            min_subtotal: self.min_subtotal(),
        }
    }
}

/// A stored redemption (or tombstone).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = redemptions)]
pub struct RedemptionRow {
    pub order_id: String,
    pub code: Option<String>,
    pub user_id: String,
    pub discount_currency: Option<String>,
    pub discount_units: Option<i64>,
    pub discount_nanos: Option<i32>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
}

impl RedemptionRow {
    /// The amount taken off; `None` for a tombstone.
    pub fn discount(&self) -> Option<Amount> {
        money(
            &self.discount_currency,
            self.discount_units,
            self.discount_nanos,
        )
    }

    /// The status.
    pub fn status(&self) -> RedemptionStatus {
        RedemptionStatus::from_db(&self.status)
    }
}

/// A coupon write that broke a uniqueness rule.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The code is taken.
    #[error("duplicate")]
    Duplicate,
    /// Anything else.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Inserts a coupon with no uses.
pub async fn insert_coupon(
    conn: &mut AsyncPgConnection,
    coupon: &NewCoupon,
) -> Result<CouponRow, WriteError> {
    let (percent_off, amount_off) = match &coupon.benefit {
        Benefit::PercentOff(p) => (Some(i32::try_from(*p).unwrap_or(i32::MAX)), None),
        Benefit::AmountOff(a) => (None, Some(a)),
    };
    let (off_currency, off_units, off_nanos) = parts(amount_off);
    let (min_currency, min_units, min_nanos) = parts(coupon.min_subtotal.as_ref());
    diesel::insert_into(coupons::table)
        .values((
            coupons::code.eq(coupon.code.as_str()),
            coupons::percent_off.eq(percent_off),
            coupons::amount_off_currency.eq(off_currency),
            coupons::amount_off_units.eq(off_units),
            coupons::amount_off_nanos.eq(off_nanos),
            coupons::valid_from.eq(coupon.valid_from),
            coupons::valid_until.eq(coupon.valid_until),
            coupons::max_redemptions.eq(coupon.max_redemptions),
            coupons::min_subtotal_currency.eq(min_currency),
            coupons::min_subtotal_units.eq(min_units),
            coupons::min_subtotal_nanos.eq(min_nanos),
            coupons::description.eq(&coupon.description),
        ))
        .returning(CouponRow::as_returning())
        .get_result(conn)
        .await
        .map_err(|err| match err {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => WriteError::Duplicate,
            other => WriteError::Db(other),
        })
}

/// The coupon with `code` (upper case), locked for update when `lock`.
pub async fn coupon(
    conn: &mut AsyncPgConnection,
    code: &str,
    lock: bool,
) -> QueryResult<Option<CouponRow>> {
    let query = coupons::table.find(code).select(CouponRow::as_select());
    if lock {
        query.for_update().first(conn).await.optional()
    } else {
        query.first(conn).await.optional()
    }
}

/// Adds `delta` to a coupon's usage count; returns the new count. The table's CHECK refuses
/// a count outside 0..=max_redemptions, so a bug elsewhere cannot over-redeem.
pub async fn add_to_count(
    conn: &mut AsyncPgConnection,
    code: &str,
    delta: i32,
) -> QueryResult<i32> {
    diesel::update(coupons::table.find(code))
        .set(coupons::redemption_count.eq(coupons::redemption_count + delta))
        .returning(coupons::redemption_count)
        .get_result(conn)
        .await
}

/// Position in the newest-first listing: the last row's creation time and code.
pub type CouponCursor = (DateTime<Utc>, String);

/// One page of coupons, newest first (ties by code, descending), after `after`.
pub async fn list_coupons(
    conn: &mut AsyncPgConnection,
    after: Option<&CouponCursor>,
    limit: i64,
) -> QueryResult<Vec<CouponRow>> {
    let mut query = coupons::table.select(CouponRow::as_select()).into_boxed();
    if let Some((created_at, code)) = after {
        query = query.filter(
            coupons::created_at.lt(*created_at).or(coupons::created_at
                .eq(*created_at)
                .and(coupons::code.lt(code.clone()))),
        );
    }
    query
        .order((coupons::created_at.desc(), coupons::code.desc()))
        .limit(limit)
        .load(conn)
        .await
}

/// The redemption of `order_id`, locked for update when `lock`.
pub async fn redemption(
    conn: &mut AsyncPgConnection,
    order_id: &str,
    lock: bool,
) -> QueryResult<Option<RedemptionRow>> {
    let query = redemptions::table
        .find(order_id)
        .select(RedemptionRow::as_select());
    if lock {
        query.for_update().first(conn).await.optional()
    } else {
        query.first(conn).await.optional()
    }
}

/// A redemption to record.
#[derive(Debug)]
pub struct NewRedemption<'a> {
    /// The order.
    pub order_id: &'a str,
    /// The coupon; `None` for a tombstone.
    pub code: Option<&'a str>,
    /// The buyer; empty for a tombstone.
    pub user_id: &'a str,
    /// Amount taken off; `None` for a tombstone.
    pub discount: Option<&'a Amount>,
    /// REDEEMED, or RELEASED for a tombstone.
    pub status: RedemptionStatus,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// Inserts a redemption; `None` when the order already has one (a concurrent request
/// committed it first: the caller starts over and finds it).
pub async fn insert_redemption(
    conn: &mut AsyncPgConnection,
    new: &NewRedemption<'_>,
) -> QueryResult<Option<RedemptionRow>> {
    let (currency, units, nanos) = parts(new.discount);
    // A tombstone is released the moment it is created.
    let released_at = (new.status == RedemptionStatus::Released).then_some(new.at);
    diesel::insert_into(redemptions::table)
        .values((
            redemptions::order_id.eq(new.order_id),
            redemptions::code.eq(new.code),
            redemptions::user_id.eq(new.user_id),
            redemptions::discount_currency.eq(currency),
            redemptions::discount_units.eq(units),
            redemptions::discount_nanos.eq(nanos),
            redemptions::status.eq(new.status.as_db()),
            redemptions::created_at.eq(new.at),
            redemptions::released_at.eq(released_at),
        ))
        .on_conflict_do_nothing()
        .returning(RedemptionRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Marks a redemption RELEASED now.
pub async fn mark_released(
    conn: &mut AsyncPgConnection,
    order_id: &str,
) -> QueryResult<RedemptionRow> {
    diesel::update(redemptions::table.find(order_id))
        .set((
            redemptions::status.eq(RedemptionStatus::Released.as_db()),
            redemptions::released_at.eq(diesel::dsl::now),
        ))
        .returning(RedemptionRow::as_returning())
        .get_result(conn)
        .await
}
