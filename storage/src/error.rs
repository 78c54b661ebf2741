//! What the store and the replication log answer when they cannot do what was asked.

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("storage error in {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("corrupt record: {what}: {reason}")]
    Corrupt { what: String, reason: String },
    /// Its bound of queued writes is reached (`store::QUEUE_DEPTH_MAX`, `raft_log::QUEUE_DEPTH_MAX`).
    #[error("the storage queue is full; retry shortly")]
    Full,
    #[error("the store is stopped")]
    Stopped,
    #[error("an earlier write of '{0}' failed; it must be rebuilt from the log before it writes again")]
    Poisoned(String),
    /// A write out of bounds, refused before it reached the disk (replication log).
    #[error("write refused: {0}")]
    Refused(String),
}
