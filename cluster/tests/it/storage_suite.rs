//! openraft's own storage test suite, run on a group's log store and state machine in a redb
//! replication log, and what a restart keeps.

use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{RaftLogReader, RaftSnapshotBuilder, StorageError};
use turnstile_cluster::{CommandJournal, LogStore, StateMachine, TypeConfig};
use turnstile_storage::{RaftLog, RaftWrite};

/// Each suite case gets a fresh file in which another group already has entries, so the suite
/// also checks that a group never sees its neighbours' log.
struct Builder;

const GROUP: u64 = 7;
const NEIGHBOUR: u64 = 6;

impl StoreBuilder<TypeConfig, LogStore, StateMachine<CommandJournal>, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine<CommandJournal>), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = Arc::new(RaftLog::open(&dir.path().join(turnstile_storage::RAFT_DATABASE_FILE)).expect("open"));
        let neighbour = (0..=30).map(|index| RaftWrite::Append { index, entry: b"not an entry".to_vec() }).collect();
        log.write_blocking(NEIGHBOUR, neighbour).expect("neighbour entries");
        let log_store = LogStore::new(log.clone(), GROUP);
        let state_machine = StateMachine::open(log, GROUP, CommandJournal::new(1_000)).await?;
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn the_openraft_storage_suite_passes() {
    Suite::test_all(Builder).expect("storage suite");
}

#[test]
fn a_reopened_group_keeps_its_log_vote_committed_point_and_snapshot() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(turnstile_storage::RAFT_DATABASE_FILE);
        let vote = openraft::Vote::new_committed(3, 11);
        let log_id = openraft::LogId::new(openraft::CommittedLeaderId::new(3, 11), 2);
        let snapshot_meta = {
            let log = Arc::new(RaftLog::open(&path).unwrap());
            let mut store = LogStore::new(log.clone(), GROUP);
            store.save_vote(&vote).await.unwrap();
            store.save_committed(Some(log_id)).await.unwrap();
            let mut machine = StateMachine::open(log.clone(), GROUP, CommandJournal::new(10)).await.unwrap();
            let entries: Vec<turnstile_cluster::types::Entry> = (1..=2)
                .map(|index| openraft::Entry {
                    log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(3, 11), index),
                    payload: openraft::EntryPayload::Normal(turnstile_cluster::Command(vec![index as u8])),
                })
                .collect();
            let replies = machine.apply(entries).await.unwrap();
            assert_eq!(replies.len(), 2);
            let snapshot = machine.get_snapshot_builder().await.build_snapshot().await.unwrap();
            assert_eq!(snapshot.meta.last_log_id, Some(log_id));
            snapshot.meta
        };
        let log = Arc::new(RaftLog::open(&path).unwrap());
        let mut store = LogStore::new(log.clone(), GROUP);
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id));
        assert!(store.try_get_log_entries(0..10).await.unwrap().is_empty());
        let journal = CommandJournal::new(10);
        let mut machine = StateMachine::open(log, GROUP, journal.clone()).await.unwrap();
        assert_eq!(machine.applied_state().await.unwrap().0, Some(log_id));
        assert_eq!(machine.get_current_snapshot().await.unwrap().map(|snapshot| snapshot.meta), Some(snapshot_meta));
        // The applier got its state back from the snapshot.
        assert_eq!(journal.applied(), 2);
        assert_eq!(journal.recent(), vec![(1, vec![1]), (2, vec![2])]);
    });
}

#[test]
fn a_snapshot_the_applier_cannot_read_is_refused_and_not_kept() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(RaftLog::open(&dir.path().join(turnstile_storage::RAFT_DATABASE_FILE)).unwrap());
        let journal = CommandJournal::new(10);
        let mut machine = StateMachine::open(log.clone(), GROUP, journal.clone()).await.unwrap();
        let meta = openraft::SnapshotMeta {
            last_log_id: Some(openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 9)),
            last_membership: openraft::StoredMembership::default(),
            snapshot_id: "garbage".to_string(),
        };
        let refused = machine.install_snapshot(&meta, Box::new(vec![0xff; 5])).await.unwrap_err();
        assert!(refused.to_string().contains("journal snapshot"), "{refused}");
        assert_eq!(machine.applied_state().await.unwrap().0, None);
        assert!(machine.get_current_snapshot().await.unwrap().is_none());
        assert_eq!(log.snapshot(GROUP).unwrap(), None);
        assert_eq!(journal.applied(), 0);
    });
}
