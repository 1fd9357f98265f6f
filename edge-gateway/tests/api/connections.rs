//! One client address cannot hold more than `MERCATO_MAX_CONNECTIONS_PER_IP` connections:
//! further ones are closed at once, and places come back as connections close.

use std::time::Duration;

use mercato_testkit::TestIdentity;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::gateway;

/// Sends `GET /healthz` on `stream` (kept alive); whether "ok" came back before the gateway
/// closed it.
async fn healthz(stream: &mut TcpStream) -> bool {
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.ends_with(b"ok\n") {
                return true;
            }
        }
    })
    .await;
    read.unwrap_or(false)
}

#[tokio::test]
async fn a_client_cannot_hold_more_connections_than_its_bound() {
    let identity = TestIdentity::start().await;
    let gw = gateway(
        &identity.url(),
        &[],
        &[("MERCATO_MAX_CONNECTIONS_PER_IP", "2")],
    )
    .await;
    let mut first = TcpStream::connect(gw.addr).await.unwrap();
    let mut second = TcpStream::connect(gw.addr).await.unwrap();
    assert!(healthz(&mut first).await);
    assert!(healthz(&mut second).await);

    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    assert!(!healthz(&mut third).await, "a third connection is closed");
    // The held ones still work.
    assert!(healthz(&mut first).await);

    // A closed connection gives its place back.
    drop(second);
    let mut admitted = false;
    for _ in 0..50 {
        let mut again = TcpStream::connect(gw.addr).await.unwrap();
        if healthz(&mut again).await {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "no place after a connection closed");
}
