//! Shipping addresses, as PlaceOrder (and the basket's checkout through it) takes them.
//!
//! Every field is checked without its surrounding white space and must be one line: an
//! address is printed on a label line by line, where a control character has no place.

use mercato::pb::order::v1::ShippingAddress;

use super::REQUIRED;
use super::text::{Text, text};
use crate::error::FieldViolations;

/// Longest recipient name, in characters.
const MAX_NAME_CHARS: usize = 100;
/// Longest street line (`line1`, `line2`), in characters.
const MAX_LINE_CHARS: usize = 200;
/// Longest city, in characters.
const MAX_CITY_CHARS: usize = 100;
/// Longest postal code, in characters.
const MAX_POSTAL_CODE_CHARS: usize = 20;

/// Checks every field of `address`, recording each problem under `<field>.<name>` (e.g.
/// `shipping_address.city`), or "is required" under `field` when there is no address;
/// whether it is well-formed. `line2` may be empty; `country` is an ISO 3166-1 alpha-2 code
/// in upper case.
pub fn address(v: &mut FieldViolations, field: &str, address: Option<&ShippingAddress>) -> bool {
    let Some(address) = address else {
        v.add(field, REQUIRED);
        return false;
    };
    let mut problems = FieldViolations::new();
    for (name, value, rule) in [
        ("name", &address.name, Text::one_line(MAX_NAME_CHARS)),
        ("line1", &address.line1, Text::one_line(MAX_LINE_CHARS)),
        (
            "line2",
            &address.line2,
            Text::one_line(MAX_LINE_CHARS).optional(),
        ),
        ("city", &address.city, Text::one_line(MAX_CITY_CHARS)),
        (
            "postal_code",
            &address.postal_code,
            Text::one_line(MAX_POSTAL_CODE_CHARS),
        ),
    ] {
        text(&mut problems, name, value.trim(), rule);
    }
    let country = &address.country;
    if !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())) {
        problems.add(
            "country",
            "must be a two-letter upper-case ISO 3166-1 code, e.g. DE",
        );
    }
    let valid = problems.is_empty();
    v.extend_prefixed(&format!("{field}."), problems);
    valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::{described, fields};

    /// Every field of an address but its country, in the order they are checked.
    const TEXT_FIELDS: [&str; 5] = [
        "shipping_address.name",
        "shipping_address.line1",
        "shipping_address.line2",
        "shipping_address.city",
        "shipping_address.postal_code",
    ];

    fn london() -> ShippingAddress {
        ShippingAddress {
            name: "Ada Lovelace".into(),
            line1: "1 Analytical Way".into(),
            line2: String::new(),
            city: "London".into(),
            postal_code: "N1 9GU".into(),
            country: "GB".into(),
        }
    }

    fn checked(a: &ShippingAddress) -> Vec<String> {
        let mut v = FieldViolations::new();
        let valid = address(&mut v, "shipping_address", Some(a));
        let fields = fields(v);
        assert_eq!(valid, fields.is_empty());
        fields
    }

    #[test]
    fn a_complete_address_is_well_formed() {
        assert!(checked(&london()).is_empty());
        let padded = ShippingAddress {
            name: "  Ada Lovelace\n".into(),
            line2: "   ".into(),
            ..london()
        };
        assert!(
            checked(&padded).is_empty(),
            "surrounding white space is ignored"
        );
    }

    #[test]
    fn a_missing_address_is_required() {
        let mut v = FieldViolations::new();
        assert!(!address(&mut v, "shipping_address", None));
        assert_eq!(described(v), ["shipping_address: is required"]);
    }

    #[test]
    fn every_field_is_reported_under_the_address() {
        let mut v = FieldViolations::new();
        assert!(!address(
            &mut v,
            "shipping_address",
            Some(&ShippingAddress::default())
        ));
        assert_eq!(
            described(v),
            [
                "shipping_address.name: is required",
                "shipping_address.line1: is required",
                "shipping_address.city: is required",
                "shipping_address.postal_code: is required",
                "shipping_address.country: must be a two-letter upper-case ISO 3166-1 code, e.g. DE",
            ]
        );
    }

    #[test]
    fn lengths_are_bounded_per_field() {
        let longest = ShippingAddress {
            name: "n".repeat(MAX_NAME_CHARS),
            line1: "l".repeat(MAX_LINE_CHARS),
            line2: "l".repeat(MAX_LINE_CHARS),
            city: "c".repeat(MAX_CITY_CHARS),
            postal_code: "p".repeat(MAX_POSTAL_CODE_CHARS),
            country: "DE".into(),
        };
        assert!(checked(&longest).is_empty());
        let longer = ShippingAddress {
            name: "n".repeat(MAX_NAME_CHARS + 1),
            line1: "l".repeat(MAX_LINE_CHARS + 1),
            line2: "l".repeat(MAX_LINE_CHARS + 1),
            city: "c".repeat(MAX_CITY_CHARS + 1),
            postal_code: "p".repeat(MAX_POSTAL_CODE_CHARS + 1),
            country: "DE".into(),
        };
        assert_eq!(checked(&longer), TEXT_FIELDS);
    }

    #[test]
    fn control_characters_inside_a_field_are_refused() {
        let broken = ShippingAddress {
            name: "Ada\nLovelace".into(),
            line1: "1 Analytical\tWay".into(),
            line2: "Flat\u{1b}[2J 3".into(),
            city: "Lon\rdon".into(),
            postal_code: "N1\u{7}9GU".into(),
            ..london()
        };
        assert_eq!(checked(&broken), TEXT_FIELDS);
    }

    #[test]
    fn the_country_is_two_upper_case_letters() {
        for bad in ["gb", "GBR", "G", "", "G1", " GB", "ÄÖ"] {
            let a = ShippingAddress {
                country: bad.into(),
                ..london()
            };
            assert_eq!(checked(&a), ["shipping_address.country"], "{bad:?}");
        }
    }
}
