//! A node of a cluster (docs/CLUSTER.md): the glue between the engine and the shard groups.
//!
//! - Every event belongs to a shard (`Placement`); every shard is a raft group over its replicas,
//!   and one more group, the catalog group, spans every node.
//! - [`ReplicatedJournal`] is the engine's [`Journal`]: the group's raft log is the write-ahead
//!   log. A shard leader's event actors hand it their jobs (a command with its booking records,
//!   a checkpoint, or a catalog change); the group's proposer puts many jobs into one entry, so
//!   one replication round and one fsync per replica cover a batch, and answers each job once its
//!   entry is committed on a majority and applied here.
//! - [`NodeApplier`] applies committed entries on every replica, the leader included, a batch of
//!   entries in one transaction of the node's store with the group's applied position, and with
//!   no fsync of its own: after a crash the group re-applies from the position the store kept.
//!   Catalog entries also update the node's in-memory catalog and search index.
//! - Snapshots: a group's snapshot is its part of the store (its events' checkpoints and the
//!   commands after them, its bookings and buyer index, or the catalog); openraft purges the log
//!   behind it and sends it, in pieces, to a replica that is new or too far behind.
//! - The node runs an event's actor only while it leads the event's shard and has applied its log
//!   ([`ShardGate`]); when it becomes leader it rebuilds the shard's events from its store (each
//!   from its checkpoint plus the commands after it) and restarts their hold timers, when it stops
//!   leading it stops them. Followers never expire holds: expiry is a command the leader's actor
//!   proposes with the leader's time.
//! - [`EventRouter`]: the gateway asks where an event is served: here, or at the shard leader.

mod members;
mod reconcile;

pub use members::Members;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use openraft::{BasicNode, ServerState};
use reconcile::reconciler;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use turnstile_cluster::placement::raft_node_id;
use turnstile_cluster::{
    shard_members, AppliedEntry, AppliedState, Applier, ClusterNode, Command, GroupId, NodeId, Placement, ProposeError,
    Raft, SnapshotFuture,
};
use turnstile_engine::engine::WeakEngine;
use turnstile_engine::ids::{BookingId, EventId};
use turnstile_engine::journal::{GateFuture, Journal, ShardGate};
use turnstile_engine::Error;
use turnstile_storage::raft_log::ENTRY_BYTES_MAX;
use turnstile_storage::{CheckpointFiller, Committed, Done, RecordKind, Store, StoreError, StoreView, Write};

use crate::config::Config;
use crate::routing::{BookingHolders, ClusterView, EventRouter, GroupView, MembershipChange, PeerView, Route};

/// Jobs waiting to be proposed to one group; a full queue refuses new jobs (the caller retries).
const PROPOSALS_QUEUED_MAX: usize = 4_096;
/// Entries of a group proposed and not yet committed, at most: while they are in flight, new
/// jobs gather for the next entry (like a log's group commit).
const BATCHES_IN_FLIGHT_MAX: usize = 2;

/// Jobs in one entry at most, and the size past which an entry takes no more jobs.
const JOBS_PER_ENTRY_MAX: usize = 1_024;
const ENTRY_BYTES_TARGET: usize = 1 << 20;
/// The largest entry proposed (a large checkpoint travels alone): the replication log's entry
/// bound, less room for the entry's own framing.
const ENTRY_BYTES_MAX_PROPOSED: usize = ENTRY_BYTES_MAX - (64 << 10);
/// How long a job may wait for its commit before the engine is told it failed (it may still
/// commit: the event's actor is then rebuilt from the log once this node has applied it).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the proposer waits for a checkpoint's state (encoded on the checkpoint thread)
/// before it gives the checkpoint up and goes on with the jobs behind it.
const CHECKPOINT_STATE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a founder with no state waits to hear from a leader of its group before it
/// initializes the group (see [`found_group`]): several heartbeats and a replication back-off.
const FOUNDING_WAIT: Duration = Duration::from_millis(1_500);
/// How long a new leader waits to apply its log before it starts an event's actor.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// Tries (10 ms apart) to hand applied entries to a store whose queue is full.
const STORE_FULL_RETRIES: u32 = 500;
/// Each group's applied state (last applied log id and membership) is kept in the node's store
/// as a `RecordKind::RaftAppliedState` record, written in the same transaction as what was applied.
const APPLIED_STATE_RECORD: RecordKind = RecordKind::RaftAppliedState;

/// Everything a node needs to take part in the cluster.
pub struct Cluster {
    name: String,
    id: NodeId,
    node: ClusterNode,
    store: Arc<Store>,
    catalog_group: GroupId,
    shards: u32,
    replicas: usize,
    /// The configuration's [[nodes]] (id, address): the first start's node list, and the
    /// addresses that win for the nodes it names.
    configured: Vec<(String, String)>,
    /// The node list shards are placed over now (see [`Layout`]).
    layout: std::sync::RwLock<Arc<Layout>>,
    /// Whether this node may initialize the groups it founds: only on what may be the cluster's
    /// first start (no membership recorded here) and never for a node started to join.
    founding: bool,
    /// Whether this node has been a member: a node that joins catches up on the catalog's log,
    /// applying memberships from before it was added, which must not make it leave. Set at start
    /// for a node with a recorded membership not started to join, and when a membership that
    /// lists this node is applied.
    established: std::sync::atomic::AtomicBool,
    /// Wakes the reconciler (a new membership was applied, or a change was asked for).
    reconcile: tokio::sync::Notify,
    /// One proposal queue per group of the cluster (every shard and the catalog), whether or not
    /// this node runs it now: a job for a group that does not run here fails at its proposer.
    proposals: HashMap<GroupId, mpsc::Sender<Job>>,
    engine: OnceLock<WeakEngine>,
    /// For shards this node does not replicate: the leader another node last named.
    leader_hints: std::sync::Mutex<HashMap<u32, NodeId>>,
    /// Leadership changes not yet logged: logged together, once a second at most.
    leadership: std::sync::Mutex<LeadershipChanges>,
}

/// The node list in force on this node, with what is derived from it.
pub struct Layout {
    pub members: Members,
    pub placement: Placement,
    /// Raft id -> node id, and node id -> gRPC address (which also serves replication). An
    /// address the configuration gives for a node wins over the recorded one.
    pub names: HashMap<NodeId, String>,
    pub addresses: HashMap<String, String>,
}

impl Layout {
    fn new(members: Members, configured: &[(String, String)], shards: u32, replicas: usize) -> anyhow::Result<Self> {
        let placement =
            Placement::new(members.ids().map(str::to_string), shards, replicas).context("cluster placement")?;
        let names = members.ids().map(|id| (raft_node_id(id), id.to_string())).collect();
        let addresses = members
            .nodes
            .iter()
            .map(|(id, recorded)| {
                let configured = configured.iter().find(|(name, _)| name == id).map(|(_, address)| address);
                (id.clone(), configured.unwrap_or(recorded).clone())
            })
            .collect();
        Ok(Self { members, placement, names, addresses })
    }

    fn name_of(&self, id: NodeId) -> String {
        self.names.get(&id).cloned().unwrap_or_else(|| format!("raft id {id}"))
    }
}

/// Shards this node took or gave up since the last leadership line of the log, and the shards it
/// leads. A failover moves many shards at once: one line says what moved.
#[derive(Default)]
struct LeadershipChanges {
    leading: std::collections::BTreeSet<GroupId>,
    taken: Vec<GroupId>,
    given_up: Vec<GroupId>,
    events_started: usize,
}

/// How often, at most, a line about leadership changes is logged.
const LEADERSHIP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Logs, at most once per `LEADERSHIP_LOG_INTERVAL`, the leadership changes gathered since, and
/// (once each) the groups whose raft stopped on a fatal error (openraft's own log is off by
/// default: it speaks per failed call to a peer).
async fn log_leadership(cluster: std::sync::Weak<Cluster>) {
    let mut ticker = tokio::time::interval(LEADERSHIP_LOG_INTERVAL);
    let mut stopped = std::collections::HashSet::new();
    loop {
        ticker.tick().await;
        let Some(cluster) = cluster.upgrade() else { return };
        for group in cluster.node.running_groups() {
            let Some(raft) = cluster.node.group(group) else { continue };
            if let Err(fatal) = &raft.metrics().borrow().running_state {
                if stopped.insert(group) {
                    tracing::error!(group, error = %fatal, "a replication group stopped");
                }
            }
        }
        let mut changes = cluster.leadership.lock().expect("leadership");
        if changes.taken.is_empty() && changes.given_up.is_empty() {
            continue;
        }
        tracing::info!(
            leading = changes.leading.len(),
            of_shards = cluster.shards,
            taken = ?changes.taken,
            given_up = ?changes.given_up,
            events_started = changes.events_started,
            "shard leadership changed"
        );
        changes.taken.clear();
        changes.given_up.clear();
        changes.events_started = 0;
    }
}

/// The credential every node of a cluster presents on replication calls: an HS256 signature by
/// the cluster's secret over a fixed claim, so the same on every node with the same secret, and
/// nothing a holder of the buyers' secret can make.
fn node_credential(secret: &[u8]) -> anyhow::Result<turnstile_cluster::network::NodeCredential> {
    anyhow::ensure!(!secret.is_empty(), "cluster.secret is required in a cluster");
    #[derive(Serialize)]
    struct Claims {
        aud: &'static str,
    }
    let token = crate::token::Keys::new(secret).sign(&Claims { aud: "turnstile-cluster-node" });
    turnstile_cluster::network::NodeCredential::new(&token).map_err(|error| anyhow::anyhow!(error))
}

fn group_error(group: GroupId, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Io { path: format!("shard group {group}"), reason: reason.to_string() }
}

/// The membership recorded in this node's store (applied from the catalog group), if any.
fn stored_members(store: &Store) -> anyhow::Result<Option<Members>> {
    let Some(bytes) = store.record(RecordKind::ClusterMembers, members::MEMBERS_KEY)? else { return Ok(None) };
    Members::decode(&bytes).map(Some).map_err(|error| anyhow::anyhow!(error))
}

impl Cluster {
    /// Opens the node's replication file in its data directory and sets up (without starting)
    /// the groups of the cluster. The node list is the one recorded here if the cluster has
    /// recorded one (it wins over the configuration's), else the configuration's.
    pub fn open(config: &Config, store: Arc<Store>) -> anyhow::Result<Arc<Self>> {
        let shards = config.cluster.shards;
        let replicas = config.cluster.replicas as usize;
        let configured: Vec<(String, String)> =
            config.nodes.iter().map(|node| (node.id.clone(), node.address.to_string())).collect();
        let recorded = stored_members(&store).context("cannot read the cluster's membership from the store")?;
        let founding = recorded.is_none() && !config.cluster.join;
        let established = recorded
            .as_ref()
            .is_some_and(|members| members.contains(&config.node.id) || (members.version > 0 && !config.cluster.join));
        let members = recorded.unwrap_or_else(|| Members::new(0, configured.clone()));
        let layout = Layout::new(members, &configured, shards, replicas)?;
        let raft_config = turnstile_cluster::raft_config_with_snapshots(config.cluster.snapshot_interval_entries)
            .context("raft settings")?;
        let peers = turnstile_cluster::node::Peers {
            credential: Some(node_credential(config.cluster.secret.as_bytes())?),
            nodes: config
                .nodes
                .iter()
                .map(|node| (raft_node_id(&node.id), (node.id.clone(), node.address.to_string())))
                .collect(),
            tls: config.tls.peer_client()?,
        };
        let node = ClusterNode::open_configured(&config.node.id, &config.node.data_dir, raft_config, peers)
            .context("cannot open the replication log")?;
        let catalog_group = GroupId::from(shards);
        let mut proposals = HashMap::new();
        let mut receivers = Vec::new();
        for group in 0..=catalog_group {
            let (sender, receiver) = mpsc::channel(PROPOSALS_QUEUED_MAX);
            proposals.insert(group, sender);
            receivers.push((group, receiver));
        }
        let cluster = Arc::new(Cluster {
            name: config.node.id.clone(),
            id: raft_node_id(&config.node.id),
            node,
            store,
            catalog_group,
            shards,
            replicas,
            configured,
            layout: std::sync::RwLock::new(Arc::new(layout)),
            founding,
            established: std::sync::atomic::AtomicBool::new(established),
            reconcile: tokio::sync::Notify::new(),
            proposals,
            engine: OnceLock::new(),
            leader_hints: std::sync::Mutex::new(HashMap::new()),
            leadership: std::sync::Mutex::new(LeadershipChanges::default()),
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

    /// The node list in force here now.
    pub fn layout(&self) -> Arc<Layout> {
        self.layout.read().expect("layout").clone()
    }

    /// Starts the groups of this node (those the node list places here, and any with state in
    /// the replication file: a move may be under way), initializes the groups this node founds on
    /// the cluster's first start, and starts the reconciler, which follows membership changes.
    /// Call once the engine exists (`engine` is how committed catalog changes and leadership
    /// reach it). A node started to join waits for the catalog group's leader to add it.
    pub async fn start(self: &Arc<Self>, engine: WeakEngine) -> anyhow::Result<()> {
        let _ = self.engine.set(engine);
        let layout = self.layout();
        let mut groups: std::collections::BTreeSet<GroupId> = self.node.stored_groups()?.into_iter().collect();
        groups.insert(self.catalog_group);
        if layout.members.version > 0 || self.founding {
            groups.extend(layout.placement.shards_of_node(&self.name).into_iter().map(GroupId::from));
        }
        for group in groups {
            self.start_group(group).await?;
        }
        tokio::spawn(log_leadership(Arc::downgrade(self)));
        tokio::spawn(reconciler(Arc::downgrade(self)));
        tracing::info!(
            node = %self.name,
            groups = self.node.running_groups().len(),
            membership_version = layout.members.version,
            joining = !self.founding && layout.members.version == 0,
            "cluster groups started"
        );
        Ok(())
    }

    /// Starts (or resumes) one group here, founding it if this node founds it on the cluster's
    /// first start.
    async fn start_group(self: &Arc<Self>, group: GroupId) -> anyhow::Result<()> {
        let layout = self.layout();
        let applier = NodeApplier {
            cluster: Arc::downgrade(self),
            store: self.store.clone(),
            placement: layout.placement.clone(),
            group,
            catalog: group == self.catalog_group,
            applied_index: 0,
            members: None,
        };
        let raft = self.node.start_group(group, applier).await.with_context(|| format!("group {group}"))?;
        if self.founding
            && self.founds(&layout, group)
            && !raft.is_initialized().await.map_err(|error| anyhow::anyhow!("{error}"))?
        {
            tokio::spawn(found_group(raft.clone(), group, self.initial_members(&layout, group)?));
        }
        if group != self.catalog_group {
            tokio::spawn(watch_leadership(Arc::downgrade(self), group, raft));
        }
        Ok(())
    }

    /// The node that initializes `group` on the cluster's first start: a shard's preferred
    /// leader, and the first node by name for the catalog group.
    fn founds(&self, layout: &Layout, group: GroupId) -> bool {
        if group == self.catalog_group {
            return layout.placement.nodes().first().is_some_and(|first| *first == self.name);
        }
        layout.placement.replicas(group as u32).first().is_some_and(|first| *first == self.name)
    }

    fn initial_members(
        &self,
        layout: &Layout,
        group: GroupId,
    ) -> anyhow::Result<std::collections::BTreeMap<NodeId, BasicNode>> {
        if group == self.catalog_group {
            return Ok(layout
                .placement
                .nodes()
                .iter()
                .map(|name| (raft_node_id(name), BasicNode::new(layout.addresses[name].clone())))
                .collect());
        }
        Ok(shard_members(&layout.placement, group as u32, &layout.addresses)?)
    }

    fn group_of(&self, stream: &str) -> GroupId {
        if stream.is_empty() {
            self.catalog_group
        } else {
            GroupId::from(self.shard_of(stream))
        }
    }

    /// The shard of an event: it depends on the shard count alone, so no look at the node list
    /// (every routed call and every journal job asks).
    fn shard_of(&self, event_id: &str) -> u32 {
        turnstile_cluster::placement::shard_of(event_id, self.shards)
    }

    fn engine(&self) -> Option<turnstile_engine::Engine> {
        self.engine.get().and_then(WeakEngine::upgrade)
    }

    /// A membership was applied here (from the catalog group's log or a snapshot of it): it is
    /// in force from now on, and the reconciler moves this node's groups to it.
    fn members_applied(&self, members: Members) {
        let current = self.layout();
        if members.version <= current.members.version && current.members.version > 0 {
            return;
        }
        match Layout::new(members, &self.configured, self.shards, self.replicas) {
            Ok(layout) => {
                if layout.members.contains(&self.name) {
                    self.established.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                tracing::info!(
                    version = layout.members.version,
                    nodes = ?layout.members.ids().collect::<Vec<_>>(),
                    "cluster membership applied"
                );
                *self.layout.write().expect("layout") = Arc::new(layout);
                self.reconcile.notify_one();
            }
            Err(error) => tracing::error!(%error, "a committed cluster membership cannot be placed; ignored"),
        }
    }

    /// Stops every group (before the process exits).
    pub async fn shutdown(&self) {
        let _ = self.node.shutdown(Duration::from_secs(5)).await;
    }
}

// -----------------------------------------------------------------------------------------------
// Entries as bytes
// -----------------------------------------------------------------------------------------------

/// One engine job as the replication log carries it: the stream (an event id, or `""` for the
/// catalog) and its writes, exactly as the engine handed them to its journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ReplicatedJob {
    stream: String,
    writes: Vec<Write>,
}

/// A replication log entry of a group: a batch of jobs, in the order the engine submitted them.
/// An enum so that later kinds of entries can be told apart from this one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum ReplicatedEntry {
    Jobs(Vec<ReplicatedJob>),
}

fn encode_entry(jobs: Vec<ReplicatedJob>) -> Vec<u8> {
    postcard::to_stdvec(&ReplicatedEntry::Jobs(jobs)).expect("jobs always encode")
}

fn decode_entry(bytes: &[u8]) -> Result<Vec<ReplicatedJob>, String> {
    match postcard::from_bytes::<ReplicatedEntry>(bytes) {
        Ok(ReplicatedEntry::Jobs(jobs)) => Ok(jobs),
        Err(error) => Err(format!("replicated entry does not decode: {error}")),
    }
}

/// Bytes a job adds to an entry, roughly (for cutting batches; the entry's real size is checked).
fn job_bytes(job: &ReplicatedJob) -> usize {
    let writes: usize = job
        .writes
        .iter()
        .map(|write| match write {
            Write::Append { payload } => payload.len() + 8,
            Write::Put { kind, key, value } => kind.as_str().len() + key.len() + value.len() + 12,
            Write::IndexBooking { buyer, booking_id, .. } => buyer.len() + booking_id.len() + 20,
            Write::Checkpoint { state } => state.len() + 8,
        })
        .sum();
    job.stream.len() + writes + 8
}

// -----------------------------------------------------------------------------------------------
// Proposing
// -----------------------------------------------------------------------------------------------

/// A job waiting for its group's proposer.
enum Job {
    Write {
        job: ReplicatedJob,
        done: Done,
    },
    /// A checkpoint's place in its stream's order; its state comes from the filler the engine got
    /// (encoded off the actor's path). The proposer holds the jobs behind it until it arrives.
    Checkpoint {
        stream: String,
        state: oneshot::Receiver<Vec<u8>>,
        done: Done,
    },
}

/// The engine's journal in a cluster: jobs go to their group's proposer, which puts many of
/// them into one replication log entry (see [`proposer`]).
pub struct ReplicatedJournal(pub Arc<Cluster>);

impl ReplicatedJournal {
    fn queue(&self, stream: &str, job: Job) {
        let group = self.0.group_of(stream);
        let fail = |job: Job, error: StoreError| match job {
            Job::Write { done, .. } | Job::Checkpoint { done, .. } => done(Err(error)),
        };
        let Some(queue) = self.0.proposals.get(&group) else {
            return fail(job, group_error(group, "this node is not a replica of the group"));
        };
        match queue.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => fail(job, StoreError::Full),
            Err(mpsc::error::TrySendError::Closed(job)) => fail(job, StoreError::Stopped),
        }
    }
}

impl Journal for ReplicatedJournal {
    /// An empty job is not replicated, but it is answered in its turn, after the jobs of its
    /// group before it (see [`committer`]).
    fn submit(&self, stream: &str, writes: Vec<Write>, done: Done) {
        self.queue(stream, Job::Write { job: ReplicatedJob { stream: stream.to_string(), writes }, done });
    }

    /// Checkpoints are replicated like commands, in their stream's order: every replica stores
    /// them, so each replica's store can purge the commands behind them, a shard snapshot is
    /// checkpoints plus short tails, and a new leader replays only a tail.
    fn checkpoint_later(&self, stream: &str, done: Done) -> Option<CheckpointFiller> {
        let (sender, receiver) = oneshot::channel();
        self.queue(stream, Job::Checkpoint { stream: stream.to_string(), state: receiver, done });
        Some(CheckpointFiller::new(move |state| {
            if let Some(state) = state {
                let _ = sender.send(state);
            }
            // Dropped unfilled: the closed channel tells the proposer.
        }))
    }
}

type ClientWriteError = openraft::error::ClientWriteError<NodeId, BasicNode>;
type CommitReceiver =
    oneshot::Receiver<Result<openraft::raft::ClientWriteResponse<turnstile_cluster::TypeConfig>, ClientWriteError>>;

/// A job's place in a batch: its stream, whether it wrote nothing (an answer that must wait for
/// the jobs of its stream before it), and its callback.
struct Answering {
    stream: String,
    empty: bool,
    done: Done,
}

/// What became of a batch at the proposer.
enum Proposed {
    /// Handed to raft: committed once the receiver says so.
    Entry { receiver: CommitReceiver, proposed_at: std::time::Instant },
    /// Only empty jobs: nothing to replicate, they are answered in their turn.
    Nothing,
    /// Refused before raft saw it.
    Failed(StoreError),
}

/// A batch on its way to the committer, with the callbacks of its jobs in order.
struct InFlight {
    proposed: Proposed,
    jobs: Vec<Answering>,
    deadline: tokio::time::Instant,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Proposes one group's jobs in submission order, many to an entry. At most
/// `BATCHES_IN_FLIGHT_MAX` entries of the group are proposed and not yet committed; jobs that
/// arrive meanwhile wait and go together into the next entry, so a busy group makes few large
/// entries (one replication round and one fsync per replica for many commands) and an idle one
/// proposes a lone job at once. Every batch, proposed or refused, goes to [`committer`] in
/// order, which answers each job after its entry is committed on a majority and applied here.
async fn proposer(cluster: Arc<Cluster>, group: GroupId, mut jobs: mpsc::Receiver<Job>) {
    if group == cluster.catalog_group {
        return catalog_proposer(cluster, group, jobs).await;
    }
    let in_flight_slots = Arc::new(tokio::sync::Semaphore::new(BATCHES_IN_FLIGHT_MAX));
    let (commits, pending_commits) = mpsc::channel(BATCHES_IN_FLIGHT_MAX);
    tokio::spawn(committer(group, pending_commits));
    // A job taken from the queue that did not fit the last entry.
    let mut carried: Option<(ReplicatedJob, Done)> = None;
    loop {
        let Ok(permit) = in_flight_slots.clone().acquire_owned().await else { return };
        let first = match carried.take() {
            Some(first) => first,
            None => match jobs.recv().await {
                Some(job) => match ready_job(group, job).await {
                    Some(first) => first,
                    None => continue,
                },
                None => return,
            },
        };
        let mut bytes = job_bytes(&first.0);
        let mut batch = vec![first];
        while batch.len() < JOBS_PER_ENTRY_MAX && bytes < ENTRY_BYTES_TARGET {
            let Ok(job) = jobs.try_recv() else { break };
            let Some((job, done)) = ready_job(group, job).await else { continue };
            let size = job_bytes(&job);
            if bytes + size > ENTRY_BYTES_TARGET {
                carried = Some((job, done));
                break;
            }
            bytes += size;
            batch.push((job, done));
        }
        let mut entry = Vec::with_capacity(batch.len());
        let mut answering = Vec::with_capacity(batch.len());
        for (job, done) in batch {
            let empty = job.writes.is_empty();
            answering.push(Answering { stream: job.stream.clone(), empty, done });
            if !empty {
                entry.push(job);
            }
        }
        let proposed = if entry.is_empty() { Proposed::Nothing } else { propose_entry(&cluster, group, entry).await };
        if let Proposed::Entry { .. } = proposed {
            metrics::histogram!("turnstile_cluster_entry_jobs").record(answering.len() as f64);
        }
        let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
        let batch = InFlight { proposed, jobs: answering, deadline, _permit: permit };
        if let Err(mpsc::error::SendError(batch)) = commits.send(batch).await {
            for job in batch.jobs {
                (job.done)(Err(StoreError::Stopped));
            }
            return;
        }
    }
}

/// Hands one entry of jobs to raft if this node still leads the group.
async fn propose_entry(cluster: &Cluster, group: GroupId, entry: Vec<ReplicatedJob>) -> Proposed {
    let Some(raft) = cluster.node.group(group) else {
        return Proposed::Failed(group_error(group, "the group is not running"));
    };
    if raft.metrics().borrow().current_leader != Some(cluster.id) {
        return Proposed::Failed(group_error(group, "this node no longer leads the shard"));
    }
    let command = encode_entry(entry);
    if command.len() > ENTRY_BYTES_MAX_PROPOSED {
        return Proposed::Failed(group_error(group, ProposeError::TooLarge(command.len())));
    }
    match raft.client_write_ff(Command(command)).await {
        Ok(receiver) => Proposed::Entry { receiver, proposed_at: std::time::Instant::now() },
        Err(error) => Proposed::Failed(group_error(group, error)),
    }
}

/// A job as it goes into an entry: a checkpoint once its state is here (`None`, answered, when
/// it never comes or is too large for an entry).
async fn ready_job(group: GroupId, job: Job) -> Option<(ReplicatedJob, Done)> {
    match job {
        Job::Write { job, done } => Some((job, done)),
        Job::Checkpoint { stream, state, done } => match tokio::time::timeout(CHECKPOINT_STATE_TIMEOUT, state).await {
            Ok(Ok(state)) if state.len() + 1_024 <= ENTRY_BYTES_MAX_PROPOSED => {
                Some((ReplicatedJob { stream, writes: vec![Write::Checkpoint { state }] }, done))
            }
            Ok(Ok(state)) => {
                let reason = format!(
                    "checkpoint of '{stream}' is {} bytes, over what one entry of group {group} carries",
                    state.len()
                );
                done(Err(StoreError::Refused(reason)));
                None
            }
            Ok(Err(_)) | Err(_) => {
                done(Err(StoreError::Refused(format!("checkpoint of '{stream}' abandoned: its state never came"))));
                None
            }
        },
    }
}

/// Answers a group's batches in the order they were proposed, each once its entry is committed
/// (or has failed, or its deadline passed: it may still commit, and the engine rebuilds the
/// event from the log once this node has applied it).
///
/// An empty job (an actor answering a retried request from a command it applied earlier) is
/// answered in its turn, after every job before it, and only if no job of its stream has failed
/// since the stream last wrote successfully: the earlier command it answers from may be one that
/// failed (a stale leader's, say), and answering it would acknowledge what was never stored.
async fn committer(group: GroupId, mut batches: mpsc::Receiver<InFlight>) {
    let mut failed_streams: std::collections::HashSet<String> = std::collections::HashSet::new();
    while let Some(batch) = batches.recv().await {
        let result = match batch.proposed {
            Proposed::Nothing => Ok(Committed::default()),
            Proposed::Failed(error) => Err(error),
            Proposed::Entry { receiver, proposed_at } => {
                let result = match tokio::time::timeout_at(batch.deadline, receiver).await {
                    Err(_) => Err(group_error(group, format!("no commit within {COMMIT_TIMEOUT:?}"))),
                    Ok(Err(_)) => Err(group_error(group, "the group stopped")),
                    Ok(Ok(Err(error))) => Err(group_error(group, error)),
                    Ok(Ok(Ok(_))) => Ok(Committed::default()),
                };
                metrics::histogram!("turnstile_cluster_commit_seconds").record(proposed_at.elapsed().as_secs_f64());
                result
            }
        };
        for job in batch.jobs {
            let answer = match (&result, job.empty) {
                (Err(error), _) => {
                    failed_streams.insert(job.stream);
                    Err(error.clone())
                }
                (Ok(_), true) if failed_streams.contains(&job.stream) => {
                    Err(group_error(group, format!("an earlier change of '{}' was not stored; retry", job.stream)))
                }
                (Ok(committed), true) => Ok(committed.clone()),
                (Ok(committed), false) => {
                    failed_streams.remove(&job.stream);
                    Ok(committed.clone())
                }
            };
            (job.done)(answer);
        }
    }
}

/// Catalog changes may come from any node: one that does not lead the catalog group hands its
/// proposal to the leader. Each is a whole record put, so order across concurrent changes does
/// not matter, and they are rare: one entry each.
async fn catalog_proposer(cluster: Arc<Cluster>, group: GroupId, mut jobs: mpsc::Receiver<Job>) {
    while let Some(job) = jobs.recv().await {
        let (job, done) = match job {
            Job::Write { job, done } => (job, done),
            Job::Checkpoint { done, .. } => {
                done(Err(StoreError::Refused("the catalog keeps no checkpoints".into())));
                continue;
            }
        };
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let result = cluster.node.propose_anywhere(group, encode_entry(vec![job]), COMMIT_TIMEOUT).await;
            done(result.map(|_| Committed::default()).map_err(|error| group_error(group, error)));
        });
    }
}

// -----------------------------------------------------------------------------------------------
// Applying
// -----------------------------------------------------------------------------------------------

/// A shard's (or the catalog's) part of a node's store, as a snapshot carries it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct GroupSnapshot {
    /// Each of the group's event streams: its checkpoint (empty when it has none) and the
    /// commands after it, in order.
    streams: Vec<StreamSnapshot>,
    /// The group's records: bookings of its events, or the catalog's records.
    records: Vec<(RecordKind, String, Vec<u8>)>,
    /// The buyer index entries of the group's bookings: (buyer, booked at ms, booking id).
    buyer_index: Vec<(String, u64, String)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StreamSnapshot {
    stream: String,
    checkpoint: Vec<u8>,
    commands: Vec<Vec<u8>>,
}

/// Applies a group's committed entries to this node's store: every replica, the leader included,
/// keeps the group's state (event commands and checkpoints, bookings, buyer index, catalog) in
/// its own store, the state an event is rebuilt from when this node comes to lead its shard.
pub struct NodeApplier {
    cluster: std::sync::Weak<Cluster>,
    store: Arc<Store>,
    placement: Placement,
    group: GroupId,
    catalog: bool,
    /// The last index this applier stored, to skip entries openraft hands over again.
    applied_index: u64,
    /// The catalog group's membership record as applied so far (loaded from the store at first
    /// use): a membership record is applied only if it is the next version of this one.
    members: Option<Members>,
}

impl NodeApplier {
    fn state_key(&self) -> String {
        self.group.to_string()
    }

    /// The record that says how far this group is applied, stored with what was applied.
    fn state_write(&self, state: &AppliedState) -> Write {
        Write::Put {
            kind: APPLIED_STATE_RECORD,
            key: self.state_key(),
            value: postcard::to_stdvec(state).expect("an applied state always encodes"),
        }
    }

    /// Writes `jobs` in one transaction of the store (not flushed: the replication log is durable
    /// and the group re-applies from its stored state after a crash). A full store queue is waited
    /// out; any other failure is returned.
    async fn write(&self, jobs: Vec<(String, Vec<Write>)>) -> Result<(), String> {
        let (sender, receiver) = oneshot::channel();
        let mut submission: (Vec<(String, Vec<Write>)>, Done) =
            (jobs, Box::new(move |result| drop(sender.send(result))));
        let mut tries = 0;
        loop {
            let (jobs, done) = submission;
            match self.store.submit_replicated(jobs, done) {
                Ok(()) => break,
                Err((StoreError::Full, jobs, done)) if tries < STORE_FULL_RETRIES => {
                    tries += 1;
                    submission = (jobs, done);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((error, _, _)) => return Err(error.to_string()),
            }
        }
        match receiver.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("the store stopped".into()),
        }
    }

    async fn sync(store: &Store) -> Result<(), String> {
        let (sender, receiver) = oneshot::channel();
        store.sync(Box::new(move |result| drop(sender.send(result))));
        match receiver.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("the store stopped".into()),
        }
    }

    /// `writes` without the membership records that are not the next version of the one applied
    /// so far (a change proposed against a membership another change replaced first). Every
    /// replica applies the same log from the same state, so every replica drops the same ones.
    /// The last one kept goes to `applied`.
    fn keep_next_members(&mut self, writes: Vec<Write>, applied: &mut Option<Members>) -> Result<Vec<Write>, String> {
        let mut kept = Vec::with_capacity(writes.len());
        for write in writes {
            if let Write::Put { kind: RecordKind::ClusterMembers, value, .. } = &write {
                let next = Members::decode(value)?;
                if self.members.is_none() {
                    self.members =
                        Some(stored_members(&self.store).map_err(|error| error.to_string())?.unwrap_or_default());
                }
                let current = self.members.as_ref().expect("loaded");
                if !current.follows(&next) {
                    tracing::info!(
                        applied = current.version,
                        proposed = next.version,
                        "a membership change proposed against an older membership was dropped"
                    );
                    continue;
                }
                self.members = Some(next.clone());
                *applied = Some(next);
            }
            kept.push(write);
        }
        Ok(kept)
    }

    /// Whether a stream (an event id) is this shard's.
    fn owns_stream(placement: &Placement, group: GroupId, stream: &str) -> bool {
        !stream.is_empty() && GroupId::from(placement.shard_of(stream)) == group
    }

    fn owns_booking(placement: &Placement, group: GroupId, booking_id: &str) -> bool {
        BookingId::new(booking_id)
            .event_id()
            .is_some_and(|event_id| Self::owns_stream(placement, group, event_id.as_str()))
    }

    /// Reads the group's part of the store from one view (blocking: run off the async threads).
    fn read_snapshot(
        view: &StoreView,
        placement: &Placement,
        group: GroupId,
        catalog: bool,
    ) -> Result<GroupSnapshot, StoreError> {
        let mut snapshot = GroupSnapshot::default();
        if catalog {
            for kind in RecordKind::CATALOG.into_iter().chain([RecordKind::ClusterMembers]) {
                for (key, value) in view.records(kind)? {
                    snapshot.records.push((kind, key, value));
                }
            }
            return Ok(snapshot);
        }
        let mut streams: std::collections::BTreeMap<String, (u64, StreamSnapshot)> = Default::default();
        for (stream, index, state) in view.checkpoints()? {
            if Self::owns_stream(placement, group, &stream) {
                let entry = StreamSnapshot { stream: stream.clone(), checkpoint: state, commands: Vec::new() };
                streams.insert(stream, (index, entry));
            }
        }
        view.for_each_entry::<StoreError>(0, |entry| {
            if !Self::owns_stream(placement, group, &entry.stream) {
                return Ok(());
            }
            let slot = streams.entry(entry.stream.clone()).or_insert_with(|| {
                (0, StreamSnapshot { stream: entry.stream.clone(), checkpoint: Vec::new(), commands: Vec::new() })
            });
            if entry.index > slot.0 {
                slot.1.commands.push(entry.payload);
            }
            Ok(())
        })?;
        snapshot.streams = streams.into_values().map(|(_, stream)| stream).collect();
        for (key, value) in view.records(RecordKind::Booking)? {
            if Self::owns_booking(placement, group, &key) {
                snapshot.records.push((RecordKind::Booking, key, value));
            }
        }
        // The waiting rooms' lines of the group's events (keyed by event id).
        for (key, value) in view.records(RecordKind::QueueLine)? {
            if Self::owns_stream(placement, group, &key) {
                snapshot.records.push((RecordKind::QueueLine, key, value));
            }
        }
        view.for_each_buyer_booking::<StoreError>(|buyer, booked_at_ms, booking_id| {
            if Self::owns_booking(placement, group, booking_id) {
                snapshot.buyer_index.push((buyer.to_string(), booked_at_ms, booking_id.to_string()));
            }
            Ok(())
        })?;
        Ok(snapshot)
    }
}

impl Applier for NodeApplier {
    async fn stored_state(&mut self) -> Result<Option<AppliedState>, String> {
        let stored = self.store.record(APPLIED_STATE_RECORD, &self.state_key()).map_err(|error| error.to_string())?;
        let Some(bytes) = stored else { return Ok(None) };
        let state: AppliedState =
            postcard::from_bytes(&bytes).map_err(|error| format!("applied state of group {}: {error}", self.group))?;
        self.applied_index = state.last_applied.map_or(0, |log_id| log_id.index);
        Ok(Some(state))
    }

    async fn apply(&mut self, entries: Vec<AppliedEntry>, state: &AppliedState) -> Result<Vec<Vec<u8>>, String> {
        let replies = vec![Vec::new(); entries.len()];
        let mut applied_members = None;
        let mut jobs = Vec::new();
        let mut catalog_writes = Vec::new();
        for entry in entries {
            if entry.index <= self.applied_index {
                continue;
            }
            let Some(command) = entry.command else { continue };
            let decoded = match decode_entry(&command) {
                Ok(decoded) => decoded,
                Err(reason) => fatal(self.group, entry.index, &reason),
            };
            for mut job in decoded {
                if self.catalog {
                    job.writes = self.keep_next_members(job.writes, &mut applied_members)?;
                    catalog_writes.extend(job.writes.iter().cloned());
                }
                jobs.push((job.stream, job.writes));
            }
        }
        jobs.push((String::new(), vec![self.state_write(state)]));
        let last_index = state.last_applied.map_or(0, |log_id| log_id.index);
        if let Err(reason) = self.write(jobs).await {
            fatal(self.group, last_index, &reason);
        }
        self.applied_index = last_index;
        if let (Some(members), Some(cluster)) = (applied_members, self.cluster.upgrade()) {
            cluster.members_applied(members);
        }
        if !catalog_writes.is_empty() {
            if let Some(engine) = self.cluster.upgrade().and_then(|cluster| cluster.engine()) {
                if let Err(error) = engine.apply_replicated_catalog(&catalog_writes) {
                    fatal(self.group, last_index, &error.to_string());
                }
            }
        }
        Ok(replies)
    }

    fn snapshot(&mut self) -> SnapshotFuture {
        // The view is taken now, between applies: it holds exactly what is applied so far.
        let view = self.store.view();
        let store = self.store.clone();
        let placement = self.placement.clone();
        let (group, catalog) = (self.group, self.catalog);
        Box::pin(async move {
            let view = view.map_err(|error| error.to_string())?;
            // The log behind the snapshot is purged once it is stored: what it covers must not
            // be lost with a crash of this node's store, so make the store durable first.
            Self::sync(&store).await?;
            let snapshot = tokio::task::spawn_blocking(move || Self::read_snapshot(&view, &placement, group, catalog))
                .await
                .map_err(|error| format!("snapshot task failed: {error}"))?
                .map_err(|error| error.to_string())?;
            let encoded =
                postcard::to_stdvec(&snapshot).map_err(|error| format!("snapshot does not encode: {error}"))?;
            tracing::debug!(group, streams = snapshot.streams.len(), bytes = encoded.len(), "built a snapshot");
            Ok(encoded)
        })
    }

    async fn restore(&mut self, snapshot: &[u8], state: &AppliedState) -> Result<(), String> {
        let snapshot: GroupSnapshot =
            postcard::from_bytes(snapshot).map_err(|error| format!("snapshot of group {}: {error}", self.group))?;
        // Everything this store had of the group is a prefix of the snapshot (raft installs only
        // newer state): each stream restarts from the snapshot's checkpoint (an empty one means
        // the event's fresh state), which covers every command the store had of it, then the
        // snapshot's commands after it. Records and index entries are replaced or added.
        let mut jobs = Vec::with_capacity(snapshot.streams.len() * 2 + 2);
        for stream in snapshot.streams {
            jobs.push((stream.stream.clone(), vec![Write::Checkpoint { state: stream.checkpoint }]));
            if !stream.commands.is_empty() {
                let appends = stream.commands.into_iter().map(|payload| Write::Append { payload }).collect();
                jobs.push((stream.stream, appends));
            }
        }
        let mut shared = Vec::with_capacity(snapshot.records.len() + snapshot.buyer_index.len() + 1);
        for (kind, key, value) in snapshot.records {
            shared.push(Write::Put { kind, key, value });
        }
        for (buyer, booked_at_ms, booking_id) in snapshot.buyer_index {
            shared.push(Write::IndexBooking { buyer, booked_at_ms, booking_id });
        }
        let catalog_writes = self.catalog.then(|| shared.clone());
        shared.push(self.state_write(state));
        jobs.push((String::new(), shared));
        self.write(jobs).await?;
        Self::sync(&self.store).await?;
        self.applied_index = state.last_applied.map_or(0, |log_id| log_id.index);
        // The snapshot may carry a newer membership: read it again from the store.
        self.members = None;
        if self.catalog {
            if let (Ok(Some(members)), Some(cluster)) = (stored_members(&self.store), self.cluster.upgrade()) {
                cluster.members_applied(members);
            }
        }
        if let Some(writes) = catalog_writes {
            if let Some(engine) = self.cluster.upgrade().and_then(|cluster| cluster.engine()) {
                engine.apply_replicated_catalog(&writes).map_err(|error| error.to_string())?;
            }
        }
        tracing::info!(group = self.group, last_applied = ?state.last_applied, "installed a snapshot");
        Ok(())
    }
}

/// A replica that cannot apply a committed entry must not go on as if it had: stop the process;
/// on restart it applies the entry again from the replication log.
fn fatal(group: GroupId, index: u64, reason: &str) -> ! {
    tracing::error!(group, index, %reason, "cannot apply a committed entry; stopping");
    std::process::abort();
}

/// Initializes a group this node founds, unless a leader reaches it first. A founder with no
/// state may be one whose data directory was lost while its cluster went on: initializing then
/// would campaign with an empty log and a fresh term, unseat the group's leader and make the
/// others elect again. A leader that exists sends its heartbeat within a few hundred ms and the
/// node joins as a follower (by snapshot if the log behind it is purged); only on a cluster's
/// first start does nobody come, and the founder initializes the group after `FOUNDING_WAIT`.
async fn found_group(raft: Raft, group: GroupId, members: std::collections::BTreeMap<NodeId, BasicNode>) {
    let mut metrics = raft.metrics();
    let heard_of_leader = tokio::time::timeout(FOUNDING_WAIT, async {
        loop {
            if metrics.borrow_and_update().current_leader.is_some() {
                return;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    })
    .await
    .is_ok();
    if heard_of_leader || raft.is_initialized().await.unwrap_or(true) {
        tracing::debug!(group, "joined a group formed already");
        return;
    }
    if let Err(error) = raft.initialize(members).await {
        // Another start got there first: the group is formed, which is the aim.
        tracing::debug!(group, %error, "group already initialized");
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
            let belongs = move |event_id: &EventId| placement_cluster.shard_of(event_id.as_str()) == shard;
            if leading {
                if caught_up(&raft, cluster.id).await {
                    match engine.host_events(&belongs).await {
                        Ok(started) => {
                            tracing::debug!(group, started, "leading the shard; its events run here");
                            let mut changes = cluster.leadership.lock().expect("leadership");
                            changes.leading.insert(group);
                            changes.taken.push(group);
                            changes.events_started += started;
                        }
                        Err(error) => tracing::warn!(group, %error, "leading the shard, but its events did not start"),
                    }
                }
            } else {
                engine.release_events(&belongs).await;
                tracing::debug!(group, "no longer leading the shard; its events stopped here");
                let mut changes = cluster.leadership.lock().expect("leadership");
                if changes.leading.remove(&group) {
                    changes.given_up.push(group);
                }
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
        // The node list is read only when the call goes elsewhere: a local call takes no lock.
        let shard = self.shard_of(event_id);
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
                .or_else(|| self.layout().placement.replicas(shard).first().map(|name| raft_node_id(name))),
        };
        match leader {
            Some(leader) if leader == self.id => Route::Local,
            Some(leader) => {
                let layout = self.layout();
                match layout.names.get(&leader) {
                    Some(node) => Route::Forward { node: node.clone(), address: layout.addresses[node].clone() },
                    None => {
                        Route::Unavailable { reason: format!("shard {shard}'s leader is not a member of the cluster") }
                    }
                }
            }
            None => Route::Unavailable { reason: format!("shard {shard} is electing a leader") },
        }
    }

    fn hint_leader(&self, event_id: &str, node: &str) {
        let shard = self.shard_of(event_id);
        if self.node.group(GroupId::from(shard)).is_none() && self.layout().addresses.contains_key(node) {
            self.leader_hints.lock().expect("hints").insert(shard, raft_node_id(node));
        }
    }

    fn booking_holders(&self) -> Option<BookingHolders> {
        let layout = self.layout();
        let every_shard = layout.placement.shards_of_node(&self.name).len() as u32 == self.shards;
        if every_shard && layout.members.contains(&self.name) {
            return None;
        }
        let mut nodes: Vec<(String, String)> =
            layout.addresses.iter().map(|(node, address)| (node.clone(), address.clone())).collect();
        nodes.sort();
        // Each shard has `replicas` replicas among the nodes, so any `nodes - replicas + 1` of
        // them hold one of every shard.
        let replicas = layout.placement.replica_count();
        let answers_needed = nodes.len() + 1 - replicas;
        let placement = layout.placement.clone();
        let replicas =
            Arc::new(move |node: &str, event_id: &str| placement.replicas_of_event(event_id).contains(&node));
        Some(BookingHolders { nodes, answers_needed, replicas })
    }

    fn cluster_view(&self) -> ClusterView {
        let layout = self.layout();
        let mut running = self.node.running_groups();
        running.sort_unstable();
        let mut groups = Vec::new();
        for group in running {
            let Some(raft) = self.node.group(group) else { continue };
            let metrics = raft.metrics().borrow().clone();
            let last_log_index = metrics.last_log_index.unwrap_or(0);
            let replication_lag = metrics
                .replication
                .as_ref()
                .and_then(|replication| {
                    replication
                        .values()
                        .map(|matched| last_log_index.saturating_sub(matched.map_or(0, |log_id| log_id.index)))
                        .max()
                })
                .unwrap_or(0);
            let leading = metrics.current_leader == Some(self.id) && metrics.state == ServerState::Leader;
            let (mut voters, mut learners, mut target_voters) = (Vec::new(), Vec::new(), Vec::new());
            if leading {
                let membership = metrics.membership_config.membership();
                voters = membership.voter_ids().map(|id| layout.name_of(id)).collect();
                learners = membership.learner_ids().map(|id| layout.name_of(id)).collect();
                target_voters = reconcile::target(&layout, self.catalog_group, group).into_values().collect();
                voters.sort();
                learners.sort();
                target_voters.sort();
            }
            groups.push(GroupView {
                name: if group == self.catalog_group { "catalog".into() } else { format!("shard {group}") },
                leader: metrics.current_leader.map(|leader| layout.name_of(leader)),
                last_log_index,
                last_applied_index: metrics.last_applied.map_or(0, |log_id| log_id.index),
                replication_lag,
                voters,
                learners,
                target_voters,
            });
        }
        let mine = layout.placement.shards_of_node(&self.name);
        let mut peers: Vec<PeerView> = layout
            .addresses
            .iter()
            .filter(|(node, _)| **node != self.name)
            .map(|(node, address)| {
                let theirs = layout.placement.shards_of_node(node);
                // The catalog group has every node.
                let groups_shared = 1 + mine.iter().filter(|shard| theirs.contains(shard)).count() as u32;
                let (reachable, since) = self.node.peer_state(address).unwrap_or((true, std::time::Instant::now()));
                PeerView {
                    node: node.clone(),
                    address: address.clone(),
                    groups_shared,
                    reachable,
                    unreachable_for: if reachable { Duration::ZERO } else { since.elapsed() },
                }
            })
            .collect();
        peers.sort_by(|a, b| a.node.cmp(&b.node));
        ClusterView { groups, peers, membership: Some(self.membership_view(&layout)) }
    }

    fn change_members(
        &self,
        add: Vec<(String, String)>,
        remove: Vec<String>,
    ) -> futures::future::BoxFuture<'_, Result<MembershipChange, tonic::Status>> {
        Box::pin(self.change_members_now(add, remove))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_every_kind_of_write() {
        let jobs = vec![
            ReplicatedJob {
                stream: "evt_1".into(),
                writes: vec![
                    Write::Append { payload: vec![1, 2, 3] },
                    Write::Put { kind: RecordKind::Booking, key: "bk_1".into(), value: vec![9; 40] },
                    Write::IndexBooking {
                        buyer: "alice".into(),
                        booked_at_ms: 1_700_000_000_123,
                        booking_id: "bk_1".into(),
                    },
                ],
            },
            ReplicatedJob { stream: "evt_2".into(), writes: vec![Write::Checkpoint { state: vec![7; 10] }] },
        ];
        let bytes = encode_entry(jobs.clone());
        assert_eq!(decode_entry(&bytes).unwrap(), jobs);
        assert!(decode_entry(&bytes[..bytes.len() - 1]).is_err(), "a cut entry is refused");
        assert!(decode_entry(&[9]).unwrap_err().contains("does not decode"));
    }

    #[test]
    fn a_job_is_counted_at_least_at_its_payload() {
        let job = ReplicatedJob { stream: "evt_1".into(), writes: vec![Write::Checkpoint { state: vec![0; 5_000] }] };
        assert!(job_bytes(&job) >= 5_000);
        assert!(encode_entry(vec![job.clone()]).len() <= job_bytes(&job) + 16);
    }
}
