//! Stream and subject naming, and stream set-up at start-up.

use std::time::Duration;

use async_nats::jetstream;

/// Subject of an event type, without namespace: `mercato.catalog.v1.PriceChanged` →
/// `catalog.v1.price_changed`. `None` for a name that is not `mercato.<domain>.v1.<Name>`.
pub fn event_subject(full_name: &str) -> Option<String> {
    let mut parts = full_name.split('.');
    let (Some("mercato"), Some(domain), Some(version), Some(name), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some(format!("{domain}.{version}.{}", snake_case(name)))
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Stream holding every event of `domain`: `MERCATO_CATALOG` for namespace "mercato".
pub fn stream_name(namespace: &str, domain: &str) -> String {
    format!("{namespace}_{domain}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Creates (or updates) the stream of `domain` with one copy (tests and tools on a single
/// server); see [`ensure_replicated_stream`].
pub async fn ensure_stream(
    js: &jetstream::Context,
    namespace: &str,
    domain: &str,
) -> Result<(), jetstream::context::CreateStreamError> {
    ensure_replicated_stream(js, namespace, domain, 1).await
}

/// Creates (or updates) the stream of `domain`, kept in `replicas` copies, so publishing
/// never races its creation.
pub async fn ensure_replicated_stream(
    js: &jetstream::Context,
    namespace: &str,
    domain: &str,
    replicas: usize,
) -> Result<(), jetstream::context::CreateStreamError> {
    js.create_or_update_stream(jetstream::stream::Config {
        num_replicas: replicas,
        name: stream_name(namespace, domain),
        subjects: vec![format!("{namespace}.{domain}.>")],
        // Wider than any outage the relay retries through in one go.
        duplicate_window: Duration::from_secs(120),
        max_age: Duration::from_secs(7 * 24 * 3600),
        ..Default::default()
    })
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_convention() {
        assert_eq!(
            event_subject("mercato.catalog.v1.PriceChanged").as_deref(),
            Some("catalog.v1.price_changed")
        );
        assert_eq!(
            event_subject("mercato.order.v1.OrderPlaced").as_deref(),
            Some("order.v1.order_placed")
        );
        assert_eq!(event_subject("google.protobuf.Empty"), None);
    }

    #[test]
    fn stream_names_are_valid_jetstream_names() {
        assert_eq!(stream_name("mercato", "catalog"), "MERCATO_CATALOG");
        assert_eq!(stream_name("t-0193.x", "order"), "T_0193_X_ORDER");
    }
}
