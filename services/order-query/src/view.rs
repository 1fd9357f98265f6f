//! The read model's rows and how they become the `OrderView` clients see.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use mercato::pb::order::v1::{OrderLine, ShippingAddress};
use mercato::pb::orderquery::v1::{OrderView, PaymentView, StatusChange};
use mercato::pb::payment::v1::CardSummary;
use mercato::pb::r#type::v1::Money;
use mercato_kernel::time::to_timestamp;
use uuid::Uuid;

use crate::domain::{OrderSnapshot, PaymentState};
use crate::schema::{order_history, order_lines, orders, payments};

fn money(currency: &str, units: i64, nanos: i32) -> Money {
    Money {
        currency_code: currency.to_owned(),
        units,
        nanos,
    }
}

/// An enum number as stored; values outside `i16` never occur in these enums.
fn small(n: i32) -> i16 {
    i16::try_from(n).unwrap_or(0)
}

/// A row of `orders`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = orders, check_for_backend(diesel::pg::Pg))]
pub struct OrderRow {
    pub id: Uuid,
    pub user_id: String,
    pub status: i16,
    pub version: i64,
    pub subtotal_currency: String,
    pub subtotal_units: i64,
    pub subtotal_nanos: i32,
    pub discount_currency: String,
    pub discount_units: i64,
    pub discount_nanos: i32,
    pub total_currency: String,
    pub total_units: i64,
    pub total_nanos: i32,
    pub coupon_code: String,
    pub ship_name: String,
    pub ship_line1: String,
    pub ship_line2: String,
    pub ship_city: String,
    pub ship_postal_code: String,
    pub ship_country: String,
    pub payment_id: String,
    pub cancellation_reason: String,
    pub tracking_number: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl OrderRow {
    /// The row holding `s`.
    pub fn from_snapshot(s: &OrderSnapshot) -> Self {
        let a = &s.shipping_address;
        Self {
            id: s.id,
            user_id: s.user_id.clone(),
            status: small(s.status as i32),
            version: s.version,
            subtotal_currency: s.subtotal.currency_code.clone(),
            subtotal_units: s.subtotal.units,
            subtotal_nanos: s.subtotal.nanos,
            discount_currency: s.discount.currency_code.clone(),
            discount_units: s.discount.units,
            discount_nanos: s.discount.nanos,
            total_currency: s.total.currency_code.clone(),
            total_units: s.total.units,
            total_nanos: s.total.nanos,
            coupon_code: s.coupon_code.clone(),
            ship_name: a.name.clone(),
            ship_line1: a.line1.clone(),
            ship_line2: a.line2.clone(),
            ship_city: a.city.clone(),
            ship_postal_code: a.postal_code.clone(),
            ship_country: a.country.clone(),
            payment_id: s.payment_id.clone(),
            cancellation_reason: s.cancellation_reason.clone(),
            tracking_number: s.tracking_number.clone(),
            created_at: s.placed_at,
            updated_at: s.changed_at,
        }
    }
}

/// A row of `order_lines`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = order_lines, check_for_backend(diesel::pg::Pg))]
pub struct LineRow {
    pub order_id: Uuid,
    pub position: i32,
    pub product_id: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price_currency: String,
    pub unit_price_units: i64,
    pub unit_price_nanos: i32,
    pub line_total_currency: String,
    pub line_total_units: i64,
    pub line_total_nanos: i32,
}

impl LineRow {
    /// The rows of `s`'s lines, numbered in event order.
    pub fn from_snapshot(s: &OrderSnapshot) -> Vec<Self> {
        s.lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let unit = line.unit_price.clone().unwrap_or_default();
                let total = line.line_total.clone().unwrap_or_default();
                Self {
                    order_id: s.id,
                    position: i32::try_from(i).unwrap_or(i32::MAX),
                    product_id: line.product_id.clone(),
                    name: line.name.clone(),
                    quantity: line.quantity,
                    unit_price_currency: unit.currency_code,
                    unit_price_units: unit.units,
                    unit_price_nanos: unit.nanos,
                    line_total_currency: total.currency_code,
                    line_total_units: total.units,
                    line_total_nanos: total.nanos,
                }
            })
            .collect()
    }

    fn message(self) -> OrderLine {
        OrderLine {
            product_id: self.product_id,
            name: self.name,
            quantity: self.quantity,
            unit_price: Some(money(
                &self.unit_price_currency,
                self.unit_price_units,
                self.unit_price_nanos,
            )),
            line_total: Some(money(
                &self.line_total_currency,
                self.line_total_units,
                self.line_total_nanos,
            )),
        }
    }
}

/// A row of `order_history`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = order_history, check_for_backend(diesel::pg::Pg))]
pub struct HistoryRow {
    pub order_id: Uuid,
    pub version: i64,
    pub status: i16,
    pub changed_at: DateTime<Utc>,
    pub note: String,
}

impl HistoryRow {
    /// The history entry of the change `s` describes.
    pub fn from_snapshot(s: &OrderSnapshot) -> Self {
        Self {
            order_id: s.id,
            version: s.version,
            status: small(s.status as i32),
            changed_at: s.changed_at,
            note: s.note.clone(),
        }
    }
}

/// A row of `payments`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = payments, check_for_backend(diesel::pg::Pg))]
pub struct PaymentRow {
    pub payment_id: String,
    pub order_id: Uuid,
    pub captured: bool,
    pub failed: bool,
    pub amount_currency: String,
    pub amount_units: i64,
    pub amount_nanos: i32,
    pub refunded_currency: String,
    pub refunded_units: i64,
    pub refunded_nanos: i32,
    pub fully_refunded: bool,
    pub failure_reason: i16,
    pub card_brand: i16,
    pub card_last4: String,
    pub updated_at: DateTime<Utc>,
}

impl PaymentRow {
    /// The row holding `state`.
    pub fn new(payment_id: &str, state: &PaymentState, at: DateTime<Utc>) -> Self {
        Self {
            payment_id: payment_id.to_owned(),
            order_id: state.order_id,
            captured: state.captured,
            failed: state.failed,
            amount_currency: state.amount.currency_code.clone(),
            amount_units: state.amount.units,
            amount_nanos: state.amount.nanos,
            refunded_currency: state.refunded.currency_code.clone(),
            refunded_units: state.refunded.units,
            refunded_nanos: state.refunded.nanos,
            fully_refunded: state.fully_refunded,
            failure_reason: small(state.failure_reason),
            card_brand: small(state.card.brand),
            card_last4: state.card.last4.clone(),
            updated_at: at,
        }
    }

    /// The merged state the row holds.
    pub fn state(&self) -> PaymentState {
        PaymentState {
            order_id: self.order_id,
            captured: self.captured,
            failed: self.failed,
            amount: money(&self.amount_currency, self.amount_units, self.amount_nanos),
            refunded: money(
                &self.refunded_currency,
                self.refunded_units,
                self.refunded_nanos,
            ),
            fully_refunded: self.fully_refunded,
            failure_reason: i32::from(self.failure_reason),
            card: CardSummary {
                brand: i32::from(self.card_brand),
                last4: self.card_last4.clone(),
            },
        }
    }
}

/// The payment to show on an order: the one the order names, otherwise the latest reported
/// (the payment events may precede the order event naming it).
fn chosen_payment(order_payment_id: &str, mut payments: Vec<PaymentRow>) -> Option<PaymentView> {
    payments.sort_by_key(|p| std::cmp::Reverse(p.updated_at));
    let chosen = payments
        .iter()
        .position(|p| p.payment_id == order_payment_id)
        .unwrap_or(0);
    let row = payments.get(chosen)?;
    Some(row.state().view(&row.payment_id))
}

/// The client's view of an order from its rows.
pub fn order_view(
    row: OrderRow,
    lines: Vec<LineRow>,
    history: Vec<HistoryRow>,
    payments: Vec<PaymentRow>,
) -> OrderView {
    let payment = chosen_payment(&row.payment_id, payments);
    OrderView {
        id: row.id.to_string(),
        user_id: row.user_id,
        status: i32::from(row.status),
        lines: lines.into_iter().map(LineRow::message).collect(),
        subtotal: Some(money(
            &row.subtotal_currency,
            row.subtotal_units,
            row.subtotal_nanos,
        )),
        discount: Some(money(
            &row.discount_currency,
            row.discount_units,
            row.discount_nanos,
        )),
        total: Some(money(&row.total_currency, row.total_units, row.total_nanos)),
        coupon_code: row.coupon_code,
        shipping_address: Some(ShippingAddress {
            name: row.ship_name,
            line1: row.ship_line1,
            line2: row.ship_line2,
            city: row.ship_city,
            postal_code: row.ship_postal_code,
            country: row.ship_country,
        }),
        payment,
        cancellation_reason: row.cancellation_reason,
        tracking_number: row.tracking_number,
        history: history
            .into_iter()
            .map(|h| StatusChange {
                status: i32::from(h.status),
                change_time: Some(to_timestamp(h.changed_at)),
                note: h.note,
            })
            .collect(),
        version: row.version,
        create_time: Some(to_timestamp(row.created_at)),
        update_time: Some(to_timestamp(row.updated_at)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn payment(id: &str, secs: i64) -> PaymentRow {
        let state = PaymentState {
            captured: true,
            ..PaymentState::default()
        };
        PaymentRow::new(id, &state, DateTime::from_timestamp(secs, 0).unwrap())
    }

    #[test]
    fn the_payment_the_order_names_is_shown() {
        let chosen = chosen_payment("a", vec![payment("a", 1), payment("b", 2)]).unwrap();
        assert_eq!(chosen.payment_id, "a");
    }

    #[test]
    fn without_a_named_payment_the_latest_is_shown() {
        let chosen = chosen_payment("", vec![payment("a", 1), payment("b", 2)]).unwrap();
        assert_eq!(chosen.payment_id, "b");
        assert!(chosen_payment("", Vec::new()).is_none());
    }
}
