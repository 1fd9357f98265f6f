//! Cache-aside for GetOrder in Redis (`<prefix>order:<id>`, the encoded `OrderView`).
//!
//! Every operation is best effort with a short timeout: when Redis is slow or down, reads go
//! to Postgres. Consistency with the projector: after each event commits, the projector
//! replaces the entry with the fresh view (or deletes it), while a reader that missed only
//! ever adds an entry that is absent (`SET NX`). So a reader that loaded an older state just
//! before an event cannot overwrite the newer entry the projector wrote after it.

use std::time::Duration;

use mercato::pb::orderquery::v1::OrderView;
use mercato_kernel::cache::ProtoCache;
use mercato_kernel::redis::RedisPool;

/// How long an entry lives when nothing replaces it.
const TTL: Duration = Duration::from_secs(300);

/// Order views by id, under `<prefix>order:<id>`: readers fill with `put_if_absent`, the
/// projector replaces with `put` or drops with `invalidate`.
pub type OrderCache = ProtoCache<OrderView>;

/// The order cache writing keys under `prefix`.
pub fn order_cache(pool: RedisPool, prefix: &str) -> OrderCache {
    ProtoCache::new(pool, prefix, "order", TTL)
}
