//! A demo data set so a fresh server has something to view, hold and book: one arena with ten
//! reserved sections (2,500 seats) and a general-admission floor (1,000 places), four performers
//! and four events. Ids are fixed so the README's grpcurl examples work as written, and seeding a
//! data directory that already has them does nothing.

use turnstile_engine::catalog::{EventSpec, PerformerSpec, VenueSpec};
use turnstile_engine::inventory::PriceLevel;
use turnstile_engine::seat_map::{numbered_rows, SectionSpec};
use turnstile_engine::{Engine, Result};

/// The first demo event, as used in the README.
pub const DEMO_EVENT_ID: &str = "evt_00000000000000e1";

const ROW_LABELS: [&str; 10] = ["A", "B", "C", "D", "E", "F", "G", "H", "J", "K"];

/// What `seed` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Seeded {
    /// The demo events were created, with these ids.
    Created(Vec<String>),
    /// The data directory had them from an earlier run: nothing was written.
    AlreadyThere,
}

pub async fn seed(engine: &Engine) -> Result<Seeded> {
    if engine.catalog().event(&turnstile_engine::ids::EventId::new(DEMO_EVENT_ID)).is_ok() {
        return Ok(Seeded::AlreadyThere);
    }
    let mut sections: Vec<SectionSpec> = (101..=110)
        .map(|number| SectionSpec {
            section_id: number.to_string(),
            name: format!("Lower {number}"),
            rows: numbered_rows(&ROW_LABELS, 25),
            general_admission_capacity: 0,
        })
        .collect();
    sections.push(SectionSpec {
        section_id: "FLOOR".into(),
        name: "Floor (standing)".into(),
        rows: Vec::new(),
        general_admission_capacity: 1_000,
    });
    let venue = engine
        .create_venue_with_nonce(
            VenueSpec { name: "Harbour Arena".into(), city: "Lisbon".into(), address: "1 Quay Road".into(), sections },
            0xa1,
        )
        .await?;
    let mut performers = Vec::new();
    let performer_specs = [
        ("The Midnight Lanterns", "Indie rock from the coast", "rock"),
        ("Ana Sol", "Fado voice of a generation", "fado"),
        ("Orquestra do Norte", "Symphony orchestra", "classical"),
        ("DJ Kestrel", "Late-night electronic sets", "electronic"),
    ];
    for (index, (name, description, genre)) in performer_specs.into_iter().enumerate() {
        let spec = PerformerSpec { name: name.into(), description: description.into(), genre: genre.into() };
        performers.push(engine.create_performer_with_nonce(spec, 0xb1 + index as u64).await?);
    }

    let now_ms = engine.now_ms();
    const DAY_MS: i64 = 24 * 60 * 60 * 1_000;
    let premium: Vec<String> = (101..=104).map(|number| number.to_string()).collect();
    let standard: Vec<String> = (105..=110).map(|number| number.to_string()).collect();
    let events = [
        ("Midnight Lanterns: Harbour Lights Tour", "concert", 0usize, 30),
        ("Ana Sol: Canções do Mar", "concert", 1, 45),
        ("Orquestra do Norte plays Beethoven", "classical", 2, 60),
        ("DJ Kestrel: All Night Long", "club", 3, 75),
    ];
    let mut event_ids = Vec::new();
    for (index, (name, category, performer, days_ahead)) in events.into_iter().enumerate() {
        let starts_at_ms = now_ms as i64 + days_ahead * DAY_MS;
        let event = engine
            .create_event_with_nonce(
                EventSpec {
                    name: name.into(),
                    description: format!("{name}, live at Harbour Arena"),
                    category: category.into(),
                    venue_id: venue.venue_id.clone(),
                    performer_ids: vec![performers[performer].performer_id.clone()],
                    starts_at_ms,
                    ends_at_ms: starts_at_ms + 3 * 60 * 60 * 1_000,
                    currency: "EUR".into(),
                    price_levels: vec![
                        PriceLevel {
                            price_level_id: "PREMIUM".into(),
                            name: "Premium".into(),
                            amount_minor: 12_000,
                            section_ids: premium.clone(),
                        },
                        PriceLevel {
                            price_level_id: "STANDARD".into(),
                            name: "Standard".into(),
                            amount_minor: 6_500,
                            section_ids: standard.clone(),
                        },
                        PriceLevel {
                            price_level_id: "FLOOR".into(),
                            name: "Floor".into(),
                            amount_minor: 4_500,
                            section_ids: vec!["FLOOR".into()],
                        },
                    ],
                    hold_ttl_ms: None,
                    buyer_seat_limit: None,
                },
                0xe1 + index as u64,
            )
            .await?;
        event_ids.push(event.event_id.to_string());
    }
    debug_assert_eq!(event_ids[0], DEMO_EVENT_ID);
    Ok(Seeded::Created(event_ids))
}
