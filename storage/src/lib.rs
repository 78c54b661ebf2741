//! Durable storage for Turnstile, in one redb file per node.
//!
//! Layout:
//! - [`tables`]: every redb table definition, in one place;
//! - [`frame`]: the checked record format: every value carries a CRC-32 over its bytes and its
//!   key, verified right before a write and right after a read;
//! - [`store`]: the [`Store`]: the command log (entries with index and term, a persisted vote,
//!   truncate and purge: the shape a replication engine's log store needs), checkpoints and plain
//!   records, written by one writer thread with group commit;
//! - [`raft_log`]: the replication log of a node's shard groups (entries, vote, committed and
//!   purge points, snapshots), in its own file, beside the store and sharing nothing with it;
//! - [`backup`]: consistent online backup and restore.
//!
//! The store knows bytes, not meaning: the engine serializes its commands and states.

pub mod backup;
pub mod error;
pub mod frame;
pub mod raft_log;
pub mod records;
pub mod released;
pub mod store;
pub mod tables;

pub use raft_log::{RaftDone, RaftLog, RaftWrite};
pub use records::RecordKind;
pub use released::Released;
pub use store::{CheckpointFiller, Committed, Done, LogEntry, Stats, Store, StoreError, StoreView, Write};

/// The file name of a node's database inside its data directory.
pub const DATABASE_FILE: &str = "turnstile.redb";

/// The file name of a node's replication log inside its data directory.
pub const RAFT_DATABASE_FILE: &str = "raft.redb";
