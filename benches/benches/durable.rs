//! The durable path against the in-memory path, in one run.
//!
//! - `holds/*`: holds per second through the engine and the event actors, with `CONCURRENCY`
//!   requests in flight spread over `EVENTS` events. Each iteration places a one-seat hold and
//!   releases it (two logged commands; the figure counts holds). `memory` skips the log;
//!   `durable` writes every command ahead to redb with group commit and replies after the fsync.
//!   After the durable run the mean number of commands per commit is printed.
//! - `hold_only/*`: holds alone, one logged command each, as a lock service's SET NX EX is one
//!   write: `CONCURRENCY` tasks over 64 fresh events per sample (100,000 general-admission places
//!   each, so a sample never runs short), each hold a one-place hold left live (a buyer takes up to
//!   the per-buyer bound of live holds, then the task moves to a new buyer). `memory` and
//!   `durable` as above; the figure counts holds, and the commands per fsync are printed.
//! - `recovery/*`: opening a data directory whose log holds `RECOVERY_COMMANDS` commands, with and
//!   without a checkpoint covering them.
//! - `checkpoint_stall/*` (only when named): the soak's write load in-process (16 tasks, one per
//!   event, each placing a one-place hold and releasing it) on 16 events that each start with a
//!   large state (bookings and ended holds, as after half an hour of the soak), with checkpoints off
//!   and with checkpoints by count after `STALL_CHECKPOINT_COMMANDS` of an event's commands. A fixed
//!   amount of work per variant; it prints the latency percentiles of every hold and release, the
//!   log commits and the checkpoints written: a checkpoint that holds up other events' commits
//!   shows in the p99 and the maximum, not in the median.
//!
//! cargo bench -p turnstile-benches --bench durable
//! cargo bench -p turnstile-benches --bench durable -- checkpoint_stall
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
use hdrhistogram::Histogram;
use turnstile_benches::{bench_events, caller, one_place, runtime};
use turnstile_engine::catalog::{EventSpec, VenueSpec};
use turnstile_engine::engine::EngineOptions;
use turnstile_engine::ids::{BuyerId, EventId};
use turnstile_engine::inventory::{Caller, Command, Decision, Inventory, PriceLevel, Request, Selection};
use turnstile_engine::limits::HOLDS_PER_BUYER_MAX;
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

/// Splits `total` iterations over CONCURRENCY tasks, task `worker` on event `worker % events`, each
/// running `work(engine, event, worker, its share)`; returns the elapsed time.
async fn run_spread<F, Fut>(engine: &Engine, events: &[EventId], total: u64, work: F) -> Duration
where
    F: Fn(Engine, EventId, usize, u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(CONCURRENCY);
    for worker in 0..CONCURRENCY {
        let share = total / CONCURRENCY as u64 + u64::from((worker as u64) < total % CONCURRENCY as u64);
        tasks.push(tokio::spawn(work(engine.clone(), events[worker % events.len()].clone(), worker, share)));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

/// Runs `holds` hold+release pairs with CONCURRENCY in flight; returns the elapsed time.
async fn run_holds(engine: &Engine, events: &[EventId], holds: u64) -> Duration {
    run_spread(engine, events, holds, |engine, event_id, worker, share| async move {
        // Each worker owns one seat of its event, so holds never collide.
        let row = ["A", "B", "C", "D", "E", "F", "G", "H"][(worker / EVENTS) % 8];
        let seat_id = format!("S:{row}:{}", (worker / EVENTS) / 8 + 1);
        let caller = Caller { buyer: BuyerId::new(format!("w{worker}")), admin: false };
        for _ in 0..share {
            let hold = engine
                .place_hold(caller.clone(), &event_id, Selection::Seats(vec![seat_id.clone()]), None)
                .await
                .unwrap();
            engine.release_hold(caller.clone(), &hold.hold_id).await.unwrap();
        }
    })
    .await
}

fn bench_holds(criterion: &mut Criterion) {
    let runtime = runtime();
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
    let before = WriterFigures::of(stats);
    group.bench_function("durable", |bencher| {
        bencher.iter_custom(|iters| runtime.block_on(run_holds(&durable, &durable_events, iters)))
    });
    WriterFigures::of(stats).since(&before).print("holds durable");
    group.finish();
    runtime.block_on(durable.shutdown());
}

/// The log writer's counters, read before and after a durable variant runs.
struct WriterFigures {
    commits: u64,
    jobs: u64,
    commit_micros: u64,
    checkpoints: u64,
}

impl WriterFigures {
    fn of(stats: &turnstile_storage::Stats) -> Self {
        WriterFigures {
            commits: stats.commits.load(Ordering::Relaxed),
            jobs: stats.jobs.load(Ordering::Relaxed),
            commit_micros: stats.commit_micros.load(Ordering::Relaxed),
            checkpoints: stats.checkpoints.load(Ordering::Relaxed),
        }
    }

    fn since(&self, before: &Self) -> Self {
        WriterFigures {
            commits: self.commits - before.commits,
            jobs: self.jobs - before.jobs,
            commit_micros: self.commit_micros - before.commit_micros,
            checkpoints: self.checkpoints - before.checkpoints,
        }
    }

    /// Prints commands per fsync and the mean commit (writing the group and its fsync); nothing
    /// when the durable variant was filtered out.
    fn print(&self, label: &str) {
        if self.commits > 0 {
            println!(
                "{label}: {} logged commands in {} commits: {:.1} per fsync, {:.0} us per commit; {} checkpoints",
                self.jobs,
                self.commits,
                self.jobs as f64 / self.commits as f64,
                self.commit_micros as f64 / self.commits as f64,
                self.checkpoints
            );
        }
    }
}

/// Places `holds` one-place holds with CONCURRENCY in flight on `events` (fresh ones: no hold is
/// released); returns the elapsed time.
async fn run_hold_only(engine: &Engine, events: &[EventId], holds: u64) -> Duration {
    run_spread(engine, events, holds, |engine, event_id, worker, share| async move {
        let mut buyer = caller(&format!("w{worker}-0"));
        for number in 0..share {
            if number > 0 && number % u64::from(HOLDS_PER_BUYER_MAX) == 0 {
                buyer = caller(&format!("w{worker}-{number}"));
            }
            engine.place_hold(buyer.clone(), &event_id, one_place(), None).await.unwrap();
        }
    })
    .await
}

/// Events with enough places for one sample of `hold_only` (100,000 each).
const HOLD_ONLY_EVENTS: usize = 64;

/// CPU time (user + system) of the whole process so far: every thread, the writer's included.
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0, "getrusage");
        usage
    };
    let time = |value: libc::timeval| Duration::new(value.tv_sec as u64, value.tv_usec as u32 * 1_000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// CPU spent per hold by one variant, all threads counted. On two cores that a run keeps busy,
/// holds per second are at most two seconds of CPU over this, so it says what a change saves and
/// how far a target is from what the cores allow.
struct CpuPerHold {
    cpu: Duration,
    holds: std::sync::atomic::AtomicU64,
}

impl CpuPerHold {
    fn start() -> Self {
        CpuPerHold { cpu: process_cpu(), holds: Default::default() }
    }

    fn print(&self, label: &str) {
        let holds = self.holds.load(Ordering::Relaxed);
        if holds > 0 {
            let micros = (process_cpu() - self.cpu).as_secs_f64() * 1e6 / holds as f64;
            println!("{label}: {micros:.2} us of CPU per hold over {holds} holds (warm-up included)");
        }
    }
}

fn bench_hold_only(criterion: &mut Criterion) {
    let runtime = runtime();
    let mut group = criterion.benchmark_group("hold_only");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let places = HOLD_ONLY_EVENTS as u64 * 100_000;
    let run = |engine: &Engine, iters: u64, meter: &CpuPerHold| {
        assert!(iters <= places, "a sample of {iters} holds needs more than {places} places");
        meter.holds.fetch_add(iters, Ordering::Relaxed);
        runtime.block_on(async {
            let events = bench_events(engine, HOLD_ONLY_EVENTS).await;
            run_hold_only(engine, &events, iters).await
        })
    };

    let memory = Engine::new();
    let meter = CpuPerHold::start();
    group.bench_function("memory", |bencher| bencher.iter_custom(|iters| run(&memory, iters, &meter)));
    meter.print("hold_only memory");

    let dir = tempfile::tempdir().unwrap();
    let durable = runtime.block_on(Engine::open(dir.path(), EngineOptions::default())).unwrap();
    let stats = &durable.store().unwrap().stats();
    let before = WriterFigures::of(stats);
    let meter = CpuPerHold::start();
    group.bench_function("durable", |bencher| bencher.iter_custom(|iters| run(&durable, iters, &meter)));
    meter.print("hold_only durable");
    WriterFigures::of(stats).since(&before).print("hold_only durable");
    group.finish();
    runtime.block_on(durable.shutdown());
    runtime.block_on(memory.shutdown());
}

/// Writes a log of `commands` hold/release commands for one event straight into a store, and
/// optionally a checkpoint covering them all.
fn build_log(dir: &std::path::Path, commands: u64, checkpoint: bool) -> EventId {
    let runtime = runtime();
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
    let runtime = runtime();
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

/// Events of the stall bench, one task each (the soak's `--concurrency 16` over 16 events).
const STALL_EVENTS: usize = 16;
/// Bookings and released holds each stall-bench event starts with.
const STALL_BOOKINGS: u64 = 10_000;
const STALL_RELEASED: u64 = 10_000;
/// Commands of one event between its checkpoints in the `checkpoints` variant.
const STALL_CHECKPOINT_COMMANDS: u64 = 2_000;
/// Hold + release pairs per event in one run of a variant: 6,000 commands per event. In the
/// `checkpoints` variant each event checkpoints after its first 2,000; the next would wait until
/// its log holds an eighth of its 4.7 MB state (`CHECKPOINT_BYTES_PER_LOG_BYTE`), which these
/// commands do not reach, so one checkpoint per event (16 of 4.7 MB).
const STALL_PAIRS_PER_EVENT: u64 = 3_000;

/// A data directory with `STALL_EVENTS` events, each restored from a checkpoint holding
/// `STALL_BOOKINGS` bookings and `STALL_RELEASED` ended holds. Returns the events, the size of one
/// event's state and the time its serialization took.
fn build_stall_state(dir: &std::path::Path) -> (Vec<EventId>, usize, Duration) {
    let runtime = turnstile_benches::runtime();
    let engine = runtime.block_on(Engine::open(dir, EngineOptions::default())).unwrap();
    let events = runtime.block_on(bench_events(&engine, STALL_EVENTS));
    let store: Arc<Store> = engine.store().unwrap().clone();
    let mut state_bytes = 0;
    let mut serialize_time = Duration::ZERO;
    for event_id in &events {
        let details = runtime.block_on(engine.event_details(event_id, false)).unwrap();
        let mut inventory =
            Inventory::new(event_id.clone(), details.venue.seat_map.clone(), details.info.terms.clone()).unwrap();
        let now_ms = engine.now_ms();
        for number in 0..STALL_BOOKINGS + STALL_RELEASED {
            let buyer = caller(&format!("prefill-{}", number % 500));
            let place = Request::PlaceHold { caller: buyer.clone(), selection: one_place(), idempotency_key: None };
            let Decision::Apply(place) = inventory.decide(&place, now_ms, number).unwrap() else { unreachable!() };
            let turnstile_engine::inventory::Outcome::Hold(hold_id) = inventory.apply(&place) else { unreachable!() };
            let end = if number < STALL_BOOKINGS {
                Request::ConfirmHold {
                    caller: buyer,
                    hold_id,
                    payment_reference: format!("psp-{number}"),
                    idempotency_key: Some(format!("confirm-{number}")),
                }
            } else {
                Request::ReleaseHold { caller: buyer, hold_id }
            };
            let Decision::Apply(end) = inventory.decide(&end, now_ms, number).unwrap() else { unreachable!() };
            inventory.apply(&end);
        }
        let started = Instant::now();
        let state = inventory.checkpoint();
        serialize_time = started.elapsed();
        state_bytes = state.len();
        store.write_blocking(event_id.as_str(), vec![Write::Checkpoint { state }]).unwrap();
    }
    drop(store);
    runtime.block_on(engine.shutdown());
    (events, state_bytes, serialize_time)
}

/// Runs `pairs` hold + release pairs, one task per event; records each call's latency (µs).
async fn run_stall_pairs(engine: &Engine, events: &[EventId], pairs: u64, latencies: &mut Histogram<u64>) -> Duration {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(events.len());
    for (number, event_id) in events.iter().enumerate() {
        let (engine, event_id) = (engine.clone(), event_id.clone());
        let share = pairs / events.len() as u64 + u64::from((number as u64) < pairs % events.len() as u64);
        tasks.push(tokio::spawn(async move {
            let buyer = caller(&format!("load-{number}"));
            let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            for _ in 0..share {
                let call = Instant::now();
                let hold = engine.place_hold(buyer.clone(), &event_id, one_place(), None).await.unwrap();
                latencies.saturating_record(call.elapsed().as_micros() as u64);
                let call = Instant::now();
                engine.release_hold(buyer.clone(), &hold.hold_id).await.unwrap();
                latencies.saturating_record(call.elapsed().as_micros() as u64);
            }
            latencies
        }));
    }
    for task in tasks {
        latencies.add(task.await.unwrap()).unwrap();
    }
    started.elapsed()
}

/// One variant on a fresh copy of the prepared data directory: `STALL_PAIRS_PER_EVENT` pairs per
/// event, then the figures.
fn run_stall_variant(source: &std::path::Path, events: &[EventId], name: &str, checkpoint_commands: u64) {
    let dir = tempfile::tempdir().unwrap();
    let file = turnstile_storage::DATABASE_FILE;
    std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    let runtime = turnstile_benches::runtime();
    let options = EngineOptions {
        checkpoint_commands,
        checkpoint_interval: Duration::from_secs(24 * 3_600),
        ..EngineOptions::default()
    };
    let engine = runtime.block_on(Engine::open(dir.path(), options)).unwrap();
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let pairs = STALL_PAIRS_PER_EVENT * events.len() as u64;
    let elapsed = runtime.block_on(run_stall_pairs(&engine, events, pairs, &mut latencies));
    let stats = engine.store().unwrap().stats();
    let commits = stats.commits.load(Ordering::Relaxed).max(1);
    let ms = |quantile: f64| latencies.value_at_quantile(quantile) as f64 / 1e3;
    println!(
        "checkpoint_stall/{name}: {pairs} pairs in {:.1} s ({:.0} pairs/s); hold and release latency p50 {:.2} ms, \
         p99 {:.2} ms, p99.9 {:.2} ms, max {:.1} ms; {commits} log commits, {:.0} us each on average, the longest \
         {:.1} ms; {} checkpoints stored, {:.0} MB, {:.0} ms of checkpoint turns (the longest {:.1} ms)",
        elapsed.as_secs_f64(),
        pairs as f64 / elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        latencies.max() as f64 / 1e3,
        stats.commit_micros.load(Ordering::Relaxed) as f64 / commits as f64,
        stats.commit_micros_max.load(Ordering::Relaxed) as f64 / 1e3,
        stats.checkpoints.load(Ordering::Relaxed),
        stats.checkpoint_bytes.load(Ordering::Relaxed) as f64 / 1e6,
        stats.checkpoint_micros.load(Ordering::Relaxed) as f64 / 1e3,
        stats.checkpoint_turn_micros_max.load(Ordering::Relaxed) as f64 / 1e3,
    );
    runtime.block_on(engine.shutdown());
}

/// Runs only when named (`-- checkpoint_stall`): a fixed amount of work per variant, so that the
/// same number of checkpoints of the same size is written in every run and runs compare, and
/// its own latency percentiles rather than criterion's timing. The variants alternate, twice.
fn bench_checkpoint_stall(_: &mut Criterion) {
    if !std::env::args().any(|argument| argument.contains("checkpoint_stall")) {
        return;
    }
    let source = tempfile::tempdir().unwrap();
    let (events, state_bytes, serialize_time) = build_stall_state(source.path());
    println!(
        "checkpoint_stall: {STALL_EVENTS} events, each starting with {STALL_BOOKINGS} bookings and {STALL_RELEASED} \
         ended holds ({:.1} MB of checkpoint state, serialized in {:.1} ms); {STALL_PAIRS_PER_EVENT} hold + release \
         pairs per event, one task per event",
        state_bytes as f64 / 1e6,
        serialize_time.as_secs_f64() * 1e3
    );
    for _ in 0..2 {
        run_stall_variant(source.path(), &events, "checkpoints_off", u64::MAX);
        run_stall_variant(source.path(), &events, "checkpoints", STALL_CHECKPOINT_COMMANDS);
    }
}

criterion_group!(benches, bench_holds, bench_hold_only, bench_recovery, bench_checkpoint_stall);
criterion_main!(benches);
