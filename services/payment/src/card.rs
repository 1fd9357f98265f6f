//! What the payment service keeps of a card: its network and last four digits, read from a
//! number that `mercato_kernel::validate::card` has checked and normalized (the input rules
//! of a card live there, shared with the basket's checkout and PlaceOrder).

use mercato::pb::payment::v1::CardBrand;

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
