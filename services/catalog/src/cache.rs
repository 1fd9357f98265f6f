//! The product cache: single products cached in Redis by the kernel's cache-aside, filled on
//! reads and invalidated after every committed write.

use std::time::Duration;

use mercato::pb::catalog::v1::Product;
use mercato_kernel::cache::ProtoCache;
use mercato_kernel::redis::RedisPool;

/// How long a cached product lives when nothing invalidates it.
const TTL: Duration = Duration::from_secs(300);

/// Products by id, under `<prefix>product:<id>`.
pub type ProductCache = ProtoCache<Product>;

/// The product cache writing keys under `prefix`.
pub fn product_cache(pool: RedisPool, prefix: &str) -> ProductCache {
    ProtoCache::new(pool, prefix, "product", TTL)
}
