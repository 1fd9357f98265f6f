//! The simulated card provider: deterministic answers for well-known test numbers, so every
//! outcome of a payment can be produced on purpose. It sees the full card only for the
//! duration of the call; nothing here is stored or logged.

use chrono::{DateTime, Datelike as _, Utc};
use mercato::pb::payment::v1::{Card, PaymentFailureReason};

/// Captures.
pub const CARD_SUCCEEDS: &str = "4242424242424242";
/// Declined by the issuer.
pub const CARD_DECLINED: &str = "4000000000000002";
/// Not enough funds.
pub const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
/// Reported as expired whatever its expiry date.
pub const CARD_EXPIRED: &str = "4000000000000069";
/// The CVC is wrong.
pub const CARD_INCORRECT_CVC: &str = "4000000000000127";
/// The provider fails.
pub const CARD_PROCESSING_ERROR: &str = "4000000000000119";

/// The provider's answer to an authorise-and-capture request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The money was taken.
    Captured,
    /// The card was refused; nothing was taken.
    Refused(PaymentFailureReason),
}

/// Authorises and captures a charge on `card`, whose number is already normalized (digits
/// only) and Luhn-valid. A card expiring before the current month is refused as expired.
pub fn charge(number: &str, card: &Card, now: DateTime<Utc>) -> Decision {
    let current = (now.year(), i32::try_from(now.month()).unwrap_or(12));
    if (card.exp_year, card.exp_month) < current {
        return Decision::Refused(PaymentFailureReason::ExpiredCard);
    }
    match number {
        CARD_DECLINED => Decision::Refused(PaymentFailureReason::Declined),
        CARD_INSUFFICIENT_FUNDS => Decision::Refused(PaymentFailureReason::InsufficientFunds),
        CARD_EXPIRED => Decision::Refused(PaymentFailureReason::ExpiredCard),
        CARD_INCORRECT_CVC => Decision::Refused(PaymentFailureReason::IncorrectCvc),
        CARD_PROCESSING_ERROR => Decision::Refused(PaymentFailureReason::ProcessingError),
        _ => Decision::Captured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap()
    }

    fn card(exp_year: i32, exp_month: i32) -> Card {
        Card {
            number: String::new(),
            exp_month,
            exp_year,
            cvc: "123".into(),
            holder_name: "Ada".into(),
        }
    }

    #[test]
    fn test_cards_give_their_documented_outcome() {
        use PaymentFailureReason as R;
        let valid = card(2030, 1);
        let cases = [
            (CARD_SUCCEEDS, Decision::Captured),
            (CARD_DECLINED, Decision::Refused(R::Declined)),
            (
                CARD_INSUFFICIENT_FUNDS,
                Decision::Refused(R::InsufficientFunds),
            ),
            (CARD_EXPIRED, Decision::Refused(R::ExpiredCard)),
            (CARD_INCORRECT_CVC, Decision::Refused(R::IncorrectCvc)),
            (CARD_PROCESSING_ERROR, Decision::Refused(R::ProcessingError)),
            ("5555555555554444", Decision::Captured),
        ];
        for (number, expected) in cases {
            assert_eq!(charge(number, &valid, now()), expected, "{number}");
        }
    }

    #[test]
    fn a_card_is_valid_through_its_expiry_month() {
        assert_eq!(
            charge(CARD_SUCCEEDS, &card(2026, 6), now()),
            Decision::Captured
        );
        assert_eq!(
            charge(CARD_SUCCEEDS, &card(2026, 5), now()),
            Decision::Refused(PaymentFailureReason::ExpiredCard)
        );
        assert_eq!(
            charge(CARD_SUCCEEDS, &card(2025, 12), now()),
            Decision::Refused(PaymentFailureReason::ExpiredCard)
        );
    }
}
