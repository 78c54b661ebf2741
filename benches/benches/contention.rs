//! One hot event under contention, and reads while writes run, in one run each so the ratios
//! are measured under the same conditions.
//!
//! - `hot_event`: N tasks placing and releasing holds (durable engine, group commit) all on one
//!   event, against the same tasks spread over 16 events: what serializing an event in one actor
//!   costs when everyone wants it.
//! - `event_view`: the availability view (GetEvent without seats, served from the actor's
//!   published snapshot) alone and while a writer saturates the same event, next to the full seat
//!   map (which goes through the actor's mailbox) alone and under the same writer.
//!
//! cargo bench -p turnstile-benches --bench contention

/// The allocator the server uses (gateway/src/main.rs); `--features system-allocator` compares.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use turnstile_benches::{bench_events, caller, hold_and_release, runtime};
use turnstile_engine::engine::EngineOptions;
use turnstile_engine::ids::EventId;
use turnstile_engine::Engine;

/// Hold + release pairs per measured iteration, split over the tasks.
const PAIRS: u64 = 2_048;
/// Views per measured iteration.
const READS: u64 = 1_000;

async fn pairs_on(engine: &Engine, events: &[EventId], tasks: u64) {
    let mut handles = Vec::with_capacity(tasks as usize);
    for task in 0..tasks {
        let (engine, event_id) = (engine.clone(), events[task as usize % events.len()].clone());
        handles.push(tokio::spawn(async move {
            let buyer = caller(&format!("task-{task}"));
            for _ in 0..PAIRS / tasks {
                hold_and_release(&engine, &buyer, &event_id).await;
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
}

fn bench_hot_event(criterion: &mut Criterion) {
    let runtime = runtime();
    let data_dir = tempfile::tempdir().unwrap();
    let engine = runtime.block_on(Engine::open(data_dir.path(), EngineOptions::default())).unwrap();
    let events = runtime.block_on(bench_events(&engine, 16));
    let mut group = criterion.benchmark_group("hot_event");
    group.throughput(Throughput::Elements(PAIRS));
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for tasks in [1u64, 16, 64] {
        for (label, spread) in [("one_event", 1usize), ("16_events", 16)] {
            group.bench_with_input(BenchmarkId::new(label, tasks), &tasks, |bencher, &tasks| {
                bencher.iter_custom(|iterations| {
                    runtime.block_on(async {
                        let started = Instant::now();
                        for _ in 0..iterations {
                            pairs_on(&engine, &events[..spread], tasks).await;
                        }
                        started.elapsed()
                    })
                })
            });
        }
    }
    group.finish();
    runtime.block_on(engine.shutdown());
}

fn bench_views(criterion: &mut Criterion) {
    let runtime = runtime();
    let data_dir = tempfile::tempdir().unwrap();
    let engine = runtime.block_on(Engine::open(data_dir.path(), EngineOptions::default())).unwrap();
    let event_id = runtime.block_on(bench_events(&engine, 1)).remove(0);
    let mut group = criterion.benchmark_group("event_view");
    group.throughput(Throughput::Elements(READS));
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    for (with_seats, path) in [(false, "snapshot"), (true, "mailbox_with_seats")] {
        for writer in [false, true] {
            let label = format!("{path}_{}", if writer { "while_writing" } else { "idle" });
            group.bench_function(&label, |bencher| {
                bencher.iter_custom(|iterations| {
                    runtime.block_on(async {
                        let running = Arc::new(AtomicBool::new(writer));
                        let writers: Vec<_> = (0..if writer { 8 } else { 0 })
                            .map(|index| {
                                let (engine, event_id, running) = (engine.clone(), event_id.clone(), running.clone());
                                tokio::spawn(async move {
                                    let buyer = caller(&format!("writer-{index}"));
                                    while running.load(Ordering::Relaxed) {
                                        hold_and_release(&engine, &buyer, &event_id).await;
                                    }
                                })
                            })
                            .collect();
                        // Let the writers get going before the clock starts.
                        tokio::time::sleep(Duration::from_millis(if writer { 20 } else { 0 })).await;
                        let started = Instant::now();
                        for _ in 0..iterations * READS {
                            let details = engine.event_details(&event_id, with_seats).await.unwrap();
                            std::hint::black_box(details);
                        }
                        let elapsed = started.elapsed();
                        running.store(false, Ordering::Relaxed);
                        for handle in writers {
                            handle.await.unwrap();
                        }
                        elapsed
                    })
                })
            });
        }
    }
    group.finish();
    runtime.block_on(engine.shutdown());
}

criterion_group!(benches, bench_hot_event, bench_views);
criterion_main!(benches);
