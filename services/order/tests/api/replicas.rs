//! Two order replicas on one database, one of them killed in the middle of checkouts.

use std::collections::HashMap;
use std::time::Duration;

use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use futures::future::join_all;
use mercato::pb::order::v1::OrderStatus;
use mercato::pb::order::v1::order_service_client::OrderServiceClient;
use mercato_testkit::shop::{CARD_OK, TestShop, order_request};
use mercato_testkit::{authed, relay::free_addr};
use order::schema::orders;

use crate::{assert_settled_consistently, place};

/// A quick sweep and a short lease, so the surviving replica takes over within the test.
const FAST_RECOVERY: [(&str, &str); 2] = [
    ("MERCATO_SAGA_SWEEP_MS", "200"),
    ("MERCATO_SAGA_LEASE_MS", "1000"),
];

/// The order binary as a process of its own on `env`, killed (SIGKILL) when dropped.
struct Process(std::process::Child);

impl Process {
    fn spawn(env: &HashMap<String, String>) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_order"))
            .env_clear()
            .envs(env)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("order binary starts");
        Self(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn statuses(url: &str) -> Vec<(uuid::Uuid, String)> {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    orders::table
        .select((orders::id, orders::status))
        .order(orders::id.asc())
        .load(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn checkouts_on_a_killed_order_replica_settle_consistently_on_the_other() {
    // Replica B runs in the test's process; replica A is the order binary on the same
    // database, killed with SIGKILL while its checkouts are under way.
    let shop = TestShop::start_with(&FAST_RECOVERY).await;
    let lamp = shop.product("Lamp", 1000, 60).await;
    let (_, token) = shop.identity.customer().await;
    let (grpc, admin) = (free_addr(), free_addr());
    let mut env = shop.order_env(&FAST_RECOVERY).await;
    env.insert("MERCATO_GRPC_ADDR".into(), grpc.to_string());
    env.insert("MERCATO_ADMIN_ADDR".into(), admin.to_string());
    let mut replica_a = Process::spawn(&env);
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if tokio::net::TcpStream::connect(admin).await.is_ok()
                && mercato_testkit::http_get(admin, "/readyz")
                    .await
                    .starts_with("HTTP/1.1 200")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("replica A ready");

    // Twenty checkouts on A; it dies as soon as the first of them is written.
    let on_a = OrderServiceClient::new(mercato_testkit::channel(grpc).await);
    let checkouts = tokio::spawn({
        let (token, lamp) = (token.clone(), lamp.id.clone());
        async move {
            join_all((0..20).map(|i| {
                let mut client = on_a.clone();
                let request = order_request(&[(&lamp, 1)], CARD_OK, &format!("k{i}"));
                let token = token.clone();
                async move { client.place_order(authed(request, &token)).await.is_ok() }
            }))
            .await
        }
    });
    let db = shop.order_db.url.clone();
    tokio::time::timeout(Duration::from_secs(30), async {
        while statuses(&db).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("a checkout reaches replica A's database");
    replica_a.kill();
    let at_kill = statuses(&db).await;
    let answered = checkouts.await.unwrap();
    assert!(
        at_kill.iter().any(|(_, status)| status == "pending"),
        "the kill lands in the middle of a checkout: {at_kill:?}"
    );

    // B's sweep finishes what A left; every order ends confirmed or cancelled, and its money
    // and stock agree with that.
    for (id, _) in statuses(&db).await {
        let order = shop
            .wait_for_order(&id.to_string(), Duration::from_secs(30), |o| {
                o.status() != OrderStatus::Pending
            })
            .await;
        assert_settled_consistently(&shop, &order).await;
    }
    // The customers whose checkout was cut off retry with their keys, now on B: they get
    // the order A started (or a new one, where A never wrote it), settled.
    for i in 0..20 {
        let order = place(
            &shop,
            &token,
            order_request(&[(&lamp.id, 1)], CARD_OK, &format!("k{i}")),
        )
        .await
        .expect("the retried checkout is answered");
        let order = shop
            .wait_for_order(&order.id, Duration::from_secs(30), |o| {
                o.status() != OrderStatus::Pending
            })
            .await;
        assert_settled_consistently(&shop, &order).await;
    }
    let settled = statuses(&db).await;
    assert_eq!(settled.len(), 20, "one order per key: {settled:?}");
    assert!(settled.iter().all(|(_, status)| status != "pending"));
    let confirmed = settled
        .iter()
        .filter(|(_, status)| status == "confirmed")
        .count();
    let stock = shop.stock(&lamp.id).await;
    assert_eq!(stock.reserved, 0, "nothing left reserved: {stock:?}");
    assert_eq!(
        i64::from(stock.on_hand),
        60 - i64::try_from(confirmed).unwrap(),
        "stock taken once per confirmed order: {stock:?}"
    );
    assert!(
        answered.iter().any(|ok| !ok),
        "some checkouts were cut off by the kill"
    );
}
