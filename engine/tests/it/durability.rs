//! A durable engine on a real redb file: what was acknowledged is there after reopening, holds
//! whose deadline passed while the engine was down are expired, and checkpoints let the log be
//! purged without changing what recovery rebuilds.

use crate::common;

use std::path::Path;
use std::time::Duration;

use turnstile_engine::engine::EngineOptions;
use turnstile_engine::ids::{BuyerId, EventId};
use turnstile_engine::inventory::{BookingStatus, HoldStatus, Selection};
use turnstile_engine::Engine;

use common::caller;

fn seat(id: &str) -> Selection {
    Selection::Seats(vec![id.to_string()])
}

async fn open(dir: &Path, options: EngineOptions) -> Engine {
    Engine::open(dir, options).await.unwrap()
}

async fn create_event(engine: &Engine, hold_ttl_ms: u64) -> EventId {
    common::create_event(engine, vec![common::reserved("S", &["A", "B"], 10)], Some(hold_ttl_ms), Some(20)).await
}

async fn seat_counts(engine: &Engine, event_id: &EventId) -> (u32, u32, u32) {
    let details = engine.event_details(event_id, false).await.unwrap();
    let row = &details.overview.availability[0];
    (row.available, row.held, row.booked)
}

#[tokio::test]
async fn acknowledged_changes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), EngineOptions::default()).await;
    let event_id = create_event(&engine, 600_000).await;
    let held = engine.place_hold(caller("ann"), &event_id, seat("S:A:1"), Some("k1".into())).await.unwrap();
    let to_book = engine.place_hold(caller("bob"), &event_id, seat("S:A:2"), None).await.unwrap();
    let booking = engine.confirm_hold(caller("bob"), &to_book.hold_id, "pay-1".into(), None).await.unwrap();
    let to_cancel = engine.place_hold(caller("cat"), &event_id, seat("S:A:3"), None).await.unwrap();
    let cancelled = engine.confirm_hold(caller("cat"), &to_cancel.hold_id, "pay-2".into(), None).await.unwrap();
    engine.cancel_booking(caller("cat"), &cancelled.booking_id).await.unwrap();
    let version = engine.event_details(&event_id, false).await.unwrap().overview.version;
    engine.shutdown().await;
    drop(engine);

    let engine = open(dir.path(), EngineOptions::default()).await;
    assert_eq!(engine.catalog().event(&event_id).unwrap().name, "Concert");
    assert_eq!(seat_counts(&engine, &event_id).await, (18, 1, 1));
    assert_eq!(engine.event_details(&event_id, false).await.unwrap().overview.version, version);
    assert_eq!(engine.get_hold(caller("ann"), &held.hold_id).await.unwrap().status, HoldStatus::Active);
    assert_eq!(engine.get_booking(caller("bob"), &booking.booking_id).await.unwrap().status, BookingStatus::Confirmed);
    let (listed, _) = engine.list_bookings(&BuyerId::new("cat"), None, 10).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, BookingStatus::Cancelled);
    // The idempotency key of the first hold survived too: a retry does not hold twice.
    let retried = engine.place_hold(caller("ann"), &event_id, seat("S:A:1"), Some("k1".into())).await.unwrap();
    assert_eq!(retried.hold_id, held.hold_id);
    // New ids keep coming after the recovered ones.
    engine.place_hold(caller("dan"), &event_id, seat("S:B:1"), None).await.unwrap();
    assert_eq!(seat_counts(&engine, &event_id).await, (17, 2, 1));
    engine.shutdown().await;
}

#[tokio::test]
async fn holds_that_expired_while_down_are_expired_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), EngineOptions::default()).await;
    let event_id = create_event(&engine, 30_000).await;
    let hold = engine.place_hold(caller("ann"), &event_id, seat("S:A:1"), None).await.unwrap();
    engine.close().await.unwrap();
    // The node was down past the deadline: it comes back with its clock 30.1 s on.
    let down = EngineOptions { clock_ahead: Duration::from_millis(30_100), ..EngineOptions::default() };
    let engine = open(dir.path(), down).await;
    let mut status = HoldStatus::Active;
    for _ in 0..100 {
        status = engine.get_hold(caller("ann"), &hold.hold_id).await.unwrap().status;
        if status == HoldStatus::Expired {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, HoldStatus::Expired);
    assert_eq!(seat_counts(&engine, &event_id).await, (20, 0, 0));
    engine.shutdown().await;
}

#[tokio::test]
async fn checkpoints_purge_the_log_and_recovery_gives_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions { checkpoint_commands: 7, ..EngineOptions::default() };
    let engine = open(dir.path(), options.clone()).await;
    let event_id = create_event(&engine, 600_000).await;
    for number in 1..=10 {
        let who = format!("buyer{number}");
        let hold = engine.place_hold(caller(&who), &event_id, seat(&format!("S:A:{number}")), None).await.unwrap();
        if number % 2 == 0 {
            engine.confirm_hold(caller(&who), &hold.hold_id, format!("pay-{number}"), None).await.unwrap();
        } else if number % 3 == 0 {
            engine.release_hold(caller(&who), &hold.hold_id).await.unwrap();
        }
    }
    let before = engine.event_details(&event_id, true).await.unwrap().overview;
    let store = engine.store().unwrap().clone();
    // Checkpoints are encoded off the event's actor and stored a moment after the command that
    // triggered them (bounded wait: 5 s).
    for _ in 0..500 {
        if store.purged_index().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(store.purged_index().unwrap() > 0, "a checkpoint let the log be purged");
    assert!(store.log_len().unwrap() < 18, "the log holds only the tail after the checkpoint");
    drop(store);
    engine.shutdown().await;
    drop(engine);

    let engine = open(dir.path(), options).await;
    let after = engine.event_details(&event_id, true).await.unwrap().overview;
    assert_eq!(after.version, before.version);
    assert_eq!(after.availability, before.availability);
    assert_eq!(after.seats, before.seats);
    engine.shutdown().await;
}

/// The periodic sweep checkpoints a changed event the first time (nothing since it was loaded),
/// then not again until its last checkpoint is `checkpoint_max_age` old: a busy event's state is
/// not rewritten every sweep.
#[tokio::test]
async fn the_sweep_checkpoints_a_changed_event_once_per_max_age() {
    async fn hold_one(engine: &Engine, event_id: &EventId, number: u32) {
        let who = format!("sweep{number}");
        engine.place_hold(caller(&who), event_id, seat(&format!("S:B:{number}")), None).await.unwrap();
    }
    async fn checkpointed_index(engine: &Engine) -> Option<u64> {
        let checkpoints = engine.store().unwrap().checkpoints().unwrap();
        checkpoints.iter().map(|(_, index, _)| *index).max()
    }
    // Sweeps every 50 ms; the command-count trigger is out of reach.
    let sweeping = |max_age| EngineOptions {
        checkpoint_commands: 1_000_000,
        checkpoint_interval: Duration::from_millis(50),
        checkpoint_max_age: max_age,
        ..EngineOptions::default()
    };

    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), sweeping(Duration::from_secs(3_600))).await;
    let event_id = create_event(&engine, 600_000).await;
    hold_one(&engine, &event_id, 1).await;
    // The first sweep after the change checkpoints it (bounded wait: 5 s).
    let mut first = None;
    for _ in 0..100 {
        first = checkpointed_index(&engine).await;
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = first.expect("the first sweep checkpointed the changed event");
    // More changes and many sweeps later, the checkpoint is the same: it is younger than an hour.
    hold_one(&engine, &event_id, 2).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(checkpointed_index(&engine).await, Some(first), "no second checkpoint within the max age");
    engine.shutdown().await;
    drop(engine);

    // With a max age of zero every sweep checkpoints a changed event.
    let engine = open(dir.path(), sweeping(Duration::ZERO)).await;
    hold_one(&engine, &event_id, 3).await;
    let mut later = None;
    for _ in 0..100 {
        later = checkpointed_index(&engine).await.filter(|&index| index > first);
        if later.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(later.is_some(), "a sweep checkpointed the change past the max age");
    engine.shutdown().await;
}

/// A checkpoint by count also waits until the event's log since its last checkpoint is an eighth
/// (`CHECKPOINT_BYTES_PER_LOG_BYTE`) of that checkpoint: an event whose state is large (here its
/// seat array) is not rewritten every `checkpoint_commands` commands, and is once its log has
/// grown by that much.
#[tokio::test]
async fn a_large_state_is_checkpointed_once_its_log_has_grown_by_an_eighth_of_it() {
    async fn event_checkpoint(engine: &Engine, event_id: &EventId) -> Option<(u64, usize)> {
        let checkpoints = engine.store().unwrap().checkpoints().unwrap();
        checkpoints
            .into_iter()
            .find(|(stream, _, _)| stream == event_id.as_str())
            .map(|(_, at, state)| (at, state.len()))
    }
    /// Waits (5 s at most) for the event's checkpoint to cover more than `after`.
    async fn next_checkpoint(engine: &Engine, event_id: &EventId, after: u64) -> Option<(u64, usize)> {
        for _ in 0..500 {
            let checkpoint = event_checkpoint(engine, event_id).await;
            if checkpoint.is_some_and(|(at, _)| at > after) {
                return checkpoint;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions {
        checkpoint_commands: 20,
        checkpoint_interval: Duration::from_secs(24 * 3_600),
        ..EngineOptions::default()
    };
    let engine = open(dir.path(), options).await;
    let rows: Vec<String> = (1..=150).map(|row| format!("R{row}")).collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let event_id = common::create_event(&engine, vec![common::reserved("S", &rows, 1_000)], None, None).await;
    let mut commands = 0u64;
    let pair = |number: u64| {
        let engine = &engine;
        let event_id = &event_id;
        async move {
            let who = caller(&format!("b{}", number % 50));
            let hold = engine.place_hold(who.clone(), event_id, seat(&format!("S:R1:{}", number % 1_000 + 1)), None);
            let hold = hold.await.unwrap();
            engine.release_hold(who, &hold.hold_id).await.unwrap();
        }
    };
    // The first checkpoint comes after 20 commands: there was none before.
    for number in 0..10 {
        pair(number).await;
        commands += 2;
    }
    let (first_at, state_bytes) = next_checkpoint(&engine, &event_id, 0).await.expect("a first checkpoint by count");
    assert!(state_bytes > 150_000, "the state holds the 150,000-seat array: {state_bytes} bytes");
    // The size of this event's commands in the log, from the entries after the checkpoint.
    for number in 0..20 {
        pair(number).await;
        commands += 2;
    }
    let mut log_bytes = 0u64;
    engine
        .store()
        .unwrap()
        .for_each_entry::<turnstile_storage::StoreError>(first_at, |entry| {
            log_bytes += entry.payload.len() as u64;
            Ok(())
        })
        .unwrap();
    let bytes_per_command = log_bytes.max(1) / 40;
    // Enough commands for ten checkpoints by count, too few log bytes for a second one.
    let ratio = turnstile_engine::actor::CHECKPOINT_BYTES_PER_LOG_BYTE;
    let due_after = state_bytes as u64 / ratio / bytes_per_command.max(1);
    let short = (due_after / 2).max(200);
    while commands < 60 + short {
        pair(commands).await;
        commands += 2;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        event_checkpoint(&engine, &event_id).await.map(|(at, _)| at),
        Some(first_at),
        "checkpointed again after {commands} commands of about {bytes_per_command} bytes, state {state_bytes} bytes"
    );
    // Past a state's worth of log, the next one is taken.
    let enough = 60 + due_after * 2;
    while commands < enough {
        pair(commands).await;
        commands += 2;
    }
    let second = next_checkpoint(&engine, &event_id, first_at).await;
    assert!(second.is_some(), "no second checkpoint after {commands} commands (state {state_bytes} bytes)");
    engine.shutdown().await;
}
