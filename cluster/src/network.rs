//! Replication traffic over tonic: one gRPC service per node carries the messages of every shard
//! group (`proto/turnstile/raft/v1/raft.proto`), each request naming its group and the node it
//! is meant for. Bodies are openraft's requests and results encoded with postcard.
//!
//! Client side: [`NetworkFactory`] (one per group) hands openraft a [`GroupClient`] per peer;
//! every group of a node shares one HTTP/2 channel per peer address through [`Connections`].
//! Server side: [`RaftService`] routes a request to the group's [`Raft`] in [`Groups`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, OptionalSend, RPCTypes, RaftNetwork, RaftNetworkFactory, Snapshot, SnapshotMeta, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::propose::ProposeError;
use crate::types::{Command, GroupId, NodeId, Raft, TypeConfig};

/// The generated gRPC code of the replication service.
pub mod proto {
    tonic::include_proto!("turnstile.raft.v1");
}

use proto::raft_client::RaftClient;
use proto::raft_server::RaftServer;
use proto::{RaftReply, RaftRequest};

/// Largest replication message, either way: an append may carry many entries of up to the
/// replication log's entry bound each (a snapshot travels in pieces of its own).
pub const MESSAGE_BYTES_MAX: usize = 256 << 20;
/// Bytes of snapshot data per message of an `InstallSnapshot` stream.
pub const SNAPSHOT_PIECE_BYTES: usize = 1 << 20;
/// The largest snapshot a node receives: the replication log's bound for a stored snapshot.
pub const SNAPSHOT_BYTES_MAX: usize = turnstile_storage::raft_log::SNAPSHOT_BYTES_MAX;
/// How long opening a connection to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Metadata every replication call carries when the node has a credential: proof that the caller
/// holds the cluster's secret (`NodeCredential`).
pub const CREDENTIAL_HEADER: &str = "x-turnstile-cluster";

/// What the nodes of one cluster present to each other on replication calls, derived from the
/// cluster's secret by the caller (the same string on every node); compared in constant time.
#[derive(Clone)]
pub struct NodeCredential(tonic::metadata::AsciiMetadataValue);

impl NodeCredential {
    /// `value` must be printable ASCII (a token, a hex digest).
    pub fn new(value: &str) -> Result<Self, String> {
        value.parse().map(Self).map_err(|_| "a node credential must be printable ASCII".to_string())
    }

    fn admits(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let presented = metadata.get(CREDENTIAL_HEADER).map(|value| value.as_bytes()).unwrap_or_default();
        let expected = self.0.as_bytes();
        let differs = presented.len() != expected.len()
            || presented.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0;
        if differs {
            return Err(Status::unauthenticated(format!(
                "replication call without this cluster's credential ({CREDENTIAL_HEADER}): \
                 is cluster.secret the same on every node?"
            )));
        }
        Ok(())
    }
}

/// What a forwarded proposal came to, as the `Propose` reply carries it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum ProposeOutcome {
    Applied(Vec<u8>),
    /// The receiver does not lead the group; the leader it knows of, with its address.
    NotLeader(Option<(NodeId, String)>),
    Failed(String),
}

impl Connections {
    /// Sends `command` for `group` to node `target` at `address`, which proposes it if it leads
    /// the group. Bounded by `timeout`.
    pub(crate) async fn forward_proposal(
        &self,
        address: &str,
        group: GroupId,
        target: NodeId,
        command: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ProposeError> {
        let unreachable = |reason: String| ProposeError::Unavailable(format!("leader at {address}: {reason}"));
        let mut client = self.client(address).map_err(|error| unreachable(error.to_string()))?;
        let request = self.request(RaftRequest { group, target, body: command });
        let reply = match tokio::time::timeout(timeout, client.propose(request)).await {
            Err(_) => return Err(ProposeError::Timeout(timeout)),
            Ok(Err(status)) => return Err(unreachable(status.message().to_string())),
            Ok(Ok(reply)) => reply.into_inner().body,
        };
        match postcard::from_bytes::<ProposeOutcome>(&reply) {
            Ok(ProposeOutcome::Applied(bytes)) => Ok(bytes),
            Ok(ProposeOutcome::NotLeader(leader)) => Err(ProposeError::NotLeader { leader }),
            Ok(ProposeOutcome::Failed(reason)) => Err(ProposeError::Unavailable(reason)),
            Err(error) => Err(unreachable(format!("undecodable reply: {error}"))),
        }
    }
}

/// Channels to peers by address, shared by every group of a node.
#[derive(Clone, Default)]
pub struct Connections {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// Sent with every call, when set.
    credential: Option<NodeCredential>,
    /// Every node's name and address from the node's configuration, by raft id: they win over
    /// the addresses a group's stored membership recorded in an earlier run.
    configured: Arc<HashMap<NodeId, (String, String)>>,
    /// Nodes whose stored address differed from the configured one, already logged.
    moved: Arc<Mutex<std::collections::HashSet<(NodeId, String)>>>,
    /// Calls go over TLS, checked with this, when set (the nodes' ports speak TLS).
    tls: Option<tonic::transport::ClientTlsConfig>,
    /// Whether each peer answers, for a log that speaks once per change (see [`Connections::note`]).
    peers: Arc<Mutex<HashMap<String, PeerState>>>,
}

/// What the log last said of a peer.
struct PeerState {
    reachable: bool,
    /// When it last changed.
    since: std::time::Instant,
    /// Calls that failed since it became unreachable.
    failures: u64,
    /// When to say again that it is still unreachable (the wait doubles, up to a bound).
    next_reminder: std::time::Instant,
    reminder_wait: Duration,
}

/// The first reminder that a peer is still unreachable, and the longest wait between two.
const PEER_REMINDER_FIRST: Duration = Duration::from_secs(30);
const PEER_REMINDER_MAX: Duration = Duration::from_secs(600);

impl Connections {
    /// Connections whose calls carry `credential`.
    pub fn with_credential(credential: NodeCredential) -> Self {
        Self { credential: Some(credential), ..Self::default() }
    }

    /// These connections over TLS (`https`), checking peers' certificates with `tls`.
    pub fn tls(mut self, tls: Option<tonic::transport::ClientTlsConfig>) -> Self {
        self.tls = tls;
        self
    }

    /// These connections with every node's configured name and address (by raft id).
    pub fn configured(mut self, nodes: HashMap<NodeId, (String, String)>) -> Self {
        self.configured = Arc::new(nodes);
        self
    }

    /// The address to call node `target` at: the configured one if the configuration names the
    /// node (a stored address that differs is logged once), else the stored one.
    pub(crate) fn address_of(&self, target: NodeId, stored: &str) -> String {
        let Some((name, configured)) = self.configured.get(&target) else { return stored.to_string() };
        if configured != stored && self.moved.lock().expect("moved").insert((target, stored.to_string())) {
            tracing::warn!(
                node = %name,
                stored,
                configured = %configured,
                "a node's address differs from the one stored in the cluster's membership; using the configured one"
            );
        }
        configured.clone()
    }

    /// Whether the peer at `address` answered its last call, and since when that has been so
    /// (`None`: never called).
    pub fn peer_state(&self, address: &str) -> Option<(bool, std::time::Instant)> {
        self.peers.lock().expect("peers").get(address).map(|state| (state.reachable, state.since))
    }

    /// `message` as a request, with this node's credential.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(credential) = &self.credential {
            request.metadata_mut().insert(CREDENTIAL_HEADER, credential.0.clone());
        }
        request
    }

    /// Records how a call to the peer at `address` went. Every group of the node calls every
    /// peer many times a second, and openraft retries a peer that is down at once: the log says
    /// when a peer stops answering, reminds with a doubling wait while it stays down, and says
    /// when it answers again, instead of a line per failed call.
    fn note(&self, address: &str, outcome: Result<(), &str>) {
        let mut peers = self.peers.lock().expect("peers");
        // The common case, a call to a peer that answers, costs a lookup and nothing else.
        let known_reachable = peers.get(address).is_none_or(|state| state.reachable);
        if known_reachable && outcome.is_ok() {
            return;
        }
        let now = std::time::Instant::now();
        let state = peers.entry(address.to_string()).or_insert_with(|| PeerState {
            reachable: true,
            since: now,
            failures: 0,
            next_reminder: now,
            reminder_wait: PEER_REMINDER_FIRST,
        });
        match (state.reachable, outcome) {
            (true, Ok(())) => {}
            (true, Err(reason)) => {
                tracing::warn!(
                    peer = address,
                    reason,
                    "peer unreachable; replication to it is retried in the background"
                );
                *state = PeerState {
                    reachable: false,
                    since: now,
                    failures: 1,
                    next_reminder: now + PEER_REMINDER_FIRST,
                    reminder_wait: PEER_REMINDER_FIRST,
                };
            }
            (false, Err(reason)) => {
                state.failures += 1;
                if now >= state.next_reminder {
                    tracing::warn!(
                        peer = address,
                        reason,
                        down_seconds = state.since.elapsed().as_secs(),
                        failed_calls = state.failures,
                        "peer still unreachable"
                    );
                    state.reminder_wait = (state.reminder_wait * 2).min(PEER_REMINDER_MAX);
                    state.next_reminder = now + state.reminder_wait;
                }
            }
            (false, Ok(())) => {
                tracing::info!(
                    peer = address,
                    down_ms = state.since.elapsed().as_millis() as u64,
                    failed_calls = state.failures,
                    "peer reachable again"
                );
                state.reachable = true;
                state.since = now;
                state.failures = 0;
            }
        }
    }

    fn client(&self, address: &str) -> Result<RaftClient<Channel>, tonic::transport::Error> {
        let mut channels = self.channels.lock().expect("channels");
        let channel = match channels.get(address) {
            Some(channel) => channel.clone(),
            None => {
                // Lazy: the channel connects on first use and reconnects after failures itself.
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true);
                if let Some(tls) = &self.tls {
                    endpoint = endpoint.tls_config(tls.clone())?;
                }
                let channel = endpoint.connect_lazy();
                channels.insert(address.to_string(), channel.clone());
                channel
            }
        };
        Ok(RaftClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX))
    }
}

/// Makes openraft's clients for one group.
pub struct NetworkFactory {
    source: NodeId,
    group: GroupId,
    connections: Connections,
}

impl NetworkFactory {
    pub fn new(source: NodeId, group: GroupId, connections: Connections) -> Self {
        Self { source, group, connections }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = GroupClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        GroupClient {
            source: self.source,
            group: self.group,
            target,
            address: self.connections.address_of(target, &node.addr),
            connections: self.connections.clone(),
        }
    }
}

/// One group's client for one peer.
pub struct GroupClient {
    source: NodeId,
    group: GroupId,
    target: NodeId,
    address: String,
    connections: Connections,
}

/// Why a call did not bring back a reply.
enum CallError {
    Timeout(Timeout<NodeId>),
    Unreachable(Unreachable),
    Network(NetworkError),
}

impl CallError {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, BasicNode, E> {
        match self {
            CallError::Timeout(timeout) => RPCError::Timeout(timeout),
            CallError::Unreachable(unreachable) => RPCError::Unreachable(unreachable),
            CallError::Network(network) => RPCError::Network(network),
        }
    }

    fn into_streaming(self) -> StreamingError<TypeConfig, Fatal<NodeId>> {
        match self {
            CallError::Timeout(timeout) => StreamingError::Timeout(timeout),
            CallError::Unreachable(unreachable) => StreamingError::Unreachable(unreachable),
            CallError::Network(network) => StreamingError::Network(network),
        }
    }
}

fn encode_body<T: Serialize>(value: &T) -> Result<Vec<u8>, CallError> {
    postcard::to_allocvec(value).map_err(|error| CallError::Network(NetworkError::new(&error)))
}

fn decode_reply<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CallError> {
    postcard::from_bytes(bytes).map_err(|error| CallError::Network(NetworkError::new(&error)))
}

impl GroupClient {
    async fn call(&self, action: RPCTypes, body: Vec<u8>, ttl: Duration) -> Result<Vec<u8>, CallError> {
        let mut client =
            self.connections.client(&self.address).map_err(|error| CallError::Unreachable(Unreachable::new(&error)))?;
        let request = self.connections.request(RaftRequest { group: self.group, target: self.target, body });
        let call = async {
            match action {
                RPCTypes::AppendEntries => client.append_entries(request).await,
                RPCTypes::Vote => client.vote(request).await,
                RPCTypes::InstallSnapshot => unreachable!("snapshots are streamed (full_snapshot)"),
            }
        };
        match tokio::time::timeout(ttl, call).await {
            Err(_) => {
                self.connections.note(&self.address, Err("no answer in time"));
                Err(CallError::Timeout(Timeout { action, id: self.source, target: self.target, timeout: ttl }))
            }
            // Refused, not running the group yet, or not reachable: openraft backs off and retries.
            Ok(Err(status)) => {
                // A status other than UNAVAILABLE came from the peer itself: it answers.
                let reachable = status.code() != tonic::Code::Unavailable;
                self.connections.note(&self.address, if reachable { Ok(()) } else { Err(status.message()) });
                Err(CallError::Unreachable(Unreachable::new(&status)))
            }
            Ok(Ok(reply)) => {
                self.connections.note(&self.address, Ok(()));
                Ok(reply.into_inner().body)
            }
        }
    }
}

impl RaftNetwork<TypeConfig> for GroupClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let body = encode_body(&rpc).map_err(CallError::into_rpc)?;
        let reply = self.call(RPCTypes::AppendEntries, body, option.hard_ttl()).await.map_err(CallError::into_rpc)?;
        let result: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> =
            decode_reply(&reply).map_err(CallError::into_rpc)?;
        result.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let body = encode_body(&rpc).map_err(CallError::into_rpc)?;
        let reply = self.call(RPCTypes::Vote, body, option.hard_ttl()).await.map_err(CallError::into_rpc)?;
        let result: Result<VoteResponse<NodeId>, RaftError<NodeId>> =
            decode_reply(&reply).map_err(CallError::into_rpc)?;
        result.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let data: &[u8] = &snapshot.snapshot;
        let header = encode_body(&(&vote, &snapshot.meta, data.len() as u64)).map_err(CallError::into_streaming)?;
        let mut messages = Vec::with_capacity(1 + data.len().div_ceil(SNAPSHOT_PIECE_BYTES));
        messages.push(RaftRequest { group: self.group, target: self.target, body: header });
        for piece in data.chunks(SNAPSHOT_PIECE_BYTES) {
            messages.push(RaftRequest { group: self.group, target: self.target, body: piece.to_vec() });
        }
        let mut client = self
            .connections
            .client(&self.address)
            .map_err(|error| CallError::Unreachable(Unreachable::new(&error)).into_streaming())?;
        // openraft's deadline for a snapshot is per piece sent; the whole stream gets one per piece.
        let ttl = option.hard_ttl() * (messages.len() as u32).max(1);
        let action = RPCTypes::InstallSnapshot;
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            reply = tokio::time::timeout(ttl, client.install_snapshot(self.connections.request(tokio_stream::iter(messages)))) => match reply {
                Err(_) => {
                    let timeout = Timeout { action, id: self.source, target: self.target, timeout: ttl };
                    return Err(StreamingError::Timeout(timeout));
                }
                Ok(Err(status)) => return Err(CallError::Unreachable(Unreachable::new(&status)).into_streaming()),
                Ok(Ok(reply)) => reply.into_inner().body,
            }
        };
        let result: Result<SnapshotResponse<NodeId>, Fatal<NodeId>> =
            decode_reply(&reply).map_err(CallError::into_streaming)?;
        result.map_err(|error| StreamingError::RemoteError(RemoteError::new(self.target, error)))
    }
}

/// The groups running on a node, by id: where [`RaftService`] routes requests.
#[derive(Clone, Default)]
pub struct Groups {
    running: Arc<RwLock<HashMap<GroupId, Raft>>>,
}

impl Groups {
    pub fn insert(&self, group: GroupId, raft: Raft) {
        self.running.write().expect("groups").insert(group, raft);
    }

    pub fn remove(&self, group: GroupId) -> Option<Raft> {
        self.running.write().expect("groups").remove(&group)
    }

    pub fn get(&self, group: GroupId) -> Option<Raft> {
        self.running.read().expect("groups").get(&group).cloned()
    }

    pub fn ids(&self) -> Vec<GroupId> {
        let mut ids: Vec<GroupId> = self.running.read().expect("groups").keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}

/// The server side of the replication service of one node.
#[derive(Clone)]
pub struct RaftService {
    node: NodeId,
    groups: Groups,
    /// Required of every call, when set.
    credential: Option<NodeCredential>,
}

impl RaftService {
    pub fn new(node: NodeId, groups: Groups) -> Self {
        Self { node, groups, credential: None }
    }

    /// Refuses (UNAUTHENTICATED) every call that does not carry `credential`.
    pub fn requiring(mut self, credential: Option<NodeCredential>) -> Self {
        self.credential = credential;
        self
    }

    fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        match &self.credential {
            Some(credential) => credential.admits(request.metadata()),
            None => Ok(()),
        }
    }

    /// The tonic service, with message bounds that let a whole snapshot through.
    pub fn into_server(self) -> RaftServer<Self> {
        RaftServer::new(self).max_decoding_message_size(MESSAGE_BYTES_MAX).max_encoding_message_size(MESSAGE_BYTES_MAX)
    }

    fn route(&self, request: &RaftRequest) -> Result<Raft, Status> {
        if request.target != self.node {
            return Err(Status::invalid_argument(format!(
                "replication message for node {} reached node {}; check the node addresses",
                request.target, self.node
            )));
        }
        self.groups
            .get(request.group)
            .ok_or_else(|| Status::not_found(format!("group {} is not running on node {}", request.group, self.node)))
    }
}

fn decode_request<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Status> {
    postcard::from_bytes(bytes).map_err(|error| Status::invalid_argument(format!("{what} does not decode: {error}")))
}

fn reply<T: Serialize>(result: &T) -> Result<Response<RaftReply>, Status> {
    let body =
        postcard::to_allocvec(result).map_err(|error| Status::internal(format!("reply does not encode: {error}")))?;
    Ok(Response::new(RaftReply { body }))
}

#[tonic::async_trait]
impl proto::raft_server::Raft for RaftService {
    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.admit(&request)?;
        let request = request.into_inner();
        let raft = self.route(&request)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode_request(&request.body, "append-entries request")?;
        reply(&raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.admit(&request)?;
        let request = request.into_inner();
        let raft = self.route(&request)?;
        let rpc: VoteRequest<NodeId> = decode_request(&request.body, "vote request")?;
        reply(&raft.vote(rpc).await)
    }

    async fn propose(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.admit(&request)?;
        let request = request.into_inner();
        let raft = self.route(&request)?;
        let outcome = match crate::propose::propose(&raft, Command(request.body), crate::propose::PROPOSE_TIMEOUT).await
        {
            Ok((_, reply)) => ProposeOutcome::Applied(reply.0),
            Err(ProposeError::NotLeader { leader }) => ProposeOutcome::NotLeader(leader),
            Err(error) => ProposeOutcome::Failed(error.to_string()),
        };
        reply(&outcome)
    }

    async fn install_snapshot(
        &self,
        request: Request<tonic::Streaming<RaftRequest>>,
    ) -> Result<Response<RaftReply>, Status> {
        self.admit(&request)?;
        let mut messages = request.into_inner();
        let Some(first) = messages.message().await? else {
            return Err(Status::invalid_argument("snapshot stream without a header"));
        };
        let raft = self.route(&first)?;
        let (vote, meta, length): (Vote<NodeId>, SnapshotMeta<NodeId, BasicNode>, u64) =
            decode_request(&first.body, "snapshot header")?;
        if length > SNAPSHOT_BYTES_MAX as u64 {
            return Err(Status::resource_exhausted(format!(
                "snapshot of {length} bytes is over the {SNAPSHOT_BYTES_MAX}-byte bound"
            )));
        }
        let mut data = Vec::with_capacity(length as usize);
        while let Some(piece) = messages.message().await? {
            if piece.group != first.group || piece.target != first.target {
                return Err(Status::invalid_argument("a snapshot piece names another group or node than its header"));
            }
            if data.len() + piece.body.len() > length as usize {
                return Err(Status::invalid_argument(format!("snapshot pieces exceed the announced {length} bytes")));
            }
            data.extend_from_slice(&piece.body);
        }
        if data.len() as u64 != length {
            return Err(Status::invalid_argument(format!(
                "snapshot stream ended after {} of {length} bytes",
                data.len()
            )));
        }
        let snapshot = Snapshot { meta, snapshot: Box::new(data) };
        reply(&raft.install_full_snapshot(vote, snapshot).await)
    }
}
