//! Fuzzes one event's inventory through the engine's own path: every op becomes a `Request`,
//! goes through `decide`, and, when decided, its `Command` goes through `apply`.
//!
//! Checked after every op:
//! - `check_invariants()` holds (seat bytes, section counters, buyer usage and deadlines agree);
//! - `decide` is a pure function: asked twice, it answers the same;
//! - each section's places add up (available + held + booked = total);
//! - the applied command did what it says: a placed hold is active with the places asked for (the
//!   exact seat ids of an explicit list; adjacent seats in one row of the asked section for best
//!   available), a confirmed hold has a booking with the same tickets, a release, cancellation or
//!   expiry ends exactly the records it names, a cancelled event has nothing held or booked;
//! - a rejection names real reasons: seats reported taken are taken, a sold-out general-admission
//!   section has fewer places than asked;
//! - checkpoint + restore gives back the same inventory, and the fuzzed run continues on it;
//!
//! and at the end, replaying every applied command on a fresh inventory gives the same seats,
//! availability, version, deadlines and hold and booking views: the log is the state.
//!
//! Time only moves forward, in steps of up to ten days, from a realistic start (`T0_MS`), as the
//! engine's clock does; hold TTL (10 min by default) and the retention of ended holds (10 min) are both crossed.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use turnstile_engine::error::Error;
use turnstile_engine::ids::{BookingId, BuyerId, HoldId};
use turnstile_engine::inventory::{
    BookingStatus, Caller, Command, Decision, EventStatus, HoldStatus, Inventory, Outcome, Places, Request, SeatStatus,
    Selection,
};
use turnstile_engine::limits;
use turnstile_fuzz::{event_id, new_inventory, seat_ids, seat_map, section_ids, T0_MS};

/// Ops per input. Long enough to fill the fixture venue several times over; short enough that
/// the final replay and the O(seats) invariant check per op keep executions fast.
const OPS_MAX: usize = 128;
/// Seat ids per explicit list; one past the engine's per-hold limit so the limit itself is hit.
const SEAT_LIST_LENGTH_MAX: usize = limits::SEATS_PER_HOLD_MAX as usize + 1;
const BUYER_NAMES: [&str; 4] = ["ann", "bob", "cy", "root"];

#[derive(Arbitrary, Debug)]
struct CallerPick {
    buyer: u8,
    admin: bool,
}

impl CallerPick {
    fn caller(&self) -> Caller {
        let name = BUYER_NAMES[usize::from(self.buyer) % BUYER_NAMES.len()];
        Caller { buyer: BuyerId::new(name), admin: self.admin }
    }
}

#[derive(Arbitrary, Debug)]
enum SeatPick {
    /// A seat of the venue, by index modulo the seat count.
    Known(u8),
    /// Anything at all: malformed, a general-admission "seat", an unknown row.
    Garbage(String),
}

#[derive(Arbitrary, Debug)]
enum SectionPick {
    Known(u8),
    Garbage(String),
}

#[derive(Arbitrary, Debug)]
enum QuantityPick {
    Small(u8),
    Raw(i64),
}

#[derive(Arbitrary, Debug)]
enum KeyPick {
    None,
    /// One of a few keys, so retries with the same key happen.
    Few(u8),
    Raw(String),
}

impl KeyPick {
    fn key(&self) -> Option<String> {
        match self {
            KeyPick::None => None,
            KeyPick::Few(number) => Some(format!("key-{}", number % 4)),
            KeyPick::Raw(text) => Some(text.clone()),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum IdPick {
    /// One of the ids seen so far in this run, by index modulo their number.
    Known(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum PaymentPick {
    Few(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum StepPick {
    Zero,
    Millis(u16),
    Minutes(u8),
    Hours(u8),
}

impl StepPick {
    fn step_ms(&self) -> u64 {
        match self {
            StepPick::Zero => 0,
            StepPick::Millis(millis) => u64::from(*millis),
            StepPick::Minutes(minutes) => u64::from(*minutes) * 60_000,
            StepPick::Hours(hours) => u64::from(*hours) * 3_600_000,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum TtlPick {
    Keep,
    Seconds(u16),
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
enum LimitPick {
    Keep,
    Small(u16),
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
enum Op {
    PlaceHoldSeats {
        caller: CallerPick,
        seats: Vec<SeatPick>,
        key: KeyPick,
        nonce: u8,
        step: StepPick,
    },
    PlaceHoldBest {
        caller: CallerPick,
        section: SectionPick,
        quantity: QuantityPick,
        key: KeyPick,
        nonce: u8,
        step: StepPick,
    },
    ConfirmHold {
        caller: CallerPick,
        hold: IdPick,
        payment: PaymentPick,
        key: KeyPick,
        nonce: u8,
        step: StepPick,
    },
    ReleaseHold {
        caller: CallerPick,
        hold: IdPick,
        step: StepPick,
    },
    CancelBooking {
        caller: CallerPick,
        booking: IdPick,
        step: StepPick,
    },
    /// The actor's timer firing: `expiry_due(now)` and, if due, its command.
    ExpireHolds {
        step: StepPick,
    },
    UpdateTerms {
        hold_ttl: TtlPick,
        buyer_seat_limit: LimitPick,
    },
    CancelEvent {
        step: StepPick,
    },
    /// Checkpoint, restore, and carry on with the restored inventory.
    CheckpointRestore,
}

struct Harness {
    inventory: Inventory,
    /// Every applied command, in order: the log a replay must rebuild the state from.
    commands: Vec<Command>,
    now_ms: u64,
    /// Every hold and booking id this run has seen, for ops that name one.
    hold_ids: Vec<HoldId>,
    booking_ids: Vec<BookingId>,
}

fn pick_id<T: Clone>(known: &[T], pick: &IdPick, make: impl Fn(&str) -> T) -> T {
    match pick {
        IdPick::Known(index) if !known.is_empty() => known[usize::from(*index) % known.len()].clone(),
        IdPick::Known(_) => make("hld_0000000000007e57_0000000000000001"),
        IdPick::Raw(text) => make(text),
    }
}

impl Harness {
    fn new() -> Self {
        Harness {
            inventory: new_inventory(),
            commands: Vec::new(),
            now_ms: T0_MS,
            hold_ids: Vec::new(),
            booking_ids: Vec::new(),
        }
    }

    fn advance(&mut self, step: &StepPick) {
        self.now_ms += step.step_ms();
    }

    fn step(&mut self, op: &Op) {
        let (request, nonce) = match op {
            Op::PlaceHoldSeats { caller, seats, key, nonce, step } => {
                self.advance(step);
                let seat_ids = seats
                    .iter()
                    .take(SEAT_LIST_LENGTH_MAX)
                    .map(|pick| match pick {
                        SeatPick::Known(index) => seat_ids()[usize::from(*index) % seat_ids().len()].clone(),
                        SeatPick::Garbage(text) => text.clone(),
                    })
                    .collect();
                let request = Request::PlaceHold {
                    caller: caller.caller(),
                    selection: Selection::Seats(seat_ids),
                    idempotency_key: key.key(),
                };
                (request, *nonce)
            }
            Op::PlaceHoldBest { caller, section, quantity, key, nonce, step } => {
                self.advance(step);
                let section_id = match section {
                    SectionPick::Known(index) => section_ids()[usize::from(*index) % section_ids().len()].clone(),
                    SectionPick::Garbage(text) => text.clone(),
                };
                let quantity = match quantity {
                    QuantityPick::Small(quantity) => i64::from(*quantity),
                    QuantityPick::Raw(quantity) => *quantity,
                };
                let request = Request::PlaceHold {
                    caller: caller.caller(),
                    selection: Selection::BestAvailable { section_id, quantity },
                    idempotency_key: key.key(),
                };
                (request, *nonce)
            }
            Op::ConfirmHold { caller, hold, payment, key, nonce, step } => {
                self.advance(step);
                let payment_reference = match payment {
                    PaymentPick::Few(number) => format!("pay-{}", number % 3),
                    PaymentPick::Raw(text) => text.clone(),
                };
                let request = Request::ConfirmHold {
                    caller: caller.caller(),
                    hold_id: pick_id(&self.hold_ids, hold, |text| HoldId::new(text)),
                    payment_reference,
                    idempotency_key: key.key(),
                };
                (request, *nonce)
            }
            Op::ReleaseHold { caller, hold, step } => {
                self.advance(step);
                let request = Request::ReleaseHold {
                    caller: caller.caller(),
                    hold_id: pick_id(&self.hold_ids, hold, |text| HoldId::new(text)),
                };
                (request, 0)
            }
            Op::CancelBooking { caller, booking, step } => {
                self.advance(step);
                let request = Request::CancelBooking {
                    caller: caller.caller(),
                    booking_id: pick_id(&self.booking_ids, booking, |text| BookingId::new(text)),
                };
                (request, 0)
            }
            Op::UpdateTerms { hold_ttl, buyer_seat_limit } => {
                let hold_ttl_ms = match hold_ttl {
                    TtlPick::Keep => None,
                    TtlPick::Seconds(seconds) => Some(u64::from(*seconds) * 1_000),
                    TtlPick::Raw(millis) => Some(*millis),
                };
                let buyer_seat_limit = match buyer_seat_limit {
                    LimitPick::Keep => None,
                    LimitPick::Small(limit) => Some(u32::from(*limit)),
                    LimitPick::Raw(limit) => Some(*limit),
                };
                (Request::UpdateTerms { hold_ttl_ms, buyer_seat_limit }, 0)
            }
            Op::CancelEvent { step } => {
                self.advance(step);
                (Request::CancelEvent, 0)
            }
            Op::ExpireHolds { step } => {
                self.advance(step);
                self.expire();
                return;
            }
            Op::CheckpointRestore => {
                self.checkpoint_restore();
                return;
            }
        };
        self.decide_and_apply(&request, u64::from(nonce));
    }

    fn expire(&mut self) {
        let now_ms = self.now_ms;
        let due = self.inventory.next_deadline_ms().is_some_and(|deadline| deadline <= now_ms);
        match self.inventory.expiry_due(now_ms) {
            Some(command) => {
                assert!(due, "expiry_due({now_ms}) issued a command with nothing due");
                assert_eq!(command, Command::ExpireHolds { now_ms });
                let live_before = self.inventory.live_hold_count();
                let outcome = self.apply(command);
                let Outcome::HoldsExpired { hold_ids } = outcome else { panic!("expiry answered {outcome:?}") };
                assert!(!hold_ids.is_empty(), "a due expiry expired nothing");
                assert_eq!(self.inventory.live_hold_count(), live_before - hold_ids.len());
                for hold_id in &hold_ids {
                    let hold = self.inventory.hold_view(hold_id, None).expect("an expired hold stays readable");
                    assert_eq!(hold.status, HoldStatus::Expired);
                    assert!(hold.expires_at_ms <= now_ms, "hold {hold_id} expired before its deadline");
                }
                if let Some(deadline) = self.inventory.next_deadline_ms() {
                    assert!(deadline > now_ms, "hold due at {deadline} survived expiry at {now_ms}");
                }
            }
            None => assert!(!due, "expiry_due({now_ms}) issued nothing with a hold due"),
        }
    }

    fn checkpoint_restore(&mut self) {
        let bytes = self.inventory.checkpoint();
        let restored = match Inventory::restore(&bytes, seat_map()) {
            Ok(restored) => restored,
            Err(reason) => panic!("an inventory's own checkpoint does not restore: {reason}"),
        };
        assert_same(&self.inventory, &restored, &self.hold_ids, &self.booking_ids, "checkpoint + restore");
        self.inventory = restored;
    }

    fn apply(&mut self, command: Command) -> Outcome {
        let version = self.inventory.version();
        let outcome = self.inventory.apply(&command);
        assert_eq!(self.inventory.version(), version + 1, "apply must count every command");
        self.commands.push(command);
        outcome
    }

    fn decide_and_apply(&mut self, request: &Request, nonce: u64) {
        let now_ms = self.now_ms;
        let decision = self.inventory.decide(request, now_ms, nonce);
        assert_eq!(decision, self.inventory.decide(request, now_ms, nonce), "decide is not a pure function");
        match decision {
            Err(error) => self.check_rejection(request, &error),
            Ok(Decision::Answered(outcome)) => self.check_answer(request, &outcome),
            Ok(Decision::Apply(command)) => {
                let availability_before = self.inventory.availability();
                let outcome = self.apply(command.clone());
                self.check_applied(request, &command, &outcome, &availability_before);
            }
        }
    }

    /// A rejection changes nothing (decide takes `&self`), so only its reasons are checked.
    fn check_rejection(&self, request: &Request, error: &Error) {
        assert!(!error.to_string().is_empty());
        match (request, error) {
            (_, Error::SeatsTaken { seat_ids }) => {
                assert!(!seat_ids.is_empty(), "SeatsTaken names no seat");
                for seat_id in seat_ids {
                    let seat = seat_map().seat_index(seat_id).expect("a taken seat is a real seat");
                    assert_ne!(
                        self.inventory.seat_statuses()[seat as usize],
                        SeatStatus::Available,
                        "{seat_id} reported taken"
                    );
                }
            }
            (
                Request::PlaceHold { selection: Selection::BestAvailable { section_id, quantity }, .. },
                Error::NotEnoughSeats { .. },
            ) => {
                let row = self.availability_of(section_id);
                if row.general_admission {
                    assert!(
                        i64::from(row.available) < *quantity,
                        "{section_id} has {} places, refused {quantity}",
                        row.available
                    );
                }
            }
            _ => {}
        }
    }

    fn check_answer(&self, request: &Request, outcome: &Outcome) {
        match (request, outcome) {
            (Request::PlaceHold { caller, .. }, Outcome::Hold(hold_id)) => {
                self.inventory.hold_view(hold_id, Some(caller)).expect("a retried hold is the caller's and readable");
            }
            (Request::ReleaseHold { caller, hold_id }, Outcome::Hold(answered)) => {
                assert_eq!(hold_id, answered);
                let hold = self.inventory.hold_view(hold_id, Some(caller)).expect("a released hold is readable");
                assert_eq!(hold.status, HoldStatus::Released);
            }
            (Request::ConfirmHold { caller, hold_id, .. }, Outcome::Booking(booking_id)) => {
                let booking =
                    self.inventory.booking_view(booking_id, Some(caller)).expect("a retried booking is readable");
                assert_eq!(&booking.hold_id, hold_id, "a retried confirm answered another hold's booking");
            }
            (Request::CancelBooking { caller, booking_id }, Outcome::Booking(answered)) => {
                assert_eq!(booking_id, answered);
                let booking = self.inventory.booking_view(booking_id, Some(caller)).expect("readable");
                assert_eq!(booking.status, BookingStatus::Cancelled);
            }
            (request, outcome) => panic!("{request:?} was answered with {outcome:?}"),
        }
    }

    fn availability_of(&self, section_id: &str) -> turnstile_engine::inventory::AvailabilityView {
        self.inventory.availability().into_iter().find(|row| row.section_id == section_id).expect("a known section")
    }

    fn check_applied(
        &mut self,
        request: &Request,
        command: &Command,
        outcome: &Outcome,
        availability_before: &[turnstile_engine::inventory::AvailabilityView],
    ) {
        let now_ms = self.now_ms;
        let seat_map = seat_map();
        match (request, command, outcome) {
            (
                Request::PlaceHold { caller, selection, idempotency_key },
                Command::PlaceHold {
                    hold_id, buyer, places, placed_at_ms, expires_at_ms, idempotency_key: key, ..
                },
                Outcome::Hold(answered),
            ) => {
                assert_eq!(hold_id, answered);
                assert_eq!(buyer, &caller.buyer);
                assert_eq!(key, idempotency_key);
                assert_eq!(*placed_at_ms, now_ms);
                assert_eq!(*expires_at_ms, now_ms + self.inventory.terms().hold_ttl_ms);
                let count = places.count();
                assert!((1..=limits::SEATS_PER_HOLD_MAX).contains(&count), "a hold of {count} places");
                let hold = self.inventory.hold_view(hold_id, Some(caller)).expect("a placed hold is readable");
                assert_eq!(hold.status, HoldStatus::Active);
                assert_eq!(hold.tickets.len(), count as usize);
                assert_eq!(hold.total_minor, hold.tickets.iter().map(|ticket| ticket.amount_minor).sum::<i64>());
                match (selection, places) {
                    (Selection::Seats(asked), Places::Seats(_)) => {
                        let held: Vec<&str> =
                            hold.tickets.iter().map(|ticket| ticket.seat_id.as_deref().expect("a seat id")).collect();
                        assert_eq!(held, asked.iter().map(String::as_str).collect::<Vec<_>>(), "held other seats");
                    }
                    (Selection::BestAvailable { section_id, quantity }, Places::Seats(seats)) => {
                        assert_eq!(i64::from(count), *quantity);
                        let first = seat_map.position(seats[0]);
                        for (offset, &seat) in seats.iter().enumerate() {
                            let position = seat_map.position(seat);
                            assert_eq!(seat_map.sections[position.section as usize].section_id, *section_id);
                            assert_eq!(position.row, first.row, "best available spans rows");
                            assert_eq!(position.offset, first.offset + offset as u32, "best available is not adjacent");
                        }
                    }
                    (Selection::BestAvailable { section_id, quantity }, Places::General { section, .. }) => {
                        assert_eq!(i64::from(count), *quantity);
                        assert_eq!(seat_map.sections[*section as usize].section_id, *section_id);
                    }
                    (selection, places) => panic!("{selection:?} placed {places:?}"),
                }
                let held_delta: u32 = self
                    .inventory
                    .availability()
                    .iter()
                    .zip(availability_before)
                    .map(|(after, before)| after.held - before.held)
                    .sum();
                assert_eq!(held_delta, count, "section counters moved by {held_delta} for {count} places");
                self.hold_ids.push(hold_id.clone());
            }
            (
                Request::ConfirmHold { caller, hold_id, payment_reference, .. },
                Command::ConfirmHold { hold_id: confirmed, booking_id, payment_reference: paid, .. }
                | Command::ConfirmExpiredHold { hold_id: confirmed, booking_id, payment_reference: paid, .. },
                Outcome::Booking(answered),
            ) => {
                // A hold past its deadline (expired or not yet) is confirmed on the same places,
                // which the state checks above found free or still its own.
                assert_eq!((hold_id, booking_id, payment_reference), (confirmed, answered, paid));
                let hold = self.inventory.hold_view(hold_id, Some(caller)).expect("a confirmed hold is readable");
                assert_eq!(hold.status, HoldStatus::Confirmed);
                assert_eq!(hold.booking_id.as_ref(), Some(booking_id));
                let booking = self.inventory.booking_view(booking_id, Some(caller)).expect("a booking is readable");
                assert_eq!(booking.status, BookingStatus::Confirmed);
                assert_eq!(
                    (&booking.hold_id, &booking.tickets, booking.total_minor),
                    (hold_id, &hold.tickets, hold.total_minor)
                );
                self.booking_ids.push(booking_id.clone());
            }
            (
                Request::ReleaseHold { hold_id, .. },
                Command::ReleaseHold { hold_id: released, .. },
                Outcome::Hold(answered),
            ) => {
                assert_eq!((hold_id, hold_id), (released, answered));
                assert_eq!(self.inventory.hold_view(hold_id, None).expect("readable").status, HoldStatus::Released);
            }
            (
                Request::CancelBooking { booking_id, .. },
                Command::CancelBooking { booking_id: cancelled, .. },
                Outcome::Booking(answered),
            ) => {
                assert_eq!((booking_id, booking_id), (cancelled, answered));
                let booking = self.inventory.booking_view(booking_id, None).expect("readable");
                assert_eq!((booking.status, booking.cancelled_at_ms), (BookingStatus::Cancelled, Some(now_ms)));
            }
            (
                Request::UpdateTerms { hold_ttl_ms, buyer_seat_limit },
                Command::UpdateTerms { .. },
                Outcome::TermsUpdated,
            ) => {
                let terms = self.inventory.terms();
                if let Some(hold_ttl_ms) = hold_ttl_ms {
                    assert_eq!(terms.hold_ttl_ms, *hold_ttl_ms);
                }
                if let Some(buyer_seat_limit) = buyer_seat_limit {
                    assert_eq!(terms.buyer_seat_limit, *buyer_seat_limit);
                }
            }
            (Request::CancelEvent, Command::CancelEvent { .. }, Outcome::EventCancelled { bookings_cancelled, .. }) => {
                assert_eq!(self.inventory.status(), &EventStatus::Cancelled);
                assert_eq!(self.inventory.live_hold_count(), 0);
                for row in self.inventory.availability() {
                    assert_eq!(
                        (row.held, row.booked, row.available),
                        (0, 0, row.total),
                        "{} after cancel",
                        row.section_id
                    );
                }
                for booking_id in bookings_cancelled {
                    let booking = self.inventory.booking_view(booking_id, None).expect("readable");
                    assert_eq!(booking.status, BookingStatus::Cancelled);
                }
            }
            (request, command, outcome) => panic!("{request:?} decided {command:?}, which answered {outcome:?}"),
        }
    }

    fn check_state(&self) {
        if let Err(reason) = self.inventory.check_invariants() {
            panic!("invariant broken: {reason}");
        }
        for row in self.inventory.availability() {
            assert_eq!(row.available + row.held + row.booked, row.total, "section {} does not add up", row.section_id);
        }
        assert_eq!(self.inventory.version(), self.commands.len() as u64);
    }

    fn check_replay(&self) {
        let mut replayed = new_inventory();
        assert_eq!(replayed.event_id(), &event_id());
        for command in &self.commands {
            replayed.apply(command);
        }
        assert_same(&self.inventory, &replayed, &self.hold_ids, &self.booking_ids, "replay of the log");
    }
}

/// Everything observable of two inventories that must be the same.
fn assert_same(left: &Inventory, right: &Inventory, hold_ids: &[HoldId], booking_ids: &[BookingId], context: &str) {
    assert_eq!(left.seat_statuses(), right.seat_statuses(), "{context}: seat statuses differ");
    assert_eq!(left.availability(), right.availability(), "{context}: availability differs");
    assert_eq!(left.version(), right.version(), "{context}: version differs");
    assert_eq!(left.status(), right.status(), "{context}: event status differs");
    assert_eq!(left.terms(), right.terms(), "{context}: terms differ");
    assert_eq!(left.live_hold_count(), right.live_hold_count(), "{context}: live holds differ");
    assert_eq!(left.next_deadline_ms(), right.next_deadline_ms(), "{context}: next deadline differs");
    for hold_id in hold_ids {
        assert_eq!(left.hold_view(hold_id, None), right.hold_view(hold_id, None), "{context}: hold {hold_id} differs");
    }
    for booking_id in booking_ids {
        assert_eq!(
            left.booking_view(booking_id, None),
            right.booking_view(booking_id, None),
            "{context}: booking {booking_id} differs"
        );
    }
}

/// `TURNSTILE_FUZZ_STATS=1` prints, per input, how many commands of each kind it applied: run
/// the target over its corpus with `-runs=0` to see that the corpus reaches every command (the
/// properties above are only as good as the states they are checked in).
fn print_stats(commands: &[Command]) {
    static STATS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*STATS.get_or_init(|| std::env::var("TURNSTILE_FUZZ_STATS").is_ok_and(|value| value == "1")) {
        return;
    }
    let mut counts = [0usize; 7];
    for command in commands {
        let kind = match command {
            Command::PlaceHold { places: Places::Seats(_), .. } => 0,
            Command::PlaceHold { places: Places::General { .. }, .. } => 1,
            Command::ConfirmHold { .. } => 2,
            Command::ReleaseHold { .. } => 3,
            Command::CancelBooking { .. } => 4,
            Command::ExpireHolds { .. } => 5,
            Command::UpdateTerms { .. }
            | Command::CancelEvent { .. }
            | Command::ExtendHold { .. }
            | Command::RedeemTicket { .. }
            | Command::SetPricing { .. }
            | Command::JoinWaitlist { .. }
            | Command::LeaveWaitlist { .. } => 6,
            Command::OfferFromWaitlist { .. } => 0,
            Command::ConfirmExpiredHold { .. } => 2,
        };
        counts[kind] += 1;
    }
    eprintln!(
        "stats: seats={} general={} confirm={} release={} cancel_booking={} expire={} terms_or_cancel_event={}",
        counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6]
    );
}

fuzz_target!(|ops: Vec<Op>| {
    let mut harness = Harness::new();
    for op in ops.iter().take(OPS_MAX) {
        harness.step(op);
        harness.check_state();
    }
    harness.check_replay();
    print_stats(&harness.commands);
});
