//! The one place where engine rejections become gRPC statuses.

use tonic::{Code, Status};
use turnstile_engine::Error;

pub fn status(error: Error) -> Status {
    let code = match &error {
        Error::NotFound { .. } => Code::NotFound,
        Error::InvalidArgument { .. } => Code::InvalidArgument,
        Error::SeatsTaken { .. }
        | Error::NotEnoughSeats { .. }
        | Error::HoldNotActive { .. }
        | Error::HoldAlreadyConfirmed { .. }
        | Error::EventCancelled { .. }
        | Error::Queue { .. }
        | Error::TicketRejected { .. }
        | Error::Waitlist { .. }
        | Error::KeyReused { .. } => Code::FailedPrecondition,
        Error::PermissionDenied { .. } => Code::PermissionDenied,
        Error::LimitExceeded { .. } => Code::ResourceExhausted,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        Error::Unavailable { .. } => Code::Unavailable,
    };
    Status::new(code, error.to_string())
}

/// A request field that failed the gateway's own checks.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

/// tonic answers a request over `limits.request_bytes_max` OUT_OF_RANGE before any handler runs;
/// gRPC's convention for a message over the size limit is RESOURCE_EXHAUSTED. This layer rewrites
/// that code (and, for health checks only, tonic's INTERNAL for request bytes that do not decode
/// into INVALID_ARGUMENT). Turnstile's own answers never use OUT_OF_RANGE, so every one leaving the server is
/// tonic's size check. The check runs before a response starts, so the code is in the headers (a
/// trailers-only response), never in a stream's trailers.
#[derive(Clone, Copy, Default)]
pub struct StatusCodeLayer;

/// `grpc-status` of OUT_OF_RANGE as it travels, compared without formatting it per response.
const OUT_OF_RANGE: &[u8] = b"11";
const _: () = assert!(Code::OutOfRange as i32 == 11);
const INTERNAL: &[u8] = b"13";
const _: () = assert!(Code::Internal as i32 == 13);
/// How prost's decode error starts, as grpc-message carries it (percent-encoded).
const DECODE_FAILED: &[u8] = b"failed%20to%20decode%20Protobuf%20message";
const HEALTH_PATH: &str = "/grpc.health.v1.Health/";

impl<S> tower::Layer<S> for StatusCodeLayer {
    type Service = StatusCodeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StatusCodeService { inner }
    }
}

#[derive(Clone)]
pub struct StatusCodeService<S> {
    inner: S,
}

impl<S, B, ResponseBody> tower::Service<http::Request<B>> for StatusCodeService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // Health checking is tonic's service with tonic's codec, which answers request bytes that
        // do not decode INTERNAL (Turnstile's own services use a codec that answers
        // INVALID_ARGUMENT). Only there is such an INTERNAL the client's fault.
        let health = request.uri().path().starts_with(HEALTH_PATH);
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            let headers = response.headers_mut();
            if headers.get("grpc-status").is_some_and(|code| code.as_bytes() == OUT_OF_RANGE) {
                let resource_exhausted = http::HeaderValue::from(Code::ResourceExhausted as i32);
                headers.insert("grpc-status", resource_exhausted);
            } else if health
                && headers.get("grpc-status").is_some_and(|code| code.as_bytes() == INTERNAL)
                && headers.get("grpc-message").is_some_and(|message| message.as_bytes().starts_with(DECODE_FAILED))
            {
                headers.insert("grpc-status", http::HeaderValue::from(Code::InvalidArgument as i32));
            }
            Ok(response)
        })
    }
}
