//! The cluster's node list as the catalog group replicates it (docs/CLUSTER.md, "Membership").
//!
//! - [`Members`] is one record of the catalog (`RecordKind::ClusterMembers`): a version and every
//!   node's id and address. Shards are placed over its nodes; once a cluster has one, it wins
//!   over the configuration's `[[nodes]]` (which only seeds the first start and names addresses).
//! - A change is a new record whose version is one more than the one it replaces. Every replica
//!   applies the catalog log in the same order and keeps only such records ([`Members::follows`]),
//!   so two changes proposed at once cannot both take effect: the second one is dropped
//!   everywhere, and its proposer says so.
//! - [`Members::change`] validates an operator's change (names the field of what is wrong) and
//!   [`moved_slots`] counts what it moves.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use turnstile_cluster::{Placement, ShardId};
use turnstile_storage::{RecordKind, Write};

/// The key of the one `ClusterMembers` record.
pub const MEMBERS_KEY: &str = "members";
/// Nodes one change may add or remove.
pub const CHANGED_NODES_MAX: usize = 16;

/// The cluster's nodes at one version: (id, address), sorted by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// 0: none recorded yet (the configuration's list stands in); 1 when the cluster forms.
    pub version: u64,
    pub nodes: Vec<(String, String)>,
}

/// Why a change is refused, naming the request's field.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    AlreadyMember(String),
    #[error("{0}")]
    NotMember(String),
    #[error("{0}")]
    Refused(String),
}

impl Members {
    pub fn new(version: u64, nodes: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut nodes: Vec<(String, String)> = nodes.into_iter().collect();
        nodes.sort();
        Self { version, nodes }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        postcard::from_bytes(bytes).map_err(|error| format!("cluster membership record does not decode: {error}"))
    }

    /// The record as a catalog write.
    pub fn write(&self) -> Write {
        Write::Put {
            kind: RecordKind::ClusterMembers,
            key: MEMBERS_KEY.to_string(),
            value: postcard::to_stdvec(self).expect("a membership always encodes"),
        }
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|(id, _)| id.as_str())
    }

    pub fn contains(&self, node: &str) -> bool {
        self.nodes.iter().any(|(id, _)| id == node)
    }

    pub fn address_of(&self, node: &str) -> Option<&str> {
        self.nodes.iter().find(|(id, _)| id == node).map(|(_, address)| address.as_str())
    }

    /// Whether `next` may replace `self` in the log: exactly the next version.
    pub fn follows(&self, next: &Members) -> bool {
        next.version == self.version + 1
    }

    /// The membership after adding `add` (id, address) and removing `remove`, checked: ids and
    /// addresses well-formed and unique, removed nodes members, added ones not, a node left. With
    /// it, the placement over its nodes (built to check them).
    pub fn change(
        &self,
        add: &[(String, String)],
        remove: &[String],
        shards: u32,
        replicas: usize,
    ) -> Result<(Members, Placement), ChangeError> {
        if add.is_empty() && remove.is_empty() {
            return Err(ChangeError::Invalid("add, remove: name at least one node to add or remove".into()));
        }
        if add.len() > CHANGED_NODES_MAX || remove.len() > CHANGED_NODES_MAX {
            return Err(ChangeError::Invalid(format!(
                "add, remove: at most {CHANGED_NODES_MAX} nodes each in one change"
            )));
        }
        let mut nodes = self.nodes.clone();
        for (position, id) in remove.iter().enumerate() {
            if remove[..position].contains(id) {
                return Err(ChangeError::Invalid(format!("remove[{position}]: '{id}' is named twice")));
            }
            let Some(index) = nodes.iter().position(|(member, _)| member == id) else {
                let members: Vec<&str> = self.ids().collect();
                return Err(ChangeError::NotMember(format!(
                    "remove[{position}]: '{id}' is not a member of the cluster (members: {})",
                    members.join(", ")
                )));
            };
            nodes.remove(index);
        }
        for (position, (id, address)) in add.iter().enumerate() {
            if remove.contains(id) {
                return Err(ChangeError::Invalid(format!(
                    "add[{position}].node_id: '{id}' is also removed; a node that moved needs a new id"
                )));
            }
            if self.contains(id) || add[..position].iter().any(|(other, _)| other == id) {
                return Err(ChangeError::AlreadyMember(format!(
                    "add[{position}].node_id: '{id}' is already a member of the cluster"
                )));
            }
            let parsed: SocketAddr = address.parse().map_err(|_| {
                ChangeError::Invalid(format!(
                    "add[{position}].address: '{address}' is not host:port with an IP address"
                ))
            })?;
            if parsed.port() == 0 {
                return Err(ChangeError::Invalid(format!("add[{position}].address: port 0 cannot be called")));
            }
            if let Some((other, _)) = nodes.iter().find(|(_, taken)| *taken == parsed.to_string()) {
                return Err(ChangeError::Invalid(format!(
                    "add[{position}].address: {parsed} is the address of '{other}'"
                )));
            }
            nodes.push((id.clone(), parsed.to_string()));
        }
        if nodes.is_empty() {
            return Err(ChangeError::Refused("remove: a cluster keeps at least one node".into()));
        }
        let next = Members::new(self.version + 1, nodes);
        // The same checks as the configuration's list: id syntax, raft id collisions, bounds.
        let placement = Placement::new(next.ids().map(str::to_string), shards, replicas).map_err(|error| {
            let field = if add.is_empty() { "remove" } else { "add" };
            ChangeError::Invalid(format!("{field}: {error}"))
        })?;
        Ok((next, placement))
    }
}

/// Replica slots (shard, node) `after` has that `before` did not, and the shards with any.
pub fn moved_slots(before: &Placement, after: &Placement) -> (u32, u32) {
    let mut slots = 0;
    let mut shards = 0;
    for shard in 0..after.shard_count() as ShardId {
        let old: BTreeSet<&str> = before.replicas(shard).into_iter().collect();
        let new = after.replicas(shard).into_iter().filter(|node| !old.contains(node)).count() as u32;
        slots += new;
        shards += u32::from(new > 0);
    }
    (slots, shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Members {
        Members::new(
            4,
            ["a", "b", "c"].iter().enumerate().map(|(i, id)| (id.to_string(), format!("127.0.0.1:{}", 7000 + i))),
        )
    }

    fn added(id: &str, address: &str) -> Vec<(String, String)> {
        vec![(id.to_string(), address.to_string())]
    }

    #[test]
    fn a_change_is_the_next_version_with_the_nodes_added_and_removed() {
        let (next, placement) = three().change(&added("d", "127.0.0.1:7100"), &["a".to_string()], 8, 3).unwrap();
        assert_eq!(placement.nodes(), ["b", "c", "d"]);
        assert_eq!(next.version, 5);
        assert_eq!(next.ids().collect::<Vec<_>>(), ["b", "c", "d"]);
        assert!(three().follows(&next));
        assert!(!next.follows(&three()), "an older version never replaces a newer one");
        assert!(!three().follows(&three()), "nor the same version twice");
        let record = next.write();
        let Write::Put { kind, key, value } = record else { panic!("a put") };
        assert_eq!((kind, key.as_str()), (RecordKind::ClusterMembers, MEMBERS_KEY));
        assert_eq!(Members::decode(&value).unwrap(), next);
    }

    #[test]
    fn bad_changes_are_refused_naming_the_field() {
        let members = three();
        let refused = |add: Vec<(String, String)>, remove: &[&str]| {
            let remove: Vec<String> = remove.iter().map(|id| id.to_string()).collect();
            members.change(&add, &remove, 8, 3).unwrap_err().to_string()
        };
        assert!(refused(vec![], &[]).starts_with("add, remove:"));
        assert!(refused(added("b", "127.0.0.1:7100"), &[]).starts_with("add[0].node_id: 'b' is already"));
        assert!(refused(added("d", "localhost"), &[]).starts_with("add[0].address:"));
        assert!(refused(added("d", "127.0.0.1:0"), &[]).starts_with("add[0].address: port 0"));
        assert!(refused(added("d", "127.0.0.1:7001"), &[]).contains("is the address of 'b'"));
        assert!(refused(added("d e", "127.0.0.1:7100"), &[]).starts_with("add: node id 'd e'"));
        assert!(refused(vec![], &["x"]).starts_with("remove[0]: 'x' is not a member"));
        assert!(refused(vec![], &["a", "a"]).starts_with("remove[1]: 'a' is named twice"));
        assert!(refused(added("a", "127.0.0.1:7100"), &["a"]).contains("also removed"));
        assert!(refused(vec![], &["a", "b", "c"]).contains("at least one node"));
        let many: Vec<(String, String)> =
            (0..17).map(|i| (format!("n{i}"), format!("127.0.0.1:{}", 8000 + i))).collect();
        assert!(refused(many, &[]).contains("at most 16"));
    }

    #[test]
    fn adding_a_fourth_node_moves_about_a_quarter_of_the_slots_all_to_it() {
        let before = Placement::new(["a", "b", "c"], 64, 3).unwrap();
        let after = Placement::new(["a", "b", "c", "d"], 64, 3).unwrap();
        let (slots, shards) = moved_slots(&before, &after);
        // 192 slots; the new node takes about 3/4 of a slot per shard (48), one per shard at most.
        assert!((36..=60).contains(&slots), "{slots}");
        assert_eq!(slots, shards, "one slot per changed shard");
        assert_eq!(after.shards_of_node("d").len() as u32, slots, "every moved slot went to the new node");
    }
}
