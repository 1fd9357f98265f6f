//! Discount integration tests against the real Postgres and NATS, with a real identity
//! service issuing the tokens. Each test has its own databases and NATS namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub use mercato_testkit::{assert_code, violated_fields};

mod coupons;
mod events;
mod quotes;
mod redemptions;

use mercato::pb::discount::v1::discount_service_client::DiscountServiceClient;
use mercato::pb::discount::v1::{
    Coupon, CreateCouponRequest, GetCouponRequest, QuoteDiscountRequest, QuoteDiscountResponse,
    RedeemCouponRequest, Redemption, ReleaseRedemptionRequest, coupon,
};
use mercato::pb::r#type::v1::Money;
use mercato_testkit::{TestService, authed};
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

/// A discount service wired to its own identity, with an admin and a service-account token.
pub struct TestDiscount(pub TestService);

impl std::ops::Deref for TestDiscount {
    type Target = TestService;
    fn deref(&self) -> &TestService {
        &self.0
    }
}

impl TestDiscount {
    pub async fn start() -> Self {
        Self(TestService::start("discount", discount::start).await)
    }

    pub async fn client(&self) -> DiscountServiceClient<Channel> {
        DiscountServiceClient::new(mercato_testkit::channel(self.running.grpc_addr).await)
    }

    /// Creates `coupon` as the admin.
    pub async fn create(&self, coupon: Coupon) -> Coupon {
        let request = CreateCouponRequest {
            coupon: Some(coupon),
        };
        self.client()
            .await
            .create_coupon(authed(request, &self.admin))
            .await
            .unwrap()
            .into_inner()
            .coupon
            .unwrap()
    }

    /// The coupon as stored now.
    pub async fn get(&self, code: &str) -> Coupon {
        let request = GetCouponRequest { code: code.into() };
        self.client()
            .await
            .get_coupon(authed(request, &self.admin))
            .await
            .unwrap()
            .into_inner()
            .coupon
            .unwrap()
    }

    /// QuoteDiscount as a service account.
    pub async fn quote(&self, code: &str, subtotal: Money) -> QuoteDiscountResponse {
        let request = QuoteDiscountRequest {
            code: code.into(),
            subtotal: Some(subtotal),
        };
        self.client()
            .await
            .quote_discount(authed(request, &self.service))
            .await
            .unwrap()
            .into_inner()
    }

    /// RedeemCoupon as a service account.
    pub async fn redeem(
        &self,
        code: &str,
        order_id: &str,
        subtotal: Money,
    ) -> Result<Redemption, tonic::Status> {
        let request = RedeemCouponRequest {
            code: code.into(),
            order_id: order_id.into(),
            user_id: "user-1".into(),
            subtotal: Some(subtotal),
        };
        self.client()
            .await
            .redeem_coupon(authed(request, &self.service))
            .await
            .map(|r| r.into_inner().redemption.unwrap())
    }

    /// ReleaseRedemption as a service account.
    pub async fn release(&self, order_id: &str) -> Redemption {
        let request = ReleaseRedemptionRequest {
            order_id: order_id.into(),
        };
        self.client()
            .await
            .release_redemption(authed(request, &self.service))
            .await
            .unwrap()
            .into_inner()
            .redemption
            .unwrap()
    }
}

pub fn money(currency: &str, cents: i64) -> Money {
    Money {
        currency_code: currency.into(),
        units: cents / 100,
        nanos: i32::try_from(cents % 100).unwrap() * 10_000_000,
    }
}

pub fn eur(cents: i64) -> Money {
    money("EUR", cents)
}

/// A coupon taking `percent` % off, with no other limits.
pub fn percent_off(code: &str, percent: i32) -> Coupon {
    Coupon {
        code: code.into(),
        value: Some(coupon::Value::PercentOff(percent)),
        ..Default::default()
    }
}

/// A coupon taking a fixed amount off, with no other limits.
pub fn amount_off(code: &str, off: Money) -> Coupon {
    Coupon {
        code: code.into(),
        value: Some(coupon::Value::AmountOff(off)),
        ..Default::default()
    }
}

/// `ErrorInfo.reason` of a failed call.
pub fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// A timestamp `days` from now (negative: in the past).
pub fn days_from_now(days: i64) -> prost_types::Timestamp {
    mercato_kernel::time::to_timestamp(chrono::Utc::now() + chrono::Duration::days(days))
}
