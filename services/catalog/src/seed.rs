//! The demo catalog `make run` starts with (`MERCATO_SEED_DEMO=true`): a few categories and
//! twenty products, inserted only into an empty catalog so restarts and real data are safe.

use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};
use mercato_kernel::db::DbPool;
use mercato_kernel::money::Amount;

use crate::domain::{CategoryFields, ProductFields};
use crate::schema::products;
use crate::store::{self, WriteError};

/// (category, description, [(sku, name, price in cents, description)]).
type Seed = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str, i64, &'static str)],
);

const DEMO: &[Seed] = &[
    (
        "Kitchen",
        "Cookware and tableware",
        &[
            (
                "KIT-MUG-01",
                "Stoneware mug",
                1250,
                "350 ml, dishwasher safe, speckled glaze.",
            ),
            (
                "KIT-KNF-02",
                "Chef's knife 20 cm",
                8900,
                "Forged stainless steel, full tang.",
            ),
            (
                "KIT-PAN-03",
                "Cast iron skillet",
                4500,
                "26 cm, pre-seasoned, oven safe.",
            ),
            (
                "KIT-GRN-04",
                "Burr coffee grinder",
                12900,
                "40 grind settings, conical steel burrs.",
            ),
            (
                "KIT-TEA-05",
                "Glass teapot",
                2900,
                "1 l with a removable infuser.",
            ),
        ],
    ),
    (
        "Office",
        "Desk and writing",
        &[
            (
                "OFF-NTB-01",
                "Dotted notebook A5",
                1500,
                "192 pages, 100 g/m² paper, lies flat.",
            ),
            (
                "OFF-PEN-02",
                "Fountain pen",
                3400,
                "Medium steel nib, converter included.",
            ),
            (
                "OFF-LMP-03",
                "Desk lamp",
                5900,
                "Dimmable LED, warm to cool white.",
            ),
            (
                "OFF-KBD-04",
                "Mechanical keyboard",
                11900,
                "Tenkeyless, hot-swappable switches.",
            ),
            (
                "OFF-STD-05",
                "Laptop stand",
                3900,
                "Aluminium, six height positions.",
            ),
        ],
    ),
    (
        "Outdoors",
        "Hiking and camping",
        &[
            (
                "OUT-BTL-01",
                "Insulated bottle",
                2900,
                "750 ml, keeps cold 24 h, hot 12 h.",
            ),
            (
                "OUT-LMP-02",
                "Head torch",
                3500,
                "400 lumen, rechargeable, red light mode.",
            ),
            (
                "OUT-BAG-03",
                "Daypack 24 l",
                7900,
                "Ventilated back panel, rain cover.",
            ),
            (
                "OUT-TNT-04",
                "Two-person tent",
                24900,
                "1.9 kg, freestanding, three seasons.",
            ),
            (
                "OUT-STV-05",
                "Camping stove",
                4900,
                "Canister stove, boils 1 l in 4 minutes.",
            ),
        ],
    ),
    (
        "Books",
        "Reading for builders",
        &[
            (
                "BOK-DSN-01",
                "Designing Data Systems",
                4200,
                "Reliability, scalability, maintainability.",
            ),
            (
                "BOK-RST-02",
                "Systems Programming in Rust",
                3900,
                "Ownership, concurrency, async.",
            ),
            (
                "BOK-NET-03",
                "Networks from the Wire Up",
                3600,
                "TCP, HTTP/2 and gRPC, explained.",
            ),
            (
                "BOK-OPS-04",
                "Running Services at Scale",
                4500,
                "SLOs, alerting, incident response.",
            ),
            (
                "BOK-SQL-05",
                "Postgres in Practice",
                3800,
                "Indexes, transactions, query plans.",
            ),
        ],
    ),
];

/// Seeds the demo catalog when there are no products yet; returns how many were added.
/// Replicas starting together seed it once: the first takes a lock the others wait on, and
/// they then find the products there.
pub async fn seed_demo(db: &DbPool) -> anyhow::Result<usize> {
    let mut conn = db.get().await?;
    let added = conn
        .transaction::<usize, WriteError, _>(async |conn| {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('mercato.catalog.seed'))")
                .execute(conn)
                .await?;
            let existing: i64 = products::table.count().get_result(conn).await?;
            if existing > 0 {
                return Ok(0);
            }
            let mut added = 0;
            for (category, description, items) in DEMO {
                let category = store::insert_category(
                    conn,
                    &CategoryFields {
                        name: (*category).into(),
                        description: (*description).into(),
                    },
                )
                .await?;
                for (sku, name, cents, text) in *items {
                    let fields = ProductFields {
                        sku: (*sku).into(),
                        name: (*name).into(),
                        description: (*text).into(),
                        category_id: Some(category.id),
                        price: Amount::from_parts(
                            "EUR",
                            cents / 100,
                            i32::try_from(cents % 100).unwrap_or(0) * 10_000_000,
                        ),
                        image_url: String::new(),
                    };
                    store::insert_product(conn, &fields).await?;
                    added += 1;
                }
            }
            Ok(added)
        })
        .await?;
    if added > 0 {
        tracing::info!(products = added, "seeded the demo catalog");
    }
    Ok(added)
}
