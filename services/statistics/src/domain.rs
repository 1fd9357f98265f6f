//! Pure rules of the statistics: what a sale is, UTC bucket arithmetic, request parsing and
//! the exact money arithmetic of a report. No I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use mercato::order_events::OrderEvent as _;
use mercato::pb::order::v1::{OrderConfirmed, OrderStatus};
use mercato::pb::statistics::v1 as pb;
use mercato_kernel::error::FieldViolations;
use mercato_kernel::money::Amount;

/// Seconds of one hour bucket.
pub const HOUR_SECS: i64 = 3600;
/// Seconds of one day bucket.
pub const DAY_SECS: i64 = 24 * HOUR_SECS;
/// Longest report with day buckets.
pub const MAX_DAY_RANGE_DAYS: i64 = 366;
/// Longest report with hour buckets.
pub const MAX_HOUR_RANGE_DAYS: i64 = 31;
/// `GetTopProducts` limit when none is given.
pub const DEFAULT_TOP_LIMIT: i64 = 10;
/// Largest `GetTopProducts` limit.
pub const MAX_TOP_LIMIT: i64 = 100;

/// Nano-units of one cent: averages are rounded down to it.
const CENT_NANOS: i128 = 10_000_000;
/// Earliest instant a `google.protobuf.Timestamp` may hold (0001-01-01T00:00:00Z).
const MIN_TIMESTAMP_SECS: i64 = -62_135_596_800;
/// Latest instant a `google.protobuf.Timestamp` may hold (9999-12-31T23:59:59Z).
const MAX_TIMESTAMP_SECS: i64 = 253_402_300_799;

/// Bucket size of a sales report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One bucket per UTC hour.
    Hour,
    /// One bucket per UTC day.
    Day,
}

impl Granularity {
    /// Length of one bucket in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Self::Hour => HOUR_SECS,
            Self::Day => DAY_SECS,
        }
    }

    /// Longest allowed report, in days.
    fn max_range_days(self) -> i64 {
        match self {
            Self::Hour => MAX_HOUR_RANGE_DAYS,
            Self::Day => MAX_DAY_RANGE_DAYS,
        }
    }
}

/// How top products are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// Units, then revenue, then product id.
    Units,
    /// Revenue, then units, then product id.
    Revenue,
}

/// `t` rounded down to a multiple of `step` seconds since the epoch (UTC-aligned buckets).
pub fn floor_to(t: DateTime<Utc>, step: i64) -> DateTime<Utc> {
    let secs = t.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(step), 0).unwrap_or(t)
}

/// `t` rounded up to a multiple of `step` seconds since the epoch.
pub fn ceil_to(t: DateTime<Utc>, step: i64) -> DateTime<Utc> {
    let floor = floor_to(t, step);
    if floor == t {
        t
    } else {
        floor + TimeDelta::seconds(step)
    }
}

/// A timestamp within the range protobuf allows; `None` (after recording why) otherwise.
fn parse_time(
    v: &mut FieldViolations,
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Option<DateTime<Utc>> {
    let Some(ts) = value else {
        v.add(field, "is required");
        return None;
    };
    let valid = (MIN_TIMESTAMP_SECS..=MAX_TIMESTAMP_SECS).contains(&ts.seconds)
        && (0..1_000_000_000).contains(&ts.nanos);
    let parsed = valid
        .then(|| DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?))
        .flatten();
    if parsed.is_none() {
        v.add(
            field,
            "must be a valid timestamp between 0001-01-01 and 9999-12-31",
        );
    }
    parsed
}

/// Both ends of a half-open range, `end_time` after `start_time`.
fn parse_range(
    v: &mut FieldViolations,
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = parse_time(v, "start_time", start);
    let end = parse_time(v, "end_time", end);
    let (start, end) = (start?, end?);
    if end <= start {
        v.add("end_time", "must be after start_time");
        return None;
    }
    Some((start, end))
}

/// A validated `GetSalesReport` request, its range already aligned to whole buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// First bucket's start (inclusive).
    pub start: DateTime<Utc>,
    /// Last bucket's end (exclusive).
    pub end: DateTime<Utc>,
    /// Bucket size.
    pub granularity: Granularity,
}

impl ReportQuery {
    /// Parses the request, collecting every violation.
    pub fn parse(req: &pb::GetSalesReportRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let granularity = match pb::Granularity::try_from(req.granularity) {
            Ok(pb::Granularity::Hour) => Some(Granularity::Hour),
            Ok(pb::Granularity::Day | pb::Granularity::Unspecified) => Some(Granularity::Day),
            Err(_) => {
                v.add("granularity", "must be GRANULARITY_HOUR or GRANULARITY_DAY");
                None
            }
        };
        let range = parse_range(&mut v, req.start_time.as_ref(), req.end_time.as_ref());
        if let (Some(g), Some((start, end))) = (granularity, range)
            && end - start > TimeDelta::days(g.max_range_days())
        {
            v.add(
                "end_time",
                format!(
                    "must be at most {} days after start_time with this granularity",
                    g.max_range_days()
                ),
            );
        }
        match (granularity, range) {
            (Some(granularity), Some((start, end))) if v.is_empty() => Ok(Self {
                start: floor_to(start, granularity.seconds()),
                end: ceil_to(end, granularity.seconds()),
                granularity,
            }),
            _ => Err(v),
        }
    }
}

/// A validated `GetTopProducts` request; the range is widened to whole hours, the
/// resolution the sales are kept in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopQuery {
    /// Start of the first hour (inclusive).
    pub start: DateTime<Utc>,
    /// End of the last hour (exclusive).
    pub end: DateTime<Utc>,
    /// How many products, 1..=100.
    pub limit: i64,
    /// Ranking.
    pub ranking: Ranking,
}

impl TopQuery {
    /// Parses the request, collecting every violation.
    pub fn parse(req: &pb::GetTopProductsRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let range = parse_range(&mut v, req.start_time.as_ref(), req.end_time.as_ref());
        let limit = match i64::from(req.limit) {
            0 => Some(DEFAULT_TOP_LIMIT),
            n @ 1..=MAX_TOP_LIMIT => Some(n),
            _ => {
                v.add(
                    "limit",
                    format!("must be between 1 and {MAX_TOP_LIMIT} (0 means {DEFAULT_TOP_LIMIT})"),
                );
                None
            }
        };
        let ranking = match pb::ProductRanking::try_from(req.order_by) {
            Ok(pb::ProductRanking::Units | pb::ProductRanking::Unspecified) => Some(Ranking::Units),
            Ok(pb::ProductRanking::Revenue) => Some(Ranking::Revenue),
            Err(_) => {
                v.add(
                    "order_by",
                    "must be PRODUCT_RANKING_UNITS or PRODUCT_RANKING_REVENUE",
                );
                None
            }
        };
        match (range, limit, ranking) {
            (Some((start, end)), Some(limit), Some(ranking)) => Ok(Self {
                start: floor_to(start, HOUR_SECS),
                end: ceil_to(end, HOUR_SECS),
                limit,
                ranking,
            }),
            _ => Err(v),
        }
    }
}

/// Sales of one stored hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourSales {
    /// Start of the hour.
    pub hour: DateTime<Utc>,
    /// Orders counted.
    pub orders: i64,
    /// Units sold.
    pub units: i64,
    /// Revenue in nano-units.
    pub revenue_nanos: i64,
}

/// Sales of one reported period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
    /// Orders.
    pub orders: i64,
    /// Units sold.
    pub units: i64,
    /// Revenue in nano-units, summed without overflow.
    pub revenue_nanos: i128,
}

impl Bucket {
    fn empty(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self {
            start,
            end,
            orders: 0,
            units: 0,
            revenue_nanos: 0,
        }
    }

    fn add(&mut self, hour: &HourSales) {
        self.orders = self.orders.saturating_add(hour.orders);
        self.units = self.units.saturating_add(hour.units);
        self.revenue_nanos += i128::from(hour.revenue_nanos);
    }

    /// revenue / orders, rounded down to the cent; zero without orders.
    pub fn average_nanos(&self) -> i128 {
        average_floor_cents(self.revenue_nanos, self.orders)
    }
}

/// `revenue / orders` rounded down to the cent (toward −∞), zero when `orders` is not positive.
pub fn average_floor_cents(revenue_nanos: i128, orders: i64) -> i128 {
    if orders <= 0 {
        return 0;
    }
    let cents = revenue_nanos.div_euclid(CENT_NANOS);
    cents.div_euclid(i128::from(orders)) * CENT_NANOS
}

/// Every bucket of `query` in time order (empty ones too) and the total, from the stored
/// hours (which must lie within the query's range).
pub fn report(query: &ReportQuery, hours: &[HourSales]) -> (Vec<Bucket>, Bucket) {
    let step = TimeDelta::seconds(query.granularity.seconds());
    let mut buckets = Vec::new();
    let mut at = query.start;
    while at < query.end {
        buckets.push(Bucket::empty(at, at + step));
        at += step;
    }
    let mut total = Bucket::empty(query.start, query.end);
    let step_secs = query.granularity.seconds();
    for hour in hours {
        let offset = (hour.hour - query.start)
            .num_seconds()
            .div_euclid(step_secs);
        if let Some(bucket) = usize::try_from(offset)
            .ok()
            .and_then(|i| buckets.get_mut(i))
        {
            bucket.add(hour);
            total.add(hour);
        }
    }
    (buckets, total)
}

/// Whether a cancellation takes back a counted sale: only orders that had been confirmed
/// (or shipped) were ever counted.
pub fn cancels_a_sale(previous_status: i32) -> bool {
    matches!(
        OrderStatus::try_from(previous_status),
        Ok(OrderStatus::Confirmed | OrderStatus::Shipped)
    )
}

/// Why a confirmation cannot be counted; such an event is retried, then dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaleError {
    /// A field is missing or malformed.
    #[error("invalid OrderConfirmed: {0}")]
    Invalid(String),
}

fn invalid(what: impl Into<String>) -> SaleError {
    SaleError::Invalid(what.into())
}

/// One product's share of a sale (all lines of the product merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSale {
    /// The catalog product.
    pub product_id: String,
    /// Its name on this order.
    pub name: String,
    /// Units bought.
    pub units: i64,
    /// Sum of its line totals, nano-units.
    pub revenue_nanos: i64,
}

/// A confirmed order as the statistics count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    /// The order.
    pub order_id: String,
    /// When it counts: its confirmation time.
    pub sold_at: DateTime<Utc>,
    /// The UTC hour bucket of `sold_at`.
    pub hour: DateTime<Utc>,
    /// Currency of the total and every line.
    pub currency: String,
    /// The order's total (after discounts), nano-units.
    pub total_nanos: i64,
    /// Units over all lines.
    pub units: i64,
    /// Per product, ordered by product id.
    pub products: Vec<ProductSale>,
}

/// Longest product id or name kept (events come from our own order service; this only
/// bounds what a malformed event could store).
const MAX_TEXT: usize = 500;

impl Sale {
    /// The sale of a confirmation; `fallback_time` (the envelope's) stands in for a missing
    /// `confirm_time`.
    pub fn from_confirmed(
        event: &OrderConfirmed,
        fallback_time: Option<DateTime<Utc>>,
    ) -> Result<Self, SaleError> {
        let order = event
            .order()
            .map_err(|e| invalid(format!("undecodable order: {e}")))?;
        if order.order_id.is_empty() || order.order_id.len() > MAX_TEXT {
            return Err(invalid("order_id is empty or too long"));
        }
        let sold_at = match &event.confirm_time {
            Some(ts) => DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).unwrap_or(0))
                .ok_or_else(|| invalid("confirm_time out of range"))?,
            None => fallback_time.ok_or_else(|| invalid("confirm_time missing"))?,
        };
        let total = order
            .total
            .as_ref()
            .ok_or_else(|| invalid("total missing"))
            .and_then(|m| Amount::parse(m).map_err(|e| invalid(format!("total: {e}"))))?;
        let currency = total.currency().to_owned();
        let total_nanos =
            i64::try_from(total.total_nanos()).map_err(|_| invalid("total too large"))?;
        let mut by_product: BTreeMap<String, ProductSale> = BTreeMap::new();
        let mut units: i64 = 0;
        for (i, line) in order.lines.iter().enumerate() {
            if line.product_id.is_empty() || line.product_id.len() > MAX_TEXT {
                return Err(invalid(format!(
                    "lines[{i}].product_id is empty or too long"
                )));
            }
            if line.quantity < 1 {
                return Err(invalid(format!("lines[{i}].quantity must be positive")));
            }
            let line_total = line
                .line_total
                .as_ref()
                .ok_or_else(|| invalid(format!("lines[{i}].line_total missing")))
                .and_then(|m| {
                    Amount::parse(m).map_err(|e| invalid(format!("lines[{i}].line_total: {e}")))
                })?;
            if line_total.currency() != currency {
                return Err(invalid(format!(
                    "lines[{i}].line_total is not in the order's currency {currency}"
                )));
            }
            let revenue = i64::try_from(line_total.total_nanos())
                .map_err(|_| invalid(format!("lines[{i}].line_total too large")))?;
            let quantity = i64::from(line.quantity);
            units = units
                .checked_add(quantity)
                .ok_or_else(|| invalid("too many units"))?;
            let name: String = line.name.chars().take(MAX_TEXT).collect();
            let entry = by_product
                .entry(line.product_id.clone())
                .or_insert_with(|| ProductSale {
                    product_id: line.product_id.clone(),
                    name: name.clone(),
                    units: 0,
                    revenue_nanos: 0,
                });
            entry.name = name;
            entry.units += quantity;
            entry.revenue_nanos = entry
                .revenue_nanos
                .checked_add(revenue)
                .ok_or_else(|| invalid("revenue too large"))?;
        }
        Ok(Self {
            order_id: order.order_id.clone(),
            hour: floor_to(sold_at, HOUR_SECS),
            sold_at,
            currency,
            total_nanos,
            units,
            products: by_product.into_values().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mercato::pb::order::v1::OrderLine;
    use mercato::pb::r#type::v1::Money;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    fn ts(rfc3339: &str) -> prost_types::Timestamp {
        mercato_kernel::time::to_timestamp(at(rfc3339))
    }

    fn eur(cents: i64) -> Money {
        Amount::from_total_nanos("EUR", i128::from(cents) * CENT_NANOS).to_proto()
    }

    fn line(product: &str, quantity: i32, cents_each: i64) -> OrderLine {
        OrderLine {
            product_id: product.into(),
            name: format!("name of {product}"),
            quantity,
            unit_price: Some(eur(cents_each)),
            line_total: Some(eur(cents_each * i64::from(quantity))),
        }
    }

    fn confirmed() -> OrderConfirmed {
        OrderConfirmed {
            order_id: "o1".into(),
            version: 2,
            lines: vec![line("p2", 2, 500), line("p1", 1, 1999), line("p2", 1, 500)],
            total: Some(eur(3000)),
            confirm_time: Some(ts("2030-03-04T10:59:59.5Z")),
            ..Default::default()
        }
    }

    #[test]
    fn buckets_align_to_utc_hours_and_days() {
        let t = at("2030-03-04T10:20:30Z");
        assert_eq!(floor_to(t, HOUR_SECS), at("2030-03-04T10:00:00Z"));
        assert_eq!(ceil_to(t, HOUR_SECS), at("2030-03-04T11:00:00Z"));
        assert_eq!(floor_to(t, DAY_SECS), at("2030-03-04T00:00:00Z"));
        assert_eq!(ceil_to(t, DAY_SECS), at("2030-03-05T00:00:00Z"));
        let aligned = at("2030-03-04T00:00:00Z");
        assert_eq!(ceil_to(aligned, DAY_SECS), aligned);
        // Before the epoch too.
        let old = at("1969-12-31T23:30:00Z");
        assert_eq!(floor_to(old, HOUR_SECS), at("1969-12-31T23:00:00Z"));
    }

    #[test]
    fn a_report_request_is_rounded_outward_to_whole_buckets() {
        let q = ReportQuery::parse(&pb::GetSalesReportRequest {
            start_time: Some(ts("2030-03-04T10:20:00Z")),
            end_time: Some(ts("2030-03-06T00:00:01Z")),
            granularity: 0,
        })
        .unwrap();
        assert_eq!(q.granularity, Granularity::Day);
        assert_eq!(q.start, at("2030-03-04T00:00:00Z"));
        assert_eq!(q.end, at("2030-03-07T00:00:00Z"));
    }

    /// The fields named in the violations, in order.
    fn violations(err: FieldViolations) -> Vec<String> {
        use tonic_types::StatusExt as _;
        err.into_status()
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn report_requests_report_every_problem() {
        let err = ReportQuery::parse(&pb::GetSalesReportRequest {
            start_time: None,
            end_time: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            }),
            granularity: 7,
        })
        .unwrap_err();
        assert_eq!(
            violations(err),
            ["granularity", "start_time", "end_time"].map(String::from)
        );
    }

    #[test]
    fn report_ranges_are_bounded_per_granularity() {
        let request = |end: &str, granularity: pb::Granularity| pb::GetSalesReportRequest {
            start_time: Some(ts("2030-01-01T00:00:00Z")),
            end_time: Some(ts(end)),
            granularity: granularity as i32,
        };
        assert!(
            ReportQuery::parse(&request("2030-02-01T00:00:00Z", pb::Granularity::Hour)).is_ok()
        );
        let err = ReportQuery::parse(&request("2030-02-01T00:00:01Z", pb::Granularity::Hour))
            .unwrap_err();
        assert_eq!(violations(err), ["end_time"]);
        assert!(ReportQuery::parse(&request("2031-01-02T00:00:00Z", pb::Granularity::Day)).is_ok());
        assert!(
            ReportQuery::parse(&request("2031-01-02T00:00:01Z", pb::Granularity::Day)).is_err()
        );
        let err =
            ReportQuery::parse(&request("2029-12-31T00:00:00Z", pb::Granularity::Day)).unwrap_err();
        assert_eq!(violations(err), ["end_time"]);
    }

    #[test]
    fn top_product_requests_default_and_bound_the_limit() {
        let request = |limit: i32, order_by: i32| pb::GetTopProductsRequest {
            start_time: Some(ts("2030-01-01T00:30:00Z")),
            end_time: Some(ts("2030-01-01T01:30:00Z")),
            limit,
            order_by,
        };
        let q = TopQuery::parse(&request(0, 0)).unwrap();
        assert_eq!(q.limit, DEFAULT_TOP_LIMIT);
        assert_eq!(q.ranking, Ranking::Units);
        assert_eq!(q.start, at("2030-01-01T00:00:00Z"));
        assert_eq!(q.end, at("2030-01-01T02:00:00Z"));
        assert_eq!(
            TopQuery::parse(&request(100, 2)).unwrap().ranking,
            Ranking::Revenue
        );
        let err = TopQuery::parse(&request(101, 9)).unwrap_err();
        assert_eq!(violations(err), ["limit", "order_by"]);
        assert!(TopQuery::parse(&request(-1, 0)).is_err());
    }

    #[test]
    fn averages_round_down_to_the_cent() {
        // 100.00 / 3 = 33.333… → 33.33
        assert_eq!(
            average_floor_cents(100 * 100 * CENT_NANOS, 3),
            3333 * CENT_NANOS
        );
        // Sub-cent revenue is dropped before dividing.
        assert_eq!(average_floor_cents(CENT_NANOS - 1, 1), 0);
        assert_eq!(average_floor_cents(12345 * CENT_NANOS, 0), 0);
    }

    #[test]
    fn hours_are_summed_into_their_buckets_and_the_total() {
        let q = ReportQuery {
            start: at("2030-03-04T00:00:00Z"),
            end: at("2030-03-07T00:00:00Z"),
            granularity: Granularity::Day,
        };
        let hour = |t: &str, orders: i64, revenue_cents: i64| HourSales {
            hour: at(t),
            orders,
            units: orders * 2,
            revenue_nanos: revenue_cents * 10_000_000,
        };
        let hours = [
            hour("2030-03-04T01:00:00Z", 1, 1000),
            hour("2030-03-04T23:00:00Z", 2, 2001),
            hour("2030-03-06T12:00:00Z", 1, 500),
        ];
        let (buckets, total) = report(&q, &hours);
        assert_eq!(buckets.len(), 3);
        assert_eq!(buckets[0].orders, 3);
        assert_eq!(buckets[0].units, 6);
        assert_eq!(buckets[0].revenue_nanos, 3001 * CENT_NANOS);
        assert_eq!(buckets[0].average_nanos(), 1000 * CENT_NANOS);
        assert_eq!(buckets[1].orders, 0);
        assert_eq!(buckets[1].average_nanos(), 0);
        assert_eq!(buckets[2].start, at("2030-03-06T00:00:00Z"));
        assert_eq!(buckets[2].end, at("2030-03-07T00:00:00Z"));
        assert_eq!(total.orders, 4);
        assert_eq!(total.revenue_nanos, 3501 * CENT_NANOS);
        assert_eq!(total.average_nanos(), 875 * CENT_NANOS);
    }

    #[test]
    fn the_sale_is_read_from_the_snapshot_rather_than_the_deprecated_fields() {
        let legacy = confirmed();
        let snapshot = mercato::pb::order::v1::OrderSnapshot {
            order_id: legacy.order_id.clone(),
            version: legacy.version,
            lines: legacy.lines.clone(),
            total: legacy.total.clone(),
            ..Default::default()
        };
        let event = OrderConfirmed {
            order_id: "stale".into(),
            snapshot: Some(snapshot),
            confirm_time: legacy.confirm_time,
            ..Default::default()
        };
        assert_eq!(
            Sale::from_confirmed(&event, None).unwrap(),
            Sale::from_confirmed(&legacy, None).unwrap()
        );
    }

    #[test]
    fn a_confirmation_becomes_a_sale_in_its_confirmation_hour() {
        let sale = Sale::from_confirmed(&confirmed(), None).unwrap();
        assert_eq!(sale.hour, at("2030-03-04T10:00:00Z"));
        assert_eq!(sale.total_nanos, 3000 * CENT_NANOS as i64);
        assert_eq!(sale.units, 4);
        assert_eq!(sale.currency, "EUR");
        assert_eq!(sale.products.len(), 2);
        assert_eq!(sale.products[0].product_id, "p1");
        assert_eq!(sale.products[1].units, 3);
        assert_eq!(sale.products[1].revenue_nanos, 1500 * CENT_NANOS as i64);
    }

    #[test]
    fn the_envelope_time_stands_in_for_a_missing_confirm_time() {
        let mut event = confirmed();
        event.confirm_time = None;
        assert!(Sale::from_confirmed(&event, None).is_err());
        let sale = Sale::from_confirmed(&event, Some(at("2030-01-01T05:05:00Z"))).unwrap();
        assert_eq!(sale.hour, at("2030-01-01T05:00:00Z"));
    }

    #[test]
    fn malformed_confirmations_are_rejected() {
        let mut no_total = confirmed();
        no_total.total = None;
        assert!(Sale::from_confirmed(&no_total, None).is_err());
        let mut mixed = confirmed();
        mixed.lines[0].line_total = Some(Money {
            currency_code: "USD".into(),
            units: 10,
            nanos: 0,
        });
        assert!(Sale::from_confirmed(&mixed, None).is_err());
        let mut zero = confirmed();
        zero.lines[1].quantity = 0;
        assert!(Sale::from_confirmed(&zero, None).is_err());
        let mut anonymous = confirmed();
        anonymous.order_id.clear();
        assert!(Sale::from_confirmed(&anonymous, None).is_err());
    }

    #[test]
    fn only_cancellations_of_confirmed_orders_take_a_sale_back() {
        assert!(cancels_a_sale(OrderStatus::Confirmed as i32));
        assert!(cancels_a_sale(OrderStatus::Shipped as i32));
        assert!(!cancels_a_sale(OrderStatus::Pending as i32));
        assert!(!cancels_a_sale(0));
        assert!(!cancels_a_sale(99));
    }
}
