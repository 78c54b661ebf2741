//! Metrics: the Prometheus endpoint and the per-RPC latency layer.
//!
//! Counters and histograms are recorded where things happen (the event actors count holds,
//! confirms, expiries, cancels and rejections; the log writer records commit sizes and latency);
//! this module installs the exporter and times every RPC by method and outcome.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: 50 µs to 5 s.
const LATENCY_BUCKETS_SECONDS: [f64; 16] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Batch size buckets, in jobs per commit or per raft entry.
const COMMIT_JOBS_BUCKETS: [f64; 12] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

/// The HELP line of every metric Turnstile records (process metrics describe themselves).
const DESCRIPTIONS: &[(&str, &str)] = &[
    ("turnstile_build_info", "Always 1; the labels name the version and build profile of this binary."),
    ("turnstile_rpc_seconds", "Time to answer a gRPC call, by method and status code."),
    ("turnstile_http_seconds", "Time to answer an HTTP request (JSON, events, the page), by route, method and status."),
    ("turnstile_event_request_seconds", "Time an event actor takes for a request, by kind."),
    ("turnstile_holds_placed_total", "Holds placed."),
    ("turnstile_holds_confirmed_total", "Holds confirmed into bookings."),
    ("turnstile_holds_confirmed_late_total", "Holds confirmed after their deadline (seats re-held)."),
    ("turnstile_holds_released_total", "Holds released by their buyer."),
    ("turnstile_holds_expired_total", "Holds that expired unconfirmed."),
    ("turnstile_holds_extended_total", "Hold deadlines extended."),
    ("turnstile_payments_started_total", "Payments started on a hold."),
    ("turnstile_bookings_cancelled_total", "Bookings cancelled."),
    ("turnstile_events_cancelled_total", "Events cancelled."),
    ("turnstile_tickets_redeemed_total", "Tickets redeemed at the door."),
    ("turnstile_waitlist_offers_total", "Seats offered to buyers on a waitlist."),
    ("turnstile_rejections_total", "Requests an event refused, by reason."),
    ("turnstile_checkpoint_turn_seconds", "Time an event actor spends on its part of a checkpoint."),
    ("turnstile_log_commit_seconds", "Time to commit a batch to the command log, fsync included."),
    ("turnstile_log_commit_jobs", "Jobs (commands of many events) per command-log commit."),
    ("turnstile_log_entries_total", "Entries written to the command log."),
    ("turnstile_raft_log_commit_seconds", "Time to commit a batch to the replication log."),
    ("turnstile_raft_log_commit_jobs", "Submissions per replication-log commit."),
    ("turnstile_cluster_commit_seconds", "Time from proposing a replicated entry to its commit on a majority."),
    ("turnstile_cluster_entry_jobs", "Jobs per replicated entry."),
    ("turnstile_forwarded_total", "Calls forwarded to the node that serves their event, by method and outcome."),
    ("turnstile_forward_refused_total", "Forwarded calls refused (bad or missing forwarding mark)."),
    ("turnstile_queue_admissions_total", "Buyers admitted from a waiting room."),
    ("turnstile_queue_waiting", "Buyers waiting in a waiting room's line, by event."),
];

fn builder() -> anyhow::Result<PrometheusBuilder> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS_SECONDS)?
        .set_buckets_for_metric(Matcher::Suffix("_jobs".into()), &COMMIT_JOBS_BUCKETS)?)
}

/// Names every metric (the HELP lines) and sets the build info.
fn describe() {
    for (name, help) in DESCRIPTIONS {
        if name.ends_with("_seconds") || name.ends_with("_jobs") {
            metrics::describe_histogram!(*name, *help);
        } else if name.ends_with("_total") {
            metrics::describe_counter!(*name, *help);
        } else {
            metrics::describe_gauge!(*name, *help);
        }
    }
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    metrics::gauge!("turnstile_build_info", "version" => env!("CARGO_PKG_VERSION"), "profile" => profile).set(1.0);
}

/// Whether the node serves calls: `/readyz` answers 200 only while it does (a load balancer
/// stops sending calls to a node that is starting or stopping).
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Binds the metrics port, naming the address (and where it came from) when that fails.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.map_err(|error| {
        anyhow::anyhow!("cannot serve metrics on {listen} (metrics.listen or --metrics-listen): {error}")
    })
}

/// Serves, for the whole process, on a listener the caller bound: `GET /metrics` (Prometheus
/// text: Turnstile's metrics with HELP lines, build info and process metrics), `GET /healthz`
/// (200 while the process runs) and `GET /readyz` (200 while `readiness` says so, 503 otherwise).
/// Other paths are 404, other methods 405. Installs the global recorder: call once.
pub fn serve(listener: tokio::net::TcpListener, readiness: Readiness) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let handle = builder()?.install_recorder()?;
    describe();
    let process = Arc::new(metrics_process::Collector::default());
    process.describe();
    let local_addr = listener.local_addr()?;
    let routes = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let (handle, process) = (handle.clone(), process.clone());
                async move {
                    process.collect();
                    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready = readiness.is_ready();
                async move {
                    if ready {
                        (http::StatusCode::OK, "ready\n")
                    } else {
                        (http::StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        )
        .fallback(|| async { (http::StatusCode::NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n") });
    tracing::info!(listen = %local_addr, "serving Prometheus metrics, /healthz and /readyz");
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, routes).await {
            tracing::error!(%error, "the metrics endpoint stopped");
        }
    }))
}

/// Records into a handle the caller renders itself (tests).
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let handle = builder()?.install_recorder()?;
    describe();
    Ok(handle)
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
        // JSON and the page are timed by their own routes (`turnstile_http_seconds`).
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|content_type| content_type.as_bytes().starts_with(b"application/grpc"));
        if !grpc {
            return Box::pin(self.inner.call(request));
        }
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
