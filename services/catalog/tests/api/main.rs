//! Catalog integration tests against the real Postgres, Redis and NATS, with a real identity
//! service issuing the tokens. Each test has its own databases, Redis prefix and NATS namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub use mercato_testkit::{assert_code, violated_fields};

mod cache_and_events;
mod products;
mod replicas;
mod wire;

use std::collections::HashMap;

use mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient;
use mercato::pb::catalog::v1::{Category, CreateCategoryRequest, CreateProductRequest, Product};
use mercato::pb::r#type::v1::Money;
use mercato_kernel::{RunningService, ServiceConfig};
use mercato_testkit::{TestDatabase, TestIdentity, authed, service_env};
use tonic::transport::Channel;

/// A catalog wired to its own identity.
pub struct TestCatalog {
    pub identity: TestIdentity,
    pub running: RunningService,
    pub database: TestDatabase,
    pub env: HashMap<String, String>,
    pub admin: String,
}

impl TestCatalog {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[(&str, &str)]) -> Self {
        let identity = TestIdentity::start().await;
        let database = TestDatabase::new("catalog");
        let mut env = service_env("catalog", &database, &identity.namespace);
        env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let config = ServiceConfig::from_source("catalog", &env).unwrap();
        let running = catalog::start(config, false).await.unwrap();
        let admin = identity.admin_token().await;
        Self {
            identity,
            running,
            database,
            env,
            admin,
        }
    }

    pub async fn client(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::new(mercato_testkit::channel(self.running.grpc_addr).await)
    }

    pub async fn category(&self, name: &str) -> Category {
        let request = CreateCategoryRequest {
            category: Some(Category {
                name: name.into(),
                ..Default::default()
            }),
        };
        self.client()
            .await
            .create_category(authed(request, &self.admin))
            .await
            .unwrap()
            .into_inner()
            .category
            .unwrap()
    }

    pub async fn product(&self, sku: &str, name: &str, cents: i64, category_id: &str) -> Product {
        let request = CreateProductRequest {
            product: Some(product(sku, name, cents, category_id)),
        };
        self.client()
            .await
            .create_product(authed(request, &self.admin))
            .await
            .unwrap()
            .into_inner()
            .product
            .unwrap()
    }
}

pub fn eur(cents: i64) -> Money {
    Money {
        currency_code: "EUR".into(),
        units: cents / 100,
        nanos: i32::try_from(cents % 100).unwrap() * 10_000_000,
    }
}

pub fn product(sku: &str, name: &str, cents: i64, category_id: &str) -> Product {
    Product {
        sku: sku.into(),
        name: name.into(),
        price: Some(eur(cents)),
        category_id: category_id.into(),
        ..Default::default()
    }
}
