//! A shard group's openraft storage on the node's replication log ([`RaftLog`], a redb file):
//! [`LogStore`] keeps the group's entries, vote, committed and purge points; [`StateMachine`]
//! applies committed commands through an [`Applier`] and keeps snapshots.
//!
//! Entries, votes and log ids are encoded with postcard; the replication log frames every record
//! with a CRC. The state machine is not written on every apply: its durable form is its snapshot
//! (persisted when built or installed) plus the log behind it, which openraft replays up to the
//! persisted committed point when a group restarts.

// The error type is openraft's, fixed by the storage traits; boxing it here would only unbox it
// again at every trait method.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::future::Future;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, BasicNode, EntryPayload, ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError, StoredMembership, Vote,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use turnstile_storage::raft_log::READ_ENTRIES_MAX;
use turnstile_storage::tables::{RAFT_META_COMMITTED, RAFT_META_PURGED, RAFT_META_VOTE};
use turnstile_storage::{RaftLog, RaftWrite, StoreError};

use crate::types::{Entry, GroupId, LogId, NodeId, Reply, StorageError, TypeConfig};

/// Where the engine plugs in: applies a group's committed commands, in log order, on every
/// replica, and turns its state into a snapshot and back.
///
/// `apply` must be deterministic: it may read only the commands and the state, never a clock or
/// a random source, because every replica applies the same commands and must reach the same
/// state. Times (a hold's deadline, the time of an expiry run) are chosen by the leader and
/// travel inside the command.
///
/// An applier either keeps its state in memory (then the group's durable state is its snapshot
/// plus the log, and [`Applier::stored_state`] answers `None`) or in storage of its own, where
/// it stores how far it applied with what it applied, in one transaction: then a restarted group
/// resumes from there instead of replaying from its snapshot.
pub trait Applier: Send + Sync + 'static {
    /// How far the applier's own storage goes, read when the group starts; `None` when it keeps
    /// no durable state of its own.
    fn stored_state(&mut self) -> impl Future<Output = Result<Option<AppliedState>, String>> + Send;
    /// Applies committed entries, in log order, and records `state` (where the group stands after
    /// them) with them. Returns one reply per entry (empty for entries without a command).
    fn apply(
        &mut self,
        entries: Vec<AppliedEntry>,
        state: &AppliedState,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, String>> + Send;
    /// Captures the state as of the last applied entry; the returned future encodes it (on
    /// another task, beside later applies) and must leave that state durable before it returns,
    /// since the log behind the snapshot is purged.
    fn snapshot(&mut self) -> SnapshotFuture;
    /// Replaces the state by the one `snapshot` holds, recording `state`; on error the state
    /// stays as it was.
    fn restore(&mut self, snapshot: &[u8], state: &AppliedState) -> impl Future<Output = Result<(), String>> + Send;
}

/// Encodes a snapshot: see [`Applier::snapshot`].
pub type SnapshotFuture = std::pin::Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;

/// Where a group's applied state stands: the last applied log id and the membership as of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership<NodeId, BasicNode>,
}

/// A committed entry as an applier sees it: its index and its command (`None` for the entries
/// raft makes itself: blank and membership entries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedEntry {
    pub index: u64,
    pub command: Option<Vec<u8>>,
}

/// An applier that keeps the commands it applied, in order: the state of a group until the
/// engine's event actors take its place, and what tests read to compare replicas. It keeps the
/// last `capacity` commands and counts all of them.
#[derive(Clone)]
pub struct CommandJournal {
    inner: Arc<Mutex<Journal>>,
}

#[derive(Default, Serialize, Deserialize)]
struct Journal {
    capacity: usize,
    applied: u64,
    recent: std::collections::VecDeque<(u64, Vec<u8>)>,
}

impl CommandJournal {
    pub fn new(capacity: usize) -> Self {
        Self { inner: Arc::new(Mutex::new(Journal { capacity, ..Journal::default() })) }
    }

    /// Commands applied in all (also those no longer kept).
    pub fn applied(&self) -> u64 {
        self.inner.lock().expect("journal").applied
    }

    /// The kept commands with their log indexes, oldest first.
    pub fn recent(&self) -> Vec<(u64, Vec<u8>)> {
        self.inner.lock().expect("journal").recent.iter().cloned().collect()
    }
}

impl Applier for CommandJournal {
    async fn stored_state(&mut self) -> Result<Option<AppliedState>, String> {
        Ok(None)
    }

    async fn apply(&mut self, entries: Vec<AppliedEntry>, _state: &AppliedState) -> Result<Vec<Vec<u8>>, String> {
        let mut journal = self.inner.lock().expect("journal");
        let mut replies = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(command) = entry.command else {
                replies.push(Vec::new());
                continue;
            };
            journal.applied += 1;
            if journal.capacity > 0 {
                if journal.recent.len() == journal.capacity {
                    journal.recent.pop_front();
                }
                journal.recent.push_back((entry.index, command));
            }
            replies.push(journal.applied.to_le_bytes().to_vec());
        }
        Ok(replies)
    }

    fn snapshot(&mut self) -> SnapshotFuture {
        let encoded = {
            let journal = self.inner.lock().expect("journal");
            postcard::to_allocvec(&*journal).map_err(|error| format!("journal snapshot: {error}"))
        };
        Box::pin(std::future::ready(encoded))
    }

    async fn restore(&mut self, snapshot: &[u8], _state: &AppliedState) -> Result<(), String> {
        let restored: Journal = postcard::from_bytes(snapshot).map_err(|error| format!("journal snapshot: {error}"))?;
        *self.inner.lock().expect("journal") = restored;
        Ok(())
    }
}

fn encode<T: Serialize>(value: &T, subject: ErrorSubject<NodeId>) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value)
        .map_err(|error| StorageIOError::new(subject, ErrorVerb::Write, AnyError::new(&error)).into())
}

fn decode<T: DeserializeOwned>(bytes: &[u8], subject: ErrorSubject<NodeId>) -> Result<T, StorageError> {
    postcard::from_bytes(bytes)
        .map_err(|error| StorageIOError::new(subject, ErrorVerb::Read, AnyError::new(&error)).into())
}

fn store_error(error: StoreError, subject: ErrorSubject<NodeId>, verb: ErrorVerb) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(&error)).into()
}

/// Submits `writes` and waits (without blocking the thread) until they are durable.
async fn write(log: &RaftLog, group: GroupId, writes: Vec<RaftWrite>) -> Result<(), StoreError> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    log.submit(group, writes, Box::new(move |result| drop(sender.send(result))));
    receiver.await.map_err(|_| StoreError::Stopped)?
}

/// One group's log: entries, vote, committed and purge points, in the node's replication log.
#[derive(Clone)]
pub struct LogStore {
    log: Arc<RaftLog>,
    group: GroupId,
    /// The committed point last saved, read back before its write is committed.
    committed: Arc<Mutex<Option<Option<LogId>>>>,
}

impl LogStore {
    pub fn new(log: Arc<RaftLog>, group: GroupId) -> Self {
        Self { log, group, committed: Arc::default() }
    }

    fn read_meta<T: DeserializeOwned>(
        &self,
        name: &str,
        subject: ErrorSubject<NodeId>,
    ) -> Result<Option<T>, StorageError> {
        match self.log.meta(self.group, name) {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => decode(&bytes, subject).map(Some),
            Err(error) => Err(store_error(error, subject, ErrorVerb::Read)),
        }
    }

    async fn write(&self, writes: Vec<RaftWrite>, subject: ErrorSubject<NodeId>) -> Result<(), StorageError> {
        write(&self.log, self.group, writes).await.map_err(|error| store_error(error, subject, ErrorVerb::Write))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        let stored = self
            .log
            .entries(self.group, bounds, READ_ENTRIES_MAX)
            .map_err(|error| store_error(error, ErrorSubject::Logs, ErrorVerb::Read))?;
        stored.iter().map(|(index, bytes)| decode(bytes, ErrorSubject::LogIndex(*index))).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(RAFT_META_PURGED, ErrorSubject::Logs)?;
        let last =
            self.log.last_entry(self.group).map_err(|error| store_error(error, ErrorSubject::Logs, ErrorVerb::Read))?;
        let last_log_id = match last {
            Some((index, bytes)) => Some(decode::<Entry>(&bytes, ErrorSubject::LogIndex(index))?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let value = encode(vote, ErrorSubject::Vote)?;
        self.write(vec![RaftWrite::PutMeta { name: RAFT_META_VOTE, value }], ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.read_meta(RAFT_META_VOTE, ErrorSubject::Vote)
    }

    /// Written lazily, not awaited: the committed point only lets a restarted group re-apply its
    /// committed entries before a leader tells it the commit point again, so it may lag what is
    /// durable. Awaiting it (or committing it alone) would cost an fsync at every commit.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let value = encode(&committed, ErrorSubject::Store)?;
        *self.committed.lock().expect("committed point") = Some(committed);
        let group = self.group;
        let writes = vec![RaftWrite::PutMeta { name: RAFT_META_COMMITTED, value }];
        self.log.submit_lazy(
            group,
            writes,
            Box::new(move |result| {
                if let Err(error) = result {
                    tracing::warn!(group, %error, "the committed point was not saved");
                }
            }),
        );
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        if let Some(saved) = *self.committed.lock().expect("committed point") {
            return Ok(saved);
        }
        Ok(self.read_meta::<Option<LogId>>(RAFT_META_COMMITTED, ErrorSubject::Store)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut writes = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            writes.push(RaftWrite::Append { index, entry: encode(&entry, ErrorSubject::LogIndex(index))? });
        }
        if writes.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        // Waits for the commit: entries must be readable when this returns, and the writer's
        // group commit already batches the appends of every group of the node.
        let result = write(&self.log, self.group, writes).await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                callback.log_io_completed(Err(std::io::Error::other(error.to_string())));
                Err(store_error(error, ErrorSubject::Logs, ErrorVerb::Write))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let subject = ErrorSubject::Log(log_id);
        self.write(vec![RaftWrite::TruncateFrom { index: log_id.index }], subject).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let purged = encode(&log_id, ErrorSubject::Log(log_id))?;
        let subject = ErrorSubject::Log(log_id);
        self.write(vec![RaftWrite::PurgeUpTo { index: log_id.index, purged }], subject).await
    }
}

/// A snapshot as the replication log keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

/// The current snapshot of a group, shared with snapshot builders running beside the state
/// machine. Its lock is held while a snapshot is persisted so that an older one never replaces a
/// newer one.
type CurrentSnapshot = Arc<tokio::sync::Mutex<Option<StoredSnapshot>>>;

/// A group's state machine: what was applied last, the membership, and the [`Applier`] holding
/// the state.
pub struct StateMachine<A: Applier> {
    log: Arc<RaftLog>,
    group: GroupId,
    last_applied: Option<LogId>,
    membership: StoredMembership<NodeId, BasicNode>,
    applier: A,
    current: CurrentSnapshot,
    snapshots_built: Arc<AtomicU64>,
}

impl<A: Applier> StateMachine<A> {
    /// The group's state machine as of the applier's own stored state, or of its persisted
    /// snapshot when the applier keeps none or is behind it (empty without either): openraft
    /// then applies the committed entries after it.
    pub async fn open(log: Arc<RaftLog>, group: GroupId, mut applier: A) -> Result<Self, StorageError> {
        let stored = log
            .snapshot(group)
            .map_err(|error| store_error(error, ErrorSubject::Snapshot(None), ErrorVerb::Read))?
            .map(|bytes| decode::<StoredSnapshot>(&bytes, ErrorSubject::Snapshot(None)))
            .transpose()?;
        let own = applier.stored_state().await.map_err(|reason| {
            let error = std::io::Error::other(reason);
            StorageError::from(StorageIOError::new(ErrorSubject::StateMachine, ErrorVerb::Read, AnyError::new(&error)))
        })?;
        let (last_applied, membership) = match (own, &stored) {
            (Some(own), Some(stored)) if own.last_applied >= stored.meta.last_log_id => {
                (own.last_applied, own.membership)
            }
            (Some(own), None) => (own.last_applied, own.membership),
            (_, Some(stored)) => {
                let state = AppliedState {
                    last_applied: stored.meta.last_log_id,
                    membership: stored.meta.last_membership.clone(),
                };
                applier.restore(&stored.data, &state).await.map_err(|reason| restore_error(&stored.meta, reason))?;
                (state.last_applied, state.membership)
            }
            (None, None) => (None, StoredMembership::default()),
        };
        Ok(Self {
            log,
            group,
            last_applied,
            membership,
            applier,
            current: Arc::new(tokio::sync::Mutex::new(stored)),
            snapshots_built: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The applier (the engine reads its state through it).
    pub fn applier(&self) -> &A {
        &self.applier
    }
}

fn restore_error(meta: &SnapshotMeta<NodeId, BasicNode>, reason: String) -> StorageError {
    let error = std::io::Error::other(reason);
    StorageIOError::new(ErrorSubject::Snapshot(Some(meta.signature())), ErrorVerb::Read, AnyError::new(&error)).into()
}

/// Takes a group's snapshot: the state was copied when the builder was made, so building runs
/// beside the state machine without holding it.
pub struct SnapshotBuilder {
    log: Arc<RaftLog>,
    group: GroupId,
    last_applied: Option<LogId>,
    membership: StoredMembership<NodeId, BasicNode>,
    /// The applier's encoding, run once by `build_snapshot`. In a mutex only because openraft
    /// wants builders `Sync`; it is never contended.
    data: Mutex<Option<SnapshotFuture>>,
    current: CurrentSnapshot,
    number: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let last = match self.last_applied {
            Some(log_id) => format!("{}-{}", log_id.leader_id, log_id.index),
            None => "empty".to_string(),
        };
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis())
            .unwrap_or(0);
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("g{}-{last}-{started_ms}-{}", self.group, self.number),
        };
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let encoding = self.data.get_mut().map(Option::take).unwrap_or(None);
        let data = match encoding {
            Some(encoding) => encoding.await.map_err(|reason| {
                let error = std::io::Error::other(reason);
                StorageError::from(StorageIOError::new(subject.clone(), ErrorVerb::Read, AnyError::new(&error)))
            })?,
            None => {
                return Err(
                    StorageIOError::new(subject, ErrorVerb::Read, AnyError::error("snapshot built twice")).into()
                )
            }
        };
        let stored = StoredSnapshot { meta, data };
        let mut current = self.current.lock().await;
        // A snapshot installed from the leader meanwhile may be newer: keep it.
        if let Some(newer) = current.as_ref().filter(|current| current.meta.last_log_id > stored.meta.last_log_id) {
            return Ok(Snapshot { meta: newer.meta.clone(), snapshot: Box::new(newer.data.clone()) });
        }
        let subject = ErrorSubject::Snapshot(Some(stored.meta.signature()));
        let snapshot = encode(&stored, subject.clone())?;
        write(&self.log, self.group, vec![RaftWrite::PutSnapshot { snapshot }])
            .await
            .map_err(|error| store_error(error, subject, ErrorVerb::Write))?;
        let built = Snapshot { meta: stored.meta.clone(), snapshot: Box::new(stored.data.clone()) };
        *current = Some(stored);
        Ok(built)
    }
}

impl<A: Applier> RaftStateMachine<TypeConfig> for StateMachine<A> {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership<NodeId, BasicNode>), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = Vec::new();
        let mut last_applied = self.last_applied;
        let mut membership = self.membership.clone();
        for entry in entries {
            last_applied = Some(entry.log_id);
            let command = match entry.payload {
                EntryPayload::Blank => None,
                EntryPayload::Normal(command) => Some(command.0),
                EntryPayload::Membership(changed) => {
                    membership = StoredMembership::new(Some(entry.log_id), changed);
                    None
                }
            };
            batch.push(AppliedEntry { index: entry.log_id.index, command });
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let state = AppliedState { last_applied, membership };
        let replies = self.applier.apply(batch, &state).await.map_err(|reason| {
            let error = std::io::Error::other(reason);
            let subject = ErrorSubject::Apply(last_applied.expect("a batch has a last entry"));
            StorageError::from(StorageIOError::new(subject, ErrorVerb::Write, AnyError::new(&error)))
        })?;
        self.last_applied = state.last_applied;
        self.membership = state.membership;
        Ok(replies.into_iter().map(Reply).collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            log: self.log.clone(),
            group: self.group,
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            data: Mutex::new(Some(self.applier.snapshot())),
            current: self.current.clone(),
            number: self.snapshots_built.fetch_add(1, Ordering::Relaxed),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Vec<u8>>, StorageError> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Vec<u8>>,
    ) -> Result<(), StorageError> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let stored = StoredSnapshot { meta: meta.clone(), data: *snapshot };
        let encoded = encode(&stored, subject.clone())?;
        let mut current = self.current.lock().await;
        // Restore first, so a snapshot the applier cannot read is never persisted (an applier
        // leaves its state as it was when `restore` fails). If persisting then fails, the group
        // stops (a storage error is fatal to it) and restarts from what is on disk.
        let state = AppliedState { last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        self.applier.restore(&stored.data, &state).await.map_err(|reason| restore_error(meta, reason))?;
        write(&self.log, self.group, vec![RaftWrite::PutSnapshot { snapshot: encoded }])
            .await
            .map_err(|error| store_error(error, subject, ErrorVerb::Write))?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        *current = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self.current.lock().await;
        Ok(current
            .as_ref()
            .map(|stored| Snapshot { meta: stored.meta.clone(), snapshot: Box::new(stored.data.clone()) }))
    }
}
