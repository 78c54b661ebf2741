//! Setup shared by the benchmarks in benches/benches.

use turnstile_engine::catalog::{EventSpec, VenueSpec};
use turnstile_engine::ids::{BuyerId, EventId};
use turnstile_engine::inventory::{Caller, PriceLevel, Selection};
use turnstile_engine::seat_map::{numbered_rows, SectionSpec};
use turnstile_engine::Engine;

/// The machine's two cores, as the server would use them.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

pub fn caller(name: &str) -> Caller {
    Caller { buyer: BuyerId::new(name), admin: false }
}

/// One general-admission place in section FLOOR: the smallest hold, never short of places.
pub fn one_place() -> Selection {
    Selection::BestAvailable { section_id: "FLOOR".into(), quantity: 1 }
}

/// Creates `count` events on a venue with a 100,000-place FLOOR and a 10 x 20 reserved section S.
pub async fn bench_events(engine: &Engine, count: usize) -> Vec<EventId> {
    let venue = engine
        .create_venue(VenueSpec {
            name: "Bench Arena".into(),
            sections: vec![
                SectionSpec {
                    section_id: "FLOOR".into(),
                    name: "Floor".into(),
                    rows: vec![],
                    general_admission_capacity: 100_000,
                },
                SectionSpec {
                    section_id: "S".into(),
                    name: "Stalls".into(),
                    rows: numbered_rows(&["A", "B", "C", "D", "E", "F", "G", "H", "J", "K"], 20),
                    general_admission_capacity: 0,
                },
            ],
            ..VenueSpec::default()
        })
        .await
        .expect("bench venue");
    let mut events = Vec::with_capacity(count);
    for number in 0..count {
        let event = engine
            .create_event(EventSpec {
                name: format!("Bench {number}"),
                venue_id: venue.venue_id.clone(),
                starts_at_ms: 2_000_000_000_000,
                ends_at_ms: 2_000_000_100_000,
                currency: "EUR".into(),
                price_levels: vec![PriceLevel {
                    price_level_id: "A".into(),
                    name: "All".into(),
                    amount_minor: 5_000,
                    section_ids: vec!["FLOOR".into(), "S".into()],
                }],
                buyer_seat_limit: Some(1_000),
                ..EventSpec::default()
            })
            .await
            .expect("bench event");
        events.push(event.event_id.clone());
    }
    events
}

/// Places and releases one hold: the write every contention bench repeats.
pub async fn hold_and_release(engine: &Engine, buyer: &Caller, event_id: &EventId) {
    let hold = engine.place_hold(buyer.clone(), event_id, one_place(), None).await.expect("hold");
    engine.release_hold(buyer.clone(), &hold.hold_id).await.expect("release");
}
