//! Where a request about an event is served. A single node serves everything itself; in a
//! cluster an event's requests go to the leader of its shard (docs/CLUSTER.md), which the
//! cluster layer knows and the services ask through [`EventRouter`].

/// Where requests about one event are served right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// This node leads the event's shard: serve here.
    Local,
    /// Another node leads it: forward the call to its gRPC address (`host:port`).
    Forward { node: String, address: String },
    /// Nobody leads it at the moment (an election is under way) or the shard is unknown.
    Unavailable { reason: String },
}

/// Answers [`Route`] for an event id. Implemented by the cluster layer; a single node has none.
pub trait EventRouter: Send + Sync + 'static {
    fn route(&self, event_id: &str) -> Route;

    /// Another node refused a forwarded call as not the leader and named the one it knows: a
    /// router that cannot see the shard's leadership itself (this node does not replicate the
    /// shard) uses it next time.
    fn hint_leader(&self, _event_id: &str, _node: &str) {}

    /// When this node's own store does not hold every booking (it replicates only some shards):
    /// every node (id, gRPC address), whose stores together do, and how many of them must answer
    /// for the answers to cover every shard. `None` when this node's store holds them all.
    fn booking_holders(&self) -> Option<BookingHolders> {
        None
    }

    /// The replication groups this node belongs to and every node of the cluster, as this node
    /// sees them (for `GetNodeStatus`). Empty on a single node.
    fn cluster_view(&self) -> ClusterView {
        ClusterView::default()
    }

    /// Adds nodes (id, address) to the cluster and removes others, as one new membership
    /// committed by the catalog group; the shards move to it afterwards.
    fn change_members(
        &self,
        _add: Vec<(String, String)>,
        _remove: Vec<String>,
    ) -> futures::future::BoxFuture<'_, Result<MembershipChange, tonic::Status>> {
        Box::pin(async { Err(no_membership()) })
    }
}

/// The answer to a membership change on a node that runs alone.
pub fn no_membership() -> tonic::Status {
    tonic::Status::failed_precondition("this node runs alone, not in a cluster: there is no membership to change")
}

/// The node list a cluster node has in force (see [`EventRouter::cluster_view`]).
#[derive(Clone, Debug, Default)]
pub struct MembershipView {
    /// 0 until the catalog group has recorded one (the configuration's list stands in).
    pub version: u64,
    /// (id, address), sorted by id.
    pub nodes: Vec<(String, String)>,
    pub shards: u32,
    pub replicas: u32,
    /// The configuration's [[nodes]] that are not members, and members it does not list.
    pub configured_not_members: Vec<String>,
    pub members_not_configured: Vec<String>,
}

/// What a membership change did (see [`EventRouter::change_members`]).
#[derive(Clone, Debug)]
pub struct MembershipChange {
    pub membership: MembershipView,
    /// Replica slots (shard, node) that move, and the shards with one moving.
    pub slots_moved: u32,
    pub shards_changed: u32,
}

/// See [`EventRouter::cluster_view`].
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    pub groups: Vec<GroupView>,
    /// Every other node.
    pub peers: Vec<PeerView>,
    pub membership: Option<MembershipView>,
}

/// Another node as this one sees it.
#[derive(Clone, Debug)]
pub struct PeerView {
    pub node: String,
    pub address: String,
    /// Replication groups it shares with this node.
    pub groups_shared: u32,
    /// Whether it answered this node's last replication call (true before any call), and for how
    /// long it has not.
    pub reachable: bool,
    pub unreachable_for: std::time::Duration,
}

/// One replication group as a node sees it.
#[derive(Clone, Debug)]
pub struct GroupView {
    /// "shard 7", or "catalog".
    pub name: String,
    /// The leader this node knows; `None` during an election.
    pub leader: Option<String>,
    pub last_log_index: u64,
    pub last_applied_index: u64,
    /// For a group this node leads: entries the furthest-behind replica lacks.
    pub replication_lag: u64,
    /// For a group this node leads: its voters and learners, and the voters the node list
    /// places it on (node ids, sorted). Empty otherwise.
    pub voters: Vec<String>,
    pub learners: Vec<String>,
    pub target_voters: Vec<String>,
}

/// The nodes a buyer's bookings are gathered from (see [`EventRouter::booking_holders`]).
#[derive(Clone)]
pub struct BookingHolders {
    pub nodes: Vec<(String, String)>,
    /// Any this many of `nodes` hold at least one replica of every shard.
    pub answers_needed: usize,
    /// Whether a node holds a replica of an event's shard now (by the node list in force).
    pub replicas: ReplicaCheck,
}

/// `(node id, event id) -> whether the node holds a replica of the event's shard`.
pub type ReplicaCheck = std::sync::Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

impl BookingHolders {
    /// Whether `node` holds a replica of the shard of `event_id` now.
    pub fn current_replica(&self, node: &str, event_id: &str) -> bool {
        (self.replicas)(node, event_id)
    }
}
