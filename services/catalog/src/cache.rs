//! Cache-aside for single products in Redis. Every operation is best effort with a short
//! timeout: when Redis is slow or down, reads go to Postgres and writes still succeed (the
//! entry then expires by TTL). Failures are counted in `mercato_cache_errors_total`.

use std::time::Duration;

use deadpool_redis::redis::AsyncCommands as _;
use mercato::pb::catalog::v1::Product;
use mercato_kernel::redis::{FAST_FAIL, RedisPool};
use prost::Message as _;

/// How long a cached product lives when nothing invalidates it.
const TTL: Duration = Duration::from_secs(300);

/// The product cache.
#[derive(Clone)]
pub struct ProductCache {
    pool: RedisPool,
    prefix: String,
}

impl ProductCache {
    /// A cache writing keys under `prefix`.
    pub fn new(pool: RedisPool, prefix: &str) -> Self {
        Self {
            pool,
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, id: &str) -> String {
        format!("{}product:{id}", self.prefix)
    }

    fn failed(op: &'static str, err: impl std::fmt::Display) {
        metrics::counter!("mercato_cache_errors_total", "cache" => "product", "op" => op)
            .increment(1);
        tracing::debug!(op, error = %err, "product cache unavailable");
    }

    /// The cached product, if present and Redis answers in time.
    pub async fn get(&self, id: &str) -> Option<Product> {
        let fetch = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            let bytes: Option<Vec<u8>> = conn.get(self.key(id)).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(bytes)
        };
        match tokio::time::timeout(FAST_FAIL, fetch).await {
            Ok(Ok(Some(bytes))) => match Product::decode(bytes.as_slice()) {
                Ok(product) => {
                    metrics::counter!("mercato_cache_hits_total", "cache" => "product")
                        .increment(1);
                    Some(product)
                }
                Err(err) => {
                    Self::failed("decode", err);
                    None
                }
            },
            Ok(Ok(None)) => {
                metrics::counter!("mercato_cache_misses_total", "cache" => "product").increment(1);
                None
            }
            Ok(Err(err)) => {
                Self::failed("get", err);
                None
            }
            Err(_) => {
                Self::failed("get", "timeout");
                None
            }
        }
    }

    /// Stores `product`.
    pub async fn put(&self, product: &Product) {
        let store = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            conn.set_ex::<_, _, ()>(
                self.key(&product.id),
                product.encode_to_vec(),
                TTL.as_secs(),
            )
            .await
            .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(FAST_FAIL, store).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => Self::failed("set", err),
            Err(_) => Self::failed("set", "timeout"),
        }
    }

    /// Drops the entry of `id` (after a committed write).
    pub async fn invalidate(&self, id: &str) {
        let delete = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            conn.del::<_, ()>(self.key(id))
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(FAST_FAIL, delete).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => Self::failed("del", err),
            Err(_) => Self::failed("del", "timeout"),
        }
    }
}
