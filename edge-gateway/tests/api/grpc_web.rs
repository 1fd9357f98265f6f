//! gRPC-web (binary and text) through the gateway, unary and server streaming, as a browser
//! would send it over HTTP/1.1, and the CORS answers browsers need.

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use mercato::pb::notification::v1::{
    ListNotificationsRequest, ListNotificationsResponse, StreamNotificationsRequest,
    StreamNotificationsResponse,
};
use mercato_testkit::TestIdentity;
use prost::Message;

use crate::helpers::{Http, Reply, expect_status, gateway};
use crate::stubs::Notifications;

const LIST: &str = "/mercato.notification.v1.NotificationService/ListNotifications";
const STREAM: &str = "/mercato.notification.v1.NotificationService/StreamNotifications";
const ORIGIN: &str = "https://shop.example";

fn frame(message: &impl Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes concatenated, separately padded base64 chunks (how servers write -text bodies).
fn decode_text(text: &[u8]) -> Vec<u8> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = match rest.iter().position(|b| *b == b'=') {
            Some(first) => first + rest[first..].iter().take_while(|b| **b == b'=').count(),
            None => rest.len(),
        };
        out.extend(engine.decode(&rest[..end]).unwrap());
        rest = &rest[end..];
    }
    out
}

/// The messages and the trailers of a gRPC-web response body.
fn parse(body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let mut messages = Vec::new();
    let mut trailers = String::new();
    let mut rest = body;
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        // A frame still arriving on an open stream.
        let Some(payload) = rest.get(5..5 + len) else {
            break;
        };
        if flag & 0x80 == 0 {
            messages.push(payload.to_vec());
        } else {
            trailers = String::from_utf8(payload.to_vec()).unwrap();
        }
        rest = &rest[5 + len..];
    }
    (messages, trailers)
}

async fn call(http: &Http, path: &str, content_type: &str, body: Vec<u8>, token: &str) -> Reply {
    let text = content_type.contains("text");
    let body = if text {
        base64::engine::general_purpose::STANDARD
            .encode(body)
            .into_bytes()
    } else {
        body
    };
    let reply = http
        .send(
            http.builder("POST", path)
                .header("content-type", content_type)
                .header("accept", content_type)
                .header("x-grpc-web", "1")
                .header("origin", ORIGIN)
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::from(body)))
                .unwrap(),
        )
        .await;
    let text_reply = reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/grpc-web-text");
    assert_eq!(text, text_reply, "the answer is encoded like the request");
    if text {
        Reply {
            body: decode_text(&reply.body).into(),
            ..reply
        }
    } else {
        reply
    }
}

#[tokio::test]
async fn grpc_web_unary_and_server_streams_work_in_binary_and_text() {
    let identity = TestIdentity::start().await;
    let stub = Notifications::start(3).await;
    let gw = gateway(
        &identity.url(),
        &[("notification", stub)],
        &[("MERCATO_CORS_ALLOWED_ORIGINS", ORIGIN)],
    )
    .await;
    let http = Http::new(gw.addr);
    let (_, token) = identity.customer().await;

    for content_type in [
        "application/grpc-web",
        "application/grpc-web+proto",
        "application/grpc-web-text",
    ] {
        let unary = call(
            &http,
            LIST,
            content_type,
            frame(&ListNotificationsRequest::default()),
            &token,
        )
        .await;
        expect_status(&unary, 200);
        assert_eq!(unary.headers["access-control-allow-origin"], ORIGIN);
        // A unary answer arrives whole, sized; a stream's length is not known up front.
        let length: usize = unary.headers["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if !content_type.contains("text") {
            assert_eq!(length, unary.body.len(), "{content_type}");
        }
        let (messages, trailers) = parse(&unary.body);
        assert!(
            trailers.contains("grpc-status:0"),
            "{content_type}: {trailers:?} {:?} {:?}",
            unary.headers,
            unary.body
        );
        let response = ListNotificationsResponse::decode(&messages[0][..]).unwrap();
        assert_eq!(response.unread_count, 1);
        assert_eq!(response.notifications[0].title, format!("Bearer {token}"));

        let stream = call(
            &http,
            STREAM,
            content_type,
            frame(&StreamNotificationsRequest::default()),
            &token,
        )
        .await;
        expect_status(&stream, 200);
        assert!(
            stream.headers.get("content-length").is_none(),
            "{content_type}"
        );
        let (messages, trailers) = parse(&stream.body);
        assert!(
            trailers.contains("grpc-status:0"),
            "{content_type}: {trailers:?}"
        );
        let ids: Vec<String> = messages
            .iter()
            .map(|m| {
                StreamNotificationsResponse::decode(&m[..])
                    .unwrap()
                    .notification
                    .unwrap()
                    .id
            })
            .collect();
        assert_eq!(ids, ["n1", "n2", "n3"], "{content_type}");
    }
}

#[tokio::test]
async fn grpc_web_errors_and_refusals_carry_their_status() {
    let identity = TestIdentity::start().await;
    let stub = Notifications::start(1).await;
    let gw = gateway(&identity.url(), &[("notification", stub)], &[]).await;
    let http = Http::new(gw.addr);
    let (_, token) = identity.customer().await;

    let invalid = call(
        &http,
        LIST,
        "application/grpc-web+proto",
        frame(&ListNotificationsRequest {
            page_size: -1,
            ..Default::default()
        }),
        &token,
    )
    .await;
    let status = invalid
        .headers
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_else(|| parse(&invalid.body).1);
    assert!(status.contains('3'), "INVALID_ARGUMENT: {status:?}");

    let anonymous = http
        .send(
            http.builder("POST", LIST)
                .header("content-type", "application/grpc-web+proto")
                .body(Full::new(Bytes::from(frame(
                    &ListNotificationsRequest::default(),
                ))))
                .unwrap(),
        )
        .await;
    expect_status(&anonymous, 200);
    assert_eq!(anonymous.headers["grpc-status"], "16", "UNAUTHENTICATED");
}

#[tokio::test]
async fn cors_preflights_allow_configured_origins_only() {
    let identity = TestIdentity::start().await;
    let gw = gateway(
        &identity.url(),
        &[],
        &[("MERCATO_CORS_ALLOWED_ORIGINS", ORIGIN)],
    )
    .await;
    let http = Http::new(gw.addr);
    let preflight = |origin: &'static str| {
        http.builder("OPTIONS", LIST)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,authorization",
            )
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let allowed = http.send(preflight(ORIGIN)).await;
    expect_status(&allowed, 200);
    assert_eq!(allowed.headers["access-control-allow-origin"], ORIGIN);
    let methods = allowed.headers["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");

    let other = http.send(preflight("https://evil.example")).await;
    assert!(other.headers.get("access-control-allow-origin").is_none());

    let reply = http
        .send(
            http.builder("GET", "/healthz")
                .header("origin", ORIGIN)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    let exposed = reply.headers["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("grpc-message"),
        "{exposed}"
    );
}

#[tokio::test]
async fn a_browser_follows_its_order_over_grpc_web_against_the_real_read_side() {
    use mercato::pb::order::v1::OrderStatus;
    use mercato::pb::orderquery::v1::{GetOrderRequest, GetOrderResponse, WatchOrderRequest};
    use mercato_testkit::authed;
    use mercato_testkit::shop::{CARD_OK, TestShop, order_request};

    let mut shop = TestShop::start().await;
    shop.open_storefront().await;
    let gw = gateway(&shop.identity.url(), &shop.upstreams(), &[]).await;
    let http = Http::new(gw.addr);
    let lamp = shop.product("Web lamp", 1000, 3).await;
    let (_, token) = shop.identity.customer().await;
    let order = shop
        .orders()
        .await
        .place_order(authed(
            order_request(&[(&lamp.id, 1)], CARD_OK, "web"),
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();

    // Unary: the read side has the order once its events are projected; it may show the
    // order PENDING first, while the confirmation is still on its way.
    let get = GetOrderRequest {
        id: order.id.clone(),
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let reply = call(
            &http,
            "/mercato.orderquery.v1.OrderQueryService/GetOrder",
            "application/grpc-web+proto",
            frame(&get),
            &token,
        )
        .await;
        let (messages, trailers) = parse(&reply.body);
        if let Some(message) = messages.first() {
            let projected = GetOrderResponse::decode(message.as_slice()).unwrap();
            let status = projected.order.unwrap().status();
            if status == OrderStatus::Confirmed {
                break;
            }
            assert_eq!(status, OrderStatus::Pending);
        } else {
            assert!(trailers.contains("grpc-status:5"), "{trailers}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never projected as confirmed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Server stream: WatchOrder sends the current state first and stays open for changes;
    // read the first message as it arrives, then leave like a closed browser tab.
    let watch = WatchOrderRequest {
        id: order.id.clone(),
    };
    let response = http
        .open(
            http.builder(
                "POST",
                "/mercato.orderquery.v1.OrderQueryService/WatchOrder",
            )
            .header("content-type", "application/grpc-web+proto")
            .header("accept", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .header("origin", ORIGIN)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(frame(&watch))))
            .unwrap(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = Vec::new();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            use http_body_util::BodyExt as _;
            let frame = body.frame().await.expect("stream open").expect("frame");
            if let Ok(data) = frame.into_data() {
                received.extend_from_slice(&data);
            }
            if let Some(message) = parse(&received).0.first() {
                break mercato::pb::orderquery::v1::WatchOrderResponse::decode(message.as_slice())
                    .unwrap();
            }
        }
    })
    .await
    .expect("the current state is streamed at once");
    assert_eq!(first.order.unwrap().id, order.id);
}

#[tokio::test]
async fn grpc_and_grpc_web_answers_carry_the_request_id() {
    use crate::stubs::CatchAll;

    let identity = TestIdentity::start().await;
    let (_stub, url) = CatchAll::start().await;
    let gw = gateway(
        &identity.url(),
        &[("catalog", url)],
        &[("MERCATO_CORS_ALLOWED_ORIGINS", ORIGIN)],
    )
    .await;
    let http = Http::new(gw.addr);
    let get = "/mercato.catalog.v1.CatalogService/GetProduct";
    let send = |path: &'static str, content_type: &'static str, id: Option<&'static str>| {
        let mut builder = http
            .builder("POST", path)
            .header("content-type", content_type)
            .header("origin", ORIGIN);
        if let Some(id) = id {
            builder = builder.header("x-request-id", id);
        }
        http.send(
            builder
                .body(Full::new(Bytes::from(frame(
                    &mercato::pb::catalog::v1::GetProductRequest { id: "p".into() },
                ))))
                .unwrap(),
        )
    };

    // A forwarded gRPC-web call keeps the caller's id, and the browser may read it.
    let kept = send(get, "application/grpc-web+proto", Some("web-req-7")).await;
    expect_status(&kept, 200);
    assert!(parse(&kept.body).1.contains("grpc-status:0"));
    assert_eq!(kept.headers["x-request-id"], "web-req-7");
    let exposed = kept.headers["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("x-request-id"), "{exposed}");

    // Without one, or refused at the door, a generated one.
    for path in [get, "/mercato.catalog.v1.CatalogService/StealProducts"] {
        let generated = send(path, "application/grpc-web", None).await;
        let id = generated.headers["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{path}: {id}");
    }

    // Native gRPC (HTTP/2) answers carry it too.
    let mut catalog = mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient::new(
        crate::helpers::grpc(gw.addr).await,
    );
    let mut request =
        tonic::Request::new(mercato::pb::catalog::v1::GetProductRequest { id: "p".into() });
    request
        .metadata_mut()
        .insert("x-request-id", "native-9".parse().unwrap());
    let reply = catalog.get_product(request).await.unwrap();
    assert_eq!(reply.metadata().get("x-request-id").unwrap(), "native-9");
}

/// The origins `make run` gives its gateway (scripts/run, `DEV_CORS_ORIGINS`).
fn make_run_origins() -> String {
    let script = include_str!("../../../scripts/run");
    let line = script
        .lines()
        .find_map(|line| line.strip_prefix("DEV_CORS_ORIGINS="))
        .expect("scripts/run sets DEV_CORS_ORIGINS");
    line.trim_matches('\'').trim_matches('"').to_owned()
}

#[tokio::test]
async fn make_run_lets_a_local_dev_server_on_any_port_call_the_gateway() {
    let identity = TestIdentity::start().await;
    let origins = make_run_origins();
    let gw = gateway(
        &identity.url(),
        &[],
        &[("MERCATO_CORS_ALLOWED_ORIGINS", origins.as_str())],
    )
    .await;
    let http = Http::new(gw.addr);
    let preflight = |path: &'static str, origin: &'static str, method: &'static str| {
        http.send(
            http.builder("OPTIONS", path)
                .header("origin", origin)
                .header("access-control-request-method", method)
                .header(
                    "access-control-request-headers",
                    "content-type,x-grpc-web,authorization",
                )
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    };
    for (path, origin, method) in [
        ("/v1/products", "http://localhost:5173", "GET"),
        (LIST, "http://localhost:5173", "POST"),
        ("/v1/basket/items", "http://127.0.0.1:3000", "POST"),
    ] {
        let allowed = preflight(path, origin, method).await;
        assert!(
            allowed.status == 200 || allowed.status == 204,
            "{origin} {path}: {}",
            allowed.status
        );
        assert_eq!(allowed.headers["access-control-allow-origin"], origin);
        let methods = allowed.headers["access-control-allow-methods"]
            .to_str()
            .unwrap();
        assert!(methods.contains(method), "{methods}");
        let headers = allowed.headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        for wanted in ["content-type", "x-grpc-web", "authorization"] {
            assert!(headers.contains(wanted), "{headers}");
        }
    }
    for refused in [
        "https://localhost:5173",
        "http://localhost.evil.example:5173",
        "https://shop.example",
    ] {
        let reply = preflight("/v1/products", refused, "GET").await;
        assert!(
            reply.headers.get("access-control-allow-origin").is_none(),
            "{refused}"
        );
    }
    let page = http
        .send(
            http.builder("GET", "/v1/products")
                .header("origin", "http://localhost:5173")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(
        page.headers["access-control-allow-origin"],
        "http://localhost:5173"
    );
}
