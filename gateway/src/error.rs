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
        | Error::Waitlist { .. } => Code::FailedPrecondition,
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
