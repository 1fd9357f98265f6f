//! Three replicas on one database and one durable consumer per stream, as Kubernetes runs
//! them, learn the same verified buyers and author names from a shop's history of some 2,000
//! order and identity events (duplicated and reordered, applied concurrently by whichever
//! replica pulls each) as a single replica does, and as the history says.
//!
//! What review projects is only seen through what it lets customers do, so the read models
//! are compared twice: the projected tables themselves (`purchases` and `authors`, every
//! column but the wall-clock `updated_at`), for every customer of the history; and through
//! the RPCs for the few customers who are real users of the test identity: each tries to
//! review every product of the catalog (allowed exactly where they hold a purchase that was
//! not cancelled), then every product's rating summary and reviews are read.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mercato::pb::review::v1::review_service_client::ReviewServiceClient;
use mercato::pb::review::v1::{
    CreateReviewRequest, GetRatingSummaryRequest, ListReviewsRequest, RatingCount, RatingSummary,
};
use mercato_testkit::history::{self, Fate, History, Plan, Replicas};
use mercato_testkit::{TestIdentity, authed};
use tonic::Code;
use uuid::Uuid;

const SERVICE: &str = "review";

/// The projected tables: purchases by (order, product) with (user, version, status), and
/// authors' names by user.
#[derive(Debug, PartialEq, Eq)]
struct Projected {
    purchases: BTreeMap<(Uuid, Uuid), (Uuid, i64, String)>,
    authors: BTreeMap<Uuid, String>,
}

async fn projected(replicas: &Replicas) -> Projected {
    use diesel::QueryDsl as _;
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
    use review::schema::{authors, purchases};

    let mut conn = AsyncPgConnection::establish(&replicas.database.url)
        .await
        .unwrap();
    let rows: Vec<(Uuid, Uuid, Uuid, i64, String)> = purchases::table
        .select((
            purchases::order_id,
            purchases::product_id,
            purchases::user_id,
            purchases::order_version,
            purchases::status,
        ))
        .load(&mut conn)
        .await
        .unwrap();
    let names: Vec<(Uuid, String)> = authors::table
        .select((authors::user_id, authors::display_name))
        .load(&mut conn)
        .await
        .unwrap();
    Projected {
        purchases: rows
            .into_iter()
            .map(|(o, p, u, v, s)| ((o, p), (u, v, s)))
            .collect(),
        authors: names.into_iter().collect(),
    }
}

fn uuid(s: &str) -> Uuid {
    s.parse().unwrap()
}

/// What the history says review learns: a purchase per product of every order that was
/// confirmed or cancelled (the placement says nothing), at the order's last version; every
/// customer's name.
fn expected(story: &History) -> Projected {
    let mut purchases = BTreeMap::new();
    for o in &story.orders {
        let status = match o.fate {
            Fate::Pending => continue,
            Fate::Confirmed { .. } => "confirmed",
            Fate::Shipped { .. } => "shipped",
            Fate::OutOfStock { .. } | Fate::Declined { .. } | Fate::Cancelled { .. } => "cancelled",
        };
        for line in &o.lines {
            purchases.insert(
                (uuid(&o.id), uuid(&line.product_id)),
                (uuid(&o.user_id), o.fate.version(), status.to_owned()),
            );
        }
    }
    let authors = story
        .customers
        .iter()
        .map(|c| (uuid(&c.id), c.display_name.clone()))
        .collect();
    Projected { purchases, authors }
}

/// The stars customer `who` gives product `what`.
fn rating(who: usize, what: usize) -> i32 {
    i32::try_from(1 + (who * 7 + what * 3) % 5).unwrap()
}

/// What the RPCs show: the products each known customer could review, and every product's
/// rating summary and reviews (author, name, stars).
#[derive(Debug, PartialEq)]
struct Shown {
    reviewed: Vec<BTreeSet<String>>,
    summaries: Vec<RatingSummary>,
    reviews: Vec<Vec<(String, String, i32)>>,
}

async fn shown(replicas: &Replicas, story: &History, known: &[(String, String)]) -> Shown {
    let mut clients = Vec::new();
    for i in 0..replicas.running.len() {
        clients.push(ReviewServiceClient::new(
            mercato_testkit::channel(replicas.addr(i)).await,
        ));
    }
    let mut calls = 0;
    let mut client = || {
        calls += 1;
        clients[calls % clients.len()].clone()
    };
    let mut reviewed = Vec::new();
    for (who, (_, token)) in known.iter().enumerate() {
        let mut allowed = BTreeSet::new();
        for (what, product) in story.products.iter().enumerate() {
            let request = CreateReviewRequest {
                product_id: product.id.clone(),
                rating: rating(who, what),
                title: format!("{} stars", rating(who, what)),
                body: "Bought it, used it.".into(),
            };
            match client().create_review(authed(request, token)).await {
                Ok(_) => {
                    allowed.insert(product.id.clone());
                }
                Err(status) => assert_eq!(status.code(), Code::PermissionDenied, "{status:?}"),
            }
        }
        reviewed.push(allowed);
    }
    let mut summaries = Vec::new();
    let mut reviews = Vec::new();
    for product in &story.products {
        let summary = client()
            .get_rating_summary(GetRatingSummaryRequest {
                product_id: product.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .summary
            .unwrap();
        summaries.push(summary);
        let mut all: Vec<(String, String, i32)> = client()
            .list_reviews(ListReviewsRequest {
                product_id: product.id.clone(),
                page_size: 100,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .reviews
            .into_iter()
            .map(|r| (r.user_id, r.author_name, r.rating))
            .collect();
        all.sort();
        reviews.push(all);
    }
    Shown {
        reviewed,
        summaries,
        reviews,
    }
}

/// What the RPCs should show, from the history alone.
fn expected_shown(story: &History, known: &[(String, String)]) -> Shown {
    let reviewed: Vec<BTreeSet<String>> = known
        .iter()
        .map(|(user, _)| {
            story
                .orders
                .iter()
                .filter(|o| {
                    &o.user_id == user
                        && matches!(o.fate, Fate::Confirmed { .. } | Fate::Shipped { .. })
                })
                .flat_map(|o| o.lines.iter().map(|l| l.product_id.clone()))
                .collect()
        })
        .collect();
    let name = |user: &str| {
        story
            .customers
            .iter()
            .find(|c| c.id == user)
            .map(|c| c.display_name.clone())
            .unwrap()
    };
    let mut summaries = Vec::new();
    let mut reviews = Vec::new();
    for (what, product) in story.products.iter().enumerate() {
        let mut histogram = [0i32; 5];
        let mut theirs = Vec::new();
        for (who, allowed) in reviewed.iter().enumerate() {
            if allowed.contains(&product.id) {
                let stars = rating(who, what);
                histogram[usize::try_from(stars - 1).unwrap()] += 1;
                theirs.push((known[who].0.clone(), name(&known[who].0), stars));
            }
        }
        theirs.sort();
        let count: i32 = histogram.iter().sum();
        let stars: i32 = histogram.iter().zip(1..).map(|(n, r)| n * r).sum();
        summaries.push(RatingSummary {
            product_id: product.id.clone(),
            average_rating: if count == 0 {
                0.0
            } else {
                f64::from(stars) / f64::from(count)
            },
            review_count: count,
            histogram: histogram
                .iter()
                .zip(1..)
                .map(|(&count, rating)| RatingCount { rating, count })
                .collect(),
        });
        reviews.push(theirs);
    }
    Shown {
        reviewed,
        summaries,
        reviews,
    }
}

#[tokio::test]
async fn three_replicas_learn_the_buyers_and_authors_of_one_from_a_shuffled_history() {
    let identity = TestIdentity::start().await;
    let mut known = Vec::new();
    for _ in 0..3 {
        known.push(identity.customer().await);
    }
    let seed = history::seed();
    let plan = Plan {
        orders: 700,
        ..Plan::default()
    };
    let ids: Vec<String> = known.iter().map(|(id, _)| id.clone()).collect();
    let story = History::generate(seed, &plan, &ids);
    let domains = review::events::DOMAINS;
    let deliveries = story.deliveries(&domains);
    assert!(
        (1_900..=2_300).contains(&deliveries.len()),
        "{} deliveries",
        deliveries.len()
    );

    let start =
        |config: mercato_kernel::ServiceConfig| review::start(config, review::Options::default());
    let (three, one) = tokio::join!(
        Replicas::start(SERVICE, &identity, 3, start),
        Replicas::start(SERVICE, &identity, 1, start),
    );
    let within = Duration::from_secs(60);
    let (published, _) = tokio::join!(
        three.consume(&domains, &deliveries, within),
        one.consume(&domains, &deliveries, within),
    );
    assert!(published.deduplicated > 0, "{published:?}");

    let wanted = expected(&story);
    let (single, several) = tokio::join!(projected(&one), projected(&three));
    assert_eq!(
        single.authors, wanted.authors,
        "seed {seed}: one replica's authors"
    );
    let differing: Vec<_> = wanted
        .purchases
        .iter()
        .filter(|(key, row)| single.purchases.get(*key) != Some(*row))
        .collect();
    assert!(
        differing.is_empty() && single.purchases.len() == wanted.purchases.len(),
        "seed {seed}: one replica holds {} purchases, {} expected; {} differ, e.g. {:?} held as \
         {:?}",
        single.purchases.len(),
        wanted.purchases.len(),
        differing.len(),
        differing.first(),
        differing
            .first()
            .and_then(|(key, _)| single.purchases.get(*key)),
    );
    assert!(
        several == single,
        "seed {seed}: three replicas' projection differs from one's"
    );

    let wanted = expected_shown(&story, &known);
    assert!(
        wanted.reviewed.iter().all(|products| !products.is_empty()),
        "every known customer bought something"
    );
    let (single, several) =
        tokio::join!(shown(&one, &story, &known), shown(&three, &story, &known));
    assert_eq!(single, wanted, "seed {seed}: one replica");
    assert_eq!(several, single, "seed {seed}: three replicas");

    three.stop(&domains).await;
    one.stop(&domains).await;
}
