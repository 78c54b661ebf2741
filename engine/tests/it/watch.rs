//! Watching an event's seat map through the engine: every change in version order, resumption
//! from a version, snapshots when a watcher is too far behind or too slow, and what a restart keeps.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use turnstile_engine::engine::EngineOptions;
use turnstile_engine::feed::{EventWatch, SnapshotReason, WatchItem};
use turnstile_engine::ids::EventId;
use turnstile_engine::inventory::{SeatStatus, Selection};
use turnstile_engine::limits;
use turnstile_engine::Engine;

const TTL_MS: u64 = 60_000;

async fn event(engine: &Engine) -> EventId {
    let sections = vec![common::reserved("S", &["A", "B", "C", "D"], 10), common::general("GA", 50)];
    common::create_event(engine, sections, Some(TTL_MS), Some(1_000)).await
}

use common::caller;

fn seats(ids: &[&str]) -> Selection {
    Selection::Seats(ids.iter().map(|id| id.to_string()).collect())
}

/// What a watcher knows: seat statuses and per-section (held, booked), at a version.
#[derive(Debug, Default, PartialEq)]
struct Mirror {
    version: u64,
    seats: HashMap<String, SeatStatus>,
    sections: HashMap<String, (u32, u32)>,
}

impl Mirror {
    /// Applies one watch item; a change must follow the mirror's version directly.
    fn apply(&mut self, item: &WatchItem) {
        match item {
            WatchItem::Snapshot { overview, .. } => {
                self.version = overview.version;
                self.seats = overview.seats.iter().flatten().cloned().collect();
                self.sections =
                    overview.availability.iter().map(|row| (row.section_id.clone(), (row.held, row.booked))).collect();
            }
            WatchItem::Change(change) => {
                assert_eq!(change.version, self.version + 1, "a change skipped or repeated a version");
                self.version = change.version;
                for (seat_id, status) in &change.seats {
                    assert!(self.seats.insert(seat_id.clone(), *status).is_some(), "unknown seat {seat_id}");
                }
                for row in &change.availability {
                    self.sections.insert(row.section_id.clone(), (row.held, row.booked));
                }
            }
        }
    }

    /// The event as its actor sees it now.
    async fn truth(engine: &Engine, event_id: &EventId) -> Self {
        let overview = engine.event_details(event_id, true).await.unwrap().overview;
        let mut mirror = Mirror::default();
        mirror.apply(&WatchItem::Snapshot { overview, reason: SnapshotReason::Initial });
        mirror
    }
}

async fn next(watch: &mut EventWatch) -> WatchItem {
    tokio::time::timeout(Duration::from_secs(10), watch.next()).await.expect("a watch item in time").unwrap()
}

#[tokio::test]
async fn every_change_arrives_in_order_and_rebuilds_the_seat_map() {
    let engine = Engine::new();
    let event_id = event(&engine).await;
    let (mut watch, _permit) = engine.watch_event(&event_id, 0).await.unwrap();
    let mut mirror = Mirror::default();
    let first = next(&mut watch).await;
    assert!(matches!(first, WatchItem::Snapshot { reason: SnapshotReason::Initial, .. }), "{first:?}");
    mirror.apply(&first);
    assert_eq!(mirror.seats.len(), 40);

    let ann = engine.place_hold(caller("ann"), &event_id, seats(&["S:A:1", "S:A:2"]), None).await.unwrap();
    let item = next(&mut watch).await;
    let WatchItem::Change(change) = &item else { panic!("expected a change, got {item:?}") };
    let mut changed = change.seats.clone();
    changed.sort_by(|left, right| left.0.cmp(&right.0));
    assert_eq!(changed, vec![("S:A:1".into(), SeatStatus::Held), ("S:A:2".into(), SeatStatus::Held)]);
    assert_eq!(change.availability.len(), 1);
    assert_eq!((change.availability[0].section_id.as_str(), change.availability[0].held), ("S", 2));
    mirror.apply(&item);

    let general = Selection::BestAvailable { section_id: "GA".into(), quantity: 3 };
    let bob = engine.place_hold(caller("bob"), &event_id, general, None).await.unwrap();
    let item = next(&mut watch).await;
    let WatchItem::Change(change) = &item else { panic!("expected a change, got {item:?}") };
    assert!(change.seats.is_empty(), "general admission has no seat ids");
    assert_eq!((change.availability[0].section_id.as_str(), change.availability[0].available), ("GA", 47));
    mirror.apply(&item);

    let booking = engine.confirm_hold(caller("ann"), &ann.hold_id, "pay-1".into(), None).await.unwrap();
    engine.release_hold(caller("bob"), &bob.hold_id).await.unwrap();
    engine.cancel_booking(caller("ann"), &booking.booking_id).await.unwrap();
    for expected in [SeatStatus::Booked, SeatStatus::Available, SeatStatus::Available] {
        let item = next(&mut watch).await;
        if let WatchItem::Change(change) = &item {
            if !change.seats.is_empty() {
                assert!(change.seats.iter().all(|(_, status)| *status == expected), "{change:?}");
            }
        }
        mirror.apply(&item);
    }
    assert_eq!(mirror, Mirror::truth(&engine, &event_id).await);
}

#[tokio::test]
async fn a_watcher_resumes_from_its_version_and_too_old_a_version_gets_a_snapshot() {
    let engine = Engine::new();
    let event_id = event(&engine).await;
    let (mut watch, _permit) = engine.watch_event(&event_id, 0).await.unwrap();
    let mut mirror = Mirror::default();
    mirror.apply(&next(&mut watch).await);
    engine.place_hold(caller("ann"), &event_id, seats(&["S:A:1"]), None).await.unwrap();
    mirror.apply(&next(&mut watch).await);
    drop(watch);

    // Missed while away: three changes.
    let hold = engine.place_hold(caller("ann"), &event_id, seats(&["S:B:1", "S:B:2"]), None).await.unwrap();
    engine.confirm_hold(caller("ann"), &hold.hold_id, "pay".into(), None).await.unwrap();
    engine.place_hold(caller("cy"), &event_id, seats(&["S:C:5"]), None).await.unwrap();
    let (mut watch, _permit) = engine.watch_event(&event_id, mirror.version).await.unwrap();
    for _ in 0..3 {
        let item = next(&mut watch).await;
        assert!(matches!(item, WatchItem::Change(_)), "resuming sends the missed changes, got {item:?}");
        mirror.apply(&item);
    }
    assert_eq!(mirror, Mirror::truth(&engine, &event_id).await);
    // Nothing more until something changes.
    assert!(tokio::time::timeout(Duration::from_millis(100), watch.next()).await.is_err());

    // A version the node never reached, and one older than the changes it keeps.
    let (mut future, _permit) = engine.watch_event(&event_id, mirror.version + 10).await.unwrap();
    let item = next(&mut future).await;
    assert!(matches!(item, WatchItem::Snapshot { reason: SnapshotReason::TooFarBehind, .. }), "{item:?}");
    let old_version = mirror.version;
    for round in 0..=limits::WATCH_RETAINED_CHANGES_MAX / 2 {
        let hold = engine.place_hold(caller("dee"), &event_id, seats(&["S:D:1"]), None).await.unwrap();
        engine.release_hold(caller("dee"), &hold.hold_id).await.unwrap();
        let _ = round;
    }
    let (mut stale, _permit) = engine.watch_event(&event_id, old_version).await.unwrap();
    let item = next(&mut stale).await;
    assert!(matches!(item, WatchItem::Snapshot { reason: SnapshotReason::TooFarBehind, .. }), "{item:?}");
    let mut fresh = Mirror::default();
    fresh.apply(&item);
    assert_eq!(fresh, Mirror::truth(&engine, &event_id).await);
}

#[tokio::test]
async fn a_slow_watcher_is_resynchronised_and_the_event_never_waits_for_it() {
    let engine = Engine::new();
    let event_id = event(&engine).await;
    let (mut slow, _permit) = engine.watch_event(&event_id, 0).await.unwrap();
    let mut mirror = Mirror::default();
    mirror.apply(&next(&mut slow).await);
    // Far more changes than a watcher's buffer, while it reads nothing: every one is answered.
    for _ in 0..limits::WATCH_BUFFERED_CHANGES_MAX {
        let hold = engine.place_hold(caller("eve"), &event_id, seats(&["S:A:3", "S:A:4"]), None).await.unwrap();
        engine.release_hold(caller("eve"), &hold.hold_id).await.unwrap();
    }
    engine.place_hold(caller("eve"), &event_id, seats(&["S:A:9"]), None).await.unwrap();
    let item = next(&mut slow).await;
    assert!(matches!(item, WatchItem::Snapshot { reason: SnapshotReason::Lagged, .. }), "{item:?}");
    mirror.apply(&item);
    assert_eq!(mirror, Mirror::truth(&engine, &event_id).await);
    // And it goes on from there with plain changes.
    engine.place_hold(caller("eve"), &event_id, seats(&["S:A:10"]), None).await.unwrap();
    mirror.apply(&next(&mut slow).await);
    assert_eq!(mirror, Mirror::truth(&engine, &event_id).await);
}

#[tokio::test(start_paused = true)]
async fn expiry_and_cancellation_reach_watchers() {
    let engine = Engine::new();
    let event_id = event(&engine).await;
    let (mut watch, _permit) = engine.watch_event(&event_id, 0).await.unwrap();
    let mut mirror = Mirror::default();
    mirror.apply(&next(&mut watch).await);
    engine.place_hold(caller("fay"), &event_id, seats(&["S:A:5"]), None).await.unwrap();
    mirror.apply(&next(&mut watch).await);
    assert_eq!(mirror.seats["S:A:5"], SeatStatus::Held);

    tokio::time::advance(Duration::from_millis(TTL_MS + 1)).await;
    let item = next(&mut watch).await;
    mirror.apply(&item);
    assert_eq!(mirror.seats["S:A:5"], SeatStatus::Available, "{item:?}");

    engine.place_hold(caller("fay"), &event_id, seats(&["S:A:6"]), None).await.unwrap();
    mirror.apply(&next(&mut watch).await);
    engine.cancel_event(&event_id).await.unwrap();
    let item = next(&mut watch).await;
    let WatchItem::Snapshot { reason: SnapshotReason::WholeEvent, overview } = &item else {
        panic!("a cancellation resends the whole event, got {item:?}")
    };
    assert_eq!(overview.status, turnstile_engine::inventory::EventStatus::Cancelled);
    mirror.apply(&item);
    assert!(mirror.seats.values().all(|status| *status == SeatStatus::Available));
}

#[tokio::test]
async fn after_a_restart_a_watcher_at_the_latest_version_gets_only_new_changes() {
    let data_dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(data_dir.path(), EngineOptions::default()).await.unwrap();
    let event_id = event(&engine).await;
    engine.place_hold(caller("gus"), &event_id, seats(&["S:A:1"]), None).await.unwrap();
    engine.place_hold(caller("gus"), &event_id, seats(&["S:A:2"]), None).await.unwrap();
    let before = Mirror::truth(&engine, &event_id).await;
    engine.close().await.unwrap();

    let engine = common::reopen(data_dir.path()).await;
    assert_eq!(Mirror::truth(&engine, &event_id).await, before, "the restart kept every acknowledged change");
    let (mut current, _permit) = engine.watch_event(&event_id, before.version).await.unwrap();
    let (mut older, _permit) = engine.watch_event(&event_id, before.version - 1).await.unwrap();
    engine.place_hold(caller("gus"), &event_id, seats(&["S:A:3"]), None).await.unwrap();
    let mut mirror = before;
    let item = next(&mut current).await;
    assert!(matches!(item, WatchItem::Change(_)), "{item:?}");
    mirror.apply(&item);
    assert_eq!(mirror, Mirror::truth(&engine, &event_id).await);
    // The node kept no changes from before it started: an older version needs a snapshot.
    let item = next(&mut older).await;
    assert!(matches!(item, WatchItem::Snapshot { reason: SnapshotReason::TooFarBehind, .. }), "{item:?}");
}

#[tokio::test]
async fn watch_streams_are_bounded_per_node() {
    let engine = Engine::new();
    let event_id = event(&engine).await;
    let mut open = Vec::new();
    for _ in 0..limits::WATCH_STREAMS_MAX {
        open.push(engine.watch_event(&event_id, 0).await.unwrap());
    }
    let Err(error) = engine.watch_event(&event_id, 0).await else { panic!("one watch too many was accepted") };
    assert!(error.to_string().contains("watch_streams"), "{error}");
    open.pop();
    let _reopened = engine.watch_event(&event_id, 0).await.unwrap();
}
