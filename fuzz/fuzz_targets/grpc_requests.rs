//! Fuzzes the gateway's request handling below the network: arbitrary bytes are decoded as API
//! request messages and, when they decode, go through the conversions and checks the server runs
//! (`gateway/src/services/`, `gateway/src/search.rs`), minus authentication and the actors.
//!
//! The first input byte picks the message; the rest is its protobuf encoding:
//! - `HoldSeatsRequest`: the selection converted as `hold_seats` does, then `decide` (and `apply`)
//!   on a fresh inventory and on one with holds and bookings in it;
//! - `CreateVenueRequest`: `Catalog::build_venue` (which runs `SeatMap::build`); an accepted venue
//!   must give back the sections it was built from, name every seat by an id that parses back to
//!   it, and take an event priced over all its sections with a hold in each section;
//! - `CreateEventRequest`: timestamps and `convert::price_levels`, then `Catalog::build_event`
//!   as sent and again against the fixture venue, and `Terms::section_levels` against it; accepted
//!   terms must build an inventory whose availability carries the levels' prices;
//! - `SearchEventsRequest`: converted as `gateway::search::search` does, then searched in a small
//!   in-memory index; an issued page token must be accepted for the next page.
//!
//! Nothing may panic; every rejection must map to a gRPC status with a message.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use turnstile::convert;
use turnstile::error::status;
use turnstile_engine::catalog::{Catalog, EventSpec, PerformerSpec, VenueSpec};
use turnstile_engine::ids::{BuyerId, EventId, PerformerId, VenueId};
use turnstile_engine::inventory::{Caller, Decision, Inventory, PriceLevel, Request, Selection, Terms};
use turnstile_engine::limits;
use turnstile_fuzz::{new_inventory, rich_checkpoint, seat_map, venue_sections, T0_MS};
use turnstile_proto::v1 as pb;
use turnstile_search::{EventDocument, SearchIndex, SearchQuery, SortOrder};

/// Seats whose ids are checked to round-trip per accepted venue; bounds the work per input.
const SEAT_ID_CHECKS_MAX: u32 = 4_096;
/// Sections of an accepted venue that get a test hold.
const SECTION_HOLDS_MAX: usize = 32;

fn fuzz_caller() -> Caller {
    Caller { buyer: BuyerId::new("fuzz"), admin: false }
}

/// A catalog with the fixture venue (nonce 1) and one performer (nonce 1), as the server would
/// have after two admin calls.
fn catalog() -> &'static (Catalog, VenueId, PerformerId) {
    static CATALOG: OnceLock<(Catalog, VenueId, PerformerId)> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let catalog = Catalog::default();
        let venue_spec = VenueSpec { name: "Arena".into(), sections: venue_sections(), ..VenueSpec::default() };
        let venue = catalog.create_venue(venue_spec, 1).expect("the fixture venue is valid");
        let performer_spec = PerformerSpec { name: "The Fuzzers".into(), ..PerformerSpec::default() };
        let performer = catalog.create_performer(performer_spec, 1).expect("the fixture performer is valid");
        (catalog, venue.venue_id.clone(), performer.performer_id.clone())
    })
}

fn search_index() -> &'static SearchIndex {
    static INDEX: OnceLock<SearchIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let index = SearchIndex::in_memory().expect("an in-memory index opens");
        let events = [
            ("evt_0000000000000001", "Madison Square Garden Concert", "New York", "music", 1_800_000_000_000),
            ("evt_0000000000000002", "Mozart Requiem", "Vienna", "classical", 1_800_100_000_000),
            ("evt_0000000000000003", "Cup Final", "Zürich", "sport", 1_800_200_000_000),
        ];
        for (event_id, name, city, category, starts_at_ms) in events {
            let document = EventDocument {
                event_id: event_id.into(),
                name: name.into(),
                description: format!("{name} in {city}"),
                category: category.into(),
                venue_id: "ven_0000000000000001".into(),
                venue_name: "Arena".into(),
                city: city.into(),
                performer_ids: vec!["prf_0000000000000001".into()],
                performer_names: vec!["The Fuzzers".into()],
                starts_at_ms,
            };
            index.upsert(&document).expect("a fixture document indexes");
        }
        index.flush().expect("the fixture index commits");
        index
    })
}

fn check_status(error: turnstile_engine::Error) {
    let status = status(error);
    assert!(!status.message().is_empty(), "a rejection with no message: {status:?}");
}

fn hold_seats(bytes: &[u8]) {
    let Ok(request) = pb::HoldSeatsRequest::decode(bytes) else { return };
    let _ = convert::id("event_id", &request.event_id);
    let selection = match request.selection {
        Some(pb::hold_seats_request::Selection::Seats(list)) => Selection::Seats(list.seat_ids),
        Some(pb::hold_seats_request::Selection::BestAvailable(best)) => {
            Selection::BestAvailable { section_id: best.section_id, quantity: i64::from(best.quantity) }
        }
        None => return,
    };
    let request = Request::PlaceHold {
        caller: fuzz_caller(),
        selection,
        idempotency_key: convert::optional_key(request.idempotency_key),
    };
    let busy = Inventory::restore(rich_checkpoint(), seat_map()).expect("the fixture checkpoint restores");
    for mut inventory in [new_inventory(), busy] {
        match inventory.decide(&request, T0_MS, 0x5eed) {
            Err(error) => check_status(error),
            Ok(Decision::Answered(outcome)) => panic!("a first request was answered as a retry: {outcome:?}"),
            Ok(Decision::Apply(command)) => {
                let outcome = inventory.apply(&command);
                if let Err(reason) = inventory.check_invariants() {
                    panic!("a hold from a request broke the inventory: {reason}");
                }
                let turnstile_engine::inventory::Outcome::Hold(hold_id) = outcome else {
                    panic!("a hold request applied as {outcome:?}")
                };
                let hold = inventory.hold_view(&hold_id, Some(&fuzz_caller())).expect("a new hold is readable");
                let response = convert::hold(&hold);
                assert_eq!(response.tickets.len(), hold.tickets.len());
            }
        }
    }
}

fn create_venue(bytes: &[u8]) {
    let Ok(request) = pb::CreateVenueRequest::decode(bytes) else { return };
    let sections = convert::section_specs(request.sections);
    let spec =
        VenueSpec { name: request.name, city: request.city, address: request.address, sections: sections.clone() };
    let venue = match Catalog::default().build_venue(spec, 2) {
        Ok(venue) => venue,
        Err(error) => return check_status(error),
    };
    let seat_map = &venue.seat_map;
    assert_eq!(seat_map.specs(), sections, "an accepted venue does not give back its sections");
    assert!(seat_map.capacity() <= limits::SEATS_PER_EVENT_MAX);
    let seats_checked = (0..seat_map.seat_count.min(SEAT_ID_CHECKS_MAX)).chain(seat_map.seat_count.checked_sub(1));
    for seat in seats_checked {
        let seat_id = seat_map.seat_id(seat);
        assert_eq!(seat_map.seat_index(&seat_id), Ok(seat), "seat id {seat_id} does not parse back");
    }
    let response = convert::venue(&venue);
    assert_eq!(response.capacity, seat_map.capacity());

    // Any valid venue can be sold: one price level over all its sections.
    let terms = Terms {
        currency: "EUR".into(),
        price_levels: vec![PriceLevel {
            price_level_id: "ALL".into(),
            name: "All".into(),
            amount_minor: 1_000,
            section_ids: seat_map.sections.iter().map(|section| section.section_id.clone()).collect(),
        }],
        hold_ttl_ms: limits::HOLD_TTL_MS_DEFAULT,
        buyer_seat_limit: limits::BUYER_SEAT_LIMIT_MAX,
    };
    let mut inventory = match Inventory::new(EventId::mint(2), seat_map.clone(), terms) {
        Ok(inventory) => inventory,
        Err(error) => panic!("a valid venue cannot be priced by one level over all sections: {error}"),
    };
    for (nonce, section) in seat_map.sections.iter().take(SECTION_HOLDS_MAX).enumerate() {
        let quantity = i64::from(section.capacity().min(4));
        let request = Request::PlaceHold {
            caller: fuzz_caller(),
            selection: Selection::BestAvailable { section_id: section.section_id.clone(), quantity },
            idempotency_key: None,
        };
        match inventory.decide(&request, T0_MS, nonce as u64) {
            Ok(Decision::Apply(command)) => {
                inventory.apply(&command);
                if let Err(reason) = inventory.check_invariants() {
                    panic!("a hold in section '{}' broke the inventory: {reason}", section.section_id);
                }
            }
            Ok(Decision::Answered(outcome)) => panic!("a first hold was answered as a retry: {outcome:?}"),
            // Per-buyer limits can stop later sections; an empty venue has no other reason to refuse.
            Err(turnstile_engine::Error::LimitExceeded { .. }) => break,
            Err(error) => panic!("an empty section '{}' refused {quantity} places: {error}", section.section_id),
        }
    }
}

fn create_event(bytes: &[u8]) {
    let Ok(request) = pb::CreateEventRequest::decode(bytes) else { return };
    let Ok(starts_at_ms) = convert::required_time("starts_at", request.starts_at.as_ref()) else { return };
    let Ok(ends_at_ms) = convert::required_time("ends_at", request.ends_at.as_ref()) else { return };
    let Ok((currency, price_levels)) = convert::price_levels(request.price_levels) else { return };
    let spec = EventSpec {
        name: request.name,
        description: request.description,
        category: request.category,
        venue_id: VenueId::new(request.venue_id),
        performer_ids: request.performer_ids.into_iter().map(PerformerId::new).collect(),
        starts_at_ms,
        ends_at_ms,
        currency,
        price_levels,
        hold_ttl_ms: (request.hold_ttl_seconds > 0).then(|| u64::from(request.hold_ttl_seconds) * 1_000),
        buyer_seat_limit: (request.buyer_seat_limit > 0).then_some(request.buyer_seat_limit),
    };
    let (catalog, venue_id, _) = catalog();
    // As sent: the venue id is almost never the fixture's, so this mostly checks the early fields.
    if let Err(error) = catalog.build_event(spec.clone(), 3, T0_MS) {
        check_status(error);
    }
    // Against the fixture venue, so the terms are checked against a real seat map.
    let terms = Terms {
        currency: spec.currency.clone(),
        price_levels: spec.price_levels.clone(),
        hold_ttl_ms: spec.hold_ttl_ms.unwrap_or(limits::HOLD_TTL_MS_DEFAULT),
        buyer_seat_limit: spec.buyer_seat_limit.unwrap_or(limits::BUYER_SEAT_LIMIT_DEFAULT),
    };
    let in_fixture_venue = EventSpec { venue_id: venue_id.clone(), ..spec };
    match catalog.build_event(in_fixture_venue, 4, T0_MS) {
        Ok(event) => {
            assert_eq!(event.terms, terms);
            let response = convert::event(&event, None);
            assert_eq!(u64::from(response.hold_ttl_seconds) * 1_000, terms.hold_ttl_ms);
        }
        Err(error) => check_status(error),
    }
    let section_levels = match terms.section_levels(&seat_map()) {
        Ok(section_levels) => section_levels,
        Err(error) => return check_status(error),
    };
    assert_eq!(section_levels.len(), seat_map().sections.len());
    let inventory = match Inventory::new(EventId::mint(4), seat_map(), terms.clone()) {
        Ok(inventory) => inventory,
        Err(error) => panic!("terms that section_levels accepts do not build an inventory: {error}"),
    };
    for (row, level) in inventory.availability().iter().zip(&section_levels) {
        let level = &terms.price_levels[usize::from(*level)];
        assert_eq!((&row.price_level_id, row.amount_minor), (&level.price_level_id, level.amount_minor));
        assert!(
            level.section_ids.contains(&row.section_id),
            "section {} priced by a level not naming it",
            row.section_id
        );
    }
}

fn search_events(bytes: &[u8]) {
    let Ok(request) = pb::SearchEventsRequest::decode(bytes) else { return };
    let sort = match pb::search_events_request::Sort::try_from(request.sort) {
        Ok(pb::search_events_request::Sort::Relevance) => SortOrder::Relevance,
        Ok(pb::search_events_request::Sort::Date) => SortOrder::Date,
        Err(_) => return,
    };
    let optional = |value: String| (!value.is_empty()).then_some(value);
    let Ok(starts_after_ms) = request.starts_after.as_ref().map(|at| convert::unix_ms("starts_after", at)).transpose()
    else {
        return;
    };
    let Ok(starts_before_ms) =
        request.starts_before.as_ref().map(|at| convert::unix_ms("starts_before", at)).transpose()
    else {
        return;
    };
    let query = SearchQuery {
        text: request.query,
        starts_after_ms,
        starts_before_ms,
        venue_id: optional(request.venue_id),
        performer_id: optional(request.performer_id),
        city: optional(request.city),
        category: optional(request.category),
        sort,
        page_size: request.page_size,
        page_token: optional(request.page_token),
    };
    let page = match search_index().search(&query) {
        Ok(page) => page,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    let page_size_max =
        if query.page_size == 0 { turnstile_search::limits::PAGE_SIZE_DEFAULT } else { query.page_size } as usize;
    assert!(page.hits.len() <= page_size_max, "{} hits on a page of {page_size_max}", page.hits.len());
    if let Some(token) = page.next_page_token {
        let next = SearchQuery { page_token: Some(token), ..query };
        if let Err(error) = search_index().search(&next) {
            panic!("the next page of a query refused the token it issued: {error}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((kind, message)) = data.split_first() else { return };
    match kind % 4 {
        0 => hold_seats(message),
        1 => create_venue(message),
        2 => create_event(message),
        _ => search_events(message),
    }
});
