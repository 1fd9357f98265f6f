//! The shop over gRPC with the generated tonic clients: native gRPC on a few HTTP/2
//! connections, or gRPC-web over HTTP/1.1 as a browser sends it (tonic-web's client layer on
//! a pooled hyper client). Both transports are boxed into one type, so the calls below are
//! written once.
//!
//! Native gRPC keeps several connections because the gateway serves each client connection
//! on one core: a single connection would measure one gateway worker, not the gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mercato::pb::basket::v1::basket_service_client::BasketServiceClient;
use mercato::pb::basket::v1::{
    AddItemRequest, ApplyCouponRequest, Basket, CheckoutRequest, ClearBasketRequest,
    GetBasketRequest, UpdateItemRequest,
};
use mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient;
use mercato::pb::catalog::v1::{GetProductRequest, ListCategoriesRequest, ListProductsRequest};
use mercato::pb::discount::v1::ListCouponsRequest;
use mercato::pb::discount::v1::discount_service_client::DiscountServiceClient;
use mercato::pb::identity::v1::identity_service_client::IdentityServiceClient;
use mercato::pb::identity::v1::{
    IssueTokenRequest, IssueTokenResponse, PasswordGrant, RefreshTokenGrant, RegisterRequest,
    issue_token_request,
};
use mercato::pb::inventory::v1::inventory_service_client::InventoryServiceClient;
use mercato::pb::inventory::v1::{AdjustStockRequest, GetStockRequest};
use mercato::pb::notification::v1::notification_service_client::NotificationServiceClient;
use mercato::pb::notification::v1::{ListNotificationsRequest, MarkReadRequest};
use mercato::pb::order::v1::order_service_client::OrderServiceClient;
use mercato::pb::order::v1::{OrderStatus as PbStatus, ShipOrderRequest, ShippingAddress};
use mercato::pb::orderquery::v1::order_query_service_client::OrderQueryServiceClient;
use mercato::pb::orderquery::v1::{GetOrderRequest, ListOrdersRequest, WatchOrderRequest};
use mercato::pb::payment::v1::Card;
use mercato::pb::review::v1::review_service_client::ReviewServiceClient;
use mercato::pb::review::v1::{GetRatingSummaryRequest, ListReviewsRequest};
use tonic::body::Body;
use tonic::transport::Endpoint;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

use crate::failure::{CallError, Failure, Unexpected};
use crate::shop::{
    Address, BasketView, Bearer, Call, CardDetails, Coupon, Notice, OrderStatus, OrderView,
    Product, ProductPage, ProductQuery, Shop, Tokens, card_refused,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Either transport, as the generated clients take it.
type Transport = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, TransportError>;

/// A transport's failure (connect, I/O), whichever transport. A concrete type rather than a
/// boxed error: with `Box<dyn Error>` as the service error, the compiler cannot prove the
/// generated clients' futures `Send` (a higher-ranked lifetime limitation).
#[derive(Debug)]
pub struct TransportError(BoxError);

impl TransportError {
    fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The target URL could not be used.
#[derive(Debug, thiserror::Error)]
#[error("'{target}' is not a usable http:// URL: {source}")]
pub struct BadTarget {
    target: String,
    #[source]
    source: BoxError,
}

/// The shop over gRPC (native or gRPC-web).
#[derive(Clone)]
pub struct GrpcShop {
    transports: Arc<[Transport]>,
    next: Arc<AtomicUsize>,
    origin: Uri,
    timeout: Duration,
}

impl std::fmt::Debug for GrpcShop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcShop")
            .field("origin", &self.origin)
            .field("connections", &self.transports.len())
            .finish()
    }
}

fn origin(target: &str) -> Result<Uri, BadTarget> {
    target.parse::<Uri>().map_err(|e| BadTarget {
        target: target.to_owned(),
        source: e.into(),
    })
}

impl GrpcShop {
    /// Native gRPC to `target` over `connections` HTTP/2 connections (opened on first use),
    /// each call sent on the next one in turn; `timeout` goes out as each call's deadline.
    pub fn native(target: &str, connections: usize, timeout: Duration) -> Result<Self, BadTarget> {
        let endpoint = Endpoint::from_shared(target.to_owned())
            .map_err(|e| BadTarget {
                target: target.to_owned(),
                source: e.into(),
            })?
            .tcp_nodelay(true)
            .connect_timeout(timeout)
            .http2_keep_alive_interval(Duration::from_secs(30));
        let transports = (0..connections.max(1))
            .map(|_| {
                let channel = endpoint.connect_lazy();
                BoxCloneSyncService::new(channel.map_err(TransportError::new))
            })
            .collect();
        Ok(Self {
            transports,
            next: Arc::new(AtomicUsize::new(0)),
            origin: origin(target)?,
            timeout,
        })
    }

    /// gRPC-web (binary) to `target` over a pool of HTTP/1.1 connections, as a browser
    /// talks to the gateway.
    pub fn web(target: &str, timeout: Duration) -> Result<Self, BadTarget> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let service = tower::ServiceBuilder::new()
            .layer(tonic_web::GrpcWebClientLayer::new())
            .service(client)
            .map_response(|response| response.map(Body::new))
            .map_err(TransportError::new);
        Ok(Self {
            transports: Arc::new([BoxCloneSyncService::new(service)]),
            next: Arc::new(AtomicUsize::new(0)),
            origin: origin(target)?,
            timeout,
        })
    }

    fn transport(&self) -> Transport {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.transports.len();
        self.transports[i].clone()
    }

    fn request<T>(&self, message: T, auth: Option<&Bearer>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        if let Some(auth) = auth {
            request
                .metadata_mut()
                .insert("authorization", auth.metadata.clone());
        }
        request
    }

    fn identity(&self) -> IdentityServiceClient<Transport> {
        IdentityServiceClient::with_origin(self.transport(), self.origin.clone())
    }

    fn catalog(&self) -> CatalogServiceClient<Transport> {
        CatalogServiceClient::with_origin(self.transport(), self.origin.clone())
    }

    fn reviews(&self) -> ReviewServiceClient<Transport> {
        ReviewServiceClient::with_origin(self.transport(), self.origin.clone())
    }

    fn inventory(&self) -> InventoryServiceClient<Transport> {
        InventoryServiceClient::with_origin(self.transport(), self.origin.clone())
    }

    fn basket(&self) -> BasketServiceClient<Transport> {
        BasketServiceClient::with_origin(self.transport(), self.origin.clone())
    }

    fn orders(&self) -> OrderServiceClient<Transport> {
        OrderServiceClient::with_origin(self.transport(), self.origin.clone())
    }

    fn order_query(&self) -> OrderQueryServiceClient<Transport> {
        OrderQueryServiceClient::with_origin(self.transport(), self.origin.clone())
    }

    fn notifications(&self) -> NotificationServiceClient<Transport> {
        NotificationServiceClient::with_origin(self.transport(), self.origin.clone())
    }

    fn discount(&self) -> DiscountServiceClient<Transport> {
        DiscountServiceClient::with_origin(self.transport(), self.origin.clone())
    }

    async fn issue_token(&self, grant: issue_token_request::Grant) -> Call<Tokens> {
        let request = self.request(IssueTokenRequest { grant: Some(grant) }, None);
        let IssueTokenResponse {
            access_token,
            expires_in,
            refresh_token,
            ..
        } = self.identity().issue_token(request).await?.into_inner();
        Ok(Tokens {
            access: access_token,
            expires_in: Duration::from_secs(u64::try_from(expires_in).unwrap_or(0)),
            refresh: refresh_token,
        })
    }
}

fn basket_view(basket: Option<Basket>) -> Call<BasketView> {
    let basket = basket.ok_or_else(|| CallError::malformed("answer without a basket"))?;
    Ok(BasketView {
        lines: basket.lines.len(),
        coupon_inapplicable: basket.coupon_inapplicable_reason != 0,
    })
}

fn order_view(order: mercato::pb::orderquery::v1::OrderView) -> OrderView {
    let card_refused = order
        .payment
        .as_ref()
        .is_some_and(|p| card_refused(p.failure_reason));
    OrderView {
        status: OrderStatus::from_proto(order.status),
        id: order.id,
        user_id: order.user_id,
        card_refused,
        cancellation_reason: order.cancellation_reason,
    }
}

impl Shop for GrpcShop {
    async fn register(&self, email: &str, password: &str, display_name: &str) -> Call<String> {
        let request = self.request(
            RegisterRequest {
                email: email.to_owned(),
                password: password.to_owned(),
                display_name: display_name.to_owned(),
            },
            None,
        );
        let user = self.identity().register(request).await?.into_inner().user;
        user.map(|u| u.id)
            .ok_or_else(|| CallError::malformed("Register answered without a user"))
    }

    async fn sign_in(&self, email: &str, password: &str) -> Call<Tokens> {
        self.issue_token(issue_token_request::Grant::Password(PasswordGrant {
            email: email.to_owned(),
            password: password.to_owned(),
        }))
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> Call<Tokens> {
        self.issue_token(issue_token_request::Grant::RefreshToken(
            RefreshTokenGrant {
                refresh_token: refresh_token.to_owned(),
            },
        ))
        .await
    }

    async fn list_categories(&self, auth: &Bearer) -> Call<Vec<String>> {
        let request = self.request(ListCategoriesRequest {}, Some(auth));
        let categories = self
            .catalog()
            .list_categories(request)
            .await?
            .into_inner()
            .categories;
        Ok(categories.into_iter().map(|c| c.id).collect())
    }

    async fn list_products(&self, auth: &Bearer, query: ProductQuery<'_>) -> Call<ProductPage> {
        let request = self.request(
            ListProductsRequest {
                page_size: query.page_size,
                page_token: query.page_token.to_owned(),
                category_id: query.category_id.to_owned(),
                query: query.query.to_owned(),
            },
            Some(auth),
        );
        let page = self.catalog().list_products(request).await?.into_inner();
        Ok(ProductPage {
            products: page
                .products
                .into_iter()
                .map(|p| Product {
                    id: p.id,
                    name: p.name,
                    category_id: p.category_id,
                })
                .collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn get_product(&self, auth: &Bearer, id: &str) -> Call<()> {
        let request = self.request(GetProductRequest { id: id.to_owned() }, Some(auth));
        self.catalog().get_product(request).await?;
        Ok(())
    }

    async fn list_reviews(&self, auth: &Bearer, product_id: &str) -> Call<()> {
        let request = self.request(
            ListReviewsRequest {
                product_id: product_id.to_owned(),
                page_size: 10,
                page_token: String::new(),
            },
            Some(auth),
        );
        self.reviews().list_reviews(request).await?;
        Ok(())
    }

    async fn rating(&self, auth: &Bearer, product_id: &str) -> Call<()> {
        let request = self.request(
            GetRatingSummaryRequest {
                product_id: product_id.to_owned(),
            },
            Some(auth),
        );
        self.reviews().get_rating_summary(request).await?;
        Ok(())
    }

    async fn stock(&self, auth: &Bearer, product_id: &str) -> Call<i32> {
        let request = self.request(
            GetStockRequest {
                product_id: product_id.to_owned(),
            },
            Some(auth),
        );
        let stock = self
            .inventory()
            .get_stock(request)
            .await?
            .into_inner()
            .stock;
        Ok(stock.map_or(0, |s| s.available))
    }

    async fn get_basket(&self, auth: &Bearer) -> Call<BasketView> {
        let request = self.request(GetBasketRequest {}, Some(auth));
        basket_view(self.basket().get_basket(request).await?.into_inner().basket)
    }

    async fn clear_basket(&self, auth: &Bearer) -> Call<()> {
        let request = self.request(ClearBasketRequest {}, Some(auth));
        self.basket().clear_basket(request).await?;
        Ok(())
    }

    async fn add_item(&self, auth: &Bearer, product_id: &str, quantity: i32) -> Call<BasketView> {
        let request = self.request(
            AddItemRequest {
                product_id: product_id.to_owned(),
                quantity,
            },
            Some(auth),
        );
        basket_view(self.basket().add_item(request).await?.into_inner().basket)
    }

    async fn update_item(
        &self,
        auth: &Bearer,
        product_id: &str,
        quantity: i32,
    ) -> Call<BasketView> {
        let request = self.request(
            UpdateItemRequest {
                product_id: product_id.to_owned(),
                quantity,
            },
            Some(auth),
        );
        basket_view(
            self.basket()
                .update_item(request)
                .await?
                .into_inner()
                .basket,
        )
    }

    async fn apply_coupon(&self, auth: &Bearer, code: &str) -> Call<BasketView> {
        let request = self.request(
            ApplyCouponRequest {
                coupon_code: code.to_owned(),
            },
            Some(auth),
        );
        basket_view(
            self.basket()
                .apply_coupon(request)
                .await?
                .into_inner()
                .basket,
        )
    }

    async fn checkout(
        &self,
        auth: &Bearer,
        card_number: &str,
        idempotency_key: &str,
    ) -> Call<String> {
        let request = self.request(
            CheckoutRequest {
                card: Some(Card {
                    number: card_number.to_owned(),
                    exp_month: CardDetails::EXP_MONTH,
                    exp_year: CardDetails::EXP_YEAR,
                    cvc: CardDetails::CVC.to_owned(),
                    holder_name: Address::NAME.to_owned(),
                }),
                shipping_address: Some(ShippingAddress {
                    name: Address::NAME.to_owned(),
                    line1: Address::LINE1.to_owned(),
                    line2: String::new(),
                    city: Address::CITY.to_owned(),
                    postal_code: Address::POSTAL_CODE.to_owned(),
                    country: Address::COUNTRY.to_owned(),
                }),
                idempotency_key: idempotency_key.to_owned(),
            },
            Some(auth),
        );
        let order = self.basket().checkout(request).await?.into_inner().order;
        order
            .map(|o| o.id)
            .ok_or_else(|| CallError::malformed("Checkout answered without an order"))
    }

    async fn watch_until_settled(&self, auth: &Bearer, order_id: &str) -> Call<OrderView> {
        // No deadline on the stream itself: the caller bounds the wait (the settle timeout).
        let mut request = tonic::Request::new(WatchOrderRequest {
            id: order_id.to_owned(),
        });
        request
            .metadata_mut()
            .insert("authorization", auth.metadata.clone());
        let mut stream = self.order_query().watch_order(request).await?.into_inner();
        while let Some(message) = stream.message().await? {
            let Some(order) = message.order else {
                return Err(CallError::malformed(
                    "WatchOrder sent a message without an order",
                ));
            };
            if OrderStatus::from_proto(order.status).settled() {
                return Ok(order_view(order));
            }
        }
        Err(CallError::new(
            Failure::Unexpected(Unexpected::StreamEnded),
            format!("the stream of order {order_id} ended while it was pending"),
        ))
    }

    async fn list_orders(
        &self,
        auth: &Bearer,
        confirmed_only: bool,
        page_size: i32,
    ) -> Call<Vec<OrderView>> {
        let status = if confirmed_only {
            PbStatus::Confirmed
        } else {
            PbStatus::Unspecified
        };
        let request = self.request(
            ListOrdersRequest {
                page_size,
                page_token: String::new(),
                user_id: String::new(),
                status: status as i32,
            },
            Some(auth),
        );
        let orders = self
            .order_query()
            .list_orders(request)
            .await?
            .into_inner()
            .orders;
        Ok(orders.into_iter().map(order_view).collect())
    }

    async fn get_order(&self, auth: &Bearer, id: &str) -> Call<OrderView> {
        let request = self.request(GetOrderRequest { id: id.to_owned() }, Some(auth));
        let order = self
            .order_query()
            .get_order(request)
            .await?
            .into_inner()
            .order;
        order
            .map(order_view)
            .ok_or_else(|| CallError::malformed("GetOrder answered without an order"))
    }

    async fn list_notifications(&self, auth: &Bearer, unread_only: bool) -> Call<Vec<Notice>> {
        let request = self.request(
            ListNotificationsRequest {
                page_size: 10,
                page_token: String::new(),
                unread_only,
            },
            Some(auth),
        );
        let notifications = self
            .notifications()
            .list_notifications(request)
            .await?
            .into_inner()
            .notifications;
        Ok(notifications
            .into_iter()
            .map(|n| Notice {
                id: n.id,
                read: n.read,
            })
            .collect())
    }

    async fn mark_read(&self, auth: &Bearer, id: &str) -> Call<()> {
        let request = self.request(MarkReadRequest { id: id.to_owned() }, Some(auth));
        self.notifications().mark_read(request).await?;
        Ok(())
    }

    async fn ship_order(&self, auth: &Bearer, id: &str, tracking_number: &str) -> Call<()> {
        let request = self.request(
            ShipOrderRequest {
                id: id.to_owned(),
                tracking_number: tracking_number.to_owned(),
            },
            Some(auth),
        );
        self.orders().ship_order(request).await?;
        Ok(())
    }

    async fn adjust_stock(&self, auth: &Bearer, product_id: &str, delta: i32) -> Call<()> {
        let request = self.request(
            AdjustStockRequest {
                product_id: product_id.to_owned(),
                delta,
                reason: "restocked by loadgen".to_owned(),
            },
            Some(auth),
        );
        self.inventory().adjust_stock(request).await?;
        Ok(())
    }

    async fn list_coupons(&self, auth: &Bearer) -> Call<Vec<Coupon>> {
        let mut coupons = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = self.request(
                ListCouponsRequest {
                    page_size: 100,
                    page_token: page_token.clone(),
                },
                Some(auth),
            );
            let page = self.discount().list_coupons(request).await?.into_inner();
            coupons.extend(page.coupons.into_iter().map(|c| {
                Coupon::new(
                    c.code,
                    c.valid_from.is_some() || c.valid_until.is_some(),
                    c.min_subtotal.is_some(),
                    c.max_redemptions,
                    c.redemption_count,
                )
            }));
            if page.next_page_token.is_empty() {
                return Ok(coupons);
            }
            page_token = page.next_page_token;
        }
    }
}
