//! Shard groups placed by rendezvous hashing on four nodes: each node runs only the groups of the
//! shards it holds, all in one replication log file and behind one replication service; commands
//! proposed to each shard reach exactly that shard's replicas.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use turnstile_cluster::node::COMMAND_BYTES_MAX;
use turnstile_cluster::placement::raft_node_id;
use turnstile_cluster::{
    propose, shard_members, ClusterNode, Command, CommandJournal, Placement, ProposeError, Raft, ShardId,
};

const WAIT: Duration = Duration::from_secs(10);
const SHARDS: u32 = 8;
const COMMANDS_PER_SHARD: usize = 5;

struct RunningNode {
    node: ClusterNode,
    journals: HashMap<ShardId, CommandJournal>,
    stop_server: oneshot::Sender<()>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

async fn run_node(name: &str, dir: &Path, listener: TcpListener, placement: &Placement) -> RunningNode {
    let config = turnstile_cluster::raft_config().unwrap();
    let node = ClusterNode::open(name, dir, config).unwrap();
    let mut journals = HashMap::new();
    for shard in placement.shards_of_node(name) {
        let journal = CommandJournal::new(100);
        node.start_group(u64::from(shard), journal.clone()).await.unwrap();
        journals.insert(shard, journal);
    }
    let (stop_server, stopped) = oneshot::channel::<()>();
    let server =
        tokio::spawn(tonic::transport::Server::builder().add_service(node.service()).serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                let _ = stopped.await;
            },
        ));
    RunningNode { node, journals, stop_server, server }
}

impl RunningNode {
    async fn stop(self) {
        self.node.close(WAIT).await.unwrap();
        let _ = self.stop_server.send(());
        tokio::time::timeout(WAIT, self.server).await.expect("server stopped in time").unwrap().unwrap();
    }
}

fn commands(shard: ShardId) -> Vec<Vec<u8>> {
    (0..COMMANDS_PER_SHARD).map(|number| format!("shard-{shard}-command-{number}").into_bytes()).collect()
}

async fn leader_of(rafts: &[Raft]) -> Raft {
    let started = Instant::now();
    loop {
        if let Some(leader) = rafts.iter().find(|raft| raft.metrics().borrow().state == openraft::ServerState::Leader) {
            return leader.clone();
        }
        assert!(started.elapsed() < WAIT, "no leader after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_groups_share_each_nodes_file_and_service() {
    let names = ["node-1", "node-2", "node-3", "node-4"];
    let placement = Placement::new(names, SHARDS, 3).unwrap();
    let dirs: Vec<tempfile::TempDir> = names.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut listeners = Vec::new();
    let mut addresses = HashMap::new();
    for name in names {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.insert(name.to_string(), listener.local_addr().unwrap().to_string());
        listeners.push(listener);
    }
    let mut nodes = HashMap::new();
    for ((name, dir), listener) in names.iter().zip(&dirs).zip(listeners) {
        nodes.insert(name.to_string(), run_node(name, dir.path(), listener, &placement).await);
    }

    for shard in 0..SHARDS {
        let group = u64::from(shard);
        let replicas = placement.replicas(shard);
        // Only the replicas run the shard's group.
        for name in names {
            assert_eq!(nodes[name].node.group(group).is_some(), replicas.contains(&name), "shard {shard} on {name}");
        }
        let members = shard_members(&placement, shard, &addresses).unwrap();
        nodes[replicas[0]].node.group(group).unwrap().initialize(members).await.unwrap();
        let rafts: Vec<Raft> = replicas.iter().map(|name| nodes[*name].node.group(group).unwrap()).collect();
        let leader = leader_of(&rafts).await;
        for command in commands(shard) {
            propose(&leader, Command(command), WAIT).await.unwrap();
        }
        // A follower refuses and names the leader with its replication address.
        let leader_id = leader.metrics().borrow().id;
        let follower = rafts.iter().find(|raft| raft.metrics().borrow().id != leader_id).unwrap();
        follower.wait(Some(WAIT)).current_leader(leader_id, "the follower knows the leader").await.unwrap();
        let refused = propose(follower, Command(b"elsewhere".to_vec()), WAIT).await.unwrap_err();
        let leader_name = names.iter().find(|name| raft_node_id(name) == leader_id).unwrap();
        let leader_address = addresses[*leader_name].clone();
        assert_eq!(refused, ProposeError::NotLeader { leader: Some((leader_id, leader_address)) });
        let too_large = propose(&leader, Command(vec![0; COMMAND_BYTES_MAX + 1]), WAIT).await.unwrap_err();
        assert_eq!(too_large, ProposeError::TooLarge(COMMAND_BYTES_MAX + 1));
    }

    // Every replica of every shard applied that shard's commands and nothing else.
    let started = Instant::now();
    for shard in 0..SHARDS {
        for name in placement.replicas(shard) {
            let journal = &nodes[name].journals[&shard];
            loop {
                let applied: Vec<Vec<u8>> = journal.recent().into_iter().map(|(_, command)| command).collect();
                if applied.len() >= COMMANDS_PER_SHARD {
                    assert_eq!(applied, commands(shard), "{name} shard {shard}");
                    break;
                }
                assert!(started.elapsed() < WAIT, "{name} applied {} commands of shard {shard}", applied.len());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    // A node's file remembers which groups it must resume.
    let node_1 = nodes.remove("node-1").unwrap();
    let held: Vec<u64> = placement.shards_of_node("node-1").into_iter().map(u64::from).collect();
    node_1.stop().await;
    let reopened = ClusterNode::open("node-1", dirs[0].path(), turnstile_cluster::raft_config().unwrap()).unwrap();
    assert_eq!(reopened.stored_groups().unwrap(), held);
    drop(reopened);

    for (_, node) in nodes {
        node.stop().await;
    }
}
