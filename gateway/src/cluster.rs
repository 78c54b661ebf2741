//! A node of a cluster (docs/CLUSTER.md): the glue between the engine and the shard groups.
//!
//! - Every event belongs to a shard (`Placement`); every shard is a raft group over its replicas,
//!   and one more group, the catalog group, spans every node.
//! - [`ReplicatedJournal`] is the engine's [`Journal`]: a job (an event's command with its
//!   booking records, or a catalog change) is proposed to its group and acknowledged once a
//!   majority has committed it. Jobs of a group are proposed in the order they were submitted.
//! - [`NodeApplier`] applies committed jobs on every replica, the leader included, by writing them
//!   to the node's own store, exactly once (the group's last applied index is stored in the same
//!   transaction). Catalog jobs also update the node's in-memory catalog and search index.
//! - The node runs an event's actor only while it leads the event's shard and has applied its log
//!   ([`ShardGate`]); when it becomes leader it rebuilds the shard's events from its store and
//!   restarts their hold timers, when it stops leading it stops them. Followers never expire holds:
//!   expiry is a command the leader's actor proposes with the leader's time.
//! - [`EventRouter`]: the gateway asks where an event is served: here, or at the shard leader.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use openraft::{BasicNode, ServerState};
use tokio::sync::mpsc;
use turnstile_cluster::placement::raft_node_id;
use turnstile_cluster::{shard_members, Applier, ClusterNode, Command, GroupId, NodeId, Placement, ProposeError, Raft};
use turnstile_engine::engine::WeakEngine;
use turnstile_engine::ids::EventId;
use turnstile_engine::journal::{GateFuture, Journal, ShardGate};
use turnstile_engine::Error;
use turnstile_storage::frame::{put_bytes, take_bytes, take_u64};
use turnstile_storage::{Committed, Done, Store, StoreError, Write};

use crate::config::Config;
use crate::routing::{BookingHolders, EventRouter, Route};

/// Jobs waiting to be proposed to one group; a full queue refuses new jobs (the caller retries).
const PROPOSALS_QUEUED_MAX: usize = 4_096;
/// How long a job may wait for its commit before the engine is told it failed (it may still
/// commit: the event's actor is then rebuilt from the log once this node has applied it).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new leader waits to apply its log before it starts an event's actor.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// Record kind under which each group's last applied index is kept in the node's store.
const APPLIED_RECORD: &str = "raft_applied";

/// Everything a node needs to take part in the cluster.
pub struct Cluster {
    name: String,
    id: NodeId,
    placement: Placement,
    node: ClusterNode,
    store: Arc<Store>,
    catalog_group: GroupId,
    /// Raft id -> node name, and node name -> gRPC address (which also serves replication).
    names: HashMap<NodeId, String>,
    addresses: HashMap<String, String>,
    proposals: HashMap<GroupId, mpsc::Sender<Job>>,
    engine: OnceLock<WeakEngine>,
    /// For shards this node does not replicate: the leader another node last named.
    leader_hints: std::sync::Mutex<HashMap<u32, NodeId>>,
}

struct Job {
    command: Vec<u8>,
    done: Done,
}

fn group_error(group: GroupId, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Io { path: format!("shard group {group}"), reason: reason.to_string() }
}

impl Cluster {
    /// Opens the node's replication file in its data directory and sets up (without starting)
    /// the groups it belongs to: the shards whose replica set holds it, and the catalog group.
    pub fn open(config: &Config, store: Arc<Store>) -> anyhow::Result<Arc<Self>> {
        let placement = Placement::new(
            config.nodes.iter().map(|node| node.id.clone()),
            config.cluster.shards,
            config.cluster.replicas as usize,
        )
        .context("cluster placement")?;
        let raft_config = turnstile_cluster::raft_config_without_snapshots().context("raft settings")?;
        let node = ClusterNode::open(&config.node.id, &config.node.data_dir, raft_config)
            .context("cannot open the replication log")?;
        let catalog_group = GroupId::from(placement.shard_count());
        let mut groups: Vec<GroupId> =
            placement.shards_of_node(&config.node.id).into_iter().map(GroupId::from).collect();
        groups.push(catalog_group);
        let mut proposals = HashMap::new();
        let mut receivers = Vec::new();
        for group in groups {
            let (sender, receiver) = mpsc::channel(PROPOSALS_QUEUED_MAX);
            proposals.insert(group, sender);
            receivers.push((group, receiver));
        }
        let cluster = Arc::new(Cluster {
            name: config.node.id.clone(),
            id: raft_node_id(&config.node.id),
            placement,
            node,
            store,
            catalog_group,
            names: config.nodes.iter().map(|node| (raft_node_id(&node.id), node.id.clone())).collect(),
            addresses: config.nodes.iter().map(|node| (node.id.clone(), node.address.to_string())).collect(),
            proposals,
            engine: OnceLock::new(),
            leader_hints: std::sync::Mutex::new(HashMap::new()),
        });
        for (group, receiver) in receivers {
            tokio::spawn(proposer(cluster.clone(), group, receiver));
        }
        Ok(cluster)
    }

    /// The replication service, to serve beside the API on the node's gRPC port.
    pub fn service(
        &self,
    ) -> turnstile_cluster::network::proto::raft_server::RaftServer<turnstile_cluster::RaftService> {
        self.node.service()
    }

    /// Starts every group of this node (resuming from the replication file), initializes the
    /// groups this node founds on the cluster's first start, and watches leadership. Call once
    /// the engine exists (`engine` is how committed catalog changes and leadership reach it).
    pub async fn start(self: &Arc<Self>, engine: WeakEngine) -> anyhow::Result<()> {
        let _ = self.engine.set(engine);
        let mut groups: Vec<GroupId> = self.proposals.keys().copied().collect();
        groups.sort_unstable();
        for group in groups {
            let applier = NodeApplier { cluster: Arc::downgrade(self), group };
            let raft = self.node.start_group(group, applier).await.with_context(|| format!("group {group}"))?;
            if self.founds(group) && !raft.is_initialized().await.map_err(|error| anyhow::anyhow!("{error}"))? {
                let members = self.members(group)?;
                if let Err(error) = raft.initialize(members).await {
                    // Another start got there first: the group is formed, which is the aim.
                    tracing::debug!(group, %error, "group already initialized");
                }
            }
            if group != self.catalog_group {
                tokio::spawn(watch_leadership(Arc::downgrade(self), group, raft));
            }
        }
        tracing::info!(node = %self.name, groups = self.proposals.len(), "cluster groups started");
        Ok(())
    }

    /// The node that initializes `group` on the cluster's first start: a shard's preferred
    /// leader, and the first node by name for the catalog group.
    fn founds(&self, group: GroupId) -> bool {
        if group == self.catalog_group {
            return self.placement.nodes().first().is_some_and(|first| *first == self.name);
        }
        self.placement.replicas(group as u32).first().is_some_and(|first| *first == self.name)
    }

    fn members(&self, group: GroupId) -> anyhow::Result<std::collections::BTreeMap<NodeId, BasicNode>> {
        if group == self.catalog_group {
            return Ok(self
                .placement
                .nodes()
                .iter()
                .map(|name| (raft_node_id(name), BasicNode::new(self.addresses[name].clone())))
                .collect());
        }
        Ok(shard_members(&self.placement, group as u32, &self.addresses)?)
    }

    fn group_of(&self, stream: &str) -> GroupId {
        if stream.is_empty() {
            self.catalog_group
        } else {
            GroupId::from(self.placement.shard_of(stream))
        }
    }

    fn engine(&self) -> Option<turnstile_engine::Engine> {
        self.engine.get().and_then(WeakEngine::upgrade)
    }

    /// Stops every group (before the process exits).
    pub async fn shutdown(&self) {
        let _ = self.node.shutdown(Duration::from_secs(5)).await;
    }
}

// -----------------------------------------------------------------------------------------------
// Jobs as bytes
// -----------------------------------------------------------------------------------------------

/// A job as a replicated command: the stream, then each write with a tag. Checkpoints are not
/// replicated (see [`ReplicatedJournal`]).
fn encode_job(stream: &str, writes: &[Write]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + writes.len() * 64);
    put_bytes(&mut out, stream.as_bytes());
    for write in writes {
        match write {
            Write::Append { payload } => {
                out.push(1);
                put_bytes(&mut out, payload);
            }
            Write::Put { kind, key, value } => {
                out.push(2);
                put_bytes(&mut out, kind.as_bytes());
                put_bytes(&mut out, key.as_bytes());
                put_bytes(&mut out, value);
            }
            Write::IndexBooking { buyer, booked_at_ms, booking_id } => {
                out.push(3);
                put_bytes(&mut out, buyer.as_bytes());
                out.extend_from_slice(&booked_at_ms.to_le_bytes());
                put_bytes(&mut out, booking_id.as_bytes());
            }
            Write::Checkpoint { .. } => {}
        }
    }
    out
}

/// A length-prefixed UTF-8 field of a job; returns it and the rest.
fn take_text<'a>(input: &'a [u8], what: &str) -> Result<(String, &'a [u8]), StoreError> {
    let (bytes, rest) = take_bytes(input, what)?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| StoreError::Corrupt { what: what.to_string(), reason: "text is not UTF-8".into() })?;
    Ok((text, rest))
}

fn decode_job(bytes: &[u8]) -> Result<(String, Vec<Write>), StoreError> {
    const WHAT: &str = "replicated job";
    let (stream, mut rest) = take_text(bytes, WHAT)?;
    let mut writes = Vec::new();
    while let Some((&tag, after_tag)) = rest.split_first() {
        rest = after_tag;
        writes.push(match tag {
            1 => {
                let (payload, after) = take_bytes(rest, WHAT)?;
                rest = after;
                Write::Append { payload: payload.to_vec() }
            }
            2 => {
                let (kind, after) = take_text(rest, WHAT)?;
                let (key, after) = take_text(after, WHAT)?;
                let (value, after) = take_bytes(after, WHAT)?;
                rest = after;
                Write::Put { kind, key, value: value.to_vec() }
            }
            3 => {
                let (buyer, after) = take_text(rest, WHAT)?;
                let (booked_at_ms, after) = take_u64(after, WHAT)?;
                let (booking_id, after) = take_text(after, WHAT)?;
                rest = after;
                Write::IndexBooking { buyer, booked_at_ms, booking_id }
            }
            other => {
                return Err(StoreError::Corrupt { what: WHAT.into(), reason: format!("unknown write tag {other}") })
            }
        });
    }
    Ok((stream, writes))
}

// -----------------------------------------------------------------------------------------------
// Proposing
// -----------------------------------------------------------------------------------------------

/// The engine's journal in a cluster.
///
/// Checkpoints are not replicated: every replica writes the committed jobs to its own store, and
/// a checkpoint would have to be ordered with them in the group's log; the store of a clustered
/// node therefore replays its events' whole history when a node becomes leader (docs/CLUSTER.md).
pub struct ReplicatedJournal(pub Arc<Cluster>);

impl Journal for ReplicatedJournal {
    fn submit(&self, stream: &str, writes: Vec<Write>, done: Done) {
        let writes: Vec<Write> =
            writes.into_iter().filter(|write| !matches!(write, Write::Checkpoint { .. })).collect();
        if writes.is_empty() {
            done(Ok(Committed::default()));
            return;
        }
        let group = self.0.group_of(stream);
        let Some(queue) = self.0.proposals.get(&group) else {
            done(Err(group_error(group, "this node is not a replica of the group")));
            return;
        };
        let job = Job { command: encode_job(stream, &writes), done };
        if let Err(error) = queue.try_send(job) {
            let job = match error {
                mpsc::error::TrySendError::Full(job) => {
                    (job.done)(Err(StoreError::Full));
                    return;
                }
                mpsc::error::TrySendError::Closed(job) => job,
            };
            (job.done)(Err(StoreError::Stopped));
        }
    }
}

/// Proposes one group's jobs in submission order. Each proposal is handed to raft before the next
/// (`client_write_ff` returns once raft has queued it), and its commit is awaited on its own task,
/// so proposals pipeline without being reordered.
async fn proposer(cluster: Arc<Cluster>, group: GroupId, mut jobs: mpsc::Receiver<Job>) {
    while let Some(job) = jobs.recv().await {
        if group == cluster.catalog_group {
            // Catalog changes may come from any node: one that does not lead the catalog group
            // hands its proposal to the leader. Each is a whole record put, so order across
            // concurrent changes does not matter.
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let result = cluster.node.propose_anywhere(group, job.command, COMMIT_TIMEOUT).await;
                (job.done)(result.map(|_| Committed::default()).map_err(|error| group_error(group, error)));
            });
            continue;
        }
        let Some(raft) = cluster.node.group(group) else {
            (job.done)(Err(group_error(group, "the group is not running")));
            continue;
        };
        let leader = raft.metrics().borrow().current_leader;
        if leader != Some(cluster.id) {
            (job.done)(Err(group_error(group, "this node no longer leads the shard")));
            continue;
        }
        if job.command.len() > turnstile_cluster::node::COMMAND_BYTES_MAX {
            (job.done)(Err(group_error(group, ProposeError::TooLarge(job.command.len()))));
            continue;
        }
        match raft.client_write_ff(Command(job.command)).await {
            Ok(receiver) => {
                let done = job.done;
                tokio::spawn(async move {
                    let result = match tokio::time::timeout(COMMIT_TIMEOUT, receiver).await {
                        Err(_) => Err(group_error(group, format!("no commit within {COMMIT_TIMEOUT:?}"))),
                        Ok(Err(_)) => Err(group_error(group, "the group stopped")),
                        Ok(Ok(Err(error))) => Err(group_error(group, error)),
                        Ok(Ok(Ok(_))) => Ok(Committed::default()),
                    };
                    done(result);
                });
            }
            Err(error) => (job.done)(Err(group_error(group, error))),
        }
    }
}

// -----------------------------------------------------------------------------------------------
// Applying
// -----------------------------------------------------------------------------------------------

/// Applies a group's committed jobs to this node's store.
pub struct NodeApplier {
    cluster: std::sync::Weak<Cluster>,
    group: GroupId,
}

impl NodeApplier {
    fn apply_job(&self, cluster: &Cluster, index: u64, command: &[u8]) -> Result<(), String> {
        let key = self.group.to_string();
        let applied = cluster
            .store
            .record(APPLIED_RECORD, &key)
            .map_err(|error| error.to_string())?
            .and_then(|bytes| bytes.try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0);
        if index <= applied {
            // Re-applied after a restart: the store has it already.
            return Ok(());
        }
        let (stream, mut writes) = decode_job(command).map_err(|error| error.to_string())?;
        let catalog_writes = (self.group == cluster.catalog_group).then(|| writes.clone());
        writes.push(Write::Put { kind: APPLIED_RECORD.into(), key, value: index.to_le_bytes().to_vec() });
        let store = cluster.store.clone();
        tokio::task::block_in_place(|| store.write_blocking(&stream, writes)).map_err(|error| error.to_string())?;
        if let (Some(writes), Some(engine)) = (catalog_writes, cluster.engine()) {
            engine.apply_replicated_catalog(&writes).map_err(|error| error.to_string())?;
        }
        Ok(())
    }
}

impl Applier for NodeApplier {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let Some(cluster) = self.cluster.upgrade() else { return Vec::new() };
        if let Err(reason) = self.apply_job(&cluster, index, command) {
            // A replica that cannot apply a committed command must not go on as if it had: stop
            // the process; on restart it applies the command again from the replication log.
            tracing::error!(group = self.group, index, %reason, "cannot apply a committed command; stopping");
            std::process::abort();
        }
        Vec::new()
    }

    fn snapshot(&self) -> Vec<u8> {
        // Snapshots are off (`raft_config_without_snapshots`): the state is the node's store.
        Vec::new()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        if snapshot.is_empty() {
            Ok(())
        } else {
            Err("this node does not install snapshots: the log is kept whole".into())
        }
    }
}

// -----------------------------------------------------------------------------------------------
// Leadership
// -----------------------------------------------------------------------------------------------

/// Waits until `raft` has applied every entry of its log while this node leads; `false` if it
/// stops leading or does not catch up within `CATCH_UP_TIMEOUT`.
async fn caught_up(raft: &Raft, me: NodeId) -> bool {
    let mut metrics = raft.metrics();
    let deadline = tokio::time::Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        {
            let current = metrics.borrow_and_update();
            if current.current_leader != Some(me) || current.state != ServerState::Leader {
                return false;
            }
            let applied = current.last_applied.map(|log_id| log_id.index);
            if applied.is_some() && applied >= current.last_log_index {
                return true;
            }
        }
        match tokio::time::timeout_at(deadline, metrics.changed()).await {
            Ok(Ok(())) => continue,
            _ => return false,
        }
    }
}

/// Starts a shard's events here when this node becomes its leader and stops them when it stops
/// being leader.
async fn watch_leadership(cluster: std::sync::Weak<Cluster>, group: GroupId, raft: Raft) {
    let mut metrics = raft.metrics();
    let mut leading = false;
    loop {
        let now_leading = {
            let Some(cluster) = cluster.upgrade() else { return };
            let current = metrics.borrow_and_update();
            current.current_leader == Some(cluster.id) && current.state == ServerState::Leader
        };
        if now_leading != leading {
            leading = now_leading;
            let Some(cluster) = cluster.upgrade() else { return };
            let Some(engine) = cluster.engine() else { return };
            let shard = group as u32;
            let placement_cluster = cluster.clone();
            let belongs = move |event_id: &EventId| placement_cluster.placement.shard_of(event_id.as_str()) == shard;
            if leading {
                if caught_up(&raft, cluster.id).await {
                    match engine.host_events(&belongs).await {
                        Ok(started) => tracing::info!(group, started, "leading the shard; its events run here"),
                        Err(error) => tracing::warn!(group, %error, "leading the shard, but its events did not start"),
                    }
                }
            } else {
                engine.release_events(&belongs).await;
                tracing::info!(group, "no longer leading the shard; its events stopped here");
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

impl ShardGate for Cluster {
    fn ready(&self, event_id: &EventId) -> GateFuture {
        let group = self.group_of(event_id.as_str());
        let raft = self.node.group(group);
        let me = self.id;
        let event_id = event_id.clone();
        Box::pin(async move {
            let not_here = || Error::Unavailable {
                reason: format!("this node does not lead the shard of event '{event_id}'; retry"),
            };
            let raft = raft.ok_or_else(not_here)?;
            if caught_up(&raft, me).await {
                Ok(())
            } else {
                Err(not_here())
            }
        })
    }
}

impl EventRouter for Cluster {
    fn route(&self, event_id: &str) -> Route {
        let shard = self.placement.shard_of(event_id);
        let group = GroupId::from(shard);
        let leader = match self.node.group(group) {
            Some(raft) => raft.metrics().borrow().current_leader,
            // Not a replica of this shard: the leader a refusal last named, else the preferred
            // leader. A node that does not lead it refuses (naming the leader it knows) rather
            // than forwarding again, and the gateway asks again.
            None => self
                .leader_hints
                .lock()
                .expect("hints")
                .get(&shard)
                .copied()
                .or_else(|| self.placement.replicas(shard).first().map(|name| raft_node_id(name))),
        };
        match leader {
            Some(leader) if leader == self.id => Route::Local,
            Some(leader) => match self.names.get(&leader) {
                Some(node) => Route::Forward { node: node.clone(), address: self.addresses[node].clone() },
                None => Route::Unavailable { reason: format!("shard {shard}'s leader is not in the configuration") },
            },
            None => Route::Unavailable { reason: format!("shard {shard} is electing a leader") },
        }
    }

    fn hint_leader(&self, event_id: &str, node: &str) {
        let shard = self.placement.shard_of(event_id);
        if self.node.group(GroupId::from(shard)).is_none() && self.addresses.contains_key(node) {
            self.leader_hints.lock().expect("hints").insert(shard, raft_node_id(node));
        }
    }

    fn booking_holders(&self) -> Option<BookingHolders> {
        let every_shard = self.placement.shards_of_node(&self.name).len() as u32 == self.placement.shard_count();
        if every_shard {
            return None;
        }
        let mut nodes: Vec<(String, String)> =
            self.addresses.iter().map(|(node, address)| (node.clone(), address.clone())).collect();
        nodes.sort();
        // Each shard has `replicas` replicas among the nodes, so any `nodes - replicas + 1` of
        // them hold one of every shard.
        let replicas = self.placement.replicas(0).len();
        let answers_needed = nodes.len() + 1 - replicas;
        Some(BookingHolders { nodes, answers_needed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip() {
        let writes = vec![
            Write::Append { payload: vec![1, 2, 3] },
            Write::Put { kind: "booking".into(), key: "bk_1".into(), value: vec![9; 40] },
            Write::IndexBooking { buyer: "alice".into(), booked_at_ms: 1_700_000_000_123, booking_id: "bk_1".into() },
        ];
        let bytes = encode_job("evt_1", &writes);
        assert_eq!(decode_job(&bytes).unwrap(), ("evt_1".to_string(), writes));
        assert!(decode_job(&bytes[..bytes.len() - 1]).is_err(), "a cut job is refused");
        let mut bad_tag = encode_job("", &[]);
        bad_tag.push(7);
        assert!(decode_job(&bad_tag).unwrap_err().to_string().contains("tag"));
    }

    #[test]
    fn checkpoints_are_not_replicated() {
        let bytes = encode_job("evt_1", &[Write::Checkpoint { state: vec![1; 10] }]);
        assert_eq!(decode_job(&bytes).unwrap(), ("evt_1".to_string(), Vec::new()));
    }
}
