//! The idempotent consumer every projecting service uses: one durable pull consumer per
//! (service, producing domain), named after the service so every service gets every event;
//! explicit acks; a failing event is redelivered with growing back-off, and after
//! `max_attempts` it is parked on the dead-letter subject `<namespace>.dlq.<service>` with
//! the reason and the original headers, so the events behind it keep flowing.
//!
//! Each event is applied in one Postgres transaction together with its id in
//! `processed_events`: a redelivery finds the id and changes nothing.
//!
//! A service writes a [`Projection`]; the host keeps it as a [`Projector`], which every
//! projection is, whatever it hands from `apply` to `committed`.

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
    #[error("undecodable {type_name}: {source}")]
    Decode {
        /// The envelope's type.
        type_name: String,
        /// prost's error.
        #[source]
        source: prost::DecodeError,
    },
    /// The event cannot be applied as it is: it is malformed, or of a kind the projection
    /// does not know.
    #[error(transparent)]
    Invalid(Box<dyn std::error::Error + Send + Sync>),
    /// The database refused the change.
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
}

impl ApplyError {
    /// [`ApplyError::Invalid`], from a typed error or from words.
    pub fn invalid(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Invalid(reason.into())
    }
}

/// A service's reaction to events: a projection into its own tables.
#[tonic::async_trait]
pub trait Projection: Send + Sync + 'static {
    /// What applying an event touched (an order id, a written row…), handed to
    /// [`Projection::committed`] once the event's transaction committed, so nothing needs
    /// decoding or looking up twice.
    type Touched: Send;

    /// Applies `event` on `conn`, inside the transaction that also records it as processed.
    /// Events of types the projection does not use are ignored unless it says otherwise
    /// (`Ok` with nothing touched).
    async fn apply(
        &self,
        conn: &mut AsyncPgConnection,
        event: &Envelope,
    ) -> Result<Self::Touched, ApplyError>;

    /// Runs after the transaction of `event` committed, with what `apply` touched: cache
    /// invalidation, broadcasts.
    async fn committed(&self, _event: &Envelope, _touched: Self::Touched) {}

    /// Empties the projection, for a rebuild from the start of the streams.
    async fn reset(&self, conn: &mut AsyncPgConnection) -> Result<(), ApplyError>;
}

/// What became of an event handed to [`Projector::project`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Applied and committed, and the projection followed up.
    Applied,
    /// Processed before: nothing changed.
    Duplicate,
}

/// A [`Projection`] as the host keeps it and the consumer runs it, whatever it touches: every
/// projection is one.
#[tonic::async_trait]
pub trait Projector: Send + Sync + 'static {
    /// Applies `event` unless `consumer` processed it before: the projection's change and
    /// the event's id in `processed_events` commit together, then
    /// [`Projection::committed`] runs with what the change touched.
    async fn project(
        &self,
        conn: &mut AsyncPgConnection,
        consumer: &str,
        event_id: uuid::Uuid,
        event: &Envelope,
    ) -> Result<Delivery, ApplyError>;

    /// [`Projection::reset`].
    async fn reset_projection(&self, conn: &mut AsyncPgConnection) -> Result<(), ApplyError>;
}

#[tonic::async_trait]
impl<P: Projection> Projector for P {
    async fn project(
        &self,
        conn: &mut AsyncPgConnection,
        consumer: &str,
        event_id: uuid::Uuid,
        event: &Envelope,
    ) -> Result<Delivery, ApplyError> {
        let touched = conn
            .transaction(async |conn| {
                let fresh = diesel::insert_into(processed_events::table)
                    .values((
                        processed_events::consumer.eq(consumer),
                        processed_events::event_id.eq(event_id),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
                if fresh == 0 {
                    return Ok(None);
                }
                Ok::<_, ApplyError>(Some(self.apply(conn, event).await?))
            })
            .await?;
        match touched {
            Some(touched) => {
                self.committed(event, touched).await;
                Ok(Delivery::Applied)
            }
            None => Ok(Delivery::Duplicate),
        }
    }

    async fn reset_projection(&self, conn: &mut AsyncPgConnection) -> Result<(), ApplyError> {
        self.reset(conn).await
    }
}

/// Why following a stream stopped (the follower logs it and starts again with back-off), or
/// why a rebuild failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// A followed stream or the dead-letter stream could not be created or updated.
    #[error("nats: cannot set up stream {stream}: {source}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// async-nats' error.
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    /// A followed stream could not be looked up.
    #[error("nats: cannot look up stream {stream}: {source}")]
    LookUp {
        /// The stream's name.
        stream: String,
        /// async-nats' error.
        #[source]
        source: jetstream::context::GetStreamError,
    },
    /// The service's durable consumer could not be created or read.
    #[error("nats: durable consumer {durable}: {source}")]
    Consumer {
        /// The consumer's name.
        durable: String,
        /// async-nats' error.
        #[source]
        source: jetstream::stream::ConsumerError,
    },
    /// The consumer's messages could not be pulled.
    #[error("nats: cannot pull messages: {0}")]
    Pull(#[from] jetstream::consumer::StreamError),
    /// A message could not be received.
    #[error("nats: cannot receive a message: {0}")]
    Receive(#[from] pull::MessagesError),
    /// A delivery could not be acknowledged, positively or not.
    #[error("nats: cannot acknowledge a message on {subject}: {source}")]
    Ack {
        /// The message's subject.
        subject: String,
        /// async-nats' error.
        #[source]
        source: async_nats::Error,
    },
    /// JetStream did not take (or acknowledge) a dead letter.
    #[error("nats: cannot dead-letter to {subject}: {source}")]
    DeadLetter {
        /// The dead-letter subject.
        subject: String,
        /// async-nats' error.
        #[source]
        source: jetstream::context::PublishError,
    },
    /// No connection to the service's database could be had (a rebuild).
    #[error("postgres pool: {0}")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::PoolError),
    /// The projection could not be emptied (a rebuild).
    #[error("cannot reset the projection: {0}")]
    Reset(#[source] ApplyError),
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
) -> Result<(), ConsumeError> {
    let stream = crate::events::stream_name(namespace, "dlq");
    js.create_or_update_stream(jetstream::stream::Config {
        num_replicas: replicas,
        name: stream.clone(),
        subjects: vec![format!("{namespace}.dlq.>")],
        max_age: Duration::from_secs(30 * 24 * 3600),
        ..Default::default()
    })
    .await
    .map_err(|source| ConsumeError::Stream { stream, source })?;
    Ok(())
}

/// Forgets where the service's consumers stood and empties its projection, so the next
/// start replays every stream from the beginning.
pub async fn rebuild(
    nats: &async_nats::Client,
    db: &DbPool,
    config: &ConsumerConfig,
    projector: &dyn Projector,
) -> Result<(), ConsumeError> {
    let js = jetstream::new(nats.clone());
    for domain in &config.domains {
        let name = crate::events::stream_name(&config.namespace, domain);
        if let Ok(stream) = js.get_stream(&name).await {
            // A missing consumer is fine: there is nothing to forget.
            let _ = stream.delete_consumer(&config.durable()).await;
        }
    }
    let mut conn = db.get().await?;
    let consumer = config.service.clone();
    conn.transaction(async |conn| {
        diesel::delete(processed_events::table.filter(processed_events::consumer.eq(&consumer)))
            .execute(conn)
            .await?;
        projector.reset_projection(conn).await
    })
    .await
    .map_err(ConsumeError::Reset)?;
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
    Done(Delivery),
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

    async fn consume(&self) -> Result<(), ConsumeError> {
        let ns = &self.config.namespace;
        let replicas = self.config.stream_replicas;
        let stream = crate::events::stream_name(ns, &self.domain);
        crate::events::stream::ensure_replicated_stream(&self.js, ns, &self.domain, replicas)
            .await
            .map_err(|source| ConsumeError::Stream {
                stream: stream.clone(),
                source,
            })?;
        ensure_dlq_stream(&self.js, ns, replicas).await?;
        let stream = self
            .js
            .get_stream(&stream)
            .await
            .map_err(|source| ConsumeError::LookUp { stream, source })?;
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
            .map_err(|source| ConsumeError::Consumer {
                durable: durable.clone(),
                source,
            })?;
        let mut messages = consumer.messages().await?;
        while let Some(message) = messages.next().await {
            self.handle(message?).await?;
        }
        Ok(())
    }

    async fn handle(&self, message: jetstream::Message) -> Result<(), ConsumeError> {
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
        let acked = match outcome {
            Outcome::Done(delivery) => {
                if delivery == Delivery::Duplicate {
                    tracing::debug!(subject = %message.subject, "event processed before; skipped");
                }
                message.ack().await
            }
            Outcome::Failed(reason) if delivered >= self.config.max_attempts => {
                tracing::error!(subject = %message.subject, %reason, delivered, "event dead-lettered");
                self.dead_letter(&message, &reason, delivered).await?;
                message.ack().await
            }
            Outcome::Failed(reason) => {
                let exp = u32::try_from(delivered.clamp(1, 10) - 1).unwrap_or(0);
                let delay = (self.config.backoff * 2u32.pow(exp)).min(Duration::from_secs(30));
                tracing::warn!(subject = %message.subject, %reason, delivered, ?delay, "event failed; will retry");
                message.ack_with(AckKind::Nak(Some(delay))).await
            }
        };
        acked.map_err(|source| ConsumeError::Ack {
            subject: message.subject.to_string(),
            source,
        })
    }

    /// Applies one event; a failure is told in words, as the dead-letter reason.
    async fn apply(&self, envelope: &Envelope) -> Outcome {
        let Ok(event_id) = uuid::Uuid::parse_str(&envelope.id) else {
            return Outcome::Failed(format!("event id {:?} is not a UUID", envelope.id));
        };
        let mut conn = match self.db.get().await {
            Ok(conn) => conn,
            Err(err) => return Outcome::Failed(format!("database pool: {err}")),
        };
        match self
            .projector
            .project(&mut conn, &self.config.service, event_id, envelope)
            .await
        {
            Ok(delivery) => Outcome::Done(delivery),
            Err(err) => Outcome::Failed(err.to_string()),
        }
    }

    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        reason: &str,
        delivered: i64,
    ) -> Result<(), ConsumeError> {
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
        let subject = self.config.dlq_subject();
        let parked = async {
            self.js
                .publish_with_headers(subject.clone(), headers, message.payload.clone())
                .await?
                .await
        };
        parked
            .await
            .map_err(|source| ConsumeError::DeadLetter { subject, source })?;
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
    M::decode(envelope.payload.as_slice()).map_err(|source| ApplyError::Decode {
        type_name: envelope.r#type.clone(),
        source,
    })
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
    fn an_invalid_event_reads_as_its_cause() {
        let err = ApplyError::invalid(uuid::Uuid::parse_str("nope").unwrap_err());
        assert_eq!(
            err.to_string(),
            uuid::Uuid::parse_str("nope").unwrap_err().to_string()
        );
        assert_eq!(
            ApplyError::invalid("event names no user").to_string(),
            "event names no user"
        );
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
        assert!(
            std::error::Error::source(&err).is_some(),
            "prost's error is kept"
        );
    }
}
