//! Three replicas on one database and one durable consumer, as Kubernetes runs them, count a
//! shop's history of some 2,000 order events (duplicated and reordered, applied concurrently
//! by whichever replica pulls each) into exactly the sales a single replica counts, and that
//! the history itself adds up to: every confirmed order once, every cancelled one taken back.
//!
//! The aggregates are compared through the public RPCs, which show all that is reported:
//! GetSalesReport by the hour over the whole history, and GetTopProducts (every product) by
//! units and by revenue, over the whole history and day by day. The tables themselves are
//! not compared: how an order was bookkept depends on the delivery order (a cancellation seen
//! before its confirmation leaves no counted row, one seen after leaves a row at zero), what
//! they report does not.

use std::collections::BTreeMap;
use std::time::Duration;

use mercato::pb::statistics::v1::statistics_service_client::StatisticsServiceClient;
use mercato::pb::statistics::v1::{
    GetSalesReportRequest, GetTopProductsRequest, Granularity, ProductRanking,
};
use mercato::pb::r#type::v1::Money;
use mercato_testkit::history::{self, Fate, History, Plan, Replicas};
use mercato_testkit::{TestIdentity, authed};

use crate::cents;

const SERVICE: &str = "statistics";
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
/// The reported period: three days from the history's first hour.
const DAYS: i64 = 3;

/// A bucket as compared: (start, orders, units, revenue in cents, average in cents).
type Bucket = (i64, i64, i64, i64, i64);
/// A product as compared: (id, name, units, revenue in cents, orders).
type ProductLine = (String, String, i64, i64, i64);

fn whole_cents(money: Option<&Money>) -> i64 {
    cents(&money.cloned())
}

/// The statistics of a setup, as its RPCs report them.
#[derive(Debug, PartialEq, Eq)]
struct Reported {
    hours: Vec<Bucket>,
    total: Bucket,
    /// By (period start, ranking).
    top: BTreeMap<(i64, &'static str), Vec<ProductLine>>,
}

fn periods(start: i64) -> Vec<(i64, i64)> {
    let mut out = vec![(start, start + DAYS * DAY)];
    out.extend((0..DAYS).map(|d| (start + d * DAY, start + (d + 1) * DAY)));
    out
}

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

async fn reported(replicas: &Replicas, via: usize, admin: &str, start: i64) -> Reported {
    let mut client =
        StatisticsServiceClient::new(mercato_testkit::channel(replicas.addr(via)).await);
    let report = client
        .get_sales_report(authed(
            GetSalesReportRequest {
                start_time: ts(start),
                end_time: ts(start + DAYS * DAY),
                granularity: Granularity::Hour as i32,
            },
            admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let bucket = |b: &mercato::pb::statistics::v1::SalesBucket| {
        (
            b.start_time.unwrap().seconds,
            b.order_count,
            b.units_sold,
            whole_cents(b.revenue.as_ref()),
            whole_cents(b.average_order_value.as_ref()),
        )
    };
    let mut top = BTreeMap::new();
    for (from, to) in periods(start) {
        for (name, ranking) in [
            ("units", ProductRanking::Units),
            ("revenue", ProductRanking::Revenue),
        ] {
            let products = client
                .get_top_products(authed(
                    GetTopProductsRequest {
                        start_time: ts(from),
                        end_time: ts(to),
                        limit: 100,
                        order_by: ranking as i32,
                    },
                    admin,
                ))
                .await
                .unwrap()
                .into_inner()
                .products;
            top.insert(
                (from, name),
                products
                    .iter()
                    .map(|p| {
                        (
                            p.product_id.clone(),
                            p.name.clone(),
                            p.units_sold,
                            whole_cents(p.revenue.as_ref()),
                            p.order_count,
                        )
                    })
                    .collect(),
            );
        }
    }
    Reported {
        hours: report.buckets.iter().map(bucket).collect(),
        total: bucket(report.total.as_ref().unwrap()),
        top,
    }
}

fn average(revenue: i64, orders: i64) -> i64 {
    if orders == 0 { 0 } else { revenue / orders }
}

/// What the history adds up to, computed without the service: a sale is an order confirmed
/// and not cancelled since, in the hour of its confirmation; a product's name is the one on
/// its latest confirmation.
fn expected(story: &History, start: i64) -> Reported {
    let mut hours: Vec<Bucket> = (0..DAYS * 24)
        .map(|h| (start + h * HOUR, 0, 0, 0, 0))
        .collect();
    let mut names: BTreeMap<&str, (history::Instant, &str)> = BTreeMap::new();
    // (product, hour) -> (units, revenue, orders)
    let mut sold: BTreeMap<(&str, i64), (i64, i64, i64)> = BTreeMap::new();
    for o in &story.orders {
        let Some(confirmed_at) = o.fate.confirmed_at() else {
            continue;
        };
        for line in &o.lines {
            let name = names
                .entry(line.product_id.as_str())
                .or_insert((confirmed_at, line.name.as_str()));
            if confirmed_at >= name.0 {
                *name = (confirmed_at, line.name.as_str());
            }
        }
        if matches!(o.fate, Fate::Cancelled { .. }) {
            continue;
        }
        let hour = confirmed_at.seconds - confirmed_at.seconds.rem_euclid(HOUR);
        let i = usize::try_from((hour - start) / HOUR).unwrap();
        let b = &mut hours[i];
        b.1 += 1;
        b.2 += o.units();
        b.3 += o.total_cents();
        for line in &o.lines {
            let entry = sold.entry((line.product_id.as_str(), hour)).or_default();
            entry.0 += i64::from(line.quantity);
            entry.1 += cents(&line.line_total);
            entry.2 += 1;
        }
    }
    for b in &mut hours {
        b.4 = average(b.3, b.1);
    }
    let (orders, units, revenue) = hours
        .iter()
        .fold((0, 0, 0), |(o, u, r), b| (o + b.1, u + b.2, r + b.3));
    let total = (start, orders, units, revenue, average(revenue, orders));
    let mut top = BTreeMap::new();
    for (from, to) in periods(start) {
        let mut per_product: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
        for ((product, hour), (u, r, n)) in &sold {
            if (from..to).contains(hour) {
                let entry = per_product.entry(product).or_default();
                entry.0 += u;
                entry.1 += r;
                entry.2 += n;
            }
        }
        let lines: Vec<ProductLine> = per_product
            .iter()
            .map(|(id, (u, r, n))| ((*id).to_owned(), names[id].1.to_owned(), *u, *r, *n))
            .collect();
        let mut by_units = lines.clone();
        by_units.sort_by(|a, b| b.2.cmp(&a.2).then(b.3.cmp(&a.3)).then(a.0.cmp(&b.0)));
        let mut by_revenue = lines;
        by_revenue.sort_by(|a, b| b.3.cmp(&a.3).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
        top.insert((from, "units"), by_units);
        top.insert((from, "revenue"), by_revenue);
    }
    Reported { hours, total, top }
}

#[tokio::test]
async fn three_replicas_count_a_shuffled_history_exactly_as_one() {
    let identity = TestIdentity::start().await;
    let admin = identity.admin_token().await;
    let seed = history::seed();
    let plan = Plan {
        orders: 720,
        ..Plan::default()
    };
    let story = History::generate(seed, &plan, &[]);
    let domains = statistics::projector::DOMAINS;
    let deliveries = story.deliveries(domains);
    assert!(
        (1_900..=2_300).contains(&deliveries.len()),
        "{} deliveries",
        deliveries.len()
    );

    let start = |config: mercato_kernel::ServiceConfig| {
        statistics::start(config, statistics::Settings::default())
    };
    let (three, one) = tokio::join!(
        Replicas::start(SERVICE, &identity, 3, start),
        Replicas::start(SERVICE, &identity, 1, start),
    );
    let within = Duration::from_secs(60);
    let (published, _) = tokio::join!(
        three.consume(domains, &deliveries, within),
        one.consume(domains, &deliveries, within),
    );
    assert!(published.deduplicated > 0, "{published:?}");

    let first_hour = plan.start.seconds - plan.start.seconds.rem_euclid(HOUR);
    let wanted = expected(&story, first_hour);
    assert!(wanted.total.1 > 300, "{:?}", wanted.total);
    let single = reported(&one, 0, &admin, first_hour).await;
    assert_eq!(single, wanted, "seed {seed}: one replica");
    for via in 0..3 {
        assert_eq!(
            reported(&three, via, &admin, first_hour).await,
            single,
            "seed {seed}: replica {via} of three"
        );
    }

    three.stop(domains).await;
    one.stop(domains).await;
}
