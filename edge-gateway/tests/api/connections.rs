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

#[tokio::test]
async fn a_connection_past_its_maximum_age_is_sent_away_after_its_requests() {
    let identity = TestIdentity::start().await;
    let gw = gateway(
        &identity.url(),
        &[],
        &[
            ("MERCATO_MAX_CONNECTION_AGE_SECS", "1"),
            ("MERCATO_MAX_CONNECTION_AGE_GRACE_SECS", "1"),
        ],
    )
    .await;
    // HTTP/2: served until its age, then GOAWAY and closed, so a client that balances per
    // connection opens a new one (to whichever replica the load balancer picks).
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let opened = std::time::Instant::now();
    let driven = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::get(format!("http://{}/healthz", gw.addr))
        .body(())
        .unwrap();
    let (answer, _) = client.send_request(request, true).unwrap();
    assert_eq!(answer.await.unwrap().status(), 200, "served while young");
    tokio::time::timeout(Duration::from_secs(10), driven)
        .await
        .expect("closed within age + grace")
        .unwrap()
        .ok();
    assert!(
        opened.elapsed() >= Duration::from_millis(800),
        "not before its age"
    );

    // HTTP/1.1 keep-alive: closed once past its age too.
    let mut kept = TcpStream::connect(gw.addr).await.unwrap();
    assert!(healthz(&mut kept).await);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(!healthz(&mut kept).await, "closed past its age");
}
