//! RedeemCoupon and ReleaseRedemption: each is one transaction in which the usage count, the
//! redemption and the outbox event change together.
//!
//! Locks are always taken in the same order, the order's redemption row first and the
//! coupon's row second, so concurrent redeems and releases never deadlock. Concurrent
//! redeems of one coupon queue on its row lock (`SELECT … FOR UPDATE`) and each decides on
//! the count the previous one committed, so the coupon is never over-redeemed.

use std::collections::HashMap;

use chrono::Utc;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use mercato::pb::discount::v1 as pb;
use mercato_kernel::error;
use mercato_kernel::events::outbox;
use mercato_kernel::time::to_timestamp;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::domain::{
    Inapplicable, RedeemRequest, RedemptionStatus, Replay, discount_for, redemption::replay,
};
use crate::store::{self, CouponRow, NewRedemption, RedemptionRow};

/// Event source and outbox domain.
pub const SOURCE: &str = "discount";

/// Transactions a request runs before it gives up losing races for the same order. A race
/// is lost at most once per order in practice: the retry finds the winner's row.
const ATTEMPTS: usize = 3;

/// Why a redeem or release did not go through.
#[derive(Debug, thiserror::Error)]
pub enum RedemptionError {
    /// The coupon does not apply.
    #[error(transparent)]
    Inapplicable(Inapplicable),
    /// The order's redemption was released; the order may not redeem again.
    #[error("the coupon redemption of order {0} was released")]
    Released(String),
    /// The order already redeemed another coupon.
    #[error("order {order_id} already redeemed coupon {code}")]
    OtherCode {
        /// The order.
        order_id: String,
        /// The coupon it redeemed.
        code: String,
    },
    /// A concurrent request for the same order committed first; start over.
    #[error("a concurrent request for the same order won")]
    Raced,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl RedemptionError {
    /// The one mapping of these errors to what the caller sees.
    pub fn into_status(self) -> Status {
        match self {
            RedemptionError::Inapplicable(inapplicable) => inapplicable_status(inapplicable),
            RedemptionError::Released(_) => {
                error::failed_precondition("REDEMPTION_RELEASED", self.to_string())
            }
            RedemptionError::OtherCode { .. } => {
                error::failed_precondition("REDEMPTION_MISMATCH", self.to_string())
            }
            RedemptionError::Raced => error::with_reason(
                Code::Aborted,
                "CONFLICT",
                "concurrent requests for the same order, retry",
            ),
            RedemptionError::Db(err) => error::database(err),
        }
    }
}

/// FAILED_PRECONDITION whose ErrorInfo reason is "COUPON_" + the reason, with the proto enum
/// name in the metadata (`inapplicable_reason`) for clients that switch on the enum.
fn inapplicable_status(inapplicable: Inapplicable) -> Status {
    let metadata = HashMap::from([(
        "inapplicable_reason".to_owned(),
        inapplicable.reason.to_proto().as_str_name().to_owned(),
    )]);
    Status::with_error_details(
        Code::FailedPrecondition,
        inapplicable.message,
        ErrorDetails::with_error_info(inapplicable.reason.error_reason(), error::DOMAIN, metadata),
    )
}

/// A redemption after a redeem or release, and whether this request changed it (an event
/// was written).
#[derive(Debug)]
pub struct Outcome {
    /// The redemption as stored.
    pub redemption: RedemptionRow,
    /// False for a replay (or a tombstone, which publishes nothing).
    pub changed: bool,
}

/// Redeems `req.code` for `req.order_id`, idempotently.
pub async fn redeem(
    conn: &mut AsyncPgConnection,
    req: &RedeemRequest,
) -> Result<Outcome, RedemptionError> {
    let mut attempt = 1;
    loop {
        match conn
            .transaction(async |conn| redeem_once(conn, req).await)
            .await
        {
            Err(RedemptionError::Raced) if attempt < ATTEMPTS => attempt += 1,
            outcome => return outcome,
        }
    }
}

async fn redeem_once(
    conn: &mut AsyncPgConnection,
    req: &RedeemRequest,
) -> Result<Outcome, RedemptionError> {
    if let Some(existing) = store::redemption(conn, &req.order_id, true).await? {
        return match replay(existing.status(), existing.code.as_deref(), &req.code) {
            Replay::Same => Ok(Outcome {
                redemption: existing,
                changed: false,
            }),
            Replay::Released => Err(RedemptionError::Released(req.order_id.clone())),
            Replay::OtherCode => Err(RedemptionError::OtherCode {
                order_id: req.order_id.clone(),
                code: existing.code.unwrap_or_default(),
            }),
        };
    }
    let coupon = store::coupon(conn, &req.code, true).await?;
    let terms = coupon.as_ref().map(CouponRow::terms);
    let now = Utc::now();
    let discount = discount_for(&req.code, terms.as_ref(), &req.subtotal, now)
        .map_err(RedemptionError::Inapplicable)?;
    let count = store::add_to_count(conn, &req.code, 1).await?;
    let redemption = store::insert_redemption(
        conn,
        &NewRedemption {
            order_id: &req.order_id,
            code: Some(&req.code),
            user_id: &req.user_id,
            discount: Some(&discount),
            status: RedemptionStatus::Redeemed,
            at: now,
        },
    )
    .await?
    .ok_or(RedemptionError::Raced)?;
    let event = pb::CouponRedeemed {
        code: req.code.clone(),
        order_id: req.order_id.clone(),
        user_id: req.user_id.clone(),
        discount: Some(discount.to_proto()),
        redemption_count: count,
        redeem_time: Some(to_timestamp(redemption.created_at)),
    };
    outbox::enqueue(conn, SOURCE, &req.order_id, &event).await?;
    Ok(Outcome {
        redemption,
        changed: true,
    })
}

/// Releases the redemption of `order_id`, idempotently. An order with no redemption gets a
/// RELEASED tombstone, so a RedeemCoupon arriving late (after the order was compensated)
/// cannot use the coupon any more.
pub async fn release(
    conn: &mut AsyncPgConnection,
    order_id: &str,
) -> Result<Outcome, RedemptionError> {
    let mut attempt = 1;
    loop {
        match conn
            .transaction(async |conn| release_once(conn, order_id).await)
            .await
        {
            Err(RedemptionError::Raced) if attempt < ATTEMPTS => attempt += 1,
            outcome => return outcome,
        }
    }
}

async fn release_once(
    conn: &mut AsyncPgConnection,
    order_id: &str,
) -> Result<Outcome, RedemptionError> {
    let existing = match store::redemption(conn, order_id, true).await? {
        Some(existing) => existing,
        None => {
            let tombstone = NewRedemption {
                order_id,
                code: None,
                user_id: "",
                discount: None,
                status: RedemptionStatus::Released,
                at: Utc::now(),
            };
            let redemption = store::insert_redemption(conn, &tombstone)
                .await?
                .ok_or(RedemptionError::Raced)?;
            return Ok(Outcome {
                redemption,
                changed: false,
            });
        }
    };
    if existing.status() == RedemptionStatus::Released {
        return Ok(Outcome {
            redemption: existing,
            changed: false,
        });
    }
    let redemption = store::mark_released(conn, order_id).await?;
    // A REDEEMED row always names its coupon (a CHECK of the table).
    let code = redemption.code.clone().unwrap_or_default();
    let count = store::add_to_count(conn, &code, -1).await?;
    let event = pb::CouponRedemptionReleased {
        code,
        order_id: order_id.to_owned(),
        user_id: redemption.user_id.clone(),
        discount: redemption.discount().map(|d| d.to_proto()),
        redemption_count: count,
        release_time: redemption.released_at.map(to_timestamp),
    };
    outbox::enqueue(conn, SOURCE, order_id, &event).await?;
    Ok(Outcome {
        redemption,
        changed: true,
    })
}
