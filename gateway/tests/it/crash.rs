//! Crash campaign: the real `turnstile` binary runs on a data directory while a storm of buyers
//! holds, confirms, releases and cancels over gRPC, and the process is killed with SIGKILL at a
//! random moment; then it is restarted on the same directory, checked, stormed and killed again.
//!
//! What a reply means here. A call that returned `Ok` was *acknowledged*: the server replies only
//! once the change is fsynced, so it must survive the kill. A call that failed with a transport
//! error or UNAVAILABLE was only *attempted*: it may or may not have happened. The first check after
//! the restart settles every attempt one way or the other (all reads then come from disk), so the
//! model is exact again before the next storm, and an attempt that was found missing must never
//! show up later. Every attempt carries a unique idempotency key and payment reference, which is how
//! a booking found on the server is traced back to the one call that asked for it.
//!
//! After every restart: every acknowledged booking is listed for its buyer and read back with its
//! seats and status; nothing is listed that the buyer never asked for; the seat map agrees with the
//! bookings (no seat booked outside exactly one confirmed booking) and with its own counters;
//! acknowledged holds are still active, acknowledged releases still released. Every 20th cycle
//! the server lives until its checkpoint sweep and is killed just after it, so that recovery from a
//! checkpoint plus the log behind it is exercised too.
//!
//! TURNSTILE_CRASH_KILLS sets the number of kills (default 20); TURNSTILE_CRASH_MINUTES, if set,
//! stops starting new kill cycles after that many minutes (the summary says how many were done).
//! TURNSTILE_CRASH_SEED replays the printed seed: the same seats, operations, kill delays and
//! samples; the interleaving of the buyers and the exact instant of each kill still vary.
//! `docs/DURABILITY.md` has the commands and the figures measured.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{authed, event_request, seats, venue_request, ServerProcess};
use futures::StreamExt as _;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use turnstile::auth::{Authenticator, Role};
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::admin_service_client::AdminServiceClient;
use turnstile_proto::v1::booking_service_client::BookingServiceClient;
use turnstile_proto::v1::catalog_service_client::CatalogServiceClient;

const SECRET: &str = "crash-campaign-secret-0123456789";

const KILLS_DEFAULT: u64 = 20;
const ROWS: usize = 20;
const SEATS_PER_ROW: usize = 25;
const SEATS_TOTAL: usize = ROWS * SEATS_PER_ROW;
/// Concurrent buyers in each storm.
const BUYERS: usize = 24;
/// High enough that only the server's ten-live-holds rule and the buyers' own target below bind.
const BUYER_SEAT_LIMIT: u32 = 1_000;
/// A buyer cancels bookings while it has more confirmed seats than this, so that the event never
/// sells out (24 buyers x ~12 seats stays well under 500) and a long campaign keeps booking.
const BOOKED_SEATS_PER_BUYER_TARGET: usize = 10;
/// Seats in one hold: 1 to this, adjacent in one row, so buyers collide often.
const SEATS_PER_HOLD_MAX: usize = 4;
/// The kill comes this long after the storm starts.
const KILL_DELAY_MS_MIN: u64 = 50;
const KILL_DELAY_MS_MAX: u64 = 400;
/// Bounds one buyer's storm; high enough that buyers are still busy when the kill comes, even in
/// a checkpoint cycle against a release build.
const OPERATIONS_PER_BUYER_PER_STORM_MAX: usize = 1_000;
/// Buyers must all have stopped this long after the kill.
const STORM_DRAIN_MAX: Duration = Duration::from_secs(30);
/// A restarted server must answer health checks within this.
const HEALTHY_WAIT_MAX: Duration = Duration::from_secs(20);
/// No single call waits longer than this.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Tokens outlive any campaign.
const TOKEN_TTL_SECONDS: u64 = 24 * 60 * 60;
/// Per buyer and kind (bookings, holds): settled entries are all read back after a restart while
/// there are at most this many, and a random sample of `READS_SAMPLE` once there are more. Entries
/// that changed since the last check are always read; ListBookings always covers every booking.
const READS_FULL_MAX: usize = 24;
const READS_SAMPLE: usize = 12;
/// GetBooking / GetHold calls one buyer's check keeps in flight.
const READS_IN_FLIGHT_PER_BUYER: usize = 8;
/// ListBookings pages of 100 (the server's maximum), and a bound on the pages of one listing.
const LIST_PAGE_SIZE: u32 = 100;
const LIST_PAGES_MAX: usize = 10_000;
/// Tolerance between the test's clock and the server's when deciding whether a hold may have expired.
const CLOCK_SKEW_MS: i64 = 2_000;
/// The config key of the per-buyer rate limit, which the campaign turns off where it exists.
const BUYER_RATE_LIMIT_KEY: &str = "buyer_requests_per_second";
/// Attempts of one read of a check, and the pause between them (see `read_with_retries`).
const CHECK_READ_ATTEMPTS_MAX: usize = 3;
const CHECK_READ_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// A server killed every second never reaches the 10,000 commands after which an event checkpoints,
/// so every CHECKPOINT_CYCLE_EVERY-th cycle lets the server live until its first checkpoint sweep
/// (`storage.checkpoint_sweep_seconds`, set to CHECKPOINT_SWEEP_SECONDS, after it opened), storms
/// from CHECKPOINT_STORM_LEAD before it and kills it 50-400 ms after: checkpoints and log purges
/// then happen under load right before a kill, and the restart recovers from a checkpoint plus the
/// log behind it. The other cycles kill the server well before its first sweep.
const CHECKPOINT_CYCLE_EVERY: u64 = 20;
const CHECKPOINT_SWEEP_SECONDS: u64 = 6;
const CHECKPOINT_STORM_LEAD: Duration = Duration::from_millis(500);
/// Violations printed when a check fails.
const VIOLATIONS_SHOWN_MAX: usize = 40;

// -------------------------------------------------------------------------------------------------
// The model: what each buyer was told, and what it only asked for
// -------------------------------------------------------------------------------------------------

/// What became of one ConfirmHold, keyed by its payment reference (unique per attempt).
#[derive(Clone, Debug, PartialEq, Eq)]
enum ConfirmOutcome {
    /// Sent, no reply: settled by the next check.
    Unacknowledged,
    Acknowledged {
        booking_id: String,
    },
    /// Refused by the server: no booking may ever carry this reference.
    Refused,
    /// Unacknowledged, and the check after the restart found no booking: none may appear later.
    Absent,
}

#[derive(Clone, Debug)]
struct ConfirmAttempt {
    hold_id: String,
    /// Sorted.
    seat_ids: Vec<String>,
    outcome: ConfirmOutcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CancelState {
    NotAsked,
    Unacknowledged,
    Acknowledged,
}

#[derive(Clone, Debug)]
struct KnownBooking {
    hold_id: String,
    payment_reference: String,
    /// Sorted.
    seat_ids: Vec<String>,
    cancel: CancelState,
    /// Changed since the last check: always read back by the next one.
    dirty: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HoldState {
    Active,
    ReleaseUnacknowledged,
    Released,
    ConfirmUnacknowledged { payment_reference: String },
    Confirmed { booking_id: String },
    Expired,
}

impl HoldState {
    fn is_settled_end(&self) -> bool {
        matches!(self, HoldState::Released | HoldState::Confirmed { .. } | HoldState::Expired)
    }
}

#[derive(Clone, Debug)]
struct KnownHold {
    /// Sorted.
    seat_ids: Vec<String>,
    expires_at_ms: i64,
    state: HoldState,
    dirty: bool,
}

/// A HoldSeats without reply: its hold id is unknown, so the buyer sends it again with the same
/// idempotency key, which answers the first hold if it was stored, or places it now.
#[derive(Clone, Debug)]
struct UnacknowledgedHold {
    idempotency_key: String,
    seat_ids: Vec<String>,
}

#[derive(Debug)]
struct BuyerLedger {
    buyer: String,
    token: String,
    /// Numbers every request of this buyer, for unique keys and references across the campaign.
    requests_sent: u64,
    /// Every ConfirmHold ever sent, by payment reference.
    confirms: HashMap<String, ConfirmAttempt>,
    /// Bookings known to exist: acknowledged, or found by a check.
    bookings: BTreeMap<String, KnownBooking>,
    holds: BTreeMap<String, KnownHold>,
    holds_unacknowledged: Vec<UnacknowledgedHold>,
}

impl BuyerLedger {
    fn new(buyer: String, token: String) -> Self {
        Self {
            buyer,
            token,
            requests_sent: 0,
            confirms: HashMap::new(),
            bookings: BTreeMap::new(),
            holds: BTreeMap::new(),
            holds_unacknowledged: Vec::new(),
        }
    }

    fn next_request_number(&mut self) -> u64 {
        self.requests_sent += 1;
        self.requests_sent
    }

    fn confirmed_seats(&self) -> usize {
        self.bookings.values().filter(|booking| booking.cancel == CancelState::NotAsked).map(|b| b.seat_ids.len()).sum()
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn ticket_seats(tickets: &[pb::Ticket]) -> Vec<String> {
    sorted(tickets.iter().map(|ticket| ticket.seat_id.clone()).collect())
}

fn hold_status(value: i32) -> pb::HoldStatus {
    pb::HoldStatus::try_from(value).unwrap_or(pb::HoldStatus::Unspecified)
}

fn booking_status(value: i32) -> pb::BookingStatus {
    pb::BookingStatus::try_from(value).unwrap_or(pb::BookingStatus::Unspecified)
}

fn seat_status_name(value: Option<&i32>) -> &'static str {
    match value {
        None => "absent",
        Some(value) => pb::SeatStatus::try_from(*value).map(|status| status.as_str_name()).unwrap_or("not a status"),
    }
}

fn unix_now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis() as i64).unwrap_or(0)
}

// -------------------------------------------------------------------------------------------------
// Checking a restarted server against the model (plain functions: the unit test below feeds them
// doctored observations to show that every check can fail)
// -------------------------------------------------------------------------------------------------

/// What one buyer's reads returned after a restart.
#[derive(Clone, Debug, Default)]
struct BuyerObservation {
    /// ListBookings, every page.
    listed: Vec<pb::Booking>,
    /// GetBooking by booking id; `Err` holds the status.
    bookings_read: BTreeMap<String, Result<pb::Booking, String>>,
    /// GetHold by hold id; `Err` holds the status.
    holds_read: BTreeMap<String, Result<pb::Hold, String>>,
}

#[derive(Clone, Debug)]
struct Observation {
    now_ms: i64,
    /// In the order of the ledgers.
    buyers: Vec<BuyerObservation>,
    /// GetEvent with every seat.
    event: pb::GetEventResponse,
}

/// Every disagreement between the model and what the restarted server answered, each naming the
/// buyer, booking, hold or seat concerned. Empty when the server kept its word.
fn verify(event_id: &str, ledgers: &[BuyerLedger], observation: &Observation) -> Vec<String> {
    let mut violations = Vec::new();
    // Seat -> (booking, buyer) over every listed CONFIRMED booking of every buyer.
    let mut confirmed_seats: BTreeMap<String, (String, String)> = BTreeMap::new();
    // Seat -> hold, over the holds read back as ACTIVE.
    let mut held_seats: BTreeMap<String, String> = BTreeMap::new();
    assert_eq!(ledgers.len(), observation.buyers.len(), "one observation per buyer");
    for (ledger, seen) in ledgers.iter().zip(&observation.buyers) {
        verify_buyer(
            event_id,
            ledger,
            seen,
            observation.now_ms,
            &mut confirmed_seats,
            &mut held_seats,
            &mut violations,
        );
    }
    verify_seat_map(&observation.event, &confirmed_seats, &held_seats, &mut violations);
    violations
}

fn verify_buyer(
    event_id: &str,
    ledger: &BuyerLedger,
    seen: &BuyerObservation,
    now_ms: i64,
    confirmed_seats: &mut BTreeMap<String, (String, String)>,
    held_seats: &mut BTreeMap<String, String>,
    violations: &mut Vec<String>,
) {
    let buyer = &ledger.buyer;
    let mut listed: BTreeMap<&str, &pb::Booking> = BTreeMap::new();
    let mut listed_by_hold: HashMap<&str, &str> = HashMap::new();
    let mut listed_by_reference: HashMap<&str, &pb::Booking> = HashMap::new();

    // Everything listed was asked for by this buyer, once, with the seats of the hold it confirmed.
    for booking in &seen.listed {
        let booking_id = booking.booking_id.as_str();
        let reference = booking.payment_reference.as_str();
        let status = booking_status(booking.status);
        if booking.buyer_id != *buyer {
            violations
                .push(format!("ListBookings of {buyer} returned booking {booking_id} of buyer '{}'", booking.buyer_id));
        }
        if booking.event_id != event_id {
            violations
                .push(format!("booking {booking_id} of {buyer} names event '{}', not '{event_id}'", booking.event_id));
        }
        if listed.insert(booking_id, booking).is_some() {
            violations.push(format!("booking {booking_id} is listed twice for {buyer}"));
            continue;
        }
        if let Some(other) = listed_by_hold.insert(&booking.hold_id, booking_id) {
            violations.push(format!(
                "hold {} of {buyer} is confirmed twice: bookings {other} and {booking_id}",
                booking.hold_id
            ));
        }
        if let Some(other) = listed_by_reference.insert(reference, booking) {
            violations.push(format!(
                "payment reference '{reference}' of {buyer} is on two bookings: {} and {booking_id}",
                other.booking_id
            ));
        }
        let seat_ids = ticket_seats(&booking.tickets);
        match ledger.confirms.get(reference) {
            None => violations.push(format!(
                "phantom booking {booking_id} of {buyer} (seats {seat_ids:?}, {}): its payment reference \
                 '{reference}' was never sent by this buyer",
                status.as_str_name()
            )),
            Some(attempt) => {
                match &attempt.outcome {
                    ConfirmOutcome::Refused => violations.push(format!(
                        "booking {booking_id} of {buyer} carries payment reference '{reference}', whose \
                         ConfirmHold was refused"
                    )),
                    ConfirmOutcome::Absent => violations.push(format!(
                        "booking {booking_id} of {buyer} (payment reference '{reference}') appeared after an \
                         earlier restart had shown that this confirm did not happen"
                    )),
                    ConfirmOutcome::Acknowledged { booking_id: acknowledged } if acknowledged != booking_id => {
                        violations.push(format!(
                            "payment reference '{reference}' of {buyer} was acknowledged as booking {acknowledged} \
                             but is listed as booking {booking_id}"
                        ))
                    }
                    ConfirmOutcome::Unacknowledged if status != pb::BookingStatus::Confirmed => {
                        violations.push(format!(
                            "booking {booking_id} of {buyer} was never acknowledged nor asked to be cancelled, \
                             yet is {}",
                            status.as_str_name()
                        ))
                    }
                    _ => {}
                }
                if booking.hold_id != attempt.hold_id {
                    violations.push(format!(
                        "booking {booking_id} of {buyer} confirms hold {}, but its payment reference '{reference}' \
                         was sent to confirm hold {}",
                        booking.hold_id, attempt.hold_id
                    ));
                }
                if seat_ids != attempt.seat_ids {
                    violations.push(format!(
                        "booking {booking_id} of {buyer} has seats {seat_ids:?}, but its hold {} had {:?}",
                        attempt.hold_id, attempt.seat_ids
                    ));
                }
            }
        }
        if status == pb::BookingStatus::Confirmed {
            for seat_id in seat_ids {
                if let Some((other, other_buyer)) =
                    confirmed_seats.insert(seat_id.clone(), (booking_id.to_string(), buyer.clone()))
                {
                    violations.push(format!(
                        "seat {seat_id} is in two CONFIRMED bookings: {other} of {other_buyer} and {booking_id} of \
                         {buyer}"
                    ));
                }
            }
        }
    }

    // Everything this buyer was told about is listed and reads back as it was told.
    for (booking_id, known) in &ledger.bookings {
        match listed.get(booking_id.as_str()) {
            None => violations.push(format!(
                "acknowledged booking {booking_id} of {buyer} (seats {:?}, payment reference '{}') is missing \
                 from ListBookings after the restart",
                known.seat_ids, known.payment_reference
            )),
            Some(booking) => check_booking_copy("ListBookings", booking_id, buyer, known, booking, violations),
        }
        match seen.bookings_read.get(booking_id) {
            None => {}
            Some(Err(error)) => violations.push(format!(
                "GetBooking of acknowledged booking {booking_id} of {buyer} (seats {:?}) failed after the restart: \
                 {error}",
                known.seat_ids
            )),
            Some(Ok(booking)) => {
                check_booking_copy("GetBooking", booking_id, buyer, known, booking, violations);
                if let Some(listed_copy) = listed.get(booking_id.as_str()) {
                    if listed_copy.status != booking.status {
                        violations.push(format!(
                            "booking {booking_id} of {buyer} is {} in ListBookings but {} in GetBooking",
                            booking_status(listed_copy.status).as_str_name(),
                            booking_status(booking.status).as_str_name()
                        ));
                    }
                }
            }
        }
    }

    // Holds read back are in a state their history allows, and their seats are held.
    for (hold_id, read) in &seen.holds_read {
        let Some(known) = ledger.holds.get(hold_id) else {
            violations.push(format!("the check read hold {hold_id}, which {buyer} never placed"));
            continue;
        };
        let hold = match read {
            Ok(hold) => hold,
            Err(error) => {
                violations.push(format!(
                    "acknowledged hold {hold_id} of {buyer} (seats {:?}, {:?} before the kill) cannot be read after \
                     the restart: {error}",
                    known.seat_ids, known.state
                ));
                continue;
            }
        };
        let status = hold_status(hold.status);
        let seat_ids = ticket_seats(&hold.tickets);
        if seat_ids != known.seat_ids {
            violations.push(format!(
                "hold {hold_id} of {buyer} has seats {seat_ids:?} after the restart, {:?} when acknowledged",
                known.seat_ids
            ));
        }
        if hold.buyer_id != *buyer {
            violations.push(format!("hold {hold_id} of {buyer} reads back as buyer '{}'", hold.buyer_id));
        }
        let may_have_expired = now_ms + CLOCK_SKEW_MS >= known.expires_at_ms;
        use pb::HoldStatus as S;
        let allowed = match &known.state {
            HoldState::Active => status == S::Active,
            HoldState::ReleaseUnacknowledged => matches!(status, S::Active | S::Released),
            HoldState::Released => status == S::Released,
            HoldState::ConfirmUnacknowledged { .. } => matches!(status, S::Active | S::Confirmed),
            HoldState::Confirmed { .. } => status == S::Confirmed,
            HoldState::Expired => status == S::Expired,
        } || (status == S::Expired && may_have_expired && !known.state.is_settled_end());
        if !allowed {
            violations.push(format!(
                "hold {hold_id} of {buyer} (seats {:?}) is {} after the restart, which its history ({:?}) does not \
                 allow",
                known.seat_ids,
                status.as_str_name(),
                known.state
            ));
        }
        match &known.state {
            HoldState::Confirmed { booking_id } if hold.booking_id != *booking_id => violations.push(format!(
                "hold {hold_id} of {buyer} was confirmed as booking {booking_id} but reads back with booking '{}'",
                hold.booking_id
            )),
            HoldState::ConfirmUnacknowledged { payment_reference } => {
                match (status, listed_by_reference.get(payment_reference.as_str())) {
                    (S::Confirmed, Some(booking)) if booking.booking_id == hold.booking_id => {}
                    (S::Confirmed, _) => violations.push(format!(
                        "hold {hold_id} of {buyer} is CONFIRMED as booking '{}', but ListBookings has no such booking \
                         for the payment reference '{payment_reference}' that confirmed it",
                        hold.booking_id
                    )),
                    (_, Some(booking)) => violations.push(format!(
                        "booking {} (payment reference '{payment_reference}') is listed for {buyer} but its hold \
                         {hold_id} is {}",
                        booking.booking_id,
                        status.as_str_name()
                    )),
                    (_, None) => {}
                }
            }
            _ => {}
        }
        if status == S::Active {
            for seat_id in seat_ids {
                held_seats.insert(seat_id, hold_id.clone());
            }
        }
    }
}

/// One copy of a known booking (from ListBookings or GetBooking) against the model.
fn check_booking_copy(
    source: &str,
    booking_id: &str,
    buyer: &str,
    known: &KnownBooking,
    booking: &pb::Booking,
    violations: &mut Vec<String>,
) {
    if booking.booking_id != booking_id {
        violations.push(format!("{source} answered booking '{}' for booking {booking_id}", booking.booking_id));
    }
    let seat_ids = ticket_seats(&booking.tickets);
    if seat_ids != known.seat_ids {
        violations.push(format!(
            "booking {booking_id} of {buyer} has seats {seat_ids:?} in {source}, {:?} when acknowledged",
            known.seat_ids
        ));
    }
    if booking.hold_id != known.hold_id || booking.payment_reference != known.payment_reference {
        violations.push(format!(
            "booking {booking_id} of {buyer} reads back in {source} as hold {} / payment '{}', acknowledged as hold \
             {} / payment '{}'",
            booking.hold_id, booking.payment_reference, known.hold_id, known.payment_reference
        ));
    }
    let status = booking_status(booking.status);
    let allowed = match known.cancel {
        CancelState::NotAsked => status == pb::BookingStatus::Confirmed,
        CancelState::Unacknowledged => {
            matches!(status, pb::BookingStatus::Confirmed | pb::BookingStatus::Cancelled)
        }
        CancelState::Acknowledged => status == pb::BookingStatus::Cancelled,
    };
    if !allowed {
        violations.push(format!(
            "booking {booking_id} of {buyer} (seats {:?}) is {} in {source}, but its cancellation is {:?}",
            known.seat_ids,
            status.as_str_name(),
            known.cancel
        ));
    }
}

/// The seat map against every buyer's confirmed bookings and active holds, and against its own
/// availability counters.
fn verify_seat_map(
    view: &pb::GetEventResponse,
    confirmed_seats: &BTreeMap<String, (String, String)>,
    held_seats: &BTreeMap<String, String>,
    violations: &mut Vec<String>,
) {
    let mut statuses: BTreeMap<&str, i32> = BTreeMap::new();
    for seat in &view.seats {
        if statuses.insert(&seat.seat_id, seat.status).is_some() {
            violations.push(format!("GetEvent lists seat {} twice", seat.seat_id));
        }
    }
    if statuses.len() != SEATS_TOTAL {
        violations.push(format!("GetEvent lists {} seats, the venue has {SEATS_TOTAL}", statuses.len()));
    }
    let booked = pb::SeatStatus::Booked as i32;
    let held = pb::SeatStatus::Held as i32;
    for (seat_id, status) in &statuses {
        if *status == booked && !confirmed_seats.contains_key(*seat_id) {
            violations
                .push(format!("seat {seat_id} is BOOKED in GetEvent but belongs to no CONFIRMED booking of any buyer"));
        }
    }
    for (seat_id, (booking_id, buyer)) in confirmed_seats {
        let status = statuses.get(seat_id.as_str());
        if status != Some(&booked) {
            violations.push(format!(
                "seat {seat_id} of CONFIRMED booking {booking_id} of {buyer} is {} in GetEvent",
                seat_status_name(status)
            ));
        }
    }
    for (seat_id, hold_id) in held_seats {
        let status = statuses.get(seat_id.as_str());
        if status != Some(&held) {
            violations
                .push(format!("seat {seat_id} of ACTIVE hold {hold_id} is {} in GetEvent", seat_status_name(status)));
        }
    }
    if view.availability.iter().all(|availability| availability.general_admission) {
        violations.push("GetEvent has no availability for the reserved section".to_string());
    }
    for availability in view.availability.iter().filter(|availability| !availability.general_admission) {
        let prefix = format!("{}:", availability.section_id);
        let (mut total, mut available, mut held_count, mut booked_count) = (0u32, 0u32, 0u32, 0u32);
        for (_, status) in statuses.iter().filter(|(seat_id, _)| seat_id.starts_with(&prefix)) {
            total += 1;
            match pb::SeatStatus::try_from(*status) {
                Ok(pb::SeatStatus::Available) => available += 1,
                Ok(pb::SeatStatus::Held) => held_count += 1,
                Ok(pb::SeatStatus::Booked) => booked_count += 1,
                _ => {}
            }
        }
        let counted = (total, available, held_count, booked_count);
        let reported = (availability.total, availability.available, availability.held, availability.booked);
        if counted != reported || total != available + held_count + booked_count {
            violations.push(format!(
                "availability of section {} says total/available/held/booked = {reported:?}, the seat statuses count \
                 {counted:?}",
                availability.section_id
            ));
        }
    }
}

/// What the checks settled about the attempts without reply.
#[derive(Clone, Copy, Debug, Default)]
struct Settled {
    /// Attempts found to have happened.
    durable: u64,
    /// Attempts found not to have happened.
    absent: u64,
    /// Bookings found that no reply had announced.
    bookings_found: u64,
}

/// After a clean check: every attempt without reply is settled by what the restarted server showed,
/// and what was read is no longer dirty.
fn settle(ledgers: &mut [BuyerLedger], observation: &Observation) -> Settled {
    let mut settled = Settled::default();
    for (ledger, seen) in ledgers.iter_mut().zip(&observation.buyers) {
        let by_reference: HashMap<&str, &pb::Booking> =
            seen.listed.iter().map(|booking| (booking.payment_reference.as_str(), booking)).collect();
        for (reference, attempt) in ledger.confirms.iter_mut() {
            if attempt.outcome != ConfirmOutcome::Unacknowledged {
                continue;
            }
            match by_reference.get(reference.as_str()) {
                Some(booking) => {
                    attempt.outcome = ConfirmOutcome::Acknowledged { booking_id: booking.booking_id.clone() };
                    ledger.bookings.insert(
                        booking.booking_id.clone(),
                        KnownBooking {
                            hold_id: attempt.hold_id.clone(),
                            payment_reference: reference.clone(),
                            seat_ids: attempt.seat_ids.clone(),
                            cancel: CancelState::NotAsked,
                            dirty: true,
                        },
                    );
                    settled.durable += 1;
                    settled.bookings_found += 1;
                }
                None => {
                    attempt.outcome = ConfirmOutcome::Absent;
                    settled.absent += 1;
                }
            }
        }
        let listed_status: HashMap<&str, i32> =
            seen.listed.iter().map(|booking| (booking.booking_id.as_str(), booking.status)).collect();
        for (booking_id, known) in ledger.bookings.iter_mut() {
            if known.cancel == CancelState::Unacknowledged {
                if listed_status.get(booking_id.as_str()) == Some(&(pb::BookingStatus::Cancelled as i32)) {
                    known.cancel = CancelState::Acknowledged;
                    settled.durable += 1;
                } else {
                    known.cancel = CancelState::NotAsked;
                    settled.absent += 1;
                }
            }
            if seen.bookings_read.contains_key(booking_id) {
                known.dirty = false;
            }
        }
        for (hold_id, read) in &seen.holds_read {
            let (Some(known), Ok(hold)) = (ledger.holds.get_mut(hold_id), read) else { continue };
            let status = hold_status(hold.status);
            let next = match (&known.state, status) {
                (HoldState::ReleaseUnacknowledged, pb::HoldStatus::Released) => {
                    settled.durable += 1;
                    HoldState::Released
                }
                (HoldState::ConfirmUnacknowledged { .. }, pb::HoldStatus::Confirmed) => {
                    HoldState::Confirmed { booking_id: hold.booking_id.clone() }
                }
                (HoldState::ReleaseUnacknowledged, pb::HoldStatus::Active) => {
                    settled.absent += 1;
                    HoldState::Active
                }
                (HoldState::ConfirmUnacknowledged { .. }, pb::HoldStatus::Active) => HoldState::Active,
                (state, pb::HoldStatus::Expired) if !state.is_settled_end() => HoldState::Expired,
                (state, _) => state.clone(),
            };
            known.state = next;
            known.dirty = false;
        }
    }
    settled
}

/// Which bookings and holds of a buyer the next check reads back one by one.
fn plan_reads(ledger: &BuyerLedger, rng: &mut StdRng) -> (Vec<String>, Vec<String>) {
    let sample = |ids: Vec<String>, rng: &mut StdRng| -> Vec<String> {
        if ids.len() <= READS_FULL_MAX {
            ids
        } else {
            ids.choose_multiple(rng, READS_SAMPLE).cloned().collect()
        }
    };
    let (mut bookings, settled_bookings): (Vec<String>, Vec<String>) =
        ledger.bookings.keys().cloned().partition(|booking_id| ledger.bookings[booking_id].dirty);
    bookings.extend(sample(settled_bookings, rng));
    let (mut holds, settled_holds): (Vec<String>, Vec<String>) = ledger.holds.keys().cloned().partition(|hold_id| {
        let hold = &ledger.holds[hold_id];
        hold.dirty || !hold.state.is_settled_end()
    });
    holds.extend(sample(settled_holds, rng));
    (bookings, holds)
}

// -------------------------------------------------------------------------------------------------
// The server process
// -------------------------------------------------------------------------------------------------

/// The campaign's temporary directory: config, data directory and the server's log. When the test
/// panics, it prints the log's tail and keeps the directory for inspection.
struct Workspace {
    directory: Option<tempfile::TempDir>,
    config_path: PathBuf,
    log_path: PathBuf,
    starts: u64,
}

impl Workspace {
    fn new() -> Self {
        let directory = tempfile::Builder::new().prefix("turnstile-crash-").tempdir().expect("a temporary directory");
        let config_path = directory.path().join("crash.toml");
        let data_dir = directory.path().join("data");
        // Each start is handed its own listening socket; the rest comes from this file.
        let config = format!(
            "[node]\nid = \"crash-node\"\ndata_dir = '{}'\n\n[auth]\nsecret = \"{SECRET}\"\n\n[log]\nlevel = \"info\"\n\n\
             [storage]\ncheckpoint_sweep_seconds = {CHECKPOINT_SWEEP_SECONDS}\n",
            data_dir.display()
        );
        // The storm drives each buyer far faster than a person would, so a per-buyer rate limit
        // would refuse its confirms and the checks' reads. Servers without that limit reject the
        // key as unknown: they get the config without it.
        let config_without_rate_limit = format!("{config}\n[limits]\n{BUYER_RATE_LIMIT_KEY} = 0\n");
        std::fs::write(&config_path, &config_without_rate_limit).expect("the config is written");
        let probe = Command::new(env!("CARGO_BIN_EXE_turnstile"))
            .args(["token", "--user", "config-probe", "--config"])
            .arg(&config_path)
            .env_remove(turnstile::config::AUTH_SECRET_ENV)
            .output()
            .expect("the turnstile binary runs");
        let probe_error = String::from_utf8_lossy(&probe.stderr);
        if !probe.status.success() {
            assert!(probe_error.contains(BUYER_RATE_LIMIT_KEY), "the campaign's config is refused: {probe_error}");
            std::fs::write(&config_path, &config).expect("the config is written");
        }
        let log_path = directory.path().join("server.log");
        Self { directory: Some(directory), config_path, log_path, starts: 0 }
    }

    /// Opens a copy of the killed server's database (the server itself must find it exactly as the
    /// kill left it) and reports the shape of its log.
    async fn inspect_log_copy(&self) -> LogShape {
        let directory = self.directory.as_ref().expect("the workspace is live").path();
        let source = directory.join("data").join(turnstile_storage::DATABASE_FILE);
        let copy_dir = directory.join("inspected");
        tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(&copy_dir);
            std::fs::create_dir_all(&copy_dir).expect("the inspection directory is created");
            std::fs::copy(&source, copy_dir.join(turnstile_storage::DATABASE_FILE)).expect("the database copies");
            let store = turnstile_storage::Store::open(&copy_dir).expect("the copied database opens");
            let shape = LogShape {
                checkpoints: store.checkpoints().expect("checkpoints read").len(),
                purged_index: store.purged_index().expect("purge point read"),
                entries: store.log_len().expect("log length read"),
            };
            store.close();
            drop(store);
            let _ = std::fs::remove_dir_all(&copy_dir);
            shape
        })
        .await
        .expect("the inspection task ran")
    }

    fn log_tail(&self, lines_max: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(lines_max)..].join("\n")
    }

    /// Starts the server on the data directory and waits until it answers health checks. Returns
    /// it with the time from spawn to healthy (recovery as a client sees it).
    async fn start_server(&mut self) -> (ServerProcess, Duration) {
        self.starts += 1;
        // The server is handed its listening socket: the port is ours from now on.
        let listener = common::local_listener();
        let address = listener.local_addr().expect("a bound listener has an address");
        let mut log = OpenOptions::new().create(true).append(true).open(&self.log_path).expect("the log opens");
        writeln!(log, "=== crash test: start {} on {address} ===", self.starts).expect("the log is writable");
        let mut command = Command::new(env!("CARGO_BIN_EXE_turnstile"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .env_remove(turnstile::config::AUTH_SECRET_ENV)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        let mut server = ServerProcess::spawn(command, &listener, &self.log_path);
        // The child has its own copy: a killed server's port is free again.
        drop(listener);
        let spawned_at = Instant::now();
        match server.wait_serving(HEALTHY_WAIT_MAX).await {
            Ok(()) => (server, spawned_at.elapsed()),
            Err(reason) => panic!("server start {} on {address} failed: {reason}", self.starts),
        }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        eprintln!("--- tail of the server log {} ---\n{}\n---", self.log_path.display(), self.log_tail(60));
        if let Some(directory) = self.directory.take() {
            eprintln!("kept the campaign directory (config, data, log) for inspection: {}", directory.keep().display());
        }
    }
}

/// What a copy of the log showed after a checkpoint cycle.
#[derive(Clone, Copy, Debug)]
struct LogShape {
    checkpoints: usize,
    purged_index: u64,
    entries: u64,
}

fn client_channel(address: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .expect("a valid url")
        .connect_timeout(Duration::from_secs(2))
        .timeout(CALL_TIMEOUT)
        .connect_lazy()
}

// -------------------------------------------------------------------------------------------------
// The storm
// -------------------------------------------------------------------------------------------------

/// A call's result as the model sees it.
enum Reply<T> {
    Acknowledged(T),
    /// A business rejection: nothing happened.
    Refused(tonic::Status),
    /// No answer (the server died, or could not say): it may or may not have happened.
    Unacknowledged(tonic::Status),
}

/// `Err` for codes that no request of this test may get: a bug in the server or in the test.
fn classify<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Result<Reply<T>, tonic::Status> {
    match result {
        Ok(response) => Ok(Reply::Acknowledged(response.into_inner())),
        Err(status) => match status.code() {
            Code::FailedPrecondition | Code::ResourceExhausted => Ok(Reply::Refused(status)),
            // A killed connection surfaces as any of these, depending on when it broke.
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded | Code::Internal => {
                Ok(Reply::Unacknowledged(status))
            }
            _ => Err(status),
        },
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    acknowledged: u64,
    acknowledged_bookings: u64,
    refused: u64,
    unacknowledged: u64,
    /// HoldSeats retried after a restart with the key of a call that got no reply, and answered
    /// with a hold placed before the restart (the first call had been stored) or placed now.
    hold_retries_found_stored: u64,
    hold_retries_placed_now: u64,
    /// Retries refused (seats taken meanwhile): the first call had not been stored either.
    hold_retries_refused: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.acknowledged += other.acknowledged;
        self.acknowledged_bookings += other.acknowledged_bookings;
        self.refused += other.refused;
        self.unacknowledged += other.unacknowledged;
        self.hold_retries_found_stored += other.hold_retries_found_stored;
        self.hold_retries_placed_now += other.hold_retries_placed_now;
        self.hold_retries_refused += other.hold_retries_refused;
    }
}

#[derive(PartialEq, Eq)]
enum Step {
    Continue,
    /// The server stopped answering (or something is wrong): this buyer's storm is over.
    Stop,
}

struct StormBuyer {
    ledger: BuyerLedger,
    client: BookingServiceClient<Channel>,
    event_id: String,
    rng: StdRng,
    stop: Arc<AtomicBool>,
    /// Wall clock when this storm started: a retried hold placed before it was stored before the kill.
    storm_started_ms: i64,
    tally: Tally,
    violations: Vec<String>,
    /// When and why a call went unanswered.
    unanswered: Option<(Instant, String)>,
}

impl StormBuyer {
    async fn run(mut self) -> Self {
        for _ in 0..OPERATIONS_PER_BUYER_PER_STORM_MAX {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let active_hold =
                self.ledger.holds.iter().find(|(_, hold)| hold.state == HoldState::Active).map(|(id, _)| id.clone());
            let step = if let Some(pending) = self.ledger.holds_unacknowledged.pop() {
                self.retry_hold(pending).await
            } else if let Some(hold_id) = active_hold {
                if self.rng.random_bool(0.7) {
                    self.confirm(hold_id).await
                } else {
                    self.release(hold_id).await
                }
            } else {
                let live: Vec<String> = self
                    .ledger
                    .bookings
                    .iter()
                    .filter(|(_, booking)| booking.cancel == CancelState::NotAsked)
                    .map(|(id, _)| id.clone())
                    .collect();
                let over_target = self.ledger.confirmed_seats() > BOOKED_SEATS_PER_BUYER_TARGET;
                if !live.is_empty() && (over_target || self.rng.random_bool(0.1)) {
                    let booking_id = live.choose(&mut self.rng).expect("not empty").clone();
                    self.cancel(booking_id).await
                } else {
                    self.place_hold().await
                }
            };
            if step == Step::Stop {
                break;
            }
        }
        self
    }

    fn unanswered(&mut self, what: String, status: &tonic::Status) -> Step {
        self.tally.unacknowledged += 1;
        self.unanswered = Some((Instant::now(), format!("{what}: {:?} {}", status.code(), status.message())));
        Step::Stop
    }

    fn unexpected(&mut self, what: String, status: &tonic::Status) -> Step {
        self.violations.push(format!("{what} got {:?}: {}", status.code(), status.message()));
        Step::Stop
    }

    async fn place_hold(&mut self) -> Step {
        let quantity = self.rng.random_range(1..=SEATS_PER_HOLD_MAX);
        let row = self.rng.random_range(0..ROWS);
        let first = self.rng.random_range(1..=SEATS_PER_ROW - quantity + 1);
        let seat_ids: Vec<String> = (first..first + quantity).map(|seat| format!("S:R{row}:{seat}")).collect();
        let number = self.ledger.next_request_number();
        let pending = UnacknowledgedHold { idempotency_key: format!("hold-{number}"), seat_ids };
        self.send_hold(pending, false).await
    }

    async fn retry_hold(&mut self, pending: UnacknowledgedHold) -> Step {
        self.send_hold(pending, true).await
    }

    async fn send_hold(&mut self, pending: UnacknowledgedHold, retry: bool) -> Step {
        let buyer = self.ledger.buyer.clone();
        let what = format!("HoldSeats {} of {buyer} for {:?}", pending.idempotency_key, pending.seat_ids);
        let request = pb::HoldSeatsRequest {
            event_id: self.event_id.clone(),
            idempotency_key: pending.idempotency_key.clone(),
            selection: seats(&pending.seat_ids),
            ..Default::default()
        };
        let result = self.client.hold_seats(authed(&self.ledger.token, request)).await;
        match classify(result) {
            Err(status) => self.unexpected(what, &status),
            Ok(Reply::Refused(_)) => {
                // On a retry this settles it too: a stored first call would have been answered.
                self.tally.refused += 1;
                if retry {
                    self.tally.hold_retries_refused += 1;
                }
                Step::Continue
            }
            Ok(Reply::Unacknowledged(status)) => {
                self.ledger.holds_unacknowledged.push(pending);
                self.unanswered(what, &status)
            }
            Ok(Reply::Acknowledged(response)) => {
                self.tally.acknowledged += 1;
                let Some(hold) = response.hold else {
                    self.violations.push(format!("{what} was answered without a hold"));
                    return Step::Stop;
                };
                let seat_ids = ticket_seats(&hold.tickets);
                let expected = sorted(pending.seat_ids.clone());
                let status = hold_status(hold.status);
                let expires_at_ms =
                    hold.expires_at.as_ref().map(|at| at.seconds * 1_000 + i64::from(at.nanos / 1_000_000));
                let placed_at_ms =
                    hold.placed_at.as_ref().map(|at| at.seconds * 1_000 + i64::from(at.nanos / 1_000_000));
                // A retried hold may have run out its time while nobody knew its id.
                let expired = retry
                    && status == pb::HoldStatus::Expired
                    && expires_at_ms.is_some_and(|expires_at| unix_now_ms() + CLOCK_SKEW_MS >= expires_at);
                if seat_ids != expected || hold.buyer_id != buyer || (status != pb::HoldStatus::Active && !expired) {
                    self.violations.push(format!(
                        "{what} answered hold {} of '{}' with seats {seat_ids:?}, {}",
                        hold.hold_id,
                        hold.buyer_id,
                        status.as_str_name()
                    ));
                    return Step::Stop;
                }
                if self.ledger.holds.contains_key(&hold.hold_id) {
                    self.violations.push(format!("{what} answered hold {}, which was already placed", hold.hold_id));
                    return Step::Stop;
                }
                if retry {
                    if placed_at_ms.is_some_and(|placed| placed < self.storm_started_ms) {
                        self.tally.hold_retries_found_stored += 1;
                    } else {
                        self.tally.hold_retries_placed_now += 1;
                    }
                }
                let known = KnownHold {
                    seat_ids,
                    expires_at_ms: expires_at_ms.unwrap_or(i64::MAX),
                    state: if expired { HoldState::Expired } else { HoldState::Active },
                    dirty: true,
                };
                self.ledger.holds.insert(hold.hold_id, known);
                Step::Continue
            }
        }
    }

    /// A refusal of a change to a hold that the model says is active is a violation, unless the
    /// hold may have run out its time.
    fn refused_on_active_hold(&mut self, what: String, hold_id: &str, status: &tonic::Status) {
        self.tally.refused += 1;
        let hold = self.ledger.holds.get_mut(hold_id).expect("a known hold");
        if unix_now_ms() + CLOCK_SKEW_MS >= hold.expires_at_ms {
            hold.state = HoldState::Expired;
            hold.dirty = true;
        } else {
            self.violations.push(format!(
                "{what} was refused although the hold is active (seats {:?}): {:?} {}",
                hold.seat_ids,
                status.code(),
                status.message()
            ));
        }
    }

    async fn confirm(&mut self, hold_id: String) -> Step {
        let buyer = self.ledger.buyer.clone();
        let seat_ids = self.ledger.holds[&hold_id].seat_ids.clone();
        let number = self.ledger.next_request_number();
        let payment_reference = format!("pay-{buyer}-{number}");
        let what = format!("ConfirmHold of hold {hold_id} of {buyer} (payment '{payment_reference}')");
        self.ledger.confirms.insert(
            payment_reference.clone(),
            ConfirmAttempt {
                hold_id: hold_id.clone(),
                seat_ids: seat_ids.clone(),
                outcome: ConfirmOutcome::Unacknowledged,
            },
        );
        let request = pb::ConfirmHoldRequest {
            hold_id: hold_id.clone(),
            payment_reference: payment_reference.clone(),
            idempotency_key: format!("confirm-{number}"),
        };
        let result = self.client.confirm_hold(authed(&self.ledger.token, request)).await;
        match classify(result) {
            Err(status) => self.unexpected(what, &status),
            Ok(Reply::Refused(status)) => {
                self.ledger.confirms.get_mut(&payment_reference).expect("just sent").outcome = ConfirmOutcome::Refused;
                self.refused_on_active_hold(what, &hold_id, &status);
                Step::Continue
            }
            Ok(Reply::Unacknowledged(status)) => {
                let hold = self.ledger.holds.get_mut(&hold_id).expect("a known hold");
                hold.state = HoldState::ConfirmUnacknowledged { payment_reference };
                hold.dirty = true;
                self.unanswered(what, &status)
            }
            Ok(Reply::Acknowledged(response)) => {
                self.tally.acknowledged += 1;
                self.tally.acknowledged_bookings += 1;
                let Some(booking) = response.booking else {
                    self.violations.push(format!("{what} was answered without a booking"));
                    return Step::Stop;
                };
                let booked = ticket_seats(&booking.tickets);
                if booked != seat_ids
                    || booking.hold_id != hold_id
                    || booking.payment_reference != payment_reference
                    || booking_status(booking.status) != pb::BookingStatus::Confirmed
                {
                    self.violations.push(format!(
                        "{what} answered booking {} of hold {} with seats {booked:?} (hold had {seat_ids:?}), payment \
                         '{}', {}",
                        booking.booking_id,
                        booking.hold_id,
                        booking.payment_reference,
                        booking_status(booking.status).as_str_name()
                    ));
                    return Step::Stop;
                }
                self.ledger.confirms.get_mut(&payment_reference).expect("just sent").outcome =
                    ConfirmOutcome::Acknowledged { booking_id: booking.booking_id.clone() };
                let hold = self.ledger.holds.get_mut(&hold_id).expect("a known hold");
                hold.state = HoldState::Confirmed { booking_id: booking.booking_id.clone() };
                hold.dirty = true;
                let known =
                    KnownBooking { hold_id, payment_reference, seat_ids, cancel: CancelState::NotAsked, dirty: true };
                self.ledger.bookings.insert(booking.booking_id, known);
                Step::Continue
            }
        }
    }

    async fn release(&mut self, hold_id: String) -> Step {
        let buyer = self.ledger.buyer.clone();
        let what = format!("ReleaseHold of hold {hold_id} of {buyer}");
        let request = pb::ReleaseHoldRequest { hold_id: hold_id.clone() };
        let result = self.client.release_hold(authed(&self.ledger.token, request)).await;
        match classify(result) {
            Err(status) => self.unexpected(what, &status),
            Ok(Reply::Refused(status)) => {
                self.refused_on_active_hold(what, &hold_id, &status);
                Step::Continue
            }
            Ok(Reply::Unacknowledged(status)) => {
                let hold = self.ledger.holds.get_mut(&hold_id).expect("a known hold");
                hold.state = HoldState::ReleaseUnacknowledged;
                hold.dirty = true;
                self.unanswered(what, &status)
            }
            Ok(Reply::Acknowledged(response)) => {
                self.tally.acknowledged += 1;
                let status = response.hold.as_ref().map(|hold| hold_status(hold.status));
                if status != Some(pb::HoldStatus::Released) {
                    self.violations.push(format!("{what} was answered with status {status:?}"));
                    return Step::Stop;
                }
                let hold = self.ledger.holds.get_mut(&hold_id).expect("a known hold");
                hold.state = HoldState::Released;
                hold.dirty = true;
                Step::Continue
            }
        }
    }

    async fn cancel(&mut self, booking_id: String) -> Step {
        let buyer = self.ledger.buyer.clone();
        let what = format!("CancelBooking of booking {booking_id} of {buyer}");
        let request = pb::CancelBookingRequest { booking_id: booking_id.clone() };
        let result = self.client.cancel_booking(authed(&self.ledger.token, request)).await;
        match classify(result) {
            Err(status) => self.unexpected(what, &status),
            Ok(Reply::Refused(status)) => {
                self.tally.refused += 1;
                self.violations.push(format!(
                    "{what} was refused although the booking is confirmed: {:?} {}",
                    status.code(),
                    status.message()
                ));
                Step::Stop
            }
            Ok(Reply::Unacknowledged(status)) => {
                let booking = self.ledger.bookings.get_mut(&booking_id).expect("a known booking");
                booking.cancel = CancelState::Unacknowledged;
                booking.dirty = true;
                self.unanswered(what, &status)
            }
            Ok(Reply::Acknowledged(response)) => {
                self.tally.acknowledged += 1;
                let booking = self.ledger.bookings.get_mut(&booking_id).expect("a known booking");
                let answered = response.booking.as_ref();
                let status = answered.map(|answered| booking_status(answered.status));
                let answered_seats = answered.map(|answered| ticket_seats(&answered.tickets));
                if status != Some(pb::BookingStatus::Cancelled) || answered_seats.as_ref() != Some(&booking.seat_ids) {
                    self.violations.push(format!(
                        "{what} was answered with status {status:?} and seats {answered_seats:?} (booked {:?})",
                        booking.seat_ids
                    ));
                    return Step::Stop;
                }
                booking.cancel = CancelState::Acknowledged;
                booking.dirty = true;
                Step::Continue
            }
        }
    }
}

struct StormReport {
    tally: Tally,
    violations: Vec<String>,
    /// Calls that went unanswered while the server was still alive (not caused by the kill).
    unanswered_before_kill: Vec<String>,
}

fn buyer_seed(seed: u64, kill_number: u64, buyer_index: usize) -> u64 {
    seed ^ kill_number.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (buyer_index as u64 + 1).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
}

/// Runs the buyers against `server`, kills it after `kill_delay`, and waits for every buyer to stop.
async fn storm_and_kill(
    server: &mut ServerProcess,
    ledgers: &mut Vec<BuyerLedger>,
    event_id: &str,
    seed: u64,
    kill_number: u64,
    kill_delay: Duration,
) -> StormReport {
    let channel = client_channel(server.address);
    let stop = Arc::new(AtomicBool::new(false));
    let storm_started_ms = unix_now_ms();
    let mut tasks = Vec::with_capacity(ledgers.len());
    for (buyer_index, ledger) in ledgers.drain(..).enumerate() {
        let buyer = StormBuyer {
            ledger,
            client: BookingServiceClient::new(channel.clone()),
            event_id: event_id.to_string(),
            rng: StdRng::seed_from_u64(buyer_seed(seed, kill_number, buyer_index)),
            stop: stop.clone(),
            storm_started_ms,
            tally: Tally::default(),
            violations: Vec::new(),
            unanswered: None,
        };
        tasks.push(tokio::spawn(buyer.run()));
    }
    tokio::time::sleep(kill_delay).await;
    if let Ok(Some(exit)) = server.child.try_wait() {
        panic!("storm before kill {kill_number}: the server exited by itself ({exit})");
    }
    let killed_at = Instant::now();
    let exit = server.kill();
    stop.store(true, Ordering::Relaxed);
    assert_eq!(exit.signal(), Some(9), "kill {kill_number}: the server did not die of SIGKILL ({exit})");
    let buyers = tokio::time::timeout(STORM_DRAIN_MAX, futures::future::join_all(tasks))
        .await
        .unwrap_or_else(|_| panic!("kill {kill_number}: buyers still running {STORM_DRAIN_MAX:?} after the kill"));
    let mut report =
        StormReport { tally: Tally::default(), violations: Vec::new(), unanswered_before_kill: Vec::new() };
    for buyer in buyers {
        let buyer = buyer.expect("a buyer task panicked");
        report.tally.add(&buyer.tally);
        report.violations.extend(buyer.violations);
        if let Some((at, what)) = buyer.unanswered {
            if at < killed_at {
                report.unanswered_before_kill.push(what);
            }
        }
        ledgers.push(buyer.ledger);
    }
    report
}

// -------------------------------------------------------------------------------------------------
// Reading a restarted server
// -------------------------------------------------------------------------------------------------

/// The code, message and every cause: "transport error" alone says little.
fn status_text(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        text.push_str(&format!(" / caused by: {cause}"));
        source = cause.source();
    }
    text
}

/// Reads are retried when the call itself failed (the connection, not the server's answer): a
/// read changes nothing, so a retry hides no lost write, and each retry is printed and counted.
/// An answer such as NOT_FOUND is never retried.
async fn read_with_retries<T, F, Fut>(what: &str, retries: &AtomicU64, mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status)
                if attempt < CHECK_READ_ATTEMPTS_MAX
                    && matches!(
                        status.code(),
                        Code::Unknown | Code::Unavailable | Code::Cancelled | Code::Internal
                    ) =>
            {
                retries.fetch_add(1, Ordering::Relaxed);
                eprintln!("check read retried ({what}, attempt {attempt}): {}", status_text(&status));
                tokio::time::sleep(CHECK_READ_RETRY_PAUSE).await;
                attempt += 1;
            }
            Err(status) => return Err(status),
        }
    }
}

async fn observe_buyer(
    client: BookingServiceClient<Channel>,
    buyer: String,
    token: String,
    booking_ids: Vec<String>,
    hold_ids: Vec<String>,
    retries: Arc<AtomicU64>,
) -> Result<BuyerObservation, String> {
    let mut observation = BuyerObservation::default();
    let mut page_token = String::new();
    for page_number in 0.. {
        if page_number >= LIST_PAGES_MAX {
            return Err(format!("ListBookings of {buyer} has more than {LIST_PAGES_MAX} pages"));
        }
        let what = format!("ListBookings of {buyer}, page {page_number}");
        let page = read_with_retries(&what, &retries, || {
            let request = pb::ListBookingsRequest { page_size: LIST_PAGE_SIZE, page_token: page_token.clone() };
            let mut client = client.clone();
            let request = authed(&token, request);
            async move { client.list_bookings(request).await }
        })
        .await
        .map_err(|status| format!("{what} failed after the restart: {}", status_text(&status)))?;
        observation.listed.extend(page.bookings);
        if page.next_page_token.is_empty() {
            break;
        }
        if page.next_page_token == page_token {
            return Err(format!("ListBookings of {buyer} returned the same page token twice"));
        }
        page_token = page.next_page_token;
    }
    observation.bookings_read = futures::stream::iter(booking_ids)
        .map(|booking_id| {
            let (client, token, retries) = (client.clone(), token.clone(), retries.clone());
            async move {
                let what = format!("GetBooking {booking_id}");
                let read = read_with_retries(&what, &retries, || {
                    let mut client = client.clone();
                    let request = authed(&token, pb::GetBookingRequest { booking_id: booking_id.clone() });
                    async move { client.get_booking(request).await }
                })
                .await;
                let read = match read {
                    Ok(response) => response.booking.ok_or_else(|| "answered without a booking".to_string()),
                    Err(status) => Err(status_text(&status)),
                };
                (booking_id, read)
            }
        })
        .buffer_unordered(READS_IN_FLIGHT_PER_BUYER)
        .collect()
        .await;
    observation.holds_read = futures::stream::iter(hold_ids)
        .map(|hold_id| {
            let (client, token, retries) = (client.clone(), token.clone(), retries.clone());
            async move {
                let what = format!("GetHold {hold_id}");
                let read = read_with_retries(&what, &retries, || {
                    let mut client = client.clone();
                    let request = authed(&token, pb::GetHoldRequest { hold_id: hold_id.clone() });
                    async move { client.get_hold(request).await }
                })
                .await;
                let read = match read {
                    Ok(response) => response.hold.ok_or_else(|| "answered without a hold".to_string()),
                    Err(status) => Err(status_text(&status)),
                };
                (hold_id, read)
            }
        })
        .buffer_unordered(READS_IN_FLIGHT_PER_BUYER)
        .collect()
        .await;
    Ok(observation)
}

/// Reads everything the check needs. Nothing writes meanwhile, so the reads agree with each other.
async fn observe(
    server: &ServerProcess,
    event_id: &str,
    ledgers: &[BuyerLedger],
    rng: &mut StdRng,
    retries: &Arc<AtomicU64>,
) -> Result<Observation, String> {
    let channel = client_channel(server.address);
    let mut tasks = Vec::with_capacity(ledgers.len());
    for ledger in ledgers {
        let (booking_ids, hold_ids) = plan_reads(ledger, rng);
        tasks.push(tokio::spawn(observe_buyer(
            BookingServiceClient::new(channel.clone()),
            ledger.buyer.clone(),
            ledger.token.clone(),
            booking_ids,
            hold_ids,
            retries.clone(),
        )));
    }
    let mut buyers = Vec::with_capacity(tasks.len());
    for task in tasks {
        buyers.push(task.await.expect("an observer task panicked")?);
    }
    let catalog = CatalogServiceClient::new(channel);
    let event = read_with_retries("GetEvent", retries, || {
        let mut catalog = catalog.clone();
        let request = pb::GetEventRequest { event_id: event_id.to_string(), include_seats: true, ..Default::default() };
        async move { catalog.get_event(request).await }
    })
    .await
    .map_err(|status| format!("GetEvent {event_id} failed after the restart: {}", status_text(&status)))?;
    Ok(Observation { now_ms: unix_now_ms(), buyers, event })
}

// -------------------------------------------------------------------------------------------------
// The campaign
// -------------------------------------------------------------------------------------------------

/// The first violations, one a line, and how many more there were: a rolled-back database fails
/// every check at once, and the first few name the problem.
fn listing(violations: &[String]) -> String {
    let mut text = violations.iter().take(VIOLATIONS_SHOWN_MAX).cloned().collect::<Vec<_>>().join("\n  ");
    if violations.len() > VIOLATIONS_SHOWN_MAX {
        text.push_str(&format!("\n  ... and {} more", violations.len() - VIOLATIONS_SHOWN_MAX));
    }
    text
}

/// The `recovery_ms` the server logs once its data directory is open, for every start but the first
/// (which found an empty directory).
fn server_recoveries_ms(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|line| line.contains("data directory opened"))
        .filter_map(|line| line.split("recovery_ms=").nth(1)?.split_whitespace().next()?.parse().ok())
        .skip(1)
        .collect()
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| panic!("{name} must be a non-negative integer, got '{value}'")))
}

async fn create_event(server: &ServerProcess, admin_token: &str) -> String {
    let mut admin = AdminServiceClient::new(client_channel(server.address));
    let venue = admin
        .create_venue(authed(admin_token, venue_request(ROWS, SEATS_PER_ROW, 0)))
        .await
        .expect("CreateVenue")
        .into_inner()
        .venue
        .expect("a venue");
    // hold_ttl_seconds 0: the default 600 s, so holds outlive several kill cycles.
    let event = admin
        .create_event(authed(admin_token, event_request(&venue, BUYER_SEAT_LIMIT)))
        .await
        .expect("CreateEvent")
        .into_inner()
        .event
        .expect("an event");
    event.event_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_state_survives_repeated_kill_9() {
    let kills = env_u64("TURNSTILE_CRASH_KILLS").unwrap_or(KILLS_DEFAULT);
    let seed = env_u64("TURNSTILE_CRASH_SEED").unwrap_or_else(rand::random);
    // For long runs: stop starting new kill cycles once this many minutes have passed.
    let budget = env_u64("TURNSTILE_CRASH_MINUTES").map(|minutes| Duration::from_secs(minutes * 60));
    println!(
        "crash campaign seed: {seed} (TURNSTILE_CRASH_SEED={seed} replays it), kills: {kills}, budget: {budget:?}"
    );
    let campaign_started = Instant::now();
    // Declared before the server so that it drops after it: the log is complete when printed.
    let mut workspace = Workspace::new();
    let authenticator = Authenticator::new(SECRET.as_bytes());
    let admin_token = authenticator.mint("crash-admin", Role::Admin, TOKEN_TTL_SECONDS);
    let mut rng = StdRng::seed_from_u64(seed);

    let (mut server, first_start) = workspace.start_server().await;
    let mut server_healthy_at = Instant::now();
    let mut server_started_at = server_healthy_at - first_start;
    println!("first start healthy in {} ms", first_start.as_millis());
    let event_id = create_event(&server, &admin_token).await;
    let mut ledgers: Vec<BuyerLedger> = (0..BUYERS)
        .map(|index| {
            let buyer = format!("buyer-{index:02}");
            let token = authenticator.mint(&buyer, Role::User, TOKEN_TTL_SECONDS);
            BuyerLedger::new(buyer, token)
        })
        .collect();

    let mut tally = Tally::default();
    let mut settled_total = Settled::default();
    let mut unanswered_before_kill = Vec::new();
    let mut recoveries: Vec<Duration> = Vec::new();
    let check_read_retries = Arc::new(AtomicU64::new(0));
    let mut checkpoint_cycles = 0u64;
    let mut checkpoint_cycle_due = false;
    let mut log_after_checkpoint_cycles: Option<LogShape> = None;
    let progress_every = if kills <= 100 { 1 } else { 10 };
    let mut kills_done = 0;
    for kill_number in 1..=kills {
        if budget.is_some_and(|budget| campaign_started.elapsed() >= budget) {
            println!("time budget reached after {kills_done} of {kills} kills");
            break;
        }
        let mut kill_delay = Duration::from_millis(rng.random_range(KILL_DELAY_MS_MIN..=KILL_DELAY_MS_MAX));
        checkpoint_cycle_due |= kill_number % CHECKPOINT_CYCLE_EVERY == CHECKPOINT_CYCLE_EVERY / 2;
        // The server's first sweep comes CHECKPOINT_SWEEP_SECONDS after its engine opened: after
        // the process started and before it answered its first health check.
        let sweep = Duration::from_secs(CHECKPOINT_SWEEP_SECONDS);
        let (sweep_earliest, sweep_latest) = (server_started_at + sweep, server_healthy_at + sweep);
        let checkpoint_cycle = checkpoint_cycle_due && Instant::now() + CHECKPOINT_STORM_LEAD <= sweep_earliest;
        if checkpoint_cycle {
            // Storm across the server's first checkpoint sweep and kill it just after.
            tokio::time::sleep_until((sweep_earliest - CHECKPOINT_STORM_LEAD).into()).await;
            kill_delay += CHECKPOINT_STORM_LEAD + (sweep_latest - sweep_earliest);
            checkpoint_cycles += 1;
            checkpoint_cycle_due = false;
        } else if checkpoint_cycle_due {
            println!(
                "kill {kill_number}: the check ran past the first sweep; the checkpoint cycle moves to the next kill"
            );
        }
        let report = storm_and_kill(&mut server, &mut ledgers, &event_id, seed, kill_number, kill_delay).await;
        assert!(
            report.violations.is_empty(),
            "seed {seed}, storm before kill {kill_number}: the server answered against the model:\n  {}",
            listing(&report.violations)
        );
        tally.add(&report.tally);
        for what in &report.unanswered_before_kill {
            eprintln!("kill {kill_number}: a call went unanswered before the kill: {what}");
        }
        unanswered_before_kill.extend(report.unanswered_before_kill);

        if checkpoint_cycle {
            let log = workspace.inspect_log_copy().await;
            println!(
                "kill {kill_number} (checkpoint cycle): the log has {} checkpoint(s), is purged up to entry {} and \
                 holds {} entries",
                log.checkpoints, log.purged_index, log.entries
            );
            log_after_checkpoint_cycles = Some(log);
        }
        let (restarted, recovery) = workspace.start_server().await;
        server = restarted;
        server_healthy_at = Instant::now();
        server_started_at = server_healthy_at - recovery;
        recoveries.push(recovery);

        let observation = match observe(&server, &event_id, &ledgers, &mut rng, &check_read_retries).await {
            Ok(observation) => observation,
            Err(error) => {
                let process = match server.child.try_wait() {
                    Ok(None) => "the server is still running".to_string(),
                    Ok(Some(exit)) => format!("the server exited ({exit})"),
                    Err(error) => format!("the server's state is unknown ({error})"),
                };
                panic!("seed {seed}, after kill {kill_number}: {error} ({process})");
            }
        };
        let violations = verify(&event_id, &ledgers, &observation);
        assert!(
            violations.is_empty(),
            "seed {seed}, after kill {kill_number} ({} ms into the storm): {} durability violation(s):\n  {}",
            kill_delay.as_millis(),
            violations.len(),
            listing(&violations)
        );
        let settled = settle(&mut ledgers, &observation);
        kills_done = kill_number;
        settled_total.durable += settled.durable;
        settled_total.absent += settled.absent;
        settled_total.bookings_found += settled.bookings_found;
        if kill_number % progress_every == 0 || kill_number == kills {
            let listed: usize = observation.buyers.iter().map(|buyer| buyer.listed.len()).sum();
            println!(
                "kill {kill_number}/{kills} at {} ms: {} acknowledged, {} unanswered; healthy again in {} ms; checked \
                 {listed} listed bookings, {} read back, {} holds",
                kill_delay.as_millis(),
                report.tally.acknowledged,
                report.tally.unacknowledged,
                recovery.as_millis(),
                observation.buyers.iter().map(|buyer| buyer.bookings_read.len()).sum::<usize>(),
                observation.buyers.iter().map(|buyer| buyer.holds_read.len()).sum::<usize>(),
            );
        }
    }
    drop(server);

    let recovery_ms_max = recoveries.iter().map(Duration::as_millis).max().unwrap_or(0);
    let recovery_ms_mean = if recoveries.is_empty() {
        0.0
    } else {
        recoveries.iter().map(|recovery| recovery.as_secs_f64() * 1_000.0).sum::<f64>() / recoveries.len() as f64
    };
    let bookings_known: usize = ledgers.iter().map(|ledger| ledger.bookings.len()).sum();
    let server_recoveries = server_recoveries_ms(&std::fs::read_to_string(&workspace.log_path).unwrap_or_default());
    let server_recovery_ms_mean = server_recoveries.iter().sum::<u64>() as f64 / server_recoveries.len().max(1) as f64;
    let server_recovery_ms_max = server_recoveries.iter().max().copied().unwrap_or(0);
    println!(
        "crash campaign summary: seed={seed} kills={kills_done} acknowledged_bookings={} acknowledged_operations={} \
         refused={} attempted_unacknowledged={} (settled so far: {} had happened, {} had not; {} bookings found \
         that no reply announced; hold retries: {} found stored, {} placed anew, {} refused) \
         unanswered_before_kill={} check_read_retries={} checkpoint_cycles={checkpoint_cycles} \
         bookings_known={bookings_known} recovery_ms_mean={recovery_ms_mean:.1} \
         recovery_ms_max={recovery_ms_max} server_recovery_ms_mean={server_recovery_ms_mean:.1} \
         server_recovery_ms_max={server_recovery_ms_max} elapsed_s={:.1}",
        tally.acknowledged_bookings,
        tally.acknowledged,
        tally.refused,
        tally.unacknowledged,
        settled_total.durable + tally.hold_retries_found_stored,
        settled_total.absent + tally.hold_retries_placed_now + tally.hold_retries_refused,
        settled_total.bookings_found,
        tally.hold_retries_found_stored,
        tally.hold_retries_placed_now,
        tally.hold_retries_refused,
        unanswered_before_kill.len(),
        check_read_retries.load(Ordering::Relaxed),
        campaign_started.elapsed().as_secs_f64(),
    );
    assert!(
        !checkpoint_cycle_due || kills_done < kills,
        "no checkpoint cycle ran: every check after kill {} ran past the server's first sweep",
        CHECKPOINT_CYCLE_EVERY / 2
    );
    if let Some(log) = log_after_checkpoint_cycles {
        assert!(
            log.checkpoints > 0 && log.purged_index > 0,
            "{checkpoint_cycles} checkpoint cycle(s) ran but the log shows no checkpoint or no purge ({log:?}): the \
             campaign did not exercise recovery from a checkpoint"
        );
    }
    assert!(
        kills_done == 0 || tally.acknowledged_bookings > 0,
        "the storms booked nothing: the campaign checked nothing"
    );
}

// -------------------------------------------------------------------------------------------------
// SIGTERM: the way systemd, containers and Kubernetes stop a service
// -------------------------------------------------------------------------------------------------

/// Regression: SIGTERM killed the node at once (the default action), cutting off calls in flight.
/// Now it shuts down as on Ctrl-C: stop accepting, let calls in flight finish, flush, exit 0.
/// Buyers hold seats as fast as they can while the signal comes; every hold acknowledged is there
/// after a restart, and every call not acknowledged failed as a stopping server's calls do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_node_cleanly_and_exits_zero() {
    const STORM_BUYERS: usize = 8;
    let mut workspace = Workspace::new();
    let authenticator = Authenticator::new(SECRET.as_bytes());
    let admin_token = authenticator.mint("sigterm-admin", Role::Admin, TOKEN_TTL_SECONDS);
    let (mut server, _) = workspace.start_server().await;
    let event_id = create_event(&server, &admin_token).await;

    let stop = Arc::new(AtomicBool::new(false));
    let buyers: Vec<_> = (0..STORM_BUYERS)
        .map(|index| {
            let (stop, event_id) = (stop.clone(), event_id.clone());
            let token = authenticator.mint(&format!("sigterm-buyer-{index}"), Role::User, TOKEN_TTL_SECONDS);
            let mut booking = BookingServiceClient::new(client_channel(server.address));
            tokio::spawn(async move {
                let (mut acknowledged, mut failures) = (Vec::new(), Vec::new());
                // Hold and release, one seat of the buyer's own row at a time, until the server
                // stops answering; the last hold of each buyer stays.
                for round in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let seat = format!("S:R{index}:{}", round % SEATS_PER_ROW + 1);
                    let request = pb::HoldSeatsRequest {
                        event_id: event_id.clone(),
                        idempotency_key: format!("sigterm-{index}-{round}"),
                        selection: seats(&[seat]),
                        ..Default::default()
                    };
                    let hold = match booking.hold_seats(authed(&token, request)).await {
                        Ok(response) => response.into_inner().hold.expect("a hold"),
                        Err(status) => {
                            failures.push(status);
                            break;
                        }
                    };
                    if let Some(previous) = acknowledged.pop() {
                        let release = pb::ReleaseHoldRequest { hold_id: previous };
                        if let Err(status) = booking.release_hold(authed(&token, release)).await {
                            failures.push(status);
                            acknowledged.push(hold.hold_id);
                            break;
                        }
                    }
                    acknowledged.push(hold.hold_id);
                }
                (acknowledged, failures)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let terminated = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().expect("kill runs");
    assert!(terminated.success());
    let signalled_at = Instant::now();
    let exit = loop {
        if let Some(exit) = server.child.try_wait().expect("the child can be polled") {
            break exit;
        }
        assert!(
            signalled_at.elapsed() < turnstile::server::IN_FLIGHT_WAIT_MAX + Duration::from_secs(10),
            "the server did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.store(true, Ordering::Relaxed);
    assert_eq!(exit.signal(), None, "killed by a signal: {exit:?}");
    assert_eq!(exit.code(), Some(0), "{exit:?}\n{}", workspace.log_tail(20));
    let log = workspace.log_tail(20);
    assert!(log.contains("shutting down") && log.contains("SIGTERM") && log.contains("stopped"), "{log}");

    let mut still_held = Vec::new();
    for (index, buyer) in buyers.into_iter().enumerate() {
        let (acknowledged, failures) = buyer.await.expect("a buyer task");
        for status in failures {
            // A call the stopping server no longer took, or whose connection it closed: sent
            // after the server's GOAWAY (NO_ERROR), tonic reports it as INTERNAL.
            assert!(
                matches!(status.code(), Code::Unavailable | Code::Cancelled | Code::Unknown)
                    || turnstile_client::went_away(&status),
                "a call failed otherwise than a stopping server's calls do: {status:?}"
            );
        }
        still_held.extend(acknowledged.into_iter().map(|hold_id| (index, hold_id)));
    }
    assert!(!still_held.is_empty(), "the buyers held nothing before the signal");

    let (server, _) = workspace.start_server().await;
    let mut booking = BookingServiceClient::new(client_channel(server.address));
    for (index, hold_id) in still_held {
        let token = authenticator.mint(&format!("sigterm-buyer-{index}"), Role::User, TOKEN_TTL_SECONDS);
        let request = pb::GetHoldRequest { hold_id: hold_id.clone() };
        let hold = booking.get_hold(authed(&token, request)).await.expect("an acknowledged hold is kept").into_inner();
        assert_eq!(hold_status(hold.hold.expect("a hold").status), pb::HoldStatus::Active, "{hold_id}");
    }
    drop(server);
}

// -------------------------------------------------------------------------------------------------
// The checks themselves can fail: a consistent world passes, and each doctored copy of it is caught
// -------------------------------------------------------------------------------------------------

mod verifier {
    use super::*;

    const EVENT: &str = "evt_test";

    fn booking(
        id: &str,
        buyer: &str,
        hold_id: &str,
        reference: &str,
        seats: &[&str],
        status: pb::BookingStatus,
    ) -> pb::Booking {
        pb::Booking {
            booking_id: id.into(),
            event_id: EVENT.into(),
            buyer_id: buyer.into(),
            hold_id: hold_id.into(),
            tickets: seats.iter().map(|seat| pb::Ticket { seat_id: seat.to_string(), ..Default::default() }).collect(),
            status: status as i32,
            payment_reference: reference.into(),
            ..Default::default()
        }
    }

    fn hold(id: &str, buyer: &str, seats: &[&str], status: pb::HoldStatus, booking_id: &str) -> pb::Hold {
        pb::Hold {
            hold_id: id.into(),
            event_id: EVENT.into(),
            buyer_id: buyer.into(),
            tickets: seats.iter().map(|seat| pb::Ticket { seat_id: seat.to_string(), ..Default::default() }).collect(),
            status: status as i32,
            booking_id: booking_id.into(),
            ..Default::default()
        }
    }

    fn owned(seats: &[&str]) -> Vec<String> {
        sorted(seats.iter().map(|seat| seat.to_string()).collect())
    }

    fn known_hold(seats: &[&str], state: HoldState) -> KnownHold {
        KnownHold { seat_ids: owned(seats), expires_at_ms: i64::MAX, state, dirty: false }
    }

    fn known_booking(hold_id: &str, reference: &str, seats: &[&str], cancel: CancelState) -> KnownBooking {
        KnownBooking {
            hold_id: hold_id.into(),
            payment_reference: reference.into(),
            seat_ids: owned(seats),
            cancel,
            dirty: false,
        }
    }

    fn attempt(hold_id: &str, seats: &[&str], outcome: ConfirmOutcome) -> ConfirmAttempt {
        ConfirmAttempt { hold_id: hold_id.into(), seat_ids: owned(seats), outcome }
    }

    /// A seat map with the given seats in the given states, the rest available, and counters that
    /// agree.
    fn view(states: &[(&str, pb::SeatStatus)]) -> pb::GetEventResponse {
        let states: HashMap<&str, pb::SeatStatus> = states.iter().copied().collect();
        let mut seats = Vec::new();
        for row in 0..ROWS {
            for seat in 1..=SEATS_PER_ROW {
                let seat_id = format!("S:R{row}:{seat}");
                let status = states.get(seat_id.as_str()).copied().unwrap_or(pb::SeatStatus::Available);
                seats.push(pb::SeatState { seat_id, status: status as i32 });
            }
        }
        let count = |status: pb::SeatStatus| seats.iter().filter(|seat| seat.status == status as i32).count() as u32;
        let availability = pb::Availability {
            section_id: "S".into(),
            total: SEATS_TOTAL as u32,
            available: count(pb::SeatStatus::Available),
            held: count(pb::SeatStatus::Held),
            booked: count(pb::SeatStatus::Booked),
            ..Default::default()
        };
        pb::GetEventResponse { availability: vec![availability], seats, ..Default::default() }
    }

    /// alice: booking B1 (hold H1, seats R0:1-2), active hold H2 (R1:1), released hold H3 (R2:5),
    /// a refused confirm P9 and a confirm P5 found absent earlier. bob: booking B2, cancelled.
    fn world() -> (Vec<BuyerLedger>, Observation) {
        use pb::BookingStatus as B;
        use pb::HoldStatus as H;
        let mut alice = BuyerLedger::new("alice".into(), String::new());
        alice.confirms.insert(
            "P1".into(),
            attempt("H1", &["S:R0:1", "S:R0:2"], ConfirmOutcome::Acknowledged { booking_id: "B1".into() }),
        );
        alice.confirms.insert("P9".into(), attempt("H9", &["S:R9:9"], ConfirmOutcome::Refused));
        alice.confirms.insert("P5".into(), attempt("H5", &["S:R5:1"], ConfirmOutcome::Absent));
        alice.bookings.insert("B1".into(), known_booking("H1", "P1", &["S:R0:1", "S:R0:2"], CancelState::NotAsked));
        alice
            .holds
            .insert("H1".into(), known_hold(&["S:R0:1", "S:R0:2"], HoldState::Confirmed { booking_id: "B1".into() }));
        alice.holds.insert("H2".into(), known_hold(&["S:R1:1"], HoldState::Active));
        alice.holds.insert("H3".into(), known_hold(&["S:R2:5"], HoldState::Released));
        let mut bob = BuyerLedger::new("bob".into(), String::new());
        bob.confirms
            .insert("P4".into(), attempt("H4", &["S:R3:3"], ConfirmOutcome::Acknowledged { booking_id: "B2".into() }));
        bob.bookings.insert("B2".into(), known_booking("H4", "P4", &["S:R3:3"], CancelState::Acknowledged));

        let b1 = booking("B1", "alice", "H1", "P1", &["S:R0:1", "S:R0:2"], B::Confirmed);
        let b2 = booking("B2", "bob", "H4", "P4", &["S:R3:3"], B::Cancelled);
        let alice_seen = BuyerObservation {
            listed: vec![b1.clone()],
            bookings_read: BTreeMap::from([("B1".to_string(), Ok(b1))]),
            holds_read: BTreeMap::from([
                ("H1".to_string(), Ok(hold("H1", "alice", &["S:R0:1", "S:R0:2"], H::Confirmed, "B1"))),
                ("H2".to_string(), Ok(hold("H2", "alice", &["S:R1:1"], H::Active, ""))),
                ("H3".to_string(), Ok(hold("H3", "alice", &["S:R2:5"], H::Released, ""))),
            ]),
        };
        let bob_seen = BuyerObservation {
            listed: vec![b2.clone()],
            bookings_read: BTreeMap::from([("B2".to_string(), Ok(b2))]),
            holds_read: BTreeMap::new(),
        };
        let event = view(&[
            ("S:R0:1", pb::SeatStatus::Booked),
            ("S:R0:2", pb::SeatStatus::Booked),
            ("S:R1:1", pb::SeatStatus::Held),
        ]);
        (vec![alice, bob], Observation { now_ms: unix_now_ms(), buyers: vec![alice_seen, bob_seen], event })
    }

    /// Applies `doctor` to a consistent world and expects a violation that mentions `needle`.
    fn caught(needle: &str, doctor: impl FnOnce(&mut Vec<BuyerLedger>, &mut Observation)) {
        let (mut ledgers, mut observation) = world();
        doctor(&mut ledgers, &mut observation);
        let violations = verify(EVENT, &ledgers, &observation);
        assert!(
            violations.iter().any(|violation| violation.contains(needle)),
            "expected a violation naming '{needle}', got {violations:#?}"
        );
    }

    #[test]
    fn server_recovery_times_are_read_from_the_log() {
        let log = "=== crash test: start 1 on 127.0.0.1:1 ===\n\
                   2026-11-23T19:23:27Z  INFO turnstile: data directory opened data_dir=/d events=0 recovery_ms=10\n\
                   2026-11-23T19:23:28Z  INFO turnstile: data directory opened data_dir=/d events=1 recovery_ms=69\n\
                   2026-11-23T19:23:29Z  INFO turnstile::server: serving gRPC local_addr=127.0.0.1:2\n\
                   2026-11-23T19:23:30Z  INFO turnstile: data directory opened data_dir=/d events=1 recovery_ms=45\n";
        assert_eq!(server_recoveries_ms(log), vec![69, 45]);
    }

    #[test]
    fn a_consistent_world_passes() {
        let (ledgers, observation) = world();
        assert_eq!(verify(EVENT, &ledgers, &observation), Vec::<String>::new());
    }

    #[test]
    fn every_kind_of_violation_is_caught() {
        use pb::BookingStatus as B;
        use pb::HoldStatus as H;
        use pb::SeatStatus as Seat;
        // A lost booking: not listed, not readable.
        caught("B1 of alice (seats", |_, seen| seen.buyers[0].listed.clear());
        caught("GetBooking of acknowledged booking B1", |_, seen| {
            seen.buyers[0].bookings_read.insert("B1".into(), Err("NotFound: booking 'B1'".into()));
        });
        // A booking with other seats, or cancelled without being asked.
        caught("booking B1 of alice has seats", |_, seen| {
            seen.buyers[0].listed[0].tickets.pop();
        });
        caught("booking B1 of alice (seats", |_, seen| {
            seen.buyers[0].listed[0].status = B::Cancelled as i32;
            let copy = seen.buyers[0].listed[0].clone();
            seen.buyers[0].bookings_read.insert("B1".into(), Ok(copy));
        });
        caught("is BOOKING_STATUS_CONFIRMED in ListBookings but BOOKING_STATUS_CANCELLED in GetBooking", |_, seen| {
            let mut cancelled = seen.buyers[0].listed[0].clone();
            cancelled.status = B::Cancelled as i32;
            seen.buyers[0].bookings_read.insert("B1".into(), Ok(cancelled));
        });
        // An acknowledged cancellation undone.
        caught("booking B2 of bob (seats", |_, seen| {
            seen.buyers[1].listed[0].status = B::Confirmed as i32;
            let copy = seen.buyers[1].listed[0].clone();
            seen.buyers[1].bookings_read.insert("B2".into(), Ok(copy));
            seen.event = view(&[
                ("S:R0:1", Seat::Booked),
                ("S:R0:2", Seat::Booked),
                ("S:R1:1", Seat::Held),
                ("S:R3:3", Seat::Booked),
            ]);
        });
        // Phantoms: a reference never sent, a refused confirm, a confirm found absent earlier.
        caught("phantom booking B7 of alice", |_, seen| {
            seen.buyers[0].listed.push(booking("B7", "alice", "H7", "never-sent", &["S:R7:7"], B::Confirmed));
        });
        caught("B9 of alice carries payment reference 'P9'", |_, seen| {
            seen.buyers[0].listed.push(booking("B9", "alice", "H9", "P9", &["S:R9:9"], B::Cancelled));
        });
        caught("B5 of alice (payment reference 'P5') appeared", |_, seen| {
            seen.buyers[0].listed.push(booking("B5", "alice", "H5", "P5", &["S:R5:1"], B::Cancelled));
        });
        // A booking found for an unanswered confirm, but with the seats of another hold.
        caught("booking B6 of alice has seats", |ledgers, seen| {
            ledgers[0].confirms.insert("P6".into(), attempt("H6", &["S:R6:1"], ConfirmOutcome::Unacknowledged));
            seen.buyers[0].listed.push(booking("B6", "alice", "H6", "P6", &["S:R6:2"], B::Cancelled));
        });
        // A seat booked twice.
        caught("seat S:R0:1 is in two CONFIRMED bookings", |ledgers, seen| {
            ledgers[1].confirms.insert("P8".into(), attempt("H8", &["S:R0:1"], ConfirmOutcome::Unacknowledged));
            seen.buyers[1].listed.push(booking("B8", "bob", "H8", "P8", &["S:R0:1"], B::Confirmed));
        });
        // The seat map against the bookings, the holds and its own counters.
        caught("seat S:R5:5 is BOOKED in GetEvent", |_, seen| {
            seen.event = view(&[
                ("S:R0:1", Seat::Booked),
                ("S:R0:2", Seat::Booked),
                ("S:R1:1", Seat::Held),
                ("S:R5:5", Seat::Booked),
            ]);
        });
        caught("seat S:R0:2 of CONFIRMED booking B1 of alice is SEAT_STATUS_AVAILABLE", |_, seen| {
            seen.event = view(&[("S:R0:1", Seat::Booked), ("S:R1:1", Seat::Held)]);
        });
        caught("seat S:R1:1 of ACTIVE hold H2 is SEAT_STATUS_AVAILABLE", |_, seen| {
            seen.event = view(&[("S:R0:1", Seat::Booked), ("S:R0:2", Seat::Booked)]);
        });
        caught("availability of section S", |_, seen| seen.event.availability[0].booked += 1);
        caught("availability of section S", |_, seen| seen.event.availability[0].available -= 1);
        caught("GetEvent lists 499 seats", |_, seen| drop(seen.event.seats.pop()));
        // Holds: lost, released without being asked, a release undone, a confirm half done.
        caught("acknowledged hold H2 of alice", |_, seen| {
            seen.buyers[0].holds_read.insert("H2".into(), Err("NotFound: hold 'H2'".into()));
        });
        caught("hold H2 of alice (seats", |_, seen| {
            seen.buyers[0].holds_read.insert("H2".into(), Ok(hold("H2", "alice", &["S:R1:1"], H::Released, "")));
        });
        caught("hold H3 of alice (seats", |_, seen| {
            seen.buyers[0].holds_read.insert("H3".into(), Ok(hold("H3", "alice", &["S:R2:5"], H::Active, "")));
        });
        caught("hold H2 of alice has seats", |_, seen| {
            seen.buyers[0].holds_read.insert("H2".into(), Ok(hold("H2", "alice", &["S:R1:2"], H::Active, "")));
        });
        caught("hold H1 of alice was confirmed as booking B1", |_, seen| {
            seen.buyers[0]
                .holds_read
                .insert("H1".into(), Ok(hold("H1", "alice", &["S:R0:1", "S:R0:2"], H::Confirmed, "B0")));
        });
        caught("hold H2 of alice is CONFIRMED as booking 'B3'", |ledgers, seen| {
            ledgers[0].confirms.insert("P3".into(), attempt("H2", &["S:R1:1"], ConfirmOutcome::Unacknowledged));
            ledgers[0].holds.get_mut("H2").unwrap().state =
                HoldState::ConfirmUnacknowledged { payment_reference: "P3".into() };
            seen.buyers[0].holds_read.insert("H2".into(), Ok(hold("H2", "alice", &["S:R1:1"], H::Confirmed, "B3")));
            seen.event = view(&[("S:R0:1", Seat::Booked), ("S:R0:2", Seat::Booked)]);
        });
        caught("but its hold H2 is HOLD_STATUS_ACTIVE", |ledgers, seen| {
            ledgers[0].confirms.insert("P3".into(), attempt("H2", &["S:R1:1"], ConfirmOutcome::Unacknowledged));
            ledgers[0].holds.get_mut("H2").unwrap().state =
                HoldState::ConfirmUnacknowledged { payment_reference: "P3".into() };
            seen.buyers[0].listed.push(booking("B3", "alice", "H2", "P3", &["S:R1:1"], B::Confirmed));
        });
    }

    #[test]
    fn settling_follows_what_the_restarted_server_showed() {
        let (mut ledgers, mut observation) = world();
        ledgers[0].confirms.insert("P3".into(), attempt("H2", &["S:R1:1"], ConfirmOutcome::Unacknowledged));
        ledgers[0].holds.get_mut("H2").unwrap().state =
            HoldState::ConfirmUnacknowledged { payment_reference: "P3".into() };
        ledgers[0].holds.get_mut("H3").unwrap().state = HoldState::ReleaseUnacknowledged;
        observation.buyers[0].listed.push(booking(
            "B3",
            "alice",
            "H2",
            "P3",
            &["S:R1:1"],
            pb::BookingStatus::Confirmed,
        ));
        observation.buyers[0]
            .holds_read
            .insert("H2".into(), Ok(hold("H2", "alice", &["S:R1:1"], pb::HoldStatus::Confirmed, "B3")));
        observation.buyers[0]
            .holds_read
            .insert("H3".into(), Ok(hold("H3", "alice", &["S:R2:5"], pb::HoldStatus::Active, "")));
        observation.event = view(&[
            ("S:R0:1", pb::SeatStatus::Booked),
            ("S:R0:2", pb::SeatStatus::Booked),
            ("S:R1:1", pb::SeatStatus::Booked),
            ("S:R2:5", pb::SeatStatus::Held),
        ]);
        assert_eq!(verify(EVENT, &ledgers, &observation), Vec::<String>::new());
        let settled = settle(&mut ledgers, &observation);
        assert_eq!((settled.durable, settled.absent, settled.bookings_found), (1, 1, 1));
        assert!(ledgers[0].bookings.contains_key("B3"));
        assert_eq!(ledgers[0].holds["H2"].state, HoldState::Confirmed { booking_id: "B3".into() });
        assert_eq!(ledgers[0].holds["H3"].state, HoldState::Active);
        // A booking found by a check is held to the same standard as an acknowledged one.
        observation.buyers[0].listed.retain(|booking| booking.booking_id != "B3");
        let violations = verify(EVENT, &ledgers, &observation);
        assert!(violations.iter().any(|violation| violation.contains("B3")), "{violations:#?}");
    }
}
