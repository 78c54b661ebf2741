//! Every signed token Turnstile issues or checks is an HS256 JWT made here: buyers' bearer tokens
//! (`auth`), queue tokens, admission passes and ticket codes (`admission`), forwarded-call marks
//! (`forward`) and the credential nodes present to each other (`cluster`). Each kind has its own
//! claims and audience; this module holds the keys, signing, checking and the clock they share.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use jsonwebtoken::errors::{Error, ErrorKind};

/// Seconds since the Unix epoch, as tokens count time (`exp`, `nbf`).
pub fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0)
}

/// Milliseconds since the Unix epoch, for claims finer than a second.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis() as u64).unwrap_or(0)
}

/// What a kind of token must carry and how its time is checked.
pub fn validation(audience: Option<&str>, required: &[&str], leeway_seconds: u64) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = leeway_seconds;
    if let Some(audience) = audience {
        validation.set_audience(&[audience]);
    }
    validation.validate_exp = required.contains(&"exp");
    validation.set_required_spec_claims(required);
    validation
}

/// The signing and checking keys of one secret.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Keys {
    pub fn new(secret: &[u8]) -> Self {
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret) }
    }

    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    /// The claims of `token` if this secret signed it and `validation` accepts it.
    pub fn verify<C: DeserializeOwned>(&self, token: &str, validation: &Validation) -> Result<C, Error> {
        jsonwebtoken::decode::<C>(token, &self.decoding, validation).map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Claims {
        sub: String,
        aud: String,
        exp: u64,
    }

    #[test]
    fn a_token_checks_with_its_secret_and_audience_only() {
        let keys = Keys::new(b"token-module-test-secret-0123456789");
        let claims = Claims { sub: "ann".into(), aud: "a".into(), exp: unix_seconds() + 60 };
        let token = keys.sign(&claims);
        let checked: Claims = keys.verify(&token, &validation(Some("a"), &["exp", "aud"], 0)).unwrap();
        assert_eq!(checked, claims);
        let error = keys.verify::<Claims>(&token, &validation(Some("b"), &["exp", "aud"], 0)).unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::InvalidAudience);
        let other = Keys::new(b"another-secret-entirely-0123456789");
        let error = other.verify::<Claims>(&token, &validation(Some("a"), &["exp", "aud"], 0)).unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::InvalidSignature);
        let expired = keys.sign(&Claims { exp: unix_seconds() - 60, ..claims });
        let error = keys.verify::<Claims>(&expired, &validation(Some("a"), &["exp", "aud"], 0)).unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::ExpiredSignature);
    }
}
