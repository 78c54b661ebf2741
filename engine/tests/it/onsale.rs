//! An on-sale through the waiting room, end to end in one process: a crowd joins one event's line,
//! is admitted automatically as the inventory allows, and each admitted buyer uses their pass to
//! hold and confirm (a few walk away and let their pass expire). Reports time to sell out,
//! oversell (must be 0), admission order and the line's memory.
//!
//! CI runs a small crowd. The full simulation of the waiting-room issue (1M buyers, 50k seats):
//!
//! TURNSTILE_ONSALE_BUYERS=1000000 TURNSTILE_ONSALE_SEATS=50000 \
//!     cargo test --release -p turnstile-engine --test it onsale:: -- --nocapture

use crate::common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use turnstile_engine::engine::EngineOptions;
use turnstile_engine::ids::{BuyerId, EventId};
use turnstile_engine::inventory::{Caller, SeatStatus, Selection};
use turnstile_engine::queue::QueueConfig;
use turnstile_engine::{Engine, Error};

const SEATS_PER_SECTION: u32 = 2_000;
const SEATS_PER_ROW: u32 = 50;
const SEATS_PER_BUYER_MAX: u32 = 4;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

async fn stadium(engine: &Engine, seats: u32) -> (EventId, Vec<String>) {
    let row_labels: Vec<String> = (0..SEATS_PER_SECTION / SEATS_PER_ROW).map(|row| format!("R{row}")).collect();
    let row_refs: Vec<&str> = row_labels.iter().map(String::as_str).collect();
    let section_ids: Vec<String> =
        (0..seats.div_ceil(SEATS_PER_SECTION)).map(|section| format!("S{section}")).collect();
    let sections =
        section_ids.iter().map(|section_id| common::reserved(section_id, &row_refs, SEATS_PER_ROW)).collect();
    let event_id = common::create_event(engine, sections, None, Some(SEATS_PER_BUYER_MAX)).await;
    (event_id, section_ids)
}

fn buyer(index: u64) -> BuyerId {
    BuyerId::new(format!("fan-{index:07}"))
}

struct Report {
    buyers: u64,
    seats: u64,
    join_seconds: f64,
    queue_bytes_per_buyer: f64,
    sell_out_seconds: f64,
    admitted: u64,
    served: u64,
    abandoned: u64,
    booked_seats: u64,
    /// Admitted buyers whose pass had expired before they used it (the simulated buyers act
    /// one worker at a time, so a long backlog can outlast a pass).
    expired_passes: u64,
    /// Admitted buyers who found no seat left to hold.
    found_nothing: u64,
}

/// Runs the on-sale; panics if any seat is sold twice, any booking is lost, or admission ran out
/// of order.
async fn on_sale(buyers: u64, seats: u32, workers: u64, abandon_percent: u64) -> Report {
    let data_dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(data_dir.path(), EngineOptions::default()).await.unwrap();
    let (event_id, section_ids) = stadium(&engine, seats).await;
    // Opens in the future, so the whole crowd is in line before admission starts.
    let opens_at_ms = engine.now_ms() + 3_600_000;
    let config = QueueConfig {
        enabled: true,
        rate_per_second: 0,
        opens_at_ms: Some(opens_at_ms),
        pass_ttl_ms: 10_000,
        seats_per_pass: SEATS_PER_BUYER_MAX,
    };
    engine.configure_queue(&event_id, config.clone()).await.unwrap();

    // The crowd joins (from a few tasks, as from many gateway connections).
    let memory_before = common::resident_bytes();
    let started = Instant::now();
    let joiners = 8;
    let mut joins = Vec::new();
    for joiner in 0..joiners {
        let (engine, event_id) = (engine.clone(), event_id.clone());
        joins.push(tokio::spawn(async move {
            let mut index = joiner;
            while index < buyers {
                let (place, _) = engine.join_queue(&event_id, &buyer(index)).await.unwrap();
                assert_eq!(place.position, 0, "nobody has a place before the opening draw");
                index += joiners;
            }
        }));
    }
    for join in joins {
        join.await.unwrap();
    }
    let join_seconds = started.elapsed().as_secs_f64();
    let queue_bytes_per_buyer = common::resident_bytes().saturating_sub(memory_before) as f64 / buyers as f64;

    // Opening: the draw, at a trickle (one buyer a second) while the simulation learns who drew
    // which place, then automatic admission.
    let trickle = QueueConfig { opens_at_ms: Some(engine.now_ms()), rate_per_second: 1, ..config.clone() };
    engine.configure_queue(&event_id, trickle).await.unwrap();
    let mut positions = vec![0u32; buyers as usize + 1];
    {
        // Who is where: every buyer asks once (as their WatchQueue would).
        for index in 0..buyers {
            let (place, _) = engine.join_queue(&event_id, &buyer(index)).await.unwrap();
            assert!(place.position >= 1 && place.position <= buyers, "drawn into the line");
            assert_eq!(positions[place.position as usize], 0, "two buyers drew position {}", place.position);
            positions[place.position as usize] = index as u32 + 1;
        }
    }
    let buyer_at: Arc<Vec<u32>> = Arc::new(positions);
    let opened = Instant::now();
    engine.configure_queue(&event_id, QueueConfig { opens_at_ms: Some(engine.now_ms()), ..config }).await.unwrap();
    let (_, mut progress) = engine.join_queue(&event_id, &buyer(0)).await.unwrap();

    let (sender, receiver) = tokio::sync::mpsc::channel::<u64>(4_096);
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let served = Arc::new(AtomicU64::new(0));
    let abandoned = Arc::new(AtomicU64::new(0));
    let expired = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (engine, event_id, receiver) = (engine.clone(), event_id.clone(), receiver.clone());
        let (buyer_at, section_ids) = (buyer_at.clone(), section_ids.clone());
        let (served, abandoned, refused, expired) =
            (served.clone(), abandoned.clone(), refused.clone(), expired.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(position) = receiver.lock().await.recv().await else { break };
                let index = u64::from(buyer_at[position as usize] - 1);
                if index % 100 < abandon_percent {
                    abandoned.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                match engine.claim_pass(&event_id, position, None).await {
                    Ok(()) => {}
                    Err(Error::PermissionDenied { .. }) => {
                        expired.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Err(error) => panic!("claim: {error}"),
                }
                let caller = Caller { buyer: buyer(index), admin: false };
                let quantity = i64::from(1 + (index % u64::from(SEATS_PER_BUYER_MAX)) as u32);
                let first = (index as usize) % section_ids.len();
                // The buyer's section first, then the others; fewer seats if that is all there is.
                let mut held = None;
                'search: for quantity in (1..=quantity).rev() {
                    for offset in 0..section_ids.len() {
                        let section_id = section_ids[(first + offset) % section_ids.len()].clone();
                        let selection = Selection::BestAvailable { section_id, quantity };
                        match engine.place_hold(caller.clone(), &event_id, selection, None).await {
                            Ok(hold) => {
                                held = Some(hold);
                                break 'search;
                            }
                            Err(Error::NotEnoughSeats { .. } | Error::SeatsTaken { .. }) => continue,
                            Err(error) => panic!("hold: {error}"),
                        }
                    }
                }
                let Some(hold) = held else {
                    engine.unclaim_pass(&event_id, position).await;
                    refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                engine.confirm_hold(caller, &hold.hold_id, format!("pay-{index}"), None).await.unwrap();
                served.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Hands out admitted positions in the order they are admitted, until the event sells out.
    let mut dispatched = 0u64;
    let sell_out_seconds = loop {
        let current = progress.borrow_and_update().clone();
        assert!(current.admitted_through >= dispatched, "admission went backwards");
        for batch in current.batches.iter() {
            assert!(batch.first <= batch.last && batch.last <= current.admitted_through);
        }
        while dispatched < current.admitted_through {
            dispatched += 1;
            sender.send(dispatched).await.unwrap();
        }
        if std::env::var_os("TURNSTILE_ONSALE_VERBOSE").is_some() {
            eprintln!(
                "{:6.2} s: admitted {} served {} expired {}",
                opened.elapsed().as_secs_f64(),
                current.admitted_through,
                served.load(Ordering::Relaxed),
                expired.load(Ordering::Relaxed)
            );
        }
        if current.sold_out {
            break opened.elapsed().as_secs_f64();
        }
        assert!(opened.elapsed() < Duration::from_secs(600), "the on-sale did not sell out in 10 minutes");
        let _ = tokio::time::timeout(Duration::from_millis(500), progress.changed()).await;
    };
    drop(sender);
    for task in tasks {
        task.await.unwrap();
    }

    // No seat sold twice, nothing lost: every seat booked belongs to exactly one booking.
    let overview = engine.event_details(&event_id, true).await.unwrap().overview;
    let booked: u64 =
        overview.seats.iter().flatten().filter(|(_, status)| *status == SeatStatus::Booked).count() as u64;
    assert_eq!(booked, u64::from(seats), "sold out means every seat is booked");
    let mut sold = HashSet::new();
    let mut booked_through_bookings = 0;
    for index in 0..buyers {
        let (bookings, next) = engine.list_bookings(&buyer(index), None, 10).unwrap();
        assert!(next.is_none(), "one booking per buyer at most");
        for booking in bookings {
            for ticket in booking.tickets {
                assert!(sold.insert(ticket.seat_id.clone().unwrap()), "seat {:?} sold twice", ticket.seat_id);
                booked_through_bookings += 1;
            }
        }
    }
    assert_eq!(booked_through_bookings, booked, "every booked seat has its booking");
    let report = Report {
        buyers,
        seats: u64::from(seats),
        join_seconds,
        queue_bytes_per_buyer,
        sell_out_seconds,
        admitted: progress.borrow().admitted_through,
        served: served.load(Ordering::Relaxed),
        abandoned: abandoned.load(Ordering::Relaxed),
        booked_seats: booked,
        expired_passes: expired.load(Ordering::Relaxed),
        found_nothing: refused.load(Ordering::Relaxed),
    };
    engine.shutdown().await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_sells_out_an_event_through_the_waiting_room_without_overselling() {
    let buyers = setting("TURNSTILE_ONSALE_BUYERS", 20_000);
    let seats = setting("TURNSTILE_ONSALE_SEATS", 2_000) as u32;
    let workers = setting("TURNSTILE_ONSALE_WORKERS", 64);
    let report = on_sale(buyers, seats, workers, 5).await;
    println!(
        "on-sale: {} buyers for {} seats; joined in {:.2} s ({:.0} joins/s), line memory {:.1} bytes per buyer; \
         sold out {:.2} s after opening; {} admitted (line depth {:.2}%), {} served, {} walked away, \
         {} passes expired before use, {} found no seat, {} seats booked, oversell 0",
        report.buyers,
        report.seats,
        report.join_seconds,
        report.buyers as f64 / report.join_seconds,
        report.queue_bytes_per_buyer,
        report.sell_out_seconds,
        report.admitted,
        100.0 * report.admitted as f64 / report.buyers as f64,
        report.served,
        report.abandoned,
        report.expired_passes,
        report.found_nothing,
        report.booked_seats,
    );
    assert_eq!(report.booked_seats, report.seats);
    assert!(report.admitted < report.buyers, "a crowd ten times the seats is not all admitted");
}
