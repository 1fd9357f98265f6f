//! Stored orders rendered as API messages and integration events.

use mercato::pb::order::v1 as pb;
use mercato::pb::r#type::v1::Money;
use mercato_kernel::money::Amount;
use mercato_kernel::time::to_timestamp;

use crate::store::{LineRow, StoredOrder};

fn money(currency: &str, nanos: i64) -> Money {
    Amount::from_total_nanos(currency, i128::from(nanos)).to_proto()
}

fn lines(order: &StoredOrder) -> Vec<pb::OrderLine> {
    let currency = &order.order.currency;
    order
        .lines
        .iter()
        .map(|l: &LineRow| pb::OrderLine {
            product_id: l.product_id.clone(),
            name: l.name.clone(),
            quantity: l.quantity,
            unit_price: Some(money(currency, l.unit_price_nanos)),
            line_total: Some(money(
                currency,
                l.unit_price_nanos.saturating_mul(i64::from(l.quantity)),
            )),
        })
        .collect()
}

fn address(order: &StoredOrder) -> pb::ShippingAddress {
    let o = &order.order;
    pb::ShippingAddress {
        name: o.ship_name.clone(),
        line1: o.ship_line1.clone(),
        line2: o.ship_line2.clone(),
        city: o.ship_city.clone(),
        postal_code: o.ship_postal_code.clone(),
        country: o.ship_country.clone(),
    }
}

/// The API view of an order.
pub fn order(stored: &StoredOrder) -> pb::Order {
    let o = &stored.order;
    pb::Order {
        id: o.id.to_string(),
        user_id: o.user_id.clone(),
        status: o.status().to_proto().into(),
        lines: lines(stored),
        subtotal: Some(money(&o.currency, o.subtotal_nanos)),
        discount: Some(money(&o.currency, o.discount_nanos)),
        total: Some(money(&o.currency, o.total_nanos())),
        coupon_code: o.coupon_code.clone(),
        shipping_address: Some(address(stored)),
        payment_id: o.payment_id.clone(),
        cancellation_reason: o.cancellation_reason.clone(),
        tracking_number: o.tracking_number.clone(),
        version: o.version,
        create_time: Some(to_timestamp(o.created_at)),
        update_time: Some(to_timestamp(o.updated_at)),
    }
}

/// OrderPlaced, for a freshly inserted order.
pub fn placed(stored: &StoredOrder) -> pb::OrderPlaced {
    let o = &stored.order;
    pb::OrderPlaced {
        order_id: o.id.to_string(),
        user_id: o.user_id.clone(),
        version: o.version,
        lines: lines(stored),
        subtotal: Some(money(&o.currency, o.subtotal_nanos)),
        discount: Some(money(&o.currency, o.discount_nanos)),
        total: Some(money(&o.currency, o.total_nanos())),
        coupon_code: o.coupon_code.clone(),
        shipping_address: Some(address(stored)),
        payment_id: o.payment_id.clone(),
        place_time: Some(to_timestamp(o.created_at)),
    }
}

/// An order event: the fields every order event shares (those of OrderPlaced), plus its own.
macro_rules! order_event {
    ($event:ident, $stored:expr, { $($field:ident : $value:expr),* $(,)? }) => {{
        let p = placed($stored);
        pb::$event {
            order_id: p.order_id,
            user_id: p.user_id,
            version: p.version,
            lines: p.lines,
            subtotal: p.subtotal,
            discount: p.discount,
            total: p.total,
            coupon_code: p.coupon_code,
            shipping_address: p.shipping_address,
            payment_id: p.payment_id,
            place_time: p.place_time,
            $($field: $value),*
        }
    }};
}

/// OrderConfirmed.
pub fn confirmed(stored: &StoredOrder) -> pb::OrderConfirmed {
    order_event!(OrderConfirmed, stored, {
        confirm_time: Some(to_timestamp(stored.order.updated_at)),
    })
}

/// OrderCancelled; `previous` is the status the order left.
pub fn cancelled(stored: &StoredOrder, previous: pb::OrderStatus) -> pb::OrderCancelled {
    order_event!(OrderCancelled, stored, {
        previous_status: previous.into(),
        reason: stored.order.cancellation_reason.clone(),
        cancelled_by: stored.order.cancelled_by.clone(),
        cancel_time: Some(to_timestamp(stored.order.updated_at)),
    })
}

/// OrderShipped.
pub fn shipped(stored: &StoredOrder) -> pb::OrderShipped {
    order_event!(OrderShipped, stored, {
        tracking_number: stored.order.tracking_number.clone(),
        ship_time: Some(to_timestamp(stored.order.updated_at)),
    })
}
