//! Checked records. A frame is `crc32 (4 bytes, LE) | body`, where the CRC covers the record's key
//! and its body, so a record that is damaged, or valid but stored under the wrong key, is caught.

use crate::error::StoreError;

/// Builds a frame for `body` stored under `key`.
pub fn seal(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + body.len());
    seal_into(&mut frame, key, |out| out.extend_from_slice(body));
    frame
}

/// Appends a frame to `out` whose body `write_body` writes in place (no copy of the body).
pub fn seal_into(out: &mut Vec<u8>, key: &[u8], write_body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    write_body(out);
    let crc = checksum(key, &out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    debug_assert!(open(key, &out[start..], "self-check").is_ok());
}

/// Verifies a frame read back under `key`; `what` names the record in the error.
pub fn open<'a>(key: &[u8], frame: &'a [u8], what: &str) -> Result<&'a [u8], StoreError> {
    if frame.len() < 4 {
        return Err(StoreError::Corrupt {
            what: what.to_string(),
            reason: format!("record of {} bytes is too short", frame.len()),
        });
    }
    let (stored, body) = frame.split_at(4);
    let stored = u32::from_le_bytes(stored.try_into().expect("four bytes"));
    let computed = checksum(key, body);
    if stored != computed {
        return Err(StoreError::Corrupt {
            what: what.to_string(),
            reason: format!("checksum {stored:08x} does not match contents ({computed:08x})"),
        });
    }
    Ok(body)
}

fn checksum(key: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&(key.len() as u32).to_le_bytes());
    hasher.update(key);
    hasher.update(body);
    hasher.finalize()
}

/// Appends a length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Reads a length-prefixed byte string; returns it and the rest.
pub fn take_bytes<'a>(input: &'a [u8], what: &str) -> Result<(&'a [u8], &'a [u8]), StoreError> {
    let corrupt = || StoreError::Corrupt { what: what.to_string(), reason: "truncated field".into() };
    if input.len() < 4 {
        return Err(corrupt());
    }
    let (length, rest) = input.split_at(4);
    let length = u32::from_le_bytes(length.try_into().expect("four bytes")) as usize;
    if rest.len() < length {
        return Err(corrupt());
    }
    Ok(rest.split_at(length))
}

pub fn take_u64<'a>(input: &'a [u8], what: &str) -> Result<(u64, &'a [u8]), StoreError> {
    if input.len() < 8 {
        return Err(StoreError::Corrupt { what: what.to_string(), reason: "truncated number".into() });
    }
    let (number, rest) = input.split_at(8);
    Ok((u64::from_le_bytes(number.try_into().expect("eight bytes")), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_bit_or_a_wrong_key_is_caught() {
        let frame = seal(b"k1", b"hello");
        assert_eq!(open(b"k1", &frame, "r").unwrap(), b"hello");
        assert!(open(b"k2", &frame, "r").is_err());
        for position in 0..frame.len() {
            let mut damaged = frame.clone();
            damaged[position] ^= 0x10;
            assert!(open(b"k1", &damaged, "r").is_err(), "bit flip at {position} not caught");
        }
        assert!(open(b"k1", &frame[..3], "r").is_err());
    }
}
