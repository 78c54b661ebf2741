//! Where an event lives: events map to a fixed number of logical shards, and each shard's replica
//! set is chosen among the cluster's nodes by rendezvous (highest random weight) hashing.
//!
//! Every hash here is **xxh3_64 with seed 0** (XXH3, 64-bit variant, from the `xxhash-rust`
//! crate). It is named and fixed because placement must agree across nodes, builds and Rust
//! versions; std's `DefaultHasher` promises none of that. Changing it moves every shard.
//!
//! - shard of an event: `xxh3_64(event id bytes) mod shard count`;
//! - weight of a node for a shard: `xxh3_64(shard number as 4 bytes big endian ++ node id bytes)`;
//!   a shard's replicas are the nodes of highest weight (ties, which need a 64-bit collision, go
//!   to the smaller node id), the first of them being the preferred leader.
//!
//! Rendezvous hashing moves little when the node list changes: a new node takes a replica slot of
//! a shard only where its weight ranks among the top, about `replicas / nodes` of the shards, and
//! a removed node's slots go to the next node of each of its shards while every other slot stays.

use std::collections::{BTreeSet, HashMap};

use xxhash_rust::xxh3::xxh3_64;

/// The name of the hash every placement decision uses.
pub const HASH_NAME: &str = "xxh3_64 (seed 0)";
/// Logical shards when the configuration names no other count.
pub const SHARDS_DEFAULT: u32 = 64;
/// Most logical shards a cluster may have (each is a replication group on its nodes).
pub const SHARDS_MAX: u32 = 4_096;
/// Replicas of each shard when the configuration names no other count (capped at the node count).
pub const REPLICAS_DEFAULT: usize = 3;
/// Most replicas a shard may have.
pub const REPLICAS_MAX: usize = 7;
/// Most nodes a cluster may list.
pub const NODES_MAX: usize = 1_024;
/// Longest node id, in bytes.
pub const NODE_ID_BYTES_MAX: usize = 128;

/// A logical shard: `0..shard_count`.
pub type ShardId = u32;

/// The stable hash of `bytes` (see [`HASH_NAME`]).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// The shard of `event_id` among `shard_count`: it depends on the count alone, not on the nodes.
pub fn shard_of(event_id: &str, shard_count: u32) -> ShardId {
    (stable_hash(event_id.as_bytes()) % u64::from(shard_count)) as ShardId
}

/// The numeric id a node has in replication groups: the stable hash of its configured id.
/// [`Placement::new`] refuses a node list in which two of these collide.
pub fn raft_node_id(node: &str) -> u64 {
    stable_hash(node.as_bytes())
}

/// The rendezvous weight of `node` for `shard`.
pub fn weight(shard: ShardId, node: &str) -> u64 {
    let mut key = Vec::with_capacity(4 + node.len());
    key.extend_from_slice(&shard.to_be_bytes());
    key.extend_from_slice(node.as_bytes());
    stable_hash(&key)
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("the cluster lists no nodes")]
    NoNodes,
    #[error("the cluster lists {0} nodes; at most {NODES_MAX} are allowed")]
    TooManyNodes(usize),
    #[error("node id '{0}' is listed twice")]
    DuplicateNode(String),
    #[error("node id '{0}' must be 1 to {NODE_ID_BYTES_MAX} bytes of letters, digits, '-', '_' or '.'")]
    BadNodeId(String),
    #[error("node ids '{0}' and '{1}' hash to the same replication id; rename one")]
    NodeIdCollision(String, String),
    #[error("shard count {0} is out of range (1 to {SHARDS_MAX})")]
    ShardCount(u32),
    #[error("replica count {0} is out of range (1 to {REPLICAS_MAX})")]
    ReplicaCount(usize),
}

/// The placement of shards over a fixed list of nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    shard_count: u32,
    replicas: usize,
    /// Sorted, distinct.
    nodes: Vec<String>,
}

impl Placement {
    /// A placement over `nodes` (any order) with `shard_count` shards of `replicas` replicas
    /// each; a shard has fewer replicas only when there are fewer nodes.
    pub fn new<S: Into<String>>(
        nodes: impl IntoIterator<Item = S>,
        shard_count: u32,
        replicas: usize,
    ) -> Result<Self, PlacementError> {
        if shard_count == 0 || shard_count > SHARDS_MAX {
            return Err(PlacementError::ShardCount(shard_count));
        }
        if replicas == 0 || replicas > REPLICAS_MAX {
            return Err(PlacementError::ReplicaCount(replicas));
        }
        let mut sorted = BTreeSet::new();
        let mut raft_ids: HashMap<u64, String> = HashMap::new();
        for node in nodes {
            let node: String = node.into();
            let valid = !node.is_empty()
                && node.len() <= NODE_ID_BYTES_MAX
                && node.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
            if !valid {
                return Err(PlacementError::BadNodeId(node));
            }
            if let Some(other) = raft_ids.get(&raft_node_id(&node)) {
                if *other == node {
                    return Err(PlacementError::DuplicateNode(node));
                }
                return Err(PlacementError::NodeIdCollision(other.clone(), node));
            }
            raft_ids.insert(raft_node_id(&node), node.clone());
            sorted.insert(node);
            if sorted.len() > NODES_MAX {
                return Err(PlacementError::TooManyNodes(sorted.len()));
            }
        }
        if sorted.is_empty() {
            return Err(PlacementError::NoNodes);
        }
        Ok(Self { shard_count, replicas, nodes: sorted.into_iter().collect() })
    }

    /// A placement with the default shard and replica counts.
    pub fn with_defaults<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> Result<Self, PlacementError> {
        Self::new(nodes, SHARDS_DEFAULT, REPLICAS_DEFAULT)
    }

    pub fn shard_count(&self) -> u32 {
        self.shard_count
    }

    /// Replicas each shard actually has: the configured count, capped at the node count.
    pub fn replica_count(&self) -> usize {
        self.replicas.min(self.nodes.len())
    }

    /// The nodes, sorted by id.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The shard that owns `event_id`.
    pub fn shard_of(&self, event_id: &str) -> ShardId {
        shard_of(event_id, self.shard_count)
    }

    /// The replica set of `shard`, highest weight first (the first is the preferred leader).
    pub fn replicas(&self, shard: ShardId) -> Vec<&str> {
        let mut ranked: Vec<(u64, &str)> = self.nodes.iter().map(|node| (weight(shard, node), node.as_str())).collect();
        // Highest weight first; on equal weights the smaller id first.
        ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        ranked.into_iter().take(self.replica_count()).map(|(_, node)| node).collect()
    }

    /// The replica set of the shard that owns `event_id`.
    pub fn replicas_of_event(&self, event_id: &str) -> Vec<&str> {
        self.replicas(self.shard_of(event_id))
    }

    /// The shards `node` holds a replica of.
    pub fn shards_of_node(&self, node: &str) -> Vec<ShardId> {
        (0..self.shard_count).filter(|shard| self.replicas(*shard).contains(&node)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(count: usize) -> Vec<String> {
        (1..=count).map(|number| format!("node-{number}")).collect()
    }

    /// Replica slots that differ between two placements: (shard, node) pairs in `after` that
    /// were not in `before`.
    fn moved_slots(before: &Placement, after: &Placement) -> usize {
        (0..before.shard_count())
            .map(|shard| {
                let old: BTreeSet<&str> = before.replicas(shard).into_iter().collect();
                after.replicas(shard).into_iter().filter(|node| !old.contains(node)).count()
            })
            .sum()
    }

    #[test]
    fn the_hash_is_xxh3_64_with_seed_0() {
        // Published XXH3 64-bit values for the empty input and for "a", seed 0.
        assert_eq!(stable_hash(b""), 0x2D06_8005_38D3_94C2);
        assert_eq!(stable_hash(b"a"), 0xE6C6_32B6_1E96_4E1F);
    }

    #[test]
    fn placement_is_pinned() {
        // Pinned so that a change of hash, key layout or ranking, which would move every shard
        // of a running cluster, fails here first.
        let placement = Placement::with_defaults(nodes(5)).unwrap();
        let shards: Vec<ShardId> =
            ["evt_00000000000000e1", "evt_00000000000000e2", "evt_00000000000000e3", "evt_00000000000000e4"]
                .iter()
                .map(|event| placement.shard_of(event))
                .collect();
        assert_eq!(shards, PINNED_SHARDS);
        assert_eq!(placement.replicas(0), PINNED_REPLICAS_0);
        assert_eq!(placement.replicas(63), PINNED_REPLICAS_63);
        assert_eq!(raft_node_id("node-1"), PINNED_RAFT_ID_NODE_1);
    }

    const PINNED_SHARDS: [ShardId; 4] = [16, 12, 57, 41];
    const PINNED_REPLICAS_0: [&str; 3] = ["node-1", "node-5", "node-4"];
    const PINNED_REPLICAS_63: [&str; 3] = ["node-5", "node-3", "node-4"];
    const PINNED_RAFT_ID_NODE_1: u64 = 0x0db0_9edf_d945_8385;

    #[test]
    fn the_mapping_is_deterministic_and_spreads_events() {
        let one = Placement::with_defaults(nodes(4)).unwrap();
        // The node list's order does not matter.
        let mut reversed = nodes(4);
        reversed.reverse();
        let other = Placement::with_defaults(reversed).unwrap();
        let mut per_shard = vec![0u32; SHARDS_DEFAULT as usize];
        for number in 0..6_400u32 {
            let event = format!("evt_{number:016x}");
            assert_eq!(one.shard_of(&event), other.shard_of(&event));
            per_shard[one.shard_of(&event) as usize] += 1;
        }
        for shard in 0..SHARDS_DEFAULT {
            assert_eq!(one.replicas(shard), other.replicas(shard));
        }
        // 100 events per shard on average; a fair hash keeps every shard well within 50..150.
        assert!(per_shard.iter().all(|count| (50..150).contains(count)), "{per_shard:?}");
    }

    #[test]
    fn replica_sets_have_distinct_nodes_and_are_capped_at_the_node_count() {
        for count in 1..=6 {
            let placement = Placement::with_defaults(nodes(count)).unwrap();
            assert_eq!(placement.replica_count(), count.min(3));
            for shard in 0..placement.shard_count() {
                let replicas = placement.replicas(shard);
                let distinct: BTreeSet<&str> = replicas.iter().copied().collect();
                assert_eq!(replicas.len(), placement.replica_count());
                assert_eq!(distinct.len(), replicas.len(), "shard {shard}: {replicas:?}");
            }
        }
    }

    #[test]
    fn leaders_and_replicas_are_spread_over_the_nodes() {
        let placement = Placement::new(nodes(4), 1_024, 3).unwrap();
        for node in placement.nodes() {
            let preferred = (0..1_024).filter(|shard| placement.replicas(*shard)[0] == node.as_str()).count();
            let held = placement.shards_of_node(node).len();
            // Fair shares: 256 preferred leaderships and 768 replicas per node.
            assert!((192..320).contains(&preferred), "{node} prefers {preferred}");
            assert!((700..840).contains(&held), "{node} holds {held}");
        }
    }

    #[test]
    fn adding_a_fifth_node_moves_about_a_fifth_of_the_replica_slots_all_to_it() {
        for shard_count in [SHARDS_DEFAULT, 1_024] {
            let before = Placement::new(nodes(4), shard_count, 3).unwrap();
            let after = Placement::new(nodes(5), shard_count, 3).unwrap();
            let slots = shard_count as usize * 3;
            let moved = moved_slots(&before, &after);
            // Expected: a fifth of the slots (the new node's share). Allow sampling noise, far
            // below what a placement by modulo would move (most slots).
            let fraction = moved as f64 / slots as f64;
            let tolerance = if shard_count == SHARDS_DEFAULT { 0.08 } else { 0.03 };
            assert!((fraction - 0.2).abs() <= tolerance, "{moved} of {slots} slots moved with {shard_count} shards");
            for shard in 0..shard_count {
                let old: BTreeSet<&str> = before.replicas(shard).into_iter().collect();
                let new: Vec<&str> = after.replicas(shard).into_iter().filter(|node| !old.contains(node)).collect();
                assert!(new.is_empty() || new == ["node-5"], "shard {shard} gained {new:?}");
            }
        }
    }

    #[test]
    fn removing_a_node_moves_only_the_shards_that_had_it() {
        let before = Placement::with_defaults(nodes(5)).unwrap();
        let remaining: Vec<String> = nodes(5).into_iter().filter(|node| node != "node-3").collect();
        let after = Placement::with_defaults(remaining).unwrap();
        let mut changed = 0;
        for shard in 0..SHARDS_DEFAULT {
            let old = before.replicas(shard);
            let new = after.replicas(shard);
            if old.contains(&"node-3") {
                changed += 1;
                // The others keep their slots, in their order; one node joins at the end.
                let kept: Vec<&str> = old.iter().copied().filter(|node| *node != "node-3").collect();
                assert_eq!(&new[..2], kept.as_slice(), "shard {shard}");
                assert!(!old.contains(&new[2]));
            } else {
                assert_eq!(old, new, "shard {shard} did not have node-3 but changed");
            }
        }
        assert!(changed > 0);
    }

    #[test]
    fn bad_configurations_are_refused_with_the_reason() {
        let error = Placement::with_defaults(Vec::<String>::new()).unwrap_err();
        assert_eq!(error, PlacementError::NoNodes);
        let error = Placement::with_defaults(["a", "b", "a"]).unwrap_err();
        assert_eq!(error, PlacementError::DuplicateNode("a".into()));
        let error = Placement::with_defaults(["a", "b c"]).unwrap_err();
        assert!(error.to_string().contains("'b c'"), "{error}");
        assert_eq!(Placement::new(["a"], 0, 3).unwrap_err(), PlacementError::ShardCount(0));
        assert_eq!(Placement::new(["a"], SHARDS_MAX + 1, 3).unwrap_err(), PlacementError::ShardCount(SHARDS_MAX + 1));
        assert_eq!(Placement::new(["a"], 64, 0).unwrap_err(), PlacementError::ReplicaCount(0));
        assert_eq!(Placement::new(["a"], 64, 8).unwrap_err(), PlacementError::ReplicaCount(8));
    }
}
