//! The transactional outbox and its relay to JetStream.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use mercato::pb::events::v1::Envelope;
use prost::{Message as _, Name};
use tokio::sync::Notify;
use uuid::Uuid;

use super::stream::{ensure_replicated_stream, event_subject};
use crate::db::{DbPool, PoolError};
use crate::shutdown::ShutdownSignal;

diesel::table! {
    /// See the kernel migration `00000000000000_kernel_events`.
    outbox (id) {
        id -> Uuid,
        subject -> Text,
        event_type -> Text,
        aggregate_id -> Text,
        envelope -> Bytea,
        created_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
        attempts -> Int4,
        last_error -> Nullable<Text>,
    }
}

/// Largest batch the relay publishes per round.
const BATCH: i64 = 256;
/// Poll interval when nothing woke the relay (events written by another replica).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Longest back-off while NATS is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the relay deletes events published longer ago than the retention.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Rows deleted per statement, so pruning a large backlog never holds long locks.
const PRUNE_BATCH: i64 = 1000;
/// Default retention of published events.
pub const DEFAULT_RETENTION: Duration = crate::config::DEFAULT_OUTBOX_RETENTION;

/// Writes `event` to the outbox on `conn`, which must be inside the transaction of the state
/// change the event describes. Returns the event id.
pub async fn enqueue<M: Name>(
    conn: &mut AsyncPgConnection,
    source: &str,
    aggregate_id: &str,
    event: &M,
) -> QueryResult<Uuid> {
    let type_name = M::full_name();
    let subject = event_subject(&type_name).unwrap_or_else(|| format!("{source}.v1.unknown"));
    let id = Uuid::now_v7();
    let now = chrono::Utc::now();
    let envelope = Envelope {
        id: id.to_string(),
        r#type: type_name.clone(),
        source: source.to_owned(),
        subject: aggregate_id.to_owned(),
        occurred_at: Some(crate::time::to_timestamp(now)),
        traceparent: crate::trace::current_traceparent().unwrap_or_default(),
        payload: event.encode_to_vec(),
        tracestate: String::new(),
    };
    diesel::insert_into(outbox::table)
        .values((
            outbox::id.eq(id),
            outbox::subject.eq(subject),
            outbox::event_type.eq(type_name),
            outbox::aggregate_id.eq(aggregate_id),
            outbox::envelope.eq(envelope.encode_to_vec()),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// Wakes the relay right after a commit, so events go out without waiting for the poll.
#[derive(Debug, Clone, Default)]
pub struct OutboxNotifier(Arc<Notify>);

impl OutboxNotifier {
    /// Signals that new events were committed.
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// Publishes outbox rows to JetStream in order, marking each published once acknowledged.
pub struct Relay {
    pool: DbPool,
    js: jetstream::Context,
    namespace: String,
    domain: String,
    notifier: OutboxNotifier,
    retention: Duration,
    stream_replicas: usize,
}

impl Relay {
    /// A relay for the events of `domain` (the producing service's domain, e.g. "catalog").
    pub fn new(
        pool: DbPool,
        client: async_nats::Client,
        namespace: &str,
        domain: &str,
        notifier: OutboxNotifier,
    ) -> Self {
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_secs(3));
        Self {
            pool,
            js,
            namespace: namespace.to_owned(),
            domain: domain.to_owned(),
            notifier,
            retention: DEFAULT_RETENTION,
            stream_replicas: 1,
        }
    }

    /// Keeps `replicas` copies of the domain's stream (default 1).
    #[must_use]
    pub fn stream_replicas(mut self, replicas: usize) -> Self {
        self.stream_replicas = replicas;
        self
    }

    /// Keeps published events for `retention` before deleting them (default 72 h).
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Runs until shutdown, then publishes what is pending one last time.
    pub fn spawn(self, shutdown: ShutdownSignal) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            let mut stream_ready = false;
            let mut next_prune = tokio::time::Instant::now();
            loop {
                if shutdown.is_requested() {
                    // Best effort flush: whatever NATS does not take now goes out after restart.
                    if stream_ready {
                        let _ = self.publish_batch().await;
                    }
                    break;
                }
                let round = async {
                    if !stream_ready {
                        ensure_replicated_stream(
                            &self.js,
                            &self.namespace,
                            &self.domain,
                            self.stream_replicas,
                        )
                        .await?;
                        stream_ready = true;
                    }
                    self.publish_batch().await
                };
                match round.await {
                    Ok(published) => {
                        backoff = Duration::from_millis(100);
                        if published < BATCH as usize {
                            // Caught up: a moment to prune before waiting for more.
                            let now = tokio::time::Instant::now();
                            if now >= next_prune {
                                next_prune = now + PRUNE_EVERY;
                                self.prune_published().await;
                            }
                            tokio::select! {
                                _ = self.notifier.0.notified() => {},
                                _ = tokio::time::sleep(IDLE_POLL) => {},
                                _ = shutdown.clone().requested() => {},
                            }
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, retry_in = ?backoff, "outbox relay: publish failed");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {},
                            _ = shutdown.clone().requested() => {},
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        })
    }

    /// Deletes the events published longer ago than the retention; failures only log.
    async fn prune_published(&self) {
        let Ok(cutoff) = chrono::Duration::from_std(self.retention) else {
            return;
        };
        let result = async {
            let mut conn = self.pool.get().await?;
            Ok::<_, RelayError>(prune(&mut conn, chrono::Utc::now() - cutoff).await?)
        };
        match result.await {
            Ok(0) => {}
            Ok(deleted) => {
                tracing::info!(deleted, "outbox: published events past retention deleted")
            }
            // The next round tries again; the outbox only grows meanwhile.
            Err(err) => tracing::warn!(error = %err, "outbox: pruning failed"),
        }
    }

    /// Publishes one batch; returns how many events went out.
    pub async fn publish_batch(&self) -> Result<usize, RelayError> {
        let mut conn = self.pool.get().await?;
        let js = &self.js;
        let namespace = &self.namespace;
        conn.transaction::<usize, RelayError, _>(async |conn| {
            {
                // SKIP LOCKED lets several replicas relay side by side without double work.
                let rows: Vec<(Uuid, String, Vec<u8>)> = outbox::table
                    .filter(outbox::published_at.is_null())
                    .order(outbox::id.asc())
                    .limit(BATCH)
                    .select((outbox::id, outbox::subject, outbox::envelope))
                    .for_update()
                    .skip_locked()
                    .load(conn)
                    .await?;
                let mut published = Vec::with_capacity(rows.len());
                let mut failure = None;
                for (id, subject, envelope) in rows {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Nats-Msg-Id", id.to_string().as_str());
                    let subject = format!("{namespace}.{subject}");
                    let sent = async {
                        js.publish_with_headers(subject.clone(), headers, envelope.into())
                            .await?
                            .await
                    };
                    match sent.await {
                        Ok(_) => published.push(id),
                        Err(source) => {
                            diesel::update(outbox::table.find(id))
                                .set((
                                    outbox::attempts.eq(outbox::attempts + 1),
                                    // The row keeps the last reason for inspection.
                                    outbox::last_error.eq(source.to_string()),
                                ))
                                .execute(conn)
                                .await?;
                            failure = Some(RelayError::Publish { subject, source });
                            // Keep order: stop at the first event NATS did not take.
                            break;
                        }
                    }
                }
                if !published.is_empty() {
                    diesel::update(outbox::table.filter(outbox::id.eq_any(&published)))
                        .set(outbox::published_at.eq(diesel::dsl::now))
                        .execute(conn)
                        .await?;
                }
                match failure {
                    Some(err) if published.is_empty() => Err(err),
                    _ => Ok(published.len()),
                }
            }
        })
        .await
    }
}

/// Deletes the events published before `cutoff`, in batches; returns how many went.
/// Events not yet published stay, however old.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> QueryResult<usize> {
    let mut deleted = 0;
    loop {
        let batch: Vec<Uuid> = outbox::table
            .select(outbox::id)
            .filter(outbox::published_at.lt(cutoff))
            .limit(PRUNE_BATCH)
            .load(conn)
            .await?;
        let n = diesel::delete(outbox::table.filter(outbox::id.eq_any(&batch)))
            .execute(conn)
            .await?;
        deleted += n;
        // Another replica pruning alongside may have taken some of the batch first.
        if batch.len() < PRUNE_BATCH as usize {
            return Ok(deleted);
        }
    }
}

/// A relay round that failed; the relay logs it and tries again with back-off.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No connection to the service's database could be had.
    #[error("postgres pool: {0}")]
    Pool(#[from] PoolError),
    /// Reading or marking outbox rows failed.
    #[error("postgres: {0}")]
    Db(#[from] diesel::result::Error),
    /// The domain's stream could not be created or updated.
    #[error("nats: cannot set up the stream: {0}")]
    Stream(#[from] jetstream::context::CreateStreamError),
    /// JetStream did not take (or acknowledge) the oldest pending event.
    #[error("nats: publish to {subject}: {source}")]
    Publish {
        /// The event's subject, with namespace.
        subject: String,
        /// async-nats' error.
        #[source]
        source: jetstream::context::PublishError,
    },
}

/// Number of events not yet published; tests read it to see what the relay has left.
pub async fn pending(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::published_at.is_null())
        .count()
        .get_result(conn)
        .await
}
