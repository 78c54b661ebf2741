//! A node's side of the cluster: its replication log file, the groups it runs and the channels to
//! its peers (proposing a command to a group is `propose`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use turnstile_storage::RaftLog;

use crate::network::proto::raft_server::RaftServer;
use crate::placement::{raft_node_id, Placement, ShardId};
pub use crate::propose::{propose, ProposeError, COMMAND_BYTES_MAX, PROPOSE_TIMEOUT};
use crate::types::{Command, GroupId, NodeId, Raft};
use crate::{start_group, Applier, ClusterError, Connections, Groups, RaftService};

/// The members of `shard`'s group: its replica set by `placement`, with the replication address
/// of each from `addresses` (node id -> address).
pub fn shard_members(
    placement: &Placement,
    shard: ShardId,
    addresses: &HashMap<String, String>,
) -> Result<BTreeMap<NodeId, BasicNode>, ClusterError> {
    placement
        .replicas(shard)
        .into_iter()
        .map(|node| match addresses.get(node) {
            Some(address) => Ok((raft_node_id(node), BasicNode::new(address.clone()))),
            None => Err(ClusterError::Config(format!("node '{node}' has no replication address"))),
        })
        .collect()
}

/// One node of the cluster: its replication log (`<data_dir>/raft.redb`), the groups it runs
/// and the channels to its peers, shared by all of them.
pub struct ClusterNode {
    name: String,
    id: NodeId,
    log: Arc<RaftLog>,
    groups: Groups,
    connections: Connections,
    config: Arc<openraft::Config>,
    credential: Option<crate::network::NodeCredential>,
}

/// How a node talks to its peers (see [`ClusterNode::open_configured`]).
#[derive(Default)]
pub struct Peers {
    /// Carried by its replication calls and required of those it serves (`None`: neither, for
    /// tests of the groups alone).
    pub credential: Option<crate::network::NodeCredential>,
    /// Every node (raft id -> name, address) as configured: a peer is called at that address,
    /// whatever address a group's stored membership has for it.
    pub nodes: HashMap<NodeId, (String, String)>,
    /// Calls over TLS, checked with this, when the nodes' ports speak TLS.
    pub tls: Option<tonic::transport::ClientTlsConfig>,
}

impl ClusterNode {
    /// Opens the node's replication log in `data_dir`, talking to its peers as `peers` says.
    pub fn open_configured(
        name: &str,
        data_dir: &Path,
        config: Arc<openraft::Config>,
        peers: Peers,
    ) -> Result<Self, ClusterError> {
        let mut node = Self::open(name, data_dir, config)?;
        let connections = match &peers.credential {
            Some(credential) => Connections::with_credential(credential.clone()),
            None => Connections::default(),
        };
        node.connections = connections.configured(peers.nodes).tls(peers.tls);
        node.credential = peers.credential;
        Ok(node)
    }

    /// Opens the node's replication log in `data_dir`.
    pub fn open(name: &str, data_dir: &Path, config: Arc<openraft::Config>) -> Result<Self, ClusterError> {
        let path = data_dir.join(turnstile_storage::RAFT_DATABASE_FILE);
        let log = RaftLog::open(&path).map_err(|error| ClusterError::Config(error.to_string()))?;
        Ok(Self {
            name: name.to_string(),
            id: raft_node_id(name),
            log: Arc::new(log),
            groups: Groups::default(),
            connections: Connections::default(),
            config,
            credential: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's id in every group.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The groups with state in this node's file: those it must resume after a restart.
    pub fn stored_groups(&self) -> Result<Vec<GroupId>, ClusterError> {
        let groups = self.log.groups().map_err(|error| ClusterError::Config(error.to_string()))?;
        Ok(groups.into_iter().collect())
    }

    /// Starts (or resumes from the file) `group`, applying through `applier`.
    pub async fn start_group<A: Applier>(&self, group: GroupId, applier: A) -> Result<Raft, ClusterError> {
        if self.groups.get(group).is_some() {
            return Err(ClusterError::Group { group, reason: "already running on this node".into() });
        }
        let config = self.config.clone();
        start_group(self.id, group, config, self.log.clone(), applier, self.connections.clone(), &self.groups).await
    }

    pub fn group(&self, group: GroupId) -> Option<Raft> {
        self.groups.get(group)
    }

    /// The groups running on this node.
    pub fn running_groups(&self) -> Vec<GroupId> {
        self.groups.ids()
    }

    /// Stops `group` on this node (it left the group): its messages are refused from now on.
    /// Its state stays in the file, like a replica that is down: were the node to join the group
    /// again, the group's leader would bring it up to date from there.
    pub async fn stop_group(&self, group: GroupId, timeout: Duration) -> Result<(), ClusterError> {
        let Some(raft) = self.groups.remove(group) else { return Ok(()) };
        match tokio::time::timeout(timeout, raft.shutdown()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(ClusterError::Group { group, reason: error.to_string() }),
            Err(_) => Err(ClusterError::Group { group, reason: format!("no stop within {timeout:?}") }),
        }
    }

    /// Whether the peer at `address` answered this node's last replication call, and since when
    /// (`None`: not called yet).
    pub fn peer_state(&self, address: &str) -> Option<(bool, std::time::Instant)> {
        self.connections.peer_state(address)
    }

    /// Proposes `command` to `group` from this node whether or not it leads the group: proposed
    /// here when it does, otherwise sent to the leader (`Propose`), following "not the leader"
    /// answers and waiting out elections (and a group this node is still starting), all within `timeout`.
    pub async fn propose_anywhere(
        &self,
        group: GroupId,
        command: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ProposeError> {
        if command.len() > COMMAND_BYTES_MAX {
            return Err(ProposeError::TooLarge(command.len()));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_error = ProposeError::Timeout(timeout);
        while tokio::time::Instant::now() < deadline {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // A node that is still starting its groups: wait for this one.
            let Some(raft) = self.group(group) else {
                last_error = ProposeError::Unavailable(format!("group {group} does not run here (yet)"));
                tokio::time::sleep(Duration::from_millis(50).min(left)).await;
                continue;
            };
            let metrics = raft.metrics().borrow().clone();
            let outcome = match metrics.current_leader {
                Some(leader) if leader == self.id => {
                    propose(&raft, Command(command.clone()), left).await.map(|(_, reply)| reply.0)
                }
                Some(leader) => match metrics.membership_config.membership().get_node(&leader) {
                    Some(node) => {
                        let address = self.connections.address_of(leader, &node.addr);
                        self.connections.forward_proposal(&address, group, leader, command.clone(), left).await
                    }
                    None => Err(ProposeError::NotLeader { leader: None }),
                },
                None => Err(ProposeError::NotLeader { leader: None }),
            };
            match outcome {
                Ok(reply) => return Ok(reply),
                // An election, or a leader that just stepped down: ask again shortly.
                Err(error @ (ProposeError::NotLeader { .. } | ProposeError::Unavailable(_))) => {
                    last_error = error;
                    tokio::time::sleep(Duration::from_millis(100).min(left)).await;
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    /// The replication service of this node, for a tonic server.
    pub fn service(&self) -> RaftServer<RaftService> {
        RaftService::new(self.id, self.groups.clone()).requiring(self.credential.clone()).into_server()
    }

    /// Stops every group (as [`ClusterNode::shutdown`]) and returns once the replication log's
    /// file is closed (the groups' storage tasks have ended), so it can be opened again at once;
    /// an error if that takes longer than `timeout`.
    pub async fn close(self, timeout: Duration) -> Result<(), ClusterError> {
        self.shutdown(timeout).await?;
        let released = self.log.released();
        drop(self);
        let closed = tokio::task::spawn_blocking(move || released.wait(timeout)).await.unwrap_or(false);
        if closed {
            Ok(())
        } else {
            Err(ClusterError::Config(format!("the replication log is still open {timeout:?} after its groups stopped")))
        }
    }

    /// Stops every group, each within `timeout`.
    pub async fn shutdown(&self, timeout: Duration) -> Result<(), ClusterError> {
        for group in self.groups.ids() {
            self.stop_group(group, timeout).await?;
        }
        Ok(())
    }
}
