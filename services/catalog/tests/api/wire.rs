//! What a broken or hostile client sends on the wire is answered as the caller's mistake.

use mercato::pb::catalog::v1::ListProductsRequest;
use mercato_testkit::{grpc_frame, raw_grpc};
use prost::Message as _;
use tonic::Code;

use crate::{TestCatalog, assert_code, violated_fields};

const LIST: &str = "/mercato.catalog.v1.CatalogService/ListProducts";

#[tokio::test]
async fn a_nul_in_the_search_query_is_a_field_violation_not_a_database_error() {
    let catalog = TestCatalog::start().await;
    let status = assert_code(
        catalog
            .client()
            .await
            .list_products(ListProductsRequest {
                query: "a\0b".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["query"]);
    assert_eq!(
        status.message(),
        "invalid query: must not contain NUL characters"
    );
}

#[tokio::test]
async fn corrupt_protobuf_and_bad_framing_are_invalid_argument() {
    let catalog = TestCatalog::start().await;
    let addr = catalog.running.grpc_addr;
    let valid = ListProductsRequest {
        query: "mug".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad varint", grpc_frame(&[0x08, 0xff, 0xff])),
        ("truncated field", grpc_frame(&[0x22, 10, b'm'])),
        (
            "length prefix beyond the body",
            b"\x00\x00\x00\x00\x64\x08\x01".to_vec(),
        ),
        ("compressed flag without grpc-encoding", {
            let mut frame = grpc_frame(&valid);
            frame[0] = 1;
            frame
        }),
        ("not UTF-8", grpc_frame(&[0x22, 2, 0xc3, 0x28])),
    ];
    for (case, body) in cases {
        let status = raw_grpc(addr, LIST, body, None).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        assert!(
            status.message().starts_with("malformed request body") || case == "not UTF-8",
            "{case}: {status:?}"
        );
    }
    // The same path still answers a well-formed request on the same server.
    let ok = raw_grpc(addr, LIST, grpc_frame(&valid), None).await;
    assert_eq!(ok.code(), Code::Ok, "{ok:?}");
}

#[tokio::test]
async fn a_message_over_the_configured_limit_is_resource_exhausted() {
    let catalog = TestCatalog::start_with(&[("MERCATO_MAX_MESSAGE_BYTES", "1024")]).await;
    let big = ListProductsRequest {
        query: "m".repeat(2000),
        ..Default::default()
    }
    .encode_to_vec();
    let status = raw_grpc(catalog.running.grpc_addr, LIST, grpc_frame(&big), None).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

#[tokio::test]
async fn a_connection_past_its_maximum_age_is_sent_away() {
    let catalog = TestCatalog::start_with(&[
        ("MERCATO_MAX_CONNECTION_AGE_SECS", "1"),
        ("MERCATO_MAX_CONNECTION_AGE_GRACE_SECS", "1"),
    ])
    .await;
    let tcp = tokio::net::TcpStream::connect(catalog.running.grpc_addr)
        .await
        .unwrap();
    let (_client, connection) = h2::client::handshake(tcp).await.unwrap();
    let opened = std::time::Instant::now();
    // The connection future ends when the server closes the connection (GOAWAY first).
    tokio::time::timeout(std::time::Duration::from_secs(10), connection)
        .await
        .expect("closed within age + grace")
        .ok();
    assert!(opened.elapsed() >= std::time::Duration::from_millis(800));
}
