//! Catalog rules: what a valid product and category are, and which fields an update may
//! touch. Requests are parsed here once; everything past this module holds valid values.

use mercato::pb::catalog::v1 as pb;
use mercato_kernel::error::FieldViolations;
use mercato_kernel::money::Amount;
use mercato_kernel::validate::{self, Text};
use uuid::Uuid;

/// Longest product name, in characters.
pub const MAX_PRODUCT_NAME_CHARS: usize = 200;
/// Longest product description, in characters.
pub const MAX_PRODUCT_DESCRIPTION_CHARS: usize = 5000;
/// Longest category name, in characters.
pub const MAX_CATEGORY_NAME_CHARS: usize = 100;
/// Longest category description, in characters.
pub const MAX_CATEGORY_DESCRIPTION_CHARS: usize = 1000;

/// The product fields a client may set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFields {
    /// Unique stock keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Long description.
    pub description: String,
    /// Category, if any.
    pub category_id: Option<Uuid>,
    /// Unit price, > 0.
    pub price: Amount,
    /// Picture URL or empty.
    pub image_url: String,
}

/// Field paths `UpdateProduct` accepts in its mask.
pub const MUTABLE_FIELDS: [&str; 6] = [
    "sku",
    "name",
    "description",
    "category_id",
    "price",
    "image_url",
];

fn check_sku(v: &mut FieldViolations, field: &str, sku: &str) {
    if sku.is_empty()
        || sku.len() > 64
        || !sku
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        v.add(field, "must be 1 to 64 of A-Z, 0-9, '-' and '_'");
    }
}

fn check_url(v: &mut FieldViolations, field: &str, url: &str) {
    if url.is_empty() {
        return;
    }
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok || url.len() > 2048 || url.chars().any(char::is_whitespace) {
        v.add(
            field,
            "must be an absolute http(s) URL of at most 2048 characters",
        );
    }
}

/// Parses a required id.
pub fn parse_id(field: &str, raw: &str) -> Result<Uuid, tonic::Status> {
    validate::parse_uuid(field, raw).map_err(FieldViolations::into_status)
}

impl ProductFields {
    /// Parses every settable field of `product`; violations are reported under `prefix`
    /// (e.g. `product.`).
    pub fn parse(product: &pb::Product, prefix: &str) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let sku = product.sku.trim().to_owned();
        check_sku(&mut v, &format!("{prefix}sku"), &sku);
        let name = product.name.trim().to_owned();
        validate::text(
            &mut v,
            &format!("{prefix}name"),
            &name,
            Text::one_line(MAX_PRODUCT_NAME_CHARS),
        );
        validate::text(
            &mut v,
            &format!("{prefix}description"),
            &product.description,
            Text::multi_line(MAX_PRODUCT_DESCRIPTION_CHARS),
        );
        let category_id = validate::optional_uuid(
            &mut v,
            &format!("{prefix}category_id"),
            &product.category_id,
        );
        let price = match &product.price {
            None => {
                v.add(format!("{prefix}price"), "is required");
                None
            }
            Some(money) => Amount::parse_positive(money)
                .map_err(|e| v.add(format!("{prefix}price"), e))
                .ok(),
        };
        check_url(&mut v, &format!("{prefix}image_url"), &product.image_url);
        match price {
            Some(price) if v.is_empty() => Ok(Self {
                sku,
                name,
                description: product.description.clone(),
                category_id,
                price,
                image_url: product.image_url.clone(),
            }),
            _ => Err(v),
        }
    }

    /// `self` with the fields named in `mask` taken from `patch` (every mutable field when
    /// `mask` is empty), then validated as a whole.
    pub fn apply(&self, patch: &pb::Product, mask: &[String]) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        for path in mask {
            if !MUTABLE_FIELDS.contains(&path.as_str()) {
                v.add(
                    "update_mask",
                    format!(
                        "unknown or immutable field {path:?}; mutable: {}",
                        MUTABLE_FIELDS.join(", ")
                    ),
                );
            }
        }
        if !v.is_empty() {
            return Err(v);
        }
        let all = mask.is_empty();
        let takes = |field: &str| all || mask.iter().any(|p| p == field);
        let merged = pb::Product {
            id: String::new(),
            sku: if takes("sku") {
                patch.sku.clone()
            } else {
                self.sku.clone()
            },
            name: if takes("name") {
                patch.name.clone()
            } else {
                self.name.clone()
            },
            description: if takes("description") {
                patch.description.clone()
            } else {
                self.description.clone()
            },
            category_id: if takes("category_id") {
                patch.category_id.clone()
            } else {
                self.category_id.map(|c| c.to_string()).unwrap_or_default()
            },
            price: if takes("price") {
                patch.price.clone()
            } else {
                Some(self.price.to_proto())
            },
            image_url: if takes("image_url") {
                patch.image_url.clone()
            } else {
                self.image_url.clone()
            },
            create_time: None,
            update_time: None,
        };
        Self::parse(&merged, "product.")
    }

    /// Names of the fields that differ from `other`.
    pub fn changed_fields(&self, other: &Self) -> Vec<String> {
        let mut changed = Vec::new();
        let mut check = |name: &str, differs: bool| {
            if differs {
                changed.push(name.to_owned());
            }
        };
        check("sku", self.sku != other.sku);
        check("name", self.name != other.name);
        check("description", self.description != other.description);
        check("category_id", self.category_id != other.category_id);
        check("price", self.price != other.price);
        check("image_url", self.image_url != other.image_url);
        changed
    }
}

/// A validated new category.
#[derive(Debug, Clone)]
pub struct CategoryFields {
    /// One line of 1 to [`MAX_CATEGORY_NAME_CHARS`] characters, unique.
    pub name: String,
    /// Up to [`MAX_CATEGORY_DESCRIPTION_CHARS`] characters.
    pub description: String,
}

impl CategoryFields {
    /// Parses a category; violations under `category.`.
    pub fn parse(category: &pb::Category) -> Result<Self, FieldViolations> {
        let mut v = FieldViolations::new();
        let name = category.name.trim().to_owned();
        validate::text(
            &mut v,
            "category.name",
            &name,
            Text::one_line(MAX_CATEGORY_NAME_CHARS),
        );
        validate::text(
            &mut v,
            "category.description",
            &category.description,
            Text::multi_line(MAX_CATEGORY_DESCRIPTION_CHARS),
        );
        if v.is_empty() {
            Ok(Self {
                name,
                description: category.description.clone(),
            })
        } else {
            Err(v)
        }
    }
}

/// Longest name search, in characters.
pub const MAX_QUERY_CHARS: usize = 100;

/// Validates a name search: trimmed, at most [`MAX_QUERY_CHARS`] characters on one line
/// (the kernel's text rule, as for every other text field); empty searches everything.
pub fn parse_query(v: &mut FieldViolations, raw: &str) -> Option<String> {
    let query = raw.trim();
    validate::text(
        v,
        "query",
        query,
        Text::one_line(MAX_QUERY_CHARS).optional(),
    )
    .then(|| query.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_trimmed_bounded_and_on_one_line() {
        let mut v = FieldViolations::new();
        assert_eq!(parse_query(&mut v, "  lamp ").unwrap(), "lamp");
        assert_eq!(parse_query(&mut v, "").unwrap(), "");
        assert!(parse_query(&mut v, &"é".repeat(MAX_QUERY_CHARS)).is_some());
        assert!(v.is_empty());
        for bad in [
            "x".repeat(MAX_QUERY_CHARS + 1),
            "la\u{7}mp".into(),
            "la\nmp".into(),
        ] {
            let mut v = FieldViolations::new();
            assert!(parse_query(&mut v, &bad).is_none(), "{bad:?}");
            let status = v.into_status();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad:?}");
            assert!(status.message().starts_with("invalid query: "), "{bad:?}");
        }
    }
    use mercato::pb::r#type::v1::Money;

    fn product() -> pb::Product {
        pb::Product {
            sku: "MUG-001".into(),
            name: "Mug".into(),
            price: Some(Money {
                currency_code: "EUR".into(),
                units: 9,
                nanos: 900_000_000,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_product_parses() {
        let fields = ProductFields::parse(&product(), "product.").unwrap();
        assert_eq!(fields.price.to_proto().units, 9);
        assert_eq!(fields.category_id, None);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let mut p = product();
        p.sku = "mug 1".into();
        p.name = String::new();
        p.price = Some(Money {
            currency_code: "EUR".into(),
            units: -1,
            nanos: 0,
        });
        p.category_id = "nope".into();
        p.image_url = "ftp://x".into();
        p.description = "x".repeat(5001);
        let status = ProductFields::parse(&p, "product.")
            .unwrap_err()
            .into_status();
        for field in [
            "product.sku",
            "product.name",
            "product.price",
            "product.category_id",
            "product.image_url",
            "product.description",
        ] {
            assert!(
                status.message().contains(field),
                "{field} missing in {}",
                status.message()
            );
        }
    }

    #[test]
    fn a_missing_price_is_reported() {
        let mut p = product();
        p.price = None;
        assert!(ProductFields::parse(&p, "product.").is_err());
    }

    #[test]
    fn updates_touch_only_masked_fields() {
        let current = ProductFields::parse(&product(), "product.").unwrap();
        let patch = pb::Product {
            name: "Big mug".into(),
            ..Default::default()
        };
        let updated = current.apply(&patch, &["name".into()]).unwrap();
        assert_eq!(updated.name, "Big mug");
        assert_eq!(updated.sku, "MUG-001");
        assert_eq!(updated.changed_fields(&current), vec!["name"]);
    }

    #[test]
    fn an_unknown_mask_path_is_rejected() {
        let current = ProductFields::parse(&product(), "product.").unwrap();
        let err = current
            .apply(&product(), &["id".into()])
            .unwrap_err()
            .into_status();
        assert!(err.message().contains("update_mask"));
    }

    #[test]
    fn an_empty_mask_replaces_everything_and_validates() {
        let current = ProductFields::parse(&product(), "product.").unwrap();
        assert!(
            current.apply(&pb::Product::default(), &[]).is_err(),
            "an empty product is not a valid replacement"
        );
    }
}
