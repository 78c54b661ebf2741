//! The store on real redb files: log order and indexes, group commit, checkpoints and purge,
//! records, corruption detection, backup and restore.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};

use turnstile_storage::store::JOBS_PER_COMMIT_MAX;
use turnstile_storage::{RecordKind, Store, StoreError, Write};

fn append(payload: &str) -> Write {
    Write::Append { payload: payload.as_bytes().to_vec() }
}

fn entries(store: &Store, after: u64) -> Vec<(u64, String, String)> {
    let mut seen = Vec::new();
    store
        .for_each_entry::<StoreError>(after, |entry| {
            seen.push((entry.index, entry.stream, String::from_utf8(entry.payload).unwrap()));
            Ok(())
        })
        .unwrap();
    seen
}

#[test]
fn entries_get_consecutive_indexes_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.write_blocking("a", vec![append("a1"), append("a2")]).unwrap().indexes, [1, 2]);
        assert_eq!(store.write_blocking("b", vec![append("b1")]).unwrap().indexes, [3]);
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.last_index().unwrap(), 3);
    assert_eq!(
        entries(&store, 0),
        [(1, "a".into(), "a1".into()), (2, "a".into(), "a2".into()), (3, "b".into(), "b1".into())]
    );
    assert_eq!(entries(&store, 2).len(), 1);
    assert_eq!(store.write_blocking("a", vec![append("a3")]).unwrap().indexes, [4]);
}

#[test]
fn concurrent_jobs_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let threads = 32;
    let per_thread = 50;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for round in 0..per_thread {
                    store.write_blocking(&format!("s{thread}"), vec![append(&format!("{thread}-{round}"))]).unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let stats = store.stats();
    let jobs = stats.jobs.load(Ordering::Relaxed);
    let commits = stats.commits.load(Ordering::Relaxed);
    assert_eq!(jobs, (threads * per_thread) as u64);
    assert!(commits < jobs, "{commits} commits for {jobs} jobs: no job shared a commit");
    // Each stream's entries are in the order that stream wrote them.
    let all = entries(&store, 0);
    assert_eq!(all.len(), threads * per_thread);
    for thread in 0..threads {
        let rounds: Vec<usize> = all
            .iter()
            .filter(|(_, stream, _)| *stream == format!("s{thread}"))
            .map(|(_, _, payload)| payload.split('-').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(rounds, (0..per_thread).collect::<Vec<_>>());
    }
}

/// Callbacks run in submission order, each once its entry can be read back, and every one has
/// run by the time `close` returns. More jobs than one commit takes, so they span commits however
/// the writer and this thread are scheduled (with 3,000 jobs, a writer that woke only after all
/// were queued took them in one commit, and the test's last assertion failed).
#[test]
fn callbacks_run_in_submission_order_after_their_commit_and_before_close_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let jobs = JOBS_PER_COMMIT_MAX as u64 + 500;
    let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
    for job in 0..jobs {
        let (answered, reader) = (answered.clone(), store.clone());
        store.submit(
            &format!("s{}", job % 7),
            vec![append(&job.to_string())],
            Box::new(move |result| {
                let index = result.unwrap().indexes[0];
                // What the callback reports is committed: a new read transaction sees it.
                let last = reader.last_index().unwrap();
                answered.lock().unwrap().push((job, index, last >= index));
            }),
        );
    }
    store.close();
    let answered = std::mem::take(&mut *answered.lock().unwrap());
    assert_eq!(answered.len() as u64, jobs, "every callback ran before close returned");
    for (position, (job, index, visible)) in answered.iter().enumerate() {
        assert_eq!(*job, position as u64, "callbacks in submission order");
        assert_eq!(*index, position as u64 + 1, "indexes in submission order");
        assert!(visible, "job {job}'s entry {index} was readable when its callback ran");
    }
    assert!(store.stats().commits.load(Ordering::Relaxed) > 1, "the jobs took more than one commit");
}

#[test]
fn checkpoints_let_the_log_be_purged_up_to_the_oldest_uncovered_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.write_blocking("a", vec![append("a1")]).unwrap(); // 1
    store.write_blocking("b", vec![append("b1")]).unwrap(); // 2
    store.write_blocking("a", vec![append("a2")]).unwrap(); // 3
    store.write_blocking("a", vec![Write::Checkpoint { state: b"A@3".to_vec() }]).unwrap();
    // b's entry 2 is not covered: only entry 1 can go.
    assert_eq!(store.purged_index().unwrap(), 1);
    assert_eq!(entries(&store, 0).first().unwrap().0, 2);
    store.write_blocking("b", vec![Write::Checkpoint { state: b"B@2".to_vec() }]).unwrap();
    assert_eq!(store.purged_index().unwrap(), 3);
    assert!(entries(&store, 0).is_empty());
    let mut checkpoints = store.checkpoints().unwrap();
    checkpoints.sort();
    assert_eq!(checkpoints, [("a".into(), 3, b"A@3".to_vec()), ("b".into(), 2, b"B@2".to_vec())]);
    drop(store);
    // Indexes continue after the purge point on reopening.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.write_blocking("a", vec![append("a3")]).unwrap().indexes, [4]);
}

#[test]
fn records_and_buyer_indexes_are_stored_and_paged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut writes = Vec::new();
    for number in 0..5u64 {
        writes.push(Write::Put { kind: RecordKind::Booking, key: format!("b{number}"), value: vec![number as u8] });
        writes.push(Write::IndexBooking {
            buyer: "ann".into(),
            booked_at_ms: 1_000 + number,
            booking_id: format!("b{number}"),
        });
    }
    writes.push(Write::Put { kind: RecordKind::Venue, key: "v1".into(), value: b"hall".to_vec() });
    store.write_blocking("", writes).unwrap();
    assert_eq!(store.records(RecordKind::Booking).unwrap().len(), 5);
    assert_eq!(store.record(RecordKind::Venue, "v1").unwrap().unwrap(), b"hall");
    assert_eq!(store.record(RecordKind::Venue, "v2").unwrap(), None);
    let first = store.buyer_bookings("ann", None, 2).unwrap();
    assert_eq!(first, [(1_004, "b4".to_string()), (1_003, "b3".to_string())]);
    let second = store.buyer_bookings("ann", Some((1_003, "b3")), 10).unwrap();
    assert_eq!(second.iter().map(|(_, id)| id.as_str()).collect::<Vec<_>>(), ["b2", "b1", "b0"]);
    assert!(store.buyer_bookings("bob", None, 10).unwrap().is_empty());
}

#[test]
fn vote_and_truncation_work_for_a_replication_layer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.read_vote().unwrap(), None);
    store.save_vote(b"term=3,node=2".to_vec()).unwrap();
    assert_eq!(store.read_vote().unwrap().unwrap(), b"term=3,node=2");
    for number in 0..5 {
        store.write_blocking("a", vec![append(&number.to_string())]).unwrap();
    }
    store.truncate_from(4).unwrap();
    assert_eq!(store.last_index().unwrap(), 3);
    assert_eq!(store.write_blocking("a", vec![append("new")]).unwrap().indexes, [4]);
}

#[test]
fn a_corrupt_entry_stops_reading_with_the_file_and_the_index() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.write_blocking("a", vec![append("first"), append("second-entry-payload")]).unwrap();
    }
    // Flip one byte of the second payload inside the file.
    let path = dir.path().join(turnstile_storage::DATABASE_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = b"second-entry-payload";
    let position = bytes.windows(needle.len()).position(|window| window == needle).expect("payload in file");
    bytes[position] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let error = match Store::open(dir.path()) {
        Err(error) => error,
        Ok(store) => store.for_each_entry::<StoreError>(0, |_| Ok(())).unwrap_err(),
    };
    let message = error.to_string();
    assert!(message.contains("turnstile.redb") && message.contains("log entry 2"), "{message}");
}

#[test]
fn backup_is_consistent_and_restores_into_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("live")).unwrap();
    store
        .write_blocking(
            "a",
            vec![append("1"), Write::Put { kind: RecordKind::Performer, key: "x".into(), value: b"v".to_vec() }],
        )
        .unwrap();
    let backup_path = dir.path().join("backups/one.redb");
    store.backup(&backup_path).unwrap();
    store.write_blocking("a", vec![append("after-backup")]).unwrap();
    assert!(store.backup(&backup_path).is_err(), "a backup never overwrites");

    let restored_dir = dir.path().join("restored");
    turnstile_storage::backup::restore(&backup_path, &restored_dir).unwrap();
    let restored = Store::open(&restored_dir).unwrap();
    assert_eq!(entries(&restored, 0), [(1, "a".into(), "1".into())]);
    assert_eq!(restored.record(RecordKind::Performer, "x").unwrap().unwrap(), b"v");
    assert!(turnstile_storage::backup::restore(&backup_path, &restored_dir).is_err(), "restore never overwrites");
}
