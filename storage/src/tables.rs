//! Every redb table of a node, defined once.

use redb::TableDefinition;

/// The command log: index -> framed entry (term, stream, payload).
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Small named values: the vote, the purge point.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Each stream's (event's) latest checkpoint: stream -> framed (log index, state).
pub const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");
/// Plain records by kind and key (catalog entries, bookings): (kind, key) -> framed value.
pub const RECORDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("records");
/// A buyer's bookings, newest first: (buyer, u64::MAX - booked at ms, booking id) -> ().
pub const BUYER_BOOKINGS: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("buyer_bookings");

/// `META` key of the persisted vote (opaque bytes from the replication layer).
pub const META_VOTE: &str = "vote";
/// `META` key of the last purged log index (u64 little endian); entries up to it are gone.
pub const META_PURGED_INDEX: &str = "purged_index";
