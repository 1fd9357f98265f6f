//! Who may ask, and what a bad request gets back.

use mercato::pb::statistics::v1::{GetSalesReportRequest, GetTopProductsRequest, Granularity};
use mercato_testkit::authed;
use tonic::Code;

use crate::{TestStats, assert_code, ts, violated_fields};

#[tokio::test]
async fn customers_and_anonymous_callers_are_turned_away() {
    let stats = TestStats::start().await;
    let (_, customer) = stats.identity.customer().await;
    let report = GetSalesReportRequest {
        start_time: Some(ts("2030-03-04T00:00:00Z")),
        end_time: Some(ts("2030-03-05T00:00:00Z")),
        granularity: 0,
    };
    let top = GetTopProductsRequest {
        start_time: Some(ts("2030-03-04T00:00:00Z")),
        end_time: Some(ts("2030-03-05T00:00:00Z")),
        ..Default::default()
    };
    let mut client = stats.client().await;
    assert_code(
        client.get_sales_report(authed(report, &customer)).await,
        Code::PermissionDenied,
    );
    assert_code(
        client.get_top_products(authed(top, &customer)).await,
        Code::PermissionDenied,
    );
    assert_code(
        client.get_sales_report(tonic::Request::new(report)).await,
        Code::Unauthenticated,
    );
    assert_code(
        client.get_top_products(authed(top, &stats.service)).await,
        Code::PermissionDenied,
    );
}

#[tokio::test]
async fn invalid_report_requests_name_every_bad_field() {
    let stats = TestStats::start().await;
    let mut client = stats.client().await;
    let call = |request: GetSalesReportRequest| {
        let mut client = client.clone();
        let admin = stats.admin.clone();
        async move { client.get_sales_report(authed(request, &admin)).await }
    };

    let status = assert_code(
        call(GetSalesReportRequest {
            start_time: None,
            end_time: None,
            granularity: 42,
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        ["granularity", "start_time", "end_time"]
    );

    let status = assert_code(
        call(GetSalesReportRequest {
            start_time: Some(ts("2030-03-05T00:00:00Z")),
            end_time: Some(ts("2030-03-05T00:00:00Z")),
            granularity: 0,
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["end_time"]);

    let status = assert_code(
        stats
            .try_report(
                "2030-01-01T00:00:00Z",
                "2030-02-01T00:00:01Z",
                Granularity::Hour,
            )
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["end_time"]);
    // The same range by day is fine.
    stats
        .report(
            "2030-01-01T00:00:00Z",
            "2030-02-01T00:00:01Z",
            Granularity::Day,
        )
        .await;

    let status = assert_code(
        client
            .get_sales_report(authed(
                GetSalesReportRequest {
                    start_time: Some(prost_types::Timestamp {
                        seconds: i64::MAX,
                        nanos: 0,
                    }),
                    end_time: Some(ts("2030-02-01T00:00:00Z")),
                    granularity: 1,
                },
                &stats.admin,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["start_time"]);
}

#[tokio::test]
async fn invalid_top_product_requests_name_every_bad_field() {
    let stats = TestStats::start().await;
    let mut client = stats.client().await;
    let status = assert_code(
        client
            .get_top_products(authed(
                GetTopProductsRequest {
                    start_time: Some(ts("2030-03-04T00:00:00Z")),
                    end_time: None,
                    limit: 101,
                    order_by: 9,
                },
                &stats.admin,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["end_time", "limit", "order_by"]);

    let status = assert_code(
        client
            .get_top_products(authed(
                GetTopProductsRequest {
                    start_time: Some(ts("2030-03-04T00:00:00Z")),
                    end_time: Some(ts("2030-03-03T00:00:00Z")),
                    limit: -1,
                    order_by: 0,
                },
                &stats.admin,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["end_time", "limit"]);
}
