//! The gRPC surface of the discount service: proto ↔ domain mapping and the admin RPCs; the
//! redemption transactions live in [`crate::redemptions`].

use chrono::{DateTime, Utc};
use mercato::pb::discount::v1 as pb;
use mercato::pb::discount::v1::coupon::Value;
use mercato::pb::discount::v1::discount_service_server::DiscountService;
use mercato::pb::discount::v1::quote_discount_response::Outcome;
use mercato_kernel::auth::Principal;
use mercato_kernel::db::{DbConn, DbPool};
use mercato_kernel::error::{self, FieldViolations};
use mercato_kernel::events::outbox::OutboxNotifier;
use mercato_kernel::pagination;
use mercato_kernel::time::to_timestamp;
use tonic::{Request, Response, Status};

use crate::domain::redemption::{parse_lookup_code, parse_order_id};
use crate::domain::{NewCoupon, QuoteRequest, RedeemRequest, discount_for};
use crate::redemptions::{self, RedemptionError};
use crate::store::{self, CouponCursor, CouponRow, RedemptionRow, WriteError};

/// The discount service.
#[derive(Clone)]
pub struct DiscountApi {
    db: DbPool,
    outbox: OutboxNotifier,
}

fn coupon_message(row: CouponRow) -> pb::Coupon {
    let value = match (row.amount_off(), row.percent_off) {
        (Some(off), _) => Some(Value::AmountOff(off.to_proto())),
        (None, Some(percent)) => Some(Value::PercentOff(percent)),
        (None, None) => None,
    };
    pb::Coupon {
        value,
        valid_from: row.valid_from.map(to_timestamp),
        valid_until: row.valid_until.map(to_timestamp),
        max_redemptions: row.max_redemptions,
        redemption_count: row.redemption_count,
        min_subtotal: row.min_subtotal().map(|m| m.to_proto()),
        description: row.description,
        create_time: Some(to_timestamp(row.created_at)),
        code: row.code,
    }
}

fn redemption_message(row: RedemptionRow) -> pb::Redemption {
    pb::Redemption {
        discount: row.discount().map(|d| d.to_proto()),
        status: row.status().to_proto().into(),
        create_time: Some(to_timestamp(row.created_at)),
        release_time: row.released_at.map(to_timestamp),
        code: row.code.unwrap_or_default(),
        order_id: row.order_id,
        user_id: row.user_id,
    }
}

/// Page-token position: creation time in microseconds (Postgres' precision, so the cursor
/// compares exactly) and code.
type TokenCursor = (i64, String);

fn cursor_from_token((micros, code): TokenCursor) -> Result<CouponCursor, Status> {
    let at = DateTime::<Utc>::from_timestamp_micros(micros)
        .ok_or_else(|| error::invalid_argument("page_token", "malformed or expired page token"))?;
    Ok((at, code))
}

impl DiscountApi {
    /// A discount service over `db`; `outbox` wakes the event relay after commits.
    pub fn new(db: DbPool, outbox: OutboxNotifier) -> Self {
        Self { db, outbox }
    }

    async fn conn(&self) -> Result<DbConn, Status> {
        self.db.get().await.map_err(error::pool)
    }
}

#[tonic::async_trait]
impl DiscountService for DiscountApi {
    async fn create_coupon(
        &self,
        request: Request<pb::CreateCouponRequest>,
    ) -> Result<Response<pb::CreateCouponResponse>, Status> {
        let admin = Principal::of(&request)?.subject.clone();
        let coupon = request
            .into_inner()
            .coupon
            .ok_or_else(|| error::invalid_argument("coupon", "is required"))?;
        let new = NewCoupon::parse(&coupon, Utc::now()).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        // No event: coupons are the discount service's own business until one is redeemed.
        let row = store::insert_coupon(&mut conn, &new)
            .await
            .map_err(|err| match err {
                WriteError::Duplicate => error::already_exists(
                    "COUPON_CODE_TAKEN",
                    format!("a coupon with code {} already exists", new.code.as_str()),
                ),
                WriteError::Db(err) => error::database(err),
            })?;
        tracing::info!(code = %row.code, %admin, "coupon created");
        Ok(Response::new(pb::CreateCouponResponse {
            coupon: Some(coupon_message(row)),
        }))
    }

    async fn get_coupon(
        &self,
        request: Request<pb::GetCouponRequest>,
    ) -> Result<Response<pb::GetCouponResponse>, Status> {
        let mut v = FieldViolations::new();
        let code = parse_lookup_code(&mut v, "code", &request.get_ref().code);
        let Some(code) = code else {
            return Err(v.into_status());
        };
        let mut conn = self.conn().await?;
        let row = store::coupon(&mut conn, &code, false)
            .await
            .map_err(error::database)?
            .ok_or_else(|| error::not_found("coupon", &code))?;
        Ok(Response::new(pb::GetCouponResponse {
            coupon: Some(coupon_message(row)),
        }))
    }

    async fn list_coupons(
        &self,
        request: Request<pb::ListCouponsRequest>,
    ) -> Result<Response<pb::ListCouponsResponse>, Status> {
        let req = request.into_inner();
        let limit = pagination::page_size(req.page_size)?;
        // No filters: the fingerprint only binds tokens to this listing.
        let fingerprint = pagination::fingerprint(&["coupons"]);
        let after = pagination::decode::<TokenCursor>(&req.page_token, fingerprint)?
            .map(cursor_from_token)
            .transpose()?;
        let mut conn = self.conn().await?;
        // One extra row tells whether another page exists.
        let mut rows = store::list_coupons(&mut conn, after.as_ref(), limit + 1)
            .await
            .map_err(error::database)?;
        let next_page_token = pagination::trim_page(&mut rows, limit)
            .map(|last| {
                pagination::encode(
                    fingerprint,
                    &(last.created_at.timestamp_micros(), last.code.clone()),
                )
            })
            .unwrap_or_default();
        Ok(Response::new(pb::ListCouponsResponse {
            coupons: rows.into_iter().map(coupon_message).collect(),
            next_page_token,
        }))
    }

    async fn quote_discount(
        &self,
        request: Request<pb::QuoteDiscountRequest>,
    ) -> Result<Response<pb::QuoteDiscountResponse>, Status> {
        let req = QuoteRequest::parse(request.get_ref()).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let coupon = store::coupon(&mut conn, &req.code, false)
            .await
            .map_err(error::database)?;
        let terms = coupon.as_ref().map(CouponRow::terms);
        let response = match discount_for(&req.code, terms.as_ref(), &req.subtotal, Utc::now()) {
            Ok(discount) => pb::QuoteDiscountResponse {
                outcome: Some(Outcome::Discount(discount.to_proto())),
                message: String::new(),
            },
            Err(inapplicable) => pb::QuoteDiscountResponse {
                outcome: Some(Outcome::InapplicableReason(
                    inapplicable.reason.to_proto().into(),
                )),
                message: inapplicable.message,
            },
        };
        Ok(Response::new(response))
    }

    async fn redeem_coupon(
        &self,
        request: Request<pb::RedeemCouponRequest>,
    ) -> Result<Response<pb::RedeemCouponResponse>, Status> {
        let req = RedeemRequest::parse(request.get_ref()).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let outcome = redemptions::redeem(&mut conn, &req)
            .await
            .map_err(RedemptionError::into_status)?;
        if outcome.changed {
            self.outbox.notify();
            tracing::info!(code = %req.code, order_id = %req.order_id, "coupon redeemed");
        }
        Ok(Response::new(pb::RedeemCouponResponse {
            redemption: Some(redemption_message(outcome.redemption)),
        }))
    }

    async fn release_redemption(
        &self,
        request: Request<pb::ReleaseRedemptionRequest>,
    ) -> Result<Response<pb::ReleaseRedemptionResponse>, Status> {
        let mut v = FieldViolations::new();
        let Some(order_id) = parse_order_id(&mut v, "order_id", &request.get_ref().order_id) else {
            return Err(v.into_status());
        };
        let mut conn = self.conn().await?;
        let outcome = redemptions::release(&mut conn, &order_id)
            .await
            .map_err(RedemptionError::into_status)?;
        if outcome.changed {
            self.outbox.notify();
            tracing::info!(%order_id, "coupon redemption released");
        }
        Ok(Response::new(pb::ReleaseRedemptionResponse {
            redemption: Some(redemption_message(outcome.redemption)),
        }))
    }
}
