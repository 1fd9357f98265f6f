//! The gRPC surface of the statistics (admins only; the kernel enforces the policy).

use mercato::pb::statistics::v1 as pb;
use mercato::pb::statistics::v1::statistics_service_server::StatisticsService;
use mercato_kernel::db::{DbConn, DbPool};
use mercato_kernel::error::{self, FieldViolations};
use mercato_kernel::money::Amount;
use mercato_kernel::time::to_timestamp;
use tonic::{Request, Response, Status};

use crate::domain::{Bucket, ReportQuery, TopQuery};
use crate::store;

/// The statistics' gRPC service.
#[derive(Clone)]
pub struct StatisticsApi {
    db: DbPool,
    currency: String,
}

impl StatisticsApi {
    /// Reports over `db`, in the shop's `currency`.
    pub fn new(db: DbPool, currency: String) -> Self {
        Self { db, currency }
    }

    async fn conn(&self) -> Result<DbConn, Status> {
        self.db.get().await.map_err(error::pool)
    }

    fn money(&self, nanos: i128) -> mercato::pb::r#type::v1::Money {
        Amount::from_total_nanos(&self.currency, nanos).to_proto()
    }

    fn bucket_message(&self, bucket: &Bucket) -> pb::SalesBucket {
        pb::SalesBucket {
            start_time: Some(to_timestamp(bucket.start)),
            end_time: Some(to_timestamp(bucket.end)),
            order_count: bucket.orders,
            units_sold: bucket.units,
            revenue: Some(self.money(bucket.revenue_nanos)),
            average_order_value: Some(self.money(bucket.average_nanos())),
        }
    }
}

#[tonic::async_trait]
impl StatisticsService for StatisticsApi {
    async fn get_sales_report(
        &self,
        request: Request<pb::GetSalesReportRequest>,
    ) -> Result<Response<pb::GetSalesReportResponse>, Status> {
        let query = ReportQuery::parse(request.get_ref()).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let hours = store::hourly_sales(&mut conn, &self.currency, query.start, query.end)
            .await
            .map_err(error::database)?;
        let (buckets, total) = crate::domain::report(&query, &hours);
        Ok(Response::new(pb::GetSalesReportResponse {
            buckets: buckets.iter().map(|b| self.bucket_message(b)).collect(),
            total: Some(self.bucket_message(&total)),
        }))
    }

    async fn get_top_products(
        &self,
        request: Request<pb::GetTopProductsRequest>,
    ) -> Result<Response<pb::GetTopProductsResponse>, Status> {
        let query = TopQuery::parse(request.get_ref()).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let rows = store::top_products(
            &mut conn,
            &self.currency,
            query.start,
            query.end,
            query.limit,
            query.ranking,
        )
        .await
        .map_err(error::database)?;
        let mut products = Vec::with_capacity(rows.len());
        for row in rows {
            let revenue: i128 = row.revenue_nanos.parse().map_err(|e| {
                error::internal(format!(
                    "revenue {:?} of {}: {e}",
                    row.revenue_nanos, row.product_id
                ))
            })?;
            products.push(pb::ProductSales {
                product_id: row.product_id,
                name: row.name,
                units_sold: row.units_sold,
                revenue: Some(self.money(revenue)),
                order_count: row.order_count,
            });
        }
        Ok(Response::new(pb::GetTopProductsResponse { products }))
    }
}
