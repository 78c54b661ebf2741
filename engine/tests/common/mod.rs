//! Setup shared by the engine's integration tests.
#![allow(dead_code)]

use turnstile_engine::catalog::{EventSpec, VenueSpec};
use turnstile_engine::engine::EngineOptions;
use turnstile_engine::ids::{BuyerId, EventId};
use turnstile_engine::inventory::{Caller, PriceLevel};
use turnstile_engine::seat_map::{numbered_rows, SectionSpec};
use turnstile_engine::Engine;

/// A reserved section of `rows` rows of `seats_per_row` numbered seats.
pub fn reserved(section_id: &str, rows: &[&str], seats_per_row: u32) -> SectionSpec {
    SectionSpec {
        section_id: section_id.into(),
        name: section_id.into(),
        rows: numbered_rows(rows, seats_per_row),
        general_admission_capacity: 0,
    }
}

pub fn general(section_id: &str, capacity: u32) -> SectionSpec {
    SectionSpec {
        section_id: section_id.into(),
        name: section_id.into(),
        rows: vec![],
        general_admission_capacity: capacity,
    }
}

/// A venue of these sections and an event on it, every section at 50.00 EUR.
pub async fn create_event(
    engine: &Engine,
    sections: Vec<SectionSpec>,
    hold_ttl_ms: Option<u64>,
    buyer_seat_limit: Option<u32>,
) -> EventId {
    let section_ids = sections.iter().map(|section| section.section_id.clone()).collect();
    let venue = engine
        .create_venue(VenueSpec { name: "Hall".into(), city: "Oslo".into(), address: String::new(), sections })
        .await
        .unwrap();
    engine
        .create_event(EventSpec {
            name: "Concert".into(),
            venue_id: venue.venue_id.clone(),
            starts_at_ms: 2_000_000_000_000,
            ends_at_ms: 2_000_000_900_000,
            currency: "EUR".into(),
            price_levels: vec![PriceLevel {
                price_level_id: "A".into(),
                name: "All".into(),
                amount_minor: 5_000,
                section_ids,
            }],
            hold_ttl_ms,
            buyer_seat_limit,
            ..EventSpec::default()
        })
        .await
        .unwrap()
        .event_id
        .clone()
}

pub fn caller(name: &str) -> Caller {
    Caller { buyer: BuyerId::new(name), admin: false }
}

/// Opens the engine in `data_dir` again: the previous one was closed ([`Engine::close`] returns
/// once its database is), so the first try must succeed.
pub async fn reopen(data_dir: &std::path::Path) -> Engine {
    Engine::open(data_dir, EngineOptions::default())
        .await
        .unwrap_or_else(|error| panic!("cannot reopen {}: {error}", data_dir.display()))
}

/// This process's resident memory, from /proc.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<u64>().ok()))
        .map(|pages| pages * 4_096)
        .unwrap_or(0)
}
