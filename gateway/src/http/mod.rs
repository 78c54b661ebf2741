//! JSON over HTTP beside gRPC, on the same port: every route calls the same service method a gRPC
//! call reaches (same validation, authorization, rate limits, idempotency and forwarding), with
//! its request read from the route's path, query and JSON body and its answer written as JSON,
//! both in the proto3 JSON mapping of the proto's messages (`turnstile_proto::json`). The seat map
//! and a buyer's standing in a waiting room stream as server-sent events, and the node serves its
//! live seat-map page. docs/HTTP.md lists the routes.

mod page;

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use futures::StreamExt;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use tonic::{Code, Status};
use turnstile_proto::json;
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::admin_service_server::AdminService;
use turnstile_proto::v1::booking_service_server::BookingService;
use turnstile_proto::v1::catalog_service_server::CatalogService;
use turnstile_proto::v1::queue_service_server::QueueService;

use crate::auth::{Authenticator, Role};
use crate::config::Config;
use crate::state::Gateway;

/// What every route handler shares.
#[derive(Clone)]
struct Http {
    gateway: Gateway,
    /// Signs development tokens for the page, only while the server uses the shipped development
    /// secret (anyone can mint those anyway).
    development_tokens: Option<Arc<Authenticator>>,
    request_bytes_max: usize,
}

/// Headers of an HTTP request that travel into the call as gRPC metadata. Nothing else does: in
/// particular no `x-turnstile-*` header, which only nodes may send each other.
const FORWARDED_HEADERS: [&str; 2] = ["authorization", "x-request-id"];

/// How long a development token from `POST /v1/dev/token` lives.
const DEVELOPMENT_TOKEN_TTL_SECONDS: u64 = 12 * 3600;

/// The routes, to be merged into the gRPC server's router.
pub fn router(gateway: Gateway, config: &Config) -> axum::Router {
    let development_tokens = (config.auth.secret == crate::config::DEVELOPMENT_SECRET)
        .then(|| Arc::new(Authenticator::new(config.auth.secret.as_bytes())));
    let state = Http { gateway, development_tokens, request_bytes_max: config.limits.request_bytes_max };
    const GET: MethodFilter = MethodFilter::GET;
    const POST: MethodFilter = MethodFilter::POST;
    const DELETE: MethodFilter = MethodFilter::DELETE;
    const PATCH: MethodFilter = MethodFilter::PATCH;
    const PUT: MethodFilter = MethodFilter::PUT;
    const SEARCH: &[(&str, &str)] =
        &[("keyword", "query"), ("start", "starts_after"), ("end", "starts_before"), ("limit", "page_size")];
    const PAGES: &[(&str, &str)] = &[("limit", "page_size")];
    axum::Router::new()
        // Catalog.
        .route(
            "/v1/events/search",
            unary(
                GET,
                "turnstile.v1.SearchEventsRequest",
                "turnstile.v1.SearchEventsResponse",
                SEARCH,
                |g, r| async move { CatalogService::search_events(&g, r).await },
            ),
        )
        .route(
            "/v1/events/{event_id}",
            unary(GET, "turnstile.v1.GetEventRequest", "turnstile.v1.GetEventResponse", &[], |g, r| async move {
                CatalogService::get_event(&g, r).await
            })
            .merge(unary(
                PATCH,
                "turnstile.v1.UpdateEventRequest",
                "turnstile.v1.UpdateEventResponse",
                &[],
                |g, r| async move { AdminService::update_event(&g, r).await },
            )),
        )
        .route("/v1/events/{event_id}/watch", axum::routing::get(watch_event))
        // Holds and bookings.
        .route(
            "/v1/events/{event_id}/holds",
            unary(POST, "turnstile.v1.HoldSeatsRequest", "turnstile.v1.HoldSeatsResponse", &[], |g, r| async move {
                BookingService::hold_seats(&g, r).await
            }),
        )
        .route(
            "/v1/holds/{hold_id}",
            unary(GET, "turnstile.v1.GetHoldRequest", "turnstile.v1.GetHoldResponse", &[], |g, r| async move {
                BookingService::get_hold(&g, r).await
            })
            .merge(unary(
                DELETE,
                "turnstile.v1.ReleaseHoldRequest",
                "turnstile.v1.ReleaseHoldResponse",
                &[],
                |g, r| async move { BookingService::release_hold(&g, r).await },
            )),
        )
        .route(
            "/v1/holds/{hold_id}/confirm",
            unary(
                POST,
                "turnstile.v1.ConfirmHoldRequest",
                "turnstile.v1.ConfirmHoldResponse",
                &[],
                |g, r| async move { BookingService::confirm_hold(&g, r).await },
            ),
        )
        .route(
            "/v1/holds/{hold_id}/extend",
            unary(POST, "turnstile.v1.ExtendHoldRequest", "turnstile.v1.ExtendHoldResponse", &[], |g, r| async move {
                BookingService::extend_hold(&g, r).await
            }),
        )
        .route(
            "/v1/holds/{hold_id}/payment",
            unary(
                POST,
                "turnstile.v1.StartPaymentRequest",
                "turnstile.v1.StartPaymentResponse",
                &[],
                |g, r| async move { BookingService::start_payment(&g, r).await },
            ),
        )
        .route(
            "/v1/bookings",
            unary(
                GET,
                "turnstile.v1.ListBookingsRequest",
                "turnstile.v1.ListBookingsResponse",
                PAGES,
                |g, r| async move { BookingService::list_bookings(&g, r).await },
            ),
        )
        .route(
            "/v1/bookings/{booking_id}",
            unary(GET, "turnstile.v1.GetBookingRequest", "turnstile.v1.GetBookingResponse", &[], |g, r| async move {
                BookingService::get_booking(&g, r).await
            })
            .merge(unary(
                DELETE,
                "turnstile.v1.CancelBookingRequest",
                "turnstile.v1.CancelBookingResponse",
                &[],
                |g, r| async move { BookingService::cancel_booking(&g, r).await },
            )),
        )
        .route(
            "/v1/events/{event_id}/waitlist",
            unary(POST, "turnstile.v1.JoinWaitlistRequest", "turnstile.v1.WaitlistStatus", &[], |g, r| async move {
                BookingService::join_waitlist(&g, r).await
            })
            .merge(unary(
                GET,
                "turnstile.v1.GetWaitlistStatusRequest",
                "turnstile.v1.WaitlistStatus",
                &[],
                |g, r| async move { BookingService::get_waitlist_status(&g, r).await },
            ))
            .merge(unary(
                DELETE,
                "turnstile.v1.LeaveWaitlistRequest",
                "turnstile.v1.WaitlistStatus",
                &[],
                |g, r| async move { BookingService::leave_waitlist(&g, r).await },
            )),
        )
        // Waiting room.
        .route(
            "/v1/events/{event_id}/queue",
            unary(POST, "turnstile.v1.JoinQueueRequest", "turnstile.v1.JoinQueueResponse", &[], |g, r| async move {
                QueueService::join_queue(&g, r).await
            }),
        )
        .route("/v1/events/{event_id}/queue/watch", axum::routing::get(watch_queue))
        // Admin.
        .route(
            "/v1/venues",
            unary(
                POST,
                "turnstile.v1.CreateVenueRequest",
                "turnstile.v1.CreateVenueResponse",
                &[],
                |g, r| async move { AdminService::create_venue(&g, r).await },
            ),
        )
        .route(
            "/v1/performers",
            unary(
                POST,
                "turnstile.v1.CreatePerformerRequest",
                "turnstile.v1.CreatePerformerResponse",
                &[],
                |g, r| async move { AdminService::create_performer(&g, r).await },
            ),
        )
        .route(
            "/v1/events",
            unary(
                POST,
                "turnstile.v1.CreateEventRequest",
                "turnstile.v1.CreateEventResponse",
                &[],
                |g, r| async move { AdminService::create_event(&g, r).await },
            ),
        )
        .route(
            "/v1/events/{event_id}/cancel",
            unary(
                POST,
                "turnstile.v1.CancelEventRequest",
                "turnstile.v1.CancelEventResponse",
                &[],
                |g, r| async move { AdminService::cancel_event(&g, r).await },
            ),
        )
        .route(
            "/v1/events/{event_id}/queue/config",
            unary(
                PUT,
                "turnstile.v1.ConfigureQueueRequest",
                "turnstile.v1.ConfigureQueueResponse",
                &[],
                |g, r| async move { AdminService::configure_queue(&g, r).await },
            ),
        )
        .route(
            "/v1/events/{event_id}/pricing",
            unary(PUT, "turnstile.v1.SetPricingRequest", "turnstile.v1.SetPricingResponse", &[], |g, r| async move {
                AdminService::set_pricing(&g, r).await
            }),
        )
        .route(
            "/v1/events/{event_id}/report",
            unary(
                GET,
                "turnstile.v1.GetEventReportRequest",
                "turnstile.v1.GetEventReportResponse",
                &[],
                |g, r| async move { AdminService::get_event_report(&g, r).await },
            ),
        )
        .route(
            "/v1/tickets/redeem",
            unary(
                POST,
                "turnstile.v1.RedeemTicketRequest",
                "turnstile.v1.RedeemTicketResponse",
                &[],
                |g, r| async move { AdminService::redeem_ticket(&g, r).await },
            ),
        )
        .route(
            "/v1/backups",
            unary(
                POST,
                "turnstile.v1.CreateBackupRequest",
                "turnstile.v1.CreateBackupResponse",
                &[],
                |g, r| async move { AdminService::create_backup(&g, r).await },
            ),
        )
        .route(
            "/v1/node",
            unary(
                GET,
                "turnstile.v1.GetNodeStatusRequest",
                "turnstile.v1.GetNodeStatusResponse",
                &[],
                |g, r| async move { AdminService::get_node_status(&g, r).await },
            ),
        )
        .route(
            "/v1/cluster/members",
            unary(
                POST,
                "turnstile.v1.ChangeClusterMembersRequest",
                "turnstile.v1.ChangeClusterMembersResponse",
                &[],
                |g, r| async move { AdminService::change_cluster_members(&g, r).await },
            ),
        )
        .route("/v1/dev/token", axum::routing::post(development_token))
        .route("/v1/{*rest}", axum::routing::any(no_route))
        .merge(page::routes())
        .layer(axum::middleware::from_fn(record))
        .with_state(state)
}

/// A route that reads `request` (a message's full name, "turnstile.v1.X") from the path, the query and the JSON
/// body, calls `rpc` with it and answers `response` as JSON. `aliases` rename query parameters
/// to the message's fields (the names the design notes use, such as `keyword` for `query`).
fn unary<Req, Resp, F, Fut>(
    method: MethodFilter,
    request: &'static str,
    response: &'static str,
    aliases: &'static [(&'static str, &'static str)],
    rpc: F,
) -> MethodRouter<Http>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + 'static,
    F: Fn(Gateway, tonic::Request<Req>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>> + Send + 'static,
{
    on(method, move |State(http): State<Http>, request_in: Request| {
        let rpc = rpc.clone();
        async move {
            let (mut parts, body) = request_in.into_parts();
            let message = match read_request::<Req>(&http, &mut parts, body, request, aliases).await {
                Ok(message) => message,
                Err(refusal) => return refusal,
            };
            match rpc(http.gateway.clone(), grpc_request(&parts, message)).await {
                Ok(answer) => json_response(response, &answer.into_inner()),
                Err(status) => error(&status),
            }
        }
    })
}

/// The message a route carries: path parameters and query parameters set fields of the JSON body.
/// A request that cannot be read is answered here: 413 for a body over the limit, else the
/// refusal's status.
async fn read_request<Req: prost::Message + Default>(
    http: &Http,
    parts: &mut http::request::Parts,
    body: axum::body::Body,
    message: &str,
    aliases: &[(&str, &str)],
) -> Result<Req, Response> {
    let body = match axum::body::to_bytes(body, http.request_bytes_max).await {
        Ok(body) => body,
        Err(_) => {
            let limit = http.request_bytes_max;
            let status = Status::resource_exhausted(format!("the body is over the limit of {limit} bytes"));
            let mut response = error(&status);
            *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return Err(response);
        }
    };
    read_values(parts, &body, message, aliases).await.map_err(|status| error(&status))
}

async fn read_values<Req: prost::Message + Default>(
    parts: &mut http::request::Parts,
    body: &[u8],
    message: &str,
    aliases: &[(&str, &str)],
) -> Result<Req, Status> {
    let path = Path::<Vec<(String, String)>>::from_request_parts(parts, &())
        .await
        .map_err(|rejection| Status::invalid_argument(format!("the address: {}", rejection.body_text())))?;
    let query: Vec<(String, String)> = match parts.uri.query() {
        None => Vec::new(),
        Some(query) => serde_urlencoded::from_str(query)
            .map_err(|error| Status::invalid_argument(format!("the query string: {error}")))?,
    };
    let mut values: Vec<(&str, &str)> = Vec::with_capacity(path.len() + query.len() + 1);
    for (name, value) in path.iter() {
        values.push((name, value));
    }
    for (name, value) in &query {
        let name = aliases.iter().find(|(alias, _)| alias == name).map_or(name.as_str(), |(_, field)| field);
        if values.iter().any(|(given, _)| *given == name) {
            return Err(Status::invalid_argument(format!("{name}: given more than once")));
        }
        values.push((name, value));
    }
    // The usual HTTP way to name a retry; the body's field works as well.
    let key_header = parts.headers.get("idempotency-key").filter(|_| json::has_field(message, "idempotency_key"));
    if let Some(key) = key_header {
        let key = key.to_str().map_err(|_| Status::invalid_argument("idempotency-key: not text"))?;
        values.push(("idempotency_key", key));
    }
    json::decode_parts(message, body, &values).map_err(|error| Status::invalid_argument(error.to_string()))
}

/// The call as the gRPC service sees it: the message, the caller's credentials and address.
fn grpc_request<T>(parts: &http::request::Parts, message: T) -> tonic::Request<T> {
    let mut headers = HeaderMap::new();
    for name in FORWARDED_HEADERS {
        if let Some(value) = parts.headers.get(name) {
            headers.insert(name, value.clone());
        }
    }
    let mut request =
        tonic::Request::from_parts(tonic::metadata::MetadataMap::from_headers(headers), Default::default(), message);
    // The connection's address, which rate limits per client address go by.
    if let Some(info) = parts.extensions.get::<tonic::transport::server::TcpConnectInfo>() {
        request.extensions_mut().insert(info.clone());
    }
    if let Some(info) =
        parts.extensions.get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
    {
        request.extensions_mut().insert(info.clone());
    }
    request
}

fn json_response<T: prost::Message>(message: &str, value: &T) -> Response {
    let body = json::encode(message, value);
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// The HTTP status of a gRPC code (the mapping Google's HTTP APIs use) and the code's name.
pub fn http_status(code: Code) -> (StatusCode, &'static str) {
    match code {
        Code::Ok => (StatusCode::OK, "OK"),
        Code::Cancelled => (StatusCode::from_u16(499).expect("499 is a status"), "CANCELLED"),
        Code::Unknown => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        Code::InvalidArgument => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED"),
        Code::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        Code::AlreadyExists => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED"),
        Code::FailedPrecondition => (StatusCode::CONFLICT, "FAILED_PRECONDITION"),
        Code::Aborted => (StatusCode::CONFLICT, "ABORTED"),
        Code::OutOfRange => (StatusCode::BAD_REQUEST, "OUT_OF_RANGE"),
        Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "UNIMPLEMENTED"),
        Code::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        Code::DataLoss => (StatusCode::INTERNAL_SERVER_ERROR, "DATA_LOSS"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
    }
}

/// The field a message names, when it starts the way the services name a bad field
/// ("seat_ids: ...", "seats.seatIds: ...").
fn field_of(message: &str) -> Option<&str> {
    let (field, _) = message.split_once(": ")?;
    let plausible = !field.is_empty()
        && field.len() <= 64
        && field.starts_with(|c: char| c.is_ascii_alphabetic())
        && field.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'));
    plausible.then_some(field)
}

/// The JSON form of a failed call: `{"code", "message", "field"?}`.
fn error_body(status: &Status) -> serde_json::Value {
    let (_, code) = http_status(status.code());
    let mut body = serde_json::json!({ "code": code, "message": status.message() });
    if let Some(field) = field_of(status.message()) {
        body["field"] = serde_json::Value::String(field.to_string());
    }
    body
}

fn error(status: &Status) -> Response {
    let (http_status, _) = http_status(status.code());
    let mut response = (
        http_status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        error_body(status).to_string(),
    )
        .into_response();
    // A rate limit says how long to wait: HTTP's Retry-After is in whole seconds.
    if let Some(wait_ms) = status
        .metadata()
        .get("retry-after-ms")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
    {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait_ms.div_ceil(1000).max(1)));
    }
    if status.code() == Code::Unauthenticated {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

async fn no_route(request: Request) -> Response {
    error(&Status::not_found(format!(
        "no route {} {} (docs/HTTP.md lists them)",
        request.method(),
        request.uri().path()
    )))
}

/// `GET /v1/events/{event_id}/watch`: the live seat map as server-sent events, each with the
/// event version it brings the client to as its id. A browser that reconnects sends the last id it
/// saw as `Last-Event-ID` and continues exactly after it (`?after_version=` does the same by hand).
async fn watch_event(State(http): State<Http>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let last_event_id = parts.headers.get("last-event-id").map(|value| value.to_str().map(str::to_owned));
    let mut message =
        match read_request::<pb::WatchEventRequest>(&http, &mut parts, body, "turnstile.v1.WatchEventRequest", &[])
            .await
        {
            Ok(message) => message,
            Err(refusal) => return refusal,
        };
    match last_event_id {
        None => {}
        Some(Ok(id)) if id.is_empty() => {}
        Some(Ok(id)) => match id.parse::<u64>() {
            Ok(version) => message.after_version = version,
            Err(_) => return error(&Status::invalid_argument(format!("last-event-id: not an event version: {id:?}"))),
        },
        Some(Err(_)) => return error(&Status::invalid_argument("last-event-id: not text")),
    }
    let answer = CatalogService::watch_event(&http.gateway, grpc_request(&parts, message)).await;
    server_sent(answer, |change| {
        Event::default()
            .id(change.version.to_string())
            .data(text(json::encode("turnstile.v1.WatchEventResponse", change)))
    })
}

/// `GET /v1/events/{event_id}/queue/watch?queue_token=`: the buyer's standing in the waiting room
/// as server-sent events, until they are admitted (the last carries the pass) or the line ends.
async fn watch_queue(State(http): State<Http>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let message =
        match read_request::<pb::WatchQueueRequest>(&http, &mut parts, body, "turnstile.v1.WatchQueueRequest", &[])
            .await
        {
            Ok(message) => message,
            Err(refusal) => return refusal,
        };
    let answer = QueueService::watch_queue(&http.gateway, grpc_request(&parts, message)).await;
    server_sent(answer, |standing| Event::default().data(text(json::encode("turnstile.v1.QueueStanding", standing))))
}

/// A streaming call's answer as server-sent events: each message as `event` renders it, a failure
/// mid-stream as an `error` event with the error body (then the stream ends); a call refused at
/// once is an ordinary error response.
fn server_sent<T: 'static, S>(answer: Result<tonic::Response<S>, Status>, event: fn(&T) -> Event) -> Response
where
    S: futures::Stream<Item = Result<T, Status>> + Send + 'static,
{
    match answer {
        Err(status) => error(&status),
        Ok(stream) => {
            let events = stream.into_inner().map(move |item| {
                Ok::<_, std::convert::Infallible>(match item {
                    Ok(message) => event(&message),
                    Err(status) => Event::default().event("error").data(error_body(&status).to_string()),
                })
            });
            Sse::new(events).keep_alive(KeepAlive::default()).into_response()
        }
    }
}

fn text(json: Vec<u8>) -> String {
    String::from_utf8(json).expect("serde_json writes UTF-8")
}

/// `POST /v1/dev/token {"user": "..."}`: a buyer token for the seat-map page, only while the
/// server runs with the shipped development secret (with it anyone can mint tokens anyway).
async fn development_token(State(http): State<Http>, body: Bytes) -> Response {
    let Some(authenticator) = &http.development_tokens else {
        return error(&Status::not_found(
            "development tokens are issued only while the server uses the shipped development secret",
        ));
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        user: String,
    }
    let user = match serde_json::from_slice::<Body>(&body) {
        Ok(body) => body.user,
        Err(error) => return self::error(&Status::invalid_argument(format!("the body: {error}"))),
    };
    let valid = (1..=64).contains(&user.len())
        && user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if !valid {
        return error(&Status::invalid_argument("user: 1 to 64 letters, digits, '-', '_', '.' or '@'"));
    }
    let token = authenticator.mint(&user, Role::User, DEVELOPMENT_TOKEN_TTL_SECONDS);
    let body = serde_json::json!({ "token": token, "user": user, "expiresInSeconds": DEVELOPMENT_TOKEN_TTL_SECONDS });
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response()
}

/// Times every HTTP request by route (the route's pattern, not its address) and status.
async fn record(request: Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let method = request.method().as_str().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(
        "turnstile_http_seconds",
        "route" => route,
        "method" => method,
        "status" => response.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// The CORS layer for the whole port (JSON routes and grpc-web), or none when no origin is
/// configured (the node's own page is same-origin).
pub fn cors(config: &Config) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins = &config.http.cors_allowed_origins;
    if !config.http.enabled || origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins.iter().map(|origin| HeaderValue::from_str(origin).expect("validated with the config")),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                http::Method::GET,
                http::Method::POST,
                http::Method::PUT,
                http::Method::PATCH,
                http::Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                http::HeaderName::from_static("idempotency-key"),
                http::HeaderName::from_static("last-event-id"),
                http::HeaderName::from_static("x-request-id"),
                http::HeaderName::from_static("x-grpc-web"),
                http::HeaderName::from_static("x-user-agent"),
                http::HeaderName::from_static("grpc-timeout"),
            ])
            .expose_headers([
                header::RETRY_AFTER,
                http::HeaderName::from_static("grpc-status"),
                http::HeaderName::from_static("grpc-message"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_field_is_reported_and_prose_is_not_taken_for_one() {
        assert_eq!(field_of("seat_ids: must not be empty"), Some("seat_ids"));
        assert_eq!(field_of("seats.seatIds: invalid type"), Some("seats.seatIds"));
        assert_eq!(field_of("event e1 was not found: gone"), None);
        assert_eq!(field_of("no colon here"), None);
    }

    #[test]
    fn every_code_has_an_http_status_and_errors_map_the_usual_way() {
        assert_eq!(http_status(Code::NotFound).0, StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::Unauthenticated).0, StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(Code::ResourceExhausted).0, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(http_status(Code::FailedPrecondition).0, StatusCode::CONFLICT);
        assert_eq!(http_status(Code::Unavailable).0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
