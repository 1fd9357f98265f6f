//! Three replicas on one database and one durable consumer per stream, as Kubernetes runs
//! them, project a shop's history of some 2,000 order and payment events (duplicated and
//! reordered, and applied concurrently by whichever replica pulls each) into the same read
//! model as a single replica does, and into the one the history itself describes.
//!
//! The read models are compared through the public RPCs: every order of ListOrders (read from
//! Postgres) and of GetOrder (through the Redis cache the projector refreshes after each
//! event), which together show every column of the read model.

use std::collections::BTreeMap;
use std::time::Duration;

use mercato::pb::order::v1::OrderStatus;
use mercato::pb::orderquery::v1::order_query_service_client::OrderQueryServiceClient;
use mercato::pb::orderquery::v1::{
    GetOrderRequest, ListOrdersRequest, OrderView, PaymentView, StatusChange,
};
use mercato::pb::payment::v1::PaymentStatus;
use mercato_testkit::history::{self, Fate, History, OrderStory, Plan, Replicas, eur};
use mercato_testkit::{TestIdentity, authed};

use crate::SERVICE;

/// Every order by id, as ListOrders pages through them (newest first) on replica `via`.
async fn listed(replicas: &Replicas, via: usize, admin: &str) -> BTreeMap<String, OrderView> {
    let mut client =
        OrderQueryServiceClient::new(mercato_testkit::channel(replicas.addr(via)).await);
    let mut out = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let request = ListOrdersRequest {
            page_size: 100,
            page_token,
            ..Default::default()
        };
        let page = client
            .list_orders(authed(request, admin))
            .await
            .unwrap()
            .into_inner();
        for order in page.orders {
            out.insert(order.id.clone(), order);
        }
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

/// Every order of `ids` as GetOrder answers it, asking the replicas in turn (a few calls at
/// a time).
async fn fetched(replicas: &Replicas, ids: &[&String], admin: &str) -> BTreeMap<String, OrderView> {
    use futures::StreamExt as _;
    let mut clients = Vec::new();
    for i in 0..replicas.running.len() {
        clients.push(OrderQueryServiceClient::new(
            mercato_testkit::channel(replicas.addr(i)).await,
        ));
    }
    let calls = ids.iter().enumerate().map(|(i, id)| {
        let mut client = clients[i % clients.len()].clone();
        async move {
            let order = client
                .get_order(authed(GetOrderRequest { id: (*id).clone() }, admin))
                .await
                .unwrap()
                .into_inner()
                .order
                .unwrap();
            ((*id).clone(), order)
        }
    });
    futures::stream::iter(calls)
        .buffer_unordered(8)
        .collect()
        .await
}

fn change(status: OrderStatus, at: history::Instant, note: &str) -> StatusChange {
    StatusChange {
        status: status as i32,
        change_time: Some(at.timestamp()),
        note: note.into(),
    }
}

/// The order as the history tells it, computed without the service.
fn expected(o: &OrderStory) -> OrderView {
    let reason = o.cancellation_reason().unwrap_or_default();
    let mut history = vec![change(OrderStatus::Pending, o.placed_at, "")];
    let mut tracking_number = String::new();
    match &o.fate {
        Fate::Pending => {}
        Fate::OutOfStock { cancelled_at } => {
            history.push(change(OrderStatus::Cancelled, *cancelled_at, &reason));
        }
        Fate::Declined { failed_at, .. } => {
            history.push(change(OrderStatus::Cancelled, failed_at.plus(1), &reason));
        }
        Fate::Confirmed { confirmed_at } => {
            history.push(change(OrderStatus::Confirmed, *confirmed_at, ""));
        }
        Fate::Shipped {
            confirmed_at,
            shipped_at,
            tracking,
        } => {
            history.push(change(OrderStatus::Confirmed, *confirmed_at, ""));
            history.push(change(OrderStatus::Shipped, *shipped_at, tracking));
            tracking_number.clone_from(tracking);
        }
        Fate::Cancelled {
            confirmed_at,
            cancelled_at,
            ..
        } => {
            history.push(change(OrderStatus::Confirmed, *confirmed_at, ""));
            history.push(change(OrderStatus::Cancelled, *cancelled_at, &reason));
        }
    }
    let payment = (!o.payment_id.is_empty()).then(|| {
        let refunded = o.refunds.last();
        match &o.fate {
            Fate::Declined { reason, .. } => PaymentView {
                payment_id: o.payment_id.clone(),
                status: PaymentStatus::Failed as i32,
                captured_amount: None,
                refunded_amount: None,
                failure_reason: *reason as i32,
                card: Some(o.card.clone()),
            },
            _ => PaymentView {
                payment_id: o.payment_id.clone(),
                status: match refunded {
                    Some(r) if r.fully => PaymentStatus::Refunded,
                    Some(_) => PaymentStatus::PartiallyRefunded,
                    None => PaymentStatus::Captured,
                } as i32,
                captured_amount: Some(eur(o.total_cents())),
                refunded_amount: Some(eur(refunded.map_or(0, |r| r.refunded_cents))),
                failure_reason: 0,
                card: Some(o.card.clone()),
            },
        }
    });
    let updated = history.last().and_then(|h| h.change_time);
    OrderView {
        id: o.id.clone(),
        user_id: o.user_id.clone(),
        status: o.fate.status() as i32,
        lines: o.lines.clone(),
        subtotal: Some(eur(o.subtotal_cents)),
        discount: Some(eur(o.discount_cents)),
        total: Some(eur(o.total_cents())),
        coupon_code: o.coupon_code.clone(),
        shipping_address: Some(o.address.clone()),
        payment,
        cancellation_reason: reason,
        tracking_number,
        history,
        version: o.fate.version(),
        create_time: Some(o.placed_at.timestamp()),
        update_time: updated,
    }
}

/// Asserts that `actual` holds exactly the orders of `wanted`, naming the first that differs.
#[track_caller]
fn assert_same(
    what: &str,
    seed: u64,
    actual: &BTreeMap<String, OrderView>,
    wanted: &BTreeMap<String, OrderView>,
) {
    let missing: Vec<&String> = wanted
        .keys()
        .filter(|id| !actual.contains_key(*id))
        .collect();
    let extra: Vec<&String> = actual
        .keys()
        .filter(|id| !wanted.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what} (seed {seed}): {} orders missing, e.g. {:?}; {} extra, e.g. {:?}",
        missing.len(),
        missing.first(),
        extra.len(),
        extra.first()
    );
    let differing: Vec<&String> = wanted
        .keys()
        .filter(|id| actual[*id] != wanted[*id])
        .collect();
    if let Some(id) = differing.first() {
        panic!(
            "{what} (seed {seed}): {} of {} orders differ, e.g.\n{:#?}\nwhere\n{:#?}\nwas expected",
            differing.len(),
            wanted.len(),
            actual[*id],
            wanted[*id]
        );
    }
}

#[tokio::test]
async fn three_replicas_project_a_shuffled_history_into_the_read_model_of_one() {
    let identity = TestIdentity::start().await;
    let admin = identity.admin_token().await;
    let seed = history::seed();
    let plan = Plan {
        orders: 520,
        ..Plan::default()
    };
    let story = History::generate(seed, &plan, &[]);
    let deliveries = story.deliveries(&order_query::SOURCES);
    assert!(
        (1_900..=2_300).contains(&deliveries.len()),
        "{} deliveries",
        deliveries.len()
    );

    let (three, one) = tokio::join!(
        Replicas::start(SERVICE, &identity, 3, order_query::start),
        Replicas::start(SERVICE, &identity, 1, order_query::start),
    );
    let within = Duration::from_secs(60);
    let (published, _) = tokio::join!(
        three.consume(&order_query::SOURCES, &deliveries, within),
        one.consume(&order_query::SOURCES, &deliveries, within),
    );
    assert!(published.deduplicated > 0, "{published:?}");

    let wanted: BTreeMap<String, OrderView> = story
        .orders
        .iter()
        .map(|o| (o.id.clone(), expected(o)))
        .collect();
    let ids: Vec<&String> = wanted.keys().collect();
    // GetOrder goes through the cache, which replicas refresh after each event: asked on all
    // three in turn, where a stale entry would show. (Every call verifies a token, so the
    // single replica's model is read by ListOrders alone.)
    let (single, several, several_fetched) = tokio::join!(
        listed(&one, 0, &admin),
        listed(&three, 1, &admin),
        fetched(&three, &ids, &admin),
    );
    assert_same("one replica, ListOrders", seed, &single, &wanted);
    assert_same("three replicas, ListOrders", seed, &several, &single);
    assert_same("three replicas, GetOrder", seed, &several_fetched, &single);

    three.stop(&order_query::SOURCES).await;
    one.stop(&order_query::SOURCES).await;
}

#[tokio::test]
async fn two_replicas_applying_the_first_events_of_a_payment_at_once_keep_both() {
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
    use mercato::pb::payment::v1::{PaymentCaptured, PaymentRefunded};
    use order_query::store;

    async fn begin(url: &str) -> AsyncPgConnection {
        let mut conn = AsyncPgConnection::establish(url).await.unwrap();
        diesel::sql_query("BEGIN").execute(&mut conn).await.unwrap();
        conn
    }
    async fn commit(conn: &mut AsyncPgConnection) {
        diesel::sql_query("COMMIT").execute(conn).await.unwrap();
    }

    let svc = crate::TestOrderQuery::start().await;
    let url = svc.database.url.clone();
    let (payment_id, order_id) = (crate::new_id(), uuid::Uuid::now_v7());
    let at = chrono::Utc::now();

    // Replica A applies the capture of a payment nobody has seen yet and has not committed
    // when replica B applies its refund.
    let mut a = begin(&url).await;
    let mut state = store::payment_for_update(&mut a, &payment_id, order_id, at)
        .await
        .unwrap();
    state.captured(&PaymentCaptured {
        amount: Some(eur(1000)),
        ..Default::default()
    });
    store::save_payment(&mut a, &payment_id, &state, at)
        .await
        .unwrap();
    let refund = tokio::spawn({
        let (url, payment_id) = (url.clone(), payment_id.clone());
        async move {
            let mut b = begin(&url).await;
            let mut state = store::payment_for_update(&mut b, &payment_id, order_id, at)
                .await
                .unwrap();
            state.refunded(&PaymentRefunded {
                refunded_amount: Some(eur(400)),
                ..Default::default()
            });
            store::save_payment(&mut b, &payment_id, &state, at)
                .await
                .unwrap();
            commit(&mut b).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !refund.is_finished(),
        "B read the payment before A committed"
    );
    commit(&mut a).await;
    refund.await.unwrap();

    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    let merged = store::payment_for_update(&mut conn, &payment_id, order_id, at)
        .await
        .unwrap();
    assert!(merged.captured, "{merged:?}");
    assert_eq!(merged.refunded, eur(400));
    assert_eq!(merged.status(), PaymentStatus::PartiallyRefunded);
}
