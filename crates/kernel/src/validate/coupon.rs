//! Coupon codes: what the discount service creates, and what a basket or an order may name.
//!
//! One rule for all three: 3 to 32 ASCII letters, digits, '-' or '_', case-insensitive (kept
//! upper case). The basket used to refuse a code shorter than 3 characters while PlaceOrder
//! accepted any length; the discount service never creates such a code, so a shorter one
//! can never apply. Refusing it where it is typed names the field (INVALID_ARGUMENT
//! `coupon_code`) instead of a round trip to the discount service ending in "not found".

use super::REQUIRED;
use crate::error::FieldViolations;

/// Shortest coupon code.
pub const MIN_COUPON_CHARS: usize = 3;
/// Longest coupon code.
pub const MAX_COUPON_CHARS: usize = 32;

/// A well-formed coupon code, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CouponCode(String);

/// What is wrong with a coupon code; its `Display` is the violation's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CouponCodeError {
    /// No code where one is required.
    #[error("{}", REQUIRED)]
    Missing,
    /// Too short, too long, or a character other than the allowed ones.
    #[error("must be {MIN_COUPON_CHARS} to {MAX_COUPON_CHARS} ASCII letters, digits, '-' or '_'")]
    Malformed,
}

impl CouponCode {
    /// Parses `raw` exactly as given (no trimming), upper-casing it.
    pub fn parse(raw: &str) -> Result<Self, CouponCodeError> {
        if raw.is_empty() {
            return Err(CouponCodeError::Missing);
        }
        let well_formed = (MIN_COUPON_CHARS..=MAX_COUPON_CHARS).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if well_formed {
            Ok(Self(raw.to_ascii_uppercase()))
        } else {
            Err(CouponCodeError::Malformed)
        }
    }

    /// The code, upper case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The code, upper case.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for CouponCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A required code, exactly as given (creating a coupon); records its problem under `field`.
pub fn coupon_code(v: &mut FieldViolations, field: &str, raw: &str) -> Option<CouponCode> {
    CouponCode::parse(raw)
        .map_err(|err| v.add(field, err.to_string()))
        .ok()
}

/// A code a customer typed (applying a coupon, placing an order): surrounding white space is
/// ignored and an empty code means none (`None` without a violation). Tell the two `None`s
/// apart by the violations.
pub fn optional_coupon_code(v: &mut FieldViolations, field: &str, raw: &str) -> Option<CouponCode> {
    let code = raw.trim();
    if code.is_empty() {
        return None;
    }
    coupon_code(v, field, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::described;

    #[test]
    fn codes_are_3_to_32_ascii_letters_digits_dashes_or_underscores() {
        assert_eq!(CouponCode::parse("abc").unwrap().as_str(), "ABC");
        assert_eq!(
            CouponCode::parse("Spring_26-x").unwrap().into_string(),
            "SPRING_26-X"
        );
        assert!(CouponCode::parse(&"A".repeat(MAX_COUPON_CHARS)).is_ok());
        assert_eq!(CouponCode::parse(""), Err(CouponCodeError::Missing));
        for bad in [
            "ab",
            &"A".repeat(MAX_COUPON_CHARS + 1),
            "ten off",
            " TEN",
            "CAFÉ10",
            "semi;colon",
            "TEN\u{7}",
        ] {
            assert_eq!(
                CouponCode::parse(bad),
                Err(CouponCodeError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_typed_code_is_trimmed_and_may_be_empty() {
        let mut v = FieldViolations::new();
        assert_eq!(
            optional_coupon_code(&mut v, "coupon_code", " spring-25 ").map(CouponCode::into_string),
            Some("SPRING-25".to_owned())
        );
        assert_eq!(optional_coupon_code(&mut v, "coupon_code", ""), None);
        assert_eq!(optional_coupon_code(&mut v, "coupon_code", " \t "), None);
        assert!(v.is_empty());
        assert_eq!(optional_coupon_code(&mut v, "coupon_code", " ab "), None);
        assert_eq!(
            described(v),
            ["coupon_code: must be 3 to 32 ASCII letters, digits, '-' or '_'"]
        );
    }

    #[test]
    fn a_required_code_says_when_it_is_missing() {
        let mut v = FieldViolations::new();
        assert!(coupon_code(&mut v, "coupon.code", "").is_none());
        assert!(coupon_code(&mut v, "coupon.code", " TEN").is_none());
        assert_eq!(
            described(v),
            [
                "coupon.code: is required",
                "coupon.code: must be 3 to 32 ASCII letters, digits, '-' or '_'",
            ]
        );
    }
}
