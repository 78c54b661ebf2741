//! Moving a node's groups to the membership in force (docs/CLUSTER.md, "Membership changes").
//!
//! Every node runs one reconciler. Woken when a membership is applied, and every
//! `RECONCILE_INTERVAL` besides, it:
//! - starts the groups the node list places on this node (empty: their leaders bring them up);
//! - on each group this node leads, takes one step towards the group's target voters (the
//!   shard's replica set, or every member for the catalog group): a new replica joins as a
//!   learner; once every new one has caught up, the voters are replaced in one joint-consensus
//!   change (retaining the old ones as learners, so each learns it left instead of campaigning);
//!   then each learner no longer placed on the group is removed, once it has the entry that made
//!   it a learner (or after `STALE_LEARNER_WAIT`, when it is down);
//! - stops the groups this node is no longer placed on once it is not a voter in them (not while
//!   it joins: catching up on the catalog's log, it applies memberships from before its own);
//! - on the catalog group's leader, records the first membership from the configuration, and on
//!   any member whose configured address differs from the recorded one, records the new one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use openraft::{BasicNode, ChangeMembers, ServerState};
use turnstile_cluster::placement::raft_node_id;
use turnstile_cluster::{GroupId, NodeId, Raft};

use super::members::{moved_slots, ChangeError, Members};
use super::{encode_entry, Cluster, Layout, ReplicatedJob, COMMIT_TIMEOUT};
use crate::routing::{MembershipChange, MembershipView};

/// How often the reconciler looks, at least.
const RECONCILE_INTERVAL: Duration = Duration::from_millis(500);
/// A new replica is made a voter once it lacks at most this many of the leader's entries.
const CATCH_UP_ENTRIES: u64 = 64;
/// How long a leader waits for a replica that left a group to get the entry saying so before it
/// removes it anyway (it is down: a replaced node).
const STALE_LEARNER_WAIT: Duration = Duration::from_secs(10);
/// Proposals of a membership record (the first one, an address change) at most this often.
const RECORD_RETRY: Duration = Duration::from_secs(2);

/// `group`'s target voters under `layout`: raft id -> node id.
pub(super) fn target(layout: &Layout, catalog_group: GroupId, group: GroupId) -> BTreeMap<NodeId, String> {
    let names: Vec<&str> =
        if group == catalog_group { layout.members.ids().collect() } else { layout.placement.replicas(group as u32) };
    names.into_iter().map(|name| (raft_node_id(name), name.to_string())).collect()
}

/// What the reconciler remembers between rounds.
#[derive(Default)]
struct Rounds {
    /// The membership version whose differences with the configuration were logged.
    reported: Option<u64>,
    last_record_proposal: Option<Instant>,
    left_cluster_logged: bool,
    /// Groups with a step under way (one at a time per group).
    busy: Arc<Mutex<HashSet<GroupId>>>,
    /// Learners no longer placed on a group, since when the leader has seen them so.
    stale_since: Arc<Mutex<HashMap<(GroupId, NodeId), Instant>>>,
}

/// The reconciler of a node (see the module's documentation). Ends when the cluster is dropped.
pub(super) async fn reconciler(cluster: Weak<Cluster>) {
    let mut rounds = Rounds::default();
    loop {
        let Some(cluster) = cluster.upgrade() else { return };
        cluster.reconcile_once(&mut rounds).await;
        let _ = tokio::time::timeout(RECONCILE_INTERVAL, cluster.reconcile.notified()).await;
    }
}

/// Removes a group from the busy set when its step ends, however it ends.
struct Busy(Arc<Mutex<HashSet<GroupId>>>, GroupId);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.lock().expect("busy").remove(&self.1);
    }
}

impl Cluster {
    async fn reconcile_once(self: &Arc<Self>, rounds: &mut Rounds) {
        let layout = self.layout();
        let version = layout.members.version;
        if version > 0 && rounds.reported != Some(version) {
            rounds.reported = Some(version);
            self.report_difference(&layout);
        }
        self.record_membership(&layout, rounds).await;
        if version == 0 {
            // No membership recorded yet: the groups run as the configuration formed them.
            return;
        }
        let member = layout.members.contains(&self.name);
        if member {
            for shard in layout.placement.shards_of_node(&self.name) {
                let group = GroupId::from(shard);
                if self.node.group(group).is_none() {
                    match self.start_group(group).await {
                        Ok(()) => tracing::info!(group, "placed on this node: the group runs here, its leader adds it"),
                        Err(error) => tracing::warn!(group, error = %error, "cannot start a group placed here"),
                    }
                }
            }
        }
        for group in self.node.running_groups() {
            let Some(raft) = self.node.group(group) else { continue };
            let (leading, voter) = {
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                let leading = metrics.current_leader == Some(self.id) && metrics.state == ServerState::Leader;
                (leading, metrics.membership_config.membership().voter_ids().any(|id| id == self.id))
            };
            if leading {
                if rounds.busy.lock().expect("busy").insert(group) {
                    let busy = Busy(rounds.busy.clone(), group);
                    let step = self.clone().step(group, raft, layout.clone(), rounds.stale_since.clone());
                    tokio::spawn(async move {
                        step.await;
                        drop(busy);
                    });
                }
                continue;
            }
            let placed_here = if group == self.catalog_group {
                member
            } else {
                member && layout.placement.replicas(group as u32).contains(&self.name.as_str())
            };
            // A node that has not been a member yet is catching up on memberships from before
            // it was added: it leaves nothing.
            let established = self.established.load(std::sync::atomic::Ordering::Relaxed);
            if established && !placed_here && !voter {
                if let Err(error) = self.node.stop_group(group, Duration::from_secs(5)).await {
                    tracing::warn!(group, %error, "cannot stop a group this node left");
                    continue;
                }
                if group == self.catalog_group {
                    if !rounds.left_cluster_logged {
                        rounds.left_cluster_logged = true;
                        tracing::warn!(
                            version,
                            "this node is no longer a member of the cluster; it takes part in no group (stop it)"
                        );
                    }
                } else {
                    tracing::info!(group, "left the group: it is placed on other nodes now");
                }
            }
        }
    }

    /// One step of `group` towards its target voters, on its leader.
    async fn step(
        self: Arc<Self>,
        group: GroupId,
        raft: Raft,
        layout: Arc<Layout>,
        stale_since: Arc<Mutex<HashMap<(GroupId, NodeId), Instant>>>,
    ) {
        let wanted = target(&layout, self.catalog_group, group);
        if wanted.is_empty() {
            return;
        }
        let metrics = raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
        let wanted_ids: BTreeSet<NodeId> = wanted.keys().copied().collect();
        let matched = |id: &NodeId| {
            metrics
                .replication
                .as_ref()
                .and_then(|replication| replication.get(id).copied().flatten())
                .map_or(0, |log_id| log_id.index)
        };
        for (id, name) in &wanted {
            if voters.contains(id) || learners.contains(id) {
                continue;
            }
            let Some(address) = layout.addresses.get(name) else { continue };
            match raft.add_learner(*id, BasicNode::new(address.clone()), false).await {
                Ok(_) => tracing::info!(group, node = %name, "a new replica joins the group as a learner"),
                Err(error) => tracing::debug!(group, node = %name, %error, "cannot add a learner yet"),
            }
            return;
        }
        if voters != wanted_ids {
            let last = metrics.last_log_index.unwrap_or(0);
            let caught_up = wanted_ids.difference(&voters).all(|id| matched(id) + CATCH_UP_ENTRIES >= last);
            if !caught_up {
                return;
            }
            match raft.change_membership(wanted_ids.clone(), true).await {
                Ok(_) => tracing::info!(
                    group,
                    voters = ?wanted.values().collect::<Vec<_>>(),
                    "the group's voters changed to the ones placed on it"
                ),
                Err(error) => tracing::debug!(group, %error, "cannot change the voters yet"),
            }
            return;
        }
        let config_index = metrics.membership_config.log_id().map_or(0, |log_id| log_id.index);
        for id in learners.difference(&wanted_ids) {
            let waited = {
                let mut stale_since = stale_since.lock().expect("stale");
                stale_since.entry((group, *id)).or_insert_with(Instant::now).elapsed()
            };
            // A replica that is down never gets the entry: it does not need to.
            let down = membership
                .get_node(id)
                .and_then(|node| self.node.peer_state(&node.addr))
                .is_some_and(|(reachable, _)| !reachable);
            if matched(id) < config_index && !down && waited < STALE_LEARNER_WAIT {
                continue;
            }
            let removed = BTreeSet::from([*id]);
            match raft.change_membership(ChangeMembers::RemoveNodes(removed), false).await {
                Ok(_) => {
                    stale_since.lock().expect("stale").remove(&(group, *id));
                    tracing::info!(group, node = %layout.name_of(*id), "a replica placed elsewhere left the group");
                }
                Err(error) => tracing::debug!(group, %error, "cannot remove a learner yet"),
            }
            return;
        }
    }

    /// Records the first membership (on the catalog group's leader, from the configuration,
    /// which formed the catalog group), or this node's configured address where it differs from
    /// the recorded one.
    async fn record_membership(&self, layout: &Layout, rounds: &mut Rounds) {
        if rounds.last_record_proposal.is_some_and(|at| at.elapsed() < RECORD_RETRY) {
            return;
        }
        let next = if layout.members.version == 0 {
            let Some(raft) = self.node.group(self.catalog_group) else { return };
            let voters: BTreeSet<NodeId> = {
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                let leading = metrics.current_leader == Some(self.id) && metrics.state == ServerState::Leader;
                let applied = metrics.last_applied.map(|log_id| log_id.index);
                if !leading || applied.is_none() || applied < metrics.last_log_index {
                    return;
                }
                metrics.membership_config.membership().voter_ids().collect()
            };
            let nodes: Vec<(String, String)> =
                self.configured.iter().filter(|(id, _)| voters.contains(&raft_node_id(id))).cloned().collect();
            if nodes.len() != voters.len() {
                tracing::warn!(
                    "cannot record the cluster's membership: the catalog group has members the configuration's \
                     [[nodes]] does not name"
                );
                rounds.last_record_proposal = Some(Instant::now());
                return;
            }
            Members::new(1, nodes)
        } else {
            let Some(configured) = self.configured.iter().find(|(id, _)| *id == self.name).map(|(_, a)| a) else {
                return;
            };
            match layout.members.address_of(&self.name) {
                Some(recorded) if recorded != configured => {
                    tracing::info!(
                        recorded,
                        configured = %configured,
                        "this node's configured address differs from the recorded one; recording the new one"
                    );
                    let nodes = layout.members.nodes.iter().map(|(id, address)| {
                        (id.clone(), if *id == self.name { configured.clone() } else { address.clone() })
                    });
                    Members::new(layout.members.version + 1, nodes)
                }
                _ => return,
            }
        };
        rounds.last_record_proposal = Some(Instant::now());
        if let Err(error) = self.propose_members(&next).await {
            tracing::debug!(%error, version = next.version, "cannot record the membership yet");
        }
    }

    /// Proposes `next` as the catalog group's membership record, from whichever node leads it.
    async fn propose_members(&self, next: &Members) -> Result<(), turnstile_cluster::ProposeError> {
        let entry = encode_entry(vec![ReplicatedJob { stream: String::new(), writes: vec![next.write()] }]);
        self.node.propose_anywhere(self.catalog_group, entry, COMMIT_TIMEOUT).await.map(drop)
    }

    /// Logs once per membership version the differences between it and the configuration.
    fn report_difference(&self, layout: &Layout) {
        let view = self.membership_view(layout);
        let moved: Vec<String> = self
            .configured
            .iter()
            .filter_map(|(id, configured)| {
                let recorded = layout.members.address_of(id)?;
                (recorded != configured).then(|| format!("{id}: recorded {recorded}, configured {configured}"))
            })
            .collect();
        if !view.configured_not_members.is_empty() || !view.members_not_configured.is_empty() {
            tracing::warn!(
                version = view.version,
                configured_not_members = ?view.configured_not_members,
                members_not_configured = ?view.members_not_configured,
                "the configuration's [[nodes]] and the cluster's stored membership differ; the stored membership \
                 wins (change it with `turnstile cluster add-node` / `remove-node` / `replace-node`)"
            );
        }
        if !moved.is_empty() {
            tracing::info!(addresses = ?moved, "configured addresses differ from the recorded ones; the configured ones are used");
        }
    }

    pub(super) fn membership_view(&self, layout: &Layout) -> MembershipView {
        let configured = |id: &str| self.configured.iter().any(|(name, _)| name == id);
        MembershipView {
            version: layout.members.version,
            nodes: layout.members.ids().map(|id| (id.to_string(), layout.addresses[id].clone())).collect(),
            shards: self.shards,
            replicas: self.replicas as u32,
            configured_not_members: self
                .configured
                .iter()
                .filter(|(id, _)| !layout.members.contains(id))
                .map(|(id, _)| id.clone())
                .collect(),
            members_not_configured: layout.members.ids().filter(|id| !configured(id)).map(str::to_string).collect(),
        }
    }

    /// Commits a new membership: this node's, changed, one version on. Answered once it is in
    /// force here; the shards move afterwards.
    pub(super) async fn change_members_now(
        &self,
        add: Vec<(String, String)>,
        remove: Vec<String>,
    ) -> Result<MembershipChange, tonic::Status> {
        use tonic::Status;
        let layout = self.layout();
        if layout.members.version == 0 {
            return Err(Status::unavailable(
                "the cluster has not recorded its membership yet (its catalog group is forming); retry",
            ));
        }
        if !layout.members.contains(&self.name) {
            return Err(Status::unavailable(format!(
                "this node is not a member of the cluster (membership version {}); ask a member",
                layout.members.version
            )));
        }
        let (next, after) =
            layout.members.change(&add, &remove, self.shards, self.replicas).map_err(|error| match error {
                ChangeError::Invalid(reason) => Status::invalid_argument(reason),
                ChangeError::AlreadyMember(reason) => Status::already_exists(reason),
                ChangeError::NotMember(reason) => Status::not_found(reason),
                ChangeError::Refused(reason) => Status::failed_precondition(reason),
            })?;
        let (slots_moved, shards_changed) = moved_slots(&layout.placement, &after);
        self.propose_members(&next).await.map_err(|error| {
            Status::unavailable(format!(
                "the catalog group did not commit the change: {error}; look at the membership before retrying"
            ))
        })?;
        let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
        loop {
            let current = self.layout();
            if current.members.version >= next.version {
                if current.members != next {
                    return Err(Status::aborted(format!(
                        "another membership change (version {}) was committed first; look at it and retry",
                        current.members.version
                    )));
                }
                self.reconcile.notify_one();
                tracing::info!(
                    version = next.version,
                    added = ?add.iter().map(|(id, _)| id).collect::<Vec<_>>(),
                    removed = ?remove,
                    slots_moved,
                    "cluster membership changed"
                );
                return Ok(MembershipChange {
                    membership: self.membership_view(&current),
                    slots_moved,
                    shards_changed,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Status::unavailable(
                    "the change was committed but this node has not applied it yet; look at the membership",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
