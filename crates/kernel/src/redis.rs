//! Redis through deadpool-redis, with short timeouts: the cache is an optimisation, so a
//! slow or absent Redis must fail fast and let the caller fall back to Postgres.

use std::time::Duration;

use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};

/// A pool of Redis connections.
pub type RedisPool = Pool;

/// Longest wait for a Redis connection or command before treating Redis as down.
pub const FAST_FAIL: Duration = Duration::from_millis(500);

/// The pool could not be built from the URL.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisError(#[from] deadpool_redis::CreatePoolError);

/// A pool to `url`; connections are opened lazily, so this succeeds while Redis is down.
pub fn pool(url: &str, max_size: usize) -> Result<RedisPool, RedisError> {
    let mut config = Config::from_url(url);
    config.pool = Some(PoolConfig {
        max_size,
        timeouts: Timeouts {
            wait: Some(FAST_FAIL),
            create: Some(FAST_FAIL),
            recycle: Some(FAST_FAIL),
        },
        ..PoolConfig::default()
    });
    config
        .create_pool(Some(Runtime::Tokio1))
        .map_err(RedisError)
}

/// Whether Redis answers PING.
pub async fn ping(pool: &RedisPool) -> bool {
    let Ok(mut conn) = pool.get().await else {
        return false;
    };
    let pong: Result<String, _> = deadpool_redis::redis::cmd("PING")
        .query_async(&mut conn)
        .await;
    pong.is_ok()
}
