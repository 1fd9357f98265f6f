//! Review integration tests against the real Postgres and NATS, with a real identity service
//! issuing the tokens (and announcing customers with UserRegistered). Order events are
//! published straight onto the test's own stream, as order's outbox relay would; no order
//! service runs. Each test has its own databases and NATS namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub use mercato_testkit::{assert_code, violated_fields};

mod convergence;
mod eligibility;
mod reviews;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use mercato::pb::order::v1::{
    OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, OrderShipped, OrderStatus,
};
use mercato::pb::review::v1::review_service_client::ReviewServiceClient;
use mercato::pb::review::v1::{
    CreateReviewRequest, DeleteReviewRequest, GetRatingSummaryRequest, ListReviewsRequest,
    RatingSummary, Review,
};
use mercato_kernel::{RunningService, ServiceConfig};
use mercato_testkit::{TestDatabase, TestIdentity, authed, service_env};
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

/// A review service wired to its own identity, retrying failed events quickly.
pub struct TestReview {
    pub identity: TestIdentity,
    pub running: Option<RunningService>,
    pub addr: SocketAddr,
    pub database: TestDatabase,
    pub env: HashMap<String, String>,
    pub admin: String,
}

impl TestReview {
    pub async fn start() -> Self {
        let identity = TestIdentity::start().await;
        let database = TestDatabase::new("review");
        let mut env = service_env("review", &database, &identity.namespace);
        env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
        env.insert("MERCATO_EVENT_MAX_ATTEMPTS".into(), "3".into());
        env.insert("MERCATO_EVENT_BACKOFF_MS".into(), "50".into());
        let running = Self::launch(&env, review::Options::default()).await;
        let admin = identity.admin_token().await;
        Self {
            identity,
            addr: running.grpc_addr,
            running: Some(running),
            database,
            env,
            admin,
        }
    }

    async fn launch(env: &HashMap<String, String>, options: review::Options) -> RunningService {
        let config = ServiceConfig::from_source("review", env).unwrap();
        review::start(config, options).await.unwrap()
    }

    /// Stops the service and starts it again on the same database and streams.
    pub async fn restart(&mut self, options: review::Options) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
        let running = Self::launch(&self.env, options).await;
        self.addr = running.grpc_addr;
        self.running = Some(running);
    }

    pub fn namespace(&self) -> &str {
        &self.identity.namespace
    }

    pub async fn client(&self) -> ReviewServiceClient<Channel> {
        ReviewServiceClient::new(mercato_testkit::channel(self.addr).await)
    }

    /// A registered customer: (user id, access token).
    pub async fn customer(&self) -> (String, String) {
        self.identity.customer().await
    }

    pub async fn create(
        &self,
        token: &str,
        request: CreateReviewRequest,
    ) -> Result<Review, tonic::Status> {
        self.client()
            .await
            .create_review(authed(request, token))
            .await
            .map(|r| r.into_inner().review.unwrap())
    }

    /// Creates the review as soon as the purchase behind it has been projected.
    pub async fn create_when_eligible(&self, token: &str, request: CreateReviewRequest) -> Review {
        eventually("the buyer to become eligible", || async {
            match self.create(token, request.clone()).await {
                Ok(review) => Some(review),
                Err(status) if status.code() == tonic::Code::PermissionDenied => None,
                Err(status) => panic!("unexpected {status:?}"),
            }
        })
        .await
    }

    /// Waits until `token`'s user may review `marker`, a product of an order confirmed after
    /// the events under test: the order stream is applied in sequence, so everything
    /// published before the marker has been applied too.
    pub async fn settle(&self, user_id: &str, token: &str) {
        let marker = new_id();
        publish(self.namespace(), &confirmed(&new_id(), user_id, &[&marker])).await;
        self.create_when_eligible(token, review_of(&marker, 5))
            .await;
    }

    pub async fn delete(&self, id: &str, token: &str) -> Result<(), tonic::Status> {
        let request = authed(DeleteReviewRequest { id: id.into() }, token);
        self.client().await.delete_review(request).await.map(|_| ())
    }

    pub async fn list(
        &self,
        product_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Review>, String), tonic::Status> {
        self.client()
            .await
            .list_reviews(ListReviewsRequest {
                product_id: product_id.into(),
                page_size,
                page_token: page_token.into(),
            })
            .await
            .map(|r| {
                let r = r.into_inner();
                (r.reviews, r.next_page_token)
            })
    }

    pub async fn summary(&self, product_id: &str) -> RatingSummary {
        self.client()
            .await
            .get_rating_summary(GetRatingSummaryRequest {
                product_id: product_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .summary
            .unwrap()
    }
}

/// Polls `probe` every 50 ms until it yields a value, for at most 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn review_of(product_id: &str, rating: i32) -> CreateReviewRequest {
    CreateReviewRequest {
        product_id: product_id.into(),
        rating,
        title: format!("{rating} stars"),
        body: "Does what it says.".into(),
    }
}

fn lines(products: &[&str]) -> Vec<OrderLine> {
    products
        .iter()
        .map(|p| OrderLine {
            product_id: (*p).into(),
            name: "Thing".into(),
            quantity: 1,
            ..Default::default()
        })
        .collect()
}

pub fn placed(order_id: &str, user_id: &str, products: &[&str]) -> OrderPlaced {
    OrderPlaced {
        order_id: order_id.into(),
        user_id: user_id.into(),
        version: 1,
        lines: lines(products),
        ..Default::default()
    }
}

pub fn confirmed(order_id: &str, user_id: &str, products: &[&str]) -> OrderConfirmed {
    OrderConfirmed {
        order_id: order_id.into(),
        user_id: user_id.into(),
        version: 2,
        lines: lines(products),
        ..Default::default()
    }
}

pub fn shipped(order_id: &str, user_id: &str, products: &[&str]) -> OrderShipped {
    OrderShipped {
        order_id: order_id.into(),
        user_id: user_id.into(),
        version: 3,
        lines: lines(products),
        tracking_number: "TRACK-1".into(),
        ..Default::default()
    }
}

/// A cancellation after `previous` (PENDING: version 2; CONFIRMED: version 3).
pub fn cancelled(
    order_id: &str,
    user_id: &str,
    products: &[&str],
    previous: OrderStatus,
) -> OrderCancelled {
    OrderCancelled {
        order_id: order_id.into(),
        user_id: user_id.into(),
        version: if previous == OrderStatus::Confirmed {
            3
        } else {
            2
        },
        lines: lines(products),
        previous_status: previous.into(),
        reason: "changed my mind".into(),
        ..Default::default()
    }
}

/// Publishes an order event on the test's order stream; the aggregate is its order.
pub async fn publish<M: prost::Name + OrderEvent>(
    namespace: &str,
    event: &M,
) -> mercato::pb::events::v1::Envelope {
    mercato_testkit::publish_event(namespace, event.order_id(), event, None).await
}

/// The order id of an order event.
pub trait OrderEvent {
    fn order_id(&self) -> &str;
}

macro_rules! order_event {
    ($($t:ty),*) => {$(
        impl OrderEvent for $t {
            fn order_id(&self) -> &str {
                &self.order_id
            }
        }
    )*};
}
order_event!(OrderPlaced, OrderConfirmed, OrderShipped, OrderCancelled);

/// `ErrorInfo.reason` of a failed call.
pub fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}
