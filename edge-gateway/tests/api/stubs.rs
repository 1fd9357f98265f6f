//! Upstreams under the test's control, for what the real services of the test shop cannot
//! show: a catch-all that answers every RPC with an empty message (authorization matrix,
//! forwarded headers, deadlines), and a notification service that streams.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::StreamBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mercato::pb::notification::v1::notification_service_server::{
    NotificationService, NotificationServiceServer,
};
use mercato::pb::notification::v1::{
    ListNotificationsRequest, ListNotificationsResponse, MarkReadRequest, MarkReadResponse,
    Notification, StreamNotificationsRequest, StreamNotificationsResponse,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status};

/// What the catch-all saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
}

/// Answers every gRPC call with one empty message and OK; records each call. A call with
/// `x-stub-delay-ms` is answered that much later.
#[derive(Clone, Default)]
pub struct CatchAll {
    pub calls: Arc<Mutex<Vec<Seen>>>,
}

impl CatchAll {
    pub async fn start() -> (Self, String) {
        let stub = Self::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = stub.calls.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let calls = calls.clone();
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let calls = calls.clone();
                    async move { Ok::<_, Infallible>(answer(&calls, req).await) }
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (stub, format!("http://{addr}"))
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.calls.lock().unwrap().clone()
    }
}

type Frames = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;

async fn answer(calls: &Mutex<Vec<Seen>>, req: Request<Incoming>) -> Response<StreamBody<Frames>> {
    calls.lock().unwrap().push(Seen {
        path: req.uri().path().to_owned(),
        headers: req.headers().clone(),
    });
    if let Some(ms) = req
        .headers()
        .get("x-stub-delay-ms")
        .and_then(|v| v.to_str().ok()?.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let frames: Frames = Box::pin(futures::stream::iter([
        Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
        Ok(Frame::trailers(trailers)),
    ]));
    Response::builder()
        .header("content-type", "application/grpc")
        .body(StreamBody::new(frames))
        .unwrap()
}

/// A notification service that streams `count` notifications, each telling what arrived:
/// title = the authorization header, body = the request id, order_id = any
/// `x-mercato-user` header that got through.
pub struct Notifications {
    pub count: usize,
}

fn header(request: &GrpcRequest<impl Sized>, name: &str) -> String {
    request
        .metadata()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn notification(i: usize, request: &GrpcRequest<impl Sized>) -> Notification {
    Notification {
        id: format!("n{i}"),
        title: header(request, "authorization"),
        body: header(request, "x-request-id"),
        order_id: header(request, "x-mercato-user"),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl NotificationService for Notifications {
    async fn list_notifications(
        &self,
        request: GrpcRequest<ListNotificationsRequest>,
    ) -> Result<GrpcResponse<ListNotificationsResponse>, Status> {
        if request.get_ref().page_size < 0 {
            return Err(mercato_kernel::error::invalid_argument(
                "page_size",
                "must not be negative",
            ));
        }
        Ok(GrpcResponse::new(ListNotificationsResponse {
            notifications: vec![notification(0, &request)],
            next_page_token: String::new(),
            unread_count: 1,
        }))
    }

    type StreamNotificationsStream =
        Pin<Box<dyn Stream<Item = Result<StreamNotificationsResponse, Status>> + Send>>;

    async fn stream_notifications(
        &self,
        request: GrpcRequest<StreamNotificationsRequest>,
    ) -> Result<GrpcResponse<Self::StreamNotificationsStream>, Status> {
        let items: Vec<_> = (1..=self.count)
            .map(|i| {
                Ok(StreamNotificationsResponse {
                    notification: Some(notification(i, &request)),
                })
            })
            .collect();
        Ok(GrpcResponse::new(Box::pin(futures::stream::iter(items))))
    }

    async fn mark_read(
        &self,
        _request: GrpcRequest<MarkReadRequest>,
    ) -> Result<GrpcResponse<MarkReadResponse>, Status> {
        Err(Status::not_found("no such notification"))
    }
}

impl Notifications {
    /// Serves `count` notifications per stream; returns the URL.
    pub async fn start(count: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(NotificationServiceServer::new(Self { count }))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        format!("http://{addr}")
    }
}
