//! Bearer tokens: HS256 JWTs with `sub` (the buyer), `role` (`user` or `admin`) and `exp`; an
//! `nbf` (not before), when present, is honoured.
//! The site's backend mints them; `turnstile token` mints one for development.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use jsonwebtoken::Validation;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;
use tonic::Status;
use turnstile_engine::ids::BuyerId;
use turnstile_engine::inventory::Caller;

use crate::token::{self, unix_seconds, ErrorKind, Keys};

/// Longest accepted `sub` claim.
const SUBJECT_LENGTH_MAX: usize = 128;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const CLOCK_LEEWAY_SECONDS: u64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Tokens verified recently, kept until they expire: a buyer's backend sends the same token with
/// every call of a purchase, and a stream may carry one per message.
const VERIFIED_TOKENS_MAX: usize = 65_536;

#[derive(Clone)]
struct Verified {
    caller: Caller,
    exp: u64,
}

#[derive(Clone)]
pub struct Authenticator {
    keys: Keys,
    validation: Validation,
    /// Verified tokens by their text, until their `exp` (with the same leeway as a verification).
    /// Only a token that verified is kept, so a forged one is checked on every call.
    verified: Arc<Mutex<lru::LruCache<Box<str>, Verified>>>,
}

impl Authenticator {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = token::validation(None, &["exp", "sub"], CLOCK_LEEWAY_SECONDS);
        // jsonwebtoken checks `nbf` only when asked; a token not valid yet must not act.
        validation.validate_nbf = true;
        Self {
            keys: Keys::new(secret),
            validation,
            verified: Arc::new(Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(VERIFIED_TOKENS_MAX).expect("a non-zero bound"),
            ))),
        }
    }

    pub fn mint(&self, subject: &str, role: Role, ttl_seconds: u64) -> String {
        self.mint_claims(&Claims { sub: subject.to_string(), role, exp: unix_seconds() + ttl_seconds })
    }

    pub fn mint_claims(&self, claims: &Claims) -> String {
        self.keys.sign(claims)
    }

    /// The caller named by the request's bearer token; `None` when there is no token at all.
    pub fn caller(&self, metadata: &MetadataMap) -> Result<Option<Caller>, Status> {
        let Some(header) = metadata.get("authorization") else {
            return Ok(None);
        };
        let header =
            header.to_str().map_err(|_| Status::unauthenticated("authorization header is not printable ASCII"))?;
        let Some(token) = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")) else {
            return Err(Status::unauthenticated("authorization header must be 'Bearer <token>'"));
        };
        let token = token.trim();
        let now = unix_seconds();
        if let Some(verified) = self.verified.lock().expect("token cache lock").get(token) {
            if now <= verified.exp + CLOCK_LEEWAY_SECONDS {
                return Ok(Some(verified.caller.clone()));
            }
        }
        let claims = self.keys.verify::<Claims>(token, &self.validation).map_err(|error| {
            Status::unauthenticated(match error.kind() {
                ErrorKind::ExpiredSignature => "token has expired".to_string(),
                ErrorKind::ImmatureSignature => "token is not valid yet (its 'nbf' is in the future)".to_string(),
                ErrorKind::InvalidSignature => "token signature is invalid".to_string(),
                ErrorKind::InvalidAlgorithm => "token must be signed with HS256".to_string(),
                ErrorKind::MissingRequiredClaim(claim) => {
                    format!("token lacks the '{claim}' claim")
                }
                ErrorKind::Json(_) => "token claims must be sub, role (user or admin) and exp".to_string(),
                _ => format!("token is malformed: {error}"),
            })
        })?;
        if claims.sub.is_empty() || claims.sub.len() > SUBJECT_LENGTH_MAX {
            return Err(Status::unauthenticated(format!("token 'sub' must be 1 to {SUBJECT_LENGTH_MAX} bytes")));
        }
        let caller = Caller { buyer: BuyerId::new(claims.sub), admin: claims.role == Role::Admin };
        // Verified now, `nbf` included: it stays valid until `exp`.
        let verified = Verified { caller: caller.clone(), exp: claims.exp };
        self.verified.lock().expect("token cache lock").put(token.into(), verified);
        Ok(Some(caller))
    }

    /// A caller is required.
    pub fn require_caller(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        self.caller(metadata)?.ok_or_else(|| {
            Status::unauthenticated("missing authorization header: send 'authorization: Bearer <token>'")
        })
    }

    /// An admin caller is required.
    pub fn require_admin(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        let caller = self.require_caller(metadata)?;
        if !caller.admin {
            return Err(Status::permission_denied("this call needs a token with role 'admin'"));
        }
        Ok(caller)
    }
}

/// The load generator's buyers and admin, signed with this node's secret.
impl turnstile_tools::loadgen::TokenMinter for Authenticator {
    fn buyer(&self, subject: &str) -> String {
        self.mint(subject, Role::User, 86_400)
    }

    fn admin(&self, subject: &str) -> String {
        self.mint(subject, Role::Admin, 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
        metadata
    }

    #[test]
    fn a_verified_token_is_kept_until_it_expires_and_a_bad_one_never() {
        let authenticator = Authenticator::new(b"unit-test-secret-0123456789abcdef");
        let token = authenticator.mint("ann", Role::User, 60);
        let caller = authenticator.require_caller(&bearer(&token)).unwrap();
        assert_eq!(caller.buyer.as_str(), "ann");
        assert_eq!(authenticator.verified.lock().unwrap().len(), 1);
        assert_eq!(authenticator.require_caller(&bearer(&token)).unwrap(), caller);

        // Forged: refused every time, never kept.
        let forged = Authenticator::new(b"another-secret-0123456789abcdefgh").mint("ann", Role::Admin, 60);
        for _ in 0..2 {
            assert!(authenticator.require_caller(&bearer(&forged)).is_err());
        }
        assert_eq!(authenticator.verified.lock().unwrap().len(), 1);

        // A kept token whose `exp` has passed is verified again, and refused.
        let expired =
            authenticator.mint_claims(&Claims { sub: "bob".into(), role: Role::User, exp: unix_seconds() - 60 });
        let stale = Verified { caller: Caller { buyer: BuyerId::new("bob"), admin: false }, exp: unix_seconds() - 60 };
        authenticator.verified.lock().unwrap().put(expired.as_str().into(), stale);
        let error = authenticator.require_caller(&bearer(&expired)).unwrap_err();
        assert_eq!(error.message(), "token has expired");
    }
}
