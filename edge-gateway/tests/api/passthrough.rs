//! Native gRPC through the gateway: generated clients pointed at the gateway's port reach the
//! real services, with status details, deadlines and failures intact.

use std::time::{Duration, Instant};

use mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient;
use mercato::pb::catalog::v1::{
    BatchGetProductsRequest, CreateProductRequest, GetProductRequest, ListProductsRequest, Product,
};
use mercato::pb::identity::v1::identity_service_client::IdentityServiceClient;
use mercato::pb::identity::v1::{
    GetMeRequest, IssueTokenRequest, PasswordGrant, RegisterRequest, issue_token_request,
};
use mercato::pb::inventory::v1::AdjustStockRequest;
use mercato::pb::inventory::v1::inventory_service_client::InventoryServiceClient;
use mercato::pb::order::v1::OrderStatus;
use mercato::pb::order::v1::order_service_client::OrderServiceClient;
use mercato_testkit::shop::{CARD_OK, TestShop, eur, order_request};
use mercato_testkit::{TestIdentity, assert_code, authed, unique_id, violated_fields};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::helpers::{DOWN, gateway, grpc};
use crate::stubs::CatchAll;

/// The shop's services as the gateway's upstreams.
pub fn shop_upstreams(shop: &TestShop) -> Vec<(&'static str, String)> {
    shop.upstreams()
}

#[tokio::test]
async fn a_customer_shops_with_generated_clients_through_the_gateway() {
    let mut shop = TestShop::start().await;
    shop.open_storefront().await;
    let gw = gateway(&shop.identity.url(), &shop_upstreams(&shop), &[]).await;
    let channel = grpc(gw.addr).await;

    let mut identity = IdentityServiceClient::new(channel.clone());
    let email = format!("g{}@mercato.test", unique_id());
    let user = identity
        .register(RegisterRequest {
            email: email.clone(),
            password: "long-enough-password".into(),
            display_name: "Grace".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let token = identity
        .issue_token(IssueTokenRequest {
            grant: Some(issue_token_request::Grant::Password(PasswordGrant {
                email,
                password: "long-enough-password".into(),
            })),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let me = identity
        .get_me(authed(GetMeRequest {}, &token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me.id, user.id);

    let mut catalog = CatalogServiceClient::new(channel.clone());
    let product = catalog
        .create_product(authed(
            CreateProductRequest {
                product: Some(Product {
                    sku: format!("GW-{}", unique_id().to_uppercase()),
                    name: "Gateway lamp".into(),
                    price: Some(eur(2500)),
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
    InventoryServiceClient::new(channel.clone())
        .adjust_stock(authed(
            AdjustStockRequest {
                product_id: product.id.clone(),
                delta: 5,
                reason: "delivery".into(),
            },
            &shop.admin,
        ))
        .await
        .unwrap();
    let listed = catalog
        .list_products(ListProductsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.products.iter().any(|p| p.id == product.id));
    let fetched = catalog
        .get_product(GetProductRequest {
            id: product.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(fetched.name, "Gateway lamp");

    let order = OrderServiceClient::new(channel.clone())
        .place_order(authed(
            order_request(&[(product.id.as_str(), 2)], CARD_OK, &unique_id()),
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(order.status(), OrderStatus::Confirmed, "{order:?}");
    assert_eq!(order.user_id, user.id);
    assert_eq!(shop.stock(&product.id).await.available, 3);

    // The basket way, then the read side and the notification it produces.
    use mercato::pb::basket::v1::basket_service_client::BasketServiceClient;
    use mercato::pb::basket::v1::{AddItemRequest, CheckoutRequest};
    use mercato::pb::notification::v1::ListNotificationsRequest;
    use mercato::pb::notification::v1::notification_service_client::NotificationServiceClient;
    let mut basket = BasketServiceClient::new(channel.clone());
    basket
        .add_item(authed(
            AddItemRequest {
                product_id: product.id.clone(),
                quantity: 1,
            },
            &token,
        ))
        .await
        .unwrap();
    let checkout = basket
        .checkout(authed(
            CheckoutRequest {
                card: Some(mercato_testkit::shop::card(CARD_OK)),
                shipping_address: Some(mercato_testkit::shop::address()),
                idempotency_key: unique_id(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(checkout.status(), OrderStatus::Confirmed);
    let mut notifications = NotificationServiceClient::new(channel.clone());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let listed = notifications
            .list_notifications(authed(ListNotificationsRequest::default(), &token))
            .await
            .unwrap()
            .into_inner();
        let text = format!("{listed:?}");
        if text.contains(&order.id) && text.contains(&checkout.id) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no notifications: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn status_details_and_policies_survive_the_passthrough() {
    let shop = TestShop::start().await;
    let gw = gateway(&shop.identity.url(), &shop_upstreams(&shop), &[]).await;
    let mut catalog = CatalogServiceClient::new(grpc(gw.addr).await);

    let invalid = catalog
        .create_product(authed(
            CreateProductRequest {
                product: Some(Product::default()),
            },
            &shop.admin,
        ))
        .await;
    let status = assert_code(invalid, Code::InvalidArgument);
    assert!(
        violated_fields(&status).iter().any(|f| f.contains("sku")),
        "{status:?}"
    );

    let (_, customer) = shop.identity.customer().await;
    assert_code(
        catalog
            .create_product(authed(CreateProductRequest::default(), &customer))
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        catalog
            .create_product(CreateProductRequest::default())
            .await,
        Code::Unauthenticated,
    );
    let forged = catalog
        .get_product(authed(GetProductRequest { id: "x".into() }, "not.a.jwt"))
        .await;
    assert_code(forged, Code::Unauthenticated);
    // Internal RPCs do not exist from outside, even for a service account.
    assert_code(
        catalog
            .batch_get_products(authed(
                BatchGetProductsRequest {
                    ids: vec!["x".into()],
                },
                &shop.service,
            ))
            .await,
        Code::Unimplemented,
    );
    assert_code(
        catalog
            .get_product(GetProductRequest {
                id: "0190aaaa-0000-7000-8000-000000000000".into(),
            })
            .await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn a_down_upstream_answers_unavailable_quickly() {
    let identity = TestIdentity::start().await;
    let gw = gateway(&identity.url(), &[("catalog", DOWN.into())], &[]).await;
    let mut catalog = CatalogServiceClient::new(grpc(gw.addr).await);
    let started = Instant::now();
    let status = assert_code(
        catalog
            .get_product(GetProductRequest { id: "x".into() })
            .await,
        Code::Unavailable,
    );
    assert!(status.message().contains("catalog"), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn deadlines_reach_the_upstream_and_bound_the_call() {
    let identity = TestIdentity::start().await;
    let (stub, stub_url) = CatchAll::start().await;
    let gw = gateway(&identity.url(), &[("catalog", stub_url.clone())], &[]).await;
    let mut catalog = CatalogServiceClient::new(grpc(gw.addr).await);

    let mut request = tonic::Request::new(GetProductRequest { id: "x".into() });
    request.set_timeout(Duration::from_secs(2));
    catalog.get_product(request).await.unwrap();
    let seen = stub.seen();
    let timeout = seen[0].headers["grpc-timeout"].to_str().unwrap().to_owned();
    let left = mercato_kernel::client::context::parse_timeout(&timeout).unwrap();
    assert!(
        left <= Duration::from_secs(2) && left > Duration::from_secs(1),
        "{timeout}"
    );

    // Without a client deadline, the gateway's default for unary calls bounds the call.
    let gw = gateway(
        &identity.url(),
        &[("catalog", stub_url)],
        &[("MERCATO_UNARY_TIMEOUT_MS", "200")],
    )
    .await;
    let mut catalog = CatalogServiceClient::new(grpc(gw.addr).await);
    let mut slow = tonic::Request::new(GetProductRequest { id: "x".into() });
    slow.metadata_mut()
        .insert("x-stub-delay-ms", "3000".parse().unwrap());
    let started = Instant::now();
    assert_code(catalog.get_product(slow).await, Code::DeadlineExceeded);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn internal_headers_are_stripped_and_the_token_and_request_id_forwarded() {
    let identity = TestIdentity::start().await;
    let (stub, url) = CatchAll::start().await;
    let gw = gateway(&identity.url(), &[("catalog", url)], &[]).await;
    let (_, token) = identity.customer().await;
    let mut catalog = CatalogServiceClient::new(grpc(gw.addr).await);

    let mut request = authed(GetProductRequest { id: "x".into() }, &token);
    request
        .metadata_mut()
        .insert("x-mercato-user", "admin".parse().unwrap());
    request
        .metadata_mut()
        .insert("x-forwarded-for", "10.9.9.9".parse().unwrap());
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-42".parse().unwrap());
    catalog.get_product(request).await.unwrap();
    catalog
        .get_product(GetProductRequest { id: "y".into() })
        .await
        .unwrap();

    let seen = stub.seen();
    let first = &seen[0].headers;
    assert!(first.get("x-mercato-user").is_none());
    assert_eq!(first["x-forwarded-for"], "127.0.0.1");
    assert_eq!(first["x-request-id"], "trace-me-42");
    assert_eq!(first["authorization"], format!("Bearer {token}").as_str());
    let generated = seen[1].headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
}

#[tokio::test]
async fn reflection_lists_the_public_services_and_health_answers() {
    let identity = TestIdentity::start().await;
    let gw = gateway(&identity.url(), &[], &[]).await;
    let channel = grpc(gw.addr).await;

    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"mercato.catalog.v1.CatalogService".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"mercato.orderquery.v1.OrderQueryService".to_owned()));
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()));
}

#[tokio::test]
async fn unknown_methods_are_unimplemented_and_leave_no_metrics() {
    let identity = TestIdentity::start().await;
    let gw = gateway(&identity.url(), &[], &[]).await;
    let contracts = edge_gateway::contracts::Contracts::mercato().unwrap();
    let input = contracts
        .pool()
        .get_message_by_name("mercato.catalog.v1.GetProductRequest")
        .unwrap();
    for path in [
        "/mercato.catalog.v1.CatalogService/StealProducts",
        "/no.such.v1.Service/Call",
    ] {
        let mut client = tonic::client::Grpc::new(grpc(gw.addr).await);
        client.ready().await.unwrap();
        let outcome = client
            .unary(
                tonic::Request::new(prost_reflect::DynamicMessage::new(input.clone())),
                http::uri::PathAndQuery::from_static(path),
                edge_gateway::codec::DynamicCodec::new(input.clone()),
            )
            .await;
        assert_code(outcome, Code::Unimplemented);
    }
    let metrics = crate::helpers::Http::new(gw.admin_addr)
        .call("GET", "/metrics", None, None)
        .await
        .text();
    assert!(!metrics.contains("StealProducts"), "{metrics}");
}

/// A catalog that is up but reports itself NOT_SERVING, as a catalog whose database is gone
/// does; returns its URL.
async fn not_serving_catalog() -> String {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(
            "mercato.catalog.v1.CatalogService",
            tonic_health::ServingStatus::NotServing,
        )
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

#[tokio::test]
async fn health_of_a_public_service_is_answered_by_its_upstream() {
    let identity = TestIdentity::start().await;
    let catalog = not_serving_catalog().await;
    let gw = gateway(
        &identity.url(),
        &[("catalog", catalog), ("inventory", DOWN.into())],
        &[],
    )
    .await;
    let mut health = HealthClient::new(grpc(gw.addr).await);
    let check = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };

    // Identity is up and serving; the catalog says it is not; the gateway is.
    let identity_health = health
        .check(check("mercato.identity.v1.IdentityService"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(identity_health.status, 1, "SERVING");
    let catalog_health = health
        .check(check("mercato.catalog.v1.CatalogService"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(catalog_health.status, 2, "NOT_SERVING, the upstream's word");
    let own = health.check(check("")).await.unwrap().into_inner();
    assert_eq!(own.status, 1, "the gateway's own");

    // A down upstream: UNAVAILABLE naming it; unknown names: NOT_FOUND.
    let down = assert_code(
        health
            .check(check("mercato.inventory.v1.InventoryService"))
            .await,
        Code::Unavailable,
    );
    assert!(down.message().contains("inventory"), "{down:?}");
    for unknown in ["no.such.v1.Service", "mercato.events.v1.Envelope"] {
        assert_code(health.check(check(unknown)).await, Code::NotFound);
    }

    // Watch streams the upstream's status.
    let mut watch = health
        .watch(check("mercato.identity.v1.IdentityService"))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the current status at once")
        .unwrap()
        .unwrap();
    assert_eq!(first.status, 1);
}

/// Asks the gateway's reflection (v1) one question; a refusal may come as an error response
/// or as the stream's status.
async fn reflect(
    channel: tonic::transport::Channel,
    question: MessageRequest,
) -> Result<MessageResponse, tonic::Status> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(question),
    };
    ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .map(|answer| answer.unwrap().message_response.unwrap())
}

#[tokio::test]
async fn reflection_describes_the_public_rpcs_and_no_service_only_one() {
    use prost::Message as _;

    let identity = TestIdentity::start().await;
    let gw = gateway(&identity.url(), &[], &[]).await;
    let channel = grpc(gw.addr).await;
    let contracts = edge_gateway::contracts::Contracts::mercato().unwrap();

    let MessageResponse::ListServicesResponse(list) =
        reflect(channel.clone(), MessageRequest::ListServices(String::new()))
            .await
            .unwrap()
    else {
        panic!("not a service list");
    };
    let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();

    // Every advertised Mercato service, as reflection describes it: all its public RPCs,
    // none of its service-only ones.
    let mut described = 0;
    for service in services.iter().filter(|s| s.starts_with("mercato.")) {
        let MessageResponse::FileDescriptorResponse(files) = reflect(
            channel.clone(),
            MessageRequest::FileContainingSymbol(service.clone()),
        )
        .await
        .unwrap() else {
            panic!("{service}: no file");
        };
        let (package, name) = service.rsplit_once('.').unwrap();
        let methods: Vec<String> = files
            .file_descriptor_proto
            .iter()
            .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
            .filter(|file| file.package() == package)
            .flat_map(|file| file.service)
            .filter(|s| s.name() == name)
            .flat_map(|s| s.method)
            .map(|m| m.name().to_owned())
            .collect();
        for method in contracts.methods() {
            if method.descriptor.parent_service().full_name() != service {
                continue;
            }
            let advertised = methods.contains(&method.descriptor.name().to_owned());
            assert_eq!(advertised, !method.is_internal(), "{}", method.path);
            described += 1;
        }
    }
    assert!(described > 40, "{described} methods checked");
    for public in [
        "mercato.catalog.v1.CatalogService",
        "mercato.inventory.v1.InventoryService",
        "mercato.payment.v1.PaymentService",
        "mercato.order.v1.OrderService",
    ] {
        assert!(services.contains(&public.to_owned()), "{services:?}");
    }

    // Service-only RPCs are not even symbols.
    for internal in [
        "mercato.inventory.v1.InventoryService.ReserveStock",
        "mercato.inventory.v1.InventoryService.CommitReservation",
        "mercato.payment.v1.PaymentService.Charge",
        "mercato.catalog.v1.CatalogService.BatchGetProducts",
    ] {
        let answer = reflect(
            channel.clone(),
            MessageRequest::FileContainingSymbol(internal.to_owned()),
        )
        .await;
        let not_found = match &answer {
            Ok(MessageResponse::ErrorResponse(e)) => e.error_code == Code::NotFound as i32,
            Err(status) => status.code() == Code::NotFound,
            Ok(_) => false,
        };
        assert!(not_found, "{internal}: {answer:?}");
    }
}

#[tokio::test]
async fn only_the_gateways_own_deadline_counts_towards_the_circuit() {
    let identity = TestIdentity::start().await;
    let (_stub, url) = CatchAll::start().await;
    let gw = gateway(
        &identity.url(),
        &[("catalog", url)],
        &[("MERCATO_UNARY_TIMEOUT_MS", "100")],
    )
    .await;
    let mut catalog = CatalogServiceClient::new(grpc(gw.addr).await);
    let slow = |grpc_timeout: Option<&'static str>| {
        let mut request = tonic::Request::new(GetProductRequest { id: "x".into() });
        request
            .metadata_mut()
            .insert("x-stub-delay-ms", "2000".parse().unwrap());
        if let Some(timeout) = grpc_timeout {
            request
                .metadata_mut()
                .insert("grpc-timeout", timeout.parse().unwrap());
        }
        request
    };

    // Callers whose own short deadlines expire: their budget, not the upstream's health.
    // (The client library ends the call itself at its deadline, as the gateway does.)
    for _ in 0..6 {
        let status = catalog
            .get_product(slow(Some("50m")))
            .await
            .expect_err("past its deadline");
        assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{status:?}"
        );
    }
    catalog
        .get_product(GetProductRequest { id: "x".into() })
        .await
        .expect("the circuit is closed");

    // Calls outliving the gateway's own deadline: the upstream is not answering.
    for _ in 0..5 {
        assert_code(
            catalog.get_product(slow(None)).await,
            Code::DeadlineExceeded,
        );
    }
    let refused = assert_code(
        catalog
            .get_product(GetProductRequest { id: "x".into() })
            .await,
        Code::Unavailable,
    );
    assert!(refused.message().contains("catalog"), "{refused:?}");
}
