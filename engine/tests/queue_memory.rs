//! What a waiting buyer costs: the process's resident memory before and after a crowd joins one
//! event's line (alone in its own test binary, so nothing else allocates meanwhile).
//!
//! CI joins 200,000 buyers; the waiting-room issue's figure (10M buyers well under 1 GiB):
//!
//! TURNSTILE_QUEUE_MEMORY_BUYERS=10000000 cargo test --release -p turnstile-engine --test queue_memory -- --nocapture

mod common;

use std::time::Instant;

use turnstile_engine::ids::BuyerId;
use turnstile_engine::queue::QueueConfig;
use turnstile_engine::Engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_buyer_costs_a_few_dozen_bytes() {
    let buyers: u64 =
        std::env::var("TURNSTILE_QUEUE_MEMORY_BUYERS").ok().and_then(|value| value.parse().ok()).unwrap_or(200_000);
    let engine = Engine::new();
    let event_id =
        common::create_event(&engine, vec![common::reserved("S", &["A", "B", "C", "D"], 500)], None, None).await;
    // Admission paused (one buyer a second): the whole crowd stays in line.
    let config = QueueConfig { enabled: true, rate_per_second: 1, ..QueueConfig::default() };
    engine.configure_queue(&event_id, config).await.unwrap();
    // Warm-up: the actor, its first map allocation and the id formatting are not per buyer.
    engine.join_queue(&event_id, &BuyerId::new("warm-up")).await.unwrap();

    let before = common::resident_bytes();
    let started = Instant::now();
    let mut name = String::with_capacity(16);
    for index in 0..buyers {
        use std::fmt::Write;
        name.clear();
        write!(name, "fan-{index:08}").unwrap();
        let (place, _) = engine.join_queue(&event_id, &BuyerId::new(name.as_str())).await.unwrap();
        assert_eq!(place.position, index + 2);
    }
    let seconds = started.elapsed().as_secs_f64();
    let per_buyer = common::resident_bytes().saturating_sub(before) as f64 / buyers as f64;
    println!(
        "{buyers} buyers joined in {seconds:.2} s ({:.0} joins/s); resident memory grew {:.1} MiB, {per_buyer:.1} bytes per \
         buyer; 10M buyers at this rate: {:.0} MiB",
        buyers as f64 / seconds,
        per_buyer * buyers as f64 / 1_048_576.0,
        per_buyer * 10_000_000.0 / 1_048_576.0,
    );
    // A hash and a position with the map's slack; a copy of each buyer's id would be twice this.
    assert!(per_buyer < 64.0, "a waiting buyer costs {per_buyer:.1} bytes");
}
