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

/// Replication logs of every shard group of a node, in their own file
/// ([`crate::RAFT_DATABASE_FILE`]): (group, index) -> framed entry (opaque bytes of the
/// replication layer).
pub const RAFT_LOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("raft_log");
/// Small named values per group: (group, name) -> framed bytes. Names: [`RAFT_META_VOTE`],
/// [`RAFT_META_COMMITTED`], [`RAFT_META_PURGED`].
pub const RAFT_META: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("raft_meta");
/// Each group's current state-machine snapshot: group -> framed bytes (metadata and data, encoded
/// by the replication layer).
pub const RAFT_SNAPSHOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_snapshots");

/// `RAFT_META` name of a group's persisted vote.
pub const RAFT_META_VOTE: &str = "vote";
/// `RAFT_META` name of a group's last known committed log id.
pub const RAFT_META_COMMITTED: &str = "committed";
/// `RAFT_META` name of a group's last purged log id; entries up to its index are gone.
pub const RAFT_META_PURGED: &str = "purged";
