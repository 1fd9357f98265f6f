//! The input rules several services apply, written once so they cannot drift apart: a
//! required UUID, an order reference, bounded text without control characters, an idempotency key, a coupon
//! code, a payment card and a shipping address, and the limits of an order line.
//!
//! Every rule fits the error model of [`crate::error`]: it records what is wrong with a field
//! in a [`FieldViolations`](crate::error::FieldViolations) under the field's proto path, with one wording per rule, and hands
//! back the parsed value (`None` once it recorded a violation). A request is checked whole,
//! so its caller learns every problem in one answer:
//!
//! ```
//! use mercato_kernel::error::FieldViolations;
//! use mercato_kernel::validate::{self, Text};
//!
//! let mut v = FieldViolations::new();
//! let id = validate::uuid(&mut v, "product_id", "lamp");
//! validate::text(&mut v, "title", "Bright\u{7}", Text::one_line(120));
//! assert!(id.is_none());
//! assert_eq!(
//!     v.into_status().message(),
//!     "invalid request: product_id, title"
//! );
//! ```
//!
//! | rule | function | wording |
//! |---|---|---|
//! | UUID | [`uuid`], [`optional_uuid`], [`parse_uuid`] | "is required", "must be a UUID" |
//! | order reference | [`order_ref`] | "must be 1 to 64 of A-Z, a-z, 0-9, '-' and '_'" |
//! | order line | [`line_quantity`], [`order_lines`] | "must be between 1 and 99", "must hold 1 to 50 items" |
//! | text | [`text`] with a [`Text`] | "is required", "must be at most N characters", "must not contain control characters" (other than line breaks and tabs, for [`Text::multi_line`]) |
//! | idempotency key | [`text`] with [`IDEMPOTENCY_KEY`] | as text, on one line |
//! | coupon code | [`coupon_code`], [`optional_coupon_code`] | "is required", "must be 3 to 32 ASCII letters, digits, '-' or '_'" |
//! | card | [`card`] | per field of the card, under `<field>.` |
//! | address | [`address`] | per field of the address, under `<field>.` |

mod address;
mod card;
mod coupon;
mod id;
mod line;
mod text;

pub use address::address;
pub use card::{CardNumber, MAX_HOLDER_NAME_CHARS, MAX_NUMBER_DIGITS, MIN_NUMBER_DIGITS, card};
pub use coupon::{
    CouponCode, CouponCodeError, MAX_COUPON_CHARS, MIN_COUPON_CHARS, coupon_code,
    optional_coupon_code,
};
pub use id::{MAX_ORDER_REF_CHARS, optional_uuid, order_ref, parse_uuid, uuid};
pub use line::{MAX_LINE_QUANTITY, MAX_ORDER_LINES, line_quantity, order_lines};
pub use text::{IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEY_CHARS, Text, TextError, text};

/// Wording of a field that must be set and is empty or missing.
const REQUIRED: &str = "is required";

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt as _;

    use super::*;
    use crate::error::FieldViolations;

    /// `field: description` of every violation, in the order they were recorded.
    pub(super) fn described(v: FieldViolations) -> Vec<String> {
        violations(v)
            .into_iter()
            .map(|(field, description)| format!("{field}: {description}"))
            .collect()
    }

    /// The fields of every violation, in the order they were recorded.
    pub(super) fn fields(v: FieldViolations) -> Vec<String> {
        violations(v).into_iter().map(|(field, _)| field).collect()
    }

    fn violations(v: FieldViolations) -> Vec<(String, String)> {
        v.into_status()
            .get_error_details()
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|f| (f.field.clone(), f.description.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_rules_of_one_request_collect_every_problem_in_one_answer() {
        let mut v = FieldViolations::new();
        let id = uuid(&mut v, "product_id", "lamp");
        let coupon = optional_coupon_code(&mut v, "coupon_code", "x");
        text(&mut v, "idempotency_key", "", IDEMPOTENCY_KEY);
        let number = card(&mut v, "card", None);
        let shipped = address(&mut v, "shipping_address", None);
        assert!(id.is_none() && coupon.is_none() && number.is_none() && !shipped);
        assert_eq!(
            described(v.clone()),
            [
                "product_id: must be a UUID",
                "coupon_code: must be 3 to 32 ASCII letters, digits, '-' or '_'",
                "idempotency_key: is required",
                "card: is required",
                "shipping_address: is required",
            ]
        );
        let status = v.into_status();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "invalid request: product_id, coupon_code, idempotency_key, card, shipping_address"
        );
    }

    #[test]
    fn valid_input_records_nothing() {
        let mut v = FieldViolations::new();
        assert!(uuid(&mut v, "id", "0190a5a4-7b3e-7cc1-9d4e-6f7a8b9c0d1e").is_some());
        assert!(optional_coupon_code(&mut v, "coupon_code", "").is_none());
        assert!(text(&mut v, "idempotency_key", "k-1", IDEMPOTENCY_KEY));
        assert!(v.is_empty());
        assert!(v.into_result().is_ok());
    }
}
