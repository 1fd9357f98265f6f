//! Request bodies the caller got wrong (not base64, too large, never finished) are answered
//! by the gateway itself with the caller's error, never reach the upstream, and never open
//! the circuit breaker for everyone else.

use mercato_testkit::TestIdentity;

use crate::helpers::{Http, chunked, expect_status, gateway, raw};
use crate::stubs::CatchAll;

const LIST_CATEGORIES: &str = "/mercato.catalog.v1.CatalogService/ListCategories";

fn grpc_status(answer: &str) -> Option<String> {
    let lower = answer.to_ascii_lowercase();
    let at = lower.find("grpc-status:")? + "grpc-status:".len();
    Some(
        lower[at..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect(),
    )
}

#[tokio::test]
async fn bad_bodies_never_reach_the_upstream_nor_open_its_circuit() {
    let identity = TestIdentity::start().await;
    let (stub, url) = CatchAll::start().await;
    let gw = gateway(
        &identity.url(),
        &[("catalog", url)],
        &[("MERCATO_MAX_REQUEST_BYTES", "1024")],
    )
    .await;

    // Six gRPC-web-text bodies that are not base64: INVALID_ARGUMENT, each.
    for _ in 0..6 {
        let (status, answer) = raw(
            gw.addr,
            &format!(
                "POST {LIST_CATEGORIES} HTTP/1.1\r\ncontent-type: application/grpc-web-text\r\ncontent-length: 3"
            ),
            b"!!!",
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(grpc_status(&answer).as_deref(), Some("3"), "{answer}");
        // grpc-message is percent-encoded.
        assert!(answer.contains("malformed%20request%20body"), "{answer}");
    }
    // Six streamed (chunked, no content-length) gRPC-web bodies over the limit:
    // RESOURCE_EXHAUSTED, each.
    let mut big = vec![0u8, 0, 0, 8, 0];
    big.extend(std::iter::repeat_n(b'x', 2048));
    for _ in 0..6 {
        let (status, answer) = raw(
            gw.addr,
            &format!(
                "POST {LIST_CATEGORIES} HTTP/1.1\r\ncontent-type: application/grpc-web+proto\r\ntransfer-encoding: chunked"
            ),
            &chunked(&big),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(grpc_status(&answer).as_deref(), Some("8"), "{answer}");
    }
    // The same over REST: 413.
    let (status, answer) = raw(
        gw.addr,
        "POST /v1/users HTTP/1.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked",
        &chunked(format!("{{\"displayName\": \"{}\"}}", "x".repeat(2048)).as_bytes()),
    )
    .await;
    assert_eq!(status, 413, "{answer}");

    assert!(stub.seen().is_empty(), "no bad body reached the upstream");
    // The circuit stayed closed: a good call still goes through.
    let good = Http::new(gw.addr)
        .call("GET", "/v1/categories", None, None)
        .await;
    expect_status(&good, 200);
    assert_eq!(stub.seen().len(), 1);
}

#[tokio::test]
async fn a_rest_body_that_never_finishes_is_answered_408() {
    let identity = TestIdentity::start().await;
    let (stub, url) = CatchAll::start().await;
    let gw = gateway(
        &identity.url(),
        &[("catalog", url)],
        &[("MERCATO_BODY_READ_TIMEOUT_MS", "300")],
    )
    .await;
    // A content-length never met: ten bytes of a hundred, then silence.
    let (status, answer) = raw(
        gw.addr,
        "POST /v1/users HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: 100",
        b"{\"email\": \"",
    )
    .await;
    assert_eq!(status, 408, "{answer}");
    // A chunked body that stops after its first chunk.
    let (status, answer) = raw(
        gw.addr,
        &format!(
            "POST {LIST_CATEGORIES} HTTP/1.1\r\ncontent-type: application/grpc-web+proto\r\ntransfer-encoding: chunked"
        ),
        b"2\r\n\x00\x00\r\n",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(grpc_status(&answer).as_deref(), Some("4"), "{answer}");
    assert!(stub.seen().is_empty());
}

#[tokio::test]
async fn broken_grpc_framing_is_invalid_argument_from_the_gateway() {
    let identity = TestIdentity::start().await;
    let (stub, url) = CatchAll::start().await;
    let gw = gateway(&identity.url(), &[("catalog", url)], &[]).await;
    const LIST_PRODUCTS: &str = "/mercato.catalog.v1.CatalogService/ListProducts";
    let broken: [(&str, &[u8]); 4] = [
        (
            "a length prefix longer than the body",
            b"\x00\x00\x00\x00\x64\x08\x01",
        ),
        (
            "compressed without grpc-encoding",
            b"\x01\x00\x00\x00\x02\x08\x01",
        ),
        ("two messages", b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
        ("no message", b""),
    ];
    for _round in 0..3 {
        for (what, body) in broken {
            // gRPC-web, as a browser (or curl) would send it.
            let (status, answer) = raw(
                gw.addr,
                &format!(
                    "POST {LIST_PRODUCTS} HTTP/1.1\r\ncontent-type: application/grpc-web+proto\r\ncontent-length: {}",
                    body.len()
                ),
                body,
            )
            .await;
            assert_eq!(status, 200, "{what}: {answer}");
            assert_eq!(
                grpc_status(&answer).as_deref(),
                Some("3"),
                "{what}: {answer}"
            );
            assert!(
                answer.contains("malformed%20request%20body"),
                "{what}: {answer}"
            );
            // Native gRPC over HTTP/2.
            let native =
                mercato_testkit::raw_grpc(gw.addr, LIST_PRODUCTS, body.to_vec(), None).await;
            assert_eq!(
                native.code(),
                tonic::Code::InvalidArgument,
                "{what}: {native:?}"
            );
            assert!(
                native.message().starts_with("malformed request body"),
                "{what}: {native:?}"
            );
        }
    }
    assert!(stub.seen().is_empty(), "nothing broken was forwarded");
    // Twenty-four broken bodies later the circuit is closed.
    let good = mercato_testkit::raw_grpc(
        gw.addr,
        LIST_PRODUCTS,
        mercato_testkit::grpc_frame(b""),
        None,
    )
    .await;
    assert_eq!(good.code(), tonic::Code::Ok, "{good:?}");
}

#[tokio::test]
async fn an_upstreams_own_decode_error_passes_through_unchanged() {
    let identity = TestIdentity::start().await;
    let gw = gateway(&identity.url(), &[], &[]).await;
    // Well framed, but field 1 (a string) announces five bytes and has one: the service's
    // own decoding refuses it, and its answer reaches the caller as it was given.
    let status = mercato_testkit::raw_grpc(
        gw.addr,
        "/mercato.identity.v1.IdentityService/IssueToken",
        mercato_testkit::grpc_frame(b"\x0a\x05\x01"),
        None,
    )
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("malformed request body"),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_nul_in_rest_json_is_a_400_naming_the_field_not_a_500() {
    let identity = TestIdentity::start().await;
    let gw = gateway(&identity.url(), &[], &[]).await;
    let http = Http::new(gw.addr);
    let login = serde_json::json!({
        "password": {"email": "ann\u{0}@example.com", "password": "correct-horse-battery"}
    });
    let reply = http.call("POST", "/v1/auth/token", None, Some(login)).await;
    expect_status(&reply, 400);
    let body = reply.json();
    assert_eq!(body["code"], 3, "{body}");
    assert_eq!(
        body["message"],
        "invalid password.email: must not contain NUL characters"
    );
    let violation = &body["details"][0]["fieldViolations"][0];
    assert_eq!(violation["field"], "password.email", "{body}");
}
