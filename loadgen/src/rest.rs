//! The shop over the gateway's REST/JSON surface (the `google.api.http` routes of API.md), on
//! a pool of keep-alive HTTP/1.1 connections, as a browser or curl would call it. Requests
//! and answers are small serde structs holding only the fields the journeys send or read, in
//! proto3 JSON (lowerCamelCase, enums by name). WatchOrder is the route's newline-delimited
//! JSON stream, read until the order settles.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use crate::failure::{CallError, Failure, Unexpected};
use crate::shop::{
    Address, BasketView, Bearer, Call, CardDetails, Coupon, Notice, OrderStatus, OrderView,
    Product, ProductPage, ProductQuery, Shop, Tokens, card_refused,
};

const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

/// The shop over REST/JSON.
#[derive(Clone, Debug)]
pub struct RestShop {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `http://host:port`, without a trailing slash.
    base: String,
}

impl RestShop {
    /// REST calls to the gateway at `target`; `timeout` bounds connecting.
    pub fn new(target: &str, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: target.trim_end_matches('/').to_owned(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<&Bearer>,
        body: Option<Vec<u8>>,
        accept: &'static str,
    ) -> Call<Response<Incoming>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(ACCEPT, accept);
        if let Some(auth) = auth {
            builder = builder.header(AUTHORIZATION, auth.header.clone());
        }
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, JSON);
        }
        let request = builder
            .body(Full::new(body.map(Bytes::from).unwrap_or_default()))
            .map_err(|e| CallError::malformed(format!("cannot build the request: {e}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| CallError::new(Failure::Transport, error_chain(&e)))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(http_error(response).await)
        }
    }

    /// One call answered with a JSON document.
    async fn call<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        auth: Option<&Bearer>,
        body: Option<&impl Serialize>,
    ) -> Call<R> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| CallError::malformed(format!("cannot encode the request: {e}")))?;
        let response = self.send(method, path, auth, body, JSON).await?;
        let bytes = read_body(response.into_body()).await?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::malformed(format!("{path}: {e}")))
    }

    /// A GET answered with a JSON document.
    async fn get<R: DeserializeOwned>(&self, path: &str, auth: Option<&Bearer>) -> Call<R> {
        self.call(Method::GET, path, auth, None::<&()>).await
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn read_body(body: Incoming) -> Call<Bytes> {
    body.collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| CallError::new(Failure::Transport, error_chain(&e)))
}

/// The gateway's error body: `{"code", "message", "details"}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: i32,
    #[serde(default)]
    message: String,
}

async fn http_error(response: Response<Incoming>) -> CallError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body = read_body(response.into_body()).await.unwrap_or_default();
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
    CallError {
        failure: Failure::Http(status.as_u16()),
        detail: message,
        retry_after,
    }
}

/// `text` for a URL query value: unreserved characters as they are, the rest %-encoded.
fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A path segment (ids are UUIDs; anything else is encoded the same way as a query value).
fn segment(text: &str) -> String {
    query_value(text)
}

// ---- request bodies ------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody<'a> {
    email: &'a str,
    password: &'a str,
    display_name: &'a str,
}

#[derive(Serialize)]
struct PasswordBody<'a> {
    email: &'a str,
    password: &'a str,
}

#[derive(Serialize)]
struct RefreshBody<'a> {
    #[serde(rename = "refreshToken")]
    refresh_token: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum TokenBody<'a> {
    Password(PasswordBody<'a>),
    RefreshToken(RefreshBody<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AddItemBody<'a> {
    product_id: &'a str,
    quantity: i32,
}

#[derive(Serialize)]
struct QuantityBody {
    quantity: i32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CouponBody<'a> {
    coupon_code: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CardBody<'a> {
    number: &'a str,
    exp_month: i32,
    exp_year: i32,
    cvc: &'a str,
    holder_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AddressBody<'a> {
    name: &'a str,
    line1: &'a str,
    city: &'a str,
    postal_code: &'a str,
    country: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckoutBody<'a> {
    card: CardBody<'a>,
    shipping_address: AddressBody<'a>,
    idempotency_key: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShipBody<'a> {
    tracking_number: &'a str,
}

#[derive(Serialize)]
struct AdjustBody<'a> {
    delta: i32,
    reason: &'a str,
}

#[derive(Serialize)]
struct EmptyBody {}

// ---- answers ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: String,
}

#[derive(Deserialize)]
struct UserAnswer {
    user: Option<IdOnly>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
    #[serde(default)]
    refresh_token: String,
}

#[derive(Deserialize)]
struct CategoriesAnswer {
    #[serde(default)]
    categories: Vec<IdOnly>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProductJson {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    category_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProductsAnswer {
    #[serde(default)]
    products: Vec<ProductJson>,
    #[serde(default)]
    next_page_token: String,
}

#[derive(Deserialize)]
struct StockJson {
    #[serde(default)]
    available: i32,
}

#[derive(Deserialize)]
struct StockAnswer {
    stock: Option<StockJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BasketJson {
    #[serde(default)]
    lines: Vec<IgnoredAny>,
    #[serde(default)]
    coupon_inapplicable_reason: String,
}

#[derive(Deserialize)]
struct BasketAnswer {
    basket: Option<BasketJson>,
}

impl BasketAnswer {
    fn view(self) -> Call<BasketView> {
        let basket = self
            .basket
            .ok_or_else(|| CallError::malformed("answer without a basket"))?;
        Ok(BasketView {
            lines: basket.lines.len(),
            coupon_inapplicable: !basket.coupon_inapplicable_reason.is_empty()
                && basket.coupon_inapplicable_reason != "INAPPLICABLE_REASON_UNSPECIFIED",
        })
    }
}

#[derive(Deserialize)]
struct PlacedAnswer {
    order: Option<IdOnly>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentJson {
    #[serde(default)]
    failure_reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderJson {
    id: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    status: String,
    payment: Option<PaymentJson>,
    #[serde(default)]
    cancellation_reason: String,
}

impl OrderJson {
    fn view(self) -> OrderView {
        use mercato::pb::payment::v1::PaymentFailureReason;
        let card_refused = self.payment.as_ref().is_some_and(|p| {
            PaymentFailureReason::from_str_name(&p.failure_reason)
                .is_some_and(|r| card_refused(r as i32))
        });
        OrderView {
            status: OrderStatus::from_json(&self.status),
            id: self.id,
            user_id: self.user_id,
            card_refused,
            cancellation_reason: self.cancellation_reason,
        }
    }
}

#[derive(Deserialize)]
struct OrderAnswer {
    order: Option<OrderJson>,
}

#[derive(Deserialize)]
struct OrdersAnswer {
    #[serde(default)]
    orders: Vec<OrderJson>,
}

/// One line of the WatchOrder stream: a message, or the error that ends the stream.
#[derive(Deserialize)]
struct WatchLine {
    order: Option<OrderJson>,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct NoticeJson {
    id: String,
    #[serde(default)]
    read: bool,
}

#[derive(Deserialize)]
struct NotificationsAnswer {
    #[serde(default)]
    notifications: Vec<NoticeJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CouponJson {
    code: String,
    valid_from: Option<IgnoredAny>,
    valid_until: Option<IgnoredAny>,
    min_subtotal: Option<IgnoredAny>,
    #[serde(default)]
    max_redemptions: i32,
    #[serde(default)]
    redemption_count: i32,
}

impl CouponJson {
    fn coupon(self) -> Coupon {
        Coupon::new(
            self.code,
            self.valid_from.is_some() || self.valid_until.is_some(),
            self.min_subtotal.is_some(),
            self.max_redemptions,
            self.redemption_count,
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CouponsAnswer {
    #[serde(default)]
    coupons: Vec<CouponJson>,
    #[serde(default)]
    next_page_token: String,
}

/// Ignores whatever an RPC returning `google.protobuf.Empty` or an unread message sends.
#[derive(Deserialize)]
struct Anything {}

impl Shop for RestShop {
    async fn register(&self, email: &str, password: &str, display_name: &str) -> Call<String> {
        let body = RegisterBody {
            email,
            password,
            display_name,
        };
        let answer: UserAnswer = self
            .call(Method::POST, "/v1/users", None, Some(&body))
            .await?;
        answer
            .user
            .map(|u| u.id)
            .ok_or_else(|| CallError::malformed("POST /v1/users answered without a user"))
    }

    async fn sign_in(&self, email: &str, password: &str) -> Call<Tokens> {
        let body = TokenBody::Password(PasswordBody { email, password });
        let answer: TokenAnswer = self
            .call(Method::POST, "/v1/auth/token", None, Some(&body))
            .await?;
        Ok(tokens(answer))
    }

    async fn refresh(&self, refresh_token: &str) -> Call<Tokens> {
        let body = TokenBody::RefreshToken(RefreshBody { refresh_token });
        let answer: TokenAnswer = self
            .call(Method::POST, "/v1/auth/token", None, Some(&body))
            .await?;
        Ok(tokens(answer))
    }

    async fn list_categories(&self, auth: &Bearer) -> Call<Vec<String>> {
        let answer: CategoriesAnswer = self.get("/v1/categories", Some(auth)).await?;
        Ok(answer.categories.into_iter().map(|c| c.id).collect())
    }

    async fn list_products(&self, auth: &Bearer, query: ProductQuery<'_>) -> Call<ProductPage> {
        let mut path = format!("/v1/products?pageSize={}", query.page_size);
        for (name, value) in [
            ("categoryId", query.category_id),
            ("query", query.query),
            ("pageToken", query.page_token),
        ] {
            if !value.is_empty() {
                path.push_str(&format!("&{name}={}", query_value(value)));
            }
        }
        let answer: ProductsAnswer = self.get(&path, Some(auth)).await?;
        Ok(ProductPage {
            products: answer
                .products
                .into_iter()
                .map(|p| Product {
                    id: p.id,
                    name: p.name,
                    category_id: p.category_id,
                })
                .collect(),
            next_page_token: answer.next_page_token,
        })
    }

    async fn get_product(&self, auth: &Bearer, id: &str) -> Call<()> {
        let _: Anything = self
            .get(&format!("/v1/products/{}", segment(id)), Some(auth))
            .await?;
        Ok(())
    }

    async fn list_reviews(&self, auth: &Bearer, product_id: &str) -> Call<()> {
        let path = format!("/v1/products/{}/reviews?pageSize=10", segment(product_id));
        let _: Anything = self.get(&path, Some(auth)).await?;
        Ok(())
    }

    async fn rating(&self, auth: &Bearer, product_id: &str) -> Call<()> {
        let path = format!("/v1/products/{}/rating", segment(product_id));
        let _: Anything = self.get(&path, Some(auth)).await?;
        Ok(())
    }

    async fn stock(&self, auth: &Bearer, product_id: &str) -> Call<i32> {
        let path = format!("/v1/inventory/{}", segment(product_id));
        let answer: StockAnswer = self.get(&path, Some(auth)).await?;
        Ok(answer.stock.map_or(0, |s| s.available))
    }

    async fn get_basket(&self, auth: &Bearer) -> Call<BasketView> {
        let answer: BasketAnswer = self.get("/v1/basket", Some(auth)).await?;
        answer.view()
    }

    async fn clear_basket(&self, auth: &Bearer) -> Call<()> {
        let _: Anything = self
            .call(Method::DELETE, "/v1/basket", Some(auth), None::<&()>)
            .await?;
        Ok(())
    }

    async fn add_item(&self, auth: &Bearer, product_id: &str, quantity: i32) -> Call<BasketView> {
        let body = AddItemBody {
            product_id,
            quantity,
        };
        let answer: BasketAnswer = self
            .call(Method::POST, "/v1/basket/items", Some(auth), Some(&body))
            .await?;
        answer.view()
    }

    async fn update_item(
        &self,
        auth: &Bearer,
        product_id: &str,
        quantity: i32,
    ) -> Call<BasketView> {
        let path = format!("/v1/basket/items/{}", segment(product_id));
        let answer: BasketAnswer = self
            .call(
                Method::PATCH,
                &path,
                Some(auth),
                Some(&QuantityBody { quantity }),
            )
            .await?;
        answer.view()
    }

    async fn apply_coupon(&self, auth: &Bearer, code: &str) -> Call<BasketView> {
        let body = CouponBody { coupon_code: code };
        let answer: BasketAnswer = self
            .call(
                Method::POST,
                "/v1/basket:applyCoupon",
                Some(auth),
                Some(&body),
            )
            .await?;
        answer.view()
    }

    async fn checkout(
        &self,
        auth: &Bearer,
        card_number: &str,
        idempotency_key: &str,
    ) -> Call<String> {
        let body = CheckoutBody {
            card: CardBody {
                number: card_number,
                exp_month: CardDetails::EXP_MONTH,
                exp_year: CardDetails::EXP_YEAR,
                cvc: CardDetails::CVC,
                holder_name: Address::NAME,
            },
            shipping_address: AddressBody {
                name: Address::NAME,
                line1: Address::LINE1,
                city: Address::CITY,
                postal_code: Address::POSTAL_CODE,
                country: Address::COUNTRY,
            },
            idempotency_key,
        };
        let answer: PlacedAnswer = self
            .call(Method::POST, "/v1/basket:checkout", Some(auth), Some(&body))
            .await?;
        answer
            .order
            .map(|o| o.id)
            .ok_or_else(|| CallError::malformed("checkout answered without an order"))
    }

    async fn watch_until_settled(&self, auth: &Bearer, order_id: &str) -> Call<OrderView> {
        let path = format!("/v1/orders/{}:watch", segment(order_id));
        let response = self
            .send(Method::GET, &path, Some(auth), None, NDJSON)
            .await?;
        let mut body = response.into_body();
        let mut pending = Vec::new();
        loop {
            let Some(frame) = body.frame().await else {
                return Err(CallError::new(
                    Failure::Unexpected(Unexpected::StreamEnded),
                    format!("the stream of order {order_id} ended while it was pending"),
                ));
            };
            let frame = frame.map_err(|e| CallError::new(Failure::Transport, error_chain(&e)))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if let Some(view) = settled_line(&line)? {
                    return Ok(view);
                }
            }
        }
    }

    async fn list_orders(
        &self,
        auth: &Bearer,
        confirmed_only: bool,
        page_size: i32,
    ) -> Call<Vec<OrderView>> {
        let mut path = format!("/v1/orders?pageSize={page_size}");
        if confirmed_only {
            path.push_str("&status=ORDER_STATUS_CONFIRMED");
        }
        let answer: OrdersAnswer = self.get(&path, Some(auth)).await?;
        Ok(answer.orders.into_iter().map(OrderJson::view).collect())
    }

    async fn get_order(&self, auth: &Bearer, id: &str) -> Call<OrderView> {
        let answer: OrderAnswer = self
            .get(&format!("/v1/orders/{}", segment(id)), Some(auth))
            .await?;
        answer
            .order
            .map(OrderJson::view)
            .ok_or_else(|| CallError::malformed("GET /v1/orders/{id} answered without an order"))
    }

    async fn list_notifications(&self, auth: &Bearer, unread_only: bool) -> Call<Vec<Notice>> {
        let path = format!("/v1/notifications?pageSize=10&unreadOnly={unread_only}");
        let answer: NotificationsAnswer = self.get(&path, Some(auth)).await?;
        Ok(answer
            .notifications
            .into_iter()
            .map(|n| Notice {
                id: n.id,
                read: n.read,
            })
            .collect())
    }

    async fn mark_read(&self, auth: &Bearer, id: &str) -> Call<()> {
        let path = format!("/v1/notifications/{}:markRead", segment(id));
        let _: Anything = self
            .call(Method::POST, &path, Some(auth), Some(&EmptyBody {}))
            .await?;
        Ok(())
    }

    async fn ship_order(&self, auth: &Bearer, id: &str, tracking_number: &str) -> Call<()> {
        let path = format!("/v1/orders/{}:ship", segment(id));
        let _: Anything = self
            .call(
                Method::POST,
                &path,
                Some(auth),
                Some(&ShipBody { tracking_number }),
            )
            .await?;
        Ok(())
    }

    async fn adjust_stock(&self, auth: &Bearer, product_id: &str, delta: i32) -> Call<()> {
        let path = format!("/v1/inventory/{}:adjust", segment(product_id));
        let body = AdjustBody {
            delta,
            reason: "restocked by loadgen",
        };
        let _: Anything = self
            .call(Method::POST, &path, Some(auth), Some(&body))
            .await?;
        Ok(())
    }

    async fn list_coupons(&self, auth: &Bearer) -> Call<Vec<Coupon>> {
        let mut coupons = Vec::new();
        let mut page_token = String::new();
        loop {
            let mut path = "/v1/coupons?pageSize=100".to_owned();
            if !page_token.is_empty() {
                path.push_str(&format!("&pageToken={}", query_value(&page_token)));
            }
            let page: CouponsAnswer = self.get(&path, Some(auth)).await?;
            coupons.extend(page.coupons.into_iter().map(CouponJson::coupon));
            if page.next_page_token.is_empty() {
                return Ok(coupons);
            }
            page_token = page.next_page_token;
        }
    }
}

fn tokens(answer: TokenAnswer) -> Tokens {
    Tokens {
        access: answer.access_token,
        expires_in: Duration::from_secs(answer.expires_in),
        refresh: answer.refresh_token,
    }
}

/// One NDJSON line of WatchOrder: the order once it has settled, `None` while pending, the
/// stream's error as a failure.
fn settled_line(line: &[u8]) -> Call<Option<OrderView>> {
    let line: WatchLine = serde_json::from_slice(line)
        .map_err(|e| CallError::malformed(format!("WatchOrder line: {e}")))?;
    if let Some(error) = line.error {
        return Err(CallError::new(
            Failure::Grpc(tonic::Code::from(error.code)),
            error.message,
        ));
    }
    let order = line
        .order
        .ok_or_else(|| CallError::malformed("WatchOrder line without an order"))?
        .view();
    Ok(order.status.settled().then_some(order))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("Stoneware mug"), "Stoneware%20mug");
        assert_eq!(query_value("a&b=c/é"), "a%26b%3Dc%2F%C3%A9");
        assert_eq!(query_value("abc-1.2_3~"), "abc-1.2_3~");
    }

    #[test]
    fn token_grants_are_the_proto3_json_of_the_oneof() {
        let password = TokenBody::Password(PasswordBody {
            email: "a@example.com",
            password: "secret-secret",
        });
        assert_eq!(
            serde_json::to_string(&password).unwrap(),
            r#"{"password":{"email":"a@example.com","password":"secret-secret"}}"#
        );
        let refresh = TokenBody::RefreshToken(RefreshBody {
            refresh_token: "r1",
        });
        assert_eq!(
            serde_json::to_string(&refresh).unwrap(),
            r#"{"refreshToken":{"refreshToken":"r1"}}"#
        );
    }

    #[test]
    fn watch_lines_settle_on_a_final_status_and_report_stream_errors() {
        let pending = br#"{"order":{"id":"o1","userId":"u1","status":"ORDER_STATUS_PENDING"}}"#;
        assert!(settled_line(pending).unwrap().is_none());
        let declined = br#"{"order":{"id":"o1","status":"ORDER_STATUS_CANCELLED","payment":{"failureReason":"PAYMENT_FAILURE_REASON_DECLINED"},"cancellationReason":"card declined"}}"#;
        let view = settled_line(declined).unwrap().unwrap();
        assert_eq!(view.status, OrderStatus::Cancelled);
        assert!(view.card_refused);
        let error = br#"{"error":{"code":5,"message":"no such order","details":[]}}"#;
        let failure = settled_line(error).unwrap_err();
        assert_eq!(failure.failure, Failure::Grpc(tonic::Code::NotFound));
        assert_eq!(
            settled_line(b"not json").unwrap_err().failure,
            Failure::Malformed
        );
    }

    #[test]
    fn baskets_read_their_lines_and_an_inapplicable_coupon() {
        let answer: BasketAnswer = serde_json::from_str(
            r#"{"basket":{"lines":[{"productId":"p"},{"productId":"q"}],"couponInapplicableReason":"INAPPLICABLE_REASON_EXHAUSTED"}}"#,
        )
        .unwrap();
        assert_eq!(
            answer.view().unwrap(),
            BasketView {
                lines: 2,
                coupon_inapplicable: true
            }
        );
        let plain: BasketAnswer = serde_json::from_str(
            r#"{"basket":{"lines":[],"couponInapplicableReason":"INAPPLICABLE_REASON_UNSPECIFIED"}}"#,
        )
        .unwrap();
        assert_eq!(plain.view().unwrap(), BasketView::default());
    }

    #[test]
    fn coupons_with_any_window_or_minimum_do_not_always_apply() {
        let page: CouponsAnswer = serde_json::from_str(
            r#"{"coupons":[
                {"code":"WELCOME10","percentOff":10,"maxRedemptions":0,"redemptionCount":3},
                {"code":"LATER","validFrom":"2030-01-01T00:00:00Z","maxRedemptions":0},
                {"code":"BIG","minSubtotal":{"currencyCode":"EUR","units":"100"}},
                {"code":"GONE","maxRedemptions":2,"redemptionCount":2}
            ],"nextPageToken":""}"#,
        )
        .unwrap();
        let applies: Vec<bool> = page
            .coupons
            .into_iter()
            .map(|c| c.coupon().always_applies)
            .collect();
        assert_eq!(applies, [true, false, false, false]);
    }
}
