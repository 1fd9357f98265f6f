//! The admin HTTP port: Prometheus `/metrics`, `/livez` (the process answers) and `/readyz`
//! (every critical dependency is up and the service is not draining).

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::health::Health;
use crate::shutdown::ShutdownSignal;

/// Binds the admin port and serves it until shutdown; returns the bound address.
pub async fn spawn(
    addr: SocketAddr,
    health: Health,
    shutdown: ShutdownSignal,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.requested())
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "admin server failed");
        }
    });
    Ok(bound)
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::metrics::prometheus().render(),
    )
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    let report = health.report().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}
