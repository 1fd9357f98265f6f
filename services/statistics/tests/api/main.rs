//! statistics integration tests against the real Postgres and NATS, with a real identity
//! service issuing the tokens. Order events are published straight onto the test's own
//! streams (no order service runs); each test has its own databases and NATS namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod consumption;
mod convergence;
mod sales;
mod top_products;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mercato::pb::events::v1::Envelope;
use mercato::pb::order::v1::{
    OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, OrderShipped, OrderStatus,
};
use mercato::pb::statistics::v1::statistics_service_client::StatisticsServiceClient;
use mercato::pb::statistics::v1::{
    GetSalesReportRequest, GetSalesReportResponse, GetTopProductsRequest, GetTopProductsResponse,
    Granularity, SalesBucket,
};
use mercato::pb::r#type::v1::Money;
use mercato_kernel::time::to_timestamp;
use mercato_testkit::{TestService, authed};
use prost::Message as _;
use tonic::transport::Channel;

pub use mercato_testkit::{assert_code, violated_fields};

/// The statistics service beside its own identity, with fast redelivery so dead-letter tests
/// finish quickly.
pub struct TestStats {
    pub svc: TestService,
    /// Marker sales published by [`TestStats::sync`] so far.
    markers: AtomicI64,
}

impl std::ops::Deref for TestStats {
    type Target = TestService;
    fn deref(&self) -> &TestService {
        &self.svc
    }
}

/// Where [`TestStats::sync`] puts its marker sales: far from every test's own period.
const MARKER_START: &str = "2001-01-01T00:00:00Z";

pub fn fast_redelivery(config: &mut mercato_kernel::ServiceConfig) {
    config.events.max_attempts = 3;
    config.events.backoff = Duration::from_millis(50);
}

impl TestStats {
    pub async fn start() -> Self {
        let svc = TestService::start("statistics", |mut config| {
            fast_redelivery(&mut config);
            statistics::start(config, statistics::Settings::default())
        })
        .await;
        Self {
            svc,
            markers: AtomicI64::new(0),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.svc.identity.namespace
    }

    pub async fn client(&self) -> StatisticsServiceClient<Channel> {
        StatisticsServiceClient::new(mercato_testkit::channel(self.svc.running.grpc_addr).await)
    }

    /// GetSalesReport as the admin.
    pub async fn try_report(
        &self,
        start: &str,
        end: &str,
        granularity: Granularity,
    ) -> Result<GetSalesReportResponse, tonic::Status> {
        let request = GetSalesReportRequest {
            start_time: Some(ts(start)),
            end_time: Some(ts(end)),
            granularity: granularity as i32,
        };
        self.client()
            .await
            .get_sales_report(authed(request, &self.svc.admin))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn report(
        &self,
        start: &str,
        end: &str,
        granularity: Granularity,
    ) -> GetSalesReportResponse {
        self.try_report(start, end, granularity).await.unwrap()
    }

    /// The whole range as one bucket (DAY granularity).
    pub async fn total(&self, start: &str, end: &str) -> SalesBucket {
        self.report(start, end, Granularity::Day)
            .await
            .total
            .unwrap()
    }

    /// GetTopProducts as the admin.
    pub async fn top(&self, request: GetTopProductsRequest) -> GetTopProductsResponse {
        self.client()
            .await
            .get_top_products(authed(request, &self.svc.admin))
            .await
            .unwrap()
            .into_inner()
    }

    /// Polls the total of `[start, end)` every 50 ms (up to 10 s) until it has `orders`
    /// orders; returns it.
    pub async fn wait_for_orders(&self, start: &str, end: &str, orders: i64) -> SalesBucket {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let total = self.total(start, end).await;
            if total.order_count == orders {
                return total;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {orders} orders in [{start}, {end}), still {total:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Returns once every order event published before has been projected: publishes one
    /// more confirmed sale in the marker period and waits for it (the order stream is
    /// consumed in order).
    pub async fn sync(&self) {
        let n = self.markers.fetch_add(1, Ordering::SeqCst) + 1;
        let marker = Order::new(&[("marker", "Marker", 1, 100)]);
        marker.publish_confirmed(self, MARKER_START).await;
        self.wait_for_orders(MARKER_START, "2001-01-31T00:00:00Z", n)
            .await;
    }
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

pub fn ts(rfc3339: &str) -> prost_types::Timestamp {
    to_timestamp(at(rfc3339))
}

pub fn eur(cents: i64) -> Money {
    Money {
        currency_code: "EUR".into(),
        units: cents / 100,
        nanos: i32::try_from(cents % 100).unwrap() * 10_000_000,
    }
}

/// The revenue of `money` in cents (exact for the amounts these tests use).
pub fn cents(money: &Option<Money>) -> i64 {
    let money = money.as_ref().unwrap();
    assert_eq!(money.currency_code, "EUR");
    assert_eq!(money.nanos % 10_000_000, 0, "{money:?} is not whole cents");
    money.units * 100 + i64::from(money.nanos / 10_000_000)
}

/// An order to publish events of.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub lines: Vec<OrderLine>,
    pub discount_cents: i64,
}

impl Order {
    /// An order of `(product_id, name, quantity, unit price in cents)` lines.
    pub fn new(lines: &[(&str, &str, i32, i64)]) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            lines: lines
                .iter()
                .map(|(product, name, quantity, unit)| OrderLine {
                    product_id: (*product).into(),
                    name: (*name).into(),
                    quantity: *quantity,
                    unit_price: Some(eur(*unit)),
                    line_total: Some(eur(*unit * i64::from(*quantity))),
                })
                .collect(),
            discount_cents: 0,
        }
    }

    pub fn with_discount(mut self, cents: i64) -> Self {
        self.discount_cents = cents;
        self
    }

    pub fn subtotal_cents(&self) -> i64 {
        self.lines.iter().map(|l| cents(&l.line_total)).sum()
    }

    pub fn total_cents(&self) -> i64 {
        self.subtotal_cents() - self.discount_cents
    }

    const PLACE_TIME: &str = "2030-01-01T00:00:00Z";

    pub fn placed(&self) -> OrderPlaced {
        OrderPlaced {
            order_id: self.id.clone(),
            user_id: "user".into(),
            version: 1,
            lines: self.lines.clone(),
            subtotal: Some(eur(self.subtotal_cents())),
            discount: Some(eur(self.discount_cents)),
            total: Some(eur(self.total_cents())),
            place_time: Some(ts(Self::PLACE_TIME)),
            ..Default::default()
        }
    }

    pub fn confirmed(&self, confirm_time: &str) -> OrderConfirmed {
        OrderConfirmed {
            order_id: self.id.clone(),
            user_id: "user".into(),
            version: 2,
            lines: self.lines.clone(),
            subtotal: Some(eur(self.subtotal_cents())),
            discount: Some(eur(self.discount_cents)),
            total: Some(eur(self.total_cents())),
            payment_id: "payment".into(),
            place_time: Some(ts(Self::PLACE_TIME)),
            confirm_time: Some(ts(confirm_time)),
            ..Default::default()
        }
    }

    pub fn cancelled(&self, previous: OrderStatus) -> OrderCancelled {
        OrderCancelled {
            order_id: self.id.clone(),
            user_id: "user".into(),
            version: if previous == OrderStatus::Pending {
                2
            } else {
                3
            },
            lines: self.lines.clone(),
            subtotal: Some(eur(self.subtotal_cents())),
            discount: Some(eur(self.discount_cents)),
            total: Some(eur(self.total_cents())),
            place_time: Some(ts(Self::PLACE_TIME)),
            previous_status: previous as i32,
            reason: "test".into(),
            cancel_time: Some(ts("2030-06-01T00:00:00Z")),
            ..Default::default()
        }
    }

    pub fn shipped(&self) -> OrderShipped {
        OrderShipped {
            order_id: self.id.clone(),
            user_id: "user".into(),
            version: 3,
            lines: self.lines.clone(),
            subtotal: Some(eur(self.subtotal_cents())),
            discount: Some(eur(self.discount_cents)),
            total: Some(eur(self.total_cents())),
            place_time: Some(ts(Self::PLACE_TIME)),
            tracking_number: "TRACK".into(),
            ship_time: Some(ts("2030-06-01T00:00:00Z")),
            ..Default::default()
        }
    }

    pub async fn publish<M: prost::Name>(&self, stats: &TestStats, event: &M) -> Envelope {
        mercato_testkit::publish_event(stats.namespace(), &self.id, event, None).await
    }

    pub async fn publish_confirmed(&self, stats: &TestStats, confirm_time: &str) -> Envelope {
        self.publish(stats, &self.confirmed(confirm_time)).await
    }
}

/// A JetStream context on the test server.
pub async fn jetstream() -> async_nats::jetstream::Context {
    async_nats::jetstream::new(
        async_nats::connect(mercato_testkit::nats_url())
            .await
            .unwrap(),
    )
}

/// Delivers `envelope` again under a new Nats-Msg-Id, so JetStream's de-duplication lets it
/// through and only the consumer's own protection stands between it and a double count.
pub async fn redeliver(stats: &TestStats, envelope: &Envelope) {
    let subject = mercato_kernel::events::stream::event_subject(&envelope.r#type).unwrap();
    mercato_testkit::publish_raw(
        &jetstream().await,
        &format!("{}.{subject}", stats.namespace()),
        &uuid::Uuid::now_v7().to_string(),
        envelope.encode_to_vec(),
    )
    .await;
}

/// `t` plus `hours`, as RFC 3339.
pub fn plus_hours(t: &str, hours: i64) -> String {
    (at(t) + TimeDelta::hours(hours)).to_rfc3339()
}
