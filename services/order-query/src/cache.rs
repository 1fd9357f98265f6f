//! Cache-aside for GetOrder in Redis (`<prefix>order:<id>`, the encoded `OrderView`).
//!
//! Every operation is best effort with a short timeout: when Redis is slow or down, reads go
//! to Postgres. Consistency with the projector: after each event commits, the projector
//! replaces the entry with the fresh view (or deletes it), while a reader that missed only
//! ever adds an entry that is absent (`SET NX`). So a reader that loaded an older state just
//! before an event cannot overwrite the newer entry the projector wrote after it.

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands as _};
use mercato::pb::orderquery::v1::OrderView;
use mercato_kernel::redis::{FAST_FAIL, RedisPool};
use prost::Message as _;

/// How long an entry lives when nothing replaces it.
const TTL: Duration = Duration::from_secs(300);

/// The order cache.
#[derive(Clone)]
pub struct OrderCache {
    pool: RedisPool,
    prefix: String,
}

impl OrderCache {
    /// A cache writing keys under `prefix`.
    pub fn new(pool: RedisPool, prefix: &str) -> Self {
        Self {
            pool,
            prefix: prefix.to_owned(),
        }
    }

    /// The key of order `id`.
    pub fn key(&self, id: &str) -> String {
        format!("{}order:{id}", self.prefix)
    }

    fn failed(op: &'static str, err: impl std::fmt::Display) {
        metrics::counter!("mercato_cache_errors_total", "cache" => "order", "op" => op)
            .increment(1);
        tracing::debug!(op, error = %err, "order cache unavailable");
    }

    /// The cached view of order `id`, if present and Redis answers in time.
    pub async fn get(&self, id: &str) -> Option<OrderView> {
        let fetch = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            let bytes: Option<Vec<u8>> = conn.get(self.key(id)).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(bytes)
        };
        match tokio::time::timeout(FAST_FAIL, fetch).await {
            Ok(Ok(Some(bytes))) => match OrderView::decode(bytes.as_slice()) {
                Ok(view) => {
                    metrics::counter!("mercato_cache_hits_total", "cache" => "order").increment(1);
                    Some(view)
                }
                Err(err) => {
                    Self::failed("decode", err);
                    None
                }
            },
            Ok(Ok(None)) => {
                metrics::counter!("mercato_cache_misses_total", "cache" => "order").increment(1);
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

    /// Stores `view` unless an entry exists (a reader's fill after a miss).
    pub async fn fill(&self, view: &OrderView) {
        self.set(view, true).await;
    }

    /// Stores `view`, replacing any entry (the projector, after a commit).
    pub async fn replace(&self, view: &OrderView) {
        self.set(view, false).await;
    }

    async fn set(&self, view: &OrderView, only_if_absent: bool) {
        let store = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key(&view.id))
                .arg(view.encode_to_vec())
                .arg("EX")
                .arg(TTL.as_secs());
            if only_if_absent {
                cmd.arg("NX");
            }
            // NX answers nil when the key exists: not an error.
            cmd.query_async::<Option<String>>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(FAST_FAIL, store).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => Self::failed("set", err),
            Err(_) => Self::failed("set", "timeout"),
        }
    }

    /// Drops the entry of order `id`.
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
