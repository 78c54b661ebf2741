//! The waiting room on a paused clock: the opening draw, automatic admission following the
//! inventory, and passes that expire unused freeing their slot.

use crate::common;

use std::time::Duration;

use turnstile_engine::ids::{BuyerId, EventId};
use turnstile_engine::inventory::{Caller, Selection};
use turnstile_engine::queue::{QueueConfig, Standing};
use turnstile_engine::{Engine, Error};

async fn event(engine: &Engine, seats: u32) -> EventId {
    common::create_event(engine, vec![common::reserved("S", &["A"], seats)], Some(60_000), Some(2)).await
}

fn buyer(index: usize) -> BuyerId {
    BuyerId::new(format!("fan-{index}"))
}

/// Lets the queue actor's ticks run after a clock jump.
async fn advance(duration: Duration) {
    let step = Duration::from_millis(100);
    let mut elapsed = Duration::ZERO;
    while elapsed < duration {
        tokio::time::advance(step).await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        elapsed += step;
    }
}

async fn standing(engine: &Engine, event_id: &EventId, index: usize) -> Standing {
    let (place, progress) = engine.join_queue(event_id, &buyer(index)).await.unwrap();
    let standing = progress.borrow().standing(place.position);
    standing
}

#[tokio::test(start_paused = true)]
async fn early_joiners_are_drawn_in_random_order_at_the_opening_and_later_ones_queue_behind() {
    let engine = Engine::new();
    let event_id = event(&engine, 10).await;
    let opens_at_ms = engine.now_ms() + 5_000;
    let config =
        QueueConfig { enabled: true, rate_per_second: 1, opens_at_ms: Some(opens_at_ms), ..QueueConfig::default() };
    engine.configure_queue(&event_id, config).await.unwrap();
    for index in 0..100 {
        let (place, _) = engine.join_queue(&event_id, &buyer(index)).await.unwrap();
        assert_eq!(place.position, 0, "no position before the opening");
    }
    assert!(
        matches!(standing(&engine, &event_id, 3).await, Standing::NotOpen { opens_at_ms: Some(at) } if at == opens_at_ms)
    );

    advance(Duration::from_millis(5_100)).await;
    let mut positions = Vec::new();
    for index in 0..100 {
        positions.push(engine.join_queue(&event_id, &buyer(index)).await.unwrap().0.position);
    }
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=100).collect::<Vec<u64>>(), "every early joiner got exactly one place");
    assert_ne!(positions, sorted, "the draw is random, not arrival order");
    let (late, _) = engine.join_queue(&event_id, &buyer(100)).await.unwrap();
    assert_eq!(late.position, 101, "after the opening, first in first out");
}

#[tokio::test(start_paused = true)]
async fn automatic_admission_follows_the_inventory_and_an_unused_pass_frees_its_slot() {
    let engine = Engine::new();
    let event_id = event(&engine, 4).await;
    let config = QueueConfig {
        enabled: true,
        rate_per_second: 0,
        pass_ttl_ms: 10_000,
        seats_per_pass: 2,
        ..QueueConfig::default()
    };
    engine.configure_queue(&event_id, config).await.unwrap();
    for index in 0..4 {
        engine.join_queue(&event_id, &buyer(index)).await.unwrap();
    }
    advance(Duration::from_millis(300)).await;
    // Four seats, two per pass: the first two are in, the others wait.
    assert!(matches!(standing(&engine, &event_id, 0).await, Standing::Admitted { seats: 2, .. }));
    assert!(matches!(standing(&engine, &event_id, 1).await, Standing::Admitted { .. }));
    assert!(matches!(standing(&engine, &event_id, 2).await, Standing::Waiting { ahead: 0, .. }));

    // fan-0 holds with the pass; fan-1 never does.
    engine.claim_pass(&event_id, 1, None).await.unwrap();
    let caller = Caller { buyer: buyer(0), admin: false };
    let selection = Selection::BestAvailable { section_id: "S".into(), quantity: 2 };
    engine.place_hold(caller, &event_id, selection, None).await.unwrap();
    advance(Duration::from_millis(300)).await;
    assert!(
        matches!(standing(&engine, &event_id, 2).await, Standing::Waiting { .. }),
        "fan-1's pass still reserves the rest"
    );

    advance(Duration::from_millis(10_000)).await;
    assert_eq!(standing(&engine, &event_id, 1).await, Standing::PassExpired);
    let Err(Error::PermissionDenied { reason }) = engine.claim_pass(&event_id, 2, None).await else {
        panic!("an expired pass must not be usable")
    };
    assert!(reason.contains("expired"), "{reason}");
    assert!(
        matches!(standing(&engine, &event_id, 2).await, Standing::Admitted { .. }),
        "the expired slot went to the next buyer"
    );
    assert!(matches!(standing(&engine, &event_id, 3).await, Standing::Waiting { .. }));

    // fan-2 holds the last two seats: nothing is left, fan-3 waits.
    engine.claim_pass(&event_id, 3, None).await.unwrap();
    let caller = Caller { buyer: buyer(2), admin: false };
    let selection = Selection::BestAvailable { section_id: "S".into(), quantity: 2 };
    engine.place_hold(caller, &event_id, selection, None).await.unwrap();
    advance(Duration::from_millis(34_000)).await;
    assert!(matches!(standing(&engine, &event_id, 3).await, Standing::Waiting { .. }), "nothing to sell at 45 s");
    // fan-0's hold (placed at 0.3 s, 60 s TTL) will expire within a pass lifetime from 50.3 s on:
    // fan-3 is admitted ahead of it, so they are ready when the seats come back.
    advance(Duration::from_millis(7_000)).await;
    assert!(matches!(standing(&engine, &event_id, 3).await, Standing::Admitted { .. }), "admitted on expiring holds");
}

#[tokio::test(start_paused = true)]
async fn a_fixed_rate_admits_at_that_rate_in_order() {
    let engine = Engine::new();
    let event_id = event(&engine, 100).await;
    let config = QueueConfig { enabled: true, rate_per_second: 5, ..QueueConfig::default() };
    engine.configure_queue(&event_id, config).await.unwrap();
    for index in 0..30 {
        engine.join_queue(&event_id, &buyer(index)).await.unwrap();
    }
    advance(Duration::from_millis(2_000)).await;
    let (_, progress) = engine.join_queue(&event_id, &buyer(0)).await.unwrap();
    let admitted = progress.borrow().admitted_through;
    assert!((8..=12).contains(&admitted), "about 5 per second over 2 s, got {admitted}");
    let Standing::Waiting { ahead, estimated_wait_seconds } = standing(&engine, &event_id, 29).await else {
        panic!("the last buyer is still waiting")
    };
    assert_eq!(ahead, 29 - admitted);
    assert_eq!(estimated_wait_seconds, Some((ahead + 1).div_ceil(5)));
}
