//! Inventory rules: what a valid request is, and how a reservation moves through its life
//! cycle. Requests are parsed here once; everything past this module holds valid values.

use std::collections::HashMap;
use std::fmt;

use mercato::pb::inventory::v1 as pb;
use mercato_kernel::error::FieldViolations;
use mercato_kernel::validate::{self, MAX_LINE_QUANTITY, MAX_ORDER_LINES, Text};
use uuid::Uuid;

/// Most items one reservation may hold: the most lines an order may have.
pub const MAX_ITEMS: usize = MAX_ORDER_LINES;
/// Most units of one product per reservation: the most one order line may have.
pub const MAX_QUANTITY: i32 = MAX_LINE_QUANTITY;
/// Largest stock correction in either direction.
pub const MAX_DELTA: i32 = 1_000_000;
/// Longest adjustment reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;
/// An order id as callers key their reservations ([`validate::order_ref`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderId(String);

impl OrderId {
    /// Parses `raw`, recording a violation under `field` when it is not a valid order id.
    pub fn parse(v: &mut FieldViolations, field: &str, raw: &str) -> Option<Self> {
        validate::order_ref(v, field, raw).then(|| Self(raw.to_owned()))
    }

    /// The `order_id` of a request that carries nothing else.
    pub fn parse_field(raw: &str) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        Self::parse(&mut v, "order_id", raw).ok_or(v)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Units of one product in a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    /// The product.
    pub product_id: Uuid,
    /// 1 to [`MAX_QUANTITY`] units.
    pub quantity: i32,
}

/// A valid ReserveStock request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveCommand {
    /// The order, the idempotency key.
    pub order_id: OrderId,
    /// Distinct products sorted by id: the order in which stock rows are locked, so that
    /// concurrent reservations never deadlock.
    pub items: Vec<Item>,
}

impl ReserveCommand {
    /// Parses every field of `req`, reporting all problems at once.
    pub fn parse(req: &pb::ReserveStockRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let order_id = OrderId::parse(&mut v, "order_id", &req.order_id);
        let mut items = Vec::with_capacity(req.items.len().min(MAX_ITEMS));
        validate::order_lines(&mut v, "items", req.items.len());
        // An oversized list is rejected as a whole: checking each of its entries would only
        // make the error as large as the abuse.
        if req.items.len() <= MAX_ITEMS {
            let mut first_seen: HashMap<Uuid, usize> = HashMap::new();
            for (i, item) in req.items.iter().enumerate() {
                let field = format!("items[{i}].product_id");
                let product_id = validate::uuid(&mut v, &field, &item.product_id);
                if let Some(id) = product_id
                    && let Some(first) = first_seen.get(&id)
                {
                    v.add(field, format!("duplicates items[{first}].product_id"));
                } else if let Some(id) = product_id {
                    first_seen.insert(id, i);
                }
                validate::line_quantity(&mut v, &format!("items[{i}].quantity"), item.quantity);
                if let Some(product_id) = product_id {
                    items.push(Item {
                        product_id,
                        quantity: item.quantity,
                    });
                }
            }
        }
        match order_id {
            Some(order_id) if v.is_empty() => {
                items.sort_unstable();
                Ok(Self { order_id, items })
            }
            _ => Err(v),
        }
    }
}

/// A valid AdjustStock request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    /// The product.
    pub product_id: Uuid,
    /// Units to add (positive) or remove (negative); never zero.
    pub delta: i32,
    /// Why, for the audit trail; trimmed, 1 to [`MAX_REASON_CHARS`] characters.
    pub reason: String,
}

impl Adjustment {
    /// Parses every field of `req`, reporting all problems at once.
    pub fn parse(req: &pb::AdjustStockRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let product_id = validate::uuid(&mut v, "product_id", &req.product_id);
        if req.delta == 0 || req.delta.unsigned_abs() > MAX_DELTA.unsigned_abs() {
            v.add(
                "delta",
                format!("must be non-zero and between -{MAX_DELTA} and {MAX_DELTA}"),
            );
        }
        let reason = req.reason.trim();
        validate::text(&mut v, "reason", reason, Text::one_line(MAX_REASON_CHARS));
        match product_id {
            Some(product_id) if v.is_empty() => Ok(Self {
                product_id,
                delta: req.delta,
                reason: reason.to_owned(),
            }),
            _ => Err(v),
        }
    }
}

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Units are counted in `reserved`.
    Held,
    /// Units were given back (or never held: a tombstone).
    Released,
    /// Units were sold and left the stock.
    Committed,
}

impl ReservationStatus {
    /// The value stored in `reservations.status`.
    pub fn as_db(self) -> &'static str {
        match self {
            Self::Held => "HELD",
            Self::Released => "RELEASED",
            Self::Committed => "COMMITTED",
        }
    }

    /// The status stored as `raw`; `None` for a value the schema's CHECK does not allow.
    pub fn from_db(raw: &str) -> Option<Self> {
        match raw {
            "HELD" => Some(Self::Held),
            "RELEASED" => Some(Self::Released),
            "COMMITTED" => Some(Self::Committed),
            _ => None,
        }
    }

    /// The proto enum value.
    pub fn to_proto(self) -> pb::ReservationStatus {
        match self {
            Self::Held => pb::ReservationStatus::Held,
            Self::Released => pb::ReservationStatus::Released,
            Self::Committed => pb::ReservationStatus::Committed,
        }
    }

    /// What a repeated ReserveStock answers when the order already has this reservation of
    /// `stored` items and asks for `requested` (both sorted by product id).
    pub fn on_repeat(self, stored: &[Item], requested: &[Item]) -> Repeat {
        match self {
            // Checked first: a tombstone has no items, yet must say why it refuses.
            Self::Released => Repeat::Released,
            Self::Held | Self::Committed if stored == requested => Repeat::Unchanged,
            Self::Held | Self::Committed => Repeat::Mismatch,
        }
    }

    /// What CommitReservation does from this status.
    pub fn on_commit(self) -> Step {
        match self {
            Self::Held => Step::Move(Transition::Commit),
            Self::Committed => Step::Unchanged,
            Self::Released => Step::Refuse,
        }
    }

    /// What ReleaseReservation does from this status.
    pub fn on_release(self) -> Step {
        match self {
            Self::Held => Step::Move(Transition::Unhold),
            Self::Committed => Step::Move(Transition::Restock),
            Self::Released => Step::Unchanged,
        }
    }
}

/// The answer to a ReserveStock for an order that already has a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// The same request again: answer with the reservation as it is.
    Unchanged,
    /// The order asks for different items than it holds.
    Mismatch,
    /// The order was compensated already; it may not hold stock again.
    Released,
}

/// What a commit or release request does to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A real transition that moves stock.
    Move(Transition),
    /// Already done: answer with the reservation as it is.
    Unchanged,
    /// Not possible from the current status.
    Refuse,
}

/// A status change of a reservation and how it moves each item's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// HELD → COMMITTED: the units are sold.
    Commit,
    /// HELD → RELEASED: the units become available again.
    Unhold,
    /// COMMITTED → RELEASED: the sold units come back on hand.
    Restock,
}

/// A change of one product's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockShift {
    /// Added to `on_hand`.
    pub on_hand: i32,
    /// Added to `reserved`.
    pub reserved: i32,
}

impl Transition {
    /// The status after the transition.
    pub fn target(self) -> ReservationStatus {
        match self {
            Self::Commit => ReservationStatus::Committed,
            Self::Unhold | Self::Restock => ReservationStatus::Released,
        }
    }

    /// Whether the units went back on hand.
    pub fn restocks(self) -> bool {
        self == Self::Restock
    }

    /// How the stock of an item of `quantity` units changes.
    pub fn shift(self, quantity: i32) -> StockShift {
        match self {
            Self::Commit => StockShift {
                on_hand: -quantity,
                reserved: -quantity,
            },
            Self::Unhold => StockShift {
                on_hand: 0,
                reserved: -quantity,
            },
            Self::Restock => StockShift {
                on_hand: quantity,
                reserved: 0,
            },
        }
    }
}

/// A product that cannot cover its item of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// The product.
    pub product_id: Uuid,
    /// Units that could still be reserved.
    pub available: i32,
    /// Units asked for.
    pub requested: i32,
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "only {} of {} available, {} requested",
            units(self.available),
            self.product_id,
            self.requested
        )
    }
}

/// "1 unit", "3 units".
pub fn units(n: i32) -> String {
    if n == 1 {
        "1 unit".to_owned()
    } else {
        format!("{n} units")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0190f6b4-0000-7000-8000-000000000001";
    const B: &str = "0190f6b4-0000-7000-8000-000000000002";

    fn item(product_id: &str, quantity: i32) -> pb::StockItem {
        pb::StockItem {
            product_id: product_id.into(),
            quantity,
        }
    }

    fn fields(v: FieldViolations) -> Vec<String> {
        use tonic_types::StatusExt as _;
        v.into_status()
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
            .unwrap_or_default()
    }

    fn reserve(order_id: &str, items: Vec<pb::StockItem>) -> pb::ReserveStockRequest {
        pb::ReserveStockRequest {
            order_id: order_id.into(),
            items,
        }
    }

    #[test]
    fn a_valid_reservation_parses_with_items_sorted_by_product() {
        let cmd =
            ReserveCommand::parse(&reserve("ord_1-A", vec![item(B, 2), item(A, 99)])).unwrap();
        assert_eq!(cmd.order_id.as_str(), "ord_1-A");
        let ids: Vec<String> = cmd.items.iter().map(|i| i.product_id.to_string()).collect();
        assert_eq!(ids, vec![A, B]);
        assert_eq!(cmd.items[0].quantity, 99);
    }

    #[test]
    fn every_bad_reservation_field_is_reported() {
        let req = reserve(
            "bad id!",
            vec![item("nope", 0), item(A, 100), item(A, 1), item("", 1)],
        );
        assert_eq!(
            fields(ReserveCommand::parse(&req).unwrap_err()),
            vec![
                "order_id",
                "items[0].product_id",
                "items[0].quantity",
                "items[1].quantity",
                "items[2].product_id",
                "items[3].product_id",
            ]
        );
    }

    #[test]
    fn a_reservation_needs_one_to_fifty_items() {
        let empty = reserve("o1", vec![]);
        assert_eq!(
            fields(ReserveCommand::parse(&empty).unwrap_err()),
            ["items"]
        );
        let many: Vec<_> = (0..51)
            .map(|i| item(&Uuid::from_u128(i).to_string(), 1))
            .collect();
        assert_eq!(
            fields(ReserveCommand::parse(&reserve("o1", many.clone())).unwrap_err()),
            ["items"]
        );
        assert!(ReserveCommand::parse(&reserve("o1", many[..50].to_vec())).is_ok());
    }

    #[test]
    fn order_ids_are_short_ascii_words() {
        let mut v = FieldViolations::new();
        assert!(OrderId::parse(&mut v, "order_id", &"a".repeat(64)).is_some());
        for bad in ["", "a b", "ä", "a/b", &"a".repeat(65)] {
            assert!(OrderId::parse(&mut v, "order_id", bad).is_none(), "{bad:?}");
        }
        assert!(OrderId::parse_field("x.y").is_err());
    }

    #[test]
    fn an_adjustment_needs_a_bounded_delta_and_a_reason() {
        let ok = Adjustment::parse(&pb::AdjustStockRequest {
            product_id: A.into(),
            delta: -1_000_000,
            reason: "  stock count  ".into(),
        })
        .unwrap();
        assert_eq!(ok.reason, "stock count");
        for delta in [0, 1_000_001, -1_000_001, i32::MIN] {
            let err = Adjustment::parse(&pb::AdjustStockRequest {
                product_id: "x".into(),
                delta,
                reason: "r".repeat(201),
            })
            .unwrap_err();
            assert_eq!(fields(err), ["product_id", "delta", "reason"], "{delta}");
        }
        let blank = Adjustment::parse(&pb::AdjustStockRequest {
            product_id: A.into(),
            delta: 1,
            reason: "   ".into(),
        });
        assert_eq!(fields(blank.unwrap_err()), ["reason"]);
        let control = Adjustment::parse(&pb::AdjustStockRequest {
            product_id: A.into(),
            delta: 1,
            reason: "a\u{0}b".into(),
        });
        assert_eq!(fields(control.unwrap_err()), ["reason"]);
    }

    #[test]
    fn statuses_round_trip_through_the_database_text() {
        for status in [
            ReservationStatus::Held,
            ReservationStatus::Released,
            ReservationStatus::Committed,
        ] {
            assert_eq!(ReservationStatus::from_db(status.as_db()), Some(status));
        }
        assert_eq!(ReservationStatus::from_db("held"), None);
    }

    #[test]
    fn a_repeat_is_unchanged_only_with_the_same_items() {
        let a = Item {
            product_id: Uuid::from_u128(1),
            quantity: 2,
        };
        let b = Item { quantity: 3, ..a };
        use ReservationStatus::*;
        assert_eq!(Held.on_repeat(&[a], &[a]), Repeat::Unchanged);
        assert_eq!(Committed.on_repeat(&[a], &[a]), Repeat::Unchanged);
        assert_eq!(Held.on_repeat(&[a], &[b]), Repeat::Mismatch);
        assert_eq!(Held.on_repeat(&[a], &[]), Repeat::Mismatch);
        assert_eq!(Released.on_repeat(&[], &[a]), Repeat::Released);
        assert_eq!(Released.on_repeat(&[a], &[a]), Repeat::Released);
    }

    #[test]
    fn commit_and_release_follow_the_life_cycle() {
        use ReservationStatus::*;
        assert_eq!(Held.on_commit(), Step::Move(Transition::Commit));
        assert_eq!(Committed.on_commit(), Step::Unchanged);
        assert_eq!(Released.on_commit(), Step::Refuse);
        assert_eq!(Held.on_release(), Step::Move(Transition::Unhold));
        assert_eq!(Committed.on_release(), Step::Move(Transition::Restock));
        assert_eq!(Released.on_release(), Step::Unchanged);
        assert_eq!(Transition::Commit.target(), Committed);
        assert_eq!(Transition::Restock.target(), Released);
        assert!(Transition::Restock.restocks() && !Transition::Unhold.restocks());
    }

    #[test]
    fn transitions_move_the_counters() {
        let shift = |on_hand, reserved| StockShift { on_hand, reserved };
        assert_eq!(Transition::Commit.shift(3), shift(-3, -3));
        assert_eq!(Transition::Unhold.shift(3), shift(0, -3));
        assert_eq!(Transition::Restock.shift(3), shift(3, 0));
    }

    #[test]
    fn a_shortfall_says_what_is_left() {
        let short = Shortfall {
            product_id: Uuid::from_u128(1),
            available: 3,
            requested: 5,
        };
        assert_eq!(
            short.to_string(),
            "only 3 units of 00000000-0000-0000-0000-000000000001 available, 5 requested"
        );
        assert_eq!(units(1), "1 unit");
    }
}
