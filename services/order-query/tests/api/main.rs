//! order-query integration tests against the real Postgres, Redis and NATS, with a real
//! identity service issuing the tokens. Events are published straight onto the test's own
//! streams (no order mesh); each test has its own databases, Redis prefix and namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub use mercato_testkit::assert_code;

mod cache;
mod convergence;
mod events;
mod reads;
mod replicas;
mod watch;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use mercato::pb::events::v1::Envelope;
use mercato::pb::order::v1::{
    OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, OrderShipped, OrderStatus,
    ShippingAddress,
};
use mercato::pb::orderquery::v1::order_query_service_client::OrderQueryServiceClient;
use mercato::pb::orderquery::v1::{
    GetOrderRequest, ListOrdersRequest, ListOrdersResponse, OrderView,
};
use mercato::pb::r#type::v1::Money;
use mercato_kernel::{RunningService, ServiceConfig};
use mercato_testkit::{TestDatabase, TestIdentity, authed};
use order_query::StartOptions;
use tonic::transport::Channel;

/// The service name: durable consumer, DLQ subject, database prefix.
pub const SERVICE: &str = "order-query";

/// order-query next to its own identity, restartable on the same database and streams.
pub struct TestOrderQuery {
    pub identity: TestIdentity,
    pub database: TestDatabase,
    pub env: HashMap<String, String>,
    pub running: Option<RunningService>,
    pub admin: String,
}

impl TestOrderQuery {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with `extra` environment on top of the test defaults (fast retries).
    pub async fn start_with(extra: &[(&str, &str)]) -> Self {
        let identity = TestIdentity::start().await;
        let database = TestDatabase::new(SERVICE);
        let mut env = mercato_testkit::service_env(SERVICE, &database, &identity.namespace);
        env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
        env.insert("MERCATO_EVENT_MAX_ATTEMPTS".into(), "3".into());
        env.insert("MERCATO_EVENT_BACKOFF_MS".into(), "50".into());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let running = Self::run(&env, StartOptions::default()).await;
        Self {
            admin: identity.admin_token().await,
            identity,
            database,
            env,
            running: Some(running),
        }
    }

    async fn run(env: &HashMap<String, String>, options: StartOptions) -> RunningService {
        let config = ServiceConfig::from_source(SERVICE, env).expect("config");
        order_query::start_with(config, options)
            .await
            .expect("order-query starts")
    }

    /// Stops the service and starts it again on the same database and streams.
    pub async fn restart(&mut self, options: StartOptions) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("stops");
        }
        self.running = Some(Self::run(&self.env, options).await);
    }

    pub fn namespace(&self) -> &str {
        &self.identity.namespace
    }

    pub async fn client(&self) -> OrderQueryServiceClient<Channel> {
        let addr = self.running.as_ref().expect("running").grpc_addr;
        OrderQueryServiceClient::new(mercato_testkit::channel(addr).await)
    }

    /// Publishes `event` about `aggregate_id` as its producer would; returns the envelope.
    pub async fn publish<M: prost::Name>(&self, aggregate_id: &str, event: &M) -> Envelope {
        mercato_testkit::publish_event(self.namespace(), aggregate_id, event, None).await
    }

    pub async fn get(&self, token: &str, id: &str) -> Result<OrderView, tonic::Status> {
        self.client()
            .await
            .get_order(authed(GetOrderRequest { id: id.into() }, token))
            .await
            .map(|r| r.into_inner().order.expect("order"))
    }

    pub async fn list(
        &self,
        token: &str,
        request: ListOrdersRequest,
    ) -> Result<ListOrdersResponse, tonic::Status> {
        self.client()
            .await
            .list_orders(authed(request, token))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The order as the admin sees it once `done` holds (polled every 50 ms, up to 10 s).
    pub async fn wait_for(&self, id: &str, done: impl Fn(&OrderView) -> bool) -> OrderView {
        let admin = self.admin.clone();
        poll(|| async {
            match self.get(&admin, id).await {
                Ok(view) if done(&view) => Some(view),
                _ => None,
            }
        })
        .await
        .unwrap_or_else(|| panic!("order {id} never reached the expected state"))
    }

    /// Waits until the order is in `status` at `version`.
    pub async fn wait_for_state(&self, id: &str, status: OrderStatus, version: i64) -> OrderView {
        self.wait_for(id, |o| o.status == status as i32 && o.version == version)
            .await
    }
}

/// `check` every 50 ms until it yields a value, for at most 10 s.
pub async fn poll<T, F, Fut>(mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn eur(cents: i64) -> Money {
    Money {
        currency_code: "EUR".into(),
        units: cents / 100,
        nanos: i32::try_from(cents % 100).unwrap() * 10_000_000,
    }
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// An order placed by `user_id` at `placed_at` (Unix seconds): 2 × 10.00 + 1 × 12.50, coupon
/// SAVE5 (5.00 off), total 27.50 EUR.
pub fn placed(order_id: &str, user_id: &str, placed_at: i64) -> OrderPlaced {
    OrderPlaced {
        order_id: order_id.into(),
        user_id: user_id.into(),
        version: 1,
        lines: vec![
            OrderLine {
                product_id: "p-1".into(),
                name: "Mug".into(),
                quantity: 2,
                unit_price: Some(eur(1000)),
                line_total: Some(eur(2000)),
            },
            OrderLine {
                product_id: "p-2".into(),
                name: "Teapot".into(),
                quantity: 1,
                unit_price: Some(eur(1250)),
                line_total: Some(eur(1250)),
            },
        ],
        subtotal: Some(eur(3250)),
        discount: Some(eur(500)),
        total: Some(eur(2750)),
        coupon_code: "SAVE5".into(),
        shipping_address: Some(ShippingAddress {
            name: "Ada Lovelace".into(),
            line1: "1 Analytical Way".into(),
            line2: String::new(),
            city: "London".into(),
            postal_code: "N1".into(),
            country: "GB".into(),
        }),
        payment_id: String::new(),
        place_time: Some(ts(placed_at)),
        snapshot: None,
    }
}

pub fn confirmed(p: &OrderPlaced, payment_id: &str) -> OrderConfirmed {
    OrderConfirmed {
        order_id: p.order_id.clone(),
        user_id: p.user_id.clone(),
        version: 2,
        lines: p.lines.clone(),
        subtotal: p.subtotal.clone(),
        discount: p.discount.clone(),
        total: p.total.clone(),
        coupon_code: p.coupon_code.clone(),
        shipping_address: p.shipping_address.clone(),
        payment_id: payment_id.into(),
        place_time: p.place_time,
        confirm_time: p.place_time.map(|t| ts(t.seconds + 60)),
        snapshot: None,
    }
}

pub fn shipped(p: &OrderPlaced, payment_id: &str, tracking: &str) -> OrderShipped {
    OrderShipped {
        order_id: p.order_id.clone(),
        user_id: p.user_id.clone(),
        version: 3,
        lines: p.lines.clone(),
        subtotal: p.subtotal.clone(),
        discount: p.discount.clone(),
        total: p.total.clone(),
        coupon_code: p.coupon_code.clone(),
        shipping_address: p.shipping_address.clone(),
        payment_id: payment_id.into(),
        place_time: p.place_time,
        tracking_number: tracking.into(),
        ship_time: p.place_time.map(|t| ts(t.seconds + 3600)),
        snapshot: None,
    }
}

pub fn cancelled(p: &OrderPlaced, version: i64, reason: &str) -> OrderCancelled {
    OrderCancelled {
        order_id: p.order_id.clone(),
        user_id: p.user_id.clone(),
        version,
        lines: p.lines.clone(),
        subtotal: p.subtotal.clone(),
        discount: p.discount.clone(),
        total: p.total.clone(),
        coupon_code: p.coupon_code.clone(),
        shipping_address: p.shipping_address.clone(),
        payment_id: String::new(),
        place_time: p.place_time,
        previous_status: if version == 2 {
            OrderStatus::Pending as i32
        } else {
            OrderStatus::Confirmed as i32
        },
        reason: reason.into(),
        cancelled_by: String::new(),
        cancel_time: p.place_time.map(|t| ts(t.seconds + 120)),
        snapshot: None,
    }
}

/// The statuses of an order's history, oldest first.
pub fn history(view: &OrderView) -> Vec<OrderStatus> {
    view.history
        .iter()
        .map(|h| OrderStatus::try_from(h.status).unwrap())
        .collect()
}

/// Unix seconds now, for place times.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
