//! Inventory apply alone next to the same work through the event actor, in one run, so the actor's
//! overhead is visible. Each iteration places a two-seat hold (best available) and releases it.
//!
//! cargo bench -p turnstile-benches --bench inventory

/// The allocator the server uses (gateway/src/main.rs); `--features system-allocator` compares.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use turnstile_engine::catalog::{EventSpec, VenueSpec};
use turnstile_engine::ids::{BuyerId, EventId};
use turnstile_engine::inventory::{Caller, Decision, Inventory, PriceLevel, Request, Selection, Terms};
use turnstile_engine::seat_map::{numbered_rows, SeatMap, SectionSpec};
use turnstile_engine::Engine;

const ROW_LABELS: [&str; 20] =
    ["A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "Q", "R", "S", "T", "U", "V"];

fn sections() -> Vec<SectionSpec> {
    vec![SectionSpec {
        section_id: "S".into(),
        name: "Stalls".into(),
        rows: numbered_rows(&ROW_LABELS, 50),
        general_admission_capacity: 0,
    }]
}

fn price_levels() -> Vec<PriceLevel> {
    vec![PriceLevel {
        price_level_id: "A".into(),
        name: "All".into(),
        amount_minor: 5_000,
        section_ids: vec!["S".into()],
    }]
}

fn caller() -> Caller {
    Caller { buyer: BuyerId::new("bench"), admin: false }
}

fn place_request() -> Request {
    Request::PlaceHold {
        caller: caller(),
        selection: Selection::BestAvailable { section_id: "S".into(), quantity: 2 },
        idempotency_key: None,
    }
}

fn bench_inventory(criterion: &mut Criterion) {
    let seat_map = Arc::new(SeatMap::build(&sections()).unwrap());
    let terms =
        Terms { currency: "EUR".into(), price_levels: price_levels(), hold_ttl_ms: 600_000, buyer_seat_limit: 8 };
    let mut inventory = Inventory::new(EventId::mint(1), seat_map, terms).unwrap();
    let mut now_ms = 1_800_000_000_000u64;
    let mut group = criterion.benchmark_group("place_and_release_hold");
    group.bench_function("inventory_direct", |bencher| {
        bencher.iter(|| {
            now_ms += 1;
            let Decision::Apply(place) = inventory.decide(&place_request(), now_ms, now_ms).unwrap() else {
                unreachable!()
            };
            let turnstile_engine::inventory::Outcome::Hold(hold_id) = inventory.apply(&place) else { unreachable!() };
            let release = Request::ReleaseHold { caller: caller(), hold_id };
            let Decision::Apply(release) = inventory.decide(&release, now_ms, 0).unwrap() else { unreachable!() };
            inventory.apply(&release);
        })
    });

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let engine = Engine::new();
    let venue = runtime
        .block_on(engine.create_venue(VenueSpec { name: "Hall".into(), sections: sections(), ..VenueSpec::default() }))
        .unwrap();
    let event_id = runtime
        .block_on(engine.create_event(EventSpec {
            name: "Bench".into(),
            venue_id: venue.venue_id.clone(),
            starts_at_ms: 2_000_000_000_000,
            ends_at_ms: 2_000_000_100_000,
            currency: "EUR".into(),
            price_levels: price_levels(),
            ..EventSpec::default()
        }))
        .unwrap()
        .event_id
        .clone();
    group.bench_function("through_actor", |bencher| {
        bencher.to_async(&runtime).iter(|| async {
            let hold = engine
                .place_hold(caller(), &event_id, Selection::BestAvailable { section_id: "S".into(), quantity: 2 }, None)
                .await
                .unwrap();
            engine.release_hold(caller(), &hold.hold_id).await.unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench_inventory);
criterion_main!(benches);
