//! Order integration tests: the whole checkout mesh (identity, catalog, inventory, discount,
//! payment, order) on the real Postgres and NATS, each test with its own databases and
//! NATS namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod checkout;
mod concurrency;
mod faults;
mod recovery;
mod replicas;
mod validation;

use mercato::pb::order::v1::{Order, OrderStatus, PlaceOrderRequest};
use mercato::pb::payment::v1::{GetPaymentRequest, LookupChargeRequest, Payment};
use mercato_testkit::authed;
use mercato_testkit::shop::TestShop;

/// Places an order as `token`.
pub async fn place(
    shop: &TestShop,
    token: &str,
    request: PlaceOrderRequest,
) -> Result<Order, tonic::Status> {
    shop.orders()
        .await
        .place_order(authed(request, token))
        .await
        .map(|r| r.into_inner().order.unwrap())
}

/// The payment of an order, looked up by the key the saga charges with (the order id).
pub async fn payment_of(shop: &TestShop, order_id: &str) -> Option<Payment> {
    match shop
        .payment_client()
        .await
        .lookup_charge(authed(
            LookupChargeRequest {
                idempotency_key: order_id.into(),
            },
            &shop.service,
        ))
        .await
    {
        Ok(r) => r.into_inner().payment,
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => panic!("lookup charge: {status:?}"),
    }
}

/// A payment by id, as an admin sees it.
pub async fn payment(shop: &TestShop, id: &str) -> Payment {
    shop.payment_client()
        .await
        .get_payment(authed(GetPaymentRequest { id: id.into() }, &shop.admin))
        .await
        .unwrap()
        .into_inner()
        .payment
        .unwrap()
}

/// Net amount kept from a payment, in cents.
pub fn net_cents(payment: &Payment) -> i64 {
    let cents = |m: &Option<mercato::pb::r#type::v1::Money>| {
        m.as_ref()
            .map_or(0, |m| m.units * 100 + i64::from(m.nanos) / 10_000_000)
    };
    cents(&payment.captured_amount) - cents(&payment.refunded_amount)
}

/// Asserts the money and stock side of an order's final state: a confirmed order has
/// kept its payment; a cancelled one has kept nothing.
pub async fn assert_settled_consistently(shop: &TestShop, order: &Order) {
    let kept = payment_of(shop, &order.id)
        .await
        .map_or(0, |p| net_cents(&p));
    match order.status() {
        OrderStatus::Confirmed | OrderStatus::Shipped => {
            let total = order.total.as_ref().unwrap();
            assert_eq!(
                kept,
                total.units * 100 + i64::from(total.nanos) / 10_000_000,
                "{order:?}"
            );
        }
        OrderStatus::Cancelled => assert_eq!(kept, 0, "cancelled order kept money: {order:?}"),
        other => panic!("order not settled: {other:?}"),
    }
}
