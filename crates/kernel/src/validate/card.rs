//! Payment cards: the basket's checkout, PlaceOrder and Charge take a card, and all three
//! must refuse the same malformed ones.
//!
//! An expired card is *not* a violation: refusing it is the provider's decision (a FAILED
//! payment with `EXPIRED_CARD`), so no rule here depends on the date.

use mercato::pb::payment::v1::Card;

use super::REQUIRED;
use super::text::{Text, text};
use crate::error::FieldViolations;

/// Fewest digits of a card number (ISO/IEC 7812).
pub const MIN_NUMBER_DIGITS: usize = 12;
/// Most digits of a card number.
pub const MAX_NUMBER_DIGITS: usize = 19;
/// Longest `holder_name`, in characters.
pub const MAX_HOLDER_NAME_CHARS: usize = 100;
/// Longest raw `number` looked at: generous for separators, small enough that a huge string
/// is rejected without being copied.
const MAX_RAW_NUMBER_LEN: usize = 64;

/// A well-formed card number: 12 to 19 ASCII digits (separators removed) that pass the Luhn
/// check. Its `Debug` shows the last four digits only.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start = self.0.len().saturating_sub(4);
        write!(
            f,
            "CardNumber(…{})",
            self.0.get(start..).unwrap_or_default()
        )
    }
}

/// Checks every field of `card`, recording each problem under `<field>.<name>` (e.g.
/// `card.number`), or "is required" under `field` when there is no card; the normalized
/// number when the whole card is well-formed.
pub fn card(v: &mut FieldViolations, field: &str, card: Option<&Card>) -> Option<CardNumber> {
    let Some(card) = card else {
        v.add(field, REQUIRED);
        return None;
    };
    let mut problems = FieldViolations::new();
    let number = match normalized_number(&card.number) {
        None => {
            problems.add(
                "number",
                format!(
                    "must be {MIN_NUMBER_DIGITS} to {MAX_NUMBER_DIGITS} digits (spaces and dashes are ignored)"
                ),
            );
            None
        }
        Some(number) if !luhn_valid(&number) => {
            problems.add("number", "fails the Luhn check");
            None
        }
        Some(number) => Some(CardNumber(number)),
    };
    if !(1..=12).contains(&card.exp_month) {
        problems.add("exp_month", "must be between 1 and 12");
    }
    if !(1000..=9999).contains(&card.exp_year) {
        problems.add("exp_year", "must be four digits");
    }
    if !(3..=4).contains(&card.cvc.len()) || !card.cvc.bytes().all(|b| b.is_ascii_digit()) {
        problems.add("cvc", "must be 3 or 4 digits");
    }
    text(
        &mut problems,
        "holder_name",
        card.holder_name.trim(),
        Text::one_line(MAX_HOLDER_NAME_CHARS),
    );
    let valid = problems.is_empty();
    v.extend_prefixed(&format!("{field}."), problems);
    number.filter(|_| valid)
}

/// The digits of `raw` without spaces and dashes, when they are 12 to 19 ASCII digits.
fn normalized_number(raw: &str) -> Option<String> {
    if raw.len() > MAX_RAW_NUMBER_LEN {
        return None;
    }
    let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let shaped = (MIN_NUMBER_DIGITS..=MAX_NUMBER_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit());
    shaped.then_some(digits)
}

/// Whether a string of ASCII digits passes the Luhn (mod 10) check.
fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::{described, fields};

    fn with_number(number: &str) -> Card {
        Card {
            number: number.into(),
            exp_month: 12,
            exp_year: 2030,
            cvc: "123".into(),
            holder_name: "Ada Lovelace".into(),
        }
    }

    fn checked(card_: &Card) -> (Option<CardNumber>, Vec<String>) {
        let mut v = FieldViolations::new();
        let number = card(&mut v, "card", Some(card_));
        (number, fields(v))
    }

    #[test]
    fn a_well_formed_card_gives_its_digits() {
        for spelling in ["4242424242424242", "4242 4242-4242 4242"] {
            let (number, problems) = checked(&with_number(spelling));
            assert_eq!(number.unwrap().as_str(), "4242424242424242");
            assert!(problems.is_empty(), "{problems:?}");
        }
    }

    #[test]
    fn a_missing_card_is_required() {
        let mut v = FieldViolations::new();
        assert!(card(&mut v, "card", None).is_none());
        assert_eq!(described(v), ["card: is required"]);
    }

    #[test]
    fn every_malformed_field_is_reported_under_the_card() {
        let bad = Card {
            number: "4242424242424241".into(),
            exp_month: 13,
            exp_year: 30,
            cvc: "12a".into(),
            holder_name: "   ".into(),
        };
        let mut v = FieldViolations::new();
        assert!(card(&mut v, "payment.card", Some(&bad)).is_none());
        assert_eq!(
            described(v),
            [
                "payment.card.number: fails the Luhn check",
                "payment.card.exp_month: must be between 1 and 12",
                "payment.card.exp_year: must be four digits",
                "payment.card.cvc: must be 3 or 4 digits",
                "payment.card.holder_name: is required",
            ]
        );
    }

    #[test]
    fn a_good_number_on_a_bad_card_is_not_handed_out() {
        let mut c = with_number("4242424242424242");
        c.cvc = "1".into();
        assert_eq!(checked(&c), (None, vec!["card.cvc".to_owned()]));
    }

    #[test]
    fn number_length_and_characters_are_checked() {
        for number in [
            "",
            "42424242424",
            "42424242424242424242",
            "4242x42424242424",
            "４２４２４２４２４２４２４２４２",
        ] {
            assert_eq!(
                checked(&with_number(number)).1,
                ["card.number"],
                "{number:?}"
            );
        }
        assert!(normalized_number(&" ".repeat(1000)).is_none());
        // 12 and 19 digits are the bounds.
        assert!(normalized_number("000000000000").is_some());
        assert!(normalized_number("0000000000000000000").is_some());
    }

    #[test]
    fn an_expired_card_is_not_a_validation_error() {
        let mut expired = with_number("4242424242424242");
        expired.exp_year = 2001;
        expired.exp_month = 1;
        assert!(checked(&expired).0.is_some());
    }

    #[test]
    fn cvc_and_holder_name_bounds() {
        let mut c = with_number("4242424242424242");
        c.cvc = "1234".into();
        c.holder_name = "x".repeat(100);
        assert!(checked(&c).0.is_some());
        c.cvc = "12345".into();
        c.holder_name = "x".repeat(101);
        assert_eq!(checked(&c).1, ["card.cvc", "card.holder_name"]);
        c.cvc = "12".into();
        c.holder_name = "Ada\u{0}".into();
        assert_eq!(checked(&c).1, ["card.cvc", "card.holder_name"]);
        c.cvc = "123".into();
        c.holder_name = "Ada\tLovelace".into();
        assert_eq!(checked(&c).1, ["card.holder_name"]);
    }

    #[test]
    fn luhn_accepts_known_test_numbers_only() {
        for ok in [
            "4242424242424242",
            "4000000000000002",
            "4000000000009995",
            "5555555555554444",
            "378282246310005",
            "6011111111111117",
        ] {
            assert!(luhn_valid(ok), "{ok}");
        }
        assert!(!luhn_valid("4242424242424243"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn the_debug_form_hides_all_but_the_last_four_digits() {
        let number = checked(&with_number("4000000000009995")).0.unwrap();
        assert_eq!(format!("{number:?}"), "CardNumber(…9995)");
    }
}
