//! Integration events on NATS JetStream. Producers never publish inside a request: they
//! [`outbox::enqueue`] the event in the transaction of the state change, and the
//! [`outbox::Relay`] publishes it with `Nats-Msg-Id` = event id, so a re-publish after a
//! crash is dropped by JetStream's de-duplication.
//!
//! Naming: subject `<namespace>.<domain>.v1.<event_snake_case>`, one stream per producing
//! domain named `<NAMESPACE>_<DOMAIN>`. The namespace (`MERCATO_NAMESPACE`) keeps parallel
//! tests and deployments apart on one NATS server.

pub mod changes;
pub mod consumer;
pub mod outbox;
pub mod stream;

pub use changes::{ChangeFeed, change_subject};
pub use stream::{event_subject, stream_name};
