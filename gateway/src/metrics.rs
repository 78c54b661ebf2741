//! Metrics: the Prometheus endpoint and the per-RPC latency layer.
//!
//! Counters and histograms are recorded where things happen (the event actors count holds,
//! confirms, expiries, cancels and rejections; the log writer records commit sizes and latency);
//! this module installs the exporter and times every RPC by method and outcome.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: 50 µs to 5 s.
const LATENCY_BUCKETS_SECONDS: [f64; 16] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Commit size buckets, in jobs per commit.
const COMMIT_JOBS_BUCKETS: [f64; 12] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

fn builder() -> anyhow::Result<PrometheusBuilder> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS_SECONDS)?
        .set_buckets_for_metric(Matcher::Full("turnstile_log_commit_jobs".into()), &COMMIT_JOBS_BUCKETS)?)
}

/// Serves `/metrics` on `listen` for the whole process. Call once, inside a tokio runtime.
pub fn install_exporter(listen: SocketAddr) -> anyhow::Result<()> {
    builder()?.with_http_listener(listen).install()?;
    tracing::info!(%listen, "serving Prometheus metrics");
    Ok(())
}

/// Records into a handle the caller renders itself (tests, `turnstile status`).
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    Ok(builder()?.install_recorder()?)
}

/// A tower layer timing every request by gRPC method.
#[derive(Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S, B, ResponseBody> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // "/turnstile.v1.BookingService/HoldSeats" -> "BookingService/HoldSeats"
        let method = request.uri().path().rsplit_once('.').map(|(_, method)| method).unwrap_or("unknown").to_string();
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            // An error status of a unary call travels in the headers (trailers-only response).
            let code = match &response {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<i32>().ok())
                    .map(|code| format!("{:?}", tonic::Code::from(code)))
                    .unwrap_or_else(|| "Ok".to_string()),
                Err(_) => "TransportError".to_string(),
            };
            metrics::histogram!("turnstile_rpc_seconds", "method" => method.clone(), "code" => code)
                .record(started.elapsed().as_secs_f64());
            response
        })
    }
}
