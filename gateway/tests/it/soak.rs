//! The short soak CI runs: the load generator against a real durable server for a bounded time,
//! checking what must hold however long it runs. The 30-minute soak with its memory and p99
//! figures is `benches/soak.sh` (docs/SOAK.md). `TURNSTILE_SOAK_TEST_SECONDS` lengthens this one.

use crate::common;

use std::time::Duration;

use common::{authed, TestServer, SECRET};
use turnstile::auth::Authenticator;
use turnstile_proto::v1 as pb;
use turnstile_tools::loadgen::{self, BenchOptions};

/// The generator's settings for a short run against `server`: 8 workers on 2 connections.
fn options(server: &TestServer, duration: Duration, seed: u64) -> BenchOptions {
    BenchOptions {
        server: server.server.as_ref().unwrap().local_addr,
        concurrency: 8,
        duration,
        reads_per_write: 10,
        confirm_percent: 20,
        search: true,
        hot_event: false,
        hold_only: false,
        health_only: false,
        views_only: false,
        view_transport: turnstile_tools::loadgen::ViewTransport::Grpc,
        stream: false,
        events: 4,
        hold_ttl_seconds: 0,
        connections: 2,
        window: Duration::from_secs(3),
        progress: false,
        seed,
        keep_events: false,
    }
}

async fn node_status(server: &TestServer) -> pb::GetNodeStatusResponse {
    server
        .admin()
        .get_node_status(authed(&server.admin_token(), pb::GetNodeStatusRequest {}))
        .await
        .unwrap()
        .into_inner()
}

/// Events named like the generator's that search finds (the index is refreshed in the background:
/// waits, boundedly, for a count to settle).
async fn bench_events_found(server: &TestServer) -> usize {
    let mut found = usize::MAX;
    for _ in 0..50 {
        let request = pb::SearchEventsRequest { query: "bench night".into(), page_size: 50, ..Default::default() };
        let now = server.catalog().search_events(request).await.unwrap().into_inner().events.len();
        if now == found {
            return now;
        }
        found = now;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_load_leaves_no_errors_no_live_holds_and_no_runaway_memory() {
    let seconds: u64 =
        std::env::var("TURNSTILE_SOAK_TEST_SECONDS").ok().and_then(|value| value.parse().ok()).unwrap_or(7);
    let server = TestServer::start().await;
    // Windows of 2 s: at least three whole ones in the default 7 s.
    let options = BenchOptions { window: Duration::from_secs(2), ..options(&server, Duration::from_secs(seconds), 7) };
    let summary = loadgen::run(options, std::sync::Arc::new(Authenticator::new(SECRET.as_bytes()))).await.unwrap();
    assert!(summary.errors_by_code.is_empty(), "errors under steady load: {:?}", summary.errors_by_code);
    let holds = &summary.operations["hold"];
    assert!(holds.count > 100, "the load ran: {} holds", holds.count);
    let confirmed = summary.operations.get("confirm").map_or(0, |row| row.count);
    let released = summary.operations.get("release").map_or(0, |row| row.count);
    assert_eq!(confirmed + released, holds.count, "every hold was confirmed or released");

    // Every window counts what happened in it: none of the whole windows is empty.
    let whole = &summary.windows[..summary.windows.len() - 1];
    assert!(whole.len() >= 2, "{:?}", summary.windows);
    assert!(whole.iter().all(|window| window.operations_per_second > 0.0), "{:?}", summary.windows);

    // Every hold was ended: none is live, and the bookings are all there.
    assert_eq!(node_status(&server).await.live_holds, 0);
    // The run's events were cancelled: search no longer finds them.
    assert_eq!(summary.events_cancelled, 4);
    assert_eq!(bench_events_found(&server).await, 0, "the bench's events left search");
    // Memory: the last window is not far above the first (a leak of a request's worth per
    // request would be tens of megabytes here).
    let memory: Vec<u64> =
        summary.windows.iter().map(|window| window.server_resident_bytes).filter(|&bytes| bytes > 0).collect();
    let (first, last) = (memory[0], *memory.last().unwrap());
    assert!(last < first + first / 2 + (64 << 20), "resident memory went from {first} to {last} bytes");
    server.stop().await;
}

/// `--hold-only`: every write is one hold by a buyer of its own, left live; the node ends the run
/// holding exactly the holds the generator counted, with no errors from any per-buyer bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_only_load_leaves_every_counted_hold_live() {
    let server = TestServer::start().await;
    let options = BenchOptions {
        reads_per_write: 0,
        search: false,
        hot_event: true,
        hold_only: true,
        events: 1,
        window: Duration::from_secs(1),
        keep_events: true,
        ..options(&server, Duration::from_secs(3), 11)
    };
    let summary = loadgen::run(options, std::sync::Arc::new(Authenticator::new(SECRET.as_bytes()))).await.unwrap();
    assert!(summary.errors_by_code.is_empty(), "errors in a hold-only run: {:?}", summary.errors_by_code);
    let holds = summary.operations["hold"].count;
    assert!(holds > 8 * 10, "the load ran: {holds} holds");
    assert!(!summary.operations.contains_key("confirm") && !summary.operations.contains_key("release"));
    assert!(summary.hold_only);
    assert_eq!(node_status(&server).await.live_holds, holds, "every hold the generator counted is live on the node");
    assert_eq!(summary.events_cancelled, 0, "--keep-events keeps them");
    assert_eq!(bench_events_found(&server).await, 1, "the kept event is found");
    server.stop().await;
}

/// `--stream`: the same holds through the client crate's booking stream, every one counted live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_load_holds_through_the_booking_stream() {
    let server = TestServer::start().await;
    let options = BenchOptions {
        reads_per_write: 0,
        search: false,
        hot_event: true,
        hold_only: true,
        stream: true,
        events: 1,
        window: Duration::from_secs(1),
        keep_events: true,
        ..options(&server, Duration::from_secs(2), 12)
    };
    let summary = loadgen::run(options, std::sync::Arc::new(Authenticator::new(SECRET.as_bytes()))).await.unwrap();
    assert!(summary.errors_by_code.is_empty(), "errors on the stream: {:?}", summary.errors_by_code);
    assert!(summary.stream);
    let holds = summary.operations["hold"].count;
    assert!(holds > 8 * 10, "the load ran: {holds} holds");
    assert_eq!(node_status(&server).await.live_holds, holds, "every hold counted is live on the node");
    server.stop().await;
}

/// `--http`: views over gRPC, then the same as JSON over HTTP, with their ratio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_comparison_views_over_both_transports() {
    let server = TestServer::start().await;
    let options = BenchOptions { window: Duration::from_secs(1), ..options(&server, Duration::from_secs(1), 13) };
    let comparison =
        loadgen::compare_http(options, std::sync::Arc::new(Authenticator::new(SECRET.as_bytes()))).await.unwrap();
    assert!(comparison.grpc.errors_by_code.is_empty() && comparison.http.errors_by_code.is_empty());
    assert!(comparison.grpc.operations["view"].count > 0);
    assert!(comparison.http.operations["view_http"].count > 0);
    assert!(!comparison.grpc.operations.contains_key("hold") && !comparison.http.operations.contains_key("search"));
    let ratio = comparison.http.reads_per_second / comparison.grpc.reads_per_second;
    assert!((comparison.ratio - ratio).abs() < 1e-9);
    assert!(loadgen::render_comparison(&comparison).contains("JSON views"));
    server.stop().await;
}

/// `--hold-ttl-seconds` reaches the events the generator creates: one the server refuses (under
/// its 30 s minimum) stops the run before any load, with the server's reason naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hold_ttl_option_reaches_the_events_the_generator_creates() {
    let server = TestServer::start().await;
    let refused = BenchOptions { hold_ttl_seconds: 5, ..options(&server, Duration::from_secs(1), 13) };
    let error = loadgen::run(refused, std::sync::Arc::new(Authenticator::new(SECRET.as_bytes()))).await.unwrap_err();
    assert!(format!("{error:#}").contains("hold_ttl"), "{error:#}");
    let taken = BenchOptions { hold_ttl_seconds: 30, ..options(&server, Duration::from_secs(1), 13) };
    let summary = loadgen::run(taken, std::sync::Arc::new(Authenticator::new(SECRET.as_bytes()))).await.unwrap();
    assert!(summary.operations["hold"].count > 0, "a TTL within the bounds is taken");
    server.stop().await;
}

/// `--health-only`: every call is a health check answered by the server, and none reaches the
/// engine: no event is created and no command is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_only_load_calls_the_server_and_never_the_engine() {
    let server = TestServer::start().await;
    let before = node_status(&server).await;
    let options = BenchOptions { health_only: true, ..options(&server, Duration::from_secs(3), 12) };
    let summary = loadgen::run(options, std::sync::Arc::new(Authenticator::new(SECRET.as_bytes()))).await.unwrap();
    assert!(summary.errors_by_code.is_empty(), "errors in a health-only run: {:?}", summary.errors_by_code);
    assert!(summary.health_only);
    assert_eq!(summary.events, 0, "the summary names no event");
    assert_eq!(summary.operations.keys().collect::<Vec<_>>(), ["health"], "health checks and nothing else");
    let calls = summary.operations["health"].count;
    assert!(calls > 100, "the load ran: {calls} health checks");
    assert_eq!(summary.writes_per_second + summary.reads_per_second, 0.0);
    let after = node_status(&server).await;
    assert_eq!(after.events_owned, before.events_owned, "no event was created");
    assert_eq!(after.log_commands, before.log_commands, "nothing was logged");
    server.stop().await;
}
