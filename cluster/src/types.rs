//! The types a shard group's replication is declared with.

use serde::{Deserialize, Serialize};

/// A shard group: a logical shard's replication group. Every group of a node shares the node's
/// replication log file and its replication service.
pub type GroupId = u64;

/// A node's id in every replication group: see [`crate::placement::raft_node_id`].
pub type NodeId = u64;

/// A replicated command: bytes the replication layer never looks into. The engine will put its
/// encoded commands here, each with the time and ids its leader chose, so every replica applies
/// exactly the same change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command(pub Vec<u8>);

/// What applying a command answered: bytes from the [`Applier`](crate::Applier). Entries that
/// carry no command (blank and membership entries) answer empty bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply(pub Vec<u8>);

openraft::declare_raft_types!(
    /// The openraft type configuration of every Turnstile shard group.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Vec<u8>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A running replication group.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry of a group.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id of a group.
pub type LogId = openraft::LogId<NodeId>;
/// The storage error openraft expects.
pub type StorageError = openraft::StorageError<NodeId>;
