//! The gRPC surface of the catalog.

use diesel_async::AsyncConnection as _;
use mercato::pb::catalog::v1 as pb;
use mercato::pb::catalog::v1::catalog_service_server::CatalogService;
use mercato_kernel::db::{DbConn, DbPool};
use mercato_kernel::error::{self, FieldViolations};
use mercato_kernel::events::outbox::{self, OutboxNotifier};
use mercato_kernel::pagination;
use mercato_kernel::time::to_timestamp;
use mercato_kernel::validate;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cache::ProductCache;
use crate::domain::{self, CategoryFields, ProductFields};
use crate::store::{self, CategoryRow, ProductQuery, ProductRow, WriteError};

/// Largest `BatchGetProducts` request.
const MAX_BATCH: usize = 100;

/// The catalog's gRPC service.
#[derive(Clone)]
pub struct CatalogApi {
    db: DbPool,
    cache: ProductCache,
    outbox: OutboxNotifier,
}

fn product_message(row: ProductRow) -> pb::Product {
    let price = mercato_kernel::money::Amount::from_parts(
        &row.price_currency,
        row.price_units,
        row.price_nanos,
    );
    pb::Product {
        id: row.id.to_string(),
        sku: row.sku,
        name: row.name,
        description: row.description,
        category_id: row.category_id.map(|c| c.to_string()).unwrap_or_default(),
        price: Some(price.to_proto()),
        image_url: row.image_url,
        create_time: Some(to_timestamp(row.created_at)),
        update_time: Some(to_timestamp(row.updated_at)),
    }
}

fn category_message(row: CategoryRow) -> pb::Category {
    pb::Category {
        id: row.id.to_string(),
        name: row.name,
        description: row.description,
    }
}

/// Maps a failed product write to what the client can fix.
fn write_status(err: WriteError, prefix: &str) -> Status {
    match err {
        WriteError::Duplicate => {
            error::already_exists("SKU_TAKEN", "a product with this SKU already exists")
        }
        WriteError::UnknownCategory => {
            error::invalid_argument(format!("{prefix}category_id"), "no such category")
        }
        WriteError::Db(err) => error::database(err),
    }
}

impl CatalogApi {
    /// A catalog over `db`, caching reads in `cache`.
    pub fn new(db: DbPool, cache: ProductCache, outbox: OutboxNotifier) -> Self {
        Self { db, cache, outbox }
    }

    async fn conn(&self) -> Result<DbConn, Status> {
        self.db.get().await.map_err(error::pool)
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let req = request.into_inner();
        let mut v = FieldViolations::new();
        let limit = pagination::page_size_or_violation(req.page_size, &mut v);
        let category_id = validate::optional_uuid(&mut v, "category_id", &req.category_id);
        let query = domain::parse_query(&mut v, &req.query);
        let (Some(limit), Some(query)) = (limit, query) else {
            return Err(v.into_status());
        };
        v.into_result()?;
        let fingerprint = pagination::fingerprint(&[&req.category_id, &query]);
        let after: Option<(String, Uuid)> = pagination::decode(&req.page_token, fingerprint)?;
        let mut conn = self.conn().await?;
        // One extra row tells whether another page exists.
        let mut rows = store::list_products(
            &mut conn,
            &ProductQuery {
                category_id,
                name_contains: &query,
                after,
                limit: limit + 1,
            },
        )
        .await
        .map_err(error::database)?;
        let next_page_token = pagination::trim_page(&mut rows, limit)
            .map(|last| pagination::encode(fingerprint, &(last.name.clone(), last.id)))
            .unwrap_or_default();
        Ok(Response::new(pb::ListProductsResponse {
            products: rows.into_iter().map(product_message).collect(),
            next_page_token,
        }))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::GetProductResponse>, Status> {
        let id = domain::parse_id("id", &request.get_ref().id)?;
        let key = id.to_string();
        if let Some(product) = self.cache.get(&key).await {
            return Ok(Response::new(pb::GetProductResponse {
                product: Some(product),
            }));
        }
        let mut conn = self.conn().await?;
        let row = store::product(&mut conn, id, false)
            .await
            .map_err(error::database)?;
        let product = product_message(row.ok_or_else(|| error::not_found("product", &key))?);
        self.cache.put(&product.id, &product).await;
        Ok(Response::new(pb::GetProductResponse {
            product: Some(product),
        }))
    }

    async fn batch_get_products(
        &self,
        request: Request<pb::BatchGetProductsRequest>,
    ) -> Result<Response<pb::BatchGetProductsResponse>, Status> {
        let req = request.into_inner();
        let mut v = FieldViolations::new();
        if req.ids.is_empty() || req.ids.len() > MAX_BATCH {
            v.add("ids", format!("must hold 1 to {MAX_BATCH} ids"));
        }
        let mut ids = Vec::with_capacity(req.ids.len());
        for (i, raw) in req.ids.iter().enumerate() {
            ids.extend(validate::uuid(&mut v, &format!("ids[{i}]"), raw));
        }
        v.into_result()?;
        let mut conn = self.conn().await?;
        let rows = store::products_by_ids(&mut conn, &ids)
            .await
            .map_err(error::database)?;
        let mut by_id: std::collections::HashMap<Uuid, ProductRow> =
            rows.into_iter().map(|r| (r.id, r)).collect();
        let mut products = Vec::with_capacity(ids.len());
        let mut missing_ids = Vec::new();
        for (id, raw) in ids.iter().zip(&req.ids) {
            match by_id.remove(id) {
                Some(row) => products.push(product_message(row)),
                None if !products.iter().any(|p: &pb::Product| &p.id == raw) => {
                    missing_ids.push(raw.clone())
                }
                None => {}
            }
        }
        Ok(Response::new(pb::BatchGetProductsResponse {
            products,
            missing_ids,
        }))
    }

    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::CreateProductResponse>, Status> {
        let product = request
            .into_inner()
            .product
            .ok_or_else(|| error::invalid_argument("product", "is required"))?;
        let fields =
            ProductFields::parse(&product, "product.").map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let row = conn
            .transaction::<_, WriteError, _>(async |conn| {
                let row = store::insert_product(conn, &fields).await?;
                let event = pb::ProductCreated {
                    product: Some(product_message(row.clone())),
                };
                outbox::enqueue(conn, "catalog", &row.id.to_string(), &event).await?;
                Ok(row)
            })
            .await
            .map_err(|e| write_status(e, "product."))?;
        self.outbox.notify();
        tracing::info!(product_id = %row.id, sku = %row.sku, "product created");
        Ok(Response::new(pb::CreateProductResponse {
            product: Some(product_message(row)),
        }))
    }

    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::UpdateProductResponse>, Status> {
        let req = request.into_inner();
        let patch = req
            .product
            .ok_or_else(|| error::invalid_argument("product", "is required"))?;
        let id = domain::parse_id("product.id", &patch.id)?;
        let mask = req.update_mask.map(|m| m.paths).unwrap_or_default();
        let mut conn = self.conn().await?;
        let outcome = conn
            .transaction::<_, UpdateError, _>(async |conn| {
                let current = store::product(conn, id, true)
                    .await?
                    .ok_or(UpdateError::NotFound)?;
                let before = current.fields();
                let after = before.apply(&patch, &mask).map_err(UpdateError::Invalid)?;
                let changed = after.changed_fields(&before);
                if changed.is_empty() {
                    return Ok(current);
                }
                let row = store::update_product(conn, id, &after).await?;
                let aggregate = id.to_string();
                let event = pb::ProductUpdated {
                    product: Some(product_message(row.clone())),
                    changed_fields: changed.clone(),
                };
                outbox::enqueue(conn, "catalog", &aggregate, &event).await?;
                if changed.iter().any(|f| f == "price") {
                    let event = pb::PriceChanged {
                        product_id: aggregate.clone(),
                        old_price: Some(before.price.to_proto()),
                        new_price: Some(after.price.to_proto()),
                    };
                    outbox::enqueue(conn, "catalog", &aggregate, &event).await?;
                }
                Ok(row)
            })
            .await;
        let row = match outcome {
            Ok(row) => row,
            Err(UpdateError::NotFound) => return Err(error::not_found("product", &patch.id)),
            Err(UpdateError::Invalid(v)) => return Err(v.into_status()),
            Err(UpdateError::Write(e)) => return Err(write_status(e, "product.")),
        };
        self.cache.invalidate(&row.id.to_string()).await;
        self.outbox.notify();
        Ok(Response::new(pb::UpdateProductResponse {
            product: Some(product_message(row)),
        }))
    }

    async fn delete_product(
        &self,
        request: Request<pb::DeleteProductRequest>,
    ) -> Result<Response<()>, Status> {
        let raw = request.into_inner().id;
        let id = domain::parse_id("id", &raw)?;
        let mut conn = self.conn().await?;
        let deleted = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                if !store::delete_product(conn, id).await? {
                    return Ok(false);
                }
                outbox::enqueue(
                    conn,
                    "catalog",
                    &raw,
                    &pb::ProductDeleted {
                        product_id: raw.clone(),
                    },
                )
                .await?;
                Ok(true)
            })
            .await
            .map_err(error::database)?;
        if !deleted {
            return Err(error::not_found("product", &raw));
        }
        self.cache.invalidate(&raw).await;
        self.outbox.notify();
        Ok(Response::new(()))
    }

    async fn list_categories(
        &self,
        _request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        let mut conn = self.conn().await?;
        let rows = store::list_categories(&mut conn)
            .await
            .map_err(error::database)?;
        Ok(Response::new(pb::ListCategoriesResponse {
            categories: rows.into_iter().map(category_message).collect(),
        }))
    }

    async fn create_category(
        &self,
        request: Request<pb::CreateCategoryRequest>,
    ) -> Result<Response<pb::CreateCategoryResponse>, Status> {
        let category = request
            .into_inner()
            .category
            .ok_or_else(|| error::invalid_argument("category", "is required"))?;
        let fields = CategoryFields::parse(&category).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let row = store::insert_category(&mut conn, &fields)
            .await
            .map_err(|e| match e {
                WriteError::Duplicate => error::already_exists(
                    "CATEGORY_EXISTS",
                    "a category with this name already exists",
                ),
                other => write_status(other, "category."),
            })?;
        Ok(Response::new(pb::CreateCategoryResponse {
            category: Some(category_message(row)),
        }))
    }
}

/// Why an update transaction stopped.
#[derive(Debug, thiserror::Error)]
enum UpdateError {
    #[error("not found")]
    NotFound,
    #[error("invalid")]
    Invalid(FieldViolations),
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl From<diesel::result::Error> for UpdateError {
    fn from(err: diesel::result::Error) -> Self {
        UpdateError::Write(WriteError::Db(err))
    }
}
