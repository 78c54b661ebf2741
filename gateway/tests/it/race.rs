//! 200 concurrent buyers race over real gRPC for the 1,000 seats of one event with random
//! multi-seat holds, confirms and releases. Afterwards: no seat is booked twice, every acknowledged
//! booking is listed for its buyer, and GetEvent's counts match the seats.
//!
//! The seed is printed; rerun with TURNSTILE_TEST_SEED=<seed> to replay the same choices.

use crate::common;

use std::collections::{HashMap, HashSet};

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;
use turnstile_proto::v1 as pb;

const BUYERS: usize = 200;
const ROUNDS_PER_BUYER: usize = 12;
const ROWS: usize = 40;
const SEATS_PER_ROW: usize = 25;

#[derive(Debug)]
struct Acknowledged {
    buyer: String,
    booking_id: String,
    seat_ids: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_buyers_race_for_a_thousand_seats() {
    let seed: u64 =
        std::env::var("TURNSTILE_TEST_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or_else(rand::random);
    println!("race seed: {seed} (TURNSTILE_TEST_SEED={seed} replays it)");
    let server = TestServer::start().await;
    let event_id = create_event(&server, ROWS, SEATS_PER_ROW, 0, 8).await;

    let mut tasks = Vec::new();
    for buyer_index in 0..BUYERS {
        let buyer = format!("buyer-{buyer_index}");
        let token = server.token(&buyer);
        let mut client = server.booking();
        let event_id = event_id.clone();
        let mut rng = StdRng::seed_from_u64(seed ^ (buyer_index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut conflicts = 0usize;
            for round in 0..ROUNDS_PER_BUYER {
                let quantity = rng.random_range(1..=4usize);
                let selection = if rng.random_bool(0.7) {
                    // Random seats near each other, so buyers collide often.
                    let row = rng.random_range(0..ROWS);
                    let first = rng.random_range(1..=SEATS_PER_ROW - quantity + 1);
                    seats(&(first..first + quantity).map(|seat| format!("S:R{row}:{seat}")).collect::<Vec<_>>())
                } else {
                    best("S", quantity as i32)
                };
                let request = pb::HoldSeatsRequest {
                    event_id: event_id.clone(),
                    idempotency_key: format!("h{round}"),
                    selection,
                    ..Default::default()
                };
                let hold = match client.hold_seats(authed(&token, request)).await {
                    Ok(response) => response.into_inner().hold.unwrap(),
                    Err(status) => {
                        assert!(
                            matches!(status.code(), Code::FailedPrecondition | Code::ResourceExhausted),
                            "unexpected rejection {status:?}"
                        );
                        conflicts += 1;
                        continue;
                    }
                };
                if rng.random_bool(0.2) {
                    client
                        .release_hold(authed(&token, pb::ReleaseHoldRequest { hold_id: hold.hold_id }))
                        .await
                        .unwrap();
                    continue;
                }
                let confirm = pb::ConfirmHoldRequest {
                    hold_id: hold.hold_id.clone(),
                    payment_reference: format!("pay-{}", hold.hold_id),
                    idempotency_key: format!("c{round}"),
                };
                let booking = client.confirm_hold(authed(&token, confirm)).await.unwrap().into_inner().booking.unwrap();
                let booked: Vec<String> = booking.tickets.iter().map(|ticket| ticket.seat_id.clone()).collect();
                let held: Vec<String> = hold.tickets.iter().map(|ticket| ticket.seat_id.clone()).collect();
                assert_eq!(booked, held, "a booking has exactly its hold's seats");
                acknowledged.push(Acknowledged {
                    buyer: buyer.clone(),
                    booking_id: booking.booking_id,
                    seat_ids: booked,
                });
            }
            (acknowledged, conflicts)
        }));
    }
    let mut acknowledged = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let (mut buyer_bookings, buyer_conflicts) = task.await.unwrap();
        acknowledged.append(&mut buyer_bookings);
        conflicts += buyer_conflicts;
    }
    println!("{} bookings acknowledged, {conflicts} holds refused", acknowledged.len());
    assert!(conflicts > 0, "buyers must have collided for this test to mean anything");

    // No seat booked twice.
    let mut booked_seats = HashSet::new();
    for booking in &acknowledged {
        for seat_id in &booking.seat_ids {
            assert!(booked_seats.insert(seat_id.clone()), "seat {seat_id} booked twice");
        }
    }

    // Every acknowledged booking is listed for its buyer, and nothing else is.
    let mut by_buyer: HashMap<&str, HashSet<&str>> = HashMap::new();
    for booking in &acknowledged {
        by_buyer.entry(&booking.buyer).or_default().insert(&booking.booking_id);
    }
    for buyer_index in 0..BUYERS {
        let buyer = format!("buyer-{buyer_index}");
        let token = server.token(&buyer);
        let mut listed = HashSet::new();
        let mut page_token = String::new();
        loop {
            let page = server
                .booking()
                .list_bookings(authed(&token, pb::ListBookingsRequest { page_size: 3, page_token: page_token.clone() }))
                .await
                .unwrap()
                .into_inner();
            for booking in page.bookings {
                assert_eq!(booking.buyer_id, buyer);
                assert!(listed.insert(booking.booking_id), "a booking listed twice");
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let expected: HashSet<String> =
            by_buyer.get(buyer.as_str()).into_iter().flatten().map(|id| id.to_string()).collect();
        assert_eq!(listed, expected, "{buyer}'s bookings");
    }

    // GetEvent's counts match the seats, and the booked seats are exactly the acknowledged ones.
    let view = server
        .catalog()
        .get_event(pb::GetEventRequest { event_id: event_id.clone(), include_seats: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let status_of =
        |status: pb::SeatStatus| view.seats.iter().filter(|seat| seat.status == status as i32).count() as u32;
    let stalls = &view.availability[0];
    assert_eq!(stalls.total as usize, ROWS * SEATS_PER_ROW);
    assert_eq!(stalls.booked, status_of(pb::SeatStatus::Booked));
    assert_eq!(stalls.held, status_of(pb::SeatStatus::Held));
    assert_eq!(stalls.available, status_of(pb::SeatStatus::Available));
    assert_eq!(stalls.held, 0, "every hold was confirmed or released");
    let booked_in_view: HashSet<String> = view
        .seats
        .iter()
        .filter(|seat| seat.status == pb::SeatStatus::Booked as i32)
        .map(|seat| seat.seat_id.clone())
        .collect();
    assert_eq!(booked_in_view, booked_seats);
    server.stop().await;
}
