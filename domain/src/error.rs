//! Rejections the engine returns to callers. Each variant says what was wrong in words a caller can
//! act on; the gateway maps variants to gRPC status codes in one place (`gateway/src/error.rs`).
//!
//! These are business outcomes carried inside actor replies. An actor whose state can no longer be
//! trusted does not return one of these: it stops, as ractor's supervision intends.

/// What an engine operation may be refused with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{kind} '{id}' not found")]
    NotFound { kind: &'static str, id: String },

    /// `field` is the request field's path as on the wire, e.g. `seats.seat_ids[2]`.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },

    #[error("seats not available: {}", seat_ids.join(", "))]
    SeatsTaken { seat_ids: Vec<String> },

    #[error("section '{section_id}': {reason}")]
    NotEnoughSeats { section_id: String, reason: String },

    #[error("hold '{hold_id}' is {status}, not active")]
    HoldNotActive { hold_id: String, status: &'static str },

    #[error("hold '{hold_id}' was already confirmed as booking '{booking_id}'")]
    HoldAlreadyConfirmed { hold_id: String, booking_id: String },

    #[error("event '{event_id}' is cancelled and off sale")]
    EventCancelled { event_id: String },

    #[error("permission denied: {reason}")]
    PermissionDenied { reason: String },

    /// A configured bound was hit. `limit` names the bound.
    #[error("{limit}: {reason}")]
    LimitExceeded { limit: &'static str, reason: String },

    /// A ticket code that does not admit anyone (its booking was cancelled, or it was used).
    #[error("ticket rejected: {reason}")]
    TicketRejected { reason: TicketRejection },

    /// The waitlist does not take this request (places are on sale, or already offered).
    #[error("waitlist: {reason}")]
    Waitlist { reason: String },

    /// The event's waiting room does not allow this now (it is off, or not yet open).
    #[error("waiting room of event '{event_id}': {reason}")]
    Queue { event_id: String, reason: String },

    #[error("{kind} '{id}' already exists")]
    AlreadyExists { kind: &'static str, id: String },

    /// An idempotency key sent again with a different request. A retry (the same request) gets
    /// the first answer; a new request needs a new key.
    #[error("{field}: {} was already used {reason}", quoted(.key))]
    KeyReused { field: &'static str, key: String, reason: String },

    /// The component that owns the data is not running (stopped actor, shutting down).
    #[error("unavailable: {reason}")]
    Unavailable { reason: String },
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), reason: reason.into() }
    }

    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound { kind, id: id.into() }
    }
}

/// `value` in single quotes for an error message, cut after [`limits::QUOTED_CHARS_MAX`] characters.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(crate::limits::QUOTED_CHARS_MAX) {
        None => format!("'{value}'"),
        Some((cut, _)) => format!("'{}...'", &value[..cut]),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a ticket is refused at the door.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TicketRejection {
    Cancelled,
    AlreadyUsed { at_ms: u64 },
}

impl std::fmt::Display for TicketRejection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TicketRejection::Cancelled => write!(formatter, "the booking was cancelled"),
            TicketRejection::AlreadyUsed { at_ms } => write!(formatter, "already used (at {at_ms} ms since the epoch)"),
        }
    }
}
