//! Basket integration tests: the basket in-process on the real Redis, in front of a whole
//! test shop (identity, catalog, inventory, discount, payment, order on the real Postgres
//! and NATS). Each test has its own databases, Redis prefix and NATS namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod checkout;
mod coupons;
mod lines;

use std::collections::HashMap;

use mercato::pb::basket::v1::basket_service_client::BasketServiceClient;
use mercato::pb::basket::v1::{
    AddItemRequest, ApplyCouponRequest, Basket, CheckoutRequest, ClearBasketRequest,
    GetBasketRequest, RemoveItemRequest, UpdateItemRequest,
};
use mercato::pb::order::v1::Order;
use mercato::pb::r#type::v1::Money;
use mercato_kernel::{RunningService, ServiceConfig};
use mercato_testkit::shop::{TestShop, address, card};
use mercato_testkit::{TestDatabase, authed, service_env, service_identity_env};
use tonic::Status;
use tonic::transport::Channel;

/// A basket service in front of a whole test shop.
pub struct TestBasket {
    pub shop: TestShop,
    pub running: RunningService,
    /// The environment the basket was started with.
    pub env: HashMap<String, String>,
    /// Only for `service_env`'s signature: the basket has no database and never connects.
    _unused_database: TestDatabase,
}

impl TestBasket {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts the shop and a basket with `extra` environment on top.
    pub async fn start_with(extra: &[(&str, &str)]) -> Self {
        let shop = TestShop::start().await;
        let database = TestDatabase::new("basket");
        let mut env = service_env("basket", &database, &shop.identity.namespace);
        service_identity_env(&shop.identity, "basket", &mut env).await;
        // Checkout waits for the whole saga of a mesh sharing this process with other tests.
        env.insert("MERCATO_CALL_TIMEOUT_MS".into(), "30000".into());
        env.insert("MERCATO_UPSTREAM_CATALOG".into(), shop.catalog.url());
        env.insert("MERCATO_UPSTREAM_DISCOUNT".into(), shop.discount.url());
        env.insert(
            "MERCATO_UPSTREAM_ORDER".into(),
            format!("http://{}", shop.order.as_ref().unwrap().grpc_addr),
        );
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let running = start_basket(&env).await;
        Self {
            shop,
            running,
            env,
            _unused_database: database,
        }
    }

    /// A second basket instance on the same Redis prefix (so the same baskets), with
    /// `overrides` applied, e.g. a peer that is down.
    pub async fn another_instance(&self, overrides: &[(&str, &str)]) -> RunningService {
        let mut env = self.env.clone();
        for (k, v) in overrides {
            env.insert((*k).into(), (*v).into());
        }
        start_basket(&env).await
    }

    pub async fn client(&self) -> BasketServiceClient<Channel> {
        client_of(&self.running).await
    }

    /// A newly registered customer with a basket client.
    pub async fn shopper(&self) -> Shopper {
        let (user_id, token) = self.shop.identity.customer().await;
        Shopper {
            user_id,
            token,
            client: self.client().await,
        }
    }

    /// The Redis key of a user's basket.
    pub fn redis_key(&self, user_id: &str) -> String {
        format!("{}basket:{user_id}", self.env["MERCATO_REDIS_PREFIX"])
    }

    /// A Redis connection pool to the test server.
    pub fn redis(&self) -> mercato_kernel::redis::RedisPool {
        mercato_kernel::redis::pool(&self.env["REDIS_URL"], 2).unwrap()
    }
}

async fn start_basket(env: &HashMap<String, String>) -> RunningService {
    let config = ServiceConfig::from_source("basket", env).expect("basket config");
    let settings = basket::Settings::from_env(env).expect("basket settings");
    basket::start(config, settings)
        .await
        .expect("basket starts")
}

pub async fn client_of(running: &RunningService) -> BasketServiceClient<Channel> {
    BasketServiceClient::new(mercato_testkit::channel(running.grpc_addr).await)
}

/// A customer and their basket.
pub struct Shopper {
    pub user_id: String,
    pub token: String,
    pub client: BasketServiceClient<Channel>,
}

impl Shopper {
    /// The same customer through another basket instance.
    pub async fn via(&self, running: &RunningService) -> Shopper {
        Shopper {
            user_id: self.user_id.clone(),
            token: self.token.clone(),
            client: client_of(running).await,
        }
    }

    pub async fn get(&self) -> Result<Basket, Status> {
        self.client
            .clone()
            .get_basket(authed(GetBasketRequest {}, &self.token))
            .await
            .map(|r| r.into_inner().basket.unwrap())
    }

    pub async fn add(&self, product_id: &str, quantity: i32) -> Result<Basket, Status> {
        let request = AddItemRequest {
            product_id: product_id.into(),
            quantity,
        };
        self.client
            .clone()
            .add_item(authed(request, &self.token))
            .await
            .map(|r| r.into_inner().basket.unwrap())
    }

    pub async fn update(&self, product_id: &str, quantity: i32) -> Result<Basket, Status> {
        let request = UpdateItemRequest {
            product_id: product_id.into(),
            quantity,
        };
        self.client
            .clone()
            .update_item(authed(request, &self.token))
            .await
            .map(|r| r.into_inner().basket.unwrap())
    }

    pub async fn remove(&self, product_id: &str) -> Result<Basket, Status> {
        let request = RemoveItemRequest {
            product_id: product_id.into(),
        };
        self.client
            .clone()
            .remove_item(authed(request, &self.token))
            .await
            .map(|r| r.into_inner().basket.unwrap())
    }

    pub async fn apply_coupon(&self, code: &str) -> Result<Basket, Status> {
        let request = ApplyCouponRequest {
            coupon_code: code.into(),
        };
        self.client
            .clone()
            .apply_coupon(authed(request, &self.token))
            .await
            .map(|r| r.into_inner().basket.unwrap())
    }

    pub async fn clear(&self) -> Result<(), Status> {
        self.client
            .clone()
            .clear_basket(authed(ClearBasketRequest {}, &self.token))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn checkout(&self, card_number: &str, key: &str) -> Result<Order, Status> {
        self.checkout_with(CheckoutRequest {
            card: Some(card(card_number)),
            shipping_address: Some(address()),
            idempotency_key: key.into(),
        })
        .await
    }

    pub async fn checkout_with(&self, request: CheckoutRequest) -> Result<Order, Status> {
        self.client
            .clone()
            .checkout(authed(request, &self.token))
            .await
            .map(|r| r.into_inner().order.unwrap())
    }
}

/// An amount in cents (any currency).
pub fn cents(money: &Option<Money>) -> i64 {
    let money = money.as_ref().expect("amount set");
    money.units * 100 + i64::from(money.nanos) / 10_000_000
}

/// `(product_id, quantity)` of every line, in basket order.
pub fn lines(basket: &Basket) -> Vec<(String, i32)> {
    basket
        .lines
        .iter()
        .map(|l| (l.product_id.clone(), l.quantity))
        .collect()
}
