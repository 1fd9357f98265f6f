//! What can go wrong in an inventory write, and the one mapping of it to a gRPC status.

use std::collections::HashMap;

use mercato_kernel::error::{self, DOMAIN};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, PreconditionViolation, StatusExt as _};
use uuid::Uuid;

use crate::domain::{OrderId, Shortfall, units};

/// Why a write transaction stopped (and rolled back).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Some items of a reservation cannot be covered; the first is the one that failed.
    #[error("out of stock")]
    OutOfStock(Vec<Shortfall>),
    /// An adjustment would take on hand below what is reserved.
    #[error("insufficient stock")]
    InsufficientStock {
        /// The product.
        product_id: Uuid,
        /// Units that could be removed.
        free: i32,
        /// Units asked to be removed.
        requested: i32,
    },
    /// An adjustment would overflow the counter.
    #[error("stock limit")]
    StockLimit(Uuid),
    /// The order already holds a reservation of other items.
    #[error("reservation mismatch")]
    Mismatch(OrderId),
    /// The order's reservation was released (or compensated before it arrived).
    #[error("reservation released")]
    Released(OrderId),
    /// The order holds no reservation.
    #[error("no reservation")]
    NotFound(OrderId),
    /// Stored data breaks an invariant the schema should guarantee.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A query failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

fn precondition(
    reason: &str,
    message: String,
    metadata: HashMap<String, String>,
    violations: Vec<PreconditionViolation>,
) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, DOMAIN, metadata);
    if !violations.is_empty() {
        details.set_precondition_failure(violations);
    }
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

fn metadata(key: &str, value: impl ToString) -> HashMap<String, String> {
    HashMap::from([(key.to_owned(), value.to_string())])
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::OutOfStock(shortfalls) => {
                let message = shortfalls
                    .iter()
                    .map(Shortfall::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                let first = shortfalls
                    .first()
                    .map(|s| s.product_id.to_string())
                    .unwrap_or_default();
                let violations = shortfalls
                    .iter()
                    .map(|s| PreconditionViolation::new("STOCK", s.product_id, s.to_string()))
                    .collect();
                precondition(
                    "OUT_OF_STOCK",
                    message,
                    metadata("product_id", first),
                    violations,
                )
            }
            Error::InsufficientStock {
                product_id,
                free,
                requested,
            } => precondition(
                "INSUFFICIENT_STOCK",
                format!(
                    "only {} of {product_id} free (not reserved), cannot remove {requested}",
                    units(free)
                ),
                metadata("product_id", product_id),
                vec![PreconditionViolation::new(
                    "STOCK",
                    product_id,
                    format!("{} free", units(free)),
                )],
            ),
            Error::StockLimit(product_id) => precondition(
                "STOCK_LIMIT",
                format!("on hand of {product_id} would exceed {} units", i32::MAX),
                metadata("product_id", product_id),
                Vec::new(),
            ),
            Error::Mismatch(order_id) => precondition(
                "RESERVATION_MISMATCH",
                format!("order {order_id} already holds a reservation of other items"),
                metadata("order_id", &order_id),
                Vec::new(),
            ),
            Error::Released(order_id) => precondition(
                "RESERVATION_RELEASED",
                format!("the reservation of order {order_id} was released"),
                metadata("order_id", &order_id),
                Vec::new(),
            ),
            Error::NotFound(order_id) => error::not_found("reservation", order_id.as_str()),
            Error::Corrupt(what) => error::internal(what),
            Error::Db(err) => error::database(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_stock_names_every_short_product() {
        let short = |n: u128, available| Shortfall {
            product_id: Uuid::from_u128(n),
            available,
            requested: 5,
        };
        let status = Status::from(Error::OutOfStock(vec![short(1, 3), short(2, 0)]));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(
            status.message().starts_with("only 3 units of "),
            "{}",
            status.message()
        );
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "OUT_OF_STOCK");
        assert_eq!(info.metadata["product_id"], Uuid::from_u128(1).to_string());
        let failure = details.precondition_failure().unwrap();
        assert_eq!(failure.violations.len(), 2);
        assert_eq!(failure.violations[1].r#type, "STOCK");
        assert_eq!(
            failure.violations[1].subject,
            Uuid::from_u128(2).to_string()
        );
    }

    #[test]
    fn an_unknown_reservation_is_not_found() {
        let order_id = OrderId::parse_field("o-1").unwrap();
        assert_eq!(
            Status::from(Error::NotFound(order_id)).code(),
            Code::NotFound
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status = Status::from(Error::Corrupt("status \"X\"".into()));
        assert_eq!(
            (status.code(), status.message()),
            (Code::Internal, "internal error")
        );
    }
}
