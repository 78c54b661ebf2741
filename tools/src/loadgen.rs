//! `turnstile bench`: a load generator over gRPC, through the `turnstile-client` crate (its pool of
//! connections, and with `--stream` its booking stream), so its figures are what a user of the
//! crate gets.
//!
//! It creates its own venue and events through the admin API, then runs `concurrency` workers for
//! a fixed duration. Each worker picks an operation at random: a write (HoldSeats of one place,
//! then ConfirmHold or ReleaseHold) with probability 1 / (reads_per_write + 1), otherwise a read
//! (GetEvent, or SearchEvents). Latencies go into HDR histograms per operation; the summary gives
//! throughput, percentiles and errors by gRPC code, as text and optionally as JSON. Every window
//! (default 10 s) also records the hold p99 and the node's resident memory, so a long run (a soak)
//! shows drift and growth.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::admin_service_client::AdminServiceClient;
use turnstile_proto::v1::booking_service_client::BookingServiceClient;
use turnstile_proto::v1::catalog_service_client::CatalogServiceClient;

/// Signs the tokens the bench's buyers and its admin present, as the node under load expects them
/// (the `turnstile` binary signs with the configured secret).
pub trait TokenMinter: Send + Sync + 'static {
    /// A buyer's token for `subject`, valid for the run.
    fn buyer(&self, subject: &str) -> String;
    /// An admin's token (the bench creates and cancels its own events).
    fn admin(&self, subject: &str) -> String;
}

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub server: std::net::SocketAddr,
    pub concurrency: usize,
    pub duration: Duration,
    pub reads_per_write: u32,
    /// Share of writes that confirm their hold (the rest release it), in percent.
    pub confirm_percent: u32,
    /// Whether reads include SearchEvents (half of them) besides GetEvent.
    pub search: bool,
    /// Every worker targets one event.
    pub hot_event: bool,
    /// Writes are holds alone, each by a buyer of its own, left to expire (no confirm or release):
    /// one durable command per write, like a lock service's SET NX EX.
    pub hold_only: bool,
    /// Every call is a standard health check (`grpc.health.v1.Health/Check`) and nothing else: no
    /// engine, no disk, no token. It measures what a unary call through this server and this
    /// load generator costs on the machine: the most calls per second any request could reach.
    pub health_only: bool,
    /// Every call is a view of an event (GetEvent without seats or layout) and nothing else:
    /// over gRPC, or with `view_transport` HTTP as `GET /v1/events/{id}` answered in JSON.
    pub views_only: bool,
    pub view_transport: ViewTransport,
    /// Holds, confirmations and releases go through the client crate's booking stream (one
    /// `BookingService.Book` stream that every worker's calls share) instead of unary calls.
    pub stream: bool,
    pub events: usize,
    /// Hold TTL of the events the bench creates (0: the server's default).
    pub hold_ttl_seconds: u32,
    pub connections: usize,
    pub window: Duration,
    pub progress: bool,
    pub seed: u64,
    /// Leave the events the run created (otherwise they are cancelled at the end, which takes
    /// them out of search and releases their holds).
    pub keep_events: bool,
}

/// How `views_only` reads an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum ViewTransport {
    #[default]
    Grpc,
    /// HTTP/1.1 with keep-alive, one connection per worker, the answer parsed as JSON.
    HttpJson,
}

/// Percentiles of one operation, in microseconds.
#[derive(Debug, Serialize)]
pub struct OperationSummary {
    pub count: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

#[derive(Debug, Serialize)]
pub struct WindowSummary {
    pub end_seconds: f64,
    pub operations_per_second: f64,
    pub hold_p99_us: u64,
    pub server_resident_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct BenchSummary {
    pub concurrency: usize,
    pub duration_seconds: f64,
    pub reads_per_write: u32,
    pub hot_event: bool,
    pub hold_only: bool,
    pub health_only: bool,
    pub views_only: bool,
    pub view_transport: ViewTransport,
    pub stream: bool,
    pub events: usize,
    pub operations: BTreeMap<String, OperationSummary>,
    pub errors_by_code: BTreeMap<String, u64>,
    pub writes_per_second: f64,
    pub reads_per_second: f64,
    /// Events the run created and cancelled at its end (0 with `keep_events`).
    pub events_cancelled: usize,
    pub windows: Vec<WindowSummary>,
}

const OPERATIONS: [&str; 7] = ["hold", "confirm", "release", "view", "view_http", "search", "health"];

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[derive(Default)]
struct Tally {
    latencies: BTreeMap<&'static str, Histogram<u64>>,
    errors: BTreeMap<&'static str, u64>,
    errors_by_code: BTreeMap<String, u64>,
}

impl Tally {
    fn record<T>(&mut self, operation: &'static str, started: Instant, result: &Result<T, tonic::Status>) {
        let micros = started.elapsed().as_micros().max(1) as u64;
        self.latencies.entry(operation).or_insert_with(histogram).saturating_record(micros);
        if let Err(status) = result {
            *self.errors.entry(operation).or_default() += 1;
            *self.errors_by_code.entry(format!("{:?}", status.code())).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Tally) {
        for (operation, latencies) in other.latencies {
            self.latencies.entry(operation).or_insert_with(histogram).add(latencies).expect("same bounds");
        }
        for (operation, errors) in other.errors {
            *self.errors.entry(operation).or_default() += errors;
        }
        for (code, errors) in other.errors_by_code {
            *self.errors_by_code.entry(code).or_default() += errors;
        }
    }
}

fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("a token is ASCII");
    request.metadata_mut().insert("authorization", value);
    request
}

/// Creates the bench's venue (one general-admission floor) and events.
async fn create_events(
    channel: Channel,
    admin: &str,
    events: usize,
    hold_ttl_seconds: u32,
) -> anyhow::Result<Vec<String>> {
    let mut client = AdminServiceClient::new(channel);
    let venue = client
        .create_venue(authed(
            admin,
            pb::CreateVenueRequest {
                name: "Bench Arena".into(),
                city: "Benchville".into(),
                address: String::new(),
                sections: vec![pb::Section {
                    section_id: "FLOOR".into(),
                    name: "Floor".into(),
                    rows: vec![],
                    general_admission_capacity: 200_000,
                }],
            },
        ))
        .await
        .context("creating the bench venue")?
        .into_inner()
        .venue
        .context("venue missing")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let mut event_ids = Vec::with_capacity(events);
    for number in 0..events {
        let event = client
            .create_event(authed(
                admin,
                pb::CreateEventRequest {
                    name: format!("Bench Night {number}"),
                    description: "load generator event".into(),
                    category: "bench".into(),
                    venue_id: venue.venue_id.clone(),
                    performer_ids: vec![],
                    starts_at: Some(prost_types::Timestamp { seconds: now + 86_400 * 30, nanos: 0 }),
                    ends_at: Some(prost_types::Timestamp { seconds: now + 86_400 * 30 + 10_800, nanos: 0 }),
                    price_levels: vec![pb::PriceLevel {
                        price_level_id: "GA".into(),
                        name: "Floor".into(),
                        price: Some(pb::Money { amount_minor: 5_000, currency: "EUR".into() }),
                        section_ids: vec!["FLOOR".into()],
                    }],
                    hold_ttl_seconds,
                    buyer_seat_limit: 1_000,
                },
            ))
            .await
            .context("creating a bench event")?
            .into_inner()
            .event
            .context("event missing")?;
        event_ids.push(event.event_id);
    }
    Ok(event_ids)
}

/// Cancels the run's events: out of search, their holds released. Returns how many.
async fn cancel_events(channel: Channel, admin: &str, event_ids: &[String]) -> anyhow::Result<usize> {
    let mut client = AdminServiceClient::new(channel);
    for event_id in event_ids {
        client
            .cancel_event(authed(admin, pb::CancelEventRequest { event_id: event_id.clone() }))
            .await
            .with_context(|| format!("cancelling the bench event {event_id} (--keep-events leaves them)"))?;
    }
    Ok(event_ids.len())
}

struct Worker {
    index: usize,
    /// What the worker did in the current reporting window; the reporter takes it at the
    /// window's end (uncontended but for that moment), so every window counts what happened in it.
    window: std::sync::Arc<std::sync::Mutex<Tally>>,
    channel: Channel,
    /// The booking stream, with `--stream`.
    stream: Option<turnstile_client::BookingStream>,
    event_ids: Vec<String>,
    authenticator: std::sync::Arc<dyn TokenMinter>,
    options: BenchOptions,
}

/// Buyers each worker cycles through: a buyer's own rate limit is never the bottleneck.
const BUYERS_PER_WORKER: u64 = 512;

impl Worker {
    async fn run(self, deadline: Instant) -> Tally {
        let mut rng = StdRng::seed_from_u64(self.options.seed ^ (self.index as u64).wrapping_mul(0x9e37_79b9));
        let mut catalog = CatalogServiceClient::new(self.channel.clone());
        let mut booking = BookingServiceClient::new(self.channel.clone());
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel.clone());
        // Signed inside the measured time, so only when writes use them.
        let uses_tokens = !(self.options.health_only || self.options.hold_only || self.options.views_only);
        let http = (self.options.view_transport == ViewTransport::HttpJson).then(|| {
            let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
            connector.set_nodelay(true);
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(1)
                .build::<_, http_body_util::Empty<bytes::Bytes>>(connector)
        });
        let tokens: Vec<String> = if uses_tokens {
            (0..BUYERS_PER_WORKER)
                .map(|buyer| self.authenticator.buyer(&format!("bench-{}-{buyer}", self.index)))
                .collect()
        } else {
            Vec::new()
        };
        let mut tally = Tally::default();
        let mut writes = 0u64;
        while Instant::now() < deadline {
            if self.options.health_only {
                let started = Instant::now();
                let result = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
                tally.record("health", started, &result);
                self.window.lock().expect("window lock").record("health", started, &result);
                continue;
            }
            let event_id = if self.options.hot_event {
                self.event_ids[0].clone()
            } else {
                self.event_ids[rng.random_range(0..self.event_ids.len())].clone()
            };
            if let Some(http) = &http {
                let started = Instant::now();
                let result = view_over_http(http, self.options.server, &event_id).await;
                tally.record("view_http", started, &result);
                self.window.lock().expect("window lock").record("view_http", started, &result);
                continue;
            }
            if self.options.views_only {
                let started = Instant::now();
                let result = catalog.get_event(pb::GetEventRequest { event_id, ..Default::default() }).await;
                tally.record("view", started, &result);
                self.window.lock().expect("window lock").record("view", started, &result);
                continue;
            }
            if rng.random_range(0..=self.options.reads_per_write) == 0 {
                // Hold-only holds stay live until they expire, so each takes a buyer of its own and
                // no buyer reaches the live-holds-per-buyer bound.
                let fresh_token;
                let token = if self.options.hold_only {
                    fresh_token = self.authenticator.buyer(&format!("bench-{}-hold-{writes}", self.index));
                    &fresh_token
                } else {
                    &tokens[(writes % BUYERS_PER_WORKER) as usize]
                };
                writes += 1;
                let started = Instant::now();
                let request = pb::HoldSeatsRequest {
                    event_id,
                    idempotency_key: String::new(),
                    selection: Some(pb::hold_seats_request::Selection::BestAvailable(pb::BestAvailable {
                        section_id: "FLOOR".into(),
                        quantity: 1,
                    })),
                    ..Default::default()
                };
                let result = match &self.stream {
                    Some(stream) => stream.hold(token, request).await.map(tonic::Response::new),
                    None => booking.hold_seats(authed(token, request)).await,
                };
                tally.record("hold", started, &result);
                self.window.lock().expect("window lock").record("hold", started, &result);
                if self.options.hold_only {
                    continue;
                }
                let Ok(response) = result else { continue };
                let Some(hold) = response.into_inner().hold else { continue };
                let started = Instant::now();
                if rng.random_range(0..100) < self.options.confirm_percent {
                    let request = pb::ConfirmHoldRequest {
                        hold_id: hold.hold_id,
                        payment_reference: format!("bench-{}-{writes}", self.index),
                        idempotency_key: String::new(),
                    };
                    let result = match &self.stream {
                        Some(stream) => stream.confirm(token, request).await.map(tonic::Response::new),
                        None => booking.confirm_hold(authed(token, request)).await,
                    };
                    tally.record("confirm", started, &result);
                    self.window.lock().expect("window lock").record("confirm", started, &result);
                } else {
                    let request = pb::ReleaseHoldRequest { hold_id: hold.hold_id };
                    let result = match &self.stream {
                        Some(stream) => stream.release(token, request).await.map(tonic::Response::new),
                        None => booking.release_hold(authed(token, request)).await,
                    };
                    tally.record("release", started, &result);
                    self.window.lock().expect("window lock").record("release", started, &result);
                }
            } else if self.options.search && rng.random_bool(0.5) {
                let started = Instant::now();
                let request =
                    pb::SearchEventsRequest { query: "bench night".into(), page_size: 10, ..Default::default() };
                let result = catalog.search_events(request).await;
                tally.record("search", started, &result);
                self.window.lock().expect("window lock").record("search", started, &result);
            } else {
                let started = Instant::now();
                let result = catalog.get_event(pb::GetEventRequest { event_id, ..Default::default() }).await;
                tally.record("view", started, &result);
                self.window.lock().expect("window lock").record("view", started, &result);
            }
        }
        tally
    }
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

/// `GET /v1/events/{id}`, the answer read whole and parsed as JSON (a client reads what it asks
/// for, as the gRPC client decodes its protobuf). A status other than 200 counts as that error.
async fn view_over_http(
    client: &HttpClient,
    server: std::net::SocketAddr,
    event_id: &str,
) -> Result<(), tonic::Status> {
    use http_body_util::BodyExt;
    let uri: http::Uri = format!("http://{server}/v1/events/{event_id}")
        .parse()
        .map_err(|error| tonic::Status::invalid_argument(format!("{error}")))?;
    let response = client.get(uri).await.map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let status = response.status();
    let body =
        response.into_body().collect().await.map_err(|error| tonic::Status::unavailable(error.to_string()))?.to_bytes();
    if status != http::StatusCode::OK {
        return Err(tonic::Status::unknown(format!("HTTP {status}")));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(&body)
        .map_err(|error| tonic::Status::internal(format!("the answer is not JSON: {error}")))?;
    Ok(())
}

fn summarize(latencies: &Histogram<u64>, errors: u64, seconds: f64) -> OperationSummary {
    OperationSummary {
        count: latencies.len(),
        errors,
        per_second: latencies.len() as f64 / seconds,
        p50_us: latencies.value_at_quantile(0.50),
        p90_us: latencies.value_at_quantile(0.90),
        p99_us: latencies.value_at_quantile(0.99),
        p999_us: latencies.value_at_quantile(0.999),
        max_us: latencies.max(),
    }
}

async fn resident_bytes(channel: Channel, admin: &str) -> u64 {
    let mut client = AdminServiceClient::new(channel);
    match client.get_node_status(authed(admin, pb::GetNodeStatusRequest {})).await {
        Ok(status) => status.into_inner().resident_bytes,
        Err(_) => 0,
    }
}

pub async fn run(
    options: BenchOptions,
    authenticator: std::sync::Arc<dyn TokenMinter>,
) -> anyhow::Result<BenchSummary> {
    anyhow::ensure!(options.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(options.events > 0, "--events must be at least 1");
    let admin = authenticator.admin("bench-admin");
    let client = turnstile_client::Client::builder(format!("http://{}", options.server))
        .connections(options.connections.max(1))
        .connect()
        .await
        .with_context(|| format!("cannot reach the node at {}", options.server))?;
    let channels: Vec<Channel> = (0..options.connections.max(1)).map(|_| client.channel()).collect();
    let events = if options.health_only {
        0
    } else if options.hot_event {
        1
    } else {
        options.events
    };
    let event_ids = if events == 0 {
        Vec::new()
    } else {
        create_events(channels[0].clone(), &admin, events, options.hold_ttl_seconds).await?
    };

    let started = Instant::now();
    let deadline = started + options.duration;
    let mut tasks = Vec::with_capacity(options.concurrency);
    let mut worker_windows = Vec::with_capacity(options.concurrency);
    for index in 0..options.concurrency {
        let window = std::sync::Arc::new(std::sync::Mutex::new(Tally::default()));
        worker_windows.push(window.clone());
        let worker = Worker {
            index,
            window,
            channel: channels[index % channels.len()].clone(),
            stream: options.stream.then(|| client.stream().clone()),
            event_ids: event_ids.clone(),
            authenticator: authenticator.clone(),
            options: options.clone(),
        };
        tasks.push(tokio::spawn(worker.run(deadline)));
    }

    // Progress and windows: every `window`, fold what the workers handed in.
    let progress = if options.progress {
        let bar = indicatif::ProgressBar::new(options.duration.as_secs().max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} s  {msg}")
                .expect("valid template"),
        );
        Some(bar)
    } else {
        None
    };
    let mut windows = Vec::new();
    let mut ticker = tokio::time::interval(options.window.min(Duration::from_secs(1)));
    // An interval's first tick is at once: take it here, so the first window is a whole one.
    ticker.tick().await;
    let mut window_start = started;
    loop {
        ticker.tick().await;
        let finished = tasks.iter().all(|task| task.is_finished());
        if window_start.elapsed() >= options.window || finished {
            let mut window_tally = Tally::default();
            for window in &worker_windows {
                window_tally.merge(std::mem::take(&mut *window.lock().expect("window lock")));
            }
            let seconds = window_start.elapsed().as_secs_f64().max(0.001);
            let operations: u64 = window_tally.latencies.values().map(|histogram| histogram.len()).sum();
            let hold_p99_us =
                window_tally.latencies.get("hold").map(|histogram| histogram.value_at_quantile(0.99)).unwrap_or(0);
            windows.push(WindowSummary {
                end_seconds: started.elapsed().as_secs_f64(),
                operations_per_second: operations as f64 / seconds,
                hold_p99_us,
                server_resident_bytes: resident_bytes(channels[0].clone(), &admin).await,
            });
            if let Some(bar) = &progress {
                bar.set_message(format!("{:.0} ops/s, hold p99 {} us", operations as f64 / seconds, hold_p99_us));
            }
            window_start = Instant::now();
        }
        if let Some(bar) = &progress {
            bar.set_position(started.elapsed().as_secs().min(options.duration.as_secs()));
        }
        if finished {
            break;
        }
    }
    if let Some(bar) = progress {
        bar.finish();
    }

    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let events_cancelled =
        if options.keep_events { 0 } else { cancel_events(channels[0].clone(), &admin, &event_ids).await? };
    let mut operations = BTreeMap::new();
    for operation in OPERATIONS {
        if let Some(latencies) = total.latencies.get(operation) {
            let errors = total.errors.get(operation).copied().unwrap_or(0);
            operations.insert(operation.to_string(), summarize(latencies, errors, seconds));
        }
    }
    let count = |names: &[&str]| -> f64 {
        names.iter().filter_map(|name| operations.get(*name)).map(|summary| summary.count as f64).sum::<f64>() / seconds
            + 0.0
    };
    Ok(BenchSummary {
        concurrency: options.concurrency,
        duration_seconds: seconds,
        reads_per_write: options.reads_per_write,
        hot_event: options.hot_event,
        hold_only: options.hold_only,
        health_only: options.health_only,
        views_only: options.views_only,
        view_transport: options.view_transport,
        stream: options.stream,
        events,
        writes_per_second: count(&["hold", "confirm", "release"]),
        reads_per_second: count(&["view", "view_http", "search"]),
        operations,
        errors_by_code: total.errors_by_code,
        events_cancelled,
        windows,
    })
}

/// `bench --http`: the same view load over gRPC and then over HTTP with JSON, in one run.
#[derive(Debug, Serialize)]
pub struct HttpComparison {
    pub grpc: BenchSummary,
    pub http: BenchSummary,
    /// JSON views per second over gRPC views per second.
    pub ratio: f64,
}

/// The target of the HTTP/JSON work: a JSON view at least this share of a gRPC view's rate.
pub const HTTP_VIEW_RATIO_TARGET: f64 = 0.7;

pub async fn compare_http(
    options: BenchOptions,
    authenticator: std::sync::Arc<dyn TokenMinter>,
) -> anyhow::Result<HttpComparison> {
    let grpc_options = BenchOptions { views_only: true, view_transport: ViewTransport::Grpc, ..options.clone() };
    let grpc = run(grpc_options, authenticator.clone()).await?;
    let http_options = BenchOptions { views_only: true, view_transport: ViewTransport::HttpJson, ..options };
    let http = run(http_options, authenticator).await?;
    let ratio = if grpc.reads_per_second > 0.0 { http.reads_per_second / grpc.reads_per_second } else { 0.0 };
    Ok(HttpComparison { grpc, http, ratio })
}

pub fn render_comparison(comparison: &HttpComparison) -> String {
    format!(
        "{}\n{}\nJSON views {:.0}/s over gRPC views {:.0}/s: {:.2}x (target >= {HTTP_VIEW_RATIO_TARGET}x: {})\n",
        render(&comparison.grpc),
        render(&comparison.http),
        comparison.http.reads_per_second,
        comparison.grpc.reads_per_second,
        comparison.ratio,
        if comparison.ratio >= HTTP_VIEW_RATIO_TARGET { "PASS" } else { "MISS" }
    )
}

/// The summary as a table for a terminal.
pub fn render(summary: &BenchSummary) -> String {
    let mut text = format!(
        "{} workers for {:.1} s, {} reads per write, {} event(s){}{}{}\n",
        summary.concurrency,
        summary.duration_seconds,
        summary.reads_per_write,
        summary.events,
        if summary.hot_event { " (hot event)" } else { "" },
        match (summary.hold_only, summary.stream) {
            (true, true) => ", holds only, on the booking stream",
            (true, false) => ", holds only",
            (false, true) => ", writes on the booking stream",
            (false, false) => "",
        },
        match (summary.health_only, summary.views_only, summary.view_transport) {
            (true, _, _) => ", health checks only (the gRPC floor)",
            (false, true, ViewTransport::Grpc) => ", views only (gRPC GetEvent)",
            (false, true, ViewTransport::HttpJson) => ", views only (GET /v1/events/{id}, JSON over HTTP/1.1)",
            _ => "",
        }
    );
    text.push_str("operation      count    errors      per s    p50 us    p90 us    p99 us  p99.9 us    max us\n");
    for (operation, row) in &summary.operations {
        text.push_str(&format!(
            "{operation:<10} {:>9} {:>9} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            row.count, row.errors, row.per_second, row.p50_us, row.p90_us, row.p99_us, row.p999_us, row.max_us
        ));
    }
    text.push_str(&format!(
        "writes {:.0}/s, reads {:.0}/s; errors by code: {:?}\n",
        summary.writes_per_second, summary.reads_per_second, summary.errors_by_code
    ));
    if summary.events_cancelled > 0 {
        text.push_str(&format!(
            "cancelled the {} event(s) the run created (--keep-events keeps them)\n",
            summary.events_cancelled
        ));
    }
    text
}
