//! Opaque page tokens. A token carries the offset of the next page and a fingerprint of the query
//! that produced it, so a token replayed against another query is refused instead of silently
//! returning a page of something else. Tokens are not secret and not signed: forging one only lets
//! a caller choose an offset, which it could do by paging anyway, and the offset is bounded.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::SearchError;
use crate::limits;

const FORMAT_VERSION: u8 = 1;
/// version (1) + offset (4, little endian) + query fingerprint (8, little endian).
const ENCODED_BYTES: usize = 13;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageToken {
    pub offset: u32,
    pub query_fingerprint: u64,
}

impl PageToken {
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; ENCODED_BYTES];
        bytes[0] = FORMAT_VERSION;
        bytes[1..5].copy_from_slice(&self.offset.to_le_bytes());
        bytes[5..13].copy_from_slice(&self.query_fingerprint.to_le_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes `token` and checks it belongs to the query with `query_fingerprint`.
    pub fn decode(token: &str, query_fingerprint: u64) -> Result<PageToken, SearchError> {
        let malformed = || SearchError::invalid("page_token", "is not a token this service issued");
        // A valid token is 18 characters; refuse anything much longer before decoding it.
        if token.len() > 4 * ENCODED_BYTES {
            return Err(malformed());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
        if bytes.len() != ENCODED_BYTES || bytes[0] != FORMAT_VERSION {
            return Err(malformed());
        }
        let mut offset_bytes = [0u8; 4];
        offset_bytes.copy_from_slice(&bytes[1..5]);
        let mut fingerprint_bytes = [0u8; 8];
        fingerprint_bytes.copy_from_slice(&bytes[5..13]);
        let decoded = PageToken {
            offset: u32::from_le_bytes(offset_bytes),
            query_fingerprint: u64::from_le_bytes(fingerprint_bytes),
        };
        if decoded.query_fingerprint != query_fingerprint {
            return Err(SearchError::invalid("page_token", "was issued for a different query"));
        }
        if u64::from(decoded.offset) >= limits::RESULT_DEPTH_MAX {
            return Err(SearchError::invalid(
                "page_token",
                format!("points past the deepest page; results are limited to the first {}", limits::RESULT_DEPTH_MAX),
            ));
        }
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let token = PageToken { offset: 140, query_fingerprint: 0xdead_beef_0bad_f00d };
        assert_eq!(PageToken::decode(&token.encode(), 0xdead_beef_0bad_f00d).unwrap(), token);
    }

    #[test]
    fn refuses_other_query_and_deep_offsets() {
        let token = PageToken { offset: 7, query_fingerprint: 1 };
        assert!(PageToken::decode(&token.encode(), 2).is_err());
        let deep = PageToken { offset: limits::RESULT_DEPTH_MAX as u32, query_fingerprint: 1 };
        assert!(PageToken::decode(&deep.encode(), 1).is_err());
        for garbage in ["", "!!!", "AAAA", "a".repeat(500).as_str(), "é"] {
            assert!(matches!(
                PageToken::decode(garbage, 1),
                Err(SearchError::InvalidArgument { field: "page_token", .. })
            ));
        }
    }
}
