//! The limits of an order line, applied by the basket, the order and the stock reservation
//! alike, so that every basket can be checked out and every order reserved.

use crate::error::FieldViolations;

/// Most lines an order may have. The basket holds no more, so every basket can be checked
/// out, and a stock reservation (one per order) holds no more items.
pub const MAX_ORDER_LINES: usize = 50;

/// Most units of one product in one order line (and so in one basket line and one reserved
/// item).
pub const MAX_LINE_QUANTITY: i32 = 99;

/// Whether `quantity` is a line's: 1 to [`MAX_LINE_QUANTITY`]; records "must be between 1
/// and 99" under `field` when not.
pub fn line_quantity(v: &mut FieldViolations, field: &str, quantity: i32) -> bool {
    let valid = (1..=MAX_LINE_QUANTITY).contains(&quantity);
    if !valid {
        v.add(field, format!("must be between 1 and {MAX_LINE_QUANTITY}"));
    }
    valid
}

/// Whether `count` lines make an order: 1 to [`MAX_ORDER_LINES`]; records "must hold 1 to
/// 50 items" under `field` when not.
pub fn order_lines(v: &mut FieldViolations, field: &str, count: usize) -> bool {
    let valid = (1..=MAX_ORDER_LINES).contains(&count);
    if !valid {
        v.add(field, format!("must hold 1 to {MAX_ORDER_LINES} items"));
    }
    valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::described;

    #[test]
    fn a_line_holds_1_to_99_units() {
        let mut v = FieldViolations::new();
        assert!(line_quantity(&mut v, "a", 1));
        assert!(line_quantity(&mut v, "b", MAX_LINE_QUANTITY));
        assert!(!line_quantity(&mut v, "c", 0));
        assert!(!line_quantity(&mut v, "d", -1));
        assert!(!line_quantity(&mut v, "e", MAX_LINE_QUANTITY + 1));
        assert_eq!(
            described(v),
            ["c", "d", "e"].map(|f| format!("{f}: must be between 1 and 99"))
        );
    }

    #[test]
    fn an_order_holds_1_to_50_lines() {
        let mut v = FieldViolations::new();
        assert!(order_lines(&mut v, "items", 1));
        assert!(order_lines(&mut v, "items", MAX_ORDER_LINES));
        assert!(!order_lines(&mut v, "none", 0));
        assert!(!order_lines(&mut v, "many", MAX_ORDER_LINES + 1));
        assert_eq!(
            described(v),
            ["none", "many"].map(|f| format!("{f}: must hold 1 to 50 items"))
        );
    }
}
