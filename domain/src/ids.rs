//! Identifier newtypes. Ids are strings on the wire; inside the engine each kind has its own type
//! so a hold id can never be passed where a booking id is expected.
//!
//! Hold and booking ids embed the id of their event (`hld_<event>_<suffix>`), so any node can
//! route a request naming only a hold or a booking to the actor that owns it.
//!
//! An id is shared, not copied: the same hold id sits in the holds map, the deadlines and every
//! view of the hold, and a buyer id in each of the buyer's holds, so a clone is a reference count.

use std::fmt;
use std::sync::Arc;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(Arc::from(value.into()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A buyer, as named by the `sub` claim of their token.
    BuyerId
);
string_id!(VenueId);
string_id!(PerformerId);
string_id!(EventId);
string_id!(HoldId);
string_id!(BookingId);

const EVENT_PREFIX: &str = "evt_";
const HOLD_PREFIX: &str = "hld_";
const BOOKING_PREFIX: &str = "bkg_";

/// Hex digits of the random part of a minted id (64 bits).
const SUFFIX_HEX_DIGITS: usize = 16;

/// Appends `nonce` as the random part of a minted id: `SUFFIX_HEX_DIGITS` lowercase hex digits.
fn push_hex_suffix(id: &mut String, nonce: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..SUFFIX_HEX_DIGITS).rev() {
        id.push(DIGITS[(nonce >> (shift * 4)) as usize & 0xf] as char);
    }
}

fn hex_suffix(nonce: u64) -> String {
    let mut suffix = String::with_capacity(SUFFIX_HEX_DIGITS);
    push_hex_suffix(&mut suffix, nonce);
    suffix
}

/// `<prefix><event key>_<suffix>`, written into one string of the right size and moved into the
/// shared id: an id is minted for every hold placed, on the event actor's path.
fn minted_in_event(prefix: &str, event_key: &str, nonce: u64) -> Arc<str> {
    let mut id = String::with_capacity(prefix.len() + event_key.len() + 1 + SUFFIX_HEX_DIGITS);
    id.push_str(prefix);
    id.push_str(event_key);
    id.push('_');
    push_hex_suffix(&mut id, nonce);
    Arc::from(id)
}

impl VenueId {
    pub fn mint(nonce: u64) -> Self {
        Self::new(format!("ven_{}", hex_suffix(nonce)))
    }
}

impl PerformerId {
    pub fn mint(nonce: u64) -> Self {
        Self::new(format!("prf_{}", hex_suffix(nonce)))
    }
}

impl EventId {
    pub fn mint(nonce: u64) -> Self {
        Self::new(format!("{EVENT_PREFIX}{}", hex_suffix(nonce)))
    }

    /// The part after the prefix, embedded in hold and booking ids.
    fn key(&self) -> &str {
        self.0.strip_prefix(EVENT_PREFIX).unwrap_or(&self.0)
    }
}

/// Splits `<prefix><event key>_<suffix>` into the event id, if the id has that shape.
fn owning_event(id: &str, prefix: &str) -> Option<EventId> {
    let rest = id.strip_prefix(prefix)?;
    let (event_key, suffix) = rest.split_once('_')?;
    let well_formed = |part: &str| part.len() == SUFFIX_HEX_DIGITS && part.bytes().all(|byte| byte.is_ascii_hexdigit());
    if !well_formed(event_key) || !well_formed(suffix) {
        return None;
    }
    Some(EventId::new(format!("{EVENT_PREFIX}{event_key}")))
}

impl HoldId {
    pub fn mint(event_id: &EventId, nonce: u64) -> Self {
        Self(minted_in_event(HOLD_PREFIX, event_id.key(), nonce))
    }

    /// The event that owns this hold, or `None` if the id is not one this engine mints.
    pub fn event_id(&self) -> Option<EventId> {
        owning_event(&self.0, HOLD_PREFIX)
    }
}

impl BookingId {
    pub fn mint(event_id: &EventId, nonce: u64) -> Self {
        Self(minted_in_event(BOOKING_PREFIX, event_id.key(), nonce))
    }

    /// The event that owns this booking, or `None` if the id is not one this engine mints.
    pub fn event_id(&self) -> Option<EventId> {
        owning_event(&self.0, BOOKING_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_and_booking_ids_name_their_event() {
        let event_id = EventId::mint(0xabc);
        let hold_id = HoldId::mint(&event_id, 7);
        let booking_id = BookingId::mint(&event_id, u64::MAX);
        assert_eq!(hold_id.event_id(), Some(event_id.clone()));
        assert_eq!(booking_id.event_id(), Some(event_id));
    }

    #[test]
    fn minted_ids_spell_the_nonce_in_sixteen_lowercase_hex_digits() {
        let event_id = EventId::mint(0xabc);
        for nonce in [0, 7, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            let expected = format!("{nonce:016x}");
            assert_eq!(HoldId::mint(&event_id, nonce).as_str(), format!("hld_0000000000000abc_{expected}"));
            assert_eq!(BookingId::mint(&event_id, nonce).as_str(), format!("bkg_0000000000000abc_{expected}"));
            assert_eq!(EventId::mint(nonce).as_str(), format!("evt_{expected}"));
            assert_eq!(VenueId::mint(nonce).as_str(), format!("ven_{expected}"));
            assert_eq!(PerformerId::mint(nonce).as_str(), format!("prf_{expected}"));
        }
    }

    #[test]
    fn malformed_ids_have_no_event() {
        for bad in ["", "hld_", "hld_zz_zz", "bkg_0000000000000abc_0000000000000007", "hld_0000000000000abc"] {
            assert_eq!(HoldId::new(bad).event_id(), None, "{bad}");
        }
        assert_eq!(BookingId::new("hld_0000000000000abc_0000000000000007").event_id(), None);
    }
}
