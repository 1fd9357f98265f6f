//! Which RPCs may be retried: those the contracts mark with the standard method option
//! `idempotency_level` (`IDEMPOTENT` or `NO_SIDE_EFFECTS`). Nothing else is ever retried, so
//! a retry can never place a second order or take a second payment.

use std::collections::HashSet;
use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, Value};

/// `idempotency_level` numbers of descriptor.proto.
const NO_SIDE_EFFECTS: i32 = 1;
const IDEMPOTENT: i32 = 2;

/// RPC paths (`/package.Service/Method`) that are safe to repeat.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyTable {
    paths: HashSet<String>,
}

impl IdempotencyTable {
    /// The table of every Mercato contract, built once per process.
    pub fn global() -> &'static IdempotencyTable {
        static TABLE: OnceLock<IdempotencyTable> = OnceLock::new();
        TABLE.get_or_init(|| match crate::contracts::pool() {
            Ok(pool) => Self::from_pool(pool),
            Err(err) => {
                // Without the table nothing is retried: safe, only less resilient.
                tracing::error!(error = %err, "cannot read idempotency levels; retries disabled");
                Self::default()
            }
        })
    }

    /// Reads every method's level from a descriptor pool.
    pub fn from_pool(pool: &DescriptorPool) -> Self {
        let mut paths = HashSet::new();
        for service in pool.services() {
            for method in service.methods() {
                let level = match method.options().get_field_by_name("idempotency_level") {
                    Some(value) => match value.as_ref() {
                        Value::EnumNumber(n) => *n,
                        _ => 0,
                    },
                    None => 0,
                };
                if level == NO_SIDE_EFFECTS || level == IDEMPOTENT {
                    paths.insert(format!("/{}/{}", service.full_name(), method.name()));
                }
            }
        }
        Self { paths }
    }

    /// Whether the RPC at `path` may be retried.
    pub fn is_idempotent(&self, path: &str) -> bool {
        self.paths.contains(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_methods_marked_in_the_contracts_are_retryable() {
        let table = IdempotencyTable::global();
        assert!(table.is_idempotent("/mercato.inventory.v1.InventoryService/ReserveStock"));
        assert!(table.is_idempotent("/mercato.catalog.v1.CatalogService/BatchGetProducts"));
        assert!(table.is_idempotent("/mercato.payment.v1.PaymentService/Charge"));
        assert!(!table.is_idempotent("/mercato.payment.v1.PaymentService/Refund"));
        assert!(!table.is_idempotent("/mercato.identity.v1.IdentityService/Register"));
        assert!(!table.is_idempotent("/nope.Service/Method"));
    }
}
