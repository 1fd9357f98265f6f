//! Three replicas on one database and one durable consumer per stream, as Kubernetes runs
//! them, write the same notifications from a shop's history of some 2,000 identity, order and
//! payment events (duplicated and reordered, applied concurrently by whichever replica pulls
//! each) as a single replica does: one per event that concerns a user, never two.
//!
//! A few of the history's customers are real users of the test identity, whose lists are read
//! through ListNotifications on every replica; the made-up customers cannot call, so the whole
//! `notifications` table of each setup is compared too (every column but `written_at`, the
//! operators' wall-clock time of the write).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mercato::pb::notification::v1::notification_service_client::NotificationServiceClient;
use mercato::pb::notification::v1::{ListNotificationsRequest, Notification, NotificationKind};
use mercato_testkit::history::{self, History, Plan, Replicas};
use mercato_testkit::{TestIdentity, authed};
use notification::schema::notifications;
use notification::store::NotificationRow;

const SERVICE: &str = "notification";

/// A stored notification, every column but `written_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    id: uuid::Uuid,
    user_id: String,
    kind: String,
    title: String,
    body: String,
    order_id: String,
    created_at: DateTime<Utc>,
    read: bool,
}

/// Every notification a setup stored, by id.
async fn stored(replicas: &Replicas) -> BTreeMap<uuid::Uuid, Stored> {
    use diesel::{QueryDsl as _, SelectableHelper as _};
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
    let mut conn = AsyncPgConnection::establish(&replicas.database.url)
        .await
        .unwrap();
    let rows: Vec<NotificationRow> = notifications::table
        .select(NotificationRow::as_select())
        .load(&mut conn)
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| {
            let row = Stored {
                id: r.id,
                user_id: r.user_id,
                kind: r.kind,
                title: r.title,
                body: r.body,
                order_id: r.order_id,
                created_at: r.created_at,
                read: r.read_at.is_some(),
            };
            (row.id, row)
        })
        .collect()
}

/// What the history says each notification is: (user, kind, order, time), by event id.
fn expected(story: &History) -> BTreeMap<uuid::Uuid, (String, String, String, i64)> {
    let by_order: HashMap<&str, &history::OrderStory> =
        story.orders.iter().map(|o| (o.id.as_str(), o)).collect();
    let by_payment: HashMap<&str, &history::OrderStory> = story
        .orders
        .iter()
        .filter(|o| !o.payment_id.is_empty())
        .map(|o| (o.payment_id.as_str(), o))
        .collect();
    let mut out = BTreeMap::new();
    for e in &story.events {
        let kind = match e.r#type.rsplit('.').next().unwrap_or_default() {
            "UserRegistered" => NotificationKind::Welcome,
            "OrderPlaced" => NotificationKind::OrderPlaced,
            "OrderConfirmed" => NotificationKind::OrderConfirmed,
            "OrderCancelled" => NotificationKind::OrderCancelled,
            "OrderShipped" => NotificationKind::OrderShipped,
            "PaymentFailed" => NotificationKind::PaymentFailed,
            "PaymentRefunded" => NotificationKind::PaymentRefunded,
            // A capture is told by the confirmation that follows it.
            "PaymentCaptured" => continue,
            other => panic!("unexpected event {other}"),
        };
        let (user, order) = match e.source.as_str() {
            "identity" => (e.subject.clone(), String::new()),
            "order" => (
                by_order[e.subject.as_str()].user_id.clone(),
                e.subject.clone(),
            ),
            _ => {
                let o = by_payment[e.subject.as_str()];
                (o.user_id.clone(), o.id.clone())
            }
        };
        let at = e.occurred_at.unwrap();
        let micros = at.seconds * 1_000_000 + i64::from(at.nanos / 1000);
        out.insert(
            e.id.parse().unwrap(),
            (
                user,
                notification::api::kind_name(kind).to_owned(),
                order,
                micros,
            ),
        );
    }
    out
}

/// Every notification of the caller as ListNotifications pages through them on replica
/// `via`, and the unread count it reports.
async fn listed(replicas: &Replicas, via: usize, token: &str) -> (Vec<Notification>, i32) {
    let mut client =
        NotificationServiceClient::new(mercato_testkit::channel(replicas.addr(via)).await);
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListNotificationsRequest {
            page_size: 100,
            page_token,
            unread_only: false,
        };
        let page = client
            .list_notifications(authed(request, token))
            .await
            .unwrap()
            .into_inner();
        out.extend(page.notifications);
        if page.next_page_token.is_empty() {
            return (out, page.unread_count);
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn three_replicas_write_the_notifications_of_one_from_a_shuffled_history() {
    let identity = TestIdentity::start().await;
    let mut known = Vec::new();
    for _ in 0..3 {
        known.push(identity.customer().await);
    }
    let seed = history::seed();
    let plan = Plan {
        orders: 480,
        ..Plan::default()
    };
    let ids: Vec<String> = known.iter().map(|(id, _)| id.clone()).collect();
    let story = History::generate(seed, &plan, &ids);
    let domains = notification::projector::DOMAINS;
    let deliveries = story.deliveries(&domains);
    assert!(
        (1_900..=2_300).contains(&deliveries.len()),
        "{} deliveries",
        deliveries.len()
    );

    let (three, one) = tokio::join!(
        Replicas::start(SERVICE, &identity, 3, notification::start),
        Replicas::start(SERVICE, &identity, 1, notification::start),
    );
    let within = Duration::from_secs(60);
    let (published, _) = tokio::join!(
        three.consume(&domains, &deliveries, within),
        one.consume(&domains, &deliveries, within),
    );
    assert!(published.deduplicated > 0, "{published:?}");

    // One notification per event that concerns a user, as the history says.
    let wanted = expected(&story);
    let (single, several) = tokio::join!(stored(&one), stored(&three));
    let found: BTreeMap<uuid::Uuid, (String, String, String, i64)> = single
        .values()
        .map(|n| {
            (
                n.id,
                (
                    n.user_id.clone(),
                    n.kind.clone(),
                    n.order_id.clone(),
                    n.created_at.timestamp_micros(),
                ),
            )
        })
        .collect();
    let differing: Vec<_> = wanted
        .iter()
        .filter(|(id, w)| found.get(*id) != Some(*w))
        .collect();
    assert!(
        differing.is_empty() && found.len() == wanted.len(),
        "seed {seed}: one replica wrote {} notifications, {} expected; {} differ, e.g. {:?} \
         was written as {:?}",
        found.len(),
        wanted.len(),
        differing.len(),
        differing.first(),
        differing.first().and_then(|(id, _)| found.get(*id)),
    );
    // Three replicas wrote exactly the same, word for word.
    let missing = single
        .keys()
        .filter(|id| !several.contains_key(*id))
        .count();
    let extra = several
        .keys()
        .filter(|id| !single.contains_key(*id))
        .count();
    let unlike: Vec<_> = single
        .values()
        .filter(|n| several.get(&n.id).is_some_and(|m| m != *n))
        .collect();
    assert!(
        missing == 0 && extra == 0 && unlike.is_empty(),
        "seed {seed}: three replicas lack {missing} and add {extra} notifications; {} differ, \
         e.g. {:?} written as {:?}",
        unlike.len(),
        unlike.first(),
        unlike.first().and_then(|n| several.get(&n.id)),
    );

    // The known customers see the same list, newest first, on every replica.
    for (i, (user_id, token)) in known.iter().enumerate() {
        let (theirs, unread) = listed(&one, 0, token).await;
        let mut mine: Vec<&Stored> = single.values().filter(|n| &n.user_id == user_id).collect();
        mine.sort_by_key(|n| std::cmp::Reverse((n.created_at, n.id)));
        let ids: Vec<String> = mine.iter().map(|n| n.id.to_string()).collect();
        assert!(!ids.is_empty(), "customer {i} has no notification");
        assert_eq!(
            theirs.iter().map(|n| n.id.clone()).collect::<Vec<_>>(),
            ids,
            "seed {seed}: customer {i}'s list"
        );
        assert_eq!(unread as usize, ids.len());
        for via in 0..3 {
            assert_eq!(
                listed(&three, via, token).await,
                (theirs.clone(), unread),
                "seed {seed}: customer {i}'s list on replica {via} of three"
            );
        }
    }

    three.stop(&domains).await;
    one.stop(&domains).await;
}
