//! REST/JSON through the gateway against the real services of the test shop, with a plain
//! HTTP/1.1 client: the journey, the error body, and the transcoding edges that only show end
//! to end (status mapping, limits, streaming formats).

use bytes::Bytes;
use http_body_util::Full;
use mercato_testkit::TestIdentity;
use mercato_testkit::shop::{CARD_OK, TestShop};
use mercato_testkit::unique_id;
use serde_json::json;

use crate::helpers::{Http, expect_status, gateway};
use crate::passthrough::shop_upstreams;
use crate::stubs::Notifications;

#[tokio::test]
async fn a_customer_shops_over_rest_with_a_plain_http_client() {
    let shop = TestShop::start().await;
    let gw = gateway(&shop.identity.url(), &shop_upstreams(&shop), &[]).await;
    let http = Http::new(gw.addr);
    let admin = Some(shop.admin.as_str());

    let email = format!("r{}@mercato.test", unique_id());
    let registered = http
        .call(
            "POST",
            "/v1/users",
            None,
            Some(json!({"email": email, "password": "long-enough-password", "displayName": "Ada"})),
        )
        .await;
    expect_status(&registered, 200);
    let user_id = registered.json()["user"]["id"].as_str().unwrap().to_owned();

    let issued = http
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"password": {"email": email, "password": "long-enough-password"}})),
        )
        .await;
    expect_status(&issued, 200);
    let issued = issued.json();
    assert_eq!(issued["tokenType"], "Bearer");
    let token = issued["accessToken"].as_str().unwrap().to_owned();

    let me = http.call("GET", "/v1/users/me", Some(&token), None).await;
    expect_status(&me, 200);
    assert_eq!(me.json()["user"]["id"], user_id.as_str());

    // body: "product", original field names accepted beside lowerCamelCase.
    let created = http
        .call(
            "POST",
            "/v1/products",
            admin,
            Some(json!({
                "sku": format!("REST-{}", unique_id().to_uppercase()),
                "name": "REST kettle",
                "price": {"currency_code": "EUR", "units": "19", "nanos": 990000000},
            })),
        )
        .await;
    expect_status(&created, 200);
    let product = created.json()["product"].clone();
    let id = product["id"].as_str().unwrap().to_owned();
    assert_eq!(product["price"]["units"], "19", "int64 as a string");
    assert!(
        product["createTime"].as_str().unwrap().ends_with('Z'),
        "{product}"
    );

    // Custom verb with a path variable and body "*".
    let adjusted = http
        .call(
            "POST",
            &format!("/v1/inventory/{id}:adjust"),
            admin,
            Some(json!({"delta": 4, "reason": "delivery"})),
        )
        .await;
    expect_status(&adjusted, 200);

    // Nested path field {product.id}, named body field, FieldMask from the query.
    let renamed = http
        .call(
            "PATCH",
            &format!("/v1/products/{id}?updateMask=name"),
            admin,
            Some(json!({"name": "REST kettle XL"})),
        )
        .await;
    expect_status(&renamed, 200);
    assert_eq!(renamed.json()["product"]["name"], "REST kettle XL");

    let listed = http
        .call("GET", "/v1/products?pageSize=100&query=kettle", None, None)
        .await;
    expect_status(&listed, 200);
    assert!(
        listed.json()["products"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == id.as_str())
    );
    let fetched = http
        .call("GET", &format!("/v1/products/{id}"), None, None)
        .await;
    expect_status(&fetched, 200);
    assert_eq!(fetched.json()["product"]["name"], "REST kettle XL");

    let placed = http
        .call(
            "POST",
            "/v1/orders",
            Some(&token),
            Some(json!({
                "items": [{"productId": id, "quantity": 3}],
                "card": {"number": CARD_OK, "expMonth": 12, "expYear": 2099, "cvc": "123", "holderName": "Ada"},
                "shippingAddress": {"name": "Ada", "line1": "1 Street", "city": "London", "postalCode": "N1", "country": "GB"},
                "idempotencyKey": unique_id(),
            })),
        )
        .await;
    expect_status(&placed, 200);
    let order = placed.json()["order"].clone();
    assert_eq!(order["status"], "ORDER_STATUS_CONFIRMED", "{order}");
    assert_eq!(order["userId"], user_id.as_str());

    let stock = http
        .call("GET", &format!("/v1/inventory/{id}"), None, None)
        .await;
    expect_status(&stock, 200);
    assert_eq!(stock.json()["stock"]["available"], 1);
}

/// Calls `path` until `done` holds for the answer (the read side is eventually consistent).
async fn eventually(
    http: &Http,
    path: &str,
    token: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let reply = http.call("GET", path, Some(token), None).await;
        if reply.status == 200 && done(&reply.json()) {
            return reply.json();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never got there: {}",
            reply.text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_whole_journey_over_rest_from_basket_to_notification() {
    let mut shop = TestShop::start().await;
    shop.open_storefront().await;
    let gw = gateway(&shop.identity.url(), &shop_upstreams(&shop), &[]).await;
    let http = Http::new(gw.addr);
    let lamp = shop.product("Journey lamp", 2500, 5).await;

    let email = format!("j{}@mercato.test", unique_id());
    let password = "long-enough-password";
    let registered = http
        .call(
            "POST",
            "/v1/users",
            None,
            Some(json!({"email": email, "password": password, "displayName": "Jo"})),
        )
        .await;
    expect_status(&registered, 200);
    let issued = http
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"password": {"email": email, "password": password}})),
        )
        .await;
    expect_status(&issued, 200);
    let token = issued.json()["accessToken"].as_str().unwrap().to_owned();

    let listed = http
        .call("GET", "/v1/products?query=journey", None, None)
        .await;
    expect_status(&listed, 200);
    assert_eq!(listed.json()["products"][0]["id"], lamp.id.as_str());

    let added = http
        .call(
            "POST",
            "/v1/basket/items",
            Some(&token),
            Some(json!({"productId": lamp.id, "quantity": 2})),
        )
        .await;
    expect_status(&added, 200);
    assert_eq!(added.json()["basket"]["total"]["units"], "50");

    let checkout = http
        .call(
            "POST",
            "/v1/basket:checkout",
            Some(&token),
            Some(json!({
                "card": {"number": CARD_OK, "expMonth": 12, "expYear": 2099, "cvc": "123", "holderName": "Jo"},
                "shippingAddress": {"name": "Jo", "line1": "1 Street", "city": "Berlin", "postalCode": "10115", "country": "DE"},
                "idempotencyKey": unique_id(),
            })),
        )
        .await;
    expect_status(&checkout, 200);
    let order = checkout.json()["order"].clone();
    assert_eq!(order["status"], "ORDER_STATUS_CONFIRMED", "{order}");
    let order_id = order["id"].as_str().unwrap().to_owned();
    let basket = http.call("GET", "/v1/basket", Some(&token), None).await;
    assert_eq!(
        basket.json()["basket"]["itemCount"].as_i64().unwrap_or(0),
        0
    );

    // The read side learns it from the events.
    let read = eventually(&http, &format!("/v1/orders/{order_id}"), &token, |v| {
        v["order"]["status"] == "ORDER_STATUS_CONFIRMED"
    })
    .await;
    assert_eq!(read["order"]["total"]["units"], "50");
    let mine = eventually(&http, "/v1/orders", &token, |v| {
        v["orders"][0]["id"] == order_id.as_str()
    })
    .await;
    assert_eq!(mine["orders"].as_array().unwrap().len(), 1);
    let notes = eventually(&http, "/v1/notifications", &token, |v| {
        v["notifications"]
            .as_array()
            .is_some_and(|all| all.iter().any(|n| n.to_string().contains(&order_id)))
    })
    .await;
    assert!(notes.to_string().contains("50"), "{notes}");

    // Another customer sees none of it.
    let (_, other) = shop.identity.customer().await;
    let foreign = http
        .call("GET", &format!("/v1/orders/{order_id}"), Some(&other), None)
        .await;
    expect_status(&foreign, 404);
}

#[tokio::test]
async fn errors_are_json_with_the_http_status_of_their_code() {
    let shop = TestShop::start().await;
    let gw = gateway(&shop.identity.url(), &shop_upstreams(&shop), &[]).await;
    let http = Http::new(gw.addr);
    let admin = Some(shop.admin.as_str());

    let missing = http
        .call(
            "GET",
            "/v1/products/0190aaaa-0000-7000-8000-000000000000",
            None,
            None,
        )
        .await;
    expect_status(&missing, 404);
    assert_eq!(missing.json()["code"], 5);
    assert!(missing.json()["details"].is_array());

    let invalid = http
        .call("POST", "/v1/products", admin, Some(json!({"name": ""})))
        .await;
    expect_status(&invalid, 400);
    let body = invalid.json();
    assert_eq!(body["code"], 3);
    let details = body["details"].as_array().unwrap();
    let bad_request = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .unwrap_or_else(|| panic!("no BadRequest in {body}"));
    assert!(
        !bad_request["fieldViolations"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let anonymous = http
        .call("POST", "/v1/products", None, Some(json!({})))
        .await;
    expect_status(&anonymous, 401);
    assert_eq!(anonymous.json()["code"], 16);
    let (_, customer) = shop.identity.customer().await;
    let forbidden = http
        .call("POST", "/v1/products", Some(&customer), Some(json!({})))
        .await;
    expect_status(&forbidden, 403);

    let malformed = http
        .send(
            http.builder("POST", "/v1/users")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{\"email\": ")))
                .unwrap(),
        )
        .await;
    expect_status(&malformed, 400);
    assert!(
        malformed.json()["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );

    let unknown_field = http
        .call(
            "POST",
            "/v1/users",
            None,
            Some(json!({"email": "a@b.c", "shoeSize": 44})),
        )
        .await;
    expect_status(&unknown_field, 400);
    assert!(
        unknown_field.text().contains("shoeSize"),
        "{}",
        unknown_field.text()
    );

    let wrong_type = http
        .call("GET", "/v1/products?pageSize=many", None, None)
        .await;
    expect_status(&wrong_type, 400);
    assert_eq!(
        wrong_type.json()["details"][0]["fieldViolations"][0]["field"],
        "pageSize"
    );

    let unknown_enum = http
        .call(
            "GET",
            "/v1/orders?status=ORDER_STATUS_LOST",
            Some(&customer),
            None,
        )
        .await;
    expect_status(&unknown_enum, 400);
    assert!(
        unknown_enum.text().contains("ORDER_STATUS_CONFIRMED"),
        "{}",
        unknown_enum.text()
    );

    let empty_path_field = http.call("DELETE", "/v1/products/", admin, None).await;
    expect_status(&empty_path_field, 400);
    assert!(
        empty_path_field.text().contains("\"id\""),
        "{}",
        empty_path_field.text()
    );

    expect_status(&http.call("GET", "/v1/nowhere", None, None).await, 404);
    let wrong_method = http.call("PUT", "/v1/products", None, None).await;
    expect_status(&wrong_method, 405);
    assert!(
        wrong_method.headers["allow"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_before_any_upstream() {
    let identity = TestIdentity::start().await;
    let gw = gateway(
        &identity.url(),
        &[],
        &[("MERCATO_MAX_REQUEST_BYTES", "1024")],
    )
    .await;
    let http = Http::new(gw.addr);
    let big = "x".repeat(4096);
    let reply = http
        .call("POST", "/v1/users", None, Some(json!({"displayName": big})))
        .await;
    expect_status(&reply, 413);
    assert!(
        reply.json()["message"].as_str().unwrap().contains("1024"),
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn streams_come_as_ndjson_or_server_sent_events() {
    let identity = TestIdentity::start().await;
    let stub = Notifications::start(3).await;
    let gw = gateway(&identity.url(), &[("notification", stub)], &[]).await;
    let http = Http::new(gw.addr);
    let (_, token) = identity.customer().await;

    let ndjson = http
        .call("GET", "/v1/notifications:stream", Some(&token), None)
        .await;
    expect_status(&ndjson, 200);
    assert_eq!(ndjson.headers["content-type"], "application/x-ndjson");
    let lines: Vec<serde_json::Value> = ndjson
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", ndjson.text());
    assert_eq!(lines[0]["notification"]["id"], "n1");
    assert_eq!(
        lines[0]["notification"]["title"],
        format!("Bearer {token}").as_str(),
        "the token is forwarded"
    );

    let events = http
        .send(
            http.builder("GET", "/v1/notifications:stream")
                .header("authorization", format!("Bearer {token}"))
                .header("accept", "text/event-stream")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    expect_status(&events, 200);
    assert_eq!(events.headers["content-type"], "text/event-stream");
    let text = events.text();
    let data: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(data.len(), 3, "{}", events.text());

    let anonymous = http
        .call("GET", "/v1/notifications:stream", None, None)
        .await;
    expect_status(&anonymous, 401);
}

#[tokio::test]
async fn the_request_id_is_kept_or_generated() {
    let identity = TestIdentity::start().await;
    let gw = gateway(&identity.url(), &[], &[]).await;
    let http = Http::new(gw.addr);
    let kept = http
        .send(
            http.builder("GET", "/v1/nowhere")
                .header("x-request-id", "my-id-1")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(kept.headers["x-request-id"], "my-id-1");
    let generated = http.call("GET", "/v1/nowhere", None, None).await;
    let id = generated.headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn callers_over_their_rate_get_429_with_retry_after() {
    let identity = TestIdentity::start().await;
    let gw = gateway(
        &identity.url(),
        &[],
        &[
            ("MERCATO_RATE_LIMIT_RPS", "1"),
            ("MERCATO_RATE_LIMIT_BURST", "2"),
        ],
    )
    .await;
    let http = Http::new(gw.addr);
    // Upstreams are down: the first calls are admitted (and fail upstream), the third is not.
    expect_status(&http.call("GET", "/v1/products/p1", None, None).await, 503);
    expect_status(&http.call("GET", "/v1/products/p1", None, None).await, 503);
    let limited = http.call("GET", "/v1/products/p1", None, None).await;
    expect_status(&limited, 429);
    assert_eq!(limited.json()["code"], 8);
    assert_eq!(limited.headers["retry-after"], "1");

    // A principal has its own bucket, apart from its IP's (identity is up: 200).
    let (_, token) = identity.customer().await;
    expect_status(
        &http.call("GET", "/v1/users/me", Some(&token), None).await,
        200,
    );
}

#[tokio::test]
async fn rest_clients_set_deadlines_and_metadata_the_grpc_gateway_way() {
    let identity = TestIdentity::start().await;
    let (stub, url) = crate::stubs::CatchAll::start().await;
    let gw = gateway(&identity.url(), &[("catalog", url)], &[]).await;
    let http = Http::new(gw.addr);
    let request = |delay: &str| {
        http.builder("GET", "/v1/products/p1")
            .header("grpc-timeout", "300m")
            .header("grpc-metadata-x-stub-delay-ms", delay)
            .header("grpc-metadata-x-mercato-user", "admin")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    expect_status(&http.send(request("0")).await, 200);
    let seen = stub.seen();
    assert!(
        seen[0].headers.get("x-mercato-user").is_none(),
        "internal headers stay out"
    );
    let sent = seen[0].headers["grpc-timeout"].to_str().unwrap().to_owned();
    let left = mercato_kernel::client::context::parse_timeout(&sent).unwrap();
    assert!(left <= std::time::Duration::from_millis(300), "{sent}");

    let started = std::time::Instant::now();
    let late = http.send(request("3000")).await;
    expect_status(&late, 504);
    assert_eq!(late.json()["code"], 4);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
