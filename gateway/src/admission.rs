//! Signed tokens besides bearer tokens: the waiting room's queue token (proof of a place in an
//! event's line) and admission pass (one hold, for one buyer, one event, a number of seats, until
//! it expires), and the ticket code of each booked place (redeemed once at the door).
//!
//! All are HS256 JWTs under the node's secret, each with its own audience, so none can stand in
//! for another or for a bearer token (which carries a role and no audience).

use jsonwebtoken::Validation;
use serde::{Deserialize, Serialize};
use tonic::Status;
use turnstile_engine::ids::{BuyerId, EventId};

use crate::token::{self, unix_ms, ErrorKind, Keys};

const QUEUE_AUDIENCE: &str = "turnstile-queue";
const PASS_AUDIENCE: &str = "turnstile-pass";
const TICKET_AUDIENCE: &str = "turnstile-ticket";
/// A queue token outlives any realistic wait; the place itself is the engine's.
const QUEUE_TOKEN_TTL_SECONDS: u64 = 7 * 24 * 60 * 60;
/// Longest token accepted, well above what these claims sign to.
const TOKEN_LENGTH_MAX: usize = 1_024;

#[derive(Debug, Serialize, Deserialize)]
pub struct QueueClaims {
    pub sub: String,
    pub evt: String,
    /// The place when the token was issued (0 before the opening draw).
    pub pos: u64,
    pub aud: String,
    pub exp: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PassClaims {
    pub sub: String,
    pub evt: String,
    pub pos: u64,
    pub seats: u32,
    pub aud: String,
    /// Seconds, as JWTs have it; the exact end is `exp_ms`.
    pub exp: u64,
    pub exp_ms: u64,
}

/// A ticket code: which booking, which of its tickets. It does not expire; whether it still
/// admits is the booking's business (cancelled, already used).
#[derive(Debug, Serialize, Deserialize)]
pub struct TicketClaims {
    pub bkg: String,
    pub idx: u32,
    pub aud: String,
}

pub struct AdmissionTokens {
    keys: Keys,
    queue_validation: Validation,
    pass_validation: Validation,
    ticket_validation: Validation,
}

fn validation(audience: &str) -> Validation {
    token::validation(Some(audience), &["exp", "sub", "aud"], 0)
}

impl AdmissionTokens {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            keys: Keys::new(secret),
            queue_validation: validation(QUEUE_AUDIENCE),
            pass_validation: validation(PASS_AUDIENCE),
            // A ticket code does not expire: the booking's state says whether it admits.
            ticket_validation: token::validation(Some(TICKET_AUDIENCE), &["aud"], 0),
        }
    }

    /// The code of ticket `index` (in ticket order) of a booking.
    pub fn ticket_code(&self, booking_id: &str, index: u32) -> String {
        self.sign(&TicketClaims { bkg: booking_id.to_string(), idx: index, aud: TICKET_AUDIENCE.into() })
    }

    /// The booking and ticket a code names, if this node signed it; `None` for anything else.
    pub fn verify_ticket_code(&self, code: &str) -> Option<TicketClaims> {
        if code.len() > TOKEN_LENGTH_MAX {
            return None;
        }
        self.keys.verify::<TicketClaims>(code, &self.ticket_validation).ok()
    }

    fn sign<T: Serialize>(&self, claims: &T) -> String {
        self.keys.sign(claims)
    }

    pub fn queue_token(&self, buyer: &BuyerId, event_id: &EventId, position: u64) -> String {
        self.sign(&QueueClaims {
            sub: buyer.to_string(),
            evt: event_id.to_string(),
            pos: position,
            aud: QUEUE_AUDIENCE.into(),
            exp: unix_ms() / 1_000 + QUEUE_TOKEN_TTL_SECONDS,
        })
    }

    /// Checks a queue token presented by `buyer` for `event_id`.
    pub fn verify_queue_token(&self, token: &str, buyer: &BuyerId, event_id: &EventId) -> Result<QueueClaims, Status> {
        let claims = self.decode::<QueueClaims>(token, &self.queue_validation, "queue_token")?;
        if claims.sub != buyer.as_str() {
            return Err(Status::permission_denied("queue_token: issued to another buyer"));
        }
        if claims.evt != event_id.as_str() {
            return Err(Status::invalid_argument("queue_token: issued for another event"));
        }
        Ok(claims)
    }

    /// The pass is the same for the same admission, so a buyer who asks again gets it again.
    pub fn pass(&self, buyer: &BuyerId, event_id: &EventId, position: u64, seats: u32, expires_at_ms: u64) -> String {
        self.sign(&PassClaims {
            sub: buyer.to_string(),
            evt: event_id.to_string(),
            pos: position,
            seats,
            aud: PASS_AUDIENCE.into(),
            exp: expires_at_ms.div_ceil(1_000),
            exp_ms: expires_at_ms,
        })
    }

    /// Checks an admission pass presented by `buyer` for `event_id`: PERMISSION_DENIED saying
    /// why when it does not admit them.
    pub fn verify_pass(&self, token: &str, buyer: &BuyerId, event_id: &EventId) -> Result<PassClaims, Status> {
        let claims = self.decode::<PassClaims>(token, &self.pass_validation, "admission_pass")?;
        if claims.exp_ms <= unix_ms() {
            return Err(Status::permission_denied("admission_pass: has expired"));
        }
        if claims.sub != buyer.as_str() {
            return Err(Status::permission_denied("admission_pass: issued to another buyer"));
        }
        if claims.evt != event_id.as_str() {
            return Err(Status::permission_denied("admission_pass: issued for another event"));
        }
        Ok(claims)
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        validation: &Validation,
        field: &str,
    ) -> Result<T, Status> {
        if token.is_empty() {
            return Err(Status::permission_denied(format!("{field}: required while the event's waiting room is on")));
        }
        if token.len() > TOKEN_LENGTH_MAX {
            return Err(Status::invalid_argument(format!("{field}: longer than {TOKEN_LENGTH_MAX} bytes")));
        }
        self.keys.verify::<T>(token, validation).map_err(|error| {
            Status::permission_denied(match error.kind() {
                ErrorKind::ExpiredSignature => format!("{field}: has expired"),
                ErrorKind::InvalidSignature => format!("{field}: signature is invalid (forged or from another node)"),
                ErrorKind::InvalidAudience => format!("{field}: is not a {field}"),
                _ => format!("{field}: is not a valid token ({error})"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_and_queue_tokens_do_not_stand_in_for_each_other() {
        let tokens = AdmissionTokens::new(b"secret-for-tests-0123456789");
        let buyer = BuyerId::new("ann");
        let event = EventId::new("evt_0000000000000001");
        let expires = unix_ms() + 60_000;
        let pass = tokens.pass(&buyer, &event, 7, 4, expires);
        let claims = tokens.verify_pass(&pass, &buyer, &event).unwrap();
        assert_eq!((claims.pos, claims.seats, claims.exp_ms), (7, 4, expires));
        assert_eq!(pass, tokens.pass(&buyer, &event, 7, 4, expires), "the same admission signs the same pass");

        let queue_token = tokens.queue_token(&buyer, &event, 7);
        assert_eq!(tokens.verify_queue_token(&queue_token, &buyer, &event).unwrap().pos, 7);
        let error = tokens.verify_pass(&queue_token, &buyer, &event).unwrap_err();
        assert_eq!(error.code(), tonic::Code::PermissionDenied);
        assert!(tokens.verify_queue_token(&pass, &buyer, &event).is_err());

        let other = AdmissionTokens::new(b"another-secret-0123456789");
        let forged = other.pass(&buyer, &event, 7, 4, expires);
        assert!(tokens.verify_pass(&forged, &buyer, &event).unwrap_err().message().contains("signature"));
        let error = tokens.verify_pass(&pass, &BuyerId::new("bob"), &event).unwrap_err();
        assert!(error.message().contains("another buyer"), "{error:?}");
        let expired = tokens.pass(&buyer, &event, 7, 4, unix_ms() - 1);
        assert!(tokens.verify_pass(&expired, &buyer, &event).unwrap_err().message().contains("expired"));
        let error = tokens.verify_pass("", &buyer, &event).unwrap_err();
        assert!(error.message().contains("required"), "{error:?}");
    }
}
