//! Card input rules, shared with the order service (which rejects a malformed card before it
//! starts a checkout). Pure functions, no I/O.
//!
//! Violation paths are relative to the card (`number`, `exp_month`, …); a caller nests them
//! with `FieldViolations::extend_prefixed("card.", …)`. An expired card is *not* a violation:
//! refusing it is the provider's decision (a FAILED payment with `EXPIRED_CARD`).

use chrono::{DateTime, Utc};
use mercato::pb::payment::v1::{Card, CardBrand};
use mercato_kernel::error::FieldViolations;

/// Fewest digits of a card number (ISO/IEC 7812).
pub const MIN_NUMBER_DIGITS: usize = 12;
/// Most digits of a card number.
pub const MAX_NUMBER_DIGITS: usize = 19;
/// Longest `holder_name`, in characters.
pub const MAX_HOLDER_NAME_CHARS: usize = 100;
/// Longest raw `number` looked at: generous for separators, small enough that a huge string
/// is rejected without being copied.
const MAX_RAW_NUMBER_LEN: usize = 64;

/// Checks every field of `card`; empty when the card is well-formed.
///
/// `now` is part of the contract so date-dependent rules can live here; today none is a
/// validation error (an expired card is refused by the provider instead), so it is unused.
pub fn validate_card(card: &Card, _now: DateTime<Utc>) -> FieldViolations {
    let mut v = FieldViolations::new();
    match normalized_number(&card.number) {
        None => v.add(
            "number",
            format!(
                "must be {MIN_NUMBER_DIGITS} to {MAX_NUMBER_DIGITS} digits (spaces and dashes are ignored)"
            ),
        ),
        Some(number) if !luhn_valid(&number) => v.add("number", "fails the Luhn check"),
        Some(_) => {}
    }
    if !(1..=12).contains(&card.exp_month) {
        v.add("exp_month", "must be between 1 and 12");
    }
    if !(1000..=9999).contains(&card.exp_year) {
        v.add("exp_year", "must be four digits");
    }
    let cvc_len = card.cvc.len();
    if !(3..=4).contains(&cvc_len) || !card.cvc.bytes().all(|b| b.is_ascii_digit()) {
        v.add("cvc", "must be 3 or 4 digits");
    }
    let holder = card.holder_name.trim();
    let holder_chars = holder.chars().count();
    if !(1..=MAX_HOLDER_NAME_CHARS).contains(&holder_chars) {
        v.add(
            "holder_name",
            format!("must be 1 to {MAX_HOLDER_NAME_CHARS} characters"),
        );
    } else if holder.chars().any(char::is_control) {
        v.add("holder_name", "must not contain control characters");
    }
    v
}

/// The digits of `raw` without spaces and dashes, when they are 12 to 19 ASCII digits.
pub fn normalized_number(raw: &str) -> Option<String> {
    if raw.len() > MAX_RAW_NUMBER_LEN {
        return None;
    }
    let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let shaped = (MIN_NUMBER_DIGITS..=MAX_NUMBER_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit());
    shaped.then_some(digits)
}

/// Whether a string of ASCII digits passes the Luhn (mod 10) check.
pub fn luhn_valid(digits: &str) -> bool {
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

/// The card network of a normalized number, from its issuer identification prefix.
pub fn brand(number: &str) -> CardBrand {
    let prefix = |len: usize| -> Option<u32> { number.get(..len)?.parse().ok() };
    match (prefix(1), prefix(2), prefix(4)) {
        (Some(4), _, _) => CardBrand::Visa,
        (_, Some(34 | 37), _) => CardBrand::Amex,
        (_, Some(51..=55), _) | (_, _, Some(2221..=2720)) => CardBrand::Mastercard,
        (_, Some(65), _) | (_, _, Some(6011)) => CardBrand::Discover,
        _ => CardBrand::Unspecified,
    }
}

/// The last four characters of a normalized number (all of it when shorter).
pub fn last4(number: &str) -> String {
    let start = number.len().saturating_sub(4);
    number.get(start..).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap()
    }

    fn card(number: &str) -> Card {
        Card {
            number: number.into(),
            exp_month: 12,
            exp_year: 2030,
            cvc: "123".into(),
            holder_name: "Ada Lovelace".into(),
        }
    }

    fn fields(v: FieldViolations) -> Vec<String> {
        let status = v.into_status();
        use tonic_types::StatusExt as _;
        status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_well_formed_card_has_no_violations() {
        assert!(validate_card(&card("4242424242424242"), now()).is_empty());
        assert!(validate_card(&card("4242 4242-4242 4242"), now()).is_empty());
    }

    #[test]
    fn every_malformed_field_is_reported_under_its_own_name() {
        let bad = Card {
            number: "4242424242424241".into(),
            exp_month: 13,
            exp_year: 30,
            cvc: "12a".into(),
            holder_name: "   ".into(),
        };
        assert_eq!(
            fields(validate_card(&bad, now())),
            vec!["number", "exp_month", "exp_year", "cvc", "holder_name"]
        );
    }

    #[test]
    fn a_number_failing_luhn_says_so() {
        let status = validate_card(&card("4242424242424241"), now()).into_status();
        assert!(status.message().contains("Luhn"), "{}", status.message());
    }

    #[test]
    fn number_length_and_characters_are_checked() {
        for number in [
            "",
            "42424242424",
            "42424242424242424242",
            "4242x42424242424",
        ] {
            assert_eq!(
                fields(validate_card(&card(number), now())),
                vec!["number"],
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
        let mut expired = card("4242424242424242");
        expired.exp_year = 2001;
        expired.exp_month = 1;
        assert!(validate_card(&expired, now()).is_empty());
    }

    #[test]
    fn cvc_and_holder_name_bounds() {
        let mut c = card("4242424242424242");
        c.cvc = "1234".into();
        c.holder_name = "x".repeat(100);
        assert!(validate_card(&c, now()).is_empty());
        c.cvc = "12345".into();
        c.holder_name = "x".repeat(101);
        assert_eq!(fields(validate_card(&c, now())), vec!["cvc", "holder_name"]);
        c.cvc = "12".into();
        c.holder_name = "Ada\u{0}".into();
        assert_eq!(fields(validate_card(&c, now())), vec!["cvc", "holder_name"]);
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
    fn brands_follow_the_issuer_prefixes() {
        assert_eq!(brand("4242424242424242"), CardBrand::Visa);
        assert_eq!(brand("5555555555554444"), CardBrand::Mastercard);
        assert_eq!(brand("2221000000000009"), CardBrand::Mastercard);
        assert_eq!(brand("2720990000000000"), CardBrand::Mastercard);
        assert_eq!(brand("2721000000000000"), CardBrand::Unspecified);
        assert_eq!(brand("378282246310005"), CardBrand::Amex);
        assert_eq!(brand("341111111111111"), CardBrand::Amex);
        assert_eq!(brand("6011111111111117"), CardBrand::Discover);
        assert_eq!(brand("6500000000000000"), CardBrand::Discover);
        assert_eq!(brand("3530111333300000"), CardBrand::Unspecified);
    }

    #[test]
    fn last4_keeps_only_the_tail() {
        assert_eq!(last4("4242424242421234"), "1234");
        assert_eq!(last4("12"), "12");
    }
}
