//! Catalog's queries, each on the caller's connection (and transaction).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::{CategoryFields, ProductFields};
use crate::schema::{categories, products};

/// A stored product.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = products)]
pub struct ProductRow {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category_id: Option<Uuid>,
    pub price_currency: String,
    pub price_units: i64,
    pub price_nanos: i32,
    pub image_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ProductRow {
    /// The settable fields as stored.
    pub fn fields(&self) -> ProductFields {
        ProductFields {
            sku: self.sku.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            category_id: self.category_id,
            price: mercato_kernel::money::Amount::from_parts(
                &self.price_currency,
                self.price_units,
                self.price_nanos,
            ),
            image_url: self.image_url.clone(),
        }
    }
}

/// A stored category.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = categories)]
pub struct CategoryRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

/// A write that broke a uniqueness or reference rule.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The SKU (or category name) is taken.
    #[error("duplicate")]
    Duplicate,
    /// The category does not exist.
    #[error("unknown category")]
    UnknownCategory,
    /// Anything else.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

fn classify(err: diesel::result::Error) -> WriteError {
    use diesel::result::{DatabaseErrorKind, Error};
    match err {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => WriteError::Duplicate,
        Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            WriteError::UnknownCategory
        }
        other => WriteError::Db(other),
    }
}

/// Inserts a product.
pub async fn insert_product(
    conn: &mut AsyncPgConnection,
    fields: &ProductFields,
) -> Result<ProductRow, WriteError> {
    diesel::insert_into(products::table)
        .values((
            products::id.eq(Uuid::now_v7()),
            products::sku.eq(&fields.sku),
            products::name.eq(&fields.name),
            products::description.eq(&fields.description),
            products::category_id.eq(fields.category_id),
            products::price_currency.eq(fields.price.currency()),
            products::price_units.eq(fields.price.units()),
            products::price_nanos.eq(fields.price.nanos()),
            products::image_url.eq(&fields.image_url),
        ))
        .returning(ProductRow::as_returning())
        .get_result(conn)
        .await
        .map_err(classify)
}

/// The product with `id`, locked for update when `lock`.
pub async fn product(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    lock: bool,
) -> QueryResult<Option<ProductRow>> {
    let query = products::table.find(id).select(ProductRow::as_select());
    if lock {
        query.for_update().first(conn).await.optional()
    } else {
        query.first(conn).await.optional()
    }
}

/// Replaces a product's settable fields.
pub async fn update_product(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    fields: &ProductFields,
) -> Result<ProductRow, WriteError> {
    diesel::update(products::table.find(id))
        .set((
            products::sku.eq(&fields.sku),
            products::name.eq(&fields.name),
            products::description.eq(&fields.description),
            products::category_id.eq(fields.category_id),
            products::price_currency.eq(fields.price.currency()),
            products::price_units.eq(fields.price.units()),
            products::price_nanos.eq(fields.price.nanos()),
            products::image_url.eq(&fields.image_url),
            products::updated_at.eq(diesel::dsl::now),
        ))
        .returning(ProductRow::as_returning())
        .get_result(conn)
        .await
        .map_err(classify)
}

/// Deletes a product; false when there was none.
pub async fn delete_product(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    diesel::delete(products::table.find(id))
        .execute(conn)
        .await
        .map(|n| n > 0)
}

/// Products by id, in no particular order.
pub async fn products_by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<ProductRow>> {
    products::table
        .filter(products::id.eq_any(ids))
        .select(ProductRow::as_select())
        .load(conn)
        .await
}

/// Filters and position of a product listing.
#[derive(Debug, Default)]
pub struct ProductQuery<'a> {
    /// Only this category.
    pub category_id: Option<Uuid>,
    /// Case-insensitive name substring.
    pub name_contains: &'a str,
    /// Start after this (name, id).
    pub after: Option<(String, Uuid)>,
    /// Page size.
    pub limit: i64,
}

/// Escapes LIKE wildcards so user input matches literally.
fn like_pattern(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    escaped.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// One page of products ordered by (name, id).
pub async fn list_products(
    conn: &mut AsyncPgConnection,
    q: &ProductQuery<'_>,
) -> QueryResult<Vec<ProductRow>> {
    let mut query = products::table.select(ProductRow::as_select()).into_boxed();
    if let Some(category) = q.category_id {
        query = query.filter(products::category_id.eq(category));
    }
    if !q.name_contains.is_empty() {
        query = query.filter(products::name.ilike(like_pattern(q.name_contains)));
    }
    if let Some((name, id)) = &q.after {
        query = query.filter(
            products::name
                .gt(name.clone())
                .or(products::name.eq(name.clone()).and(products::id.gt(*id))),
        );
    }
    query
        .order((products::name.asc(), products::id.asc()))
        .limit(q.limit)
        .load(conn)
        .await
}

/// Inserts a category.
pub async fn insert_category(
    conn: &mut AsyncPgConnection,
    fields: &CategoryFields,
) -> Result<CategoryRow, WriteError> {
    diesel::insert_into(categories::table)
        .values((
            categories::id.eq(Uuid::now_v7()),
            categories::name.eq(&fields.name),
            categories::description.eq(&fields.description),
        ))
        .returning(CategoryRow::as_returning())
        .get_result(conn)
        .await
        .map_err(classify)
}

/// Every category by name.
pub async fn list_categories(conn: &mut AsyncPgConnection) -> QueryResult<Vec<CategoryRow>> {
    categories::table
        .select(CategoryRow::as_select())
        .order(categories::name.asc())
        .load(conn)
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(super::like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
