//! The order an order event carries. Every order event has the order as of that event in its
//! `snapshot` (field 16); an event written before snapshots existed has it in its deprecated
//! fields 1-11 instead, numbered as the snapshot's own fields, so that event's encoding
//! decodes as its snapshot. Readers ask [`OrderEvent::order`] and never look at fields 1-11.

use std::borrow::Cow;

use prost::Message;

use crate::pb::order::v1::{
    OrderCancelled, OrderConfirmed, OrderPlaced, OrderShipped, OrderSnapshot,
};

/// An event of the order domain that describes the whole order.
pub trait OrderEvent: Message + Sized {
    /// The event's `snapshot` field.
    fn snapshot_field(&self) -> Option<&OrderSnapshot>;

    /// The order as of this event: its snapshot, or the one its deprecated fields spell.
    fn order(&self) -> Result<Cow<'_, OrderSnapshot>, prost::DecodeError> {
        match self.snapshot_field() {
            Some(snapshot) => Ok(Cow::Borrowed(snapshot)),
            None => OrderSnapshot::decode(self.encode_to_vec().as_slice()).map(Cow::Owned),
        }
    }
}

macro_rules! order_events {
    ($($event:ty),+) => {$(
        impl OrderEvent for $event {
            fn snapshot_field(&self) -> Option<&OrderSnapshot> {
                self.snapshot.as_ref()
            }
        }
    )+};
}

order_events!(OrderPlaced, OrderConfirmed, OrderCancelled, OrderShipped);

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(order_id: &str) -> OrderSnapshot {
        OrderSnapshot {
            order_id: order_id.into(),
            user_id: "u".into(),
            version: 3,
            coupon_code: "SPRING".into(),
            payment_id: "p".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_snapshot_is_the_order() {
        let event = OrderConfirmed {
            order_id: "stale".into(),
            snapshot: Some(snapshot("o-1")),
            ..Default::default()
        };
        assert_eq!(event.order().unwrap().as_ref(), &snapshot("o-1"));
    }

    #[test]
    fn an_event_without_a_snapshot_is_read_from_its_deprecated_fields() {
        let legacy = snapshot("o-2");
        let event = OrderShipped {
            order_id: legacy.order_id.clone(),
            user_id: legacy.user_id.clone(),
            version: legacy.version,
            coupon_code: legacy.coupon_code.clone(),
            payment_id: legacy.payment_id.clone(),
            tracking_number: "TRACK".into(),
            ..Default::default()
        };
        assert_eq!(event.order().unwrap().into_owned(), legacy);
    }
}
