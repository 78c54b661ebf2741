//! The replication service refuses what it cannot route or read, with the reason.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use turnstile_cluster::network::proto::raft_client::RaftClient;
use turnstile_cluster::network::proto::RaftRequest;
use turnstile_cluster::{start_group, CommandJournal, Connections, Groups, RaftService};
use turnstile_storage::RaftLog;

/// A node `node` running group 5 alone, its replication service on 127.0.0.1 (requiring
/// `credential` if set): the group, a connected client, and what stops the server.
async fn serve(
    node: u64,
    dir: &std::path::Path,
    credential: Option<turnstile_cluster::network::NodeCredential>,
) -> (
    turnstile_cluster::Raft,
    RaftClient<tonic::transport::Channel>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
) {
    let log = Arc::new(RaftLog::open(&dir.join(turnstile_storage::RAFT_DATABASE_FILE)).unwrap());
    let groups = Groups::default();
    let config = turnstile_cluster::raft_config().unwrap();
    let raft =
        start_group(node, 5, config, log, CommandJournal::new(10), Connections::default(), &groups).await.unwrap();
    assert_eq!(groups.ids(), vec![5]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RaftService::new(node, groups).requiring(credential).into_server())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );
    let client = tokio::time::timeout(Duration::from_secs(10), RaftClient::connect(format!("http://{address}")))
        .await
        .expect("connected in time")
        .unwrap();
    (raft, client, stop, server)
}

#[tokio::test]
async fn misrouted_unknown_and_undecodable_messages_are_refused() {
    let node = 11;
    let dir = tempfile::tempdir().unwrap();
    let (raft, mut client, stop, server) = serve(node, dir.path(), None).await;

    let status = client.vote(RaftRequest { group: 5, target: 12, body: Vec::new() }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("for node 12 reached node 11"), "{}", status.message());

    let status = client.append_entries(RaftRequest { group: 6, target: node, body: Vec::new() }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(status.message().contains("group 6 is not running on node 11"), "{}", status.message());

    let header = RaftRequest { group: 5, target: node, body: vec![0xff; 3] };
    let status = client.install_snapshot(tokio_stream::iter(vec![header])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("snapshot header does not decode"), "{}", status.message());

    let status = client.install_snapshot(tokio_stream::iter(Vec::<RaftRequest>::new())).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("without a header"), "{}", status.message());

    raft.shutdown().await.unwrap();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("server stopped in time").unwrap().unwrap();
}

/// A service that requires the cluster's credential refuses every call without it (or with
/// another), before reading the message, and serves a call that carries it.
#[tokio::test]
async fn calls_without_the_cluster_credential_are_refused() {
    use turnstile_cluster::network::{NodeCredential, CREDENTIAL_HEADER};
    let node = 21;
    let dir = tempfile::tempdir().unwrap();
    let credential = NodeCredential::new("proof-of-the-cluster-secret").unwrap();
    let (raft, mut client, stop, server) = serve(node, dir.path(), Some(credential)).await;
    let with = |value: Option<&str>| {
        let mut request = tonic::Request::new(RaftRequest { group: 6, target: node, body: Vec::new() });
        if let Some(value) = value {
            request.metadata_mut().insert(CREDENTIAL_HEADER, value.parse().unwrap());
        }
        request
    };
    for presented in [None, Some("proof-of-another-secret"), Some("proof-of-the-cluster-secre")] {
        let status = client.append_entries(with(presented)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{presented:?}: {status:?}");
        assert!(status.message().contains("cluster.secret"), "{}", status.message());
        let status = client.vote(with(presented)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{presented:?}: {status:?}");
        let status = client.propose(with(presented)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{presented:?}: {status:?}");
    }
    let mut snapshot = tonic::Request::new(tokio_stream::iter(Vec::<RaftRequest>::new()));
    snapshot.metadata_mut().insert(CREDENTIAL_HEADER, "nope".parse().unwrap());
    assert_eq!(client.install_snapshot(snapshot).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    // With the credential the call is read: group 6 does not run here.
    let status = client.append_entries(with(Some("proof-of-the-cluster-secret"))).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    raft.shutdown().await.unwrap();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("server stopped in time").unwrap().unwrap();
}
