//! The Rust client of Turnstile.
//!
//! - [`Client`]: a small pool of HTTP/2 connections to a node, typed clients of every service
//!   ([`Client::catalog`], [`Client::booking`], [`Client::queue`], [`Client::admin`]: every RPC,
//!   with the client's token attached), and the booking calls a backend makes most with retries
//!   ([`Client::hold`], [`Client::confirm`], ...).
//! - [`BookingStream`]: booking calls of many buyers, from many tasks at once, carried by one
//!   `BookingService.Book` stream: each call is a message tagged with its id, answers come back in
//!   any order and are matched to their callers. Calls made while others are in flight share the
//!   stream's frames and writes instead of each paying for a call of its own.
//!
//! Retries: a call that fails UNAVAILABLE (a node stopping, a broken connection, a failover) is
//! sent again, up to [`ClientBuilder::retries`] times with a growing pause, when sending it again
//! cannot do it twice: reads, and holds and confirmations, which always carry an idempotency key
//! (one is generated when the request has none), so the retry answers the first result.
//!
//! ```no_run
//! # async fn example() -> Result<(), turnstile_client::Error> {
//! use turnstile_client::{Client, pb};
//! let client = Client::builder("http://127.0.0.1:50051").token("<a buyer's token>").connect().await?;
//! let hold = client.hold(pb::HoldSeatsRequest {
//!     event_id: "evt_00000000000000e1".into(),
//!     selection: Some(pb::hold_seats_request::Selection::BestAvailable(pb::BestAvailable {
//!         section_id: "101".into(),
//!         quantity: 2,
//!     })),
//!     ..Default::default()
//! }).await?;
//! // Many buyers' holds, from many tasks, on one stream:
//! let stream = client.stream();
//! let other = stream.hold("<another buyer's token>", pb::HoldSeatsRequest::default()).await;
//! # let _ = (hold, other);
//! # Ok(())
//! # }
//! ```

mod stream;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tonic::codegen::InterceptedService;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
pub use turnstile_proto::v1 as pb;
use turnstile_proto::v1::admin_service_client::AdminServiceClient;
use turnstile_proto::v1::booking_service_client::BookingServiceClient;
use turnstile_proto::v1::catalog_service_client::CatalogServiceClient;
use turnstile_proto::v1::queue_service_client::QueueServiceClient;

pub use stream::BookingStream;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to {endpoint}: {source}")]
    Connect { endpoint: String, source: tonic::transport::Error },
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("the token is not printable ASCII")]
    Token,
    #[error(transparent)]
    Call(#[from] Status),
}

impl Error {
    /// The gRPC status of a failed call (`None` for a connection or setup error).
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Call(status) => Some(status),
            _ => None,
        }
    }
}

/// How a [`Client`] connects.
pub struct ClientBuilder {
    endpoint: String,
    connections: usize,
    token: Option<String>,
    retries: u32,
    timeout: Option<Duration>,
}

impl ClientBuilder {
    /// HTTP/2 connections in the pool (default 4); calls take them in turn.
    pub fn connections(mut self, connections: usize) -> Self {
        self.connections = connections.max(1);
        self
    }

    /// The bearer token sent with every call (a buyer's, or an admin's).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Times a call that failed UNAVAILABLE is sent again, when that is safe (default 3).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// A deadline for every call (none by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub async fn connect(self) -> Result<Client, Error> {
        let authorization = match &self.token {
            None => None,
            Some(token) => Some(bearer(token)?),
        };
        let mut endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|error| Error::Endpoint { endpoint: self.endpoint.clone(), reason: error.to_string() })?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        if let Some(timeout) = self.timeout {
            endpoint = endpoint.timeout(timeout);
        }
        let mut channels = Vec::with_capacity(self.connections);
        for _ in 0..self.connections {
            let channel = endpoint
                .connect()
                .await
                .map_err(|source| Error::Connect { endpoint: self.endpoint.clone(), source })?;
            channels.push(channel);
        }
        let stream = BookingStream::new(channels[0].clone(), authorization.clone(), self.retries);
        Ok(Client {
            inner: Arc::new(Inner { channels, next: AtomicUsize::new(0), retries: self.retries, stream }),
            authorization,
        })
    }
}

fn bearer(token: &str) -> Result<MetadataValue<Ascii>, Error> {
    MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| Error::Token)
}

struct Inner {
    channels: Vec<Channel>,
    next: AtomicUsize,
    retries: u32,
    stream: BookingStream,
}

/// A connection pool to one node. Cheap to clone; clones share the pool and the booking stream.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    authorization: Option<MetadataValue<Ascii>>,
}

/// Adds the client's `authorization` to every call.
#[derive(Clone)]
pub struct Authorize(Option<MetadataValue<Ascii>>);

impl Interceptor for Authorize {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(authorization) = &self.0 {
            if !request.metadata().contains_key("authorization") {
                request.metadata_mut().insert("authorization", authorization.clone());
            }
        }
        Ok(request)
    }
}

type Authorized = InterceptedService<Channel, Authorize>;

impl Client {
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder { endpoint: endpoint.into(), connections: 4, token: None, retries: 3, timeout: None }
    }

    /// Connects with the defaults and no token.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, Error> {
        Self::builder(endpoint).connect().await
    }

    /// The same pool and stream, calling with another token.
    pub fn with_token(&self, token: &str) -> Result<Self, Error> {
        Ok(Self { inner: self.inner.clone(), authorization: Some(bearer(token)?) })
    }

    /// The next connection of the pool.
    pub fn channel(&self) -> Channel {
        let index = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.channels.len();
        self.inner.channels[index].clone()
    }

    fn authorize(&self) -> Authorize {
        Authorize(self.authorization.clone())
    }

    pub fn catalog(&self) -> CatalogServiceClient<Authorized> {
        CatalogServiceClient::with_interceptor(self.channel(), self.authorize())
    }

    pub fn booking(&self) -> BookingServiceClient<Authorized> {
        BookingServiceClient::with_interceptor(self.channel(), self.authorize())
    }

    pub fn queue(&self) -> QueueServiceClient<Authorized> {
        QueueServiceClient::with_interceptor(self.channel(), self.authorize())
    }

    pub fn admin(&self) -> AdminServiceClient<Authorized> {
        AdminServiceClient::with_interceptor(self.channel(), self.authorize())
    }

    /// The booking stream this pool's clients share (opened on first use, again after a break).
    pub fn stream(&self) -> &BookingStream {
        &self.inner.stream
    }

    /// Runs `call` again while it fails UNAVAILABLE, up to the client's retries.
    pub async fn retrying<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        retry(self.inner.retries, &mut call).await
    }

    pub async fn get_event(&self, request: pb::GetEventRequest) -> Result<pb::GetEventResponse, Error> {
        Ok(self.retrying(|| async { Ok(self.catalog().get_event(request.clone()).await?.into_inner()) }).await?)
    }

    pub async fn search_events(&self, request: pb::SearchEventsRequest) -> Result<pb::SearchEventsResponse, Error> {
        Ok(self.retrying(|| async { Ok(self.catalog().search_events(request.clone()).await?.into_inner()) }).await?)
    }

    /// Holds seats; a request without an idempotency key gets one, so a retry cannot hold twice.
    pub async fn hold(&self, mut request: pb::HoldSeatsRequest) -> Result<pb::Hold, Error> {
        if request.idempotency_key.is_empty() {
            request.idempotency_key = idempotency_key();
        }
        let answer =
            self.retrying(|| async { Ok(self.booking().hold_seats(request.clone()).await?.into_inner()) }).await?;
        answer.hold.ok_or_else(|| Status::internal("the answer has no hold").into())
    }

    /// Confirms a hold into a booking; retried safely like [`Client::hold`].
    pub async fn confirm(&self, mut request: pb::ConfirmHoldRequest) -> Result<pb::Booking, Error> {
        if request.idempotency_key.is_empty() {
            request.idempotency_key = idempotency_key();
        }
        let answer =
            self.retrying(|| async { Ok(self.booking().confirm_hold(request.clone()).await?.into_inner()) }).await?;
        answer.booking.ok_or_else(|| Status::internal("the answer has no booking").into())
    }

    /// Releases a hold (not retried: its outcome after a failure is read with `get_hold`).
    pub async fn release(&self, hold_id: &str) -> Result<pb::Hold, Error> {
        let answer =
            self.booking().release_hold(pb::ReleaseHoldRequest { hold_id: hold_id.to_string() }).await?.into_inner();
        answer.hold.ok_or_else(|| Status::internal("the answer has no hold").into())
    }

    pub async fn get_hold(&self, hold_id: &str) -> Result<pb::Hold, Error> {
        let request = pb::GetHoldRequest { hold_id: hold_id.to_string() };
        let answer =
            self.retrying(|| async { Ok(self.booking().get_hold(request.clone()).await?.into_inner()) }).await?;
        answer.hold.ok_or_else(|| Status::internal("the answer has no hold").into())
    }

    /// Cancels a booking (not retried, like `release`).
    pub async fn cancel(&self, booking_id: &str) -> Result<pb::Booking, Error> {
        let request = pb::CancelBookingRequest { booking_id: booking_id.to_string() };
        let answer = self.booking().cancel_booking(request).await?.into_inner();
        answer.booking.ok_or_else(|| Status::internal("the answer has no booking").into())
    }

    pub async fn list_bookings(&self, request: pb::ListBookingsRequest) -> Result<pb::ListBookingsResponse, Error> {
        Ok(self.retrying(|| async { Ok(self.booking().list_bookings(request.clone()).await?.into_inner()) }).await?)
    }
}

/// A fresh idempotency key.
pub fn idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The pause before retry `attempt` (1-based): 50 ms, 100 ms, 200 ms, ... at most 1 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((50u64 << attempt.saturating_sub(1).min(5)).min(1_000))
}

/// Whether a call failed because its node was stopping: the node sent HTTP/2 GOAWAY with
/// NO_ERROR (a graceful shutdown) before it took the call. The call was not processed, so it is
/// safe to send again, like UNAVAILABLE. tonic reports it as INTERNAL ("h2 protocol error").
pub fn went_away(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        source = error.source();
    }
    false
}

/// Whether a call may be sent again as it was: the node was unavailable, or stopping.
fn retryable(status: &Status) -> bool {
    status.code() == Code::Unavailable || went_away(status)
}

async fn retry<T, F, Fut>(retries: u32, call: &mut F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(status) if retryable(&status) && attempt < retries => {
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff(1), Duration::from_millis(50));
        assert_eq!(backoff(2), Duration::from_millis(100));
        assert_eq!(backoff(4), Duration::from_millis(400));
        assert_eq!(backoff(30), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn only_unavailable_is_retried_and_only_so_often() {
        let mut calls = 0;
        let result: Result<(), Status> = retry(3, &mut || {
            calls += 1;
            async { Err(Status::unavailable("down")) }
        })
        .await;
        assert_eq!(result.unwrap_err().code(), Code::Unavailable);
        assert_eq!(calls, 4, "the call and three retries");

        let mut calls = 0;
        let result: Result<(), Status> = retry(3, &mut || {
            calls += 1;
            async { Err(Status::failed_precondition("taken")) }
        })
        .await;
        assert_eq!(result.unwrap_err().code(), Code::FailedPrecondition);
        assert_eq!(calls, 1);

        let mut calls = 0;
        let result = retry(3, &mut || {
            calls += 1;
            let outcome = if calls < 3 { Err(Status::unavailable("failover")) } else { Ok(calls) };
            async move { outcome }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
    }
}
