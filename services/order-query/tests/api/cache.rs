//! The GetOrder cache and the rebuild of the read model from the streams.

use deadpool_redis::redis::AsyncCommands as _;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use mercato::pb::order::v1::OrderStatus;
use mercato::pb::orderquery::v1::OrderView;
use order_query::StartOptions;
use prost::Message as _;

use crate::{TestOrderQuery, confirmed, history, new_id, now, placed};

async fn redis(svc: &TestOrderQuery) -> deadpool_redis::Connection {
    mercato_kernel::redis::pool(&svc.env["REDIS_URL"], 2)
        .unwrap()
        .get()
        .await
        .unwrap()
}

fn key(svc: &TestOrderQuery, id: &str) -> String {
    format!("{}order:{id}", svc.env["MERCATO_REDIS_PREFIX"])
}

#[tokio::test]
async fn get_order_fills_the_cache_reads_from_it_and_events_replace_it() {
    let svc = TestOrderQuery::start().await;
    let (user, token) = svc.identity.customer().await;
    let id = new_id();
    let p = placed(&id, &user, now());
    svc.publish(&id, &p).await;
    let order = svc.wait_for_state(&id, OrderStatus::Pending, 1).await;

    let mut redis = redis(&svc).await;
    let cached: Vec<u8> = redis.get(key(&svc, &id)).await.unwrap();
    assert_eq!(OrderView::decode(cached.as_slice()).unwrap(), order);

    // What the cache holds is what GetOrder answers. The projector writes the entry once
    // more right after its commit, which GetOrder may already have seen: a doctored entry
    // written before that lands is replaced, so write it until it stays.
    let mut doctored = order.clone();
    doctored.coupon_code = "FROM-THE-CACHE".into();
    let mut answered = String::new();
    for _ in 0..20 {
        let _: () = redis
            .set(key(&svc, &id), doctored.encode_to_vec())
            .await
            .unwrap();
        answered = svc.get(&token, &id).await.unwrap().coupon_code;
        if answered == "FROM-THE-CACHE" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        answered, "FROM-THE-CACHE",
        "GetOrder never answered from the cache"
    );

    // The next event of the order replaces the entry.
    svc.publish(&id, &confirmed(&p, "pay-1")).await;
    let order = svc.wait_for_state(&id, OrderStatus::Confirmed, 2).await;
    assert_eq!(order.coupon_code, "SAVE5");
    let cached: Vec<u8> = redis.get(key(&svc, &id)).await.unwrap();
    assert_eq!(OrderView::decode(cached.as_slice()).unwrap(), order);

    // Dropped entries are filled again by the next read.
    let _: () = redis.del(key(&svc, &id)).await.unwrap();
    assert_eq!(svc.get(&token, &id).await.unwrap(), order);
    let cached: Option<Vec<u8>> = redis.get(key(&svc, &id)).await.unwrap();
    assert!(cached.is_some());
}

#[tokio::test]
async fn without_redis_orders_are_read_from_postgres() {
    // Nothing listens on port 1: every cache operation fails fast.
    let svc = TestOrderQuery::start_with(&[("REDIS_URL", "redis://127.0.0.1:1")]).await;
    let (user, token) = svc.identity.customer().await;
    let id = new_id();
    svc.publish(&id, &placed(&id, &user, now())).await;
    svc.wait_for_state(&id, OrderStatus::Pending, 1).await;
    assert_eq!(
        svc.get(&token, &id).await.unwrap().total,
        Some(crate::eur(2750))
    );
}

#[tokio::test]
async fn a_rebuild_replays_the_streams_into_an_emptied_model() {
    let mut svc = TestOrderQuery::start().await;
    let (user, _) = svc.identity.customer().await;
    let id = new_id();
    let p = placed(&id, &user, now());
    svc.publish(&id, &p).await;
    svc.publish(&id, &confirmed(&p, "pay-1")).await;
    let before = svc.wait_for_state(&id, OrderStatus::Confirmed, 2).await;

    // Damage the model behind the service's back; a restart alone does not repair it, since
    // every event is recorded as processed.
    let mut conn = AsyncPgConnection::establish(&svc.database.url)
        .await
        .unwrap();
    diesel::sql_query("UPDATE orders SET coupon_code = 'DAMAGED'")
        .execute(&mut conn)
        .await
        .unwrap();
    diesel::sql_query("DELETE FROM order_history")
        .execute(&mut conn)
        .await
        .unwrap();
    let _: () = redis(&svc).await.del(key(&svc, &id)).await.unwrap();

    svc.restart(StartOptions { rebuild: true }).await;
    let after = svc
        .wait_for(&id, |o| o.history.len() == 2 && o.coupon_code == "SAVE5")
        .await;
    assert_eq!(after, before);
    assert_eq!(
        history(&after),
        [OrderStatus::Pending, OrderStatus::Confirmed]
    );
}
