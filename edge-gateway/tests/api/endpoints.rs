//! The gateway's own endpoints: OpenAPI, JWKS, health on the public port, metrics on the
//! admin port.

use mercato_testkit::TestIdentity;

use crate::helpers::{Http, expect_status, gateway};

#[tokio::test]
async fn openapi_jwks_and_health_are_served_on_the_public_port() {
    let identity = TestIdentity::start().await;
    let gw = gateway(&identity.url(), &[], &[]).await;
    let http = Http::new(gw.addr);

    let openapi = http.call("GET", "/openapi.json", None, None).await;
    expect_status(&openapi, 200);
    let doc = openapi.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/basket:checkout"]["post"].is_object());
    assert!(doc["paths"]["/v1/orders/{id}:watch"]["get"].is_object());

    let jwks = http.call("GET", "/.well-known/jwks.json", None, None).await;
    expect_status(&jwks, 200);
    let keys = jwks.json()["keys"].as_array().unwrap().clone();
    assert!(!keys.is_empty());
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert!(
        jwks.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );

    expect_status(&http.call("GET", "/healthz", None, None).await, 200);
    let ready = http.call("GET", "/readyz", None, None).await;
    expect_status(&ready, 200);
    assert_eq!(ready.json()["ready"], true);

    let admin = Http::new(gw.admin_addr);
    let metrics = admin.call("GET", "/metrics", None, None).await;
    expect_status(&metrics, 200);
}

#[tokio::test]
async fn a_stopped_gateway_closes_its_port() {
    let identity = TestIdentity::start().await;
    let gw = gateway(&identity.url(), &[], &[]).await;
    let addr = gw.addr;
    expect_status(
        &Http::new(addr).call("GET", "/healthz", None, None).await,
        200,
    );
    tokio::time::timeout(std::time::Duration::from_secs(5), gw.stop())
        .await
        .expect("stops within the grace period")
        .expect("serve task ends cleanly");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn openapi_names_equivalent_templates_alike() {
    let identity = TestIdentity::start().await;
    let gw = gateway(&identity.url(), &[], &[]).await;
    let doc = Http::new(gw.addr)
        .call("GET", "/openapi.json", None, None)
        .await
        .json();
    let paths = doc["paths"].as_object().unwrap();
    let mut shapes = std::collections::BTreeMap::new();
    for path in paths.keys() {
        let shape: String = path
            .split('{')
            .map(|part| part.split_once('}').map_or(part, |(_, rest)| rest))
            .collect::<Vec<_>>()
            .join("{}");
        if let Some(other) = shapes.insert(shape, path.clone()) {
            panic!("{path} and {other} are one template to OpenAPI 3.1");
        }
    }
    // UpdateProduct's {product.id} is documented as the {id} of GetProduct's path, saying
    // which field it binds (rest.rs calls it that way).
    let product = &paths["/v1/products/{id}"];
    assert!(product["get"].is_object() && product["patch"].is_object());
    assert!(!paths.contains_key("/v1/products/{product.id}"));
    let parameter = &product["patch"]["parameters"][0];
    assert_eq!(parameter["name"], "id");
    assert_eq!(parameter["in"], "path");
    assert_eq!(parameter["x-mercato-field"], "product.id");
}
