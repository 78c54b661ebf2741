//! The waitlist through the event actor: places that come back go to waiting buyers in line
//! order even while new buyers hammer the same section, and the waitlist survives a restart.

use crate::common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use turnstile_engine::engine::EngineOptions;
use turnstile_engine::ids::EventId;
use turnstile_engine::inventory::{Selection, WaitlistView};
use turnstile_engine::{Engine, Error};

async fn event(engine: &Engine) -> EventId {
    common::create_event(engine, vec![common::reserved("S", &["A"], 4)], None, Some(4)).await
}

use common::caller;

fn seats(ids: &[&str]) -> Selection {
    Selection::Seats(ids.iter().map(|id| id.to_string()).collect())
}

async fn offered_seats(engine: &Engine, event_id: &EventId, who: &str) -> Vec<String> {
    let WaitlistView::Offered { hold_id } = engine.waitlist_status(caller(who), event_id).await.unwrap() else {
        panic!("{who} was offered nothing")
    };
    let hold = engine.get_hold(caller(who), &hold_id).await.unwrap();
    hold.tickets.into_iter().map(|ticket| ticket.seat_id.unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returned_seats_go_to_the_waitlist_in_order_while_new_buyers_hold() {
    let engine = Engine::new();
    let event_id = event(&engine).await;
    let mut bookings = Vec::new();
    for (who, pair) in [("ann", ["S:A:1", "S:A:2"]), ("bob", ["S:A:3", "S:A:4"])] {
        let hold = engine.place_hold(caller(who), &event_id, seats(&pair), None).await.unwrap();
        bookings.push((who, engine.confirm_hold(caller(who), &hold.hold_id, "pay".into(), None).await.unwrap()));
    }
    engine.join_waitlist(caller("wes"), &event_id, Some("S".into()), 2).await.unwrap();
    engine.join_waitlist(caller("wyn"), &event_id, None, 2).await.unwrap();
    assert_eq!(
        engine.waitlist_status(caller("wyn"), &event_id).await.unwrap(),
        WaitlistView::Waiting { position: 2, section_id: None, quantity: 2 }
    );

    // New buyers try to grab single seats the whole time.
    let grabbed = Arc::new(AtomicU32::new(0));
    let mut hammers = Vec::new();
    for index in 0..16 {
        let (engine, event_id, grabbed) = (engine.clone(), event_id.clone(), grabbed.clone());
        hammers.push(tokio::spawn(async move {
            for _ in 0..200 {
                let who = caller(&format!("rush-{index}"));
                let selection = Selection::BestAvailable { section_id: "S".into(), quantity: 1 };
                match engine.place_hold(who, &event_id, selection, None).await {
                    Ok(_) => {
                        grabbed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Error::NotEnoughSeats { .. }) => {}
                    Err(error) => panic!("{error}"),
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for (who, booking) in &bookings {
        engine.cancel_booking(caller(who), &booking.booking_id).await.unwrap();
        tokio::task::yield_now().await;
    }
    for hammer in hammers {
        hammer.await.unwrap();
    }
    assert_eq!(grabbed.load(Ordering::Relaxed), 0, "a new buyer took a seat the waitlist was owed");
    assert_eq!(offered_seats(&engine, &event_id, "wes").await, vec!["S:A:1", "S:A:2"], "first in line, first returned");
    assert_eq!(offered_seats(&engine, &event_id, "wyn").await, vec!["S:A:3", "S:A:4"]);
    let details = engine.event_details(&event_id, false).await.unwrap();
    let row = &details.overview.availability[0];
    assert_eq!((row.available, row.held, row.booked), (0, 4, 0));
}

#[tokio::test]
async fn the_waitlist_and_its_offers_survive_a_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(data_dir.path(), EngineOptions::default()).await.unwrap();
    let event_id = event(&engine).await;
    let hold =
        engine.place_hold(caller("ann"), &event_id, seats(&["S:A:1", "S:A:2", "S:A:3", "S:A:4"]), None).await.unwrap();
    engine.join_waitlist(caller("wes"), &event_id, None, 1).await.unwrap();
    engine.join_waitlist(caller("wyn"), &event_id, None, 4).await.unwrap();
    engine.release_hold(caller("ann"), &hold.hold_id).await.unwrap();
    let before = engine.waitlist_status(caller("wes"), &event_id).await.unwrap();
    assert!(matches!(before, WaitlistView::Offered { .. }), "{before:?}");
    engine.close().await.unwrap();

    let engine = common::reopen(data_dir.path()).await;
    assert_eq!(engine.waitlist_status(caller("wes"), &event_id).await.unwrap(), before);
    assert_eq!(
        engine.waitlist_status(caller("wyn"), &event_id).await.unwrap(),
        WaitlistView::Waiting { position: 1, section_id: None, quantity: 4 },
        "three seats left: wyn, who wants four, still waits"
    );
    engine.shutdown().await;
}
