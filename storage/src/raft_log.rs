//! The replication log of a node: one redb file holding, for every shard group the node takes part
//! in, its log entries, a few named values (vote, committed, purge point) and its current
//! state-machine snapshot.
//!
//! Like the [`Store`](crate::Store), it knows bytes, not meaning: the replication layer encodes
//! its entries, votes and snapshots, and this module keys them by group, frames them with a CRC
//! (see [`crate::frame`]) and keeps them durable. It lives beside the single-node command log, in
//! its own file, and shares nothing with it.
//!
//! Writes go through one writer thread that commits every job waiting in its queue in one
//! transaction (one fsync for many groups' appends). Jobs are applied in submission order, so the
//! writes of one group are never reordered. Reads open their own read transaction and see every
//! job whose callback has run.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::frame;
use crate::tables::{RAFT_LOG, RAFT_META, RAFT_META_COMMITTED, RAFT_META_PURGED, RAFT_META_VOTE, RAFT_SNAPSHOTS};
use crate::StoreError;

/// Jobs waiting for the writer before `submit` refuses more.
pub const QUEUE_DEPTH_MAX: usize = 16_384;
/// Jobs committed in one transaction at most.
pub const JOBS_PER_COMMIT_MAX: usize = 4_096;
/// Largest encoded log entry accepted.
pub const ENTRY_BYTES_MAX: usize = 16 << 20;
/// Largest encoded snapshot accepted.
pub const SNAPSHOT_BYTES_MAX: usize = 256 << 20;
/// Entries one read returns at most.
pub const READ_ENTRIES_MAX: usize = 65_536;
/// The names a group's `RAFT_META` values may have.
pub const META_NAMES: [&str; 3] = [RAFT_META_VOTE, RAFT_META_COMMITTED, RAFT_META_PURGED];

/// redb's page cache for this file: entries are read back mostly while they are recent.
const CACHE_BYTES: usize = 32 << 20;

/// One write of a group's job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftWrite {
    /// Stores an entry at `index`, replacing an entry already there.
    Append { index: u64, entry: Vec<u8> },
    /// Removes the entries from `index` on (conflict truncation).
    TruncateFrom { index: u64 },
    /// Removes the entries up to `index`, inclusive, and stores `purged` (the encoded id of the
    /// last purged entry) as the group's [`RAFT_META_PURGED`] in the same transaction.
    PurgeUpTo { index: u64, purged: Vec<u8> },
    /// Stores a named value of the group; `name` is one of [`META_NAMES`].
    PutMeta { name: &'static str, value: Vec<u8> },
    /// Replaces the group's snapshot.
    PutSnapshot { snapshot: Vec<u8> },
}

/// Runs on the writer thread once the job is durable (or has failed). Keep it short.
pub type RaftDone = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Job {
    group: u64,
    writes: Vec<RaftWrite>,
    done: RaftDone,
}

enum Message {
    Job(Job),
    /// A write that need not be durable at once: it rides with the next commit, or is committed
    /// on its own once nothing else came for [`LAZY_WRITE_DELAY`].
    Lazy(Job),
    Stop,
}

/// The longest a lazy write ([`RaftLog::submit_lazy`]) waits for a commit to ride with.
pub const LAZY_WRITE_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

struct Shared {
    db: Database,
    path: PathBuf,
    /// Declared after `db`, so dropped after it: says the file is closed.
    released: crate::released::ReleaseOnDrop,
}

impl Shared {
    fn io(&self, error: impl std::fmt::Display) -> StoreError {
        StoreError::Io { path: self.path.display().to_string(), reason: error.to_string() }
    }
}

/// The replication log of every group of a node. Cheap to share behind an `Arc`.
pub struct RaftLog {
    shared: Arc<Shared>,
    sender: SyncSender<Message>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

fn entry_key(group: u64, index: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&group.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

fn meta_key(group: u64, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + name.len());
    key.extend_from_slice(&group.to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

fn snapshot_key(group: u64) -> Vec<u8> {
    meta_key(group, "snapshot")
}

impl RaftLog {
    /// Opens (or creates) the replication log at `path` and starts its writer.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|error| StoreError::Io { path: dir.display().to_string(), reason: error.to_string() })?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|error| StoreError::Io { path: path.display().to_string(), reason: error.to_string() })?;
        let shared = Arc::new(Shared { db, path: path.to_path_buf(), released: Default::default() });
        {
            let transaction = shared.db.begin_write().map_err(|error| shared.io(error))?;
            for result in [
                transaction.open_table(RAFT_LOG).map(drop),
                transaction.open_table(RAFT_META).map(drop),
                transaction.open_table(RAFT_SNAPSHOTS).map(drop),
            ] {
                result.map_err(|error| shared.io(error))?;
            }
            transaction.commit().map_err(|error| shared.io(error))?;
        }
        let (sender, receiver) = sync_channel(QUEUE_DEPTH_MAX);
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("turnstile-raft-writer".into())
            .spawn(move || run_writer(&writer_shared, receiver))
            .map_err(|error| shared.io(error))?;
        Ok(Self { shared, sender, writer: Mutex::new(Some(writer)) })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Queues a group's writes; `done` runs once they are durable or have failed. Never blocks:
    /// when the queue is full, `done` runs at once with `StoreError::Full`. A job whose writes are
    /// out of bounds (an entry or snapshot too large, an unknown meta name) fails alone.
    pub fn submit(&self, group: u64, writes: Vec<RaftWrite>, done: RaftDone) {
        self.queue(group, writes, done, Message::Job);
    }

    /// Queues writes that need not be durable when this returns nor soon: they are committed with
    /// the next job's commit (or alone after [`LAZY_WRITE_DELAY`], or when the log stops), in
    /// order with the jobs submitted before them. For hints such as a group's committed point,
    /// which would otherwise cost an fsync of their own; `done` runs once they are committed.
    pub fn submit_lazy(&self, group: u64, writes: Vec<RaftWrite>, done: RaftDone) {
        self.queue(group, writes, done, Message::Lazy);
    }

    fn queue(&self, group: u64, writes: Vec<RaftWrite>, done: RaftDone, message: fn(Job) -> Message) {
        if let Err(error) = check_writes(group, &writes) {
            done(Err(error));
            return;
        }
        let refused = match self.sender.try_send(message(Job { group, writes, done })) {
            Ok(()) => return,
            Err(TrySendError::Full(message)) => (message, StoreError::Full),
            Err(TrySendError::Disconnected(message)) => (message, StoreError::Stopped),
        };
        match refused {
            (Message::Job(job) | Message::Lazy(job), error) => (job.done)(Err(error)),
            (Message::Stop, _) => unreachable!("a job was sent"),
        }
    }

    /// Submits and waits on the calling thread. For start-up, tools and tests, not async code.
    pub fn write_blocking(&self, group: u64, writes: Vec<RaftWrite>) -> Result<(), StoreError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        self.submit(group, writes, Box::new(move |result| drop(sender.send(result))));
        receiver.recv().map_err(|_| StoreError::Stopped)?
    }

    /// The group's entries with indexes in `range`, in order, at most `limit` (and at most
    /// [`READ_ENTRIES_MAX`]) of them. Missing entries are skipped, not reported.
    pub fn entries(
        &self,
        group: u64,
        range: (Bound<u64>, Bound<u64>),
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let shared = &self.shared;
        let limit = limit.min(READ_ENTRIES_MAX);
        let start = match range.0 {
            Bound::Included(index) => index,
            Bound::Excluded(index) => match index.checked_add(1) {
                Some(next) => next,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let end = match range.1 {
            Bound::Included(index) => Bound::Included((group, index)),
            Bound::Excluded(index) => Bound::Excluded((group, index)),
            Bound::Unbounded => Bound::Included((group, u64::MAX)),
        };
        let empty = match end {
            Bound::Included((_, last)) => start > last,
            Bound::Excluded((_, end)) => start >= end,
            Bound::Unbounded => false,
        };
        if empty || limit == 0 {
            return Ok(Vec::new());
        }
        let transaction = shared.db.begin_read().map_err(|error| shared.io(error))?;
        let log = transaction.open_table(RAFT_LOG).map_err(|error| shared.io(error))?;
        let mut entries = Vec::new();
        for item in log.range::<(u64, u64)>((Bound::Included((group, start)), end)).map_err(|error| shared.io(error))? {
            let (key, value) = item.map_err(|error| shared.io(error))?;
            let (_, index) = key.value();
            entries.push((index, open_entry(shared, group, index, value.value())?));
            if entries.len() == limit {
                break;
            }
        }
        Ok(entries)
    }

    /// The group's last entry, if it has any.
    pub fn last_entry(&self, group: u64) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let shared = &self.shared;
        let transaction = shared.db.begin_read().map_err(|error| shared.io(error))?;
        let log = transaction.open_table(RAFT_LOG).map_err(|error| shared.io(error))?;
        let mut range = log.range((group, 0)..=(group, u64::MAX)).map_err(|error| shared.io(error))?;
        match range.next_back() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item.map_err(|error| shared.io(error))?;
                let (_, index) = key.value();
                Ok(Some((index, open_entry(shared, group, index, value.value())?)))
            }
        }
    }

    /// A named value of the group (one of [`META_NAMES`]).
    pub fn meta(&self, group: u64, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let shared = &self.shared;
        let transaction = shared.db.begin_read().map_err(|error| shared.io(error))?;
        let meta = transaction.open_table(RAFT_META).map_err(|error| shared.io(error))?;
        let Some(value) = meta.get((group, name)).map_err(|error| shared.io(error))? else {
            return Ok(None);
        };
        let what = format!("{} group {group} {name}", shared.path.display());
        Ok(Some(frame::open(&meta_key(group, name), value.value(), &what)?.to_vec()))
    }

    /// The group's current snapshot.
    pub fn snapshot(&self, group: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let shared = &self.shared;
        let transaction = shared.db.begin_read().map_err(|error| shared.io(error))?;
        let snapshots = transaction.open_table(RAFT_SNAPSHOTS).map_err(|error| shared.io(error))?;
        let Some(value) = snapshots.get(group).map_err(|error| shared.io(error))? else {
            return Ok(None);
        };
        let what = format!("{} group {group} snapshot", shared.path.display());
        Ok(Some(frame::open(&snapshot_key(group), value.value(), &what)?.to_vec()))
    }

    /// Every group with anything stored: a restarted node rejoins these.
    pub fn groups(&self) -> Result<BTreeSet<u64>, StoreError> {
        let shared = &self.shared;
        let transaction = shared.db.begin_read().map_err(|error| shared.io(error))?;
        let mut groups = BTreeSet::new();
        let meta = transaction.open_table(RAFT_META).map_err(|error| shared.io(error))?;
        for item in meta.iter().map_err(|error| shared.io(error))? {
            groups.insert(item.map_err(|error| shared.io(error))?.0.value().0);
        }
        let snapshots = transaction.open_table(RAFT_SNAPSHOTS).map_err(|error| shared.io(error))?;
        for item in snapshots.iter().map_err(|error| shared.io(error))? {
            groups.insert(item.map_err(|error| shared.io(error))?.0.value());
        }
        // The log is large: jump from group to group instead of reading every entry.
        let log = transaction.open_table(RAFT_LOG).map_err(|error| shared.io(error))?;
        let mut from = 0u64;
        loop {
            let mut range = log.range((from, 0)..).map_err(|error| shared.io(error))?;
            let Some(item) = range.next() else { break };
            let group = item.map_err(|error| shared.io(error))?.0.value().0;
            groups.insert(group);
            match group.checked_add(1) {
                Some(next) => from = next,
                None => break,
            }
        }
        Ok(groups)
    }

    /// What says when the file is closed (see [`crate::Released`]).
    pub fn released(&self) -> crate::Released {
        self.shared.released.signal()
    }

    /// Stops the writer after the jobs already queued.
    pub fn close(&self) {
        let _ = self.sender.send(Message::Stop);
        if let Some(writer) = self.writer.lock().expect("writer handle").take() {
            let _ = writer.join();
        }
    }
}

impl Drop for RaftLog {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_entry(shared: &Shared, group: u64, index: u64, stored: &[u8]) -> Result<Vec<u8>, StoreError> {
    let what = format!("{} group {group} log entry {index}", shared.path.display());
    Ok(frame::open(&entry_key(group, index), stored, &what)?.to_vec())
}

fn check_writes(group: u64, writes: &[RaftWrite]) -> Result<(), StoreError> {
    let refuse = |reason: String| StoreError::Refused(format!("group {group}: {reason}"));
    for write in writes {
        match write {
            RaftWrite::Append { index, entry } if entry.len() > ENTRY_BYTES_MAX => {
                return Err(refuse(format!(
                    "log entry {index} is {} bytes, over the {ENTRY_BYTES_MAX}-byte bound",
                    entry.len()
                )));
            }
            RaftWrite::PutSnapshot { snapshot } if snapshot.len() > SNAPSHOT_BYTES_MAX => {
                return Err(refuse(format!(
                    "snapshot is {} bytes, over the {SNAPSHOT_BYTES_MAX}-byte bound",
                    snapshot.len()
                )));
            }
            RaftWrite::PutMeta { name, .. } if !META_NAMES.contains(name) => {
                return Err(refuse(format!("'{name}' is not a replication meta name")));
            }
            _ => {}
        }
    }
    Ok(())
}

fn run_writer(shared: &Shared, receiver: Receiver<Message>) {
    let mut stopping = false;
    // Lazy jobs waiting for a commit, in order with the others (a group keeps its order).
    let mut group = Vec::new();
    while !stopping {
        let first = if group.is_empty() {
            match receiver.recv() {
                Ok(message) => message,
                Err(_) => break,
            }
        } else {
            match receiver.recv_timeout(LAZY_WRITE_DELAY) {
                Ok(message) => message,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    commit(shared, std::mem::take(&mut group));
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        };
        let mut durable = false;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Job(job) => {
                    durable = true;
                    group.push(job);
                }
                Message::Lazy(job) => group.push(job),
                Message::Stop => stopping = true,
            }
            if !stopping && group.len() < JOBS_PER_COMMIT_MAX {
                next = receiver.try_recv().ok();
            }
        }
        if durable || stopping || group.len() >= JOBS_PER_COMMIT_MAX {
            commit(shared, std::mem::take(&mut group));
        }
    }
    commit(shared, group);
}

fn commit(shared: &Shared, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let result = (|| -> Result<(), redb::Error> {
        let transaction = shared.db.begin_write()?;
        for job in &jobs {
            write_job(&transaction, job)?;
        }
        transaction.commit()?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            metrics::histogram!("turnstile_raft_log_commit_jobs").record(jobs.len() as f64);
            metrics::histogram!("turnstile_raft_log_commit_seconds").record(started.elapsed().as_secs_f64());
            for job in jobs {
                (job.done)(Ok(()));
            }
        }
        Err(error) => {
            let error = shared.io(error);
            tracing::error!(%error, jobs = jobs.len(), "replication log commit failed");
            for job in jobs {
                (job.done)(Err(error.clone()));
            }
        }
    }
}

fn write_job(transaction: &WriteTransaction, job: &Job) -> Result<(), redb::Error> {
    let group = job.group;
    let mut log = transaction.open_table(RAFT_LOG)?;
    let mut meta = transaction.open_table(RAFT_META)?;
    let mut snapshots = transaction.open_table(RAFT_SNAPSHOTS)?;
    for write in &job.writes {
        match write {
            RaftWrite::Append { index, entry } => {
                let sealed = frame::seal(&entry_key(group, *index), entry);
                log.insert((group, *index), sealed.as_slice())?;
            }
            RaftWrite::TruncateFrom { index } => {
                log.retain_in((group, *index)..=(group, u64::MAX), |_, _| false)?;
            }
            RaftWrite::PurgeUpTo { index, purged } => {
                log.retain_in((group, 0)..=(group, *index), |_, _| false)?;
                let sealed = frame::seal(&meta_key(group, RAFT_META_PURGED), purged);
                meta.insert((group, RAFT_META_PURGED), sealed.as_slice())?;
            }
            RaftWrite::PutMeta { name, value } => {
                let sealed = frame::seal(&meta_key(group, name), value);
                meta.insert((group, *name), sealed.as_slice())?;
            }
            RaftWrite::PutSnapshot { snapshot } => {
                let sealed = frame::seal(&snapshot_key(group), snapshot);
                snapshots.insert(group, sealed.as_slice())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, RaftLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = RaftLog::open(&dir.path().join(crate::RAFT_DATABASE_FILE)).unwrap();
        (dir, log)
    }

    fn append(index: u64, body: &str) -> RaftWrite {
        RaftWrite::Append { index, entry: body.as_bytes().to_vec() }
    }

    fn indexes(log: &RaftLog, group: u64) -> Vec<u64> {
        log.entries(group, (Bound::Unbounded, Bound::Unbounded), usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(index, _)| index)
            .collect()
    }

    #[test]
    fn groups_keep_their_own_entries_through_truncation_and_purge() {
        let (_dir, log) = open();
        log.write_blocking(1, (1..=5).map(|index| append(index, "a")).collect()).unwrap();
        log.write_blocking(2, (1..=3).map(|index| append(index, "b")).collect()).unwrap();
        log.write_blocking(1, vec![RaftWrite::TruncateFrom { index: 4 }]).unwrap();
        log.write_blocking(2, vec![RaftWrite::PurgeUpTo { index: 2, purged: b"p2".to_vec() }]).unwrap();

        assert_eq!(indexes(&log, 1), vec![1, 2, 3]);
        assert_eq!(indexes(&log, 2), vec![3]);
        assert_eq!(log.last_entry(1).unwrap(), Some((3, b"a".to_vec())));
        assert_eq!(log.last_entry(3).unwrap(), None);
        assert_eq!(log.meta(2, RAFT_META_PURGED).unwrap(), Some(b"p2".to_vec()));
        assert_eq!(log.meta(1, RAFT_META_PURGED).unwrap(), None);
        let some = log.entries(1, (Bound::Included(2), Bound::Excluded(3)), 10).unwrap();
        assert_eq!(some, vec![(2, b"a".to_vec())]);
        assert_eq!(log.entries(1, (Bound::Unbounded, Bound::Unbounded), 2).unwrap().len(), 2);
        assert!(log.entries(1, (Bound::Included(3), Bound::Excluded(3)), 10).unwrap().is_empty());
        assert_eq!(log.groups().unwrap(), BTreeSet::from([1, 2]));
    }

    #[test]
    fn everything_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::RAFT_DATABASE_FILE);
        {
            let log = RaftLog::open(&path).unwrap();
            log.write_blocking(
                7,
                vec![
                    append(1, "x"),
                    append(2, "y"),
                    RaftWrite::PutMeta { name: RAFT_META_VOTE, value: b"v".to_vec() },
                    RaftWrite::PutSnapshot { snapshot: b"s".to_vec() },
                ],
            )
            .unwrap();
            log.write_blocking(9, vec![RaftWrite::PutMeta { name: RAFT_META_COMMITTED, value: b"c".to_vec() }])
                .unwrap();
        }
        let log = RaftLog::open(&path).unwrap();
        assert_eq!(indexes(&log, 7), vec![1, 2]);
        assert_eq!(log.meta(7, RAFT_META_VOTE).unwrap(), Some(b"v".to_vec()));
        assert_eq!(log.snapshot(7).unwrap(), Some(b"s".to_vec()));
        assert_eq!(log.snapshot(9).unwrap(), None);
        assert_eq!(log.groups().unwrap(), BTreeSet::from([7, 9]));
    }

    #[test]
    fn out_of_bound_writes_are_refused_alone() {
        let (_dir, log) = open();
        let refused = log.write_blocking(1, vec![RaftWrite::PutMeta { name: "other", value: Vec::new() }]);
        assert!(matches!(refused, Err(StoreError::Refused(reason)) if reason.contains("'other'")));
        let large = vec![0; ENTRY_BYTES_MAX + 1];
        let refused = log.write_blocking(1, vec![append(1, "ok"), RaftWrite::Append { index: 2, entry: large }]);
        assert!(matches!(refused, Err(StoreError::Refused(reason)) if reason.contains("log entry 2")));
        assert!(indexes(&log, 1).is_empty(), "a refused job writes nothing");
        log.write_blocking(1, vec![append(1, "ok")]).unwrap();
        assert_eq!(indexes(&log, 1), vec![1]);
    }

    #[test]
    fn a_damaged_entry_is_reported_with_its_group_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::RAFT_DATABASE_FILE);
        {
            let log = RaftLog::open(&path).unwrap();
            log.write_blocking(4, vec![append(1, "one")]).unwrap();
        }
        {
            // Store entry 1's frame under index 2: valid bytes under the wrong key.
            let db = Database::create(&path).unwrap();
            let transaction = db.begin_write().unwrap();
            {
                let mut table = transaction.open_table(RAFT_LOG).unwrap();
                let frame = table.get((4, 1)).unwrap().unwrap().value().to_vec();
                table.insert((4, 2), frame.as_slice()).unwrap();
            }
            transaction.commit().unwrap();
        }
        let log = RaftLog::open(&path).unwrap();
        let error = log.last_entry(4).unwrap_err();
        assert!(matches!(&error, StoreError::Corrupt { what, .. } if what.contains("group 4 log entry 2")), "{error}");
    }
}
