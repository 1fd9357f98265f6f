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
