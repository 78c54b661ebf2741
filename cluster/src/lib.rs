//! Turnstile's cluster layer, the foundation of sharding and replication (docs/CLUSTER.md):
//!
//! - [`placement`]: events to a fixed number of logical shards by a named stable hash
//!   (xxh3_64, seed 0), and each shard's replica set by rendezvous hashing over the nodes;
//! - [`store`]: a shard group's openraft log store and state machine on the node's replication
//!   log (`turnstile_storage::RaftLog`, one redb file for every group of the node), with the
//!   [`Applier`] hook through which committed commands reach their owner;
//! - [`network`]: replication messages over tonic, one service per node for all its groups;
//! - [`node`]: a node's file, groups and peers ([`ClusterNode`]), and [`propose`], which bounds a
//!   command and waits for its commit.
//!
//! [`start_group`] puts the first three together for one group on one node.

pub mod network;
pub mod node;
pub mod placement;
pub mod propose;
pub mod store;
pub mod types;

use std::sync::Arc;

use turnstile_storage::RaftLog;

pub use network::{Connections, Groups, NetworkFactory, RaftService};
pub use node::{shard_members, ClusterNode};
pub use placement::{Placement, PlacementError, ShardId};
pub use propose::{propose, ProposeError};
pub use store::{AppliedEntry, AppliedState, Applier, CommandJournal, LogStore, SnapshotFuture, StateMachine};
pub use types::{Command, GroupId, NodeId, Raft, Reply, TypeConfig};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("replication settings: {0}")]
    Config(String),
    #[error("group {group}: {reason}")]
    Group { group: GroupId, reason: String },
}

/// Timing of every group: heartbeats every 100 ms; a follower that hears nothing for 600 to
/// 1,200 ms stands for election. Generous for loopback, so that a busy machine (two cores
/// shared with builds) does not cause needless elections.
pub fn raft_config() -> Result<Arc<openraft::Config>, ClusterError> {
    let config = openraft::Config {
        cluster_name: "turnstile".to_string(),
        heartbeat_interval: 100,
        election_timeout_min: 600,
        election_timeout_max: 1_200,
        ..openraft::Config::default()
    };
    config.validate().map(Arc::new).map_err(|error| ClusterError::Config(error.to_string()))
}

/// The same timing, with a snapshot every `interval_entries` applied entries and the log behind
/// it purged (keeping a quarter of an interval, at most 1,000 entries, for followers that are just
/// behind). Entries are sent 64 at a time at most (an entry carries up to a batch of commands),
/// and a snapshot, streamed in pieces, may take 10 s to arrive and be installed.
pub fn raft_config_with_snapshots(interval_entries: u64) -> Result<Arc<openraft::Config>, ClusterError> {
    let mut config = openraft::Config::clone(&*raft_config()?);
    config.snapshot_policy = openraft::SnapshotPolicy::LogsSinceLast(interval_entries);
    config.max_in_snapshot_log_to_keep = (interval_entries / 4).min(1_000);
    config.purge_batch_size = (interval_entries / 10).clamp(1, 256);
    config.replication_lag_threshold = interval_entries.saturating_mul(2);
    config.max_payload_entries = 64;
    config.install_snapshot_timeout = 10_000;
    config.validate().map(Arc::new).map_err(|error| ClusterError::Config(error.to_string()))
}

/// Starts `group` on node `node`: its log store and state machine on `log`, its messages through
/// `connections`, and registers it in `groups` so the node's [`RaftService`] routes to it. A
/// group that has state in `log` resumes from it.
pub async fn start_group<A: Applier>(
    node: NodeId,
    group: GroupId,
    config: Arc<openraft::Config>,
    log: Arc<RaftLog>,
    applier: A,
    connections: Connections,
    groups: &Groups,
) -> Result<Raft, ClusterError> {
    let failed = |reason: String| ClusterError::Group { group, reason };
    let log_store = LogStore::new(log.clone(), group);
    let state_machine = StateMachine::open(log, group, applier).await.map_err(|error| failed(error.to_string()))?;
    let network = NetworkFactory::new(node, group, connections);
    let raft =
        Raft::new(node, config, network, log_store, state_machine).await.map_err(|error| failed(error.to_string()))?;
    groups.insert(group, raft.clone());
    Ok(raft)
}
