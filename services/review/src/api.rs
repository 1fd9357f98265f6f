//! The gRPC surface of review: proto <-> domain mapping, validation and authorization.

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection as _;
use mercato::pb::review::v1 as pb;
use mercato::pb::review::v1::review_service_server::ReviewService;
use mercato_kernel::auth::{Principal, PrincipalKind};
use mercato_kernel::db::{DbConn, DbPool};
use mercato_kernel::error::{self, FieldViolations};
use mercato_kernel::pagination;
use mercato_kernel::time::to_timestamp;
use mercato_kernel::validate;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{NewReview, RatingTotals};
use crate::store::{self, Deleted, InsertError, ReviewRow};

/// `ErrorInfo.reason` when the caller has no confirmed order of the product.
pub const NOT_A_VERIFIED_BUYER: &str = "NOT_A_VERIFIED_BUYER";
/// `ErrorInfo.reason` when the caller has already reviewed the product.
pub const ALREADY_REVIEWED: &str = "ALREADY_REVIEWED";
/// `ErrorInfo.reason` when someone other than the author (or an admin) deletes a review.
pub const NOT_THE_AUTHOR: &str = "NOT_THE_AUTHOR";

/// The review service.
#[derive(Clone)]
pub struct ReviewApi {
    db: DbPool,
}

fn review_message(row: ReviewRow) -> pb::Review {
    pb::Review {
        id: row.id.to_string(),
        product_id: row.product_id.to_string(),
        user_id: row.user_id.to_string(),
        author_name: row.author_name,
        rating: row.rating,
        title: row.title,
        body: row.body,
        create_time: Some(to_timestamp(row.created_at)),
    }
}

/// The caller as a user who can write reviews: service accounts buy nothing.
fn reviewer(principal: &Principal) -> Result<Uuid, Status> {
    let not_a_buyer = || {
        error::permission_denied(
            NOT_A_VERIFIED_BUYER,
            "only customers with a confirmed order of the product can review it",
        )
    };
    if principal.kind != PrincipalKind::User {
        return Err(not_a_buyer());
    }
    Uuid::parse_str(&principal.subject).map_err(|_| not_a_buyer())
}

/// Position in a product's reviews: the last row's (created_at in µs, id).
type Cursor = (i64, Uuid);

impl ReviewApi {
    /// Reviews stored in `db`.
    pub fn new(db: DbPool) -> Self {
        Self { db }
    }

    async fn conn(&self) -> Result<DbConn, Status> {
        self.db.get().await.map_err(error::pool)
    }
}

#[tonic::async_trait]
impl ReviewService for ReviewApi {
    async fn create_review(
        &self,
        request: Request<pb::CreateReviewRequest>,
    ) -> Result<Response<pb::CreateReviewResponse>, Status> {
        let user_id = reviewer(Principal::of(&request)?)?;
        let review = NewReview::parse(request.get_ref()).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let row = conn
            .transaction::<_, CreateError, _>(async |conn| {
                if !store::is_verified_buyer(conn, user_id, review.product_id).await? {
                    return Err(CreateError::NotABuyer);
                }
                let name = store::author_name(conn, user_id).await?;
                Ok(store::insert_review(conn, user_id, &name, &review).await?)
            })
            .await
            .map_err(|err| match err {
                CreateError::NotABuyer => error::permission_denied(
                    NOT_A_VERIFIED_BUYER,
                    "only customers with a confirmed order of this product can review it",
                ),
                CreateError::Insert(InsertError::Duplicate) => error::already_exists(
                    ALREADY_REVIEWED,
                    "you have already reviewed this product",
                ),
                CreateError::Insert(InsertError::Db(err)) => error::database(err),
            })?;
        tracing::info!(review_id = %row.id, product_id = %row.product_id, "review created");
        Ok(Response::new(pb::CreateReviewResponse {
            review: Some(review_message(row)),
        }))
    }

    async fn list_reviews(
        &self,
        request: Request<pb::ListReviewsRequest>,
    ) -> Result<Response<pb::ListReviewsResponse>, Status> {
        let req = request.into_inner();
        let mut v = FieldViolations::new();
        let product_id = validate::uuid(&mut v, "product_id", &req.product_id);
        let limit = pagination::page_size_or_violation(req.page_size, &mut v);
        let (Some(product_id), Some(limit)) = (product_id, limit) else {
            return Err(v.into_status());
        };
        let fingerprint = pagination::fingerprint(&[&req.product_id]);
        let after = match pagination::decode::<Cursor>(&req.page_token, fingerprint)? {
            None => None,
            Some((micros, id)) => Some((
                DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| {
                    error::invalid_argument("page_token", "malformed or expired page token")
                })?,
                id,
            )),
        };
        let mut conn = self.conn().await?;
        // One extra row tells whether another page exists.
        let mut rows = store::list_reviews(&mut conn, product_id, after, limit + 1)
            .await
            .map_err(error::database)?;
        let next_page_token = pagination::trim_page(&mut rows, limit)
            .map(|last| {
                pagination::encode(fingerprint, &(last.created_at.timestamp_micros(), last.id))
            })
            .unwrap_or_default();
        Ok(Response::new(pb::ListReviewsResponse {
            reviews: rows.into_iter().map(review_message).collect(),
            next_page_token,
        }))
    }

    async fn get_rating_summary(
        &self,
        request: Request<pb::GetRatingSummaryRequest>,
    ) -> Result<Response<pb::GetRatingSummaryResponse>, Status> {
        let raw = request.into_inner().product_id;
        let product_id =
            validate::parse_uuid("product_id", &raw).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let counts = store::rating_counts(&mut conn, product_id)
            .await
            .map_err(error::database)?;
        Ok(Response::new(pb::GetRatingSummaryResponse {
            summary: Some(RatingTotals::from_counts(&counts).to_proto(&product_id.to_string())),
        }))
    }

    async fn delete_review(
        &self,
        request: Request<pb::DeleteReviewRequest>,
    ) -> Result<Response<()>, Status> {
        let principal = Principal::of(&request)?;
        let raw = &request.get_ref().id;
        let id = validate::parse_uuid("id", raw).map_err(FieldViolations::into_status)?;
        // An administrator deletes any review; anyone else only their own. A subject that is
        // not a user id cannot have written a review, so it matches none.
        let by = if principal.is_admin() {
            None
        } else {
            Some(Uuid::parse_str(&principal.subject).unwrap_or(Uuid::nil()))
        };
        let mut conn = self.conn().await?;
        match store::delete_review(&mut conn, id, by)
            .await
            .map_err(error::database)?
        {
            Deleted::Yes => {
                tracing::info!(review_id = %id, by = %principal.subject, "review deleted");
                Ok(Response::new(()))
            }
            Deleted::NotFound => Err(error::not_found("review", raw)),
            // Reviews are public, so saying this one exists reveals nothing.
            Deleted::NotYours => Err(error::permission_denied(
                NOT_THE_AUTHOR,
                "only its author or an administrator can delete a review",
            )),
        }
    }
}

/// Why a CreateReview transaction stopped.
#[derive(Debug, thiserror::Error)]
enum CreateError {
    #[error("not a verified buyer")]
    NotABuyer,
    #[error(transparent)]
    Insert(#[from] InsertError),
}

impl From<diesel::result::Error> for CreateError {
    fn from(err: diesel::result::Error) -> Self {
        CreateError::Insert(InsertError::Db(err))
    }
}
