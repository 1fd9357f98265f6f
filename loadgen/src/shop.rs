//! The shop as a shopper's client sees it, whatever the protocol: one method per public RPC
//! the journeys call, with the few fields they read. [`crate::grpc`] implements it over native
//! gRPC and gRPC-web with the generated tonic clients, [`crate::rest`] over the gateway's
//! REST/JSON surface.

use std::future::Future;
use std::time::Duration;

use http::HeaderValue;
use tonic::metadata::{Ascii, MetadataValue};

use crate::failure::CallError;

/// A card that is always captured (API.md, test cards).
pub const CARD_OK: &str = "4242424242424242";
/// A card that is always declined (API.md, test cards).
pub const CARD_DECLINED: &str = "4000000000000002";

/// An access token, ready to send as `authorization: Bearer …` by either kind of client.
#[derive(Debug, Clone)]
pub struct Bearer {
    /// For HTTP requests (REST).
    pub header: HeaderValue,
    /// For gRPC metadata.
    pub metadata: MetadataValue<Ascii>,
}

impl Bearer {
    /// The header of `access_token`; `None` when the token is not a valid header value.
    pub fn new(access_token: &str) -> Option<Self> {
        let value = format!("Bearer {access_token}");
        Some(Self {
            header: HeaderValue::from_str(&value).ok()?,
            metadata: value.parse().ok()?,
        })
    }
}

/// What IssueToken returned.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The access token.
    pub access: String,
    /// Its lifetime.
    pub expires_in: Duration,
    /// The single-use refresh token.
    pub refresh: String,
}

/// A catalog product, as far as shoppers need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// Its id.
    pub id: String,
    /// Its name (search words come from it).
    pub name: String,
    /// Its category; empty when none.
    pub category_id: String,
}

/// One page of products.
#[derive(Debug, Clone, Default)]
pub struct ProductPage {
    /// The products.
    pub products: Vec<Product>,
    /// The next page's token; empty on the last page.
    pub next_page_token: String,
}

/// What to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProductQuery<'a> {
    /// Only this category; empty for all.
    pub category_id: &'a str,
    /// Only names matching this; empty for all.
    pub query: &'a str,
    /// Page size (1..100).
    pub page_size: i32,
    /// The page; empty for the first.
    pub page_token: &'a str,
}

/// A basket, as far as a shopper reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BasketView {
    /// Lines in it.
    pub lines: usize,
    /// Whether its coupon does not apply to it as it is.
    pub coupon_inapplicable: bool,
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// The saga is still running.
    Pending,
    /// Paid.
    Confirmed,
    /// Cancelled (see the reason).
    Cancelled,
    /// Shipped.
    Shipped,
    /// A status this client does not know.
    Other,
}

impl OrderStatus {
    /// From the proto enum's number.
    pub fn from_proto(status: i32) -> Self {
        use mercato::pb::order::v1::OrderStatus as Pb;
        match Pb::try_from(status) {
            Ok(Pb::Pending) => Self::Pending,
            Ok(Pb::Confirmed) => Self::Confirmed,
            Ok(Pb::Cancelled) => Self::Cancelled,
            Ok(Pb::Shipped) => Self::Shipped,
            _ => Self::Other,
        }
    }

    /// From the proto3 JSON name (`ORDER_STATUS_CONFIRMED`).
    pub fn from_json(name: &str) -> Self {
        use mercato::pb::order::v1::OrderStatus as Pb;
        Pb::from_str_name(name).map_or(Self::Other, |s| Self::from_proto(s as i32))
    }

    /// Whether the saga is over.
    pub fn settled(self) -> bool {
        !matches!(self, Self::Pending)
    }
}

/// An order as the read side shows it.
#[derive(Debug, Clone)]
pub struct OrderView {
    /// Its id.
    pub id: String,
    /// The buyer.
    pub user_id: String,
    /// Its status.
    pub status: OrderStatus,
    /// Whether the card was refused (declined or short of funds).
    pub card_refused: bool,
    /// Why it was cancelled; empty when it was not.
    pub cancellation_reason: String,
}

/// Whether a payment failure reason (proto number) is the card's refusal.
pub fn card_refused(reason: i32) -> bool {
    use mercato::pb::payment::v1::PaymentFailureReason as Pb;
    matches!(
        Pb::try_from(reason),
        Ok(Pb::Declined | Pb::InsufficientFunds)
    )
}

/// A coupon as the admin lists it, reduced to whether a shopper can always use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    /// The code.
    pub code: String,
    /// No date window, no minimum subtotal and uses left: it applies to any basket now.
    pub always_applies: bool,
}

impl Coupon {
    /// A listed coupon: it always applies when it has no date window (`windowed`), no
    /// minimum subtotal (`minimum`) and uses left (`max_redemptions` 0 is unlimited).
    pub fn new(
        code: String,
        windowed: bool,
        minimum: bool,
        max_redemptions: i32,
        redemption_count: i32,
    ) -> Self {
        Self {
            code,
            always_applies: !windowed
                && !minimum
                && (max_redemptions == 0 || redemption_count < max_redemptions),
        }
    }
}

/// A notification's id and whether it was read.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Its id.
    pub id: String,
    /// Whether it was marked read.
    pub read: bool,
}

/// Result of a call.
pub type Call<T> = Result<T, CallError>;

/// The public API the journeys use. Every method is one call (WatchOrder: one stream, read
/// until the order settles); `auth` is the caller's token.
pub trait Shop: Clone + Send + Sync + 'static {
    /// Register; returns the new user's id.
    fn register(
        &self,
        email: &str,
        password: &str,
        display_name: &str,
    ) -> impl Future<Output = Call<String>> + Send;
    /// IssueToken, password grant.
    fn sign_in(&self, email: &str, password: &str) -> impl Future<Output = Call<Tokens>> + Send;
    /// IssueToken, refresh-token grant.
    fn refresh(&self, refresh_token: &str) -> impl Future<Output = Call<Tokens>> + Send;
    /// ListCategories; returns their ids.
    fn list_categories(&self, auth: &Bearer) -> impl Future<Output = Call<Vec<String>>> + Send;
    /// ListProducts.
    fn list_products(
        &self,
        auth: &Bearer,
        query: ProductQuery<'_>,
    ) -> impl Future<Output = Call<ProductPage>> + Send;
    /// GetProduct.
    fn get_product(&self, auth: &Bearer, id: &str) -> impl Future<Output = Call<()>> + Send;
    /// ListReviews, first page.
    fn list_reviews(
        &self,
        auth: &Bearer,
        product_id: &str,
    ) -> impl Future<Output = Call<()>> + Send;
    /// GetRatingSummary.
    fn rating(&self, auth: &Bearer, product_id: &str) -> impl Future<Output = Call<()>> + Send;
    /// GetStock; returns the units available.
    fn stock(&self, auth: &Bearer, product_id: &str) -> impl Future<Output = Call<i32>> + Send;
    /// GetBasket.
    fn get_basket(&self, auth: &Bearer) -> impl Future<Output = Call<BasketView>> + Send;
    /// ClearBasket.
    fn clear_basket(&self, auth: &Bearer) -> impl Future<Output = Call<()>> + Send;
    /// AddItem.
    fn add_item(
        &self,
        auth: &Bearer,
        product_id: &str,
        quantity: i32,
    ) -> impl Future<Output = Call<BasketView>> + Send;
    /// UpdateItem.
    fn update_item(
        &self,
        auth: &Bearer,
        product_id: &str,
        quantity: i32,
    ) -> impl Future<Output = Call<BasketView>> + Send;
    /// ApplyCoupon (an empty code removes the coupon).
    fn apply_coupon(
        &self,
        auth: &Bearer,
        code: &str,
    ) -> impl Future<Output = Call<BasketView>> + Send;
    /// Checkout with the card `card_number`; returns the order's id (its outcome is read
    /// where the shopper sees it settle, on the read side).
    fn checkout(
        &self,
        auth: &Bearer,
        card_number: &str,
        idempotency_key: &str,
    ) -> impl Future<Output = Call<String>> + Send;
    /// WatchOrder, read until the order is no longer PENDING; returns that state.
    fn watch_until_settled(
        &self,
        auth: &Bearer,
        order_id: &str,
    ) -> impl Future<Output = Call<OrderView>> + Send;
    /// ListOrders, first page: the caller's own, or as the admin those with `status`.
    fn list_orders(
        &self,
        auth: &Bearer,
        confirmed_only: bool,
        page_size: i32,
    ) -> impl Future<Output = Call<Vec<OrderView>>> + Send;
    /// GetOrder.
    fn get_order(&self, auth: &Bearer, id: &str) -> impl Future<Output = Call<OrderView>> + Send;
    /// ListNotifications, first page.
    fn list_notifications(
        &self,
        auth: &Bearer,
        unread_only: bool,
    ) -> impl Future<Output = Call<Vec<Notice>>> + Send;
    /// MarkRead.
    fn mark_read(&self, auth: &Bearer, id: &str) -> impl Future<Output = Call<()>> + Send;
    /// ShipOrder.
    fn ship_order(
        &self,
        auth: &Bearer,
        id: &str,
        tracking_number: &str,
    ) -> impl Future<Output = Call<()>> + Send;
    /// AdjustStock by `delta` units.
    fn adjust_stock(
        &self,
        auth: &Bearer,
        product_id: &str,
        delta: i32,
    ) -> impl Future<Output = Call<()>> + Send;
    /// ListCoupons, every page.
    fn list_coupons(&self, auth: &Bearer) -> impl Future<Output = Call<Vec<Coupon>>> + Send;
}

/// A shipping address every country's rules accept (the order service checks its fields).
pub struct Address;

impl Address {
    /// Recipient.
    pub const NAME: &'static str = "Load Shopper";
    /// Street.
    pub const LINE1: &'static str = "1 Test Street";
    /// City.
    pub const CITY: &'static str = "Berlin";
    /// Postal code.
    pub const POSTAL_CODE: &'static str = "10115";
    /// Country (ISO 3166-1 alpha-2).
    pub const COUNTRY: &'static str = "DE";
}

/// Card expiry and verification code: valid for any test card.
pub struct CardDetails;

impl CardDetails {
    /// Month.
    pub const EXP_MONTH: i32 = 12;
    /// A year far enough ahead.
    pub const EXP_YEAR: i32 = 2099;
    /// Verification code.
    pub const CVC: &'static str = "123";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_the_same_from_proto_numbers_and_json_names() {
        use mercato::pb::order::v1::OrderStatus as Pb;
        for (pb, ours) in [
            (Pb::Pending, OrderStatus::Pending),
            (Pb::Confirmed, OrderStatus::Confirmed),
            (Pb::Cancelled, OrderStatus::Cancelled),
            (Pb::Shipped, OrderStatus::Shipped),
        ] {
            assert_eq!(OrderStatus::from_proto(pb as i32), ours);
            assert_eq!(OrderStatus::from_json(pb.as_str_name()), ours);
        }
        assert_eq!(
            OrderStatus::from_json("ORDER_STATUS_LOST"),
            OrderStatus::Other
        );
        assert!(!OrderStatus::Pending.settled());
        assert!(OrderStatus::Cancelled.settled());
    }

    #[test]
    fn only_declines_and_missing_funds_are_the_cards_refusal() {
        use mercato::pb::payment::v1::PaymentFailureReason as Pb;
        assert!(card_refused(Pb::Declined as i32));
        assert!(card_refused(Pb::InsufficientFunds as i32));
        assert!(!card_refused(Pb::ProcessingError as i32));
        assert!(!card_refused(Pb::Unspecified as i32));
    }

    #[test]
    fn a_bearer_refuses_tokens_that_are_no_header() {
        assert!(Bearer::new("abc.def").is_some());
        assert!(Bearer::new("line\nbreak").is_none());
    }
}
