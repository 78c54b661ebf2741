//! Durable storage for Turnstile, in one redb file per node.
//!
//! Layout:
//! - [`tables`]: every redb table definition, in one place;
//! - [`frame`]: the checked record format: every value carries a CRC-32 over its bytes and its
//!   key, verified right before a write and right after a read;
//! - [`store`]: the [`Store`]: the command log (entries with index and term, a persisted vote,
//!   truncate and purge: the shape a replication engine's log store needs), checkpoints and plain
//!   records, written by one writer thread with group commit;
//! - [`backup`]: consistent online backup and restore.
//!
//! The store knows bytes, not meaning: the engine serializes its commands and states.

pub mod backup;
pub mod frame;
pub mod store;
pub mod tables;

pub use store::{Committed, Done, LogEntry, Stats, Store, StoreError, Write};

/// The file name of a node's database inside its data directory.
pub const DATABASE_FILE: &str = "turnstile.redb";
