//! Stored orders rendered as API messages and integration events. Every order event carries
//! the order in its `snapshot`, built once here.

use mercato::pb::order::v1 as pb;
use mercato::pb::r#type::v1::Money;
use mercato_kernel::money::Amount;
use mercato_kernel::time::to_timestamp;
use prost::Message;

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

/// The order as every order event carries it.
fn snapshot(stored: &StoredOrder) -> pb::OrderSnapshot {
    let o = &stored.order;
    pb::OrderSnapshot {
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

/// `event` with its deprecated fields 1-11 filled from `snapshot`, for readers that do not
/// know `snapshot` yet (kept for one release; see `events.proto`). Those fields are numbered
/// and typed as the snapshot's, so merging the snapshot's encoding into an event whose fields
/// 1-11 are still empty sets exactly them.
fn with_legacy_fields<E: Message>(mut event: E, snapshot: &pb::OrderSnapshot) -> E {
    if let Err(err) = event.merge(snapshot.encode_to_vec().as_slice()) {
        // Only an events.proto whose fields 1-11 stopped matching the snapshot's could get
        // here (this module's tests would fail first): the event still carries `snapshot`.
        tracing::error!(error = %err, "order event sent without its deprecated fields 1-11");
    }
    event
}

/// OrderPlaced, for a freshly inserted order.
pub fn placed(stored: &StoredOrder) -> pb::OrderPlaced {
    let snapshot = snapshot(stored);
    let event = pb::OrderPlaced {
        snapshot: Some(snapshot.clone()),
        ..pb::OrderPlaced::default()
    };
    with_legacy_fields(event, &snapshot)
}

/// OrderConfirmed.
pub fn confirmed(stored: &StoredOrder) -> pb::OrderConfirmed {
    let snapshot = snapshot(stored);
    let event = pb::OrderConfirmed {
        confirm_time: Some(to_timestamp(stored.order.updated_at)),
        snapshot: Some(snapshot.clone()),
        ..pb::OrderConfirmed::default()
    };
    with_legacy_fields(event, &snapshot)
}

/// OrderCancelled; `previous` is the status the order left.
pub fn cancelled(stored: &StoredOrder, previous: pb::OrderStatus) -> pb::OrderCancelled {
    let snapshot = snapshot(stored);
    let o = &stored.order;
    let event = pb::OrderCancelled {
        previous_status: previous.into(),
        reason: o.cancellation_reason.clone(),
        cancelled_by: o.cancelled_by.clone(),
        cancel_time: Some(to_timestamp(o.updated_at)),
        snapshot: Some(snapshot.clone()),
        ..pb::OrderCancelled::default()
    };
    with_legacy_fields(event, &snapshot)
}

/// OrderShipped.
pub fn shipped(stored: &StoredOrder) -> pb::OrderShipped {
    let snapshot = snapshot(stored);
    let o = &stored.order;
    let event = pb::OrderShipped {
        tracking_number: o.tracking_number.clone(),
        ship_time: Some(to_timestamp(o.updated_at)),
        snapshot: Some(snapshot.clone()),
        ..pb::OrderShipped::default()
    };
    with_legacy_fields(event, &snapshot)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::store::OrderRow;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap_or_default()
    }

    fn stored() -> StoredOrder {
        let id = Uuid::now_v7();
        let line = |no: i32, name: &str, quantity, unit_price_nanos| LineRow {
            order_id: id,
            line_no: no,
            product_id: Uuid::now_v7().to_string(),
            name: name.into(),
            quantity,
            unit_price_nanos,
        };
        StoredOrder {
            order: OrderRow {
                id,
                user_id: "u1".into(),
                idempotency_key: "k".into(),
                request_hash: "h".into(),
                status: crate::domain::Status::Cancelled,
                currency: "EUR".into(),
                subtotal_nanos: 32_500_000_000,
                discount_nanos: 5_000_000_000,
                coupon_code: "SAVE5".into(),
                ship_name: "Ada Lovelace".into(),
                ship_line1: "1 Analytical Way".into(),
                ship_line2: String::new(),
                ship_city: "London".into(),
                ship_postal_code: "N1".into(),
                ship_country: "GB".into(),
                payment_id: "pay-1".into(),
                cancellation_reason: "changed my mind".into(),
                cancelled_by: "u1".into(),
                tracking_number: "TRK-1".into(),
                version: 3,
                saga_step: crate::domain::Step::Done,
                saga_lease_until: None,
                saga_attempts: 0,
                created_at: at(1_700_000_000),
                updated_at: at(1_700_000_600),
            },
            lines: vec![
                line(0, "Mug", 2, 10_000_000_000),
                line(1, "Teapot", 1, 12_500_000_000),
            ],
        }
    }

    /// What a reader of the old shape finds in fields 1-11 of `event`'s encoding.
    fn legacy<E: Message>(event: &E) -> pb::OrderSnapshot {
        pb::OrderSnapshot::decode(event.encode_to_vec().as_slice()).unwrap_or_default()
    }

    #[test]
    fn every_order_event_carries_the_snapshot_and_repeats_it_in_fields_1_to_11() {
        let stored = stored();
        let expected = snapshot(&stored);
        assert_eq!(expected.lines.len(), 2);
        assert_eq!(expected.total, Some(money("EUR", 27_500_000_000)));

        let placed = placed(&stored);
        assert_eq!(placed.snapshot.as_ref(), Some(&expected));
        assert_eq!(legacy(&placed), expected);
        assert_eq!(placed.lines, expected.lines, "lines are not repeated twice");

        let confirmed = confirmed(&stored);
        assert_eq!(confirmed.snapshot.as_ref(), Some(&expected));
        assert_eq!(legacy(&confirmed), expected);
        assert_eq!(
            confirmed.confirm_time,
            Some(to_timestamp(at(1_700_000_600)))
        );

        let cancelled = cancelled(&stored, pb::OrderStatus::Confirmed);
        assert_eq!(cancelled.snapshot.as_ref(), Some(&expected));
        assert_eq!(legacy(&cancelled), expected);
        assert_eq!(cancelled.previous_status, pb::OrderStatus::Confirmed as i32);
        assert_eq!(cancelled.reason, "changed my mind");
        assert_eq!(cancelled.cancelled_by, "u1");

        let shipped = shipped(&stored);
        assert_eq!(shipped.snapshot.as_ref(), Some(&expected));
        assert_eq!(legacy(&shipped), expected);
        assert_eq!(shipped.tracking_number, "TRK-1");
        assert_eq!(shipped.ship_time, Some(to_timestamp(at(1_700_000_600))));
    }

    #[test]
    fn an_old_reader_sees_the_fields_it_always_read() {
        let stored = stored();
        let confirmed = confirmed(&stored);
        assert_eq!(confirmed.order_id, stored.order.id.to_string());
        assert_eq!(confirmed.user_id, "u1");
        assert_eq!(confirmed.version, 3);
        assert_eq!(confirmed.payment_id, "pay-1");
        assert_eq!(confirmed.coupon_code, "SAVE5");
        assert_eq!(confirmed.discount, Some(money("EUR", 5_000_000_000)));
        assert_eq!(confirmed.place_time, Some(to_timestamp(at(1_700_000_000))));
        assert_eq!(
            confirmed.shipping_address.map(|a| a.country).as_deref(),
            Some("GB")
        );
    }
}
