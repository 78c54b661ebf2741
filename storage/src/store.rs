//! The store: a command log, checkpoints and records in one redb database, written by a single
//! writer thread that commits many callers' writes in one transaction (group commit).
//!
//! Callers `submit` a job (the writes of one command, tagged with its stream, e.g. an event id) and
//! a callback. The writer takes every job waiting in its queue, up to a bound, writes them in one
//! transaction and commits it with one fsync, then runs each job's callback. It never waits for
//! more jobs to arrive: a lone job is committed at once, and jobs that arrive during a commit form
//! the next group. Callbacks run in submission order, so a reply is never sent before the replies
//! to the jobs submitted ahead of it.
//!
//! When a commit fails, every job in it fails and its streams are *poisoned*: later jobs of those
//! streams fail too until the owner rebuilds the stream from the log and clears the poison. An
//! owner therefore never acknowledges a change that a failed change came before.
//!
//! Checkpoints do not ride in those commits. A checkpoint (a stream's whole state as of its last
//! entry) can be megabytes, and every job of the group would wait for it to be written and
//! flushed. The writer sets it aside once the group's log entries are durable and writes it in
//! pieces of at most [`CHECKPOINT_CHUNK_BYTES`], one piece per turn, in transactions of their own
//! that are not flushed by themselves: each becomes durable with the next log commit. The last
//! piece's transaction writes the checkpoint's head, which makes it the stream's checkpoint; only
//! then are the entries it covers purged, in a later transaction still. A crash before the head
//! is durable leaves the previous checkpoint and the whole log behind it. A job carrying a
//! checkpoint is answered once the checkpoint is stored, not in submission order.
//!
//! A checkpoint's state can also come later ([`Store::checkpoint_later`]): the owner takes its
//! place in the stream's order at once (so the checkpoint covers exactly the entries submitted
//! before it) and serializes its state on another thread, off its own path; the writer writes it
//! once it arrives.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};

pub use crate::error::StoreError;
use crate::frame::{self, put_bytes, take_bytes, take_u64};
use crate::records::RecordKind;
use crate::tables::{
    BUYER_BOOKINGS, CHECKPOINTS, CHECKPOINT_CHUNKS, CHECKPOINT_HEADS, LOG, META, META_PURGED_INDEX, META_VOTE, RECORDS,
};

/// Jobs waiting for the writer before `submit` refuses more.
pub const QUEUE_DEPTH_MAX: usize = 65_536;
/// Jobs committed in one transaction at most.
pub const JOBS_PER_COMMIT_MAX: usize = 8_192;
/// The term of entries written by a single node. A replication layer supplies its own.
pub const SINGLE_NODE_TERM: u64 = 1;
/// Bytes of checkpoint state the writer stores per turn (one chunk; several small checkpoints
/// may share a turn). A turn runs after each log commit and whenever the queue is empty, so a
/// job waits for at most one turn of checkpoint writing.
pub const CHECKPOINT_CHUNK_BYTES: usize = 256 << 10;
/// The longest replicated jobs ([`Store::submit_replicated`]) stay committed but not durable: the
/// writer then flushes them, also when no other job comes. redb frees pages only in durable
/// commits, so this also bounds how much the file grows between flushes.
pub const LAZY_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// One write of a job. Serializable so that a replication layer can carry jobs in its log with
/// the same codec as everything else it replicates (postcard).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Write {
    /// Appends an entry to the log, on the job's stream.
    Append { payload: Vec<u8> },
    /// Stores a record (catalog entry, booking) under `(kind, key)`, replacing any earlier one.
    Put { kind: RecordKind, key: String, value: Vec<u8> },
    /// Lists a booking under its buyer, newest first.
    IndexBooking { buyer: String, booked_at_ms: u64, booking_id: String },
    /// Stores the stream's state as of its last appended entry; entries behind every stream's
    /// checkpoint are purged. Written after the job's group is committed, not in its transaction
    /// (see the module's documentation); the job's callback runs once it is stored, or replaced
    /// by a newer checkpoint of the stream.
    Checkpoint { state: Vec<u8> },
}

/// redb's page cache. Its default (1 GiB) would let a busy node's memory grow by that much for
/// pages it rarely reads again: the log is written once and read at recovery.
const CACHE_BYTES: usize = 64 << 20;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// Log indexes given to the job's `Append`s, in order.
    pub indexes: Vec<u64>,
}

/// Runs on the writer thread once the job is durable (or has failed). Keep it short.
pub type Done = Box<dyn FnOnce(Result<Committed, StoreError>) + Send>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub index: u64,
    pub term: u64,
    pub stream: String,
    pub payload: Vec<u8>,
}

/// Counters of the writer, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub commits: AtomicU64,
    pub jobs: AtomicU64,
    pub entries: AtomicU64,
    pub commit_micros: AtomicU64,
    /// Unix ms of the last committed checkpoint (0: none since the store was opened).
    pub last_checkpoint_unix_ms: AtomicU64,
    /// The longest log commit since the store was opened.
    pub commit_micros_max: AtomicU64,
    /// Checkpoints stored since the store was opened, and their bytes of state.
    pub checkpoints: AtomicU64,
    pub checkpoint_bytes: AtomicU64,
    /// Time the writer spent writing checkpoints (turns), in all and the longest turn.
    pub checkpoint_micros: AtomicU64,
    pub checkpoint_turn_micros_max: AtomicU64,
}

enum Job {
    Batch {
        stream: String,
        writes: Vec<Write>,
        done: Done,
    },
    /// Jobs a replication layer applies from its own durable log: written in one transaction
    /// (never split across commits), not flushed on their own (see [`Store::submit_replicated`]).
    Replicated {
        jobs: Vec<(String, Vec<Write>)>,
        done: Done,
    },
    /// Makes every commit before it durable.
    Sync {
        done: Done,
    },
    /// A checkpoint of `stream` as of the entries submitted before it, its state to come in a
    /// `CheckpointState` job with the same id.
    CheckpointLater {
        stream: String,
        id: u64,
        done: Done,
    },
    /// The state of a `CheckpointLater`; `None` when its filler was dropped without one.
    CheckpointState {
        id: u64,
        state: Option<Vec<u8>>,
    },
    ClearPoison {
        stream: String,
    },
    SaveVote {
        vote: Vec<u8>,
        done: Done,
    },
    TruncateFrom {
        index: u64,
        done: Done,
    },
    Stop,
}

struct Shared {
    db: Database,
    path: PathBuf,
    stats: Stats,
    /// Declared after `db`, so dropped after it: says the database file is closed.
    released: crate::released::ReleaseOnDrop,
}

impl Shared {
    fn io(&self, error: impl std::fmt::Display) -> StoreError {
        StoreError::Io { path: self.path.display().to_string(), reason: error.to_string() }
    }
}

pub struct Store {
    shared: Arc<Shared>,
    sender: SyncSender<Job>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Ids of checkpoints whose state comes later.
    next_checkpoint_id: AtomicU64,
}

/// Hands the state of a later checkpoint ([`Store::checkpoint_later`], or a replication layer's
/// journal) to whoever stores it. Dropping it unfilled abandons the checkpoint: it is answered
/// with an error and nothing is stored.
pub struct CheckpointFiller {
    /// Called once, with the state or with `None` when the filler is dropped unfilled. `None`
    /// once used, or when the checkpoint was refused at submission.
    fill: Option<FillState>,
}

/// Takes a later checkpoint's state, or `None` when its filler was dropped unfilled.
type FillState = Box<dyn FnOnce(Option<Vec<u8>>) + Send>;

impl CheckpointFiller {
    /// A filler that hands the state (or `None`, if dropped unfilled) to `fill`. `fill` must not
    /// block when given `None`: a drop may run on an async thread.
    pub fn new(fill: impl FnOnce(Option<Vec<u8>>) + Send + 'static) -> Self {
        Self { fill: Some(Box::new(fill)) }
    }

    /// A filler for a checkpoint refused at submission (its callback has been answered already).
    pub fn refused() -> Self {
        Self { fill: None }
    }

    /// Gives the checkpoint its state: the stream's state as of the entries submitted before
    /// the checkpoint was asked for. May block briefly while the store's queue is full.
    pub fn fill(mut self, state: Vec<u8>) {
        if let Some(fill) = self.fill.take() {
            fill(Some(state));
        }
    }
}

impl Drop for CheckpointFiller {
    fn drop(&mut self) {
        if let Some(fill) = self.fill.take() {
            fill(None);
        }
    }
}

fn entry_key(index: u64) -> [u8; 8] {
    index.to_le_bytes()
}

/// Encodes a log entry's frame into `frame` (cleared first), so the writer reuses one buffer for
/// every entry of a commit.
fn encode_entry_into(frame: &mut Vec<u8>, index: u64, term: u64, stream: &str, payload: &[u8]) {
    frame.clear();
    frame::seal_into(frame, &entry_key(index), |body| {
        body.extend_from_slice(&term.to_le_bytes());
        put_bytes(body, stream.as_bytes());
        body.extend_from_slice(payload);
    });
}

fn decode_entry(path: &Path, index: u64, stored: &[u8]) -> Result<LogEntry, StoreError> {
    let what = format!("{} log entry {index}", path.display());
    let body = frame::open(&entry_key(index), stored, &what)?;
    let (term, rest) = take_u64(body, &what)?;
    let (stream, payload) = take_bytes(rest, &what)?;
    let stream = String::from_utf8(stream.to_vec())
        .map_err(|_| StoreError::Corrupt { what: what.clone(), reason: "stream name is not UTF-8".into() })?;
    Ok(LogEntry { index, term, stream, payload: payload.to_vec() })
}

fn record_key(kind: &str, key: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(kind.len() + key.len() + 1);
    bytes.extend_from_slice(kind.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(key.as_bytes());
    bytes
}

/// What the writer remembers between commits to know which entries checkpoints cover.
#[derive(Default)]
struct LogCursor {
    last_index: u64,
    purged_index: u64,
    last_index_by_stream: HashMap<String, u64>,
    /// First entry of each stream not covered by its checkpoint, both ways round so the lowest
    /// (the purge bound) is at hand.
    dirty_by_stream: HashMap<String, u64>,
    dirty_order: BTreeSet<(u64, String)>,
}

impl LogCursor {
    fn mark_appended(&mut self, stream: &str, index: u64) {
        // The log's indexes are contiguous: a gap or a repeat would break recovery's replay and
        // every reader that walks the log, so it stops the writer in release builds too.
        assert_eq!(index, self.last_index + 1, "log index {index} does not follow {}", self.last_index);
        self.last_index = index;
        match self.last_index_by_stream.get_mut(stream) {
            Some(last) => *last = index,
            None => {
                self.last_index_by_stream.insert(stream.to_string(), index);
            }
        }
        if !self.dirty_by_stream.contains_key(stream) {
            self.dirty_by_stream.insert(stream.to_string(), index);
            self.dirty_order.insert((index, stream.to_string()));
        }
    }

    /// A checkpoint of `stream` is stored; `first_after` is the stream's first entry after the
    /// index it covers, if any.
    fn mark_checkpointed(&mut self, stream: &str, first_after: Option<u64>) {
        if let Some(first) = self.dirty_by_stream.remove(stream) {
            self.dirty_order.remove(&(first, stream.to_string()));
        }
        if let Some(first) = first_after {
            self.dirty_by_stream.insert(stream.to_string(), first);
            self.dirty_order.insert((first, stream.to_string()));
        }
    }

    /// The stream's last entry, or the purge point if it has none: what a checkpoint of the
    /// stream taken now covers.
    fn last_index_of(&self, stream: &str) -> u64 {
        self.last_index_by_stream.get(stream).copied().unwrap_or(self.purged_index)
    }

    /// Entries up to this index are covered by checkpoints.
    fn purge_bound(&self) -> u64 {
        match self.dirty_order.first() {
            Some((first_dirty, _)) => first_dirty - 1,
            None => self.last_index,
        }
    }
}

impl Store {
    /// Opens (or creates) the database in `dir`, checks the log and starts the writer.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|error| StoreError::Io { path: dir.display().to_string(), reason: error.to_string() })?;
        let path = dir.join(crate::DATABASE_FILE);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|error| StoreError::Io { path: path.display().to_string(), reason: error.to_string() })?;
        Self::start(db, path)
    }

    /// Opens a database on a caller's storage backend (fault-injection tests).
    pub fn open_with_backend(backend: impl redb::StorageBackend, label: &str) -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|error| StoreError::Io { path: label.to_string(), reason: error.to_string() })?;
        Self::start(db, PathBuf::from(label))
    }

    fn start(db: Database, path: PathBuf) -> Result<Self, StoreError> {
        let shared =
            Arc::new(Shared { db, path, stats: Stats::default(), released: crate::released::ReleaseOnDrop::default() });
        {
            let transaction = shared.db.begin_write().map_err(|error| shared.io(error))?;
            for result in [
                transaction.open_table(LOG).map(drop),
                transaction.open_table(META).map(drop),
                transaction.open_table(CHECKPOINTS).map(drop),
                transaction.open_table(CHECKPOINT_HEADS).map(drop),
                transaction.open_table(CHECKPOINT_CHUNKS).map(drop),
                transaction.open_table(RECORDS).map(drop),
                transaction.open_table(BUYER_BOOKINGS).map(drop),
            ] {
                result.map_err(|error| shared.io(error))?;
            }
            transaction.commit().map_err(|error| shared.io(error))?;
        }
        let cursor = Self::read_cursor(&shared)?;
        let (sender, receiver) = sync_channel(QUEUE_DEPTH_MAX);
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("turnstile-log-writer".into())
            .spawn(move || {
                Writer {
                    shared: writer_shared,
                    cursor,
                    poisoned: HashSet::new(),
                    checkpoints: VecDeque::new(),
                    unflushed: false,
                    last_durable: Instant::now(),
                    buffers: GroupBuffers::default(),
                }
                .run(receiver)
            })
            .map_err(|error| shared.io(error))?;
        Ok(Self { shared, sender, writer: Mutex::new(Some(writer)), next_checkpoint_id: AtomicU64::new(1) })
    }

    /// Rebuilds the writer's view of the log: which streams have entries beyond their checkpoints.
    fn read_cursor(shared: &Shared) -> Result<LogCursor, StoreError> {
        let transaction = shared.db.begin_read().map_err(|error| shared.io(error))?;
        let mut cursor = LogCursor { purged_index: read_purged(shared, &transaction)?, ..LogCursor::default() };
        cursor.last_index = cursor.purged_index;
        let mut checkpointed_at = HashMap::new();
        let heads = transaction.open_table(CHECKPOINT_HEADS).map_err(|error| shared.io(error))?;
        for item in heads.iter().map_err(|error| shared.io(error))? {
            let (stream, value) = item.map_err(|error| shared.io(error))?;
            let (index, _, _) = decode_head(&shared.path, stream.value(), value.value())?;
            checkpointed_at.insert(stream.value().to_string(), index);
        }
        let legacy = transaction.open_table(CHECKPOINTS).map_err(|error| shared.io(error))?;
        for item in legacy.iter().map_err(|error| shared.io(error))? {
            let (stream, value) = item.map_err(|error| shared.io(error))?;
            if !checkpointed_at.contains_key(stream.value()) {
                let (index, _) = decode_checkpoint(&shared.path, stream.value(), value.value())?;
                checkpointed_at.insert(stream.value().to_string(), index);
            }
        }
        let log = transaction.open_table(LOG).map_err(|error| shared.io(error))?;
        for item in log.iter().map_err(|error| shared.io(error))? {
            let (index, value) = item.map_err(|error| shared.io(error))?;
            let entry = decode_entry(&shared.path, index.value(), value.value())?;
            if entry.index <= cursor.purged_index {
                continue;
            }
            let covered = checkpointed_at.get(&entry.stream).is_some_and(|at| *at >= entry.index);
            cursor.last_index = entry.index;
            cursor.last_index_by_stream.insert(entry.stream.clone(), entry.index);
            if !covered && !cursor.dirty_by_stream.contains_key(&entry.stream) {
                cursor.dirty_by_stream.insert(entry.stream.clone(), entry.index);
                cursor.dirty_order.insert((entry.index, entry.stream));
            }
        }
        Ok(cursor)
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Queues a job; `done` runs once its writes are durable or have failed. Never blocks: when
    /// the queue is full, `done` runs at once with `StoreError::Full`.
    pub fn submit(&self, stream: &str, writes: Vec<Write>, done: Done) {
        let job = Job::Batch { stream: stream.to_string(), writes, done };
        match self.sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(Job::Batch { done, .. })) => done(Err(StoreError::Full)),
            Err(TrySendError::Disconnected(Job::Batch { done, .. })) => done(Err(StoreError::Stopped)),
            Err(_) => unreachable!("a batch was sent"),
        }
    }

    /// Queues a checkpoint of `stream` covering every entry submitted on it before this call,
    /// whose state is given later through the returned filler (typically from another thread, so
    /// the owner need not serialize its state on its own path). `done` runs once it is stored, or
    /// with an error if it could not be (queue full, filler dropped, write failed, store stopped).
    /// Like other checkpoints, it is replaced (and answered) by a newer one of the same stream.
    pub fn checkpoint_later(&self, stream: &str, done: Done) -> CheckpointFiller {
        let id = self.next_checkpoint_id.fetch_add(1, Ordering::Relaxed);
        let job = Job::CheckpointLater { stream: stream.to_string(), id, done };
        match self.sender.try_send(job) {
            Ok(()) => {
                let sender = self.sender.clone();
                CheckpointFiller::new(move |state| match state {
                    Some(state) => drop(sender.send(Job::CheckpointState { id, state: Some(state) })),
                    // Never blocks (a drop may run on an async thread). If the queue is full, the
                    // checkpoint waits until a newer one of its stream replaces it or the store stops.
                    None => drop(sender.try_send(Job::CheckpointState { id, state: None })),
                })
            }
            Err(refused) => {
                let (error, job) = match refused {
                    TrySendError::Full(job) => (StoreError::Full, job),
                    TrySendError::Disconnected(job) => (StoreError::Stopped, job),
                };
                if let Job::CheckpointLater { done, .. } = job {
                    done(Err(error));
                }
                CheckpointFiller::refused()
            }
        }
    }

    /// Submits and waits on the calling thread. For start-up, tools and tests, not async code.
    pub fn write_blocking(&self, stream: &str, writes: Vec<Write>) -> Result<Committed, StoreError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        self.submit(stream, writes, Box::new(move |result| drop(sender.send(result))));
        receiver.recv().map_err(|_| StoreError::Stopped)?
    }

    /// Queues jobs that a replication layer applies from its own log, which is durable already:
    /// they are written in one transaction (with whatever the caller adds to record how far it
    /// applied, so the two are stored together or not at all) and are not flushed on their own.
    /// They become durable with the next durable commit: another caller's job, a [`Store::sync`],
    /// or the writer's own flush at most [`LAZY_FLUSH_INTERVAL`] after the first of them. After
    /// a crash the store is as of its last durable commit, and the caller applies again from there.
    /// Streams are never poisoned by these jobs' failure: the caller cannot go on without them.
    /// A checkpoint among them is answered with the job, not when it is stored. `done` runs once
    /// the transaction is committed (or failed). Never blocks: when the queue is full or the
    /// store stopped, the jobs and `done` come back with the error, so the caller can try again.
    #[allow(clippy::type_complexity)]
    pub fn submit_replicated(
        &self,
        jobs: Vec<(String, Vec<Write>)>,
        done: Done,
    ) -> Result<(), (StoreError, Vec<(String, Vec<Write>)>, Done)> {
        match self.sender.try_send(Job::Replicated { jobs, done }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Job::Replicated { jobs, done })) => Err((StoreError::Full, jobs, done)),
            Err(TrySendError::Disconnected(Job::Replicated { jobs, done })) => Err((StoreError::Stopped, jobs, done)),
            Err(_) => unreachable!("replicated jobs were sent"),
        }
    }

    /// Makes every commit so far durable; `done` runs once it is. Never blocks.
    pub fn sync(&self, done: Done) {
        match self.sender.try_send(Job::Sync { done }) {
            Ok(()) => {}
            Err(TrySendError::Full(Job::Sync { done })) => done(Err(StoreError::Full)),
            Err(TrySendError::Disconnected(Job::Sync { done })) => done(Err(StoreError::Stopped)),
            Err(_) => unreachable!("a sync was sent"),
        }
    }

    /// Lets a rebuilt stream write again.
    pub fn clear_poison(&self, stream: &str) {
        let _ = self.sender.send(Job::ClearPoison { stream: stream.to_string() });
    }

    pub fn save_vote(&self, vote: Vec<u8>) -> Result<(), StoreError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let done: Done = Box::new(move |result| drop(sender.send(result)));
        self.sender.send(Job::SaveVote { vote, done }).map_err(|_| StoreError::Stopped)?;
        receiver.recv().map_err(|_| StoreError::Stopped)?.map(drop)
    }

    pub fn read_vote(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let shared = &self.shared;
        let transaction = shared.db.begin_read().map_err(|error| shared.io(error))?;
        let meta = transaction.open_table(META).map_err(|error| shared.io(error))?;
        let Some(value) = meta.get(META_VOTE).map_err(|error| shared.io(error))? else {
            return Ok(None);
        };
        let what = format!("{} vote", shared.path.display());
        Ok(Some(frame::open(META_VOTE.as_bytes(), value.value(), &what)?.to_vec()))
    }

    /// Removes entries from `index` on (a replication layer's conflict truncation).
    pub fn truncate_from(&self, index: u64) -> Result<(), StoreError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let done: Done = Box::new(move |result| drop(sender.send(result)));
        self.sender.send(Job::TruncateFrom { index, done }).map_err(|_| StoreError::Stopped)?;
        receiver.recv().map_err(|_| StoreError::Stopped)?.map(drop)
    }

    /// The index of the last entry, or of the purge point if the log is empty.
    pub fn last_index(&self) -> Result<u64, StoreError> {
        let shared = &self.shared;
        let transaction = shared.db.begin_read().map_err(|error| shared.io(error))?;
        let purged = read_purged(shared, &transaction)?;
        let log = transaction.open_table(LOG).map_err(|error| shared.io(error))?;
        let last = log.last().map_err(|error| shared.io(error))?.map(|(index, _)| index.value());
        Ok(last.unwrap_or(purged).max(purged))
    }

    pub fn purged_index(&self) -> Result<u64, StoreError> {
        let shared = &self.shared;
        let transaction = shared.db.begin_read().map_err(|error| shared.io(error))?;
        read_purged(shared, &transaction)
    }

    pub fn log_len(&self) -> Result<u64, StoreError> {
        let shared = &self.shared;
        let transaction = shared.db.begin_read().map_err(|error| shared.io(error))?;
        let log = transaction.open_table(LOG).map_err(|error| shared.io(error))?;
        log.len().map_err(|error| shared.io(error))
    }

    /// A consistent view of everything committed so far (durable or not), for reads that must
    /// see one state: later commits do not change what it shows.
    pub fn view(&self) -> Result<StoreView, StoreError> {
        let transaction = self.shared.db.begin_read().map_err(|error| self.shared.io(error))?;
        Ok(StoreView { shared: self.shared.clone(), transaction })
    }

    /// Calls `visit` with every entry after `after`, in order, each checked as it is read.
    pub fn for_each_entry<E: From<StoreError>>(
        &self,
        after: u64,
        visit: impl FnMut(LogEntry) -> Result<(), E>,
    ) -> Result<(), E> {
        self.view()?.for_each_entry(after, visit)
    }

    /// Every stream's stored checkpoint: see [`StoreView::checkpoints`].
    pub fn checkpoints(&self) -> Result<Vec<(String, u64, Vec<u8>)>, StoreError> {
        self.view()?.checkpoints()
    }

    /// Every record of one kind: (key, value).
    pub fn records(&self, kind: RecordKind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.view()?.records(kind)
    }

    pub fn record(&self, kind: RecordKind, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.view()?.record(kind, key)
    }

    /// A buyer's booking ids, newest first, after the cursor `(booked at ms, booking id)`.
    pub fn buyer_bookings(
        &self,
        buyer: &str,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        self.view()?.buyer_bookings(buyer, after, limit)
    }

    /// Copies a consistent snapshot of the whole database to a new file at `to`.
    pub fn backup(&self, to: &Path) -> Result<(), StoreError> {
        crate::backup::copy_database(&self.shared.db, &self.shared.path, to)
    }

    /// What says when the database is closed (see [`Released`]).
    pub fn released(&self) -> crate::Released {
        self.shared.released.signal()
    }

    /// Stops the writer after the jobs already queued.
    pub fn close(&self) {
        let _ = self.sender.send(Job::Stop);
        if let Some(writer) = self.writer.lock().expect("writer handle").take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// A read transaction on the store ([`Store::view`]): every read through it sees the same state.
pub struct StoreView {
    shared: Arc<Shared>,
    transaction: redb::ReadTransaction,
}

impl StoreView {
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Calls `visit` with every entry after `after`, in order, each checked as it is read.
    pub fn for_each_entry<E: From<StoreError>>(
        &self,
        after: u64,
        mut visit: impl FnMut(LogEntry) -> Result<(), E>,
    ) -> Result<(), E> {
        let shared = &self.shared;
        let transaction = &self.transaction;
        let log = transaction.open_table(LOG).map_err(|error| shared.io(error))?;
        let mut expected = None;
        for item in log.range(after.saturating_add(1)..).map_err(|error| shared.io(error))? {
            let (index, value) = item.map_err(|error| shared.io(error))?;
            let index = index.value();
            if let Some(expected) = expected {
                if index != expected {
                    return Err(StoreError::Corrupt {
                        what: format!("{} log", shared.path.display()),
                        reason: format!("entry {expected} is missing (next is {index})"),
                    }
                    .into());
                }
            }
            expected = Some(index + 1);
            visit(decode_entry(&shared.path, index, value.value())?)?;
        }
        Ok(())
    }

    /// Every stream's stored checkpoint: (stream, log index it covers, state). Each chunk is
    /// checked, and a checkpoint missing a chunk or of the wrong length is reported corrupt.
    pub fn checkpoints(&self) -> Result<Vec<(String, u64, Vec<u8>)>, StoreError> {
        let shared = &self.shared;
        let transaction = &self.transaction;
        let heads = transaction.open_table(CHECKPOINT_HEADS).map_err(|error| shared.io(error))?;
        let chunks = transaction.open_table(CHECKPOINT_CHUNKS).map_err(|error| shared.io(error))?;
        let mut checkpoints = Vec::new();
        let mut headed = HashSet::new();
        for item in heads.iter().map_err(|error| shared.io(error))? {
            let (stream, value) = item.map_err(|error| shared.io(error))?;
            let stream = stream.value();
            let (index, count, length) = decode_head(&shared.path, stream, value.value())?;
            let what = format!("{} checkpoint of {stream} at {index}", shared.path.display());
            let corrupt = |reason: String| StoreError::Corrupt { what: what.clone(), reason };
            let mut state = Vec::with_capacity(length.min(1 << 30) as usize);
            let mut expected = 0u32;
            let range =
                chunks.range((stream, index, 0)..=(stream, index, u32::MAX)).map_err(|error| shared.io(error))?;
            for item in range {
                let (key, value) = item.map_err(|error| shared.io(error))?;
                let key = key.value();
                if key.2 != expected {
                    return Err(corrupt(format!("chunk {expected} of {count} is missing")));
                }
                let chunk_what = format!("{what}, chunk {}", key.2);
                state.extend_from_slice(frame::open(&chunk_key(key), value.value(), &chunk_what)?);
                expected += 1;
            }
            if expected != count || state.len() as u64 != length {
                return Err(corrupt(format!(
                    "{expected} chunks of {} bytes stored, the head says {count} of {length}",
                    state.len()
                )));
            }
            headed.insert(stream.to_string());
            checkpoints.push((stream.to_string(), index, state));
        }
        let legacy = transaction.open_table(CHECKPOINTS).map_err(|error| shared.io(error))?;
        for item in legacy.iter().map_err(|error| shared.io(error))? {
            let (stream, value) = item.map_err(|error| shared.io(error))?;
            if headed.contains(stream.value()) {
                continue;
            }
            let (index, state) = decode_checkpoint(&shared.path, stream.value(), value.value())?;
            checkpoints.push((stream.value().to_string(), index, state.to_vec()));
        }
        Ok(checkpoints)
    }

    /// Every record of one kind: (key, value).
    pub fn records(&self, kind: RecordKind) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let kind = kind.as_str();
        let shared = &self.shared;
        let transaction = &self.transaction;
        let table = transaction.open_table(RECORDS).map_err(|error| shared.io(error))?;
        let mut records = Vec::new();
        let range = table.range((kind, "")..).map_err(|error| shared.io(error))?;
        for item in range {
            let (key, value) = item.map_err(|error| shared.io(error))?;
            let (record_kind, record_key) = key.value();
            if record_kind != kind {
                break;
            }
            let what = format!("{} record {kind}/{record_key}", shared.path.display());
            let body = frame::open(&self::record_key(kind, record_key), value.value(), &what)?;
            records.push((record_key.to_string(), body.to_vec()));
        }
        Ok(records)
    }

    pub fn record(&self, kind: RecordKind, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let kind = kind.as_str();
        let shared = &self.shared;
        let transaction = &self.transaction;
        let table = transaction.open_table(RECORDS).map_err(|error| shared.io(error))?;
        let Some(value) = table.get((kind, key)).map_err(|error| shared.io(error))? else {
            return Ok(None);
        };
        let what = format!("{} record {kind}/{key}", shared.path.display());
        Ok(Some(frame::open(&record_key(kind, key), value.value(), &what)?.to_vec()))
    }

    /// A buyer's booking ids, newest first, after the cursor `(booked at ms, booking id)`.
    pub fn buyer_bookings(
        &self,
        buyer: &str,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let shared = &self.shared;
        let transaction = &self.transaction;
        let table = transaction.open_table(BUYER_BOOKINGS).map_err(|error| shared.io(error))?;
        let start = match after {
            Some((booked_at_ms, booking_id)) => (buyer, u64::MAX - booked_at_ms, booking_id),
            None => (buyer, 0, ""),
        };
        let mut page = Vec::new();
        for item in table.range(start..).map_err(|error| shared.io(error))? {
            let (key, _) = item.map_err(|error| shared.io(error))?;
            let (key_buyer, inverted_ms, booking_id) = key.value();
            if key_buyer != buyer {
                break;
            }
            if let Some((booked_at_ms, after_id)) = after {
                if inverted_ms == u64::MAX - booked_at_ms && booking_id == after_id {
                    continue;
                }
            }
            page.push((u64::MAX - inverted_ms, booking_id.to_string()));
            if page.len() == limit {
                break;
            }
        }
        Ok(page)
    }

    /// Calls `visit` with every entry of the buyer index: (buyer, booked at ms, booking id).
    pub fn for_each_buyer_booking<E: From<StoreError>>(
        &self,
        mut visit: impl FnMut(&str, u64, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        let shared = &self.shared;
        let table = self.transaction.open_table(BUYER_BOOKINGS).map_err(|error| shared.io(error))?;
        for item in table.iter().map_err(|error| shared.io(error))? {
            let (key, _) = item.map_err(|error| shared.io(error))?;
            let (buyer, inverted_ms, booking_id) = key.value();
            visit(buyer, u64::MAX - inverted_ms, booking_id)?;
        }
        Ok(())
    }
}

fn read_purged(shared: &Shared, transaction: &redb::ReadTransaction) -> Result<u64, StoreError> {
    let meta = transaction.open_table(META).map_err(|error| shared.io(error))?;
    let Some(value) = meta.get(META_PURGED_INDEX).map_err(|error| shared.io(error))? else {
        return Ok(0);
    };
    let what = format!("{} purge point", shared.path.display());
    let body = frame::open(META_PURGED_INDEX.as_bytes(), value.value(), &what)?;
    Ok(take_u64(body, &what)?.0)
}

/// The bytes a checkpoint chunk's frame is sealed under: its whole key.
fn chunk_key((stream, index, number): (&str, u64, u32)) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 12);
    key.extend_from_slice(stream.as_bytes());
    key.extend_from_slice(&index.to_le_bytes());
    key.extend_from_slice(&number.to_le_bytes());
    key
}

/// A checkpoint head's body: the log index it covers, its number of chunks, its state's length.
fn encode_head(index: u64, chunks: u32, length: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(20);
    body.extend_from_slice(&index.to_le_bytes());
    body.extend_from_slice(&chunks.to_le_bytes());
    body.extend_from_slice(&length.to_le_bytes());
    body
}

fn decode_head(path: &Path, stream: &str, stored: &[u8]) -> Result<(u64, u32, u64), StoreError> {
    let what = format!("{} checkpoint head of {stream}", path.display());
    let body = frame::open(stream.as_bytes(), stored, &what)?;
    if body.len() != 20 {
        return Err(StoreError::Corrupt { what, reason: format!("head of {} bytes, not 20", body.len()) });
    }
    let (index, rest) = take_u64(body, &what)?;
    let chunks = u32::from_le_bytes(rest[..4].try_into().expect("four bytes"));
    let (length, _) = take_u64(&rest[4..], &what)?;
    Ok((index, chunks, length))
}

fn decode_checkpoint<'a>(path: &Path, stream: &str, stored: &'a [u8]) -> Result<(u64, &'a [u8]), StoreError> {
    let what = format!("{} checkpoint of {stream}", path.display());
    let body = frame::open(stream.as_bytes(), stored, &what)?;
    take_u64(body, &what)
}

struct Writer {
    shared: Arc<Shared>,
    cursor: LogCursor,
    poisoned: HashSet<String>,
    /// Checkpoints whose log entries are committed, waiting to be written chunk by chunk, at most
    /// one per stream, oldest first.
    checkpoints: VecDeque<PendingCheckpoint>,
    /// A non-durable transaction (checkpoint chunks, purge) was committed since the last durable
    /// one: it becomes durable with the next log commit, or the one the writer makes at stop.
    unflushed: bool,
    /// When the last durable commit was made: replicated jobs are flushed at most
    /// `LAZY_FLUSH_INTERVAL` after it.
    last_durable: Instant,
    buffers: GroupBuffers,
}

/// The vectors a group is gathered and committed in, kept from one commit to the next: a commit
/// of hundreds of jobs would otherwise allocate and grow them afresh every time, on the one
/// thread every durable write waits for.
#[derive(Default)]
struct GroupBuffers {
    group: Vec<Queued>,
    pending: Vec<Pending>,
    batches: Vec<Vec<Write>>,
    log_changes: Vec<LogChange>,
    frame: Vec<u8>,
}

/// A job waiting in the current group.
struct Queued {
    stream: String,
    writes: Vec<Write>,
    /// `None` for all but the last part of a replicated group, which answers for all of them.
    done: Option<Done>,
    /// Part of [`Job::Replicated`]: not durable on its own, never poisoned.
    replicated: bool,
}

/// What a group did to the log, by position of the job in the group, in the order it was done.
enum LogChange {
    Appended(usize, u64),
    /// A checkpoint of the job's stream as of log index `.1`, to be written after the commit.
    Checkpointed(usize, u64, Vec<u8>),
}

/// A job taken into the current group. `done` is taken out of it when the job carries a
/// checkpoint: it then runs once the checkpoint is stored.
struct Pending {
    stream: String,
    done: Option<Done>,
    committed: Committed,
    replicated: bool,
}

/// A checkpoint accepted in a committed group and not yet completely written.
struct PendingCheckpoint {
    stream: String,
    /// The log index it covers: the stream's last entry when the checkpoint was taken.
    index: u64,
    /// `None` until the state of a checkpoint submitted with `checkpoint_later` arrives.
    state: Option<Vec<u8>>,
    /// The id its state arrives under, for a checkpoint submitted with `checkpoint_later`.
    later_id: Option<u64>,
    /// Chunks of `state` already written (in transactions that may not be durable yet).
    chunks_written: u32,
    /// The stream's first entry appended after `index`, once there is one: the stream's first
    /// entry not covered once this checkpoint is stored.
    first_after: Option<u64>,
    /// The callback of the job that asked for it, and what that job's appends were given.
    done: Option<(Done, Committed)>,
}

impl PendingCheckpoint {
    fn chunk_count(state: &[u8]) -> u32 {
        state.len().div_ceil(CHECKPOINT_CHUNK_BYTES).max(1) as u32
    }

    fn chunk(state: &[u8], number: u32) -> &[u8] {
        let start = (number as usize * CHECKPOINT_CHUNK_BYTES).min(state.len());
        let end = (start + CHECKPOINT_CHUNK_BYTES).min(state.len());
        &state[start..end]
    }

    fn answer(self, result: Result<(), StoreError>) {
        if let Some((done, committed)) = self.done {
            done(result.map(|()| committed));
        }
    }
}

impl Writer {
    fn run(mut self, receiver: Receiver<Job>) {
        let mut stopping = false;
        while !stopping {
            // With checkpoints to write, the writer does not sleep on an empty queue: it writes
            // the next chunk while no job is waiting, and looks at the queue again after each.
            let first = if !self.checkpoint_ready() {
                if self.unflushed {
                    // Committed but not durable (replicated jobs, checkpoint pieces): flush them
                    // when nothing else comes within the interval.
                    let left = LAZY_FLUSH_INTERVAL.saturating_sub(self.last_durable.elapsed());
                    match receiver.recv_timeout(left) {
                        Ok(job) => job,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            if let Err(error) = self.transact(Durability::Immediate, |_| Ok(())) {
                                tracing::warn!(%error, "flushing lazy commits failed; the next commit tries again");
                            }
                            continue;
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                } else {
                    match receiver.recv() {
                        Ok(job) => job,
                        Err(_) => break,
                    }
                }
            } else {
                match receiver.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => {
                        self.checkpoint_turn();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            };
            let mut group = std::mem::take(&mut self.buffers.group);
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Batch { stream, writes, done } => {
                        group.push(Queued { stream, writes, done: Some(done), replicated: false });
                        if group.len() < JOBS_PER_COMMIT_MAX {
                            next = receiver.try_recv().ok();
                        }
                    }
                    // Never split across commits: the caller's record of how far it applied is
                    // among these writes and must be stored with them.
                    Job::Replicated { jobs, done } => {
                        let first_part = group.len();
                        for (stream, writes) in jobs {
                            group.push(Queued { stream, writes, done: None, replicated: true });
                        }
                        if group.len() == first_part {
                            group.push(Queued {
                                stream: String::new(),
                                writes: Vec::new(),
                                done: None,
                                replicated: true,
                            });
                        }
                        group.last_mut().expect("a part was pushed").done = Some(done);
                        if group.len() < JOBS_PER_COMMIT_MAX {
                            next = receiver.try_recv().ok();
                        }
                    }
                    // A state arriving changes no order: the group goes on.
                    Job::CheckpointState { id, state } => {
                        self.fill_checkpoint(id, state);
                        if group.len() < JOBS_PER_COMMIT_MAX {
                            next = receiver.try_recv().ok();
                        }
                    }
                    control => {
                        // Control jobs run in order: after the group ahead of them.
                        self.commit_group(&mut group);
                        stopping = self.control(control);
                        if !stopping {
                            next = receiver.try_recv().ok();
                        }
                    }
                }
            }
            self.commit_group(&mut group);
            self.buffers.group = group;
        }
        // Stopping: store the checkpoints still pending whose state is here, then make
        // everything durable. Those still waiting for their state are not stored.
        while self.checkpoint_ready() {
            self.checkpoint_turn();
        }
        for checkpoint in std::mem::take(&mut self.checkpoints) {
            checkpoint.answer(Err(StoreError::Stopped));
        }
        if self.unflushed {
            if let Err(error) = self.transact(Durability::Immediate, |_| Ok(())) {
                tracing::warn!(%error, "the last checkpoint writes were not made durable");
            }
        }
    }

    /// Returns true when the writer must stop.
    fn control(&mut self, job: Job) -> bool {
        match job {
            Job::ClearPoison { stream } => {
                self.poisoned.remove(&stream);
            }
            Job::SaveVote { vote, done } => {
                let result = self.transact(Durability::Immediate, |transaction| {
                    let mut meta = transaction.open_table(META)?;
                    meta.insert(META_VOTE, frame::seal(META_VOTE.as_bytes(), &vote).as_slice())?;
                    Ok(())
                });
                done(result.map(|()| Committed::default()));
            }
            Job::TruncateFrom { index, done } => {
                // Checkpoints not yet stored may cover entries that are about to go.
                for checkpoint in std::mem::take(&mut self.checkpoints) {
                    let reason = format!("checkpoint of '{}' dropped: the log was truncated", checkpoint.stream);
                    checkpoint.answer(Err(StoreError::Refused(reason)));
                }
                let from = index.max(self.cursor.purged_index + 1);
                let result = self.transact(Durability::Immediate, |transaction| {
                    let mut log = transaction.open_table(LOG)?;
                    log.retain_in(from.., |_, _| false)?;
                    Ok(())
                });
                if result.is_ok() {
                    // Rebuild the cursor from what is now stored.
                    match Store::read_cursor(&self.shared) {
                        Ok(cursor) => self.cursor = cursor,
                        Err(error) => {
                            tracing::error!(%error, "cannot reread the log after truncation")
                        }
                    }
                }
                done(result.map(|()| Committed::default()));
            }
            Job::CheckpointLater { stream, id, done } => {
                if self.poisoned.contains(&stream) {
                    done(Err(StoreError::Poisoned(stream)));
                } else {
                    // The group ahead is committed: the stream's last entry is the one it covers.
                    let index = self.cursor.last_index_of(&stream);
                    self.queue_checkpoint(PendingCheckpoint {
                        stream,
                        index,
                        state: None,
                        later_id: Some(id),
                        chunks_written: 0,
                        first_after: None,
                        done: Some((done, Committed::default())),
                    });
                }
            }
            Job::Sync { done } => {
                let result = self.transact(Durability::Immediate, |_| Ok(()));
                done(result.map(|()| Committed::default()));
            }
            Job::Stop => return true,
            Job::Batch { .. } | Job::Replicated { .. } | Job::CheckpointState { .. } => {
                unreachable!("taken in the group loop")
            }
        }
        false
    }

    /// Some pending checkpoint has its state and can be written.
    fn checkpoint_ready(&self) -> bool {
        self.checkpoints.iter().any(|checkpoint| checkpoint.state.is_some())
    }

    /// The state of a `checkpoint_later` checkpoint arrived (`None`: it never will). A checkpoint
    /// replaced by a newer one of its stream meanwhile is no longer pending: the state is dropped.
    fn fill_checkpoint(&mut self, id: u64, state: Option<Vec<u8>>) {
        let Some(position) = self.checkpoints.iter().position(|checkpoint| checkpoint.later_id == Some(id)) else {
            return;
        };
        match state {
            Some(state) => self.checkpoints[position].state = Some(state),
            None => {
                let checkpoint = self.checkpoints.remove(position).expect("position found");
                let reason = format!("checkpoint of '{}' abandoned: its state never came", checkpoint.stream);
                checkpoint.answer(Err(StoreError::Refused(reason)));
            }
        }
    }

    fn transact(
        &mut self,
        durability: Durability,
        work: impl FnOnce(&WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let mut transaction = self.shared.db.begin_write().map_err(|error| self.shared.io(error))?;
        transaction.set_durability(durability).map_err(|error| self.shared.io(error))?;
        work(&transaction).map_err(|error| self.shared.io(error))?;
        transaction.commit().map_err(|error| self.shared.io(error))?;
        self.unflushed = matches!(durability, Durability::None);
        if !self.unflushed {
            self.last_durable = Instant::now();
        }
        Ok(())
    }

    /// Commits the jobs of `group` (left empty, its capacity kept for the next group).
    fn commit_group(&mut self, group: &mut Vec<Queued>) {
        if group.is_empty() {
            return;
        }
        let started = Instant::now();
        // Callbacks are held outside the transaction so that every job is answered, however early
        // the transaction fails.
        let mut pending = std::mem::take(&mut self.buffers.pending);
        let mut batches = std::mem::take(&mut self.buffers.batches);
        for Queued { stream, writes, done, replicated } in group.drain(..) {
            if !replicated && self.poisoned.contains(&stream) {
                if let Some(done) = done {
                    done(Err(StoreError::Poisoned(stream)));
                }
            } else {
                pending.push(Pending { stream, done, committed: Committed::default(), replicated });
                batches.push(writes);
            }
        }
        if pending.is_empty() {
            self.buffers.pending = pending;
            self.buffers.batches = batches;
            return;
        }
        let job_count = pending.len() as u64;
        // Every job that waits for an answer gets exactly one (checked below, in release builds).
        let awaiting_answers = pending.iter().filter(|job| job.done.is_some()).count();
        let mut next_index = self.cursor.last_index;
        // What the group did to the log, in order: an append after a checkpoint of the same
        // stream in the same group is not covered by that checkpoint.
        let mut log_changes = std::mem::take(&mut self.buffers.log_changes);
        let mut frame = std::mem::take(&mut self.buffers.frame);
        // A group of checkpoints (and empty jobs) only writes nothing to the log: everything
        // submitted before it is durable already, so it needs no commit of its own.
        let writes_log = batches.iter().flatten().any(|write| !matches!(write, Write::Checkpoint { .. }));
        // Replicated jobs alone are not flushed (their own log is durable), unless the last flush
        // is too long ago; any other job makes the commit durable, and with it all before.
        let durable = pending.iter().any(|job| !job.replicated) || self.last_durable.elapsed() >= LAZY_FLUSH_INTERVAL;
        let result = (|| -> Result<(), redb::Error> {
            if !writes_log {
                for (position, (job, writes)) in pending.iter().zip(batches.drain(..)).enumerate() {
                    for write in writes {
                        if let Write::Checkpoint { state } = write {
                            let index = self.cursor.last_index_of(&job.stream);
                            log_changes.push(LogChange::Checkpointed(position, index, state));
                        }
                    }
                }
                return Ok(());
            }
            let mut transaction = self.shared.db.begin_write()?;
            if !durable {
                transaction.set_durability(Durability::None)?;
            }
            {
                let mut group_last_index: HashMap<&str, u64> = HashMap::new();
                let mut log = transaction.open_table(LOG)?;
                let mut records = transaction.open_table(RECORDS)?;
                let mut buyer_bookings = transaction.open_table(BUYER_BOOKINGS)?;
                for (position, (job, writes)) in pending.iter_mut().zip(batches.drain(..)).enumerate() {
                    let stream = job.stream.as_str();
                    for write in writes {
                        match write {
                            Write::Append { payload } => {
                                next_index += 1;
                                encode_entry_into(&mut frame, next_index, SINGLE_NODE_TERM, stream, &payload);
                                log.insert(next_index, frame.as_slice())?;
                                job.committed.indexes.push(next_index);
                                group_last_index.insert(stream, next_index);
                                log_changes.push(LogChange::Appended(position, next_index));
                            }
                            Write::Put { kind, key, value } => {
                                let sealed = frame::seal(&record_key(kind.as_str(), &key), &value);
                                records.insert((kind.as_str(), key.as_str()), sealed.as_slice())?;
                            }
                            Write::IndexBooking { buyer, booked_at_ms, booking_id } => {
                                buyer_bookings
                                    .insert((buyer.as_str(), u64::MAX - booked_at_ms, booking_id.as_str()), ())?;
                            }
                            Write::Checkpoint { state } => {
                                // Not written here: only once this commit is durable, in
                                // transactions of its own (`checkpoint_turn`).
                                let index = match group_last_index.get(stream) {
                                    Some(index) => *index,
                                    None => self.cursor.last_index_of(stream),
                                };
                                log_changes.push(LogChange::Checkpointed(position, index, state));
                            }
                        }
                    }
                }
            }
            transaction.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                if writes_log {
                    if durable {
                        self.unflushed = false;
                        self.last_durable = Instant::now();
                    } else {
                        self.unflushed = true;
                    }
                }
                let mut entries = 0u64;
                let mut answers = 0usize;
                for change in log_changes.drain(..) {
                    match change {
                        LogChange::Appended(position, index) => {
                            let stream = &pending[position].stream;
                            self.cursor.mark_appended(stream, index);
                            for checkpoint in &mut self.checkpoints {
                                if checkpoint.stream == *stream && checkpoint.first_after.is_none() {
                                    checkpoint.first_after = Some(index);
                                }
                            }
                            entries += 1;
                        }
                        LogChange::Checkpointed(position, index, state) => {
                            let job = &mut pending[position];
                            // A replicated job is answered at its commit: its log holds the
                            // checkpoint already, and its applier must not wait for the writing.
                            let done = if job.replicated {
                                None
                            } else {
                                job.done.take().map(|done| (done, job.committed.clone()))
                            };
                            answers += usize::from(done.is_some());
                            self.queue_checkpoint(PendingCheckpoint {
                                stream: job.stream.clone(),
                                index,
                                state: Some(state),
                                later_id: None,
                                chunks_written: 0,
                                first_after: None,
                                done,
                            });
                        }
                    }
                }
                if writes_log {
                    let stats = &self.shared.stats;
                    stats.commits.fetch_add(1, Ordering::Relaxed);
                    stats.jobs.fetch_add(job_count, Ordering::Relaxed);
                    stats.entries.fetch_add(entries, Ordering::Relaxed);
                    let micros = started.elapsed().as_micros() as u64;
                    stats.commit_micros.fetch_add(micros, Ordering::Relaxed);
                    stats.commit_micros_max.fetch_max(micros, Ordering::Relaxed);
                    metrics::histogram!("turnstile_log_commit_jobs").record(job_count as f64);
                    metrics::histogram!("turnstile_log_commit_seconds").record(started.elapsed().as_secs_f64());
                    metrics::counter!("turnstile_log_entries_total").increment(entries);
                }
                // One bounded piece of checkpoint writing per commit, before the callbacks: a
                // small checkpoint is stored before the jobs grouped with it are answered.
                if !self.checkpoints.is_empty() {
                    self.checkpoint_turn();
                }
                for job in pending.drain(..) {
                    if let Some(done) = job.done {
                        answers += 1;
                        done(Ok(job.committed));
                    }
                }
                assert_eq!(
                    answers, awaiting_answers,
                    "a commit answers each of its jobs once (or hands it to its checkpoint)"
                );
            }
            Err(error) => {
                let error = self.shared.io(error);
                tracing::error!(%error, jobs = pending.len(), "log commit failed; its streams are poisoned");
                for job in pending.drain(..) {
                    if !job.stream.is_empty() && !job.replicated {
                        self.poisoned.insert(job.stream.clone());
                    }
                    if let Some(done) = job.done {
                        done(Err(error.clone()));
                    }
                }
            }
        }
        // A failed transaction may leave some of them unconsumed.
        batches.clear();
        log_changes.clear();
        self.buffers.pending = pending;
        self.buffers.batches = batches;
        self.buffers.log_changes = log_changes;
        self.buffers.frame = frame;
    }

    /// Queues a checkpoint whose log entries are committed. A pending checkpoint of the same
    /// stream is replaced (and answered: the newer one covers everything it did); the chunks it
    /// had written are removed with the newer one's head.
    fn queue_checkpoint(&mut self, checkpoint: PendingCheckpoint) {
        match self.checkpoints.iter_mut().find(|pending| pending.stream == checkpoint.stream) {
            Some(pending) => std::mem::replace(pending, checkpoint).answer(Ok(())),
            None => self.checkpoints.push_back(checkpoint),
        }
    }

    /// Writes up to `CHECKPOINT_CHUNK_BYTES` of pending checkpoints (always at least one chunk)
    /// in one transaction that is not flushed on its own: it becomes durable with the next log
    /// commit. A checkpoint's head goes in the transaction of its last chunk; the checkpoints
    /// completed are then answered and the log behind them purged.
    fn checkpoint_turn(&mut self) {
        let started = Instant::now();
        // Positions in `checkpoints` of those stored by this turn, in increasing order.
        let mut completed = Vec::new();
        let mut budget = CHECKPOINT_CHUNK_BYTES;
        let mut bytes = 0u64;
        let checkpoints = &mut self.checkpoints;
        let mut transaction = match self.shared.db.begin_write() {
            Ok(transaction) => transaction,
            Err(error) => return self.fail_checkpoints(self.shared.io(error)),
        };
        if let Err(error) = transaction.set_durability(Durability::None) {
            return self.fail_checkpoints(self.shared.io(error));
        }
        let mut frame = Vec::new();
        let result = (|| -> Result<(), redb::Error> {
            let mut chunks = transaction.open_table(CHECKPOINT_CHUNKS)?;
            let mut heads = transaction.open_table(CHECKPOINT_HEADS)?;
            let mut legacy = transaction.open_table(CHECKPOINTS)?;
            // Oldest first; one still waiting for its state is passed over.
            let mut position = 0;
            while let Some(checkpoint) = checkpoints.get_mut(position) {
                position += 1;
                let Some(state) = &checkpoint.state else { continue };
                let count = PendingCheckpoint::chunk_count(state);
                while checkpoint.chunks_written < count {
                    let number = checkpoint.chunks_written;
                    let piece = PendingCheckpoint::chunk(state, number);
                    if piece.len() > budget && budget < CHECKPOINT_CHUNK_BYTES {
                        break;
                    }
                    let key = (checkpoint.stream.as_str(), checkpoint.index, number);
                    frame.clear();
                    frame::seal_into(&mut frame, &chunk_key(key), |body| body.extend_from_slice(piece));
                    chunks.insert(key, frame.as_slice())?;
                    budget = budget.saturating_sub(piece.len().max(1));
                    checkpoint.chunks_written += 1;
                }
                if checkpoint.chunks_written < count {
                    break;
                }
                let stream = checkpoint.stream.as_str();
                let head = encode_head(checkpoint.index, count, state.len() as u64);
                heads.insert(stream, frame::seal(stream.as_bytes(), &head).as_slice())?;
                legacy.remove(stream)?;
                // Chunks of earlier (or abandoned) checkpoints of the stream.
                chunks.retain_in((stream, 0, 0)..(stream, checkpoint.index, 0), |_, _| false)?;
                chunks.retain_in((stream, checkpoint.index + 1, 0)..=(stream, u64::MAX, u32::MAX), |_, _| false)?;
                bytes += state.len() as u64;
                completed.push(position - 1);
                if budget == 0 {
                    break;
                }
            }
            Ok(())
        })()
        .and_then(|()| Ok(transaction.commit()?));
        if let Err(error) = result {
            return self.fail_checkpoints(self.shared.io(error));
        }
        self.unflushed = true;
        let micros = started.elapsed().as_micros() as u64;
        self.shared.stats.checkpoint_micros.fetch_add(micros, Ordering::Relaxed);
        self.shared.stats.checkpoint_turn_micros_max.fetch_max(micros, Ordering::Relaxed);
        metrics::histogram!("turnstile_checkpoint_turn_seconds").record(started.elapsed().as_secs_f64());
        if completed.is_empty() {
            return;
        }
        let stats = &self.shared.stats;
        stats.checkpoints.fetch_add(completed.len() as u64, Ordering::Relaxed);
        stats.checkpoint_bytes.fetch_add(bytes, Ordering::Relaxed);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as u64)
            .unwrap_or(0);
        stats.last_checkpoint_unix_ms.store(now_ms, Ordering::Relaxed);
        let mut stored = Vec::with_capacity(completed.len());
        for position in completed.into_iter().rev() {
            stored.push(self.checkpoints.remove(position).expect("a stored checkpoint is pending"));
        }
        stored.reverse();
        for checkpoint in &stored {
            self.cursor.mark_checkpointed(&checkpoint.stream, checkpoint.first_after);
        }
        self.purge();
        for checkpoint in stored {
            checkpoint.answer(Ok(()));
        }
    }

    /// A checkpoint transaction failed: nothing of it is stored and the log behind it stays.
    /// Every pending checkpoint is answered with the error (its owner rebuilds).
    fn fail_checkpoints(&mut self, error: StoreError) {
        tracing::error!(%error, checkpoints = self.checkpoints.len(), "checkpoint write failed");
        for checkpoint in std::mem::take(&mut self.checkpoints) {
            checkpoint.answer(Err(error.clone()));
        }
    }

    /// Drops entries that every stream's checkpoint covers. Not flushed on its own, like the
    /// checkpoints it follows: it becomes durable with the next log commit, never before them.
    fn purge(&mut self) {
        let bound = self.cursor.purge_bound();
        if bound <= self.cursor.purged_index {
            return;
        }
        let from = self.cursor.purged_index + 1;
        let result = self.transact(Durability::None, |transaction| {
            let mut log = transaction.open_table(LOG)?;
            log.retain_in(from..=bound, |_, _| false)?;
            let mut meta = transaction.open_table(META)?;
            let sealed = frame::seal(META_PURGED_INDEX.as_bytes(), &bound.to_le_bytes());
            meta.insert(META_PURGED_INDEX, sealed.as_slice())?;
            Ok(())
        });
        match result {
            Ok(()) => self.cursor.purged_index = bound,
            // Purging is housekeeping: the entries stay and the next checkpoint tries again.
            Err(error) => tracing::warn!(%error, "log purge failed"),
        }
    }
}
