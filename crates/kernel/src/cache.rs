//! Cache-aside of protobuf messages in Redis, one key per entity (`<prefix><kind>:<id>`).
//! Every operation is best effort with a short timeout: when Redis is slow or down, callers
//! read their database instead and writes still succeed (an entry then expires by its TTL).
//! Hits, misses and failures are counted per cache (`mercato_cache_hits_total`,
//! `mercato_cache_misses_total`, `mercato_cache_errors_total{cache, op}`).

use std::marker::PhantomData;
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands as _};

use crate::redis::{FAST_FAIL, RedisPool};

/// Why a cache operation did not happen (counted and logged, never returned to callers).
#[derive(Debug, thiserror::Error)]
enum CacheError {
    /// No pooled connection.
    #[error("redis pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// Redis answered with an error or the connection broke.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A cache of `M` messages of one kind.
pub struct ProtoCache<M> {
    pool: RedisPool,
    prefix: String,
    kind: &'static str,
    ttl: Duration,
    message: PhantomData<fn() -> M>,
}

impl<M> Clone for ProtoCache<M> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            prefix: self.prefix.clone(),
            kind: self.kind,
            ttl: self.ttl,
            message: PhantomData,
        }
    }
}

impl<M: prost::Message + Default> ProtoCache<M> {
    /// A cache of `kind` entries (e.g. "product") under `prefix`, each kept at most `ttl`.
    pub fn new(pool: RedisPool, prefix: &str, kind: &'static str, ttl: Duration) -> Self {
        Self {
            pool,
            prefix: format!("{prefix}{kind}:"),
            kind,
            ttl,
            message: PhantomData,
        }
    }

    /// The key of entity `id`.
    pub fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    fn failed(&self, op: &'static str, err: impl std::fmt::Display) {
        metrics::counter!("mercato_cache_errors_total", "cache" => self.kind, "op" => op)
            .increment(1);
        tracing::debug!(cache = self.kind, op, error = %err, "cache unavailable");
    }

    /// Runs `op` against Redis within the fast-fail timeout; a failure is counted and `None`.
    async fn attempt<T, F>(&self, name: &'static str, op: F) -> Option<T>
    where
        F: Future<Output = Result<T, CacheError>>,
    {
        match tokio::time::timeout(FAST_FAIL, op).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                self.failed(name, err);
                None
            }
            Err(_) => {
                self.failed(name, "timeout");
                None
            }
        }
    }

    /// The cached entity `id`, if present and Redis answers in time.
    pub async fn get(&self, id: &str) -> Option<M> {
        let fetch = async {
            let mut conn = self.pool.get().await?;
            Ok(conn.get::<_, Option<Vec<u8>>>(self.key(id)).await?)
        };
        let bytes = match self.attempt("get", fetch).await {
            Some(Some(bytes)) => bytes,
            Some(None) => {
                metrics::counter!("mercato_cache_misses_total", "cache" => self.kind).increment(1);
                return None;
            }
            // Redis failed: already counted as an error, not a miss.
            None => return None,
        };
        match M::decode(bytes.as_slice()) {
            Ok(message) => {
                metrics::counter!("mercato_cache_hits_total", "cache" => self.kind).increment(1);
                Some(message)
            }
            Err(err) => {
                self.failed("decode", err);
                None
            }
        }
    }

    /// Stores `message` as entity `id`, replacing any entry (a writer after its commit).
    pub async fn put(&self, id: &str, message: &M) {
        self.set(id, message, false).await;
    }

    /// Stores `message` as entity `id` unless an entry exists (a reader's fill after a miss,
    /// which must never overwrite what a writer stored meanwhile).
    pub async fn put_if_absent(&self, id: &str, message: &M) {
        self.set(id, message, true).await;
    }

    async fn set(&self, id: &str, message: &M, only_if_absent: bool) {
        let store = async {
            let mut conn = self.pool.get().await?;
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key(id))
                .arg(message.encode_to_vec())
                .arg("EX")
                .arg(self.ttl.as_secs());
            if only_if_absent {
                cmd.arg("NX");
            }
            // NX answers nil when the key exists: not an error.
            cmd.query_async::<Option<String>>(&mut conn).await?;
            Ok(())
        };
        self.attempt("set", store).await;
    }

    /// Drops the entry of `id`.
    pub async fn invalidate(&self, id: &str) {
        let delete = async {
            let mut conn = self.pool.get().await?;
            Ok(conn.del::<_, ()>(self.key(id)).await?)
        };
        self.attempt("del", delete).await;
    }
}
