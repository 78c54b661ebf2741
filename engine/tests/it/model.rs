//! Model-based property tests: random sequences of operations run against the engine and against a
//! plain reference model written here, compared after every step.
//!
//! Two properties share the model:
//! - `inventory_matches_the_model` drives the deterministic core (`Inventory::decide` / `apply`)
//!   with time as a number the test advances, so holds expire and ended holds are forgotten; a
//!   checkpoint is `Inventory::checkpoint()` and a crash is `Inventory::restore()` of the last one
//!   plus a replay of the commands applied after it, as recovery does.
//! - `durable_engine_matches_the_model` drives a real engine on a redb file (actors, group commit,
//!   checkpoints, recovery) with hold / confirm / release / cancel and crash-and-reopen. Its clock
//!   is wall time and holds live ten minutes, so nothing expires there.
//!
//! A failure prints the step, what the model expected, what the engine answered and the whole
//! operation sequence; proptest then shrinks it. Failure persistence is off (no files are written
//! next to the sources): the printed sequence is the reproduction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use turnstile_engine::catalog::{EventSpec, VenueSpec};
use turnstile_engine::engine::EngineOptions;
use turnstile_engine::ids::{BookingId, BuyerId, EventId, HoldId};
use turnstile_engine::inventory::{
    BookingStatus, BookingView, Caller, Command, Decision, HoldStatus, HoldView, Inventory, Outcome, PriceLevel,
    Request, SeatStatus, Selection, Terms,
};
use turnstile_engine::limits::{HOLDS_PER_BUYER_MAX, HOLD_RETENTION_MS};
use turnstile_engine::seat_map::{numbered_rows, SeatMap, SectionSpec};
use turnstile_engine::{Engine, Error};

const SECTION_ID: &str = "S";
const ROW_LABELS: [&str; 3] = ["A", "B", "C"];
const SEATS_PER_ROW: u32 = 6;
/// Few seats, so that holds collide and buyers run into their limits.
const SEAT_COUNT: u32 = SEATS_PER_ROW * ROW_LABELS.len() as u32;
/// A seat index the generator uses for a seat id the venue does not have.
const SEAT_INVALID: u32 = SEAT_COUNT;
const BUYERS: [&str; 3] = ["ann", "bob", "cat"];
/// The inventory property's hold lifetime and start time.
const HOLD_TTL_MS: u64 = 60_000;
const T0_MS: u64 = 1_800_000_000_000;
/// Advances of the inventory property's clock: within the TTL, past it, and past the retention
/// of ended holds.
const ADVANCES_MS: [u64; 4] = [1_000, 20_000, HOLD_TTL_MS + 1, HOLD_RETENTION_MS + 60 * 60 * 1_000];
/// Nonce of an id no operation ever mints: far above the fresh nonces of `nonce_for`.
const NONCE_UNKNOWN: u64 = 0xdead_beef_0000;

fn seat_id(seat: u32) -> String {
    if seat >= SEAT_COUNT {
        return format!("{SECTION_ID}:Z:99");
    }
    format!("{SECTION_ID}:{}:{}", ROW_LABELS[(seat / SEATS_PER_ROW) as usize], seat % SEATS_PER_ROW + 1)
}

fn buyer_caller(buyer: usize) -> Caller {
    Caller { buyer: BuyerId::new(BUYERS[buyer]), admin: false }
}

fn admin_caller() -> Caller {
    Caller { buyer: BuyerId::new("root"), admin: true }
}

fn section_specs() -> Vec<SectionSpec> {
    vec![SectionSpec {
        section_id: SECTION_ID.into(),
        name: "Stalls".into(),
        rows: numbered_rows(&ROW_LABELS, SEATS_PER_ROW),
        general_admission_capacity: 0,
    }]
}

fn price_levels() -> Vec<PriceLevel> {
    vec![PriceLevel {
        price_level_id: "P".into(),
        name: "All".into(),
        amount_minor: 5_000,
        section_ids: vec![SECTION_ID.into()],
    }]
}

// ---------------------------------------------------------------------------------------------
// Operations, as generated: targets are symbolic and resolved against the model when run.
// ---------------------------------------------------------------------------------------------

/// Who makes a request about an existing hold or booking, relative to its owner.
#[derive(Clone, Debug)]
enum Who {
    Owner,
    /// Another buyer (the next one if the index names the owner).
    Other(usize),
    Admin,
}

/// A hold or booking the operation is about.
#[derive(Clone, Debug)]
enum Target {
    /// The n-th most recent one the model knows (wrapping); an unknown id if there is none.
    Recent(usize),
    /// A well-formed id that was never minted.
    Unknown,
}

#[derive(Clone, Debug)]
enum Op {
    Hold {
        buyer: usize,
        /// Seat indexes; `SEAT_INVALID` is a seat id the venue does not have, repeats are allowed.
        seats: Vec<u32>,
        key: Option<u8>,
        /// Mint the id from the nonce of the previous hold, so the id collides and the inventory
        /// has to step past it.
        reuse_nonce: bool,
    },
    Confirm {
        who: Who,
        hold: Target,
        /// 0 is a blank payment reference (rejected); others name `pay-<n>`.
        payment: u8,
        key: Option<u8>,
    },
    Release {
        who: Who,
        hold: Target,
    },
    Cancel {
        who: Who,
        booking: Target,
    },
    /// Moves the inventory property's clock forward.
    Advance {
        ms: u64,
    },
    /// What the actor's timer does: `ExpireHolds` if a hold is due.
    Expire,
    /// Takes a checkpoint (the inventory property) to restore from at the next crash.
    Checkpoint,
    /// Inventory: restore the last checkpoint and replay the commands after it. Engine: shut down,
    /// drop, and open the same directory again.
    Crash,
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![8 => Just(Who::Owner), 1 => (0..BUYERS.len()).prop_map(Who::Other), 1 => Just(Who::Admin)]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![15 => (0usize..6).prop_map(Target::Recent), 1 => Just(Target::Unknown)]
}

fn seat() -> impl Strategy<Value = u32> {
    prop_oneof![40 => 0..SEAT_COUNT, 1 => Just(SEAT_INVALID)]
}

prop_compose! {
    /// `crowded`: one buyer placing single-seat holds, to reach the holds-per-buyer limit.
    fn hold_op(crowded: bool)(
        buyer in if crowded {
            prop_oneof![8 => Just(0usize), 1 => Just(1usize)].boxed()
        } else {
            prop_oneof![2 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)].boxed()
        },
        seats in if crowded {
            prop::collection::vec(seat(), 1..=1).boxed()
        } else {
            prop_oneof![
                3 => prop::collection::vec(seat(), 1..=1),
                2 => prop::collection::vec(seat(), 2..=4),
            ].boxed()
        },
        key in prop::option::weighted(0.25, 0u8..3),
        reuse_nonce in prop::bool::weighted(0.15),
    ) -> Op {
        Op::Hold { buyer, seats, key, reuse_nonce }
    }
}

prop_compose! {
    fn confirm_op()(
        who in who(),
        hold in target(),
        payment in prop_oneof![1 => Just(0u8), 12 => 1u8..4],
        key in prop::option::weighted(0.25, 0u8..3),
    ) -> Op {
        Op::Confirm { who, hold, payment, key }
    }
}

fn release_op() -> impl Strategy<Value = Op> {
    (who(), target()).prop_map(|(who, hold)| Op::Release { who, hold })
}

fn cancel_op() -> impl Strategy<Value = Op> {
    (who(), target()).prop_map(|(who, booking)| Op::Cancel { who, booking })
}

fn inventory_op(crowded: bool) -> impl Strategy<Value = Op> {
    prop_oneof![
        if crowded { 60 } else { 10 } => hold_op(crowded),
        6 => confirm_op(),
        3 => release_op(),
        3 => cancel_op(),
        if crowded { 1 } else { 3 } => prop::sample::select(ADVANCES_MS.to_vec()).prop_map(|ms| Op::Advance { ms }),
        if crowded { 1 } else { 3 } => Just(Op::Expire),
        1 => Just(Op::Checkpoint),
        2 => Just(Op::Crash),
    ]
}

fn engine_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => hold_op(false),
        6 => confirm_op(),
        3 => release_op(),
        3 => cancel_op(),
        2 => Just(Op::Crash),
    ]
}

#[derive(Clone, Debug)]
struct InventoryCase {
    buyer_seat_limit: u32,
    ops: Vec<Op>,
}

prop_compose! {
    fn inventory_case()(crowded in prop::bool::weighted(0.25))(
        // 12 lets one buyer reach the holds-per-buyer limit with single-seat holds.
        buyer_seat_limit in if crowded { Just(12u32).boxed() } else { prop::sample::select(vec![3u32, 12]).boxed() },
        ops in prop::collection::vec(inventory_op(crowded), if crowded { 20..=40 } else { 1..=40 }),
    ) -> InventoryCase {
        InventoryCase { buyer_seat_limit, ops }
    }
}

#[derive(Clone, Debug)]
struct EngineCase {
    buyer_seat_limit: u32,
    /// Commands between automatic checkpoints: small values make recovery start from a
    /// checkpoint and the log be purged behind it.
    checkpoint_commands: u64,
    ops: Vec<Op>,
}

prop_compose! {
    fn engine_case()(
        buyer_seat_limit in prop::sample::select(vec![3u32, 12]),
        checkpoint_commands in prop::sample::select(vec![1u64, 4, 10_000]),
        ops in prop::collection::vec(engine_op(), 1..=40),
    ) -> EngineCase {
        EngineCase { buyer_seat_limit, checkpoint_commands, ops }
    }
}

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct ModelHold {
    buyer: usize,
    /// In the order they were asked for: the order of the hold's tickets.
    seats: Vec<u32>,
    status: HoldStatus,
    expires_at_ms: u64,
    ended_at_ms: Option<u64>,
    booking: Option<BookingId>,
    key: Option<String>,
}

#[derive(Clone, Debug)]
struct ModelBooking {
    buyer: usize,
    hold: HoldId,
    seats: Vec<u32>,
    payment_reference: String,
    status: BookingStatus,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Actor {
    Buyer(usize),
    Admin,
}

impl Actor {
    fn caller(&self) -> Caller {
        match self {
            Actor::Buyer(buyer) => buyer_caller(*buyer),
            Actor::Admin => admin_caller(),
        }
    }

    fn may_touch(&self, owner: usize) -> bool {
        match self {
            Actor::Buyer(buyer) => *buyer == owner,
            Actor::Admin => true,
        }
    }
}

/// A request with its targets resolved to ids.
#[derive(Clone, Debug)]
enum Step {
    Hold { buyer: usize, seats: Vec<u32>, key: Option<String> },
    Confirm { caller: Actor, hold_id: HoldId, payment_reference: String, key: Option<String> },
    Release { caller: Actor, hold_id: HoldId },
    Cancel { caller: Actor, booking_id: BookingId },
}

/// A rejection as the model predicts it: the variant and the fields a caller acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rejection {
    NotFound(&'static str),
    InvalidArgument(String),
    SeatsTaken(Vec<String>),
    LimitExceeded(&'static str),
    HoldNotActive(&'static str),
    HoldAlreadyConfirmed(BookingId),
    PermissionDenied,
    KeyReused(&'static str),
    Other(String),
}

fn rejection_of(error: &Error) -> Rejection {
    match error {
        Error::NotFound { kind, .. } => Rejection::NotFound(kind),
        Error::InvalidArgument { field, .. } => Rejection::InvalidArgument(field.clone()),
        Error::SeatsTaken { seat_ids } => Rejection::SeatsTaken(seat_ids.clone()),
        Error::LimitExceeded { limit, .. } => Rejection::LimitExceeded(limit),
        Error::HoldNotActive { status, .. } => Rejection::HoldNotActive(status),
        Error::HoldAlreadyConfirmed { booking_id, .. } => Rejection::HoldAlreadyConfirmed(BookingId::new(booking_id)),
        Error::PermissionDenied { .. } => Rejection::PermissionDenied,
        Error::KeyReused { field, .. } => Rejection::KeyReused(field),
        other => Rejection::Other(format!("{other:?}")),
    }
}

/// What the model says a step leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Plan {
    Reject(Rejection),
    /// A retry: the earlier answer, nothing changes.
    AnswerHold(HoldId),
    AnswerBooking(BookingId),
    /// A change: a new hold or booking (id minted by the engine), or the named one changes.
    Apply,
}

/// What the engine answered, by id.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reply {
    Hold(HoldId),
    Booking(BookingId),
}

struct Model {
    event_id: EventId,
    buyer_seat_limit: u32,
    hold_ttl_ms: u64,
    now_ms: u64,
    seats: Vec<SeatStatus>,
    /// Live and retained holds: what the inventory can still show.
    holds: BTreeMap<HoldId, ModelHold>,
    /// Holds forgotten after the retention: NotFound from then on.
    forgotten: BTreeSet<HoldId>,
    bookings: BTreeMap<BookingId, ModelBooking>,
    hold_keys: HashMap<(usize, String), HoldId>,
    confirm_keys: HashMap<(usize, String), BookingId>,
    /// Every hold and booking ever made, oldest first, with its buyer: what targets resolve to.
    placed_holds: Vec<(HoldId, usize)>,
    made_bookings: Vec<(BookingId, usize)>,
    /// Commands applied.
    version: u64,
}

impl Model {
    fn new(event_id: EventId, buyer_seat_limit: u32, hold_ttl_ms: u64, now_ms: u64) -> Self {
        Self {
            event_id,
            buyer_seat_limit,
            hold_ttl_ms,
            now_ms,
            seats: vec![SeatStatus::Available; SEAT_COUNT as usize],
            holds: BTreeMap::new(),
            forgotten: BTreeSet::new(),
            bookings: BTreeMap::new(),
            hold_keys: HashMap::new(),
            confirm_keys: HashMap::new(),
            placed_holds: Vec::new(),
            made_bookings: Vec::new(),
            version: 0,
        }
    }

    /// (seats in active holds and confirmed bookings, active holds) of one buyer.
    fn usage(&self, buyer: usize) -> (u32, u32) {
        let mut seats = 0;
        let mut active_holds = 0;
        for hold in self.holds.values().filter(|hold| hold.buyer == buyer && hold.status == HoldStatus::Active) {
            seats += hold.seats.len() as u32;
            active_holds += 1;
        }
        for booking in self.bookings.values() {
            if booking.buyer == buyer && booking.status == BookingStatus::Confirmed {
                seats += booking.seats.len() as u32;
            }
        }
        (seats, active_holds)
    }

    fn resolve_actor(who: &Who, owner: usize) -> Actor {
        match who {
            Who::Owner => Actor::Buyer(owner),
            Who::Other(other) if *other == owner => Actor::Buyer((owner + 1) % BUYERS.len()),
            Who::Other(other) => Actor::Buyer(*other),
            Who::Admin => Actor::Admin,
        }
    }

    fn resolve_hold(&self, target: &Target) -> (HoldId, usize) {
        match target {
            Target::Recent(back) if !self.placed_holds.is_empty() => {
                let count = self.placed_holds.len();
                self.placed_holds[count - 1 - back % count].clone()
            }
            _ => (HoldId::mint(&self.event_id, NONCE_UNKNOWN), 0),
        }
    }

    fn resolve_booking(&self, target: &Target) -> (BookingId, usize) {
        match target {
            Target::Recent(back) if !self.made_bookings.is_empty() => {
                let count = self.made_bookings.len();
                self.made_bookings[count - 1 - back % count].clone()
            }
            _ => (BookingId::mint(&self.event_id, NONCE_UNKNOWN), 0),
        }
    }

    /// The step an operation stands for; `None` for operations that are not requests.
    fn resolve(&self, op: &Op) -> Option<Step> {
        let key = |key: &Option<u8>| key.map(|key| format!("k{key}"));
        Some(match op {
            Op::Hold { buyer, seats, key: hold_key, .. } => {
                Step::Hold { buyer: *buyer, seats: seats.clone(), key: key(hold_key) }
            }
            Op::Confirm { who, hold, payment, key: confirm_key } => {
                let (hold_id, owner) = self.resolve_hold(hold);
                let payment_reference = if *payment == 0 { " ".to_string() } else { format!("pay-{payment}") };
                Step::Confirm {
                    caller: Self::resolve_actor(who, owner),
                    hold_id,
                    payment_reference,
                    key: key(confirm_key),
                }
            }
            Op::Release { who, hold } => {
                let (hold_id, owner) = self.resolve_hold(hold);
                Step::Release { caller: Self::resolve_actor(who, owner), hold_id }
            }
            Op::Cancel { who, booking } => {
                let (booking_id, owner) = self.resolve_booking(booking);
                Step::Cancel { caller: Self::resolve_actor(who, owner), booking_id }
            }
            Op::Advance { .. } | Op::Expire | Op::Checkpoint | Op::Crash => return None,
        })
    }

    fn decide(&self, step: &Step) -> Plan {
        match step {
            Step::Hold { buyer, seats, key } => self.decide_hold(*buyer, seats, key),
            Step::Confirm { caller, hold_id, payment_reference, key } => {
                self.decide_confirm(caller, hold_id, payment_reference, key)
            }
            Step::Release { caller, hold_id } => {
                let Some(hold) = self.holds.get(hold_id) else {
                    return Plan::Reject(Rejection::NotFound("hold"));
                };
                if !caller.may_touch(hold.buyer) {
                    return Plan::Reject(Rejection::PermissionDenied);
                }
                match hold.status {
                    // Releasing is allowed past the deadline until the timer expires the hold.
                    HoldStatus::Active => Plan::Apply,
                    HoldStatus::Released => Plan::AnswerHold(hold_id.clone()),
                    status => Plan::Reject(Rejection::HoldNotActive(status.name())),
                }
            }
            Step::Cancel { caller, booking_id } => {
                let Some(booking) = self.bookings.get(booking_id) else {
                    return Plan::Reject(Rejection::NotFound("booking"));
                };
                if !caller.may_touch(booking.buyer) {
                    return Plan::Reject(Rejection::PermissionDenied);
                }
                match booking.status {
                    BookingStatus::Confirmed => Plan::Apply,
                    BookingStatus::Cancelled => Plan::AnswerBooking(booking_id.clone()),
                }
            }
        }
    }

    fn decide_hold(&self, buyer: usize, seats: &[u32], key: &Option<String>) -> Plan {
        if let Some(key) = key {
            if let Some(hold_id) = self.hold_keys.get(&(buyer, key.clone())) {
                // The same key for other seats is not a retry.
                if self.holds.get(hold_id).is_none_or(|hold| hold.seats != seats) {
                    return Plan::Reject(Rejection::KeyReused("idempotency_key"));
                }
                return Plan::AnswerHold(hold_id.clone());
            }
        }
        for (position, seat) in seats.iter().enumerate() {
            if *seat >= SEAT_COUNT || seats[..position].contains(seat) {
                return Plan::Reject(Rejection::InvalidArgument(format!("seats.seat_ids[{position}]")));
            }
        }
        let (seats_used, active_holds) = self.usage(buyer);
        if active_holds >= HOLDS_PER_BUYER_MAX {
            return Plan::Reject(Rejection::LimitExceeded("holds_per_buyer"));
        }
        if seats_used + seats.len() as u32 > self.buyer_seat_limit {
            return Plan::Reject(Rejection::LimitExceeded("buyer_seat_limit"));
        }
        let taken: Vec<String> = seats
            .iter()
            .filter(|&&seat| self.seats[seat as usize] != SeatStatus::Available)
            .map(|&seat| seat_id(seat))
            .collect();
        if !taken.is_empty() {
            return Plan::Reject(Rejection::SeatsTaken(taken));
        }
        Plan::Apply
    }

    fn decide_confirm(&self, caller: &Actor, hold_id: &HoldId, payment_reference: &str, key: &Option<String>) -> Plan {
        if payment_reference.trim().is_empty() {
            return Plan::Reject(Rejection::InvalidArgument("payment_reference".into()));
        }
        let Some(hold) = self.holds.get(hold_id) else {
            return Plan::Reject(Rejection::NotFound("hold"));
        };
        // Only the owner confirms: paying is not something an admin does for a buyer.
        if *caller != Actor::Buyer(hold.buyer) {
            return Plan::Reject(Rejection::PermissionDenied);
        }
        if let Some(key) = key {
            if let Some(booking_id) = self.confirm_keys.get(&(hold.buyer, key.clone())) {
                if &self.bookings[booking_id].hold != hold_id {
                    return Plan::Reject(Rejection::KeyReused("idempotency_key"));
                }
                return Plan::AnswerBooking(booking_id.clone());
            }
        }
        match hold.status {
            // Past the deadline but not yet expired by the timer: still this hold's seats.
            HoldStatus::Active => Plan::Apply,
            // A late confirm books the same seats again if they are all free.
            HoldStatus::Expired => {
                let taken: Vec<String> = hold
                    .seats
                    .iter()
                    .filter(|&&seat| self.seats[seat as usize] != SeatStatus::Available)
                    .map(|&seat| seat_id(seat))
                    .collect();
                if !taken.is_empty() {
                    return Plan::Reject(Rejection::SeatsTaken(taken));
                }
                let (seats_used, _) = self.usage(hold.buyer);
                if seats_used + hold.seats.len() as u32 > self.buyer_seat_limit {
                    return Plan::Reject(Rejection::LimitExceeded("buyer_seat_limit"));
                }
                Plan::Apply
            }
            HoldStatus::Confirmed => {
                let booking_id = hold.booking.clone().expect("a confirmed hold has a booking");
                if self.bookings[&booking_id].payment_reference == payment_reference {
                    Plan::AnswerBooking(booking_id)
                } else {
                    Plan::Reject(Rejection::HoldAlreadyConfirmed(booking_id))
                }
            }
            status => Plan::Reject(Rejection::HoldNotActive(status.name())),
        }
    }

    /// Applies a step the model planned as `Apply`, with the id the engine answered.
    fn apply(&mut self, step: &Step, reply: &Reply) {
        self.version += 1;
        match (step, reply) {
            (Step::Hold { buyer, seats, key }, Reply::Hold(hold_id)) => {
                for &seat in seats {
                    self.seats[seat as usize] = SeatStatus::Held;
                }
                if let Some(key) = key {
                    self.hold_keys.insert((*buyer, key.clone()), hold_id.clone());
                }
                self.forgotten.remove(hold_id);
                self.holds.insert(
                    hold_id.clone(),
                    ModelHold {
                        buyer: *buyer,
                        seats: seats.clone(),
                        status: HoldStatus::Active,
                        expires_at_ms: self.now_ms.saturating_add(self.hold_ttl_ms),
                        ended_at_ms: None,
                        booking: None,
                        key: key.clone(),
                    },
                );
                self.placed_holds.push((hold_id.clone(), *buyer));
            }
            (Step::Confirm { hold_id, payment_reference, key, .. }, Reply::Booking(booking_id)) => {
                let hold = self.holds.get_mut(hold_id).expect("confirmed hold is known");
                // An expired hold confirmed late keeps the time it ended (its retention runs
                // from its expiry).
                let ended_now = hold.status == HoldStatus::Active;
                if ended_now {
                    hold.ended_at_ms = Some(self.now_ms);
                }
                hold.status = HoldStatus::Confirmed;
                hold.booking = Some(booking_id.clone());
                let (buyer, seats) = (hold.buyer, hold.seats.clone());
                for &seat in &seats {
                    self.seats[seat as usize] = SeatStatus::Booked;
                }
                if let Some(key) = key {
                    self.confirm_keys.insert((buyer, key.clone()), booking_id.clone());
                }
                self.bookings.insert(
                    booking_id.clone(),
                    ModelBooking {
                        buyer,
                        hold: hold_id.clone(),
                        seats,
                        payment_reference: payment_reference.clone(),
                        status: BookingStatus::Confirmed,
                    },
                );
                self.made_bookings.push((booking_id.clone(), buyer));
                if ended_now {
                    self.forget_old();
                }
            }
            (Step::Release { hold_id, .. }, Reply::Hold(_)) => {
                let hold = self.holds.get_mut(hold_id).expect("released hold is known");
                hold.status = HoldStatus::Released;
                hold.ended_at_ms = Some(self.now_ms);
                for &seat in &hold.seats {
                    self.seats[seat as usize] = SeatStatus::Available;
                }
                self.forget_old();
            }
            (Step::Cancel { booking_id, .. }, Reply::Booking(_)) => {
                let booking = self.bookings.get_mut(booking_id).expect("cancelled booking is known");
                booking.status = BookingStatus::Cancelled;
                for &seat in &booking.seats {
                    self.seats[seat as usize] = SeatStatus::Available;
                }
            }
            (step, reply) => unreachable!("reply {reply:?} checked against step {step:?} before applying"),
        }
    }

    /// Active holds whose deadline has passed, in the order the inventory expires them.
    fn due_holds(&self) -> Vec<HoldId> {
        let mut due: Vec<(u64, HoldId)> = self
            .holds
            .iter()
            .filter(|(_, hold)| hold.status == HoldStatus::Active && hold.expires_at_ms <= self.now_ms)
            .map(|(hold_id, hold)| (hold.expires_at_ms, hold_id.clone()))
            .collect();
        due.sort();
        due.into_iter().map(|(_, hold_id)| hold_id).collect()
    }

    /// The timer's command: expires the due holds, then forgets holds ended longer than the
    /// retention ago. Returns the expired holds.
    fn expire(&mut self) -> Vec<HoldId> {
        let due = self.due_holds();
        for hold_id in &due {
            let hold = self.holds.get_mut(hold_id).expect("due hold");
            hold.status = HoldStatus::Expired;
            hold.ended_at_ms = Some(self.now_ms);
            for &seat in &hold.seats {
                self.seats[seat as usize] = SeatStatus::Available;
            }
        }
        self.forget_old();
        self.version += 1;
        due
    }

    /// Forgets holds ended longer than the retention ago (the inventory does so whenever a hold
    /// ends, and on every expiry run).
    fn forget_old(&mut self) {
        let now_ms = self.now_ms;
        let old: Vec<HoldId> = self
            .holds
            .iter()
            .filter(|(_, hold)| hold.ended_at_ms.is_some_and(|ended_at_ms| ended_at_ms + HOLD_RETENTION_MS <= now_ms))
            .map(|(hold_id, _)| hold_id.clone())
            .collect();
        for hold_id in old {
            let hold = self.holds.remove(&hold_id).expect("old hold");
            if let Some(key) = hold.key {
                self.hold_keys.remove(&(hold.buyer, key));
            }
            self.forgotten.insert(hold_id);
        }
    }

    /// The id the inventory mints from `nonce`: the first not taken by a hold it still has.
    fn predicted_hold_id(&self, nonce: u64) -> HoldId {
        let mut nonce = nonce;
        loop {
            let hold_id = HoldId::mint(&self.event_id, nonce);
            if !self.holds.contains_key(&hold_id) {
                return hold_id;
            }
            nonce = nonce.wrapping_add(1);
        }
    }

    /// A booking's nonce carries the time: milliseconds in the top 42 bits, the random nonce's
    /// low 22 bits below (so booking ids sort by when they were made).
    fn predicted_booking_id(&self, nonce: u64) -> BookingId {
        let mut nonce = (self.now_ms << 22) | (nonce & ((1 << 22) - 1));
        loop {
            let booking_id = BookingId::mint(&self.event_id, nonce);
            if !self.bookings.contains_key(&booking_id) {
                return booking_id;
            }
            nonce = nonce.wrapping_add(1);
        }
    }
}

/// Checks the engine's answer against the model's plan and, for a change, applies it to the
/// model. `predicted` is the id a new hold or booking must get, when the test knows the nonce.
fn check_and_apply(
    model: &mut Model,
    step: &Step,
    actual: Result<Reply, Error>,
    predicted: Option<Reply>,
) -> Result<(), String> {
    let plan = model.decide(step);
    let mismatch = |actual: &Result<Reply, Error>| format!("model expected {plan:?}, engine answered {actual:?}");
    match (&plan, &actual) {
        (Plan::Reject(expected), Err(error)) if &rejection_of(error) == expected => Ok(()),
        (Plan::AnswerHold(expected), Ok(Reply::Hold(hold_id))) if hold_id == expected => Ok(()),
        (Plan::AnswerBooking(expected), Ok(Reply::Booking(booking_id))) if booking_id == expected => Ok(()),
        (Plan::Apply, Ok(reply)) => {
            let fits = match (step, reply) {
                (Step::Hold { .. }, Reply::Hold(hold_id)) => !model.holds.contains_key(hold_id),
                (Step::Confirm { .. }, Reply::Booking(booking_id)) => !model.bookings.contains_key(booking_id),
                (Step::Release { hold_id, .. }, Reply::Hold(answered)) => answered == hold_id,
                (Step::Cancel { booking_id, .. }, Reply::Booking(answered)) => answered == booking_id,
                _ => false,
            };
            if !fits {
                return Err(format!("{} (the answer names the wrong or a reused id)", mismatch(&actual)));
            }
            if let Some(predicted) = predicted {
                if matches!(step, Step::Hold { .. } | Step::Confirm { .. }) && &predicted != reply {
                    return Err(format!("new id {reply:?}, but the nonce mints {predicted:?}"));
                }
            }
            model.apply(step, reply);
            Ok(())
        }
        _ => Err(mismatch(&actual)),
    }
}

fn ticket_seats(tickets: &[turnstile_engine::inventory::TicketView]) -> Vec<String> {
    tickets.iter().map(|ticket| ticket.seat_id.clone().unwrap_or_default()).collect()
}

fn check_hold_view(model: &Model, hold_id: &HoldId, view: Result<HoldView, Error>, times: bool) -> Result<(), String> {
    let Some(expected) = model.holds.get(hold_id) else {
        return match view {
            Err(Error::NotFound { kind: "hold", .. }) => Ok(()),
            other => Err(format!("hold {hold_id} should be forgotten (NotFound), got {other:?}")),
        };
    };
    let view = view.map_err(|error| format!("hold {hold_id}: {error:?}"))?;
    let seats: Vec<String> = expected.seats.iter().map(|&seat| seat_id(seat)).collect();
    let same = view.status == expected.status
        && view.buyer.as_str() == BUYERS[expected.buyer]
        && ticket_seats(&view.tickets) == seats
        && view.booking_id == expected.booking
        && (!times || view.expires_at_ms == expected.expires_at_ms);
    if !same {
        return Err(format!("hold {hold_id}: model {expected:?}, engine {view:?}"));
    }
    Ok(())
}

fn check_booking_view(model: &Model, booking_id: &BookingId, view: &BookingView) -> Result<(), String> {
    let expected =
        model.bookings.get(booking_id).ok_or_else(|| format!("booking {booking_id} unknown to the model"))?;
    let seats: Vec<String> = expected.seats.iter().map(|&seat| seat_id(seat)).collect();
    let same = view.booking_id == *booking_id
        && view.status == expected.status
        && view.buyer.as_str() == BUYERS[expected.buyer]
        && view.hold_id == expected.hold
        && ticket_seats(&view.tickets) == seats
        && view.payment_reference == expected.payment_reference
        && view.cancelled_at_ms.is_some() == (expected.status == BookingStatus::Cancelled);
    if !same {
        return Err(format!("booking {booking_id}: model {expected:?}, engine {view:?}"));
    }
    Ok(())
}

/// (available, held, booked) as the model counts them.
fn model_counts(model: &Model) -> (u32, u32, u32) {
    let count = |status: SeatStatus| model.seats.iter().filter(|&&seat| seat == status).count() as u32;
    (count(SeatStatus::Available), count(SeatStatus::Held), count(SeatStatus::Booked))
}

fn failure(ops: &[Op], index: usize, message: String) -> TestCaseError {
    TestCaseError::fail(format!(
        "step {index} ({:?}): {message}\nthe operations ({} in all):\n{ops:#?}",
        ops.get(index),
        ops.len()
    ))
}

// ---------------------------------------------------------------------------------------------
// Property 1: the deterministic inventory, with time as a number
// ---------------------------------------------------------------------------------------------

fn check_inventory_state(inventory: &Inventory, model: &Model) -> Result<(), String> {
    inventory.check_invariants().map_err(|reason| format!("inventory invariants: {reason}"))?;
    if inventory.version() != model.version {
        return Err(format!("version {}, model {}", inventory.version(), model.version));
    }
    if inventory.seat_statuses() != model.seats.as_slice() {
        return Err(format!("seats {:?}, model {:?}", inventory.seat_statuses(), model.seats));
    }
    let row = &inventory.availability()[0];
    if (row.available, row.held, row.booked) != model_counts(model) || row.total != SEAT_COUNT {
        return Err(format!("availability {row:?}, model (available, held, booked) {:?}", model_counts(model)));
    }
    for hold_id in model.holds.keys().chain(&model.forgotten) {
        check_hold_view(model, hold_id, inventory.hold_view(hold_id, None), true)?;
    }
    for booking_id in model.bookings.keys() {
        let view = inventory.booking_view(booking_id, None).map_err(|error| format!("{booking_id}: {error:?}"))?;
        check_booking_view(model, booking_id, &view)?;
    }
    let due = !model.due_holds().is_empty();
    if inventory.expiry_due(model.now_ms).is_some() != due {
        return Err(format!("expiry_due at {} disagrees with the model (due: {due})", model.now_ms));
    }
    Ok(())
}

fn request_of(step: &Step) -> Request {
    match step {
        Step::Hold { buyer, seats, key } => Request::PlaceHold {
            caller: buyer_caller(*buyer),
            selection: Selection::Seats(seats.iter().map(|&seat| seat_id(seat)).collect()),
            idempotency_key: key.clone(),
        },
        Step::Confirm { caller, hold_id, payment_reference, key } => Request::ConfirmHold {
            caller: caller.caller(),
            hold_id: hold_id.clone(),
            payment_reference: payment_reference.clone(),
            idempotency_key: key.clone(),
        },
        Step::Release { caller, hold_id } => Request::ReleaseHold { caller: caller.caller(), hold_id: hold_id.clone() },
        Step::Cancel { caller, booking_id } => {
            Request::CancelBooking { caller: caller.caller(), booking_id: booking_id.clone() }
        }
    }
}

/// Fresh nonces are spaced apart so that only `reuse_nonce` makes ids collide.
fn nonce_for(index: usize) -> u64 {
    (index as u64 + 1) * 1_000
}

fn run_inventory_case(case: &InventoryCase) -> Result<(), TestCaseError> {
    let ops = &case.ops;
    let event_id = EventId::mint(1);
    let seat_map = Arc::new(SeatMap::build(&section_specs()).expect("seat map"));
    for seat in 0..SEAT_COUNT {
        assert_eq!(seat_map.seat_id(seat), seat_id(seat), "the test's seat ids follow the seat map");
    }
    let terms = Terms {
        currency: "EUR".into(),
        price_levels: price_levels(),
        hold_ttl_ms: HOLD_TTL_MS,
        buyer_seat_limit: case.buyer_seat_limit,
    };
    let fresh = || Inventory::new(event_id.clone(), seat_map.clone(), terms.clone()).expect("inventory");
    let mut inventory = fresh();
    let mut model = Model::new(event_id.clone(), case.buyer_seat_limit, HOLD_TTL_MS, T0_MS);
    // What a crash recovers from: the last checkpoint and the commands applied after it.
    let mut checkpoint: Option<Vec<u8>> = None;
    let mut log: Vec<Command> = Vec::new();
    let mut last_nonce = nonce_for(0);

    for (index, op) in ops.iter().enumerate() {
        let fail = |message: String| failure(ops, index, message);
        match op {
            Op::Advance { ms } => model.now_ms += ms,
            Op::Expire => match inventory.expiry_due(model.now_ms) {
                Some(command) => {
                    let expected = model.expire();
                    match inventory.apply(&command) {
                        Outcome::HoldsExpired { hold_ids } if hold_ids == expected => {}
                        other => return Err(fail(format!("expired {other:?}, model expected {expected:?}"))),
                    }
                    log.push(command);
                }
                None if !model.due_holds().is_empty() => {
                    return Err(fail(format!("nothing due, model has {:?} due", model.due_holds())));
                }
                None => {}
            },
            Op::Checkpoint => {
                checkpoint = Some(inventory.checkpoint());
                log.clear();
            }
            Op::Crash => {
                let mut recovered = match &checkpoint {
                    Some(bytes) => Inventory::restore(bytes, seat_map.clone()).map_err(&fail)?,
                    None => fresh(),
                };
                for command in &log {
                    recovered.apply(command);
                }
                inventory = recovered;
            }
            Op::Hold { .. } | Op::Confirm { .. } | Op::Release { .. } | Op::Cancel { .. } => {
                let step = model.resolve(op).expect("a request");
                let nonce = match op {
                    Op::Hold { reuse_nonce: true, .. } => last_nonce,
                    _ => nonce_for(index),
                };
                if matches!(op, Op::Hold { .. }) {
                    last_nonce = nonce;
                }
                let predicted = match &step {
                    Step::Hold { .. } => Some(Reply::Hold(model.predicted_hold_id(nonce))),
                    Step::Confirm { .. } => Some(Reply::Booking(model.predicted_booking_id(nonce))),
                    _ => None,
                };
                let decided = inventory.decide(&request_of(&step), model.now_ms, nonce);
                let actual = match decided {
                    Ok(Decision::Apply(command)) => {
                        let outcome = inventory.apply(&command);
                        log.push(command);
                        Ok(outcome)
                    }
                    Ok(Decision::Answered(outcome)) => Ok(outcome),
                    Err(error) => Err(error),
                };
                let actual = actual.and_then(|outcome| match outcome {
                    Outcome::Hold(hold_id) => Ok(Reply::Hold(hold_id)),
                    Outcome::Booking(booking_id) => Ok(Reply::Booking(booking_id)),
                    other => Err(Error::Unavailable { reason: format!("unexpected outcome {other:?}") }),
                });
                check_and_apply(&mut model, &step, actual, predicted)
                    .map_err(|message| fail(format!("{step:?}: {message}")))?;
            }
        }
        check_inventory_state(&inventory, &model).map_err(|message| fail(format!("after the step: {message}")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn inventory_matches_the_model(case in inventory_case()) {
        run_inventory_case(&case)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Property 2: the durable engine (actors, redb log, group commit, checkpoints, recovery)
// ---------------------------------------------------------------------------------------------

async fn create_event(engine: &Engine, buyer_seat_limit: u32) -> EventId {
    let venue = engine
        .create_venue(VenueSpec { name: "Hall".into(), sections: section_specs(), ..VenueSpec::default() })
        .await
        .expect("venue");
    engine
        .create_event(EventSpec {
            name: "Concert".into(),
            venue_id: venue.venue_id.clone(),
            starts_at_ms: 2_000_000_000_000,
            ends_at_ms: 2_000_000_900_000,
            currency: "EUR".into(),
            price_levels: price_levels(),
            buyer_seat_limit: Some(buyer_seat_limit),
            ..EventSpec::default()
        })
        .await
        .expect("event")
        .event_id
        .clone()
}

async fn execute(engine: &Engine, event_id: &EventId, step: &Step) -> Result<Reply, Error> {
    match step {
        Step::Hold { buyer, seats, key } => {
            let selection = Selection::Seats(seats.iter().map(|&seat| seat_id(seat)).collect());
            let hold = engine.place_hold(buyer_caller(*buyer), event_id, selection, key.clone()).await?;
            Ok(Reply::Hold(hold.hold_id))
        }
        Step::Confirm { caller, hold_id, payment_reference, key } => {
            let booking = engine.confirm_hold(caller.caller(), hold_id, payment_reference.clone(), key.clone()).await?;
            Ok(Reply::Booking(booking.booking_id))
        }
        Step::Release { caller, hold_id } => {
            Ok(Reply::Hold(engine.release_hold(caller.caller(), hold_id).await?.hold_id))
        }
        Step::Cancel { caller, booking_id } => {
            Ok(Reply::Booking(engine.cancel_booking(caller.caller(), booking_id).await?.booking_id))
        }
    }
}

async fn check_engine_state(engine: &Engine, event_id: &EventId, model: &Model) -> Result<(), String> {
    let overview =
        engine.event_details(event_id, true).await.map_err(|error| format!("event details: {error:?}"))?.overview;
    if overview.version != model.version {
        return Err(format!("version {}, model {}", overview.version, model.version));
    }
    let seats = overview.seats.ok_or("no seats in the overview")?;
    let expected: Vec<(String, SeatStatus)> =
        model.seats.iter().enumerate().map(|(seat, status)| (seat_id(seat as u32), *status)).collect();
    if seats != expected {
        return Err(format!("seats {seats:?}, model {expected:?}"));
    }
    let row = &overview.availability[0];
    if (row.available, row.held, row.booked) != model_counts(model) || row.total != SEAT_COUNT {
        return Err(format!("availability {row:?}, model (available, held, booked) {:?}", model_counts(model)));
    }
    for hold_id in model.holds.keys() {
        // Expiry times come from the wall clock here; the model does not know them.
        check_hold_view(model, hold_id, engine.get_hold(admin_caller(), hold_id).await, false)?;
    }
    for booking_id in model.bookings.keys() {
        let view = engine.get_booking(admin_caller(), booking_id).await.map_err(|error| format!("{error:?}"))?;
        check_booking_view(model, booking_id, &view)?;
    }
    for (buyer, name) in BUYERS.iter().enumerate() {
        let (listed, next) =
            engine.list_bookings(&BuyerId::new(*name), None, 100).map_err(|error| format!("{error:?}"))?;
        if next.is_some() {
            return Err(format!("{name} has more than a page of bookings"));
        }
        let listed_ids: BTreeSet<BookingId> = listed.iter().map(|booking| booking.booking_id.clone()).collect();
        let expected_ids: BTreeSet<BookingId> = model
            .bookings
            .iter()
            .filter(|(_, booking)| booking.buyer == buyer)
            .map(|(booking_id, _)| booking_id.clone())
            .collect();
        if listed_ids != expected_ids || listed_ids.len() != listed.len() {
            return Err(format!("{name} lists {listed_ids:?}, model has {expected_ids:?}"));
        }
        for booking in &listed {
            check_booking_view(model, &booking.booking_id, booking).map_err(|message| format!("listed: {message}"))?;
        }
        if listed.windows(2).any(|pair| pair[0].booked_at_ms < pair[1].booked_at_ms) {
            return Err(format!("{name}'s bookings are not newest first"));
        }
    }
    Ok(())
}

async fn run_engine_case(case: &EngineCase) -> Result<(), TestCaseError> {
    let ops = &case.ops;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EngineOptions {
        checkpoint_commands: case.checkpoint_commands,
        // Checkpoints come from the command count only: a timed sweep would make runs differ.
        checkpoint_interval: Duration::from_secs(3_600),
        ..EngineOptions::default()
    };
    let mut engine = Engine::open(dir.path(), options.clone()).await.expect("open");
    let event_id = create_event(&engine, case.buyer_seat_limit).await;
    // Holds live ten minutes of wall time: none expires during a case.
    let mut model = Model::new(event_id.clone(), case.buyer_seat_limit, u64::MAX / 4, 0);
    for (index, op) in ops.iter().enumerate() {
        let fail = |message: String| failure(ops, index, message);
        match op {
            Op::Crash => {
                engine.close().await.map_err(|error| fail(format!("closing failed: {error:?}")))?;
                engine = Engine::open(dir.path(), options.clone())
                    .await
                    .map_err(|error| fail(format!("reopening failed: {error:?}")))?;
            }
            Op::Advance { .. } | Op::Expire | Op::Checkpoint => {}
            Op::Hold { .. } | Op::Confirm { .. } | Op::Release { .. } | Op::Cancel { .. } => {
                let step = model.resolve(op).expect("a request");
                let actual = execute(&engine, &event_id, &step).await;
                check_and_apply(&mut model, &step, actual, None)
                    .map_err(|message| fail(format!("{step:?}: {message}")))?;
            }
        }
        check_engine_state(&engine, &event_id, &model)
            .await
            .map_err(|message| fail(format!("after the step: {message}")))?;
    }
    // One last crash: whatever the sequence ended with must come back.
    engine.shutdown().await;
    drop(engine);
    let engine = Engine::open(dir.path(), options).await.expect("final reopen");
    check_engine_state(&engine, &event_id, &model)
        .await
        .map_err(|message| failure(ops, ops.len(), format!("after the final reopen: {message}")))?;
    engine.shutdown().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn durable_engine_matches_the_model(case in engine_case()) {
        // Proptest bodies are synchronous: each case gets its own runtime.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(run_engine_case(&case))?;
    }
}
