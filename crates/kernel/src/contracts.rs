//! The compiled contracts' descriptor pool, decoded once per process for every table the
//! kernel reads from it (RPC policies, idempotency levels, request types).

use std::sync::OnceLock;

use prost_reflect::{DescriptorError, DescriptorPool};

/// The pool of `mercato::DESCRIPTOR_SET`. It is compiled in by build.rs, so an error here is
/// a build defect; each caller decides how to degrade safely.
pub fn pool() -> Result<&'static DescriptorPool, &'static DescriptorError> {
    static POOL: OnceLock<Result<DescriptorPool, DescriptorError>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(mercato::DESCRIPTOR_SET))
        .as_ref()
}
