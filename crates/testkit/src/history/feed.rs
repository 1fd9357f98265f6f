//! Feeding a history to a service: publication as the producers' relays do, replicas of a
//! projecting service sharing one durable consumer, and waits until it has all been consumed.

use std::collections::HashMap;
use std::time::Duration;

use mercato::pb::events::v1::Envelope;
use mercato_kernel::{RunningService, ServiceConfig};
use prost::Message as _;

use crate::{TestDatabase, TestIdentity};

/// One publication of an event.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event.
    pub envelope: Envelope,
    /// Its `Nats-Msg-Id`: the event id, or another one for a duplicate JetStream must store.
    pub msg_id: String,
}

/// What publishing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Messages sent.
    pub sent: usize,
    /// Messages JetStream dropped as duplicates (same `Nats-Msg-Id` within its window).
    pub deduplicated: usize,
}

async fn connect() -> async_nats::jetstream::Context {
    async_nats::jetstream::new(
        async_nats::connect(crate::nats_url())
            .await
            .expect("nats connects"),
    )
}

/// Publishes `deliveries` in order onto the streams of `namespace` (created if need be), as
/// the producers' relays do (`Nats-Msg-Id` header, one subject per event type), over one
/// connection with the acknowledgements awaited in batches.
pub async fn publish(namespace: &str, deliveries: &[Delivery]) -> Published {
    let js = connect().await;
    let mut domains: Vec<&str> = deliveries
        .iter()
        .map(|d| d.envelope.source.as_str())
        .collect();
    domains.sort_unstable();
    domains.dedup();
    for domain in domains {
        mercato_kernel::events::stream::ensure_stream(&js, namespace, domain)
            .await
            .expect("stream");
    }
    let mut deduplicated = 0;
    for batch in deliveries.chunks(256) {
        let mut acks = Vec::with_capacity(batch.len());
        for d in batch {
            let subject =
                mercato_kernel::events::event_subject(&d.envelope.r#type).expect("a mercato event");
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", d.msg_id.as_str());
            let ack = js
                .publish_with_headers(
                    format!("{namespace}.{subject}"),
                    headers,
                    d.envelope.encode_to_vec().into(),
                )
                .await
                .expect("publish");
            acks.push(ack);
        }
        for ack in acks {
            if ack.await.expect("acknowledged").duplicate {
                deduplicated += 1;
            }
        }
    }
    Published {
        sent: deliveries.len(),
        deduplicated,
    }
}

/// The durable consumer name the kernel gives `service`.
fn durable(service: &str) -> String {
    service.replace(['.', '*', '>', ' '], "_")
}

/// Waits (up to 30 s) until `service`'s durable consumer of every stream of `domains` in
/// `namespace` has pull requests from at least `pullers` followers waiting: every replica is
/// then ready to take its share of what is published next.
pub async fn wait_for_pullers(namespace: &str, service: &str, domains: &[&str], pullers: usize) {
    let js = connect().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for domain in domains {
        let name = mercato_kernel::events::stream_name(namespace, domain);
        loop {
            let waiting = match js.get_stream(&name).await {
                Ok(stream) => stream
                    .consumer_info(durable(service))
                    .await
                    .map_or(0, |info| info.num_waiting),
                Err(_) => 0,
            };
            if waiting >= pullers {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{service} has {waiting} of {pullers} pull requests waiting on {name}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits (up to `within`) until `service`'s durable consumer of every stream of `domains`
/// in `namespace` has acknowledged every message of its stream: nothing pending, nothing in
/// flight, the acknowledgement floor at the stream's last message. Every effect of every
/// event is then committed, and its after-commit work (cache, live feed) done, since the
/// consumer acknowledges only after both.
pub async fn wait_until_consumed(
    namespace: &str,
    service: &str,
    domains: &[&str],
    within: Duration,
) {
    let js = connect().await;
    let deadline = tokio::time::Instant::now() + within;
    for domain in domains {
        let name = mercato_kernel::events::stream_name(namespace, domain);
        loop {
            let stream = js.get_stream(&name).await.expect("stream");
            let last = stream
                .get_info()
                .await
                .expect("stream info")
                .state
                .last_sequence;
            let info = stream
                .consumer_info(durable(service))
                .await
                .expect("consumer info");
            if info.num_pending == 0
                && info.num_ack_pending == 0
                && info.ack_floor.stream_sequence >= last
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{service} did not consume {name} within {within:?}: {} of {last} acknowledged, \
                 {} pending, {} in flight",
                info.ack_floor.stream_sequence,
                info.num_pending,
                info.num_ack_pending
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// How many dead letters `namespace` holds (0 when its dead-letter stream does not exist).
pub async fn dead_letters(namespace: &str) -> u64 {
    let js = connect().await;
    match js
        .get_stream(mercato_kernel::events::stream_name(namespace, "dlq"))
        .await
    {
        Ok(stream) => stream.get_info().await.map_or(0, |i| i.state.messages),
        Err(_) => 0,
    }
}

/// Deletes the streams of `domains` and the dead-letter stream of `namespace`.
pub async fn delete_streams(namespace: &str, domains: &[&str]) {
    let js = connect().await;
    for domain in domains.iter().copied().chain(["dlq"]) {
        let _ = js
            .delete_stream(mercato_kernel::events::stream_name(namespace, domain))
            .await;
    }
}

/// Replicas of one projecting service on one database and one namespace (so one durable
/// consumer per stream, shared), verifying tokens of a given identity.
pub struct Replicas {
    /// The service's name (durable consumer, database prefix).
    pub service: String,
    /// The namespace of its streams: its own, not the identity's (whose UserRegistered events
    /// would otherwise mix with the history).
    pub namespace: String,
    /// The database they share.
    pub database: TestDatabase,
    /// The environment each was started with.
    pub env: HashMap<String, String>,
    /// The replicas.
    pub running: Vec<RunningService>,
}

impl Replicas {
    /// Starts `n` replicas of `service` with `start`, one after the other, on a fresh
    /// database and namespace. Failed events are retried after 50 ms (doubling), 5 times.
    pub async fn start<F, Fut, E>(
        service: &str,
        identity: &TestIdentity,
        n: usize,
        start: F,
    ) -> Self
    where
        F: Fn(ServiceConfig) -> Fut,
        Fut: std::future::Future<Output = Result<RunningService, E>>,
        E: std::fmt::Debug,
    {
        let database = TestDatabase::new(service);
        let namespace = format!("t{}", crate::unique_id());
        let mut env = crate::service_env(service, &database, &namespace);
        env.insert("MERCATO_UPSTREAM_IDENTITY".into(), identity.url());
        env.insert("MERCATO_EVENT_MAX_ATTEMPTS".into(), "5".into());
        env.insert("MERCATO_EVENT_BACKOFF_MS".into(), "50".into());
        let config = ServiceConfig::from_source(service, &env).expect("service config");
        let mut running = Vec::with_capacity(n);
        for _ in 0..n {
            running.push(start(config.clone()).await.expect("replica starts"));
        }
        Self {
            service: service.to_owned(),
            namespace,
            database,
            env,
            running,
        }
    }

    /// Publishes `deliveries` once every replica is pulling from every stream of `domains`,
    /// and returns when all of it has been acknowledged (at most `within`), with no dead
    /// letter.
    pub async fn consume(
        &self,
        domains: &[&str],
        deliveries: &[Delivery],
        within: Duration,
    ) -> Published {
        wait_for_pullers(&self.namespace, &self.service, domains, self.running.len()).await;
        let published = publish(&self.namespace, deliveries).await;
        wait_until_consumed(&self.namespace, &self.service, domains, within).await;
        assert_eq!(
            dead_letters(&self.namespace).await,
            0,
            "{} replicas of {} dead-lettered events",
            self.running.len(),
            self.service
        );
        published
    }

    /// The gRPC address of replica `i`.
    pub fn addr(&self, i: usize) -> std::net::SocketAddr {
        self.running[i].grpc_addr
    }

    /// Stops every replica and deletes the streams of `domains`.
    pub async fn stop(self, domains: &[&str]) {
        for replica in self.running {
            replica.stop().await.expect("replica stops");
        }
        delete_streams(&self.namespace, domains).await;
    }
}
