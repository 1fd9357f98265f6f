//! The idempotent consumer every projecting service uses: one durable pull consumer per
//! (service, producing domain), named after the service so every service gets every event;
//! explicit acks; a failing event is redelivered with growing back-off, and after
//! `max_attempts` it is parked on the dead-letter subject `<namespace>.dlq.<service>` with
//! the reason and the original headers, so the events behind it keep flowing.
//!
//! Each event is applied in one Postgres transaction together with its id in
//! `processed_events`: a redelivery finds the id and changes nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use futures::StreamExt as _;
use mercato::pb::events::v1::Envelope;
use opentelemetry::propagation::Extractor;
use prost::Message as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::db::DbPool;
use crate::shutdown::ShutdownSignal;

diesel::table! {
    processed_events (consumer, event_id) {
        consumer -> Text,
        event_id -> Uuid,
        processed_at -> Timestamptz,
    }
}

/// Why an event could not be applied; it is retried, then dead-lettered with this text.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The payload is not the message its type names.
    #[error("undecodable {0}: {1}")]
    Decode(String, String),
    /// The database refused the change.
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    /// Any other reason, in words.
    #[error("{0}")]
    Other(String),
}

/// A service's reaction to events: a projection into its own tables.
#[tonic::async_trait]
pub trait Projector: Send + Sync + 'static {
    /// Applies `event` on `conn`, inside the transaction that also records it as processed.
    /// Events of types the projector does not use are simply ignored (`Ok`).
    async fn apply(&self, conn: &mut AsyncPgConnection, event: &Envelope)
    -> Result<(), ApplyError>;

    /// Runs after the transaction of `event` committed: cache invalidation, broadcasts.
    async fn committed(&self, _event: &Envelope) {}

    /// Empties the projection, for a rebuild from the start of the streams.
    async fn reset(&self, conn: &mut AsyncPgConnection) -> Result<(), ApplyError>;
}

/// Where and how a service consumes.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The consuming service: durable consumer name, `processed_events.consumer`, DLQ subject.
    pub service: String,
    /// Namespace of streams and subjects.
    pub namespace: String,
    /// Producing domains whose streams to follow, e.g. `["order", "payment"]`.
    pub domains: Vec<String>,
    /// Deliveries before an event goes to the dead-letter subject.
    pub max_attempts: i64,
    /// Back-off before the second delivery; doubles per attempt, at most 30 s.
    pub backoff: Duration,
    /// Copies of the followed streams and of the dead letters (see
    /// [`crate::events::stream::ensure_replicated_stream`]).
    pub stream_replicas: usize,
}

impl ConsumerConfig {
    /// Defaults: 5 attempts, back-off from 500 ms.
    pub fn new(service: &str, namespace: &str, domains: &[&str]) -> Self {
        Self {
            service: service.to_owned(),
            namespace: namespace.to_owned(),
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            max_attempts: 5,
            backoff: Duration::from_millis(500),
            stream_replicas: 1,
        }
    }

    /// `<namespace>.dlq.<service>`.
    pub fn dlq_subject(&self) -> String {
        format!("{}.dlq.{}", self.namespace, self.service)
    }

    fn durable(&self) -> String {
        self.service.replace(['.', '*', '>', ' '], "_")
    }
}

/// The stream holding every dead letter of a namespace, so parked events are kept.
async fn ensure_dlq_stream(
    js: &jetstream::Context,
    namespace: &str,
    replicas: usize,
) -> Result<(), String> {
    js.create_or_update_stream(jetstream::stream::Config {
        num_replicas: replicas,
        name: crate::events::stream_name(namespace, "dlq"),
        subjects: vec![format!("{namespace}.dlq.>")],
        max_age: Duration::from_secs(30 * 24 * 3600),
        ..Default::default()
    })
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Forgets where the service's consumers stood and empties its projection, so the next
/// start replays every stream from the beginning.
pub async fn rebuild(
    nats: &async_nats::Client,
    db: &DbPool,
    config: &ConsumerConfig,
    projector: &dyn Projector,
) -> Result<(), String> {
    let js = jetstream::new(nats.clone());
    for domain in &config.domains {
        let name = crate::events::stream_name(&config.namespace, domain);
        if let Ok(stream) = js.get_stream(&name).await {
            // A missing consumer is fine: there is nothing to forget.
            let _ = stream.delete_consumer(&config.durable()).await;
        }
    }
    let mut conn = db.get().await.map_err(|e| e.to_string())?;
    let consumer = config.service.clone();
    conn.transaction(async |conn| {
        diesel::delete(processed_events::table.filter(processed_events::consumer.eq(&consumer)))
            .execute(conn)
            .await?;
        projector.reset(conn).await
    })
    .await
    .map_err(|e: ApplyError| e.to_string())?;
    tracing::info!(service = %config.service, "projection reset; streams replay from the start");
    Ok(())
}

/// Follows every configured stream until shutdown, each in its own task.
pub fn spawn(
    nats: async_nats::Client,
    db: DbPool,
    config: ConsumerConfig,
    projector: Arc<dyn Projector>,
    shutdown: ShutdownSignal,
) {
    for domain in config.domains.clone() {
        let follower = Follower {
            js: jetstream::new(nats.clone()),
            db: db.clone(),
            config: config.clone(),
            projector: projector.clone(),
            domain,
        };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = follower.run() => {}
                () = shutdown.requested() => {}
            }
        });
    }
}

struct Follower {
    js: jetstream::Context,
    db: DbPool,
    config: ConsumerConfig,
    projector: Arc<dyn Projector>,
    domain: String,
}

/// What became of one delivery.
enum Outcome {
    Applied,
    Duplicate,
    Failed(String),
}

impl Follower {
    /// Consumes forever, reconnecting with back-off when NATS or the stream is away.
    async fn run(&self) {
        let mut pause = Duration::from_millis(200);
        loop {
            match self.consume().await {
                Ok(()) => pause = Duration::from_millis(200),
                Err(err) => {
                    tracing::warn!(domain = %self.domain, error = %err, "event consumer interrupted; retrying");
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
            tokio::time::sleep(pause).await;
        }
    }

    async fn consume(&self) -> Result<(), String> {
        let ns = &self.config.namespace;
        let replicas = self.config.stream_replicas;
        crate::events::stream::ensure_replicated_stream(&self.js, ns, &self.domain, replicas)
            .await
            .map_err(|e| e.to_string())?;
        ensure_dlq_stream(&self.js, ns, replicas).await?;
        let stream = self
            .js
            .get_stream(crate::events::stream_name(ns, &self.domain))
            .await
            .map_err(|e| e.to_string())?;
        let durable = self.config.durable();
        let consumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    // Redelivery is bounded here, not by the server: after max_attempts
                    // the event is dead-lettered and acknowledged.
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| e.to_string())?;
            self.handle(message).await?;
        }
        Ok(())
    }

    async fn handle(&self, message: jetstream::Message) -> Result<(), String> {
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let outcome = match Envelope::decode(message.payload.as_ref()) {
            Err(err) => Outcome::Failed(format!("undecodable envelope: {err}")),
            Ok(envelope) => {
                let span = tracing::info_span!(
                    "event",
                    otel.kind = "consumer",
                    messaging.system = "nats",
                    event.id = %envelope.id,
                    event.r#type = %envelope.r#type,
                    consumer = %self.config.service,
                );
                let _ = span.set_parent(parent_context(&envelope));
                self.apply(&envelope).instrument(span).await
            }
        };
        match outcome {
            Outcome::Applied | Outcome::Duplicate => {
                message.ack().await.map_err(|e| e.to_string())?;
            }
            Outcome::Failed(reason) if delivered >= self.config.max_attempts => {
                tracing::error!(subject = %message.subject, %reason, delivered, "event dead-lettered");
                self.dead_letter(&message, &reason, delivered).await?;
                message.ack().await.map_err(|e| e.to_string())?;
            }
            Outcome::Failed(reason) => {
                let exp = u32::try_from(delivered.clamp(1, 10) - 1).unwrap_or(0);
                let delay = (self.config.backoff * 2u32.pow(exp)).min(Duration::from_secs(30));
                tracing::warn!(subject = %message.subject, %reason, delivered, ?delay, "event failed; will retry");
                message
                    .ack_with(AckKind::Nak(Some(delay)))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    async fn apply(&self, envelope: &Envelope) -> Outcome {
        let Ok(event_id) = uuid::Uuid::parse_str(&envelope.id) else {
            return Outcome::Failed(format!("event id {:?} is not a UUID", envelope.id));
        };
        let mut conn = match self.db.get().await {
            Ok(conn) => conn,
            Err(err) => return Outcome::Failed(format!("database pool: {err}")),
        };
        let consumer = self.config.service.clone();
        let projector = self.projector.clone();
        let result = conn
            .transaction(async |conn| {
                let fresh = diesel::insert_into(processed_events::table)
                    .values((
                        processed_events::consumer.eq(&consumer),
                        processed_events::event_id.eq(event_id),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
                if fresh == 0 {
                    return Ok(false);
                }
                projector.apply(conn, envelope).await?;
                Ok::<_, ApplyError>(true)
            })
            .await;
        match result {
            Ok(true) => {
                self.projector.committed(envelope).await;
                Outcome::Applied
            }
            Ok(false) => Outcome::Duplicate,
            Err(err) => Outcome::Failed(err.to_string()),
        }
    }

    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        reason: &str,
        delivered: i64,
    ) -> Result<(), String> {
        // The original headers, except the de-duplication id: a dead letter is a new message
        // and JetStream must not mistake it for the original.
        let mut headers = async_nats::HeaderMap::new();
        if let Some(original) = &message.headers {
            for (name, values) in original.iter() {
                if AsRef::<str>::as_ref(name) != "Nats-Msg-Id" {
                    for value in values {
                        headers.append(name.clone(), value.clone());
                    }
                }
            }
        }
        headers.insert("Mercato-Dlq-Reason", reason);
        headers.insert("Mercato-Dlq-Subject", message.subject.as_str());
        headers.insert("Mercato-Dlq-Consumer", self.config.service.as_str());
        headers.insert("Mercato-Dlq-Deliveries", delivered.to_string().as_str());
        self.js
            .publish_with_headers(self.config.dlq_subject(), headers, message.payload.clone())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

struct MapExtractor(HashMap<String, String>);

impl Extractor for MapExtractor {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The producer's trace context, carried in the envelope.
fn parent_context(envelope: &Envelope) -> opentelemetry::Context {
    let mut fields = HashMap::new();
    if !envelope.traceparent.is_empty() {
        fields.insert("traceparent".to_owned(), envelope.traceparent.clone());
    }
    if !envelope.tracestate.is_empty() {
        fields.insert("tracestate".to_owned(), envelope.tracestate.clone());
    }
    let extractor = MapExtractor(fields);
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&extractor))
}

/// Decodes an event's payload as `M`, or says why not.
pub fn payload<M: prost::Message + Default>(envelope: &Envelope) -> Result<M, ApplyError> {
    M::decode(envelope.payload.as_slice())
        .map_err(|e| ApplyError::Decode(envelope.r#type.clone(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_service() {
        let config = ConsumerConfig::new("order-query", "t1", &["order", "payment"]);
        assert_eq!(config.dlq_subject(), "t1.dlq.order-query");
        assert_eq!(config.durable(), "order-query");
    }

    #[test]
    fn an_undecodable_payload_says_what_it_should_have_been() {
        let envelope = Envelope {
            r#type: "mercato.order.v1.OrderPlaced".into(),
            payload: vec![0xff, 0xff, 0xff],
            ..Default::default()
        };
        let err = payload::<mercato::pb::order::v1::OrderPlaced>(&envelope).unwrap_err();
        assert!(err.to_string().contains("OrderPlaced"), "{err}");
    }
}
