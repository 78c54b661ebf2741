//! The durable path against the in-memory path, in one run.
//!
//! - `holds/*`: holds per second through the engine and the event actors, with `CONCURRENCY`
//!   requests in flight spread over `EVENTS` events. Each iteration places a one-seat hold and
//!   releases it (two logged commands; the figure counts holds). `memory` skips the log;
//!   `durable` writes every command ahead to redb with group commit and replies after the fsync.
//!   After the durable run the mean number of commands per commit is printed.
//! - `recovery/*`: opening a data directory whose log holds `RECOVERY_COMMANDS` commands, with and
//!   without a checkpoint covering them.
//!
//! cargo bench -p turnstile-benches --bench durable
//! TURNSTILE_RECOVERY_COMMANDS=1000000 for the 1M-command recovery figure (the default is smaller
//! so a plain run stays short).

/// The allocator the server uses (gateway/src/main.rs); `--features system-allocator` compares.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use turnstile_engine::catalog::{EventSpec, VenueSpec};
use turnstile_engine::engine::EngineOptions;
use turnstile_engine::ids::{BuyerId, EventId};
use turnstile_engine::inventory::{Caller, Command, Decision, Inventory, PriceLevel, Request, Selection};
use turnstile_engine::seat_map::{numbered_rows, SectionSpec};
use turnstile_engine::Engine;
use turnstile_storage::{Store, Write};

const EVENTS: usize = 64;
const CONCURRENCY: usize = 1_024;

fn sections() -> Vec<SectionSpec> {
    vec![SectionSpec {
        section_id: "S".into(),
        name: "Stalls".into(),
        rows: numbered_rows(&["A", "B", "C", "D", "E", "F", "G", "H"], 50),
        general_admission_capacity: 0,
    }]
}

fn event_spec(venue_id: turnstile_engine::ids::VenueId) -> EventSpec {
    EventSpec {
        name: "Bench".into(),
        venue_id,
        starts_at_ms: 2_000_000_000_000,
        ends_at_ms: 2_000_000_100_000,
        currency: "EUR".into(),
        price_levels: vec![PriceLevel {
            price_level_id: "A".into(),
            name: "All".into(),
            amount_minor: 5_000,
            section_ids: vec!["S".into()],
        }],
        buyer_seat_limit: Some(1_000),
        ..EventSpec::default()
    }
}

async fn create_events(engine: &Engine) -> Vec<EventId> {
    let venue = engine
        .create_venue(VenueSpec { name: "Hall".into(), sections: sections(), ..VenueSpec::default() })
        .await
        .unwrap();
    let mut events = Vec::with_capacity(EVENTS);
    for _ in 0..EVENTS {
        events.push(engine.create_event(event_spec(venue.venue_id.clone())).await.unwrap().event_id.clone());
    }
    events
}

/// Runs `holds` hold+release pairs with CONCURRENCY in flight; returns the elapsed time.
async fn run_holds(engine: &Engine, events: &[EventId], holds: u64) -> Duration {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(CONCURRENCY);
    for worker in 0..CONCURRENCY {
        let engine = engine.clone();
        let event_id = events[worker % events.len()].clone();
        let share = holds / CONCURRENCY as u64 + u64::from((worker as u64) < holds % CONCURRENCY as u64);
        // Each worker owns one seat of its event, so holds never collide.
        let seat_id = format!("{}:{}", ["A", "B", "C", "D", "E", "F", "G", "H"][(worker / EVENTS) % 8], {
            let number = (worker / EVENTS) / 8 + 1;
            number
        });
        let seat_id = format!("S:{seat_id}");
        tasks.push(tokio::spawn(async move {
            let caller = Caller { buyer: BuyerId::new(format!("w{worker}")), admin: false };
            for _ in 0..share {
                let hold = engine
                    .place_hold(caller.clone(), &event_id, Selection::Seats(vec![seat_id.clone()]), None)
                    .await
                    .unwrap();
                engine.release_hold(caller.clone(), &hold.hold_id).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

fn bench_holds(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = criterion.benchmark_group("holds");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    let memory = Engine::new();
    let memory_events = runtime.block_on(create_events(&memory));
    group.bench_function("memory", |bencher| {
        bencher.iter_custom(|iters| runtime.block_on(run_holds(&memory, &memory_events, iters)))
    });

    let dir = tempfile::tempdir().unwrap();
    let durable = runtime.block_on(Engine::open(dir.path(), EngineOptions::default())).unwrap();
    let durable_events = runtime.block_on(create_events(&durable));
    let stats = &durable.store().unwrap().stats();
    let (commits_before, jobs_before) = (stats.commits.load(Ordering::Relaxed), stats.jobs.load(Ordering::Relaxed));
    group.bench_function("durable", |bencher| {
        bencher.iter_custom(|iters| runtime.block_on(run_holds(&durable, &durable_events, iters)))
    });
    let commits = stats.commits.load(Ordering::Relaxed) - commits_before;
    let jobs = stats.jobs.load(Ordering::Relaxed) - jobs_before;
    let commit_micros = stats.commit_micros.load(Ordering::Relaxed);
    println!(
        "durable: {jobs} logged commands in {commits} commits: {:.1} commands per fsync, {:.0} us per commit",
        jobs as f64 / commits.max(1) as f64,
        commit_micros as f64 / stats.commits.load(Ordering::Relaxed).max(1) as f64
    );
    group.finish();
    runtime.block_on(durable.shutdown());
}

/// Writes a log of `commands` hold/release commands for one event straight into a store, and
/// optionally a checkpoint covering them all.
fn build_log(dir: &std::path::Path, commands: u64, checkpoint: bool) -> EventId {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let engine = runtime.block_on(Engine::open(dir, EngineOptions::default())).unwrap();
    let venue = runtime
        .block_on(engine.create_venue(VenueSpec { name: "Hall".into(), sections: sections(), ..VenueSpec::default() }))
        .unwrap();
    let event = runtime.block_on(engine.create_event(event_spec(venue.venue_id.clone()))).unwrap();
    let event_id = event.event_id.clone();
    let store: Arc<Store> = engine.store().unwrap().clone();
    let mut inventory = Inventory::new(event_id.clone(), venue.seat_map.clone(), event.terms.clone()).unwrap();
    let mut now_ms = 1_900_000_000_000u64;
    let mut batch = Vec::new();
    let mut written = 0u64;
    while written < commands {
        now_ms += 1;
        let caller = Caller { buyer: BuyerId::new(format!("b{}", written % 97)), admin: false };
        let request = Request::PlaceHold {
            caller: caller.clone(),
            selection: Selection::BestAvailable { section_id: "S".into(), quantity: 2 },
            idempotency_key: None,
        };
        let Decision::Apply(place) = inventory.decide(&request, now_ms, written).unwrap() else { unreachable!() };
        let turnstile_engine::inventory::Outcome::Hold(hold_id) = inventory.apply(&place) else { unreachable!() };
        let release = Request::ReleaseHold { caller, hold_id };
        let Decision::Apply(release) = inventory.decide(&release, now_ms, 0).unwrap() else { unreachable!() };
        inventory.apply(&release);
        for command in [place, release] {
            batch.push(Write::Append { payload: postcard::to_stdvec::<Command>(&command).unwrap() });
        }
        written += 2;
        if batch.len() >= 20_000 {
            store.write_blocking(event_id.as_str(), std::mem::take(&mut batch)).unwrap();
        }
    }
    if !batch.is_empty() {
        store.write_blocking(event_id.as_str(), batch).unwrap();
    }
    if checkpoint {
        store.write_blocking(event_id.as_str(), vec![Write::Checkpoint { state: inventory.checkpoint() }]).unwrap();
    }
    drop(store);
    runtime.block_on(engine.shutdown());
    event_id
}

fn bench_recovery(criterion: &mut Criterion) {
    let commands: u64 =
        std::env::var("TURNSTILE_RECOVERY_COMMANDS").ok().and_then(|value| value.parse().ok()).unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = criterion.benchmark_group(format!("recovery_{commands}_commands"));
    group.sample_size(10);
    for checkpoint in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let event_id = build_log(dir.path(), commands, checkpoint);
        let name = if checkpoint { "with_checkpoint" } else { "log_only" };
        group.bench_function(name, |bencher| {
            bencher.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let engine = runtime.block_on(Engine::open(dir.path(), EngineOptions::default())).unwrap();
                    total += started.elapsed();
                    let details = runtime.block_on(engine.event_details(&event_id, false)).unwrap();
                    assert_eq!(details.overview.version, commands, "recovery rebuilt every command");
                    runtime.block_on(engine.shutdown());
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_holds, bench_recovery);
criterion_main!(benches);
