//! Review rules: what a valid review is, what an order event says about who bought what, and
//! how ratings add up. Requests and events are parsed here once; everything past this module
//! holds valid values. No I/O.

use mercato::pb::order::v1::OrderLine;
use mercato::pb::review::v1 as pb;
use mercato_kernel::error::FieldViolations;
use mercato_kernel::validate::{self, Text};
use uuid::Uuid;

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 120;
/// Longest body, in characters.
pub const MAX_BODY_CHARS: usize = 5000;
/// Lowest and highest number of stars.
pub const RATINGS: std::ops::RangeInclusive<i32> = 1..=5;

/// A validated CreateReview request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReview {
    /// The reviewed product.
    pub product_id: Uuid,
    /// Stars, 1..5.
    pub rating: i32,
    /// Trimmed, 1 to 120 characters, one line.
    pub title: String,
    /// Up to 5000 characters; line feeds and tabs allowed.
    pub body: String,
}

impl NewReview {
    /// Parses every field of `req`, reporting each problem under its proto field name.
    pub fn parse(req: &pb::CreateReviewRequest) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let product_id = validate::uuid(&mut v, "product_id", &req.product_id);
        if !RATINGS.contains(&req.rating) {
            v.add("rating", "must be between 1 and 5");
        }
        let title = req.title.trim().to_owned();
        validate::text(&mut v, "title", &title, Text::one_line(MAX_TITLE_CHARS));
        validate::text(&mut v, "body", &req.body, Text::multi_line(MAX_BODY_CHARS));
        match product_id {
            Some(product_id) if v.is_empty() => Ok(Self {
                product_id,
                rating: req.rating,
                title,
                body: req.body.clone(),
            }),
            _ => Err(v),
        }
    }
}

/// Where an order stands, as far as reviewing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchaseStatus {
    /// Paid: the buyer may review.
    Confirmed,
    /// Handed to the carrier, which implies confirmed.
    Shipped,
    /// Cancelled (before or after confirmation): the purchase no longer counts.
    Cancelled,
}

impl PurchaseStatus {
    /// The value stored in `purchases.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseStatus::Confirmed => "confirmed",
            PurchaseStatus::Shipped => "shipped",
            PurchaseStatus::Cancelled => "cancelled",
        }
    }
}

/// What one order event says about who bought what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFact {
    /// The order.
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// The order's version after the change the event records.
    pub version: i64,
    /// The distinct products of the order, sorted (so concurrent upserts lock rows in the
    /// same order and cannot deadlock).
    pub product_ids: Vec<Uuid>,
    /// The order's status after the change.
    pub status: PurchaseStatus,
}

/// An order event that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactError {
    /// The order or buyer id is not a UUID.
    #[error("{field} {value:?} is not a UUID")]
    BadId {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: String,
    },
}

impl OrderFact {
    /// The fact of an order event's common fields. Lines whose product id is not a UUID are
    /// left out: such a product cannot be reviewed anyway.
    pub fn new(
        order_id: &str,
        user_id: &str,
        version: i64,
        lines: &[OrderLine],
        status: PurchaseStatus,
    ) -> Result<Self, FactError> {
        let id = |field: &'static str, value: &str| {
            Uuid::parse_str(value).map_err(|_| FactError::BadId {
                field,
                value: value.to_owned(),
            })
        };
        let mut product_ids: Vec<Uuid> = lines
            .iter()
            .filter_map(|line| Uuid::parse_str(&line.product_id).ok())
            .collect();
        product_ids.sort_unstable();
        product_ids.dedup();
        Ok(Self {
            order_id: id("order_id", order_id)?,
            user_id: id("user_id", user_id)?,
            version,
            product_ids,
            status,
        })
    }
}

/// A product's ratings in numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingTotals {
    /// Mean rating; 0 without reviews.
    pub average: f64,
    /// Number of reviews.
    pub count: i64,
    /// Reviews per rating, index 0 = 1 star.
    pub histogram: [i64; 5],
}

impl RatingTotals {
    /// Totals from (rating, count) pairs as grouped by the database; ratings outside 1..5
    /// cannot be stored (CHECK constraint) and are ignored.
    pub fn from_counts(counts: &[(i32, i64)]) -> Self {
        let mut histogram = [0i64; 5];
        for &(rating, count) in counts {
            if let Some(slot) = usize::try_from(rating - 1)
                .ok()
                .and_then(|i| histogram.get_mut(i))
            {
                *slot += count;
            }
        }
        let count: i64 = histogram.iter().sum();
        let stars: i64 = histogram
            .iter()
            .zip(1i64..)
            .map(|(count, rating)| count * rating)
            .sum();
        // Exact for any realistic count: both sums stay far below 2^53.
        let average = if count == 0 {
            0.0
        } else {
            stars as f64 / count as f64
        };
        Self {
            average,
            count,
            histogram,
        }
    }

    /// The proto summary of `product_id`: always five histogram entries, 1 to 5 stars.
    pub fn to_proto(&self, product_id: &str) -> pb::RatingSummary {
        pb::RatingSummary {
            product_id: product_id.to_owned(),
            average_rating: self.average,
            review_count: saturating_i32(self.count),
            histogram: self
                .histogram
                .iter()
                .zip(1..)
                .map(|(&count, rating)| pb::RatingCount {
                    rating,
                    count: saturating_i32(count),
                })
                .collect(),
        }
    }
}

fn saturating_i32(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::CreateReviewRequest {
        pb::CreateReviewRequest {
            product_id: Uuid::now_v7().to_string(),
            rating: 4,
            title: "  Solid mug  ".into(),
            body: "Keeps coffee warm.\nDishwasher safe.".into(),
        }
    }

    fn violations(req: &pb::CreateReviewRequest) -> Vec<String> {
        use tonic_types::StatusExt as _;
        let status = NewReview::parse(req).unwrap_err().into_status();
        status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_valid_review_parses_with_a_trimmed_title() {
        let review = NewReview::parse(&request()).unwrap();
        assert_eq!(review.title, "Solid mug");
        assert_eq!(review.rating, 4);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let req = pb::CreateReviewRequest {
            product_id: "not-a-uuid".into(),
            rating: 6,
            title: "   ".into(),
            body: "x".repeat(MAX_BODY_CHARS + 1),
        };
        assert_eq!(
            violations(&req),
            vec!["product_id", "rating", "title", "body"]
        );
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let mut req = request();
        req.title = "é".repeat(MAX_TITLE_CHARS);
        req.body = "ü".repeat(MAX_BODY_CHARS);
        assert!(NewReview::parse(&req).is_ok());
        req.title.push('é');
        assert_eq!(violations(&req), vec!["title"]);
    }

    #[test]
    fn ratings_outside_one_to_five_are_refused() {
        for rating in [0, -1, 6] {
            let mut req = request();
            req.rating = rating;
            assert_eq!(violations(&req), vec!["rating"], "{rating}");
        }
        for rating in 1..=5 {
            let mut req = request();
            req.rating = rating;
            assert!(NewReview::parse(&req).is_ok(), "{rating}");
        }
    }

    #[test]
    fn a_missing_product_is_required() {
        let mut req = request();
        req.product_id.clear();
        assert_eq!(violations(&req), vec!["product_id"]);
    }

    #[test]
    fn control_characters_are_refused_but_line_breaks_in_the_body_are_fine() {
        let mut req = request();
        req.title = "two\nlines".into();
        req.body = "bell\u{7}".into();
        assert_eq!(violations(&req), vec!["title", "body"]);
    }

    #[test]
    fn an_order_fact_lists_each_valid_product_once_in_order() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let line = |id: String| OrderLine {
            product_id: id,
            ..Default::default()
        };
        let lines = [
            line(b.to_string()),
            line(a.to_string()),
            line(b.to_string()),
            line("sku-17".into()),
        ];
        let fact = OrderFact::new(
            &Uuid::now_v7().to_string(),
            &Uuid::now_v7().to_string(),
            2,
            &lines,
            PurchaseStatus::Confirmed,
        )
        .unwrap();
        let mut expected = vec![a, b];
        expected.sort_unstable();
        assert_eq!(fact.product_ids, expected);
    }

    #[test]
    fn an_order_fact_needs_uuid_ids() {
        let err = OrderFact::new("o-1", "u-1", 2, &[], PurchaseStatus::Shipped).unwrap_err();
        assert!(err.to_string().contains("order_id"), "{err}");
    }

    #[test]
    fn totals_average_the_stars_and_fill_every_histogram_slot() {
        let totals = RatingTotals::from_counts(&[(5, 2), (2, 1)]);
        assert_eq!(totals.count, 3);
        assert_eq!(totals.histogram, [0, 1, 0, 0, 2]);
        assert!((totals.average - 4.0).abs() < f64::EPSILON);
        let summary = totals.to_proto("p");
        assert_eq!(summary.histogram.len(), 5);
        assert_eq!(
            summary
                .histogram
                .iter()
                .map(|h| (h.rating, h.count))
                .collect::<Vec<_>>(),
            vec![(1, 0), (2, 1), (3, 0), (4, 0), (5, 2)]
        );
    }

    #[test]
    fn no_reviews_average_zero() {
        let totals = RatingTotals::from_counts(&[]);
        assert_eq!(totals.count, 0);
        assert!(totals.average.abs() < f64::EPSILON);
        assert_eq!(totals.to_proto("p").histogram.len(), 5);
    }

    #[test]
    fn an_uneven_mean_is_not_rounded_away() {
        let totals = RatingTotals::from_counts(&[(4, 2), (5, 1)]);
        assert!((totals.average - 13.0 / 3.0).abs() < 1e-12);
    }
}
