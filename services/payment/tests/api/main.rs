//! Payment integration tests against the real Postgres and NATS, with a real identity service
//! issuing the tokens. Each test has its own databases and NATS namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod charges;
mod privacy_and_events;
mod refunds;

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use mercato::pb::payment::v1::payment_service_client::PaymentServiceClient;
use mercato::pb::payment::v1::{Card, ChargeRequest, Payment, RefundRequest, RefundResponse};
use mercato::pb::r#type::v1::Money;
use mercato_testkit::{TestService, authed};
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

/// Captures.
pub const VISA_OK: &str = "4242424242424242";
/// Declined.
pub const VISA_DECLINED: &str = "4000000000000002";
/// Insufficient funds.
pub const VISA_NO_FUNDS: &str = "4000000000009995";

/// A payment service wired to its own identity, with a service and an admin token.
pub struct TestPayment(pub TestService);

impl std::ops::Deref for TestPayment {
    type Target = TestService;
    fn deref(&self) -> &TestService {
        &self.0
    }
}

impl TestPayment {
    pub async fn start() -> Self {
        Self(TestService::start("payment", payment::start).await)
    }

    pub async fn client(&self) -> PaymentServiceClient<Channel> {
        PaymentServiceClient::new(mercato_testkit::channel(self.running.grpc_addr).await)
    }

    /// Charges as the service account; panics unless the RPC succeeds.
    pub async fn charge(&self, request: ChargeRequest) -> Payment {
        self.client()
            .await
            .charge(authed(request, &self.service))
            .await
            .unwrap()
            .into_inner()
            .payment
            .unwrap()
    }

    /// A captured payment of `cents` euro cents.
    pub async fn captured(&self, cents: i64) -> Payment {
        let key = mercato_testkit::unique_id();
        self.charge(charge_request(
            &format!("order-{key}"),
            &key,
            cents,
            VISA_OK,
        ))
        .await
    }

    /// Refunds as the service account.
    pub async fn refund(&self, request: RefundRequest) -> Result<RefundResponse, tonic::Status> {
        self.client()
            .await
            .refund(authed(request, &self.service))
            .await
            .map(tonic::Response::into_inner)
    }

    /// A direct connection to the service's database, for checks the API cannot make.
    pub async fn sql(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.database.url)
            .await
            .unwrap()
    }

    /// The payment's ledger as (kind, cents).
    pub async fn ledger(&self, payment_id: &str) -> Vec<(String, i64)> {
        let mut conn = self.sql().await;
        payment::store::ledger_of(&mut conn, payment_id.parse().unwrap())
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.amount_nanos / 10_000_000))
            .collect()
    }
}

pub fn eur(cents: i64) -> Money {
    Money {
        currency_code: "EUR".into(),
        units: cents / 100,
        nanos: i32::try_from(cents % 100).unwrap() * 10_000_000,
    }
}

pub fn card(number: &str) -> Card {
    Card {
        number: number.into(),
        exp_month: 12,
        exp_year: 2099,
        cvc: "123".into(),
        holder_name: "Ada Lovelace".into(),
    }
}

pub fn charge_request(order_id: &str, key: &str, cents: i64, number: &str) -> ChargeRequest {
    ChargeRequest {
        order_id: order_id.into(),
        user_id: "user-1".into(),
        amount: Some(eur(cents)),
        card: Some(card(number)),
        idempotency_key: key.into(),
    }
}

pub fn refund_request(payment_id: &str, cents: Option<i64>, key: &str) -> RefundRequest {
    RefundRequest {
        id: payment_id.into(),
        amount: cents.map(eur),
        reason: "order cancelled".into(),
        idempotency_key: key.into(),
    }
}

/// The ErrorInfo reason of a status.
pub fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}
