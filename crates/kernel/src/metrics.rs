//! RED metrics per RPC, recorded by a tower layer and rendered in Prometheus text format on
//! the admin port: `mercato_rpc_requests_total{rpc,code}` (errors are the non-OK codes) and
//! `mercato_rpc_duration_seconds{rpc}` (a histogram; for streams, until the stream ends).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use http_body::{Body, Frame};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower::{Layer, Service};

const REQUESTS: &str = "mercato_rpc_requests_total";
const DURATION: &str = "mercato_rpc_duration_seconds";

/// The process-wide Prometheus recorder (installed on first use; one per process even when
/// tests run several services in it).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(DURATION.to_owned()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed; render from a private, unconnected one.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// Records the RED metrics of every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        // Make sure the recorder exists before the first request is counted.
        let _ = prometheus();
        MetricsService { inner }
    }
}

/// See [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let recorder = Recorder {
            series: RpcSeries::of(req.uri().path()),
            start: Instant::now(),
            done: false,
        };
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.await?;
            let mut recorder = recorder;
            // A trailers-only response (every error from tonic) carries the status up front.
            if let Some(code) = grpc_status(response.headers()) {
                recorder.finish(code);
            }
            Ok(response.map(|body| {
                tonic::body::Body::new(MeteredBody {
                    inner: body,
                    recorder,
                })
            }))
        })
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The series of one RPC, registered on its first call: every later call records through
/// these handles instead of building (and allocating) its labels again.
struct RpcSeries {
    rpc: String,
    ok: metrics::Counter,
    duration: metrics::Histogram,
}

/// RPC paths whose series are kept; paths beyond it (clients inventing them) are recorded
/// through the labels each time rather than growing this table without end.
const MAX_CACHED_RPCS: usize = 1024;

impl RpcSeries {
    fn new(rpc: &str) -> Self {
        Self {
            rpc: rpc.to_owned(),
            ok: metrics::counter!(REQUESTS, "rpc" => rpc.to_owned(), "code" => "Ok"),
            duration: metrics::histogram!(DURATION, "rpc" => rpc.to_owned()),
        }
    }

    fn of(rpc: &str) -> Arc<Self> {
        static CACHE: OnceLock<RwLock<HashMap<String, Arc<RpcSeries>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(RwLock::default);
        if let Some(series) = cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(rpc)
        {
            return series.clone();
        }
        let mut cache = cache.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(series) = cache.get(rpc) {
            return series.clone();
        }
        let series = Arc::new(Self::new(rpc));
        if cache.len() < MAX_CACHED_RPCS {
            cache.insert(rpc.to_owned(), series.clone());
        }
        series
    }
}

/// Records once: at the status trailer, or when the body is dropped unfinished (cancelled).
struct Recorder {
    series: Arc<RpcSeries>,
    start: Instant,
    done: bool,
}

impl Recorder {
    fn finish(&mut self, code: i32) {
        if self.done {
            return;
        }
        self.done = true;
        let code = tonic::Code::from_i32(code);
        if code == tonic::Code::Ok {
            self.series.ok.increment(1);
        } else {
            let rpc = self.series.rpc.clone();
            metrics::counter!(REQUESTS, "rpc" => rpc, "code" => format!("{code:?}")).increment(1);
        }
        self.series
            .duration
            .record(self.start.elapsed().as_secs_f64());
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled as i32);
    }
}

pin_project_lite::pin_project! {
    struct MeteredBody<B> {
        #[pin]
        inner: B,
        recorder: Recorder,
    }
}

impl<B> Body for MeteredBody<B>
where
    B: Body<Data = bytes::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    this.recorder.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.recorder.finish(tonic::Code::Internal as i32),
            Poll::Ready(None) => this.recorder.finish(tonic::Code::Ok as i32),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    async fn call(path: &str, status: &'static str) {
        let service = MetricsLayer.layer(tower::service_fn(move |_req: Request<()>| async move {
            let mut response = Response::new(http_body_util::Empty::<bytes::Bytes>::new());
            response
                .headers_mut()
                .insert("grpc-status", http::HeaderValue::from_static(status));
            Ok::<_, std::convert::Infallible>(response)
        }));
        let request = Request::builder().uri(path).body(()).unwrap();
        let response = service.oneshot(request).await.unwrap();
        response.into_body().collect().await.unwrap();
    }

    fn count(rendered: &str, rpc: &str, code: &str) -> u64 {
        let series = format!("{REQUESTS}{{rpc=\"{rpc}\",code=\"{code}\"}} ");
        rendered
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    #[tokio::test]
    async fn every_call_is_counted_by_rpc_and_code() {
        let rpc = "/metrics.test.v1.Counted/Call";
        call(rpc, "0").await;
        call(rpc, "0").await;
        call(rpc, "5").await;
        let rendered = prometheus().render();
        assert_eq!(count(&rendered, rpc, "Ok"), 2, "{rendered}");
        assert_eq!(count(&rendered, rpc, "NotFound"), 1, "{rendered}");
        assert!(
            rendered.contains(&format!("{DURATION}_count{{rpc=\"{rpc}\"}} 3")),
            "{rendered}"
        );
    }
}
