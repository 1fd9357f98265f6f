//! A whole shop behind a gateway for the loadgen to drive, and a way to run the binary.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use edge_gateway::RunningGateway;
use mercato::pb::catalog::v1::{Category, CreateCategoryRequest, CreateProductRequest, Product};
use mercato::pb::inventory::v1::AdjustStockRequest;
use mercato_kernel::config::{SERVICES, upstream_var};
use mercato_kernel::{RunningService, ServiceConfig};
use mercato_testkit::shop::{TestShop, eur};
use mercato_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, TestDatabase, authed, service_env, unique_id};

/// The shop: the checkout mesh with its storefront, review, and a gateway in front.
pub struct Stack {
    _shop: TestShop,
    _review: RunningService,
    _review_db: TestDatabase,
    pub gateway: RunningGateway,
    dir: PathBuf,
}

/// How a loadgen run ended.
pub struct Outcome {
    /// Exit status.
    pub status: Option<i32>,
    /// Its stdout and stderr.
    pub output: String,
    /// The `--json` summary, when it wrote one.
    pub json: Option<serde_json::Value>,
}

impl Stack {
    pub async fn start() -> Self {
        let mut shop = TestShop::start().await;
        shop.open_storefront().await;

        let review_db = TestDatabase::new("review");
        let mut env = service_env("review", &review_db, &shop.identity.namespace);
        env.insert("MERCATO_UPSTREAM_IDENTITY".into(), shop.identity.url());
        let config = ServiceConfig::from_source("review", &env).unwrap();
        let review = review::start(config, review::Options::default())
            .await
            .unwrap();

        // A small catalog of its own: one category, a few products in stock, a coupon.
        let category = shop
            .catalog_client()
            .await
            .create_category(authed(
                CreateCategoryRequest {
                    category: Some(Category {
                        name: "Kitchen".into(),
                        ..Default::default()
                    }),
                },
                &shop.admin,
            ))
            .await
            .unwrap()
            .into_inner()
            .category
            .unwrap();
        for (name, cents) in [
            ("Stoneware mug", 1250),
            ("Glass teapot", 2900),
            ("Cast iron skillet", 4500),
            ("Linen apron", 1900),
        ] {
            let product = shop
                .catalog_client()
                .await
                .create_product(authed(
                    CreateProductRequest {
                        product: Some(Product {
                            sku: format!("LG-{}", unique_id().to_uppercase()),
                            name: name.into(),
                            category_id: category.id.clone(),
                            price: Some(eur(cents)),
                            ..Default::default()
                        }),
                    },
                    &shop.admin,
                ))
                .await
                .unwrap()
                .into_inner()
                .product
                .unwrap();
            shop.inventory_client()
                .await
                .adjust_stock(authed(
                    AdjustStockRequest {
                        product_id: product.id,
                        delta: 100,
                        reason: "loadgen test stock".into(),
                    },
                    &shop.admin,
                ))
                .await
                .unwrap();
        }
        shop.coupon("LOADGEN10", 10, 0).await;

        let mut upstreams = shop.upstreams();
        upstreams.push(("review", format!("http://{}", review.grpc_addr)));
        let gateway = gateway(&shop.identity.url(), &upstreams).await;
        let dir = std::env::temp_dir().join(format!("loadgen-test-{}", unique_id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            _shop: shop,
            _review: review,
            _review_db: review_db,
            gateway,
            dir,
        }
    }

    /// Runs the loadgen against the gateway as the test identity's admin, with `args`.
    pub async fn loadgen(&self, args: &[&str]) -> Outcome {
        self.loadgen_as(ADMIN_EMAIL, ADMIN_PASSWORD, args).await
    }

    /// Runs the loadgen with the admin `email` and `password`.
    pub async fn loadgen_as(&self, email: &str, password: &str, args: &[&str]) -> Outcome {
        let json = self.dir.join(format!("{}.json", unique_id()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
        command
            .arg("--target")
            .arg(format!("http://{}", self.gateway.addr))
            .arg("--json")
            .arg(&json)
            .args(["--users", "3", "--seed", "7", "--timeout", "20s"])
            .args(args)
            .env("MERCATO_ADMIN_EMAIL", email)
            .env("MERCATO_ADMIN_PASSWORD", password)
            .env_remove("LOADGEN_TARGET");
        // The servers run on this test's runtime: wait for the process on a blocking thread.
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let json = std::fs::read(&json)
            .ok()
            .map(|bytes| serde_json::from_slice(&bytes).unwrap());
        Outcome {
            status: output.status.code(),
            output: text,
            json,
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A gateway verifying tokens with `identity_url`, routing each component to its URL in
/// `upstreams` (as the gateway's own tests start it).
async fn gateway(identity_url: &str, upstreams: &[(&str, String)]) -> RunningGateway {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("MERCATO_GRPC_ADDR".into(), "127.0.0.1:0".into());
    env.insert("MERCATO_ADMIN_ADDR".into(), "127.0.0.1:0".into());
    env.insert("MERCATO_LOG_FORMAT".into(), "pretty".into());
    env.insert("MERCATO_SHUTDOWN_GRACE_SECS".into(), "1".into());
    // The whole shop shares two cores with the generator and other tests.
    env.insert("MERCATO_UNARY_TIMEOUT_MS".into(), "30000".into());
    for service in SERVICES {
        env.insert(upstream_var(service), "http://127.0.0.1:9".into());
    }
    env.insert(upstream_var("identity"), identity_url.into());
    let mut config = ServiceConfig::from_source("edge-gateway", &env).unwrap();
    for (component, url) in upstreams {
        config
            .peers
            .upstreams
            .insert((*component).into(), url.clone());
    }
    let settings = edge_gateway::Settings::from_env(&env).unwrap();
    edge_gateway::start(config, settings).await.unwrap()
}
