use deadpool_redis::redis::AsyncCommands as _;
use mercato::pb::catalog::v1::{GetProductRequest, PriceChanged, Product, UpdateProductRequest};
use mercato_kernel::ServiceConfig;
use mercato_testkit::authed;
use prost::Message as _;

use crate::{TestCatalog, eur};

async fn redis() -> deadpool_redis::Connection {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    mercato_kernel::redis::pool(&url, 2)
        .unwrap()
        .get()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_read_fills_the_cache_and_an_update_invalidates_it() {
    let catalog = TestCatalog::start().await;
    let created = catalog.product("C-1", "Cached", 500, "").await;
    let key = format!(
        "{}product:{}",
        catalog.env["MERCATO_REDIS_PREFIX"], created.id
    );
    let mut redis = redis().await;
    assert!(!redis.exists::<_, bool>(&key).await.unwrap());
    catalog
        .client()
        .await
        .get_product(GetProductRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap();
    let cached: Vec<u8> = redis.get(&key).await.unwrap();
    assert_eq!(Product::decode(cached.as_slice()).unwrap().name, "Cached");

    let patch = Product {
        id: created.id.clone(),
        price: Some(eur(750)),
        ..Default::default()
    };
    let request = UpdateProductRequest {
        product: Some(patch),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["price".into()],
        }),
    };
    catalog
        .client()
        .await
        .update_product(authed(request, &catalog.admin))
        .await
        .unwrap();
    assert!(
        !redis.exists::<_, bool>(&key).await.unwrap(),
        "update must invalidate"
    );
    let fresh = catalog
        .client()
        .await
        .get_product(GetProductRequest { id: created.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fresh.product.unwrap().price, Some(eur(750)));
    let _: () = redis.del(&key).await.unwrap();
}

#[tokio::test]
async fn reads_still_answer_from_postgres_when_redis_is_down() {
    // Port 1 refuses connections: the cache is "down" from the first request.
    let catalog = TestCatalog::start_with(&[("REDIS_URL", "redis://127.0.0.1:1")]).await;
    let created = catalog.product("R-1", "Resilient", 500, "").await;
    for _ in 0..2 {
        let got = catalog
            .client()
            .await
            .get_product(GetProductRequest {
                id: created.id.clone(),
            })
            .await
            .unwrap();
        assert_eq!(got.into_inner().product.unwrap().name, "Resilient");
    }
    let ready = mercato_testkit::http_get(catalog.running.admin_addr, "/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.1 200"),
        "a cache outage must not make the catalog unready: {ready}"
    );
}

/// A minimal HTTP/1.1 GET, enough for the admin port.
#[tokio::test]
async fn product_events_reach_jetstream_exactly_once() {
    let catalog = TestCatalog::start().await;
    let created = catalog.product("E-1", "Evented", 500, "").await;
    let patch = Product {
        id: created.id.clone(),
        price: Some(eur(600)),
        ..Default::default()
    };
    let request = UpdateProductRequest {
        product: Some(patch),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["price".into()],
        }),
    };
    catalog
        .client()
        .await
        .update_product(authed(request, &catalog.admin))
        .await
        .unwrap();

    let namespace = &catalog.identity.namespace;
    let envelopes = mercato_testkit::read_stream(namespace, "catalog", 3).await;
    let types: Vec<&str> = envelopes.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "mercato.catalog.v1.ProductCreated",
            "mercato.catalog.v1.ProductUpdated",
            "mercato.catalog.v1.PriceChanged"
        ]
    );
    let price = PriceChanged::decode(envelopes[2].payload.as_slice()).unwrap();
    assert_eq!(
        (price.old_price, price.new_price),
        (Some(eur(500)), Some(eur(600)))
    );
    assert!(
        envelopes
            .iter()
            .all(|e| e.subject == created.id && e.source == "catalog")
    );
}

/// NATS on a port nobody listens on: writes succeed and their events wait in the outbox.
const NATS_DOWN: (&str, &str) = ("NATS_URL", "nats://127.0.0.1:1");

#[tokio::test]
async fn events_written_while_nats_is_down_are_published_when_it_returns() {
    let offline = TestCatalog::start_with(&[NATS_DOWN]).await;
    offline.product("N-1", "Queued", 100, "").await;
    let TestCatalog {
        identity,
        running,
        database: _database,
        mut env,
        ..
    } = offline;
    running.stop().await.unwrap();

    // Restarted with NATS reachable (same database), the relay delivers the queued event once.
    env.insert(
        "NATS_URL".into(),
        std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
    );
    let online = catalog::start(ServiceConfig::from_source("catalog", &env).unwrap(), false)
        .await
        .unwrap();
    let envelopes = mercato_testkit::read_stream(&identity.namespace, "catalog", 1).await;
    assert_eq!(envelopes[0].r#type, "mercato.catalog.v1.ProductCreated");
    online.stop().await.unwrap();
}

#[tokio::test]
async fn published_events_past_retention_are_pruned_and_unpublished_ones_kept() {
    use diesel::{ExpressionMethods as _, QueryDsl as _};
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
    use mercato_kernel::events::outbox::{self, outbox as table};

    // The three events stay in the outbox, unpublished, until the test dates them.
    let offline = TestCatalog::start_with(&[NATS_DOWN]).await;
    for sku in ["P-1", "P-2", "P-3"] {
        offline.product(sku, "Pruned", 100, "").await;
    }
    let TestCatalog {
        running, database, ..
    } = offline;
    running.stop().await.unwrap();

    let mut conn = AsyncPgConnection::establish(&database.url).await.unwrap();
    let ids: Vec<uuid::Uuid> = table::table
        .select(table::id)
        .order(table::id.asc())
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    let now = chrono::Utc::now();
    // The first was published four days ago, the third an hour ago; the second never was.
    for (id, published) in [
        (ids[0], now - chrono::Duration::hours(96)),
        (ids[2], now - chrono::Duration::hours(1)),
    ] {
        diesel::update(table::table.find(id))
            .set(table::published_at.eq(published))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    diesel::update(table::table.find(ids[1]))
        .set(table::created_at.eq(now - chrono::Duration::hours(200)))
        .execute(&mut conn)
        .await
        .unwrap();

    let deleted = outbox::prune(&mut conn, now - chrono::Duration::hours(72))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let left: Vec<uuid::Uuid> = table::table
        .select(table::id)
        .order(table::id.asc())
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, [ids[1], ids[2]]);
    assert_eq!(outbox::pending(&mut conn).await.unwrap(), 1);
}
