//! A whole checkout mesh for one test: identity, catalog, inventory, discount, payment and
//! order, each in-process with its own database, wired to each other as in production
//! (service accounts from identity, peers by URL, one NATS namespace).

use std::collections::HashMap;
use std::time::Duration;

use mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient;
use mercato::pb::catalog::v1::{CreateProductRequest, Product};
use mercato::pb::discount::v1::discount_service_client::DiscountServiceClient;
use mercato::pb::discount::v1::{Coupon, CreateCouponRequest, coupon};
use mercato::pb::inventory::v1::inventory_service_client::InventoryServiceClient;
use mercato::pb::inventory::v1::{AdjustStockRequest, GetStockRequest, Stock};
use mercato::pb::order::v1::order_service_client::OrderServiceClient;
use mercato::pb::order::v1::{OrderItem, PlaceOrderRequest, ShippingAddress};
use mercato::pb::payment::v1::Card;
use mercato::pb::payment::v1::payment_service_client::PaymentServiceClient;
use mercato::pb::r#type::v1::Money;
use mercato_kernel::{RunningService, ServiceConfig};
use tonic::transport::Channel;

use crate::{TestDatabase, TestIdentity, authed, channel, service_env, service_identity_env};

/// Card that is always captured.
pub const CARD_OK: &str = "4242424242424242";
/// Card that is always declined.
pub const CARD_DECLINED: &str = "4000000000000002";
/// Card refused for insufficient funds.
pub const CARD_NO_FUNDS: &str = "4000000000009995";

/// A card with `number` and valid other fields.
pub fn card(number: &str) -> Card {
    Card {
        number: number.into(),
        exp_month: 12,
        exp_year: 2099,
        cvc: "123".into(),
        holder_name: "Ada Lovelace".into(),
    }
}

/// A valid shipping address.
pub fn address() -> ShippingAddress {
    ShippingAddress {
        name: "Ada Lovelace".into(),
        line1: "12 Analytical Street".into(),
        line2: String::new(),
        city: "London".into(),
        postal_code: "N1 9GU".into(),
        country: "GB".into(),
    }
}

/// `cents` euro cents as Money.
pub fn eur(cents: i64) -> Money {
    Money {
        currency_code: "EUR".into(),
        units: cents / 100,
        nanos: i32::try_from(cents % 100).expect("cents") * 10_000_000,
    }
}

/// A PlaceOrder request for `items` (product id, quantity).
pub fn order_request(items: &[(&str, i32)], card_number: &str, key: &str) -> PlaceOrderRequest {
    PlaceOrderRequest {
        items: items
            .iter()
            .map(|(id, q)| OrderItem {
                product_id: (*id).into(),
                quantity: *q,
            })
            .collect(),
        coupon_code: String::new(),
        card: Some(card(card_number)),
        shipping_address: Some(address()),
        idempotency_key: key.into(),
    }
}

/// One running service of the shop.
pub struct Member {
    /// The service.
    pub running: RunningService,
    /// Its database.
    pub database: TestDatabase,
    /// The environment it was started with.
    pub env: HashMap<String, String>,
}

/// The checkout mesh.
pub struct TestShop {
    /// Identity (with an admin).
    pub identity: TestIdentity,
    /// Catalog.
    pub catalog: Member,
    /// Inventory.
    pub inventory: Member,
    /// Discount.
    pub discount: Member,
    /// Payment.
    pub payment: Member,
    /// The order service (`None` while a test has it stopped).
    pub order: Option<RunningService>,
    /// The order service's database, kept across restarts.
    pub order_db: TestDatabase,
    /// Basket, order-query and notification, once [`TestShop::open_storefront`] started them.
    pub storefront: Vec<(&'static str, Member)>,
    /// An admin token.
    pub admin: String,
    /// A service-account token, for calling internal RPCs in assertions.
    pub service: String,
}

async fn member<F, Fut>(
    identity: &TestIdentity,
    service: &str,
    pool: &str,
    extra: &[(&str, String)],
    start: F,
) -> Member
where
    F: FnOnce(ServiceConfig) -> Fut,
    Fut: std::future::Future<Output = RunningService>,
{
    let database = TestDatabase::new(service);
    let mut env = service_env(service, &database, &identity.namespace);
    service_identity_env(identity, service, &mut env).await;
    env.insert("MERCATO_DB_POOL_SIZE".into(), pool.into());
    for (key, value) in extra {
        env.insert((*key).into(), value.clone());
    }
    let config = ServiceConfig::from_source(service, &env).expect("config");
    let running = start(config).await;
    Member {
        running,
        database,
        env,
    }
}

impl Member {
    /// `http://` URL of the service.
    pub fn url(&self) -> String {
        format!("http://{}", self.running.grpc_addr)
    }
}

impl TestShop {
    /// Starts the mesh; `order_env` is added to the order service's environment.
    pub async fn start_with(order_env: &[(&str, &str)]) -> Self {
        let identity = TestIdentity::start().await;
        let catalog = member(&identity, "catalog", "3", &[], |c| async {
            catalog::start(c, false).await.expect("catalog starts")
        })
        .await;
        let inventory = member(&identity, "inventory", "6", &[], |c| async {
            inventory::start(c).await.expect("inventory starts")
        })
        .await;
        let discount = member(&identity, "discount", "4", &[], |c| async {
            discount::start(c).await.expect("discount starts")
        })
        .await;
        let payment = member(&identity, "payment", "6", &[], |c| async {
            payment::start(c).await.expect("payment starts")
        })
        .await;
        let mut shop = Self {
            admin: identity.admin_token().await,
            service: identity.service_token().await,
            identity,
            catalog,
            inventory,
            discount,
            payment,
            order: None,
            order_db: TestDatabase::new("order"),
            storefront: Vec::new(),
        };
        shop.start_order(order_env).await;
        shop
    }

    /// Starts the mesh with default order settings.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// The order service's environment (peers, service account) plus `extra`.
    pub async fn order_env(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env = service_env("order", &self.order_db, &self.identity.namespace);
        service_identity_env(&self.identity, "order", &mut env).await;
        env.insert("MERCATO_DB_POOL_SIZE".into(), "8".into());
        // The whole mesh shares this process and two cores with other tests: calls may
        // queue far longer than in production, and a timeout here would fail a checkout the
        // test expects to succeed.
        env.insert("MERCATO_CALL_TIMEOUT_MS".into(), "30000".into());
        env.insert("MERCATO_UPSTREAM_CATALOG".into(), self.catalog.url());
        env.insert("MERCATO_UPSTREAM_INVENTORY".into(), self.inventory.url());
        env.insert("MERCATO_UPSTREAM_DISCOUNT".into(), self.discount.url());
        env.insert("MERCATO_UPSTREAM_PAYMENT".into(), self.payment.url());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        env
    }

    /// Starts (or restarts, on the same database) the order service.
    pub async fn start_order(&mut self, extra: &[(&str, &str)]) {
        let env = self.order_env(extra).await;
        let config = ServiceConfig::from_source("order", &env).expect("order config");
        let settings = order::Settings::from_env(&env).expect("order settings");
        self.order = Some(order::start(config, settings).await.expect("order starts"));
    }

    /// Stops the order service, keeping its database for a restart.
    pub async fn stop_order(&mut self) {
        if let Some(running) = self.order.take() {
            running.stop().await.expect("order stops");
        }
    }

    /// Starts what a customer sees beyond the checkout: basket (calling catalog, discount and
    /// order), and the read side fed by this shop's events (order-query, notification).
    pub async fn open_storefront(&mut self) {
        let order = format!(
            "http://{}",
            self.order.as_ref().expect("order running").grpc_addr
        );
        let peers = [
            ("MERCATO_UPSTREAM_CATALOG", self.catalog.url()),
            ("MERCATO_UPSTREAM_DISCOUNT", self.discount.url()),
            ("MERCATO_UPSTREAM_ORDER", order),
            ("MERCATO_CALL_TIMEOUT_MS", "30000".to_owned()),
        ];
        let basket = member(&self.identity, "basket", "1", &peers, |c| async {
            let settings = basket::Settings::from_env(&HashMap::<String, String>::new())
                .expect("basket settings");
            basket::start(c, settings).await.expect("basket starts")
        })
        .await;
        let order_query = member(&self.identity, "order-query", "3", &[], |c| async {
            order_query::start(c).await.expect("order-query starts")
        })
        .await;
        let notification = member(&self.identity, "notification", "3", &[], |c| async {
            notification::start(c).await.expect("notification starts")
        })
        .await;
        self.storefront = vec![
            ("basket", basket),
            ("order-query", order_query),
            ("notification", notification),
        ];
    }

    /// Every running component of the shop and its URL (what a gateway routes to).
    pub fn upstreams(&self) -> Vec<(&'static str, String)> {
        let mut all = vec![
            ("catalog", self.catalog.url()),
            ("inventory", self.inventory.url()),
            ("discount", self.discount.url()),
            ("payment", self.payment.url()),
        ];
        if let Some(order) = &self.order {
            all.push(("order", format!("http://{}", order.grpc_addr)));
        }
        all.extend(self.storefront.iter().map(|(name, m)| (*name, m.url())));
        all
    }

    /// Order client.
    pub async fn orders(&self) -> OrderServiceClient<Channel> {
        let addr = self.order.as_ref().expect("order running").grpc_addr;
        OrderServiceClient::new(channel(addr).await)
    }

    /// Inventory client.
    pub async fn inventory_client(&self) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::new(channel(self.inventory.running.grpc_addr).await)
    }

    /// Payment client.
    pub async fn payment_client(&self) -> PaymentServiceClient<Channel> {
        PaymentServiceClient::new(channel(self.payment.running.grpc_addr).await)
    }

    /// Discount client.
    pub async fn discount_client(&self) -> DiscountServiceClient<Channel> {
        DiscountServiceClient::new(channel(self.discount.running.grpc_addr).await)
    }

    /// Catalog client.
    pub async fn catalog_client(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::new(channel(self.catalog.running.grpc_addr).await)
    }

    /// Creates a product priced `cents` euro cents with `stock` units on hand.
    pub async fn product(&self, name: &str, cents: i64, stock: i32) -> Product {
        let request = CreateProductRequest {
            product: Some(Product {
                sku: format!("SKU-{}", crate::unique_id().to_uppercase()),
                name: name.into(),
                price: Some(eur(cents)),
                ..Default::default()
            }),
        };
        let product = self
            .catalog_client()
            .await
            .create_product(authed(request, &self.admin))
            .await
            .expect("create product")
            .into_inner()
            .product
            .expect("product");
        if stock > 0 {
            let request = AdjustStockRequest {
                product_id: product.id.clone(),
                delta: stock,
                reason: "initial stock".into(),
            };
            self.inventory_client()
                .await
                .adjust_stock(authed(request, &self.admin))
                .await
                .expect("adjust stock");
        }
        product
    }

    /// The stock of a product.
    pub async fn stock(&self, product_id: &str) -> Stock {
        self.inventory_client()
            .await
            .get_stock(GetStockRequest {
                product_id: product_id.into(),
            })
            .await
            .expect("get stock")
            .into_inner()
            .stock
            .expect("stock")
    }

    /// Creates a percent-off coupon usable `max_redemptions` times (0 = unlimited).
    pub async fn coupon(&self, code: &str, percent_off: i32, max_redemptions: i32) -> Coupon {
        let request = CreateCouponRequest {
            coupon: Some(Coupon {
                code: code.into(),
                value: Some(coupon::Value::PercentOff(percent_off)),
                max_redemptions,
                ..Default::default()
            }),
        };
        self.discount_client()
            .await
            .create_coupon(authed(request, &self.admin))
            .await
            .expect("create coupon")
            .into_inner()
            .coupon
            .expect("coupon")
    }

    /// The coupon with `code` as the discount service has it now (redemption count included).
    pub async fn coupon_now(&self, code: &str) -> Coupon {
        self.discount_client()
            .await
            .get_coupon(authed(
                mercato::pb::discount::v1::GetCouponRequest { code: code.into() },
                &self.admin,
            ))
            .await
            .expect("get coupon")
            .into_inner()
            .coupon
            .expect("coupon")
    }

    /// Waits until `check` holds for the order's write-side state, up to `timeout`.
    pub async fn wait_for_order<F>(
        &self,
        order_id: &str,
        timeout: Duration,
        check: F,
    ) -> mercato::pb::order::v1::Order
    where
        F: Fn(&mercato::pb::order::v1::Order) -> bool,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let order = self
                .orders()
                .await
                .get_order(authed(
                    mercato::pb::order::v1::GetOrderRequest {
                        id: order_id.into(),
                    },
                    &self.service,
                ))
                .await
                .expect("get order")
                .into_inner()
                .order
                .expect("order");
            if check(&order) {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} did not settle: {order:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
