//! Three nodes replicate one shard group over the tonic replication service on 127.0.0.1: each
//! node has its own redb replication log in a temporary directory and its own server. A leader is
//! elected and commits writes on all three; when the leader dies, the other two elect a new one
//! and keep committing; the dead node restarts from its file and catches up; a fourth node joins
//! after the leader purged its log and is brought up to date by a snapshot.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, ServerState};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use turnstile_cluster::placement::raft_node_id;
use turnstile_cluster::{start_group, Command, CommandJournal, Connections, Groups, NodeId, Raft, RaftService};
use turnstile_storage::RaftLog;

const GROUP: u64 = 42;
/// Every wait for the cluster to reach a state is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

struct TestNode {
    id: NodeId,
    address: SocketAddr,
    raft: Raft,
    journal: CommandJournal,
    stop_server: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

async fn start_node(name: &str, dir: &Path, listener: TcpListener) -> TestNode {
    let id = raft_node_id(name);
    let address = listener.local_addr().unwrap();
    let log = Arc::new(RaftLog::open(&dir.join(turnstile_storage::RAFT_DATABASE_FILE)).unwrap());
    let groups = Groups::default();
    let journal = CommandJournal::new(10_000);
    let config = turnstile_cluster::raft_config().unwrap();
    let raft = start_group(id, GROUP, config, log, journal.clone(), Connections::default(), &groups).await.unwrap();
    let (stop_server, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RaftService::new(id, groups).into_server())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );
    TestNode { id, address, raft, journal, stop_server: Some(stop_server), server }
}

impl TestNode {
    /// Stops the node as a crash would, as far as its peers can tell: its group stops and its
    /// server stops answering.
    async fn stop(mut self) {
        tokio::time::timeout(WAIT, self.raft.shutdown()).await.expect("raft shutdown in time").unwrap();
        let _ = self.stop_server.take().expect("running").send(());
        match tokio::time::timeout(WAIT, &mut self.server).await {
            Ok(result) => result.unwrap().unwrap(),
            Err(_) => self.server.abort(),
        }
    }
}

async fn wait_for_leader(nodes: &[&TestNode], not: Option<NodeId>) -> NodeId {
    let started = Instant::now();
    loop {
        let leaders: Vec<NodeId> = nodes
            .iter()
            .filter(|node| node.raft.metrics().borrow().state == ServerState::Leader)
            .map(|node| node.id)
            .filter(|id| Some(*id) != not)
            .collect();
        if let [leader] = leaders.as_slice() {
            // Every live node must follow it.
            let agreed = nodes.iter().all(|node| node.raft.metrics().borrow().current_leader == Some(*leader));
            if agreed {
                return *leader;
            }
        }
        assert!(started.elapsed() < WAIT, "no single leader among the live nodes after {WAIT:?}: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn write_commands(leader: &Raft, range: std::ops::Range<u32>) {
    for number in range {
        let command = Command(format!("command-{number}").into_bytes());
        let response = tokio::time::timeout(WAIT, leader.client_write(command))
            .await
            .expect("write committed in time")
            .expect("write accepted by the leader");
        // The journal answers how many commands it has applied; blank and membership entries
        // take log indexes but are not commands.
        assert_eq!(response.data.0.len(), 8);
    }
}

fn expected(count: u32) -> Vec<Vec<u8>> {
    (0..count).map(|number| format!("command-{number}").into_bytes()).collect()
}

/// Waits until every node applied exactly the `count` commands, in order.
async fn wait_for_applied(nodes: &[&TestNode], count: u32) {
    let started = Instant::now();
    for node in nodes {
        loop {
            let applied: Vec<Vec<u8>> = node.journal.recent().into_iter().map(|(_, command)| command).collect();
            if applied.len() >= count as usize {
                assert_eq!(applied, expected(count), "node {} applied other commands", node.id);
                assert_eq!(node.journal.applied(), u64::from(count));
                break;
            }
            assert!(
                started.elapsed() < WAIT,
                "node {} applied {} of {count} commands after {WAIT:?}",
                node.id,
                applied.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Every node applied the same command at the same log index.
    let first = nodes[0].journal.recent();
    for node in &nodes[1..] {
        assert_eq!(node.journal.recent(), first, "node {} disagrees on log indexes", node.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_commit_fail_over_and_catch_up() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let names = ["node-1", "node-2", "node-3"];
    let mut nodes = Vec::new();
    for (name, dir) in names.iter().zip(&dirs) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        nodes.push(start_node(name, dir.path(), listener).await);
    }
    let members: BTreeMap<NodeId, BasicNode> =
        nodes.iter().map(|node| (node.id, BasicNode::new(node.address.to_string()))).collect();
    nodes[0].raft.initialize(members).await.unwrap();

    let leader = wait_for_leader(&nodes.iter().collect::<Vec<_>>(), None).await;
    let leader_raft = nodes.iter().find(|node| node.id == leader).unwrap().raft.clone();
    write_commands(&leader_raft, 0..20).await;
    drop(leader_raft);
    wait_for_applied(&nodes.iter().collect::<Vec<_>>(), 20).await;

    // The leader dies.
    let position = nodes.iter().position(|node| node.id == leader).unwrap();
    let dead = nodes.remove(position);
    let dead_address = dead.address;
    let dead_name = names[position];
    let dead_dir: PathBuf = dirs[position].path().to_path_buf();
    let stopping = Instant::now();
    dead.stop().await;
    let stopped_in = stopping.elapsed();
    let killed_at = Instant::now();

    let survivors: Vec<&TestNode> = nodes.iter().collect();
    let new_leader = wait_for_leader(&survivors, Some(leader)).await;
    eprintln!(
        "failover: the leader stopped in {stopped_in:?}; node {new_leader} leads {:?} later",
        killed_at.elapsed()
    );
    let new_leader_raft = nodes.iter().find(|node| node.id == new_leader).unwrap().raft.clone();
    write_commands(&new_leader_raft, 20..30).await;
    wait_for_applied(&survivors, 30).await;

    // The dead node restarts from its own file, on its old address, and catches up: it applies
    // the 20 commands it had and the 10 committed without it.
    let listener = TcpListener::bind(dead_address).await.unwrap();
    let restarted = start_node(dead_name, &dead_dir, listener).await;
    nodes.push(restarted);
    write_commands(&new_leader_raft, 30..35).await;
    wait_for_applied(&nodes.iter().collect::<Vec<_>>(), 35).await;

    // The leader snapshots and purges its log; a fourth node added now can only be brought up to
    // date by the snapshot, sent over the replication service.
    let metrics = new_leader_raft.metrics().borrow().clone();
    let last_applied = metrics.last_applied.expect("applied entries");
    new_leader_raft.trigger().snapshot().await.unwrap();
    new_leader_raft.wait(Some(WAIT)).snapshot(last_applied, "leader snapshot").await.unwrap();
    new_leader_raft.trigger().purge_log(last_applied.index).await.unwrap();
    new_leader_raft.wait(Some(WAIT)).purged(Some(last_applied), "leader purge").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let learner = start_node("node-4", dir.path(), listener).await;
    let learner_node = BasicNode::new(learner.address.to_string());
    tokio::time::timeout(WAIT, new_leader_raft.add_learner(learner.id, learner_node, true))
        .await
        .expect("learner caught up in time")
        .unwrap();
    // Its first state is the leader's snapshot (its log never had the purged entries).
    learner.raft.wait(Some(WAIT)).snapshot(last_applied, "the learner installed the snapshot").await.unwrap();
    nodes.push(learner);
    write_commands(&new_leader_raft, 35..37).await;
    wait_for_applied(&nodes.iter().collect::<Vec<_>>(), 37).await;

    for node in nodes {
        node.stop().await;
    }
}
