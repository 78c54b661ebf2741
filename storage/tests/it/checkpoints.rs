//! Checkpoints are written after the log commit that precedes them, in pieces, in transactions of
//! their own: what a crash between the two leaves, what a job waits for while a large checkpoint
//! is written, corrupt pieces, a checkpoint replaced before it was stored.
//!
//! The crash tests run the store on a storage backend that keeps what a disk keeps through a
//! power cut: the bytes as of the last `sync_data`. A reopened image holds exactly what was
//! durable at that instant.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::StorageBackend;
use turnstile_storage::store::CHECKPOINT_CHUNK_BYTES;
use turnstile_storage::{Done, RecordKind, Store, StoreError, Write};

#[derive(Default)]
struct Bytes {
    live: Vec<u8>,
    durable: Vec<u8>,
}

/// A disk in memory whose power can be cut: `durable_image` is what a reboot would find.
#[derive(Clone, Default)]
struct Disk {
    bytes: Arc<Mutex<Bytes>>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Disk")
    }
}

impl Disk {
    fn with_image(image: Vec<u8>) -> Self {
        let disk = Disk::default();
        *disk.bytes.lock().unwrap() = Bytes { live: image.clone(), durable: image };
        disk
    }

    fn durable_image(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().durable.clone()
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.bytes.lock().unwrap().live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let bytes = self.bytes.lock().unwrap();
        let offset = offset as usize;
        let source = bytes
            .live
            .get(offset..offset + out.len())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(source);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.bytes.lock().unwrap().live.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let mut bytes = self.bytes.lock().unwrap();
        bytes.durable = bytes.live.clone();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut bytes = self.bytes.lock().unwrap();
        let end = offset as usize + data.len();
        if bytes.live.len() < end {
            bytes.live.resize(end, 0);
        }
        bytes.live[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
}

fn append(payload: &str) -> Write {
    Write::Append { payload: payload.as_bytes().to_vec() }
}

fn entries(store: &Store) -> Vec<(u64, String, String)> {
    let mut seen = Vec::new();
    store
        .for_each_entry::<StoreError>(0, |entry| {
            seen.push((entry.index, entry.stream, String::from_utf8(entry.payload).unwrap()));
            Ok(())
        })
        .unwrap();
    seen
}

fn reopen(image: Vec<u8>) -> Store {
    Store::open_with_backend(Disk::with_image(image), "rebooted").expect("the image opens")
}

/// A callback that sends its result to the returned receiver.
fn answered() -> (Done, Receiver<Result<turnstile_storage::Committed, StoreError>>) {
    let (sender, receiver) = channel();
    (Box::new(move |result| drop(sender.send(result))), receiver)
}

/// Submits a job whose callback parks the writer thread until the test lets it go, so the jobs
/// submitted meanwhile are taken as one group. Returns (parked, go on).
fn park_writer(store: &Store, stream: &str) -> (Receiver<()>, Sender<()>) {
    let (parked_sender, parked) = channel::<()>();
    let (go_on, wait) = channel::<()>();
    store.submit(
        stream,
        vec![append("park")],
        Box::new(move |result| {
            result.expect("the parking entry is stored");
            parked_sender.send(()).expect("the test waits");
            wait.recv().expect("the test lets the writer go on");
        }),
    );
    parked.recv().expect("the writer parked");
    (parked, go_on)
}

/// A power cut after the log commit of a job and before its checkpoint is durable: the reboot
/// finds the job's entries and no checkpoint (the log behind it not purged either), and writes on
/// from the right index. A cut after the next log commit finds the checkpoint and the purge.
#[test]
fn a_crash_between_the_log_commit_and_the_checkpoint_recovers_from_the_log() {
    let disk = Disk::default();
    let store = Store::open_with_backend(disk.clone(), "live").unwrap();
    store.write_blocking("a", vec![append("a1")]).unwrap(); // 1
    store.write_blocking("b", vec![append("b1")]).unwrap(); // 2
                                                            // One job: an entry, then a checkpoint of the state after it.
    assert_eq!(
        store.write_blocking("a", vec![append("a2"), Write::Checkpoint { state: b"A@3".to_vec() }]).unwrap().indexes,
        [3]
    );
    // Stored, as far as the running store is concerned: b's entry 2 keeps the log from 2 on.
    assert_eq!(store.checkpoints().unwrap(), [("a".to_string(), 3, b"A@3".to_vec())]);
    assert_eq!(store.purged_index().unwrap(), 1);

    // The power goes now: the entry's commit was flushed, the checkpoint's was not.
    let rebooted = reopen(disk.durable_image());
    assert!(rebooted.checkpoints().unwrap().is_empty(), "the checkpoint was durable with the log commit");
    assert_eq!(rebooted.purged_index().unwrap(), 0, "entries were purged behind a checkpoint that is not durable");
    assert_eq!(
        entries(&rebooted),
        [(1, "a".into(), "a1".into()), (2, "b".into(), "b1".into()), (3, "a".into(), "a2".into())]
    );
    assert_eq!(rebooted.write_blocking("a", vec![append("a3")]).unwrap().indexes, [4]);
    drop(rebooted);

    // The next log commit makes the checkpoint and the purge durable with it.
    store.write_blocking("b", vec![append("b2")]).unwrap(); // 4
    let rebooted = reopen(disk.durable_image());
    assert_eq!(rebooted.checkpoints().unwrap(), [("a".to_string(), 3, b"A@3".to_vec())]);
    assert_eq!(rebooted.purged_index().unwrap(), 1);
    assert_eq!(
        entries(&rebooted),
        [(2, "b".into(), "b1".into()), (3, "a".into(), "a2".into()), (4, "b".into(), "b2".into())]
    );
    // The rebooted store knows what the checkpoint covers: a checkpoint of b now frees the log
    // up to a's entry 3.
    rebooted.write_blocking("b", vec![Write::Checkpoint { state: b"B@4".to_vec() }]).unwrap();
    assert_eq!(rebooted.purged_index().unwrap(), 4);
}

/// A checkpoint larger than one piece is written over several turns: a job grouped with it is
/// answered after the first piece, before the checkpoint is stored, and the durable image at that
/// answer has the job's entry and none of the checkpoint. The checkpoint comes back whole.
#[test]
fn a_large_checkpoint_does_not_hold_up_the_jobs_grouped_with_it() {
    let disk = Disk::default();
    let store = Store::open_with_backend(disk.clone(), "live").unwrap();
    store.write_blocking("big", vec![append("b1")]).unwrap(); // 1
    let state: Vec<u8> = (0..CHECKPOINT_CHUNK_BYTES * 5 + 123).map(|byte| (byte % 251) as u8).collect();

    let (_, go_on) = park_writer(&store, "other"); // 2
    let checkpoint_stored = Arc::new(AtomicBool::new(false));
    let stored_flag = checkpoint_stored.clone();
    let (checkpoint_done, checkpoint_answer) = answered();
    store.submit(
        "big",
        vec![Write::Checkpoint { state: state.clone() }],
        Box::new(move |result| {
            stored_flag.store(true, Ordering::SeqCst);
            checkpoint_done(result);
        }),
    );
    // The job after it parks the writer again inside its callback, where the test looks around.
    let (parked_sender, parked) = channel::<(bool, Vec<u8>)>();
    let (let_go, wait) = channel::<()>();
    let flag = checkpoint_stored.clone();
    let watched = disk.clone();
    store.submit(
        "other",
        vec![append("o2")],
        Box::new(move |result| {
            assert_eq!(result.expect("the grouped entry is stored").indexes, [3]);
            parked_sender.send((flag.load(Ordering::SeqCst), watched.durable_image())).unwrap();
            wait.recv().unwrap();
        }),
    );
    go_on.send(()).unwrap();
    let (stored_before_answer, image_at_answer) = parked.recv_timeout(Duration::from_secs(10)).expect("answered");
    assert!(!stored_before_answer, "the job was answered only after the whole checkpoint was written");
    assert!(
        store.checkpoints().unwrap().is_empty(),
        "a checkpoint of {} pieces was stored in the turn after the log commit",
        state.len().div_ceil(CHECKPOINT_CHUNK_BYTES)
    );
    let_go.send(()).unwrap();

    checkpoint_answer.recv_timeout(Duration::from_secs(10)).expect("checkpoint answered").expect("stored");
    assert_eq!(store.checkpoints().unwrap(), [("big".to_string(), 1, state.clone())]);
    assert_eq!(store.stats().checkpoints.load(Ordering::Relaxed), 1);
    assert_eq!(store.stats().checkpoint_bytes.load(Ordering::Relaxed), state.len() as u64);

    // The durable image at the grouped job's answer: its entry, no checkpoint.
    let rebooted = reopen(image_at_answer);
    assert!(rebooted.checkpoints().unwrap().is_empty());
    assert_eq!(entries(&rebooted).last().unwrap(), &(3, "other".into(), "o2".into()));
    drop(rebooted);

    // After a clean stop everything is durable, the checkpoint whole.
    drop(store);
    let rebooted = reopen(disk.durable_image());
    assert_eq!(rebooted.checkpoints().unwrap(), [("big".to_string(), 1, state)]);
}

/// A newer checkpoint of a stream replaces one still waiting to be written: both jobs are
/// answered, the newer one is stored, and it does not cover the entry between them.
#[test]
fn a_newer_checkpoint_replaces_a_pending_one() {
    let store = Store::open_with_backend(Disk::default(), "live").unwrap();
    store.write_blocking("s", vec![append("s1")]).unwrap(); // 1
    let (_, go_on) = park_writer(&store, "t"); // 2
    let older_state = vec![7u8; CHECKPOINT_CHUNK_BYTES * 3];
    let (older_done, older) = answered();
    store.submit("s", vec![Write::Checkpoint { state: older_state }], older_done);
    let (entry_done, entry) = answered();
    store.submit("s", vec![append("s2")], entry_done); // 3
    let (newer_done, newer) = answered();
    store.submit("s", vec![Write::Checkpoint { state: b"S@3".to_vec() }], newer_done);
    let (tail_done, tail) = answered();
    store.submit("s", vec![append("s3")], tail_done); // 4
    go_on.send(()).unwrap();
    for receiver in [older, entry, newer, tail] {
        receiver.recv_timeout(Duration::from_secs(10)).expect("answered").expect("stored");
    }
    assert_eq!(store.checkpoints().unwrap(), [("s".to_string(), 3, b"S@3".to_vec())]);
    assert_eq!(store.stats().checkpoints.load(Ordering::Relaxed), 1, "the replaced checkpoint was written too");
    // t's entry 2 is not covered, so nothing could be purged; s's entry 4 stays after the checkpoint.
    store.write_blocking("t", vec![Write::Checkpoint { state: b"T@2".to_vec() }]).unwrap();
    assert_eq!(store.purged_index().unwrap(), 3);
    assert_eq!(entries(&store), [(4, "s".into(), "s3".into())]);
}

/// A damaged byte inside a checkpoint's second piece is reported with the stream and the piece.
#[test]
fn a_corrupt_checkpoint_chunk_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let needle = b"needle-in-the-second-chunk";
    {
        let store = Store::open(dir.path()).unwrap();
        store.write_blocking("s", vec![append("s1")]).unwrap();
        let mut state = vec![0u8; CHECKPOINT_CHUNK_BYTES + 1_000];
        state[CHECKPOINT_CHUNK_BYTES + 100..CHECKPOINT_CHUNK_BYTES + 100 + needle.len()].copy_from_slice(needle);
        store.write_blocking("s", vec![Write::Checkpoint { state }]).unwrap();
    }
    let path = dir.path().join(turnstile_storage::DATABASE_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let position = bytes.windows(needle.len()).position(|window| window == needle).expect("the state is in the file");
    bytes[position] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let error = match Store::open(dir.path()) {
        Err(error) => error,
        Ok(store) => store.checkpoints().unwrap_err(),
    };
    let message = error.to_string();
    assert!(message.contains("checkpoint of s") && message.contains("chunk 1"), "{message}");
}

/// A checkpoint whose state comes later covers exactly the entries submitted before it, however
/// many of its stream's entries are committed before the state arrives; those stay in the log and
/// the purge stops before them. Jobs behind it are answered without waiting for the state.
#[test]
fn a_later_checkpoint_covers_the_entries_submitted_before_it() {
    let disk = Disk::default();
    let store = Store::open_with_backend(disk.clone(), "live").unwrap();
    store.write_blocking("s", vec![append("s1")]).unwrap(); // 1
    store.write_blocking("s", vec![append("s2")]).unwrap(); // 2
    let (checkpoint_done, checkpoint) = answered();
    let filler = store.checkpoint_later("s", checkpoint_done);
    // Entries of the same stream submitted after it are committed and answered meanwhile.
    assert_eq!(store.write_blocking("s", vec![append("s3")]).unwrap().indexes, [3]);
    assert_eq!(store.write_blocking("s", vec![append("s4")]).unwrap().indexes, [4]);
    assert!(checkpoint.try_recv().is_err(), "answered before its state came");
    assert!(store.checkpoints().unwrap().is_empty());

    std::thread::spawn(move || filler.fill(b"S@2".to_vec())).join().unwrap();
    checkpoint.recv_timeout(Duration::from_secs(10)).expect("answered").expect("stored");
    assert_eq!(store.checkpoints().unwrap(), [("s".to_string(), 2, b"S@2".to_vec())]);
    assert_eq!(store.purged_index().unwrap(), 2);
    assert_eq!(entries(&store), [(3, "s".into(), "s3".into()), (4, "s".into(), "s4".into())]);

    // Durable with the next log commit, like any checkpoint.
    store.write_blocking("t", vec![append("t1")]).unwrap(); // 5
    let rebooted = reopen(disk.durable_image());
    assert_eq!(rebooted.checkpoints().unwrap(), [("s".to_string(), 2, b"S@2".to_vec())]);
    assert_eq!(entries(&rebooted).first().unwrap(), &(3, "s".into(), "s3".into()));
}

/// A filler dropped without a state abandons its checkpoint: the owner hears of it, nothing is
/// stored, nothing is purged, and the stream's next checkpoint is stored as usual.
#[test]
fn an_abandoned_later_checkpoint_stores_nothing() {
    let store = Store::open_with_backend(Disk::default(), "live").unwrap();
    store.write_blocking("s", vec![append("s1")]).unwrap(); // 1
    let (checkpoint_done, checkpoint) = answered();
    drop(store.checkpoint_later("s", checkpoint_done));
    let error = checkpoint.recv_timeout(Duration::from_secs(10)).expect("answered").unwrap_err();
    assert!(error.to_string().contains("abandoned"), "{error}");
    store.write_blocking("s", vec![append("s2")]).unwrap(); // 2
    assert!(store.checkpoints().unwrap().is_empty());
    assert_eq!(store.purged_index().unwrap(), 0);
    assert_eq!(entries(&store).len(), 2);

    store.write_blocking("s", vec![Write::Checkpoint { state: b"S@2".to_vec() }]).unwrap();
    assert_eq!(store.checkpoints().unwrap(), [("s".to_string(), 2, b"S@2".to_vec())]);
    assert_eq!(store.purged_index().unwrap(), 2);
}

/// A later checkpoint still waiting for its state does not hold up another stream's checkpoint
/// queued behind it, and a newer checkpoint of its own stream replaces it (its late state is then
/// dropped). A store stopped while one waits answers it with `Stopped` and stores nothing of it.
#[test]
fn a_waiting_later_checkpoint_holds_up_no_other() {
    let disk = Disk::default();
    let store = Store::open_with_backend(disk.clone(), "live").unwrap();
    store.write_blocking("s", vec![append("s1")]).unwrap(); // 1
    store.write_blocking("t", vec![append("t1")]).unwrap(); // 2
    let (first_done, first) = answered();
    let first_filler = store.checkpoint_later("s", first_done);
    store.write_blocking("t", vec![Write::Checkpoint { state: b"T@2".to_vec() }]).unwrap();
    assert_eq!(store.checkpoints().unwrap(), [("t".to_string(), 2, b"T@2".to_vec())]);

    store.write_blocking("s", vec![append("s2")]).unwrap(); // 3
    let (second_done, second) = answered();
    let second_filler = store.checkpoint_later("s", second_done);
    first.recv_timeout(Duration::from_secs(10)).expect("answered").expect("replaced by the newer one");
    first_filler.fill(b"S@1, late".to_vec());
    second_filler.fill(b"S@3".to_vec());
    second.recv_timeout(Duration::from_secs(10)).expect("answered").expect("stored");
    let mut stored = store.checkpoints().unwrap();
    stored.sort();
    assert_eq!(stored, [("s".to_string(), 3, b"S@3".to_vec()), ("t".to_string(), 2, b"T@2".to_vec())]);
    assert_eq!(store.purged_index().unwrap(), 3);

    store.write_blocking("s", vec![append("s3")]).unwrap(); // 4
    let (waiting_done, waiting) = answered();
    let waiting_filler = store.checkpoint_later("s", waiting_done);
    store.close();
    assert_eq!(waiting.recv_timeout(Duration::from_secs(10)).expect("answered"), Err(StoreError::Stopped));
    waiting_filler.fill(b"too late".to_vec());
    drop(store);
    let rebooted = reopen(disk.durable_image());
    let mut stored = rebooted.checkpoints().unwrap();
    stored.sort();
    assert_eq!(stored, [("s".to_string(), 3, b"S@3".to_vec()), ("t".to_string(), 2, b"T@2".to_vec())]);
    assert_eq!(entries(&rebooted), [(4, "s".into(), "s3".into())]);
}

/// What a replication layer applies (`submit_replicated`) is stored with its record of how far it
/// applied, in one transaction that is not flushed on its own: a power cut at any instant leaves
/// both or neither, never commands without their position or a position without its commands.
/// `sync` makes everything durable; so does the writer by itself once the lazy interval passes.
#[test]
fn replicated_jobs_and_their_applied_position_are_durable_together() {
    const GROUPS: u64 = 40;
    let disk = Disk::default();
    let store = Store::open_with_backend(disk.clone(), "live").unwrap();
    let mut images = Vec::new();
    for group in 1..=GROUPS {
        let (done, answer) = answered();
        let jobs = vec![
            ("evt_a".to_string(), vec![append(&format!("a{group}"))]),
            ("evt_b".to_string(), vec![append(&format!("b{group}"))]),
            (
                String::new(),
                vec![Write::Put {
                    kind: RecordKind::RaftAppliedState,
                    key: "g".into(),
                    value: group.to_le_bytes().to_vec(),
                }],
            ),
        ];
        assert!(store.submit_replicated(jobs, done).is_ok(), "the queue takes the jobs");
        answer.recv_timeout(Duration::from_secs(10)).expect("answered").expect("committed");
        // What a power cut right now would leave.
        images.push(disk.durable_image());
    }
    let check = |image: Vec<u8>| -> u64 {
        let rebooted = reopen(image);
        let applied = rebooted
            .record(RecordKind::RaftAppliedState, "g")
            .unwrap()
            .map(|bytes| u64::from_le_bytes(bytes.try_into().expect("eight bytes")))
            .unwrap_or(0);
        let expected: Vec<(u64, String, String)> = (1..=applied)
            .flat_map(|group| {
                [
                    (group * 2 - 1, "evt_a".to_string(), format!("a{group}")),
                    (group * 2, "evt_b".to_string(), format!("b{group}")),
                ]
            })
            .collect();
        assert_eq!(entries(&rebooted), expected, "the commands durable are exactly those of the position durable");
        applied
    };
    let mut last_durable = 0;
    for image in images {
        let applied = check(image);
        assert!(applied >= last_durable, "durable state only moves forward");
        last_durable = applied;
    }

    let (done, synced) = answered();
    store.sync(done);
    synced.recv_timeout(Duration::from_secs(10)).expect("answered").expect("synced");
    assert_eq!(check(disk.durable_image()), GROUPS, "a sync makes every replicated job durable");

    // Left alone, the writer flushes lazy commits within the interval.
    let (done, answer) = answered();
    let jobs = vec![
        ("evt_a".to_string(), vec![append(&format!("a{}", GROUPS + 1))]),
        ("evt_b".to_string(), vec![append(&format!("b{}", GROUPS + 1))]),
        (
            String::new(),
            vec![Write::Put {
                kind: RecordKind::RaftAppliedState,
                key: "g".into(),
                value: (GROUPS + 1).to_le_bytes().to_vec(),
            }],
        ),
    ];
    assert!(store.submit_replicated(jobs, done).is_ok());
    answer.recv_timeout(Duration::from_secs(10)).expect("answered").expect("committed");
    let deadline = std::time::Instant::now() + turnstile_storage::store::LAZY_FLUSH_INTERVAL * 10;
    while check(disk.durable_image()) != GROUPS + 1 {
        assert!(std::time::Instant::now() < deadline, "the writer flushed the lazy commit by itself");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A checkpoint among a replication layer's jobs is answered with their commit (its applier must
/// not wait for the checkpoint's pieces), and stored after it, covering the entries before it.
#[test]
fn a_checkpoint_among_replicated_jobs_is_answered_at_its_commit() {
    let store = Store::open_with_backend(Disk::default(), "live").unwrap();
    store.write_blocking("s", vec![append("s1")]).unwrap();
    let (done, answer) = answered();
    let jobs = vec![("s".to_string(), vec![append("s2"), Write::Checkpoint { state: b"S@2".to_vec() }])];
    assert!(store.submit_replicated(jobs, done).is_ok());
    answer.recv_timeout(Duration::from_secs(10)).expect("answered").expect("committed");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.checkpoints().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the checkpoint is stored after its commit");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(store.checkpoints().unwrap(), [("s".to_string(), 2, b"S@2".to_vec())]);
}
