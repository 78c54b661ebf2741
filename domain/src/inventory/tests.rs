//! Inventory logic with no runtime: decide + apply, driven by hand-picked times.

use super::*;
use crate::seat_map::{numbered_rows, SectionSpec};

const T0: u64 = 1_800_000_000_000;
const TTL: u64 = limits::HOLD_TTL_MS_DEFAULT;

fn stadium() -> Inventory {
    let sections = vec![
        SectionSpec {
            section_id: "101".into(),
            name: "Lower 101".into(),
            rows: numbered_rows(&["A", "B", "C"], 10),
            general_admission_capacity: 0,
        },
        SectionSpec {
            section_id: "102".into(),
            name: "Lower 102".into(),
            rows: numbered_rows(&["A"], 5),
            general_admission_capacity: 0,
        },
        SectionSpec { section_id: "FLOOR".into(), name: "Floor".into(), rows: vec![], general_admission_capacity: 100 },
    ];
    let seat_map = Arc::new(SeatMap::build(&sections).unwrap());
    let terms = Terms {
        currency: "USD".into(),
        price_levels: vec![
            PriceLevel {
                price_level_id: "P1".into(),
                name: "Premium".into(),
                amount_minor: 15_000,
                section_ids: vec!["101".into()],
            },
            PriceLevel {
                price_level_id: "P2".into(),
                name: "Standard".into(),
                amount_minor: 8_000,
                section_ids: vec!["102".into(), "FLOOR".into()],
            },
        ],
        hold_ttl_ms: TTL,
        buyer_seat_limit: 8,
    };
    Inventory::new(EventId::mint(1), seat_map, terms).unwrap()
}

fn buyer(name: &str) -> Caller {
    Caller { buyer: BuyerId::new(name), admin: false }
}

fn admin() -> Caller {
    Caller { buyer: BuyerId::new("root"), admin: true }
}

fn seats(ids: &[&str]) -> Selection {
    Selection::Seats(ids.iter().map(|id| id.to_string()).collect())
}

/// Decides and applies; returns the outcome or the rejection.
fn run(inventory: &mut Inventory, request: Request, now_ms: u64) -> Result<Outcome> {
    let nonce = inventory.version() + 1;
    match inventory.decide(&request, now_ms, nonce)? {
        Decision::Apply(command) => Ok(inventory.apply(&command)),
        Decision::Answered(outcome) => Ok(outcome),
    }
}

fn place(inventory: &mut Inventory, who: &str, selection: Selection, now_ms: u64) -> Result<HoldId> {
    let request = Request::PlaceHold { caller: buyer(who), selection, idempotency_key: None };
    match run(inventory, request, now_ms)? {
        Outcome::Hold(hold_id) => Ok(hold_id),
        other => panic!("unexpected {other:?}"),
    }
}

fn confirm(inventory: &mut Inventory, who: &str, hold_id: &HoldId, now_ms: u64) -> Result<BookingId> {
    let request = Request::ConfirmHold {
        caller: buyer(who),
        hold_id: hold_id.clone(),
        payment_reference: format!("pay-{hold_id}"),
        idempotency_key: None,
    };
    match run(inventory, request, now_ms)? {
        Outcome::Booking(booking_id) => Ok(booking_id),
        other => panic!("unexpected {other:?}"),
    }
}

fn seat_ids_of(inventory: &Inventory, hold_id: &HoldId) -> Vec<String> {
    inventory.hold_view(hold_id, None).unwrap().tickets.into_iter().map(|ticket| ticket.seat_id.unwrap()).collect()
}

fn available(inventory: &Inventory, section_id: &str) -> u32 {
    inventory.availability().into_iter().find(|row| row.section_id == section_id).unwrap().available
}

#[test]
fn hold_then_confirm_books_the_seats_at_the_locked_price() {
    let mut inventory = stadium();
    let hold_id = place(&mut inventory, "ann", seats(&["101:A:1", "101:A:2"]), T0).unwrap();
    let hold = inventory.hold_view(&hold_id, None).unwrap();
    assert_eq!(hold.status, HoldStatus::Active);
    assert_eq!(hold.total_minor, 30_000);
    assert_eq!(hold.expires_at_ms, T0 + TTL);
    assert_eq!(available(&inventory, "101"), 28);

    let booking_id = confirm(&mut inventory, "ann", &hold_id, T0 + 1_000).unwrap();
    let booking = inventory.booking_view(&booking_id, None).unwrap();
    assert_eq!(booking.status, BookingStatus::Confirmed);
    assert_eq!(booking.total_minor, 30_000);
    assert_eq!(inventory.hold_view(&hold_id, None).unwrap().status, HoldStatus::Confirmed);
    let row = inventory.availability().into_iter().find(|row| row.section_id == "101").unwrap();
    assert_eq!((row.available, row.held, row.booked), (28, 0, 2));
    inventory.check_invariants().unwrap();
}

#[test]
fn a_taken_seat_fails_the_whole_hold_and_names_the_seat() {
    let mut inventory = stadium();
    place(&mut inventory, "ann", seats(&["101:A:3"]), T0).unwrap();
    let error = place(&mut inventory, "bob", seats(&["101:A:2", "101:A:3", "101:A:4"]), T0).unwrap_err();
    assert_eq!(error, Error::SeatsTaken { seat_ids: vec!["101:A:3".into()] });
    // All or nothing: the free seats of the failed request are still free.
    assert_eq!(available(&inventory, "101"), 29);
    inventory.check_invariants().unwrap();
}

#[test]
fn release_returns_seats_and_confirming_a_released_hold_fails() {
    let mut inventory = stadium();
    let hold_id = place(&mut inventory, "ann", seats(&["102:A:1"]), T0).unwrap();
    run(&mut inventory, Request::ReleaseHold { caller: buyer("ann"), hold_id: hold_id.clone() }, T0 + 5).unwrap();
    assert_eq!(available(&inventory, "102"), 5);
    let error = confirm(&mut inventory, "ann", &hold_id, T0 + 10).unwrap_err();
    assert_eq!(error, Error::HoldNotActive { hold_id: hold_id.to_string(), status: "released" });
    // The seat can be held again by someone else.
    place(&mut inventory, "bob", seats(&["102:A:1"]), T0 + 20).unwrap();
}

#[test]
fn expiry_returns_seats_at_the_deadline_and_not_before() {
    let mut inventory = stadium();
    let early = place(&mut inventory, "ann", seats(&["101:A:1"]), T0).unwrap();
    let late = place(&mut inventory, "bob", seats(&["101:A:2"]), T0 + 1_000).unwrap();
    assert_eq!(inventory.next_deadline_ms(), Some(T0 + TTL));
    assert_eq!(inventory.expiry_due(T0 + TTL - 1), None);

    let command = inventory.expiry_due(T0 + TTL).unwrap();
    assert_eq!(inventory.apply(&command), Outcome::HoldsExpired { hold_ids: vec![early.clone()] });
    assert_eq!(inventory.hold_view(&early, None).unwrap().status, HoldStatus::Expired);
    assert_eq!(inventory.hold_view(&late, None).unwrap().status, HoldStatus::Active);
    assert_eq!(inventory.next_deadline_ms(), Some(T0 + 1_000 + TTL));
    assert_eq!(available(&inventory, "101"), 29);
    inventory.check_invariants().unwrap();
}

#[test]
fn a_late_confirm_rebooks_the_same_seats_while_they_are_free_and_names_them_when_not() {
    // Past the deadline, before the timer: the seats are still this hold's.
    let mut inventory = stadium();
    let hold_id = place(&mut inventory, "ann", seats(&["101:A:1"]), T0).unwrap();
    confirm(&mut inventory, "ann", &hold_id, T0 + TTL).unwrap();

    // Expired, seats still free: booked again, same seats, same locked price.
    let hold_id = place(&mut inventory, "ann", seats(&["101:A:2", "101:A:3"]), T0).unwrap();
    let expire = inventory.expiry_due(T0 + TTL).unwrap();
    inventory.apply(&expire);
    assert_eq!(available(&inventory, "101"), 29);
    let booking_id = confirm(&mut inventory, "ann", &hold_id, T0 + TTL + 5_000).unwrap();
    let booking = inventory.booking_view(&booking_id, None).unwrap();
    let booked: Vec<_> = booking.tickets.iter().map(|ticket| ticket.seat_id.clone().unwrap()).collect();
    assert_eq!(booked, vec!["101:A:2".to_string(), "101:A:3".to_string()]);
    assert_eq!(booking.total_minor, 30_000);
    assert_eq!(inventory.hold_view(&hold_id, None).unwrap().status, HoldStatus::Confirmed);
    assert_eq!(available(&inventory, "101"), 27);
    inventory.check_invariants().unwrap();

    // Expired and one seat taken since: refused, naming the seat; nothing changes.
    let hold_id = place(&mut inventory, "bob", seats(&["101:B:1", "101:B:2"]), T0 + 1).unwrap();
    inventory.apply(&inventory.expiry_due(T0 + 1 + TTL).unwrap());
    place(&mut inventory, "cy", seats(&["101:B:2"]), T0 + 2 + TTL).unwrap();
    let version = inventory.version();
    let error = confirm(&mut inventory, "bob", &hold_id, T0 + 3 + TTL).unwrap_err();
    assert_eq!(error, Error::SeatsTaken { seat_ids: vec!["101:B:2".into()] });
    assert_eq!(inventory.version(), version);

    // General admission: refused when the places are gone.
    let hold_id =
        place(&mut inventory, "dee", Selection::BestAvailable { section_id: "FLOOR".into(), quantity: 3 }, T0 + 10)
            .unwrap();
    inventory.apply(&inventory.expiry_due(T0 + 10 + TTL).unwrap());
    for index in 0..20 {
        let who = format!("floor-{index}");
        place(
            &mut inventory,
            &who,
            Selection::BestAvailable { section_id: "FLOOR".into(), quantity: 5 },
            T0 + 11 + TTL,
        )
        .unwrap();
    }
    let error = confirm(&mut inventory, "dee", &hold_id, T0 + 12 + TTL).unwrap_err();
    assert!(matches!(error, Error::NotEnoughSeats { ref section_id, .. } if section_id == "FLOOR"), "{error:?}");
    // A released hold stays dead.
    let released = place(&mut inventory, "eve", seats(&["102:A:1"]), T0 + 20).unwrap();
    run(&mut inventory, Request::ReleaseHold { caller: buyer("eve"), hold_id: released.clone() }, T0 + 21).unwrap();
    let error = confirm(&mut inventory, "eve", &released, T0 + 22).unwrap_err();
    assert_eq!(error, Error::HoldNotActive { hold_id: released.to_string(), status: "released" });
    inventory.check_invariants().unwrap();
}

#[test]
fn cancel_booking_returns_seats_to_sale_and_is_idempotent() {
    let mut inventory = stadium();
    let hold_id = place(&mut inventory, "ann", seats(&["101:B:5", "101:B:6"]), T0).unwrap();
    let booking_id = confirm(&mut inventory, "ann", &hold_id, T0 + 1).unwrap();
    let request = Request::CancelBooking { caller: buyer("ann"), booking_id: booking_id.clone() };
    run(&mut inventory, request.clone(), T0 + 2).unwrap();
    let version = inventory.version();
    // A retried cancel answers the same and changes nothing.
    assert_eq!(run(&mut inventory, request, T0 + 3).unwrap(), Outcome::Booking(booking_id.clone()));
    assert_eq!(inventory.version(), version);
    let booking = inventory.booking_view(&booking_id, None).unwrap();
    assert_eq!((booking.status, booking.cancelled_at_ms), (BookingStatus::Cancelled, Some(T0 + 2)));
    assert_eq!(available(&inventory, "101"), 30);
    place(&mut inventory, "bob", seats(&["101:B:5"]), T0 + 4).unwrap();
    inventory.check_invariants().unwrap();
}

#[test]
fn best_available_takes_adjacent_seats_nearest_the_stage_in_the_middle() {
    let mut inventory = stadium();
    let hold_id =
        place(&mut inventory, "ann", Selection::BestAvailable { section_id: "101".into(), quantity: 4 }, T0).unwrap();
    // Row A has 10 seats; the centred block of four is 4..7.
    assert_eq!(seat_ids_of(&inventory, &hold_id), ["101:A:4", "101:A:5", "101:A:6", "101:A:7"]);
}

#[test]
fn best_available_avoids_stranding_a_single_seat() {
    let mut inventory = stadium();
    // Row A: seats 4..=10 taken, 1..=3 free. A pair in row A would strand one seat, so the pair
    // goes to row B, centred.
    let taken: Vec<String> = (4..=10).map(|number| format!("101:A:{number}")).collect();
    place(&mut inventory, "ann", Selection::Seats(taken), T0).unwrap();
    let pair =
        place(&mut inventory, "bob", Selection::BestAvailable { section_id: "101".into(), quantity: 2 }, T0).unwrap();
    assert_eq!(seat_ids_of(&inventory, &pair), ["101:B:5", "101:B:6"]);
    // Three fit row A exactly, stranding nothing: nearest the stage wins.
    let triple =
        place(&mut inventory, "cat", Selection::BestAvailable { section_id: "101".into(), quantity: 3 }, T0).unwrap();
    assert_eq!(seat_ids_of(&inventory, &triple), ["101:A:1", "101:A:2", "101:A:3"]);
}

#[test]
fn best_available_strands_a_seat_only_when_it_must() {
    let mut inventory = stadium();
    // Section 102 is one row of five; with 1 and 2 taken, any pair leaves one seat alone.
    place(&mut inventory, "ann", seats(&["102:A:1", "102:A:2"]), T0).unwrap();
    let pair =
        place(&mut inventory, "bob", Selection::BestAvailable { section_id: "102".into(), quantity: 2 }, T0).unwrap();
    assert_eq!(seat_ids_of(&inventory, &pair), ["102:A:3", "102:A:4"]);
    // One seat left: two adjacent cannot be had.
    let error = place(&mut inventory, "cat", Selection::BestAvailable { section_id: "102".into(), quantity: 2 }, T0)
        .unwrap_err();
    assert!(matches!(error, Error::NotEnoughSeats { ref reason, .. } if reason.contains("1 available")), "{error}");
}

#[test]
fn best_available_reports_when_no_row_has_enough_adjacent_seats() {
    let mut inventory = stadium();
    // Leave every row of 101 with free runs of at most 4.
    for (who, row) in [("ann", "A"), ("bob", "B"), ("cat", "C")] {
        place(&mut inventory, who, seats(&[&format!("101:{row}:5"), &format!("101:{row}:6")]), T0).unwrap();
    }
    let error = place(&mut inventory, "dan", Selection::BestAvailable { section_id: "101".into(), quantity: 5 }, T0)
        .unwrap_err();
    assert!(
        matches!(error, Error::NotEnoughSeats { ref reason, .. } if reason.contains("no 5 adjacent seats")),
        "{error}"
    );
}

#[test]
fn booking_ids_sort_by_when_they_were_made_and_stay_unique_within_a_millisecond() {
    let mut inventory = stadium();
    let floor = || Selection::BestAvailable { section_id: "FLOOR".into(), quantity: 1 };
    let holds: Vec<HoldId> = (0..4).map(|n| place(&mut inventory, &format!("fan{n}"), floor(), T0).unwrap()).collect();
    // Confirms the hold of `who` at `now_ms` with the random nonce `random`.
    let confirm_with = |inventory: &mut Inventory, who: &str, hold_id: &HoldId, now_ms: u64, random: u64| {
        let request = Request::ConfirmHold {
            caller: buyer(who),
            hold_id: hold_id.clone(),
            payment_reference: format!("pay-{hold_id}"),
            idempotency_key: None,
        };
        let Decision::Apply(command) = inventory.decide(&request, now_ms, random).unwrap() else {
            panic!("not applied")
        };
        let Outcome::Booking(booking_id) = inventory.apply(&command) else { panic!("no booking") };
        booking_id
    };
    // A later booking sorts after an earlier one, whatever their random bits.
    let first = confirm_with(&mut inventory, "fan0", &holds[0], T0 + 2, u64::MAX);
    let second = confirm_with(&mut inventory, "fan1", &holds[1], T0 + 3, 1);
    assert!(first < second, "{first} then {second}");
    // The same millisecond and the same random bits: the second id moves on, it does not collide.
    let third = confirm_with(&mut inventory, "fan2", &holds[2], T0 + 4, 42);
    let fourth = confirm_with(&mut inventory, "fan3", &holds[3], T0 + 4, 42);
    assert_ne!(third, fourth);
    assert!(second < third && second < fourth);
    for booking_id in [&first, &second, &third, &fourth] {
        assert_eq!(booking_id.event_id().as_ref(), Some(inventory.event_id()));
    }
    inventory.check_invariants().unwrap();
}

#[test]
fn general_admission_is_sold_by_quantity_up_to_capacity() {
    let mut inventory = stadium();
    let mut holders = Vec::new();
    for index in 0..12 {
        let who = format!("fan{index}");
        let hold_id =
            place(&mut inventory, &who, Selection::BestAvailable { section_id: "FLOOR".into(), quantity: 8 }, T0)
                .unwrap();
        holders.push((who, hold_id));
    }
    assert_eq!(available(&inventory, "FLOOR"), 4);
    let error = place(&mut inventory, "late", Selection::BestAvailable { section_id: "FLOOR".into(), quantity: 5 }, T0)
        .unwrap_err();
    assert!(matches!(error, Error::NotEnoughSeats { .. }));
    let (who, hold_id) = &holders[0];
    let booking_id = confirm(&mut inventory, who, hold_id, T0 + 1).unwrap();
    let booking = inventory.booking_view(&booking_id, None).unwrap();
    assert_eq!(booking.tickets.len(), 8);
    assert!(booking.tickets.iter().all(|ticket| ticket.seat_id.is_none() && ticket.price_level_id == "P2"));
    assert_eq!(booking.total_minor, 8 * 8_000);
    let error = place(&mut inventory, "x", seats(&["FLOOR:A:1"]), T0).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument { ref reason, .. } if reason.contains("general admission")));
    inventory.check_invariants().unwrap();
}

#[test]
fn the_buyer_limit_counts_holds_and_bookings() {
    let mut inventory = stadium();
    let first =
        place(&mut inventory, "ann", Selection::BestAvailable { section_id: "101".into(), quantity: 5 }, T0).unwrap();
    confirm(&mut inventory, "ann", &first, T0 + 1).unwrap();
    place(&mut inventory, "ann", Selection::BestAvailable { section_id: "101".into(), quantity: 3 }, T0 + 2).unwrap();
    let error = place(&mut inventory, "ann", seats(&["102:A:1"]), T0 + 3).unwrap_err();
    assert!(matches!(error, Error::LimitExceeded { limit: "buyer_seat_limit", .. }), "{error}");
    // Another buyer is not affected.
    place(&mut inventory, "bob", seats(&["102:A:1"]), T0 + 3).unwrap();
}

#[test]
fn the_number_of_live_holds_per_buyer_is_bounded() {
    let mut inventory = stadium();
    let mut limit_raised = Request::UpdateTerms { hold_ttl_ms: None, buyer_seat_limit: Some(100) };
    run(&mut inventory, limit_raised.clone(), T0).unwrap();
    for index in 0..limits::HOLDS_PER_BUYER_MAX {
        place(
            &mut inventory,
            "ann",
            Selection::BestAvailable { section_id: "FLOOR".into(), quantity: 1 },
            T0 + u64::from(index),
        )
        .unwrap();
    }
    let error =
        place(&mut inventory, "ann", Selection::BestAvailable { section_id: "FLOOR".into(), quantity: 1 }, T0 + 50)
            .unwrap_err();
    assert!(matches!(error, Error::LimitExceeded { limit: "holds_per_buyer", .. }), "{error}");
    limit_raised = Request::UpdateTerms { hold_ttl_ms: Some(1), buyer_seat_limit: None };
    let error = run(&mut inventory, limit_raised, T0).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument { ref field, .. } if field == "hold_ttl_seconds"));
}

#[test]
fn a_retried_hold_with_the_same_key_returns_the_first_hold() {
    let mut inventory = stadium();
    let request = Request::PlaceHold {
        caller: buyer("ann"),
        selection: Selection::BestAvailable { section_id: "101".into(), quantity: 2 },
        idempotency_key: Some("k1".into()),
    };
    let first = run(&mut inventory, request.clone(), T0).unwrap();
    let version = inventory.version();
    let again = run(&mut inventory, request.clone(), T0 + 10).unwrap();
    assert_eq!(first, again);
    assert_eq!(inventory.version(), version);
    assert_eq!(available(&inventory, "101"), 28);
    // The same key from another buyer is another request.
    let Request::PlaceHold { selection, idempotency_key, .. } = request else { unreachable!() };
    let other =
        run(&mut inventory, Request::PlaceHold { caller: buyer("bob"), selection, idempotency_key }, T0).unwrap();
    assert_ne!(first, other);
}

#[test]
fn a_retried_confirm_returns_the_first_booking() {
    let mut inventory = stadium();
    let hold_id = place(&mut inventory, "ann", seats(&["101:C:1"]), T0).unwrap();
    let confirm_request = |key: &str, reference: &str| Request::ConfirmHold {
        caller: buyer("ann"),
        hold_id: hold_id.clone(),
        payment_reference: reference.into(),
        idempotency_key: Some(key.into()),
    };
    let first = run(&mut inventory, confirm_request("c1", "pay-1"), T0 + 1).unwrap();
    assert_eq!(run(&mut inventory, confirm_request("c1", "pay-1"), T0 + 2).unwrap(), first);
    // Same payment, no key: still the same booking, not a second one.
    assert_eq!(run(&mut inventory, confirm_request("c2", "pay-1"), T0 + 3).unwrap(), first);
    // A different payment for an already confirmed hold is refused, naming the booking.
    let error = run(&mut inventory, confirm_request("c3", "pay-2"), T0 + 4).unwrap_err();
    assert!(matches!(error, Error::HoldAlreadyConfirmed { .. }), "{error}");
    // Retries survive the hold's expiry deadline.
    assert_eq!(run(&mut inventory, confirm_request("c1", "pay-1"), T0 + TTL + 5).unwrap(), first);
}

#[test]
fn another_buyers_hold_and_booking_are_off_limits() {
    let mut inventory = stadium();
    let hold_id = place(&mut inventory, "ann", seats(&["101:A:1"]), T0).unwrap();
    assert!(matches!(confirm(&mut inventory, "bob", &hold_id, T0), Err(Error::PermissionDenied { .. })));
    let release = Request::ReleaseHold { caller: buyer("bob"), hold_id: hold_id.clone() };
    assert!(matches!(run(&mut inventory, release, T0), Err(Error::PermissionDenied { .. })));
    assert!(matches!(inventory.hold_view(&hold_id, Some(&buyer("bob"))), Err(Error::PermissionDenied { .. })));
    let booking_id = confirm(&mut inventory, "ann", &hold_id, T0).unwrap();
    let cancel = Request::CancelBooking { caller: buyer("bob"), booking_id: booking_id.clone() };
    assert!(matches!(run(&mut inventory, cancel, T0), Err(Error::PermissionDenied { .. })));
    // An admin may cancel it.
    run(&mut inventory, Request::CancelBooking { caller: admin(), booking_id }, T0).unwrap();
}

#[test]
fn bad_seat_lists_name_the_field() {
    let mut inventory = stadium();
    let cases: Vec<(Selection, &str, &str)> = vec![
        (seats(&[]), "seats.seat_ids", "at least one"),
        (Selection::Seats((1..=51).map(|n| format!("101:A:{n}")).collect()), "seats.seat_ids", "at most 50"),
        (seats(&["101:A:1", "101:A:1"]), "seats.seat_ids[1]", "listed twice"),
        (seats(&["101:A:1", "101:Z:1"]), "seats.seat_ids[1]", "no row 'Z'"),
        (Selection::BestAvailable { section_id: "101".into(), quantity: 0 }, "best_available.quantity", "at least 1"),
        (Selection::BestAvailable { section_id: "101".into(), quantity: -3 }, "best_available.quantity", "got -3"),
        (Selection::BestAvailable { section_id: "101".into(), quantity: 51 }, "best_available.quantity", "at most 50"),
        (Selection::BestAvailable { section_id: "999".into(), quantity: 1 }, "best_available.section_id", "no section"),
    ];
    for (selection, expected_field, expected_reason) in cases {
        let error = place(&mut inventory, "ann", selection.clone(), T0).unwrap_err();
        let Error::InvalidArgument { field, reason } = &error else { panic!("{selection:?}: {error}") };
        assert_eq!(field, expected_field, "{selection:?}");
        assert!(reason.contains(expected_reason), "{selection:?}: {reason}");
    }
    assert_eq!(inventory.version(), 0, "no rejected request changed anything");
}

#[test]
fn cancelling_the_event_releases_holds_and_cancels_bookings() {
    let mut inventory = stadium();
    let held = place(&mut inventory, "ann", seats(&["101:A:1"]), T0).unwrap();
    let to_book = place(&mut inventory, "bob", seats(&["101:A:2"]), T0).unwrap();
    let booking_id = confirm(&mut inventory, "bob", &to_book, T0).unwrap();
    let outcome = run(&mut inventory, Request::CancelEvent, T0 + 1).unwrap();
    assert_eq!(outcome, Outcome::EventCancelled { holds_released: 1, bookings_cancelled: vec![booking_id.clone()] });
    assert_eq!(inventory.hold_view(&held, None).unwrap().status, HoldStatus::Cancelled);
    assert_eq!(inventory.booking_view(&booking_id, None).unwrap().status, BookingStatus::Cancelled);
    assert_eq!(inventory.next_deadline_ms(), None);
    assert!(matches!(place(&mut inventory, "cat", seats(&["101:A:3"]), T0 + 2), Err(Error::EventCancelled { .. })));
    assert!(matches!(run(&mut inventory, Request::CancelEvent, T0 + 3), Err(Error::EventCancelled { .. })));
    inventory.check_invariants().unwrap();
}

#[test]
fn ended_holds_are_forgotten_after_the_retention() {
    let mut inventory = stadium();
    let request =
        Request::PlaceHold { caller: buyer("ann"), selection: seats(&["101:A:1"]), idempotency_key: Some("k".into()) };
    let Outcome::Hold(hold_id) = run(&mut inventory, request.clone(), T0).unwrap() else { panic!() };
    run(&mut inventory, Request::ReleaseHold { caller: buyer("ann"), hold_id: hold_id.clone() }, T0 + 1).unwrap();
    inventory.apply(&Command::ExpireHolds { now_ms: T0 + 1 + limits::HOLD_RETENTION_MS });
    assert!(matches!(inventory.hold_view(&hold_id, None), Err(Error::NotFound { .. })));
    // Its idempotency key went with it: the same key now places a new hold.
    let Outcome::Hold(second) = run(&mut inventory, request, T0 + 2 + limits::HOLD_RETENTION_MS).unwrap() else {
        panic!()
    };
    assert_ne!(second, hold_id);
}

#[test]
fn replaying_the_commands_rebuilds_the_same_state() {
    let mut inventory = stadium();
    let mut log = Vec::new();
    let mut now = T0;
    for step in 0..200u64 {
        now += 7_001;
        let who = format!("buyer{}", step % 13);
        let request = match step % 5 {
            0 | 1 => Request::PlaceHold {
                caller: buyer(&who),
                selection: Selection::BestAvailable {
                    section_id: ["101", "102", "FLOOR"][(step % 3) as usize].into(),
                    quantity: 1 + (step % 3) as i64,
                },
                idempotency_key: None,
            },
            2 => match inventory.deadlines.iter().next() {
                Some((_, hold_id)) => Request::ConfirmHold {
                    caller: Caller { buyer: inventory.holds[hold_id].buyer.clone(), admin: false },
                    hold_id: hold_id.clone(),
                    payment_reference: "p".into(),
                    idempotency_key: None,
                },
                None => continue,
            },
            3 => match inventory.bookings.keys().min() {
                Some(booking_id) => Request::CancelBooking { caller: admin(), booking_id: booking_id.clone() },
                None => continue,
            },
            _ => {
                if let Some(command) = inventory.expiry_due(now + 300_000) {
                    inventory.apply(&command);
                    log.push(command);
                }
                continue;
            }
        };
        if let Ok(Decision::Apply(command)) = inventory.decide(&request, now, step) {
            inventory.apply(&command);
            log.push(command);
        }
    }
    let mut replica = stadium();
    for command in &log {
        replica.apply(command);
    }
    assert_eq!(replica.version(), inventory.version());
    assert_eq!(replica.seat_statuses(), inventory.seat_statuses());
    assert_eq!(replica.availability(), inventory.availability());
    let mut booking_ids: Vec<_> = inventory.bookings.keys().cloned().collect();
    booking_ids.sort();
    for booking_id in booking_ids {
        assert_eq!(replica.booking_view(&booking_id, None), inventory.booking_view(&booking_id, None));
    }
    replica.check_invariants().unwrap();
}

#[test]
fn a_hold_is_extended_a_bounded_number_of_times_up_to_a_cap() {
    let mut inventory = stadium();
    let hold_id = place(&mut inventory, "ann", seats(&["101:A:1"]), T0).unwrap();
    let extend = |who: &str| Request::ExtendHold { caller: buyer(who), hold_id: hold_id.clone() };
    let error = run(&mut inventory, extend("bob"), T0 + 1).unwrap_err();
    assert!(matches!(error, Error::PermissionDenied { .. }), "{error:?}");
    run(&mut inventory, extend("ann"), T0 + 1).unwrap();
    assert_eq!(inventory.hold_view(&hold_id, None).unwrap().expires_at_ms, T0 + TTL + TTL / 2);
    assert_eq!(inventory.next_deadline_ms(), Some(T0 + TTL + TTL / 2), "the timer follows the new deadline");
    run(&mut inventory, extend("ann"), T0 + 2).unwrap();
    let view = inventory.hold_view(&hold_id, None).unwrap();
    assert_eq!((view.expires_at_ms, view.extensions), (T0 + 2 * TTL, 2));
    let error = run(&mut inventory, extend("ann"), T0 + 3).unwrap_err();
    assert!(matches!(error, Error::LimitExceeded { limit: "hold_extensions", .. }), "{error:?}");
    // The extended hold does not expire at the old deadline.
    assert_eq!(inventory.expiry_due(T0 + TTL), None);
    inventory.apply(&inventory.expiry_due(T0 + 2 * TTL).unwrap());
    let error = run(&mut inventory, extend("ann"), T0 + 2 * TTL + 1).unwrap_err();
    assert_eq!(error, Error::HoldNotActive { hold_id: hold_id.to_string(), status: "expired" });
    inventory.check_invariants().unwrap();

    // The cap: late extensions add only what is left below twice the TTL.
    let hold_id = place(&mut inventory, "bob", seats(&["101:A:5"]), T0 + 2 * TTL).unwrap();
    let placed = T0 + 2 * TTL;
    run(&mut inventory, Request::ExtendHold { caller: buyer("bob"), hold_id: hold_id.clone() }, placed + TTL - 1)
        .unwrap();
    assert_eq!(inventory.hold_view(&hold_id, None).unwrap().expires_at_ms, placed + TTL + TTL / 2);
    run(&mut inventory, Request::ExtendHold { caller: buyer("bob"), hold_id: hold_id.clone() }, placed + TTL + 1)
        .unwrap();
    assert_eq!(inventory.hold_view(&hold_id, None).unwrap().expires_at_ms, placed + 2 * TTL);
}

#[test]
fn a_payment_in_progress_keeps_the_hold_alive_once_and_replays_identically() {
    let mut inventory = stadium();
    let mut log = Vec::new();
    let hold_id = place(&mut inventory, "ann", seats(&["101:C:4"]), T0).unwrap();
    // One minute before the deadline the buyer starts paying: five more minutes from now.
    let paying = T0 + TTL - 60_000;
    let request = Request::StartPayment { caller: buyer("ann"), hold_id: hold_id.clone() };
    let Decision::Apply(command) = inventory.decide(&request, paying, 7).unwrap() else {
        panic!("a first start applies")
    };
    log.push(command.clone());
    inventory.apply(&command);
    let view = inventory.hold_view(&hold_id, None).unwrap();
    assert!(view.payment_in_progress);
    assert_eq!(view.expires_at_ms, paying + limits::PAYMENT_GRACE_MS);
    // Saying it again changes nothing.
    assert_eq!(inventory.decide(&request, paying + 1, 8).unwrap(), Decision::Answered(Outcome::Hold(hold_id.clone())));
    assert_eq!(inventory.expiry_due(T0 + TTL), None, "not expired mid-payment");
    let booking_id = confirm(&mut inventory, "ann", &hold_id, T0 + TTL + 120_000).unwrap();
    assert_eq!(inventory.booking_view(&booking_id, None).unwrap().status, BookingStatus::Confirmed);
    assert!(!inventory.hold_view(&hold_id, None).unwrap().payment_in_progress);

    // The same commands rebuild the same state.
    let restored = Inventory::restore(&inventory.checkpoint(), inventory.seat_map().clone()).unwrap();
    assert_eq!(restored.hold_view(&hold_id, None), inventory.hold_view(&hold_id, None));
    assert_eq!(restored.booking_view(&booking_id, None), inventory.booking_view(&booking_id, None));
}

fn set_pricing(inventory: &mut Inventory, rules: Option<PricingRules>, now_ms: u64, log: &mut Vec<Command>) {
    let Decision::Apply(command) = inventory.decide(&Request::SetPricing { rules }, now_ms, 0).unwrap() else {
        panic!("pricing rules apply")
    };
    inventory.apply(&command);
    log.push(command);
}

/// Decides and applies a hold, keeping the command; returns the hold's total.
fn priced_hold(inventory: &mut Inventory, who: &str, selection: Selection, now_ms: u64, log: &mut Vec<Command>) -> i64 {
    let request = Request::PlaceHold { caller: buyer(who), selection, idempotency_key: None };
    let Decision::Apply(command) = inventory.decide(&request, now_ms, now_ms).unwrap() else {
        panic!("a new hold applies")
    };
    let Outcome::Hold(hold_id) = inventory.apply(&command) else { panic!("a hold") };
    log.push(command);
    inventory.hold_view(&hold_id, None).unwrap().total_minor
}

fn step(threshold: u32, adjust_percent: i32) -> PriceStep {
    PriceStep { threshold, adjust_percent }
}

#[test]
fn prices_follow_sell_through_and_demand_within_floor_and_ceiling_and_are_locked_in_holds() {
    let mut inventory = stadium();
    let mut log = Vec::new();
    let rules = PricingRules {
        floor_percent: 80,
        ceiling_percent: 150,
        sell_through_steps: vec![step(10, 20), step(50, 40)],
        demand_steps: vec![step(4, 30)],
    };
    set_pricing(&mut inventory, Some(rules), T0, &mut log);
    // Section 101: 30 seats at a base of 150.00.
    assert_eq!(inventory.current_price(0, T0), 15_000);
    let first = priced_hold(&mut inventory, "ann", seats(&["101:A:1", "101:A:2", "101:A:3"]), T0, &mut log);
    assert_eq!(first, 3 * 15_000, "priced before the sale moved");
    // 3 of 30 sold: +20%.
    assert_eq!(inventory.current_price(0, T0 + 1), 18_000);
    let second = priced_hold(&mut inventory, "bob", seats(&["101:B:1"]), T0 + 1, &mut log);
    assert_eq!(second, 18_000);
    // Two more holds inside a minute: four holds in the last minute adds 30%, capped at 150%.
    priced_hold(&mut inventory, "cy", seats(&["101:B:2"]), T0 + 2, &mut log);
    priced_hold(&mut inventory, "dee", seats(&["102:A:1"]), T0 + 3, &mut log);
    assert_eq!(inventory.current_price(0, T0 + 4), 22_500, "20% + 30% = 150%: at the ceiling");
    let all = inventory.current_prices(T0 + 4);
    for section in 0..3u16 {
        assert_eq!(all[section as usize], inventory.current_price(section, T0 + 4), "section {section}");
    }
    // A minute later the demand step no longer applies.
    assert_eq!(inventory.current_price(0, T0 + 3 + 60_000), 18_000);
    // The other level (102 and FLOOR, 105 places at 80.00) moves with its own sell-through.
    assert_eq!(inventory.current_price(1, T0 + 3 + 60_000), 8_000);
    // The locked prices did not move.
    let hold_totals: Vec<i64> = log
        .iter()
        .filter_map(|command| match command {
            Command::PlaceHold { hold_id, .. } => Some(inventory.hold_view(hold_id, None).unwrap().total_minor),
            _ => None,
        })
        .collect();
    // The fourth hold was the fourth in the minute: demand moved prices only after it.
    assert_eq!(hold_totals, vec![45_000, 18_000, 18_000, 8_000]);

    // A discount step is held up by the floor.
    let discount = PricingRules {
        floor_percent: 90,
        ceiling_percent: 100,
        sell_through_steps: vec![step(0, -50)],
        demand_steps: vec![],
    };
    set_pricing(&mut inventory, Some(discount), T0 + 100_000, &mut log);
    assert_eq!(inventory.current_price(1, T0 + 100_000), 7_200);
    set_pricing(&mut inventory, None, T0 + 100_001, &mut log);
    assert_eq!(inventory.current_price(1, T0 + 100_001), 8_000);

    // The log rebuilds the same prices and state.
    let mut replayed = stadium();
    for command in &log {
        replayed.apply(command);
    }
    assert_eq!(replayed.version(), inventory.version());
    assert_eq!(replayed.availability(), inventory.availability());
    for at in [T0, T0 + 4, T0 + 100_001] {
        assert_eq!(replayed.current_prices(at), inventory.current_prices(at));
    }
    for command in &log {
        if let Command::PlaceHold { hold_id, .. } = command {
            assert_eq!(replayed.hold_view(hold_id, None), inventory.hold_view(hold_id, None));
        }
    }
    inventory.check_invariants().unwrap();
}

#[test]
fn pricing_rules_are_checked_and_name_the_field() {
    let inventory = stadium();
    let base =
        PricingRules { floor_percent: 50, ceiling_percent: 200, sell_through_steps: vec![], demand_steps: vec![] };
    for (rules, field) in [
        (PricingRules { floor_percent: 101, ..base.clone() }, "rules.floor_percent"),
        (PricingRules { ceiling_percent: 99, ..base.clone() }, "rules.ceiling_percent"),
        (
            PricingRules { sell_through_steps: vec![step(101, 5)], ..base.clone() },
            "rules.sell_through_steps[0].threshold",
        ),
        (
            PricingRules { sell_through_steps: vec![step(50, 5), step(40, 10)], ..base.clone() },
            "rules.sell_through_steps[1].threshold",
        ),
        (PricingRules { demand_steps: vec![step(5, -200)], ..base.clone() }, "rules.demand_steps[0].adjust_percent"),
    ] {
        let error = inventory.decide(&Request::SetPricing { rules: Some(rules) }, T0, 0).unwrap_err();
        assert!(matches!(&error, Error::InvalidArgument { field: named, .. } if named == field), "{field}: {error:?}");
    }
}

fn join_waitlist(
    inventory: &mut Inventory,
    who: &str,
    section_id: Option<&str>,
    quantity: i64,
    now_ms: u64,
) -> Result<Outcome> {
    let request = Request::JoinWaitlist { caller: buyer(who), section_id: section_id.map(String::from), quantity };
    run(inventory, request, now_ms)
}

/// Makes every offer the actor would make now; returns (buyer, hold) in the order offered.
fn offer_all(inventory: &mut Inventory, now_ms: u64) -> Vec<(String, HoldId)> {
    let mut offered = Vec::new();
    while let Some(command) = inventory.waitlist_offer(now_ms, now_ms + offered.len() as u64) {
        let Command::OfferFromWaitlist { buyer, hold_id, .. } = &command else { panic!("an offer") };
        offered.push((buyer.to_string(), hold_id.clone()));
        inventory.apply(&command);
    }
    offered
}

#[test]
fn the_waitlist_gets_returned_places_in_line_order_and_a_lapsed_offer_moves_on() {
    let mut inventory = stadium();
    // Section 102 (five seats) sold out.
    let ann =
        place(&mut inventory, "ann", seats(&["102:A:1", "102:A:2", "102:A:3", "102:A:4", "102:A:5"]), T0).unwrap();
    // Places on sale: no waitlist for them.
    let error = join_waitlist(&mut inventory, "zed", Some("101"), 2, T0).unwrap_err();
    assert!(matches!(error, Error::Waitlist { .. }), "{error:?}");
    join_waitlist(&mut inventory, "bob", Some("102"), 2, T0 + 1).unwrap();
    join_waitlist(&mut inventory, "cy", Some("102"), 4, T0 + 2).unwrap();
    join_waitlist(&mut inventory, "dee", Some("102"), 1, T0 + 3).unwrap();
    join_waitlist(&mut inventory, "eve", Some("102"), 2, T0 + 3).unwrap();
    join_waitlist(&mut inventory, "fay", Some("102"), 2, T0 + 3).unwrap();
    // Joining again keeps the place.
    join_waitlist(&mut inventory, "bob", Some("102"), 2, T0 + 4).unwrap();
    assert_eq!(
        inventory.waitlist_view(&BuyerId::new("cy")),
        WaitlistView::Waiting { position: 2, section_id: Some("102".into()), quantity: 4 }
    );
    assert_eq!(offer_all(&mut inventory, T0 + 5), vec![], "nothing came back yet");

    // Ann releases her five: bob (2), then cy (needs 4 adjacent, only 3 left) is passed over, dee
    // (1), eve (2); nothing is left for fay.
    run(&mut inventory, Request::ReleaseHold { caller: buyer("ann"), hold_id: ann }, T0 + 10).unwrap();
    let offered = offer_all(&mut inventory, T0 + 10);
    let who: Vec<&str> = offered.iter().map(|(buyer, _)| buyer.as_str()).collect();
    assert_eq!(who, vec!["bob", "dee", "eve"]);
    assert_eq!(inventory.waitlist_view(&BuyerId::new("bob")), WaitlistView::Offered { hold_id: offered[0].1.clone() });
    assert_eq!(
        inventory.waitlist_view(&BuyerId::new("fay")),
        WaitlistView::Waiting { position: 2, section_id: Some("102".into()), quantity: 2 }
    );
    let bob_hold = inventory.hold_view(&offered[0].1, None).unwrap();
    assert_eq!((bob_hold.tickets.len(), bob_hold.status), (2, HoldStatus::Active));

    // Dee takes her offer.
    let dee_hold = match inventory.waitlist_view(&BuyerId::new("dee")) {
        WaitlistView::Offered { hold_id } => hold_id,
        other => panic!("dee was offered a hold, got {other:?}"),
    };
    confirm(&mut inventory, "dee", &dee_hold, T0 + 11).unwrap();
    assert_eq!(inventory.waitlist_view(&BuyerId::new("dee")), WaitlistView::NotWaiting, "a taken offer ends the entry");
    // Bob's and eve's offers lapse: their seats go to the first in line they fit (fay; cy needs
    // four adjacent seats, which dee's seat in the middle of the row rules out).
    inventory.apply(&inventory.expiry_due(T0 + 10 + TTL).unwrap());
    assert_eq!(inventory.waitlist_view(&BuyerId::new("bob")), WaitlistView::NotWaiting);
    let offered = offer_all(&mut inventory, T0 + 10 + TTL);
    assert_eq!(offered.iter().map(|(buyer, _)| buyer.as_str()).collect::<Vec<_>>(), vec!["fay"]);
    assert_eq!(inventory.waitlist_len(), 1, "cy still waits");
    run(&mut inventory, Request::LeaveWaitlist { caller: buyer("nobody") }, T0 + 20).unwrap();
    inventory.check_invariants().unwrap();
}

/// An inventory with a live hold, a booking and an ended hold, for corrupting.
fn busy_stadium() -> (Inventory, HoldId, BookingId) {
    let mut inventory = stadium();
    let live = place(&mut inventory, "ann", seats(&["101:A:1", "101:A:2"]), T0).unwrap();
    let booked = place(&mut inventory, "bob", seats(&["102:A:1"]), T0 + 1).unwrap();
    let booking_id = confirm(&mut inventory, "bob", &booked, T0 + 2).unwrap();
    let released =
        place(&mut inventory, "cy", Selection::BestAvailable { section_id: "FLOOR".into(), quantity: 3 }, T0 + 3)
            .unwrap();
    run(&mut inventory, Request::ReleaseHold { caller: buyer("cy"), hold_id: released }, T0 + 4).unwrap();
    (inventory, live, booking_id)
}

fn restored(inventory: &Inventory) -> std::result::Result<Inventory, String> {
    Inventory::restore(&inventory.checkpoint(), inventory.seat_map().clone())
}

#[test]
fn restore_refuses_every_kind_of_corrupt_record_with_a_reason() {
    let (inventory, _, _) = busy_stadium();
    restored(&inventory).expect("an intact checkpoint restores");

    type Corruption = fn(&mut Inventory, &HoldId, &BookingId);
    let cases: Vec<(&str, Corruption, &str)> = vec![
        (
            "seat past the venue",
            |inv, hold, _| {
                std::sync::Arc::make_mut(inv.holds.get_mut(hold).unwrap()).places = Places::Seats(vec![1, 9_999])
            },
            "names seat 9999",
        ),
        (
            "general section past the venue",
            |inv, _, booking| {
                std::sync::Arc::make_mut(inv.bookings.get_mut(booking).unwrap()).places =
                    Places::General { section: 77, quantity: 1 }
            },
            "names section 77",
        ),
        (
            "quantity in a reserved section",
            |inv, _, booking| {
                std::sync::Arc::make_mut(inv.bookings.get_mut(booking).unwrap()).places =
                    Places::General { section: 0, quantity: 1 }
            },
            "reserved section",
        ),
        (
            "levels too short",
            |inv, _, _| {
                inv.section_levels.pop();
            },
            "section price levels",
        ),
        (
            "price level past the terms",
            |inv, hold, _| std::sync::Arc::make_mut(inv.holds.get_mut(hold).unwrap()).prices[0].level = 9,
            "at level 9",
        ),
        (
            "prices missing a section",
            |inv, hold, _| std::sync::Arc::make_mut(inv.holds.get_mut(hold).unwrap()).prices.clear(),
            "is priced for sections",
        ),
        (
            "deadline without a hold",
            |inv, _, _| {
                inv.deadlines.insert((T0, HoldId::new("hld_0000000000000001_00000000000000ff")));
            },
            "deadlines",
        ),
        (
            "deadline at another time",
            |inv, hold, _| std::sync::Arc::make_mut(inv.holds.get_mut(hold).unwrap()).expires_at_ms += 1,
            "deadlines",
        ),
        (
            "deadline of an ended hold",
            |inv, hold, _| std::sync::Arc::make_mut(inv.holds.get_mut(hold).unwrap()).status = HoldStatus::Released,
            "deadlines",
        ),
        (
            "confirmed hold without a booking",
            |inv, _, booking| {
                let hold_id = inv.bookings[booking].hold_id.clone();
                std::sync::Arc::make_mut(inv.holds.get_mut(&hold_id).unwrap()).booking_id = None;
            },
            "without a booking",
        ),
        (
            "booking naming another hold",
            |inv, hold, booking| {
                std::sync::Arc::make_mut(inv.bookings.get_mut(booking).unwrap()).hold_id = hold.clone()
            },
            "do not name each other",
        ),
        (
            "waitlist offer that is not live",
            |inv, hold, _| {
                inv.waitlist.push_back(waitlist::WaitlistEntry {
                    buyer: BuyerId::new("wes"),
                    section: None,
                    quantity: 1,
                    joined_at_ms: T0,
                    offered: Some(hold.clone()),
                })
            },
            "not a live offer",
        ),
        (
            "hold key naming another buyer's hold",
            |inv, hold, _| {
                inv.hold_keys.insert((BuyerId::new("zed"), "k".into()), hold.clone());
            },
            "not theirs",
        ),
    ];
    for (name, corrupt, reason) in cases {
        let (mut inventory, hold_id, booking_id) = busy_stadium();
        corrupt(&mut inventory, &hold_id, &booking_id);
        match restored(&inventory) {
            Ok(_) => panic!("{name}: a corrupt checkpoint was accepted"),
            Err(error) => assert!(error.contains(reason), "{name}: {error}"),
        }
    }
}

#[test]
fn ended_holds_are_forgotten_after_the_retention_even_when_nothing_expires() {
    let mut inventory = stadium();
    let first = place(&mut inventory, "ann", seats(&["101:A:1"]), T0).unwrap();
    run(&mut inventory, Request::ReleaseHold { caller: buyer("ann"), hold_id: first.clone() }, T0 + 1).unwrap();
    let second = place(&mut inventory, "bob", seats(&["101:A:2"]), T0 + 2).unwrap();
    // Still remembered just inside the retention; a hold ending later lets it go.
    run(
        &mut inventory,
        Request::ReleaseHold { caller: buyer("bob"), hold_id: second.clone() },
        T0 + limits::HOLD_RETENTION_MS,
    )
    .unwrap();
    assert!(inventory.hold_view(&first, None).is_ok());
    let third = place(&mut inventory, "cy", seats(&["101:A:3"]), T0 + limits::HOLD_RETENTION_MS).unwrap();
    run(
        &mut inventory,
        Request::ReleaseHold { caller: buyer("cy"), hold_id: third },
        T0 + 1 + limits::HOLD_RETENTION_MS,
    )
    .unwrap();
    assert_eq!(inventory.hold_view(&first, None).unwrap_err(), Error::not_found("hold", first.as_str()));
    assert!(inventory.hold_view(&second, None).is_ok(), "ended later, still remembered");
    inventory.check_invariants().unwrap();
}

/// A checkpoint whose collection declares a length far beyond its bytes (a damaged varint) is
/// refused as undecodable; decoding must not reserve room for the declared length first, which
/// aborted the process (fuzz/regressions/decode_command/restore-aborts-on-a-huge-declared-collection-length).
#[test]
fn a_huge_declared_collection_length_is_an_error_not_an_allocation() {
    #[derive(Debug, serde::Deserialize)]
    struct Collections {
        #[serde(deserialize_with = "super::cautious::map")]
        _map: super::SharedMap<HoldId, HoldRecord>,
    }
    #[derive(Debug, serde::Deserialize)]
    struct Sequence {
        #[serde(deserialize_with = "super::cautious::vector")]
        _vector: imbl::Vector<(u64, HoldId)>,
    }
    #[derive(Debug, serde::Deserialize)]
    struct Set {
        #[serde(deserialize_with = "super::cautious::set")]
        _set: imbl::OrdSet<(u64, HoldId)>,
    }
    // Postcard: a varint length of 2^42, then two bytes of an entry that is never complete.
    let bytes = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x03, b'h'];
    assert!(postcard::from_bytes::<Collections>(&bytes).is_err());
    assert!(postcard::from_bytes::<Sequence>(&bytes).is_err());
    assert!(postcard::from_bytes::<Set>(&bytes).is_err());

    // The whole inventory: every single-byte change of a real checkpoint restores or is refused.
    let (inventory, _, _) = busy_stadium();
    let intact = inventory.checkpoint();
    let mut refused = 0;
    for position in (0..intact.len()).step_by(7) {
        for value in [0x00, 0x7f, 0xce, 0xff] {
            let mut damaged = intact.clone();
            damaged[position] = value;
            refused += usize::from(Inventory::restore(&damaged, inventory.seat_map().clone()).is_err());
        }
    }
    assert!(refused > 0, "no damaged checkpoint of {} bytes was refused", intact.len());
}
