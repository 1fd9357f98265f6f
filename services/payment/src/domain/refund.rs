//! How much of a payment may be refunded, and what a refund does to it. Pure rules.

use std::fmt;

use mercato_kernel::money::Amount;

use super::Status;

/// The money of a payment, as the refund rules see it.
#[derive(Debug, Clone)]
pub struct Balance {
    /// Current status.
    pub status: Status,
    /// Taken from the card.
    pub captured: Amount,
    /// Given back so far.
    pub refunded: Amount,
}

/// A refund the rules allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundPlan {
    /// Amount of this refund, > 0.
    pub amount: Amount,
    /// Total refunded after it.
    pub refunded_after: Amount,
    /// Status after it.
    pub status_after: Status,
}

/// Why a refund is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefusal {
    /// Nothing was captured, or everything was refunded already.
    #[error("the payment is {0}; only captured payments can be refunded")]
    NotCaptured(Status),
    /// The requested amount is in another currency than the payment.
    #[error("must be in the payment's currency {0}")]
    CurrencyMismatch(String),
    /// More than captured minus refunded was asked for.
    #[error("a refund of {requested} exceeds the {refundable} still refundable")]
    Exceeds {
        /// Asked for.
        requested: HumanAmount,
        /// Captured minus refunded.
        refundable: HumanAmount,
    },
}

/// An amount rendered for people: `12.50 EUR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HumanAmount(pub Amount);

impl fmt::Display for HumanAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.total_nanos();
        let sign = if total < 0 { "-" } else { "" };
        let abs = total.unsigned_abs();
        let units = abs / 1_000_000_000;
        let fraction = format!("{:09}", abs % 1_000_000_000);
        // Cents always, further digits only when present.
        let trimmed = fraction.trim_end_matches('0');
        let decimals = if trimmed.len() < 2 {
            &fraction[..2]
        } else {
            trimmed
        };
        write!(f, "{sign}{units}.{decimals} {}", self.0.currency())
    }
}

/// Decides a refund of `requested` (everything left when `None`) on a payment with `balance`.
pub fn plan_refund(
    balance: &Balance,
    requested: Option<&Amount>,
) -> Result<RefundPlan, RefundRefusal> {
    if !balance.status.is_refundable() {
        return Err(RefundRefusal::NotCaptured(balance.status));
    }
    let currency = balance.captured.currency();
    // Stored amounts are i64 nano-units, so their sums and differences stay in range: only
    // the currencies can disagree.
    let refundable = balance
        .captured
        .checked_sub(&balance.refunded)
        .map_err(|_| RefundRefusal::CurrencyMismatch(currency.to_owned()))?;
    let amount = match requested {
        Some(a) if a.currency() != currency => {
            return Err(RefundRefusal::CurrencyMismatch(currency.to_owned()));
        }
        Some(a) => a.clone(),
        None => refundable.clone(),
    };
    if !amount.is_positive() || amount > refundable {
        return Err(RefundRefusal::Exceeds {
            requested: HumanAmount(amount),
            refundable: HumanAmount(refundable),
        });
    }
    let refunded_after = balance
        .refunded
        .checked_add(&amount)
        .map_err(|_| RefundRefusal::CurrencyMismatch(currency.to_owned()))?;
    let status_after = if refunded_after == balance.captured {
        Status::Refunded
    } else {
        Status::PartiallyRefunded
    };
    Ok(RefundPlan {
        amount,
        refunded_after,
        status_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(cents: i64) -> Amount {
        Amount::from_total_nanos("EUR", i128::from(cents) * 10_000_000)
    }

    fn balance(status: Status, captured: i64, refunded: i64) -> Balance {
        Balance {
            status,
            captured: eur(captured),
            refunded: eur(refunded),
        }
    }

    #[test]
    fn an_unset_amount_refunds_everything_left() {
        let plan = plan_refund(&balance(Status::PartiallyRefunded, 1000, 300), None).unwrap();
        assert_eq!(plan.amount, eur(700));
        assert_eq!(plan.refunded_after, eur(1000));
        assert_eq!(plan.status_after, Status::Refunded);
    }

    #[test]
    fn a_partial_refund_leaves_the_payment_partially_refunded() {
        let plan = plan_refund(&balance(Status::Captured, 1000, 0), Some(&eur(250))).unwrap();
        assert_eq!(plan.refunded_after, eur(250));
        assert_eq!(plan.status_after, Status::PartiallyRefunded);
    }

    #[test]
    fn refunds_never_exceed_the_capture() {
        let refusal = plan_refund(
            &balance(Status::PartiallyRefunded, 1000, 300),
            Some(&eur(701)),
        )
        .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "a refund of 7.01 EUR exceeds the 7.00 EUR still refundable"
        );
    }

    #[test]
    fn only_captured_payments_are_refundable() {
        for status in [Status::Failed, Status::Pending, Status::Refunded] {
            assert_eq!(
                plan_refund(&balance(status, 1000, 1000), None).unwrap_err(),
                RefundRefusal::NotCaptured(status)
            );
        }
    }

    #[test]
    fn currencies_must_match() {
        let usd = Amount::from_total_nanos("USD", 1_000_000_000);
        assert_eq!(
            plan_refund(&balance(Status::Captured, 1000, 0), Some(&usd)).unwrap_err(),
            RefundRefusal::CurrencyMismatch("EUR".into())
        );
    }

    #[test]
    fn amounts_display_with_cents_and_extra_precision_only_when_present() {
        assert_eq!(HumanAmount(eur(1250)).to_string(), "12.50 EUR");
        assert_eq!(HumanAmount(eur(0)).to_string(), "0.00 EUR");
        let precise = Amount::from_total_nanos("EUR", 1_234_500_000);
        assert_eq!(HumanAmount(precise).to_string(), "1.2345 EUR");
    }
}
