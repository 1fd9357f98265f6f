//! Notification integration tests against the real Postgres and NATS, with a real identity
//! service issuing the tokens (and publishing UserRegistered). Events are published straight
//! onto the test's own streams; each test has its own databases and NATS namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub use mercato_testkit::{assert_code, violated_fields};

mod access;
mod convergence;
mod delivery;
mod messages;
mod stream;

use std::collections::HashMap;
use std::time::Duration;

use mercato::pb::notification::v1::notification_service_client::NotificationServiceClient;
use mercato::pb::notification::v1::{
    ListNotificationsRequest, ListNotificationsResponse, Notification, NotificationKind,
};
use mercato::pb::order::v1::{OrderLine, ShippingAddress};
use mercato::pb::r#type::v1::Money;
use mercato_kernel::{RunningService, ServiceConfig};
use mercato_testkit::{TestDatabase, TestIdentity, authed, service_env};
use tonic::transport::Channel;

/// A notification service wired to its own identity, retrying events fast (3 attempts, 50 ms
/// back-off) so dead-letter tests take well under a second.
pub struct TestNotification {
    pub identity: TestIdentity,
    pub running: RunningService,
    pub database: TestDatabase,
    pub env: HashMap<String, String>,
}

impl TestNotification {
    pub async fn start() -> Self {
        let identity = TestIdentity::start().await;
        let database = TestDatabase::new("notification");
        let mut env = service_env("notification", &database, &identity.namespace);
        env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
        env.insert("MERCATO_EVENT_MAX_ATTEMPTS".into(), "3".into());
        env.insert("MERCATO_EVENT_BACKOFF_MS".into(), "50".into());
        let running = Self::run(&env, notification::Options::default()).await;
        Self {
            identity,
            running,
            database,
            env,
        }
    }

    async fn run(env: &HashMap<String, String>, options: notification::Options) -> RunningService {
        let config = ServiceConfig::from_source("notification", env).unwrap();
        notification::start_with(config, options).await.unwrap()
    }

    /// Stops the service and starts it again on the same database and streams.
    pub async fn restart(self, options: notification::Options) -> Self {
        let Self {
            identity,
            running,
            database,
            env,
        } = self;
        running.stop().await.unwrap();
        let running = Self::run(&env, options).await;
        Self {
            identity,
            running,
            database,
            env,
        }
    }

    pub fn namespace(&self) -> &str {
        &self.identity.namespace
    }

    pub async fn client(&self) -> NotificationServiceClient<Channel> {
        NotificationServiceClient::new(mercato_testkit::channel(self.running.grpc_addr).await)
    }

    /// A registered customer whose welcome notification has been written, so that later
    /// notifications of the test are the only news: (user id, token).
    pub async fn customer(&self) -> (String, String) {
        let (user_id, token) = self.identity.customer().await;
        self.wait_for(&token, |all| {
            all.iter()
                .any(|n| n.kind == NotificationKind::Welcome as i32)
        })
        .await;
        (user_id, token)
    }

    /// One page of the caller's notifications.
    pub async fn list(
        &self,
        token: &str,
        request: ListNotificationsRequest,
    ) -> Result<ListNotificationsResponse, tonic::Status> {
        self.client()
            .await
            .list_notifications(authed(request, token))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Every notification of the caller, newest first (all pages).
    pub async fn all(&self, token: &str) -> Vec<Notification> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .list(
                    token,
                    ListNotificationsRequest {
                        page_size: 100,
                        page_token: page_token.clone(),
                        unread_only: false,
                    },
                )
                .await
                .unwrap();
            out.extend(page.notifications);
            if page.next_page_token.is_empty() {
                return out;
            }
            page_token = page.next_page_token;
        }
    }

    /// Polls the caller's notifications every 50 ms (up to 10 s) until `done` holds for them.
    pub async fn wait_for(
        &self,
        token: &str,
        done: impl Fn(&[Notification]) -> bool,
    ) -> Vec<Notification> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let all = self.all(token).await;
            if done(&all) {
                return all;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "notifications never got there; have {all:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the caller's notification written from event `id`.
    pub async fn wait_for_event(&self, token: &str, id: &str) -> Notification {
        self.wait_for(token, |all| all.iter().any(|n| n.id == id))
            .await
            .into_iter()
            .find(|n| n.id == id)
            .unwrap()
    }
}

/// The caller's notifications of `kind`.
pub fn of_kind(all: &[Notification], kind: NotificationKind) -> Vec<Notification> {
    all.iter()
        .filter(|n| n.kind == kind as i32)
        .cloned()
        .collect()
}

pub fn eur(cents: i64) -> Option<Money> {
    Some(Money {
        currency_code: "EUR".into(),
        units: cents / 100,
        nanos: i32::try_from(cents % 100).unwrap() * 10_000_000,
    })
}

/// A 48.48 EUR order of two items.
pub fn lines() -> Vec<OrderLine> {
    vec![
        OrderLine {
            product_id: uuid::Uuid::now_v7().to_string(),
            name: "Stoneware mug".into(),
            quantity: 1,
            unit_price: eur(1250),
            line_total: eur(1250),
        },
        OrderLine {
            product_id: uuid::Uuid::now_v7().to_string(),
            name: "Loose-leaf tea".into(),
            quantity: 1,
            unit_price: eur(3598),
            line_total: eur(3598),
        },
    ]
}

pub fn address() -> Option<ShippingAddress> {
    Some(ShippingAddress {
        name: "Ada Lovelace".into(),
        line1: "12 St James's Square".into(),
        line2: String::new(),
        city: "London".into(),
        postal_code: "SW1Y 4JH".into(),
        country: "GB".into(),
    })
}

/// A timestamp `minutes` from now.
pub fn minutes_from_now(minutes: i64) -> Option<prost_types::Timestamp> {
    Some(mercato_kernel::time::to_timestamp(
        chrono::Utc::now() + chrono::Duration::minutes(minutes),
    ))
}

/// The order events of one order, all fields 1-11 filled like the order service does.
pub mod events {
    use mercato::pb::order::v1::{
        OrderCancelled, OrderConfirmed, OrderPlaced, OrderShipped, OrderStatus,
    };

    use super::{address, eur, lines, minutes_from_now};

    pub fn placed(order_id: &str, user_id: &str) -> OrderPlaced {
        OrderPlaced {
            order_id: order_id.into(),
            user_id: user_id.into(),
            version: 1,
            lines: lines(),
            subtotal: eur(4848),
            discount: eur(0),
            total: eur(4848),
            shipping_address: address(),
            place_time: minutes_from_now(-10),
            ..Default::default()
        }
    }

    pub fn confirmed(order_id: &str, user_id: &str) -> OrderConfirmed {
        OrderConfirmed {
            order_id: order_id.into(),
            user_id: user_id.into(),
            version: 2,
            lines: lines(),
            subtotal: eur(4848),
            discount: eur(0),
            total: eur(4848),
            shipping_address: address(),
            payment_id: "pay-1".into(),
            place_time: minutes_from_now(-10),
            confirm_time: minutes_from_now(-9),
            ..Default::default()
        }
    }

    pub fn cancelled(order_id: &str, user_id: &str, reason: &str) -> OrderCancelled {
        OrderCancelled {
            order_id: order_id.into(),
            user_id: user_id.into(),
            version: 2,
            lines: lines(),
            subtotal: eur(4848),
            discount: eur(0),
            total: eur(4848),
            shipping_address: address(),
            place_time: minutes_from_now(-10),
            previous_status: OrderStatus::Pending as i32,
            reason: reason.into(),
            cancel_time: minutes_from_now(-9),
            ..Default::default()
        }
    }

    pub fn shipped(order_id: &str, user_id: &str, tracking: &str) -> OrderShipped {
        OrderShipped {
            order_id: order_id.into(),
            user_id: user_id.into(),
            version: 3,
            lines: lines(),
            subtotal: eur(4848),
            discount: eur(0),
            total: eur(4848),
            shipping_address: address(),
            payment_id: "pay-1".into(),
            place_time: minutes_from_now(-10),
            tracking_number: tracking.into(),
            ship_time: minutes_from_now(-8),
            ..Default::default()
        }
    }
}
