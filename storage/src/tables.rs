//! Every redb table of a node, defined once.

use redb::TableDefinition;

/// The command log: index -> framed entry (term, stream, payload).
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Small named values: the vote, the purge point.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Checkpoints as written before they were split into chunks: stream -> framed (log index,
/// state). Still read, for files written by earlier versions; a stream's first chunked checkpoint
/// removes its entry here.
pub const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");
/// Each stream's (event's) current checkpoint: stream -> framed (log index it covers, number of
/// chunks, length of the state). Written in the same transaction as the checkpoint's last chunk.
pub const CHECKPOINT_HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoint_heads");
/// The state of checkpoints in pieces of at most `store::CHECKPOINT_CHUNK_BYTES`: (stream, log
/// index the checkpoint covers, chunk number) -> framed bytes. Chunks of a checkpoint whose head
/// was never written (a crash mid-way, or a newer checkpoint of the stream came first) are removed
/// when the stream's next head is written.
pub const CHECKPOINT_CHUNKS: TableDefinition<(&str, u64, u32), &[u8]> = TableDefinition::new("checkpoint_chunks");
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
