//! The event actor on a paused tokio clock: expiry is driven by its one timer, at the deadline and
//! not before, and re-armed as holds come and go.

use crate::common;

use std::time::Duration;

use turnstile_engine::ids::{BuyerId, EventId};
use turnstile_engine::inventory::{BookingStatus, HoldStatus, Selection};
use turnstile_engine::{Engine, Error};

const TTL_MS: u64 = 60_000;

async fn event(engine: &Engine) -> EventId {
    common::create_event(engine, vec![common::reserved("S", &["A", "B"], 10)], Some(TTL_MS), None).await
}

use common::caller;

fn seat(id: &str) -> Selection {
    Selection::Seats(vec![id.to_string()])
}

/// Lets the actor's timer task and mailbox run after a clock jump.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

async fn available(engine: &Engine, event_id: &EventId) -> u32 {
    let details = engine.event_details(event_id, false).await.unwrap();
    details.overview.availability.iter().map(|row| row.available).sum()
}

#[tokio::test(start_paused = true)]
async fn a_hold_expires_at_its_deadline_and_not_before() {
    let engine = Engine::new();
    let event_id = event(&engine).await;
    let hold = engine.place_hold(caller("ann"), &event_id, seat("S:A:1"), None).await.unwrap();
    assert_eq!(hold.expires_at_ms - hold.placed_at_ms, TTL_MS);
    assert_eq!(available(&engine, &event_id).await, 19);

    tokio::time::advance(Duration::from_millis(TTL_MS - 1)).await;
    settle().await;
    let still = engine.get_hold(caller("ann"), &hold.hold_id).await.unwrap();
    assert_eq!(still.status, HoldStatus::Active);

    tokio::time::advance(Duration::from_millis(1)).await;
    settle().await;
    let expired = engine.get_hold(caller("ann"), &hold.hold_id).await.unwrap();
    assert_eq!(expired.status, HoldStatus::Expired);
    assert_eq!(available(&engine, &event_id).await, 20);
    // The seat went back on sale and someone took it: a late confirm names it.
    engine.place_hold(caller("bob"), &event_id, seat("S:A:1"), None).await.unwrap();
    let error = engine.confirm_hold(caller("ann"), &hold.hold_id, "pay".into(), None).await.unwrap_err();
    assert!(matches!(error, Error::SeatsTaken { ref seat_ids } if seat_ids == &["S:A:1".to_string()]), "{error}");
}

#[tokio::test(start_paused = true)]
async fn the_timer_follows_the_earliest_live_deadline() {
    let engine = Engine::new();
    let event_id = event(&engine).await;
    let first = engine.place_hold(caller("ann"), &event_id, seat("S:A:1"), None).await.unwrap();
    tokio::time::advance(Duration::from_millis(20_000)).await;
    let second = engine.place_hold(caller("bob"), &event_id, seat("S:A:2"), None).await.unwrap();
    // The first hold goes away early; the timer must move on to the second one's deadline.
    engine.release_hold(caller("ann"), &first.hold_id).await.unwrap();

    tokio::time::advance(Duration::from_millis(TTL_MS - 20_000)).await;
    settle().await;
    assert_eq!(engine.get_hold(caller("bob"), &second.hold_id).await.unwrap().status, HoldStatus::Active);

    tokio::time::advance(Duration::from_millis(20_000)).await;
    settle().await;
    assert_eq!(engine.get_hold(caller("bob"), &second.hold_id).await.unwrap().status, HoldStatus::Expired);
    assert_eq!(engine.get_hold(caller("ann"), &first.hold_id).await.unwrap().status, HoldStatus::Released);
    assert_eq!(available(&engine, &event_id).await, 20);
}

#[tokio::test(start_paused = true)]
async fn a_confirmed_hold_never_expires() {
    let engine = Engine::new();
    let event_id = event(&engine).await;
    let hold = engine.place_hold(caller("ann"), &event_id, seat("S:B:3"), None).await.unwrap();
    let booking = engine.confirm_hold(caller("ann"), &hold.hold_id, "pay-1".into(), None).await.unwrap();
    tokio::time::advance(Duration::from_millis(3 * TTL_MS)).await;
    settle().await;
    let booking = engine.get_booking(caller("ann"), &booking.booking_id).await.unwrap();
    assert_eq!(booking.status, BookingStatus::Confirmed);
    assert_eq!(available(&engine, &event_id).await, 19);
}

#[tokio::test]
async fn bookings_are_listed_newest_first_page_by_page() {
    let engine = Engine::new();
    let event_id = event(&engine).await;
    let mut booked = Vec::new();
    for number in 1..=5 {
        let hold = engine.place_hold(caller("ann"), &event_id, seat(&format!("S:A:{number}")), None).await.unwrap();
        let booking = engine.confirm_hold(caller("ann"), &hold.hold_id, format!("pay-{number}"), None).await.unwrap();
        booked.push(booking.booking_id);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = engine.list_bookings(&BuyerId::new("ann"), cursor.as_ref(), 2).unwrap();
        assert!(page.len() <= 2);
        listed.extend(page.into_iter().map(|booking| booking.booking_id));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    booked.reverse();
    assert_eq!(listed, booked);
    assert!(engine.list_bookings(&BuyerId::new("bob"), None, 10).unwrap().0.is_empty());
}
