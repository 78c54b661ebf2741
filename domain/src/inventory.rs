//! One event's seat inventory: the deterministic heart of the engine.
//!
//! Every change is a [`Command`]. [`Inventory::decide`] turns a caller's [`Request`] into a command
//! (or a rejection, or the earlier answer to a retried request) without changing anything;
//! [`Inventory::apply`] then changes the state. `apply` reads nothing but the command and the
//! state: times, minted ids, chosen seats and locked prices are all inside the command, so replaying
//! a log of commands rebuilds exactly the same inventory.
//!
//! Seat state is one byte per reserved seat; general-admission sections are counters. Holds keep
//! their deadlines in one ordered set so the owning actor needs a single timer.

use std::collections::HashMap;

use imbl::{OrdSet, Vector};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{quoted, Error, Result, TicketRejection};
use crate::ids::{BookingId, BuyerId, EventId, HoldId};
use crate::limits;
use crate::seat_map::{validate_label, validate_name, SeatMap};

/// The inventory's persistent hash maps, hashed with foldhash (seeded at random per map) rather
/// than SipHash: a hold looks up or inserts in several of them, and SipHash showed in a hold's
/// profile (docs/PERFORMANCE_HISTORY.md). Keys are ids the engine minted or the token named, and idempotency
/// keys.
type SharedMap<K, V> = imbl::GenericHashMap<K, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

/// A reserved seat's state. One byte per seat: a 100,000-seat stadium is 100 kB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum SeatStatus {
    Available = 0,
    Held = 1,
    Booked = 2,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceLevel {
    pub price_level_id: String,
    pub name: String,
    pub amount_minor: i64,
    pub section_ids: Vec<String>,
}

/// The commercial terms of an event: what the inventory needs besides the seat map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// ISO 4217 code shared by every price level of the event.
    pub currency: String,
    pub price_levels: Vec<PriceLevel>,
    pub hold_ttl_ms: u64,
    pub buyer_seat_limit: u32,
}

pub fn validate_hold_ttl_ms(field: &str, hold_ttl_ms: u64) -> Result<()> {
    if !(limits::HOLD_TTL_MS_MIN..=limits::HOLD_TTL_MS_MAX).contains(&hold_ttl_ms) {
        return Err(Error::invalid(
            field,
            format!(
                "must be between {} and {} seconds, got {}",
                limits::HOLD_TTL_MS_MIN / 1_000,
                limits::HOLD_TTL_MS_MAX / 1_000,
                hold_ttl_ms / 1_000
            ),
        ));
    }
    Ok(())
}

pub fn validate_buyer_seat_limit(field: &str, buyer_seat_limit: u32) -> Result<()> {
    if !(1..=limits::BUYER_SEAT_LIMIT_MAX).contains(&buyer_seat_limit) {
        return Err(Error::invalid(
            field,
            format!("must be between 1 and {}, got {buyer_seat_limit}", limits::BUYER_SEAT_LIMIT_MAX),
        ));
    }
    Ok(())
}

pub fn validate_currency(field: &str, currency: &str) -> Result<()> {
    if currency.len() != 3 || !currency.bytes().all(|byte| byte.is_ascii_uppercase()) {
        return Err(Error::invalid(field, format!("{} is not a three-letter ISO 4217 code", quoted(currency))));
    }
    Ok(())
}

impl Terms {
    /// Checks the terms against the seat map and returns each section's price level index.
    /// Every section must be priced by exactly one level.
    pub fn section_levels(&self, seat_map: &SeatMap) -> Result<Vec<u16>> {
        // Levels first: with none, the currency (taken from the first level) is empty too, and
        // the caller must hear about the levels they left out, not a currency they never sent.
        if self.price_levels.is_empty() {
            return Err(Error::invalid("price_levels", "an event needs at least one price level"));
        }
        validate_currency("price_levels[0].price.currency", &self.currency)?;
        validate_hold_ttl_ms("hold_ttl_seconds", self.hold_ttl_ms)?;
        validate_buyer_seat_limit("buyer_seat_limit", self.buyer_seat_limit)?;
        if self.price_levels.len() > limits::PRICE_LEVELS_PER_EVENT_MAX {
            return Err(Error::invalid(
                "price_levels",
                format!("at most {} price levels", limits::PRICE_LEVELS_PER_EVENT_MAX),
            ));
        }
        let mut section_levels = vec![u16::MAX; seat_map.sections.len()];
        let mut level_ids = std::collections::HashSet::new();
        for (level_index, level) in self.price_levels.iter().enumerate() {
            let field = format!("price_levels[{level_index}]");
            validate_label(&format!("{field}.price_level_id"), &level.price_level_id)?;
            validate_name(&format!("{field}.name"), &level.name, false)?;
            if !level_ids.insert(level.price_level_id.as_str()) {
                return Err(Error::invalid(
                    format!("{field}.price_level_id"),
                    format!("duplicate price level '{}'", level.price_level_id),
                ));
            }
            if !(0..=limits::PRICE_MINOR_MAX).contains(&level.amount_minor) {
                return Err(Error::invalid(
                    format!("{field}.price.amount_minor"),
                    format!("must be between 0 and {}, got {}", limits::PRICE_MINOR_MAX, level.amount_minor),
                ));
            }
            if level.section_ids.is_empty() {
                return Err(Error::invalid(format!("{field}.section_ids"), "a price level needs at least one section"));
            }
            for (position, section_id) in level.section_ids.iter().enumerate() {
                let section_field = format!("{field}.section_ids[{position}]");
                let Some(section) = seat_map.section_index(section_id) else {
                    return Err(Error::invalid(
                        section_field,
                        format!("no section {} in the venue", quoted(section_id)),
                    ));
                };
                if section_levels[section as usize] != u16::MAX {
                    return Err(Error::invalid(
                        section_field,
                        format!("section '{section_id}' is already priced by another level"),
                    ));
                }
                section_levels[section as usize] = level_index as u16;
            }
        }
        if let Some(unpriced) = section_levels.iter().position(|&level| level == u16::MAX) {
            return Err(Error::invalid(
                "price_levels",
                format!("section '{}' has no price level", seat_map.sections[unpriced].section_id),
            ));
        }
        Ok(section_levels)
    }
}

/// The places a hold or booking takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Places {
    /// Reserved seats by index, in the order they were asked for or chosen.
    Seats(Vec<u32>),
    /// A quantity in one general-admission section.
    General { section: u16, quantity: u32 },
}

impl Places {
    pub fn count(&self) -> u32 {
        match self {
            Places::Seats(seats) => seats.len() as u32,
            Places::General { quantity, .. } => *quantity,
        }
    }
}

/// The price of one place in one section, fixed when the hold is placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPrice {
    pub section: u16,
    pub level: u16,
    pub amount_minor: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldStatus {
    Active,
    Confirmed,
    Released,
    Expired,
    /// The event was cancelled while the hold was active.
    Cancelled,
}

impl HoldStatus {
    pub fn name(self) -> &'static str {
        match self {
            HoldStatus::Active => "active",
            HoldStatus::Confirmed => "confirmed",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
            HoldStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookingStatus {
    Confirmed,
    Cancelled,
}

/// The nonce of a new booking id: the time in milliseconds in the top 42 bits (enough until the
/// year 2109), 22 random bits below. Booking ids then sort by when they were made, and booking
/// records are stored by id: a new record lands beside the last one of its event, so a commit
/// of many confirms of one event writes a page or two of the records table, not one random page
/// per booking. (Uniqueness is checked where the id is minted, as for any nonce.)
fn time_ordered_nonce(now_ms: u64, random: u64) -> u64 {
    (now_ms << 22) | (random & ((1 << 22) - 1))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct HoldRecord {
    buyer: BuyerId,
    places: Places,
    /// One entry per section the hold touches.
    prices: Vec<LockedPrice>,
    placed_at_ms: u64,
    expires_at_ms: u64,
    status: HoldStatus,
    booking_id: Option<BookingId>,
    idempotency_key: Option<String>,
    /// Extensions granted so far (at most `HOLD_EXTENSIONS_MAX`).
    extensions: u8,
    /// The buyer said payment is under way: the deadline was pushed once to cover it.
    payment_started: bool,
    /// Offered to a waitlisted buyer: its end closes their waitlist entry.
    from_waitlist: bool,
}

impl HoldRecord {
    /// A new active hold; `times` is (placed at, expires at).
    fn active(
        buyer: &BuyerId,
        places: &Places,
        prices: &[LockedPrice],
        (placed_at_ms, expires_at_ms): (u64, u64),
        idempotency_key: &Option<String>,
    ) -> Self {
        Self {
            buyer: buyer.clone(),
            places: places.clone(),
            prices: prices.to_vec(),
            placed_at_ms,
            expires_at_ms,
            status: HoldStatus::Active,
            booking_id: None,
            idempotency_key: idempotency_key.clone(),
            extensions: 0,
            payment_started: false,
            from_waitlist: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct BookingRecord {
    hold_id: HoldId,
    buyer: BuyerId,
    places: Places,
    prices: Vec<LockedPrice>,
    payment_reference: String,
    booked_at_ms: u64,
    cancelled_at_ms: Option<u64>,
    status: BookingStatus,
    /// When each ticket (in ticket order) was redeemed at the door; empty until the first one.
    redeemed_at_ms: Vec<Option<u64>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SectionCounts {
    held: u32,
    booked: u32,
}

/// What one buyer has on this event; enforces the per-buyer limits.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct BuyerUsage {
    /// Seats in active holds plus confirmed bookings.
    seats: u32,
    active_holds: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventStatus {
    OnSale,
    Cancelled,
}

/// Who is asking. Admins may read and cancel anything; buyers only what is theirs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub buyer: BuyerId,
    pub admin: bool,
}

impl Caller {
    fn may_touch(&self, owner: &BuyerId) -> bool {
        self.admin || &self.buyer == owner
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Explicit seat ids: all of them or none.
    Seats(Vec<String>),
    /// The best `quantity` places in a section. `i64` so a negative quantity is reported as such.
    BestAvailable { section_id: String, quantity: i64 },
}

/// A caller's request to change the inventory, before it is decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    PlaceHold {
        caller: Caller,
        selection: Selection,
        idempotency_key: Option<String>,
    },
    ConfirmHold {
        caller: Caller,
        hold_id: HoldId,
        payment_reference: String,
        idempotency_key: Option<String>,
    },
    ReleaseHold {
        caller: Caller,
        hold_id: HoldId,
    },
    CancelBooking {
        caller: Caller,
        booking_id: BookingId,
    },
    UpdateTerms {
        hold_ttl_ms: Option<u64>,
        buyer_seat_limit: Option<u32>,
    },
    CancelEvent,
    /// More time for an active hold: half its TTL, a bounded number of times, up to a cap.
    ExtendHold {
        caller: Caller,
        hold_id: HoldId,
    },
    /// The buyer's payment is under way: the hold lives at least `PAYMENT_GRACE_MS` more, once.
    StartPayment {
        caller: Caller,
        hold_id: HoldId,
    },
    /// Admits the holder of one ticket of a booking at the door, once.
    RedeemTicket {
        booking_id: BookingId,
        ticket: u32,
    },
    /// Sets (or, with `None`, removes) the event's dynamic pricing rules.
    SetPricing {
        rules: Option<PricingRules>,
    },
    /// Waits for places in a section (or any section) that has none left for this quantity.
    JoinWaitlist {
        caller: Caller,
        section_id: Option<String>,
        quantity: i64,
    },
    LeaveWaitlist {
        caller: Caller,
    },
}

/// A change to the inventory: the unit of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    PlaceHold {
        hold_id: HoldId,
        buyer: BuyerId,
        places: Places,
        prices: Vec<LockedPrice>,
        placed_at_ms: u64,
        expires_at_ms: u64,
        idempotency_key: Option<String>,
    },
    ConfirmHold {
        hold_id: HoldId,
        booking_id: BookingId,
        payment_reference: String,
        idempotency_key: Option<String>,
        now_ms: u64,
    },
    ReleaseHold {
        hold_id: HoldId,
        now_ms: u64,
    },
    /// Expires every active hold whose deadline is at or before `now_ms`; also forgets ended
    /// holds older than the retention.
    ExpireHolds {
        now_ms: u64,
    },
    CancelBooking {
        booking_id: BookingId,
        now_ms: u64,
    },
    UpdateTerms {
        hold_ttl_ms: Option<u64>,
        buyer_seat_limit: Option<u32>,
    },
    CancelEvent {
        now_ms: u64,
    },
    /// Moves an active hold's deadline later (an extension, or the payment grace).
    ExtendHold {
        hold_id: HoldId,
        expires_at_ms: u64,
        payment: bool,
    },
    RedeemTicket {
        booking_id: BookingId,
        ticket: u32,
        now_ms: u64,
    },
    SetPricing {
        rules: Option<PricingRules>,
    },
    JoinWaitlist {
        buyer: BuyerId,
        section: Option<u16>,
        quantity: u32,
        joined_at_ms: u64,
    },
    LeaveWaitlist {
        buyer: BuyerId,
    },
    /// Places came back and go to the first waiting buyer they fit, as a hold.
    OfferFromWaitlist {
        hold_id: HoldId,
        buyer: BuyerId,
        places: Places,
        prices: Vec<LockedPrice>,
        placed_at_ms: u64,
        expires_at_ms: u64,
    },
    /// Confirms a hold that expired, on the same seats, which were still free.
    ConfirmExpiredHold {
        hold_id: HoldId,
        booking_id: BookingId,
        payment_reference: String,
        idempotency_key: Option<String>,
        now_ms: u64,
    },
}

/// What a decided request leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Apply this command (after it is durable).
    Apply(Command),
    /// Nothing changes: a retried request whose first answer stands.
    Answered(Outcome),
}

/// What a command did, by reference to the records it touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Hold(HoldId),
    Booking(BookingId),
    HoldsExpired {
        hold_ids: Vec<HoldId>,
    },
    TermsUpdated,
    EventCancelled {
        holds_released: u32,
        bookings_cancelled: Vec<BookingId>,
    },
    /// The buyer's waitlist entry changed (or a retry found it as it was).
    Waitlist {
        buyer: BuyerId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketView {
    pub section_id: String,
    /// `None` for general admission.
    pub seat_id: Option<String>,
    pub price_level_id: String,
    pub amount_minor: i64,
    /// When the ticket was used at the door (bookings only).
    pub redeemed_at_ms: Option<u64>,
}

/// One row of an event's sales report: a section at its price level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRow {
    pub section_id: String,
    pub price_level_id: String,
    pub total: u32,
    pub available: u32,
    pub held: u32,
    pub booked: u32,
    /// Confirmed bookings' locked prices, in minor units of the event's currency.
    pub revenue_minor: i64,
    /// Tickets used at the door.
    pub redeemed: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldView {
    pub hold_id: HoldId,
    pub event_id: EventId,
    pub buyer: BuyerId,
    pub tickets: Vec<TicketView>,
    pub total_minor: i64,
    pub currency: String,
    pub status: HoldStatus,
    pub placed_at_ms: u64,
    pub expires_at_ms: u64,
    pub booking_id: Option<BookingId>,
    pub extensions: u32,
    pub payment_in_progress: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingView {
    pub booking_id: BookingId,
    pub event_id: EventId,
    pub buyer: BuyerId,
    pub hold_id: HoldId,
    pub tickets: Vec<TicketView>,
    pub total_minor: i64,
    pub currency: String,
    pub status: BookingStatus,
    pub payment_reference: String,
    pub booked_at_ms: u64,
    pub cancelled_at_ms: Option<u64>,
}

/// The parts of a section's availability that only change with the terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionRow {
    pub section_id: String,
    pub price_level_id: String,
    pub amount_minor: i64,
    pub general_admission: bool,
    pub total: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvailabilityView {
    pub section_id: String,
    pub price_level_id: String,
    pub amount_minor: i64,
    pub general_admission: bool,
    pub total: u32,
    pub available: u32,
    pub held: u32,
    pub booked: u32,
}

/// Serializable for checkpoints; the seat map is not part of the state (it belongs to the venue)
/// and is put back by [`Inventory::restore`]. Its growing parts (holds, bookings, buyers, keys,
/// deadlines) are persistent collections, so a clone shares them and costs about as much as the
/// seat array: the actor hands a clone to another thread to serialize for a checkpoint.
#[derive(Clone, Serialize, Deserialize)]
pub struct Inventory {
    event_id: EventId,
    #[serde(skip, default = "SeatMap::empty_shared")]
    seat_map: Arc<SeatMap>,
    terms: Terms,
    /// Price level index of each section, from the terms.
    section_levels: Vec<u16>,
    status: EventStatus,
    /// One byte per reserved seat, indexed like the seat map.
    seats: Vec<SeatStatus>,
    /// Held and booked places per section, reserved or general; kept with every change so
    /// availability is O(sections), not O(seats).
    counts: Vec<SectionCounts>,
    #[serde(deserialize_with = "cautious::map")]
    /// Each record behind its own `Arc`: a map node then holds small entries (an id and a pointer),
    /// so the nodes are small and copying one after a snapshot is cheap.
    holds: SharedMap<HoldId, Arc<HoldRecord>>,
    /// Active holds by deadline: the actor's one timer waits for the first entry.
    #[serde(deserialize_with = "cautious::set")]
    deadlines: OrdSet<(u64, HoldId)>,
    /// Ended holds in the order they ended, forgotten after `HOLD_RETENTION_MS`.
    #[serde(deserialize_with = "cautious::vector")]
    ended_holds: Vector<(u64, HoldId)>,
    #[serde(deserialize_with = "cautious::map")]
    /// Behind `Arc`s, as holds are.
    bookings: SharedMap<BookingId, Arc<BookingRecord>>,
    #[serde(deserialize_with = "cautious::map")]
    buyers: SharedMap<BuyerId, BuyerUsage>,
    #[serde(deserialize_with = "cautious::map")]
    hold_keys: SharedMap<(BuyerId, String), HoldId>,
    #[serde(deserialize_with = "cautious::map")]
    confirm_keys: SharedMap<(BuyerId, String), BookingId>,
    /// Number of commands applied; grows with every change.
    version: u64,
    /// Dynamic pricing, when the admin set rules.
    pricing: Option<PricingRules>,
    /// When recent holds were placed (the last minute's), for demand-based pricing.
    #[serde(deserialize_with = "cautious::vector")]
    recent_holds: Vector<u64>,
    /// Buyers waiting for places to come back, in line order.
    #[serde(deserialize_with = "cautious::vector")]
    waitlist: Vector<waitlist::WaitlistEntry>,
}

/// Decoding the persistent collections of a checkpoint. `imbl`'s own `Deserialize` reserves
/// whatever length the input declares, so a damaged length would abort the process on an
/// allocation of terabytes before any check ran (found by fuzzing `decode_command`). These go
/// through serde's std collections instead, which reserve at most about a megabyte up front and
/// grow with what is really there, then move the entries over. The encoding is the same (a map
/// or a sequence with its length), so checkpoints written either way read back alike.
mod cautious {
    use serde::{Deserialize, Deserializer};

    pub fn map<'de, D, K, V>(deserializer: D) -> Result<super::SharedMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + std::hash::Hash + Eq + Clone,
        V: Deserialize<'de> + Clone,
    {
        Ok(std::collections::HashMap::<K, V>::deserialize(deserializer)?.into_iter().collect())
    }

    pub fn set<'de, D, A>(deserializer: D) -> Result<imbl::OrdSet<A>, D::Error>
    where
        D: Deserializer<'de>,
        A: Deserialize<'de> + Ord + Clone,
    {
        Ok(Vec::<A>::deserialize(deserializer)?.into_iter().collect())
    }

    pub fn vector<'de, D, A>(deserializer: D) -> Result<imbl::Vector<A>, D::Error>
    where
        D: Deserializer<'de>,
        A: Deserialize<'de> + Clone,
    {
        Ok(Vec::<A>::deserialize(deserializer)?.into_iter().collect())
    }
}

fn check_key(field: &str, key: &Option<String>) -> Result<()> {
    if let Some(key) = key {
        if key.len() > limits::KEY_LENGTH_MAX {
            return Err(Error::invalid(field, format!("is longer than {} bytes", limits::KEY_LENGTH_MAX)));
        }
    }
    Ok(())
}

impl Inventory {
    pub fn new(event_id: EventId, seat_map: Arc<SeatMap>, terms: Terms) -> Result<Self> {
        let section_levels = terms.section_levels(&seat_map)?;
        let seat_count = seat_map.seat_count as usize;
        let section_count = seat_map.sections.len();
        Ok(Self {
            event_id,
            seat_map,
            terms,
            section_levels,
            status: EventStatus::OnSale,
            seats: vec![SeatStatus::Available; seat_count],
            counts: vec![SectionCounts::default(); section_count],
            holds: SharedMap::new(),
            deadlines: OrdSet::new(),
            ended_holds: Vector::new(),
            bookings: SharedMap::new(),
            buyers: SharedMap::new(),
            hold_keys: SharedMap::new(),
            confirm_keys: SharedMap::new(),
            version: 0,
            pricing: None,
            recent_holds: Vector::new(),
            waitlist: Vector::new(),
        })
    }

    pub fn event_id(&self) -> &EventId {
        &self.event_id
    }

    /// The state as bytes, for a checkpoint.
    pub fn checkpoint(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("an inventory always serializes")
    }

    /// Rebuilds an inventory from checkpoint bytes and its venue's seat map, and checks it.
    pub fn restore(bytes: &[u8], seat_map: Arc<SeatMap>) -> std::result::Result<Self, String> {
        let mut inventory: Inventory =
            postcard::from_bytes(bytes).map_err(|error| format!("checkpoint does not decode: {error}"))?;
        if inventory.seats.len() != seat_map.seat_count as usize || inventory.counts.len() != seat_map.sections.len() {
            return Err(format!(
                "checkpoint has {} seats in {} sections, the venue {} in {}",
                inventory.seats.len(),
                inventory.counts.len(),
                seat_map.seat_count,
                seat_map.sections.len()
            ));
        }
        inventory.seat_map = seat_map;
        inventory.validate_records()?;
        inventory.check_invariants()?;
        Ok(inventory)
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn terms(&self) -> &Terms {
        &self.terms
    }

    pub fn status(&self) -> &EventStatus {
        &self.status
    }

    pub fn seat_map(&self) -> &Arc<SeatMap> {
        &self.seat_map
    }

    pub fn live_hold_count(&self) -> usize {
        self.deadlines.len()
    }

    /// The earliest deadline among active holds.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.deadlines.get_min().map(|(deadline, _)| *deadline)
    }

    /// The command the expiry timer issues at `now_ms`, if any hold is due.
    pub fn expiry_due(&self, now_ms: u64) -> Option<Command> {
        let due = self.next_deadline_ms().is_some_and(|deadline| deadline <= now_ms);
        due.then_some(Command::ExpireHolds { now_ms })
    }

    // ---------------------------------------------------------------------------------------
    // Decide: validate a request against the state; change nothing.
    // ---------------------------------------------------------------------------------------

    /// `nonce` seeds the ids minted for a new hold or booking.
    pub fn decide(&self, request: &Request, now_ms: u64, nonce: u64) -> Result<Decision> {
        match request {
            Request::PlaceHold { caller, selection, idempotency_key } => {
                self.decide_place_hold(caller, selection, idempotency_key, now_ms, nonce)
            }
            Request::ConfirmHold { caller, hold_id, payment_reference, idempotency_key } => {
                self.decide_confirm_hold(caller, hold_id, payment_reference, idempotency_key, now_ms, nonce)
            }
            Request::ReleaseHold { caller, hold_id } => self.decide_release_hold(caller, hold_id, now_ms),
            Request::CancelBooking { caller, booking_id } => self.decide_cancel_booking(caller, booking_id, now_ms),
            Request::UpdateTerms { hold_ttl_ms, buyer_seat_limit } => {
                if let Some(hold_ttl_ms) = hold_ttl_ms {
                    validate_hold_ttl_ms("hold_ttl_seconds", *hold_ttl_ms)?;
                }
                if let Some(buyer_seat_limit) = buyer_seat_limit {
                    validate_buyer_seat_limit("buyer_seat_limit", *buyer_seat_limit)?;
                }
                Ok(Decision::Apply(Command::UpdateTerms {
                    hold_ttl_ms: *hold_ttl_ms,
                    buyer_seat_limit: *buyer_seat_limit,
                }))
            }
            Request::CancelEvent => {
                if self.status == EventStatus::Cancelled {
                    return Err(Error::EventCancelled { event_id: self.event_id.to_string() });
                }
                Ok(Decision::Apply(Command::CancelEvent { now_ms }))
            }
            Request::RedeemTicket { booking_id, ticket } => self.decide_redeem(booking_id, *ticket, now_ms),
            Request::JoinWaitlist { caller, section_id, quantity } => {
                self.decide_join_waitlist(caller, section_id, *quantity, now_ms)
            }
            Request::LeaveWaitlist { caller } => self.decide_leave_waitlist(caller),
            Request::SetPricing { rules } => {
                if let Some(rules) = rules {
                    rules.validate()?;
                }
                Ok(Decision::Apply(Command::SetPricing { rules: rules.clone() }))
            }
            Request::ExtendHold { caller, hold_id } => self.decide_extend_hold(caller, hold_id, false, now_ms),
            Request::StartPayment { caller, hold_id } => self.decide_extend_hold(caller, hold_id, true, now_ms),
        }
    }

    fn decide_place_hold(
        &self,
        caller: &Caller,
        selection: &Selection,
        idempotency_key: &Option<String>,
        now_ms: u64,
        nonce: u64,
    ) -> Result<Decision> {
        check_key("idempotency_key", idempotency_key)?;
        if let Some(key) = idempotency_key {
            if let Some(hold_id) = self.hold_keys.get(&(caller.buyer.clone(), key.clone())) {
                if !self.hold_answers(hold_id, selection) {
                    return Err(Error::KeyReused {
                        field: "idempotency_key",
                        key: key.clone(),
                        reason: format!("for another selection (hold '{hold_id}'); a new hold needs a new key"),
                    });
                }
                return Ok(Decision::Answered(Outcome::Hold(hold_id.clone())));
            }
        }
        if self.status == EventStatus::Cancelled {
            return Err(Error::EventCancelled { event_id: self.event_id.to_string() });
        }
        let places = match selection {
            Selection::Seats(seat_ids) => {
                let seats = self.parse_seat_list(seat_ids)?;
                self.check_buyer_limits(&caller.buyer, seats.len() as u32)?;
                Places::Seats(seats)
            }
            // Checks the buyer's limits itself, before availability.
            Selection::BestAvailable { section_id, quantity } => {
                self.best_available(section_id, *quantity, &caller.buyer)?
            }
        };
        if let Places::Seats(seats) = &places {
            let taken: Vec<String> = seats
                .iter()
                .filter(|&&seat| self.seats[seat as usize] != SeatStatus::Available)
                .map(|&seat| self.seat_map.seat_id(seat))
                .collect();
            if !taken.is_empty() {
                return Err(Error::SeatsTaken { seat_ids: taken });
            }
        }
        let prices = self.lock_prices(&places, now_ms);
        let mut hold_nonce = nonce;
        let mut hold_id = HoldId::mint(&self.event_id, hold_nonce);
        while self.holds.contains_key(&hold_id) {
            hold_nonce = hold_nonce.wrapping_add(1);
            hold_id = HoldId::mint(&self.event_id, hold_nonce);
        }
        Ok(Decision::Apply(Command::PlaceHold {
            hold_id,
            buyer: caller.buyer.clone(),
            places,
            prices,
            placed_at_ms: now_ms,
            expires_at_ms: now_ms + self.terms.hold_ttl_ms,
            idempotency_key: idempotency_key.clone(),
        }))
    }

    /// Whether the hold placed with an idempotency key is what `selection` asks for, so that
    /// sending it again is a retry. The hold keeps its places, not the request: explicit seats
    /// must be the same seats in the same order; best available, the same section and quantity
    /// (so best available after explicit seats of that section and count passes for a retry).
    fn hold_answers(&self, hold_id: &HoldId, selection: &Selection) -> bool {
        let Some(hold) = self.holds.get(hold_id) else { return false };
        match (selection, &hold.places) {
            (Selection::Seats(seat_ids), Places::Seats(seats)) => {
                seat_ids.len() == seats.len()
                    && seat_ids.iter().zip(seats).all(|(seat_id, &seat)| *seat_id == self.seat_map.seat_id(seat))
            }
            (Selection::BestAvailable { section_id, quantity }, places) => {
                let section = match places {
                    Places::General { section, .. } => Some(*section),
                    Places::Seats(seats) => seats.first().map(|&seat| self.seat_map.position(seat).section),
                };
                section.is_some()
                    && self.seat_map.section_index(section_id) == section
                    && i64::from(places.count()) == *quantity
            }
            (Selection::Seats(_), Places::General { .. }) => false,
        }
    }

    fn parse_seat_list(&self, seat_ids: &[String]) -> Result<Vec<u32>> {
        if seat_ids.is_empty() {
            return Err(Error::invalid("seats.seat_ids", "must name at least one seat"));
        }
        if seat_ids.len() > limits::SEATS_PER_HOLD_MAX as usize {
            return Err(Error::invalid(
                "seats.seat_ids",
                format!("at most {} seats per hold, got {}", limits::SEATS_PER_HOLD_MAX, seat_ids.len()),
            ));
        }
        let mut seats = Vec::with_capacity(seat_ids.len());
        let mut seen = std::collections::HashSet::with_capacity(seat_ids.len());
        for (position, seat_id) in seat_ids.iter().enumerate() {
            let field = format!("seats.seat_ids[{position}]");
            if seat_id.len() > limits::SEAT_ID_LENGTH_MAX {
                return Err(Error::invalid(field, format!("is longer than {} bytes", limits::SEAT_ID_LENGTH_MAX)));
            }
            let seat = self.seat_map.seat_index(seat_id).map_err(|reason| Error::invalid(&field, reason))?;
            if !seen.insert(seat) {
                return Err(Error::invalid(field, format!("seat '{seat_id}' is listed twice")));
            }
            seats.push(seat);
        }
        Ok(seats)
    }

    fn check_buyer_limits(&self, buyer: &BuyerId, seats_wanted: u32) -> Result<()> {
        let usage = self.buyers.get(buyer).copied().unwrap_or_default();
        if usage.active_holds >= limits::HOLDS_PER_BUYER_MAX {
            return Err(Error::LimitExceeded {
                limit: "holds_per_buyer",
                reason: format!(
                    "buyer already has {} active holds on this event (at most {})",
                    usage.active_holds,
                    limits::HOLDS_PER_BUYER_MAX
                ),
            });
        }
        if usage.seats + seats_wanted > self.terms.buyer_seat_limit {
            return Err(Error::LimitExceeded {
                limit: "buyer_seat_limit",
                reason: format!(
                    "buyer has {} seats held or booked and asks for {}; the limit for this event is {}",
                    usage.seats, seats_wanted, self.terms.buyer_seat_limit
                ),
            });
        }
        Ok(())
    }

    fn lock_prices(&self, places: &Places, now_ms: u64) -> Vec<LockedPrice> {
        let mut sections: Vec<u16> = match places {
            Places::Seats(seats) => seats.iter().map(|&seat| self.seat_map.position(seat).section).collect(),
            Places::General { section, .. } => vec![*section],
        };
        sections.sort_unstable();
        sections.dedup();
        sections
            .into_iter()
            .map(|section| {
                let level = self.section_levels[section as usize];
                LockedPrice { section, level, amount_minor: self.current_price(section, now_ms) }
            })
            .collect()
    }

    /// Chooses `quantity` places in a section: for reserved seating, adjacent seats in one row,
    /// preferring (in this order) no single empty seat left stranded beside the block, the row
    /// nearest the stage, and the middle of the row.
    fn best_available(&self, section_id: &str, quantity: i64, buyer: &BuyerId) -> Result<Places> {
        if section_id.len() > limits::LABEL_LENGTH_MAX {
            return Err(Error::invalid(
                "best_available.section_id",
                format!("is longer than {} bytes", limits::LABEL_LENGTH_MAX),
            ));
        }
        let Some(section_index) = self.seat_map.section_index(section_id) else {
            return Err(Error::invalid(
                "best_available.section_id",
                format!("no section '{section_id}' in this venue"),
            ));
        };
        if quantity < 1 {
            return Err(Error::invalid("best_available.quantity", format!("must be at least 1, got {quantity}")));
        }
        if quantity > i64::from(limits::SEATS_PER_HOLD_MAX) {
            return Err(Error::invalid(
                "best_available.quantity",
                format!("at most {} seats per hold, got {quantity}", limits::SEATS_PER_HOLD_MAX),
            ));
        }
        let quantity = quantity as u32;
        // Limits before availability: a buyer over their limit learns that, not "sold out".
        self.check_buyer_limits(buyer, quantity)?;
        let section = &self.seat_map.sections[section_index as usize];
        let counts = self.counts[section_index as usize];
        let available = section.capacity() - counts.held - counts.booked;
        if available < quantity {
            return Err(Error::NotEnoughSeats {
                section_id: section_id.to_string(),
                reason: format!("{quantity} requested, {available} available"),
            });
        }
        if section.is_general_admission() {
            return Ok(Places::General { section: section_index, quantity });
        }
        // (stranded seats, row, distance from the row's middle in half seats), first seat
        let mut best: Option<((u32, usize, u32), u32)> = None;
        for (row_index, row) in section.rows.iter().enumerate() {
            let row_length = row.seat_labels.len() as u32;
            let row_seats = &self.seats[row.first_seat as usize..(row.first_seat + row_length) as usize];
            let mut run_start = 0u32;
            while run_start < row_length {
                if row_seats[run_start as usize] != SeatStatus::Available {
                    run_start += 1;
                    continue;
                }
                let mut run_end = run_start;
                while run_end < row_length && row_seats[run_end as usize] == SeatStatus::Available {
                    run_end += 1;
                }
                if run_end - run_start >= quantity {
                    for offset in run_start..=run_end - quantity {
                        let left = offset - run_start;
                        let right = run_end - (offset + quantity);
                        let stranded = u32::from(left == 1) + u32::from(right == 1);
                        let off_centre = (2 * offset + quantity).abs_diff(row_length);
                        let score = (stranded, row_index, off_centre);
                        if best.is_none_or(|(best_score, _)| score < best_score) {
                            best = Some((score, row.first_seat + offset));
                        }
                    }
                }
                run_start = run_end;
            }
            if matches!(best, Some(((0, _, 0 | 1), _))) {
                break; // nothing later can beat an unstranded, centred block in an earlier row
            }
        }
        match best {
            Some((_, first_seat)) => Ok(Places::Seats((first_seat..first_seat + quantity).collect())),
            None => Err(Error::NotEnoughSeats {
                section_id: section_id.to_string(),
                reason: format!("no {quantity} adjacent seats in one row ({available} seats available)"),
            }),
        }
    }

    fn decide_confirm_hold(
        &self,
        caller: &Caller,
        hold_id: &HoldId,
        payment_reference: &str,
        idempotency_key: &Option<String>,
        now_ms: u64,
        nonce: u64,
    ) -> Result<Decision> {
        check_key("idempotency_key", idempotency_key)?;
        if payment_reference.trim().is_empty() {
            return Err(Error::invalid("payment_reference", "must not be empty"));
        }
        if payment_reference.len() > limits::KEY_LENGTH_MAX {
            return Err(Error::invalid(
                "payment_reference",
                format!("is longer than {} bytes", limits::KEY_LENGTH_MAX),
            ));
        }
        let hold = self.holds.get(hold_id).ok_or_else(|| Error::not_found("hold", hold_id.as_str()))?;
        if hold.buyer != caller.buyer {
            return Err(Error::PermissionDenied { reason: format!("hold '{hold_id}' belongs to another buyer") });
        }
        if let Some(key) = idempotency_key {
            if let Some(booking_id) = self.confirm_keys.get(&(caller.buyer.clone(), key.clone())) {
                if &self.bookings[booking_id].hold_id != hold_id {
                    return Err(Error::KeyReused {
                        field: "idempotency_key",
                        key: key.clone(),
                        reason: format!("to confirm another hold ('{}')", self.bookings[booking_id].hold_id),
                    });
                }
                return Ok(Decision::Answered(Outcome::Booking(booking_id.clone())));
            }
        }
        let mut late = false;
        match hold.status {
            // Past its deadline but the timer has not run: the seats are still this hold's.
            HoldStatus::Active => {}
            HoldStatus::Expired => {
                // A late confirm re-holds the same places if nobody took them meanwhile.
                self.check_still_free(&hold.places)?;
                let usage = self.buyers.get(&hold.buyer).copied().unwrap_or_default();
                if usage.seats + hold.places.count() > self.terms.buyer_seat_limit {
                    return Err(Error::LimitExceeded {
                        limit: "buyer_seat_limit",
                        reason: format!(
                            "hold '{hold_id}' expired and confirming it now would take the buyer to {} seats; the \
                             limit for this event is {}",
                            usage.seats + hold.places.count(),
                            self.terms.buyer_seat_limit
                        ),
                    });
                }
                if self.status == EventStatus::Cancelled {
                    return Err(Error::EventCancelled { event_id: self.event_id.to_string() });
                }
                late = true;
            }
            HoldStatus::Confirmed => {
                let booking_id = hold.booking_id.clone().expect("a confirmed hold has a booking");
                if self.bookings[&booking_id].payment_reference == payment_reference {
                    return Ok(Decision::Answered(Outcome::Booking(booking_id)));
                }
                return Err(Error::HoldAlreadyConfirmed {
                    hold_id: hold_id.to_string(),
                    booking_id: booking_id.to_string(),
                });
            }
            status => return Err(Error::HoldNotActive { hold_id: hold_id.to_string(), status: status.name() }),
        }
        let mut booking_nonce = time_ordered_nonce(now_ms, nonce);
        let mut booking_id = BookingId::mint(&self.event_id, booking_nonce);
        while self.bookings.contains_key(&booking_id) {
            booking_nonce = booking_nonce.wrapping_add(1);
            booking_id = BookingId::mint(&self.event_id, booking_nonce);
        }
        let (hold_id, payment_reference, idempotency_key) =
            (hold_id.clone(), payment_reference.to_string(), idempotency_key.clone());
        Ok(Decision::Apply(if late {
            Command::ConfirmExpiredHold { hold_id, booking_id, payment_reference, idempotency_key, now_ms }
        } else {
            Command::ConfirmHold { hold_id, booking_id, payment_reference, idempotency_key, now_ms }
        }))
    }

    /// For a late confirm: the expired hold's places must all be on sale again.
    fn check_still_free(&self, places: &Places) -> Result<()> {
        match places {
            Places::Seats(seats) => {
                let taken: Vec<String> = seats
                    .iter()
                    .filter(|&&seat| self.seats[seat as usize] != SeatStatus::Available)
                    .map(|&seat| self.seat_map.seat_id(seat))
                    .collect();
                if !taken.is_empty() {
                    return Err(Error::SeatsTaken { seat_ids: taken });
                }
            }
            Places::General { section, quantity } => {
                let section_layout = &self.seat_map.sections[*section as usize];
                let counts = self.counts[*section as usize];
                let available = section_layout.capacity() - counts.held - counts.booked;
                if available < *quantity {
                    return Err(Error::NotEnoughSeats {
                        section_id: section_layout.section_id.clone(),
                        reason: format!("the hold expired; {quantity} places needed again, {available} available"),
                    });
                }
            }
        }
        Ok(())
    }

    fn decide_redeem(&self, booking_id: &BookingId, ticket: u32, now_ms: u64) -> Result<Decision> {
        let booking = self.bookings.get(booking_id).ok_or_else(|| Error::not_found("booking", booking_id.as_str()))?;
        if ticket >= booking.places.count() {
            return Err(Error::not_found("ticket", format!("{booking_id}#{ticket}")));
        }
        if booking.status == BookingStatus::Cancelled {
            return Err(Error::TicketRejected { reason: TicketRejection::Cancelled });
        }
        if let Some(Some(redeemed_at_ms)) = booking.redeemed_at_ms.get(ticket as usize) {
            return Err(Error::TicketRejected { reason: TicketRejection::AlreadyUsed { at_ms: *redeemed_at_ms } });
        }
        Ok(Decision::Apply(Command::RedeemTicket { booking_id: booking_id.clone(), ticket, now_ms }))
    }

    /// Sales per section: places by status, revenue from confirmed bookings, tickets used.
    /// O(bookings), for reports.
    pub fn report(&self) -> Vec<ReportRow> {
        let mut rows: Vec<ReportRow> = self
            .availability()
            .into_iter()
            .map(|row| ReportRow {
                section_id: row.section_id,
                price_level_id: row.price_level_id,
                total: row.total,
                available: row.available,
                held: row.held,
                booked: row.booked,
                revenue_minor: 0,
                redeemed: 0,
            })
            .collect();
        for booking in self.bookings.values().filter(|booking| booking.status == BookingStatus::Confirmed) {
            let sections: Vec<u16> = match &booking.places {
                Places::Seats(seats) => seats.iter().map(|&seat| self.seat_map.position(seat).section).collect(),
                Places::General { section, quantity } => vec![*section; *quantity as usize],
            };
            for (index, section) in sections.into_iter().enumerate() {
                let row = &mut rows[section as usize];
                if let Some(price) = booking.prices.iter().find(|price| price.section == section) {
                    row.revenue_minor += price.amount_minor;
                }
                if booking.redeemed_at_ms.get(index).is_some_and(Option::is_some) {
                    row.redeemed += 1;
                }
            }
        }
        rows
    }

    fn decide_extend_hold(&self, caller: &Caller, hold_id: &HoldId, payment: bool, now_ms: u64) -> Result<Decision> {
        let hold = self.holds.get(hold_id).ok_or_else(|| Error::not_found("hold", hold_id.as_str()))?;
        if hold.buyer != caller.buyer {
            return Err(Error::PermissionDenied { reason: format!("hold '{hold_id}' belongs to another buyer") });
        }
        if hold.status != HoldStatus::Active || hold.expires_at_ms <= now_ms {
            let status = if hold.status == HoldStatus::Active { HoldStatus::Expired } else { hold.status };
            return Err(Error::HoldNotActive { hold_id: hold_id.to_string(), status: status.name() });
        }
        let ttl_ms = self.terms.hold_ttl_ms;
        let expires_at_ms = if payment {
            if hold.payment_started {
                // Said twice: the first grace stands.
                return Ok(Decision::Answered(Outcome::Hold(hold_id.clone())));
            }
            hold.expires_at_ms.max(now_ms + limits::PAYMENT_GRACE_MS)
        } else {
            if u32::from(hold.extensions) >= limits::HOLD_EXTENSIONS_MAX {
                return Err(Error::LimitExceeded {
                    limit: "hold_extensions",
                    reason: format!("hold '{hold_id}' was already extended {} times", hold.extensions),
                });
            }
            // A hold lives at most twice its TTL through extensions.
            let cap_ms = hold.placed_at_ms + limits::HOLD_LIFETIME_TTLS_MAX * ttl_ms;
            let extended = (hold.expires_at_ms + ttl_ms / 2).min(cap_ms);
            if extended <= hold.expires_at_ms {
                return Err(Error::LimitExceeded {
                    limit: "hold_lifetime",
                    reason: format!(
                        "hold '{hold_id}' already lives as long as a hold may ({} s)",
                        limits::HOLD_LIFETIME_TTLS_MAX * ttl_ms / 1_000
                    ),
                });
            }
            extended
        };
        Ok(Decision::Apply(Command::ExtendHold { hold_id: hold_id.clone(), expires_at_ms, payment }))
    }

    fn decide_release_hold(&self, caller: &Caller, hold_id: &HoldId, now_ms: u64) -> Result<Decision> {
        let hold = self.holds.get(hold_id).ok_or_else(|| Error::not_found("hold", hold_id.as_str()))?;
        if !caller.may_touch(&hold.buyer) {
            return Err(Error::PermissionDenied { reason: format!("hold '{hold_id}' belongs to another buyer") });
        }
        match hold.status {
            HoldStatus::Active => Ok(Decision::Apply(Command::ReleaseHold { hold_id: hold_id.clone(), now_ms })),
            // Releasing twice is a retry: the first answer stands.
            HoldStatus::Released => Ok(Decision::Answered(Outcome::Hold(hold_id.clone()))),
            status => Err(Error::HoldNotActive { hold_id: hold_id.to_string(), status: status.name() }),
        }
    }

    fn decide_cancel_booking(&self, caller: &Caller, booking_id: &BookingId, now_ms: u64) -> Result<Decision> {
        let booking = self.bookings.get(booking_id).ok_or_else(|| Error::not_found("booking", booking_id.as_str()))?;
        if !caller.may_touch(&booking.buyer) {
            return Err(Error::PermissionDenied { reason: format!("booking '{booking_id}' belongs to another buyer") });
        }
        match booking.status {
            BookingStatus::Confirmed => {
                Ok(Decision::Apply(Command::CancelBooking { booking_id: booking_id.clone(), now_ms }))
            }
            // Cancelling twice is a retry: the first answer stands.
            BookingStatus::Cancelled => Ok(Decision::Answered(Outcome::Booking(booking_id.clone()))),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Apply: change the state. Deterministic; a command that does not fit the state is a bug
    // (or a corrupt log) and panics rather than guessing.
    // ---------------------------------------------------------------------------------------

    pub fn apply(&mut self, command: &Command) -> Outcome {
        self.version += 1;
        let outcome = match command {
            Command::PlaceHold { hold_id, buyer, places, prices, placed_at_ms, expires_at_ms, idempotency_key } => {
                if let Some(key) = idempotency_key {
                    self.hold_keys.insert((buyer.clone(), key.clone()), hold_id.clone());
                }
                let record =
                    HoldRecord::active(buyer, places, prices, (*placed_at_ms, *expires_at_ms), idempotency_key);
                self.insert_hold(hold_id, record);
                Outcome::Hold(hold_id.clone())
            }
            Command::OfferFromWaitlist { hold_id, buyer, places, prices, placed_at_ms, expires_at_ms } => {
                self.apply_offer(buyer, hold_id);
                let record = HoldRecord {
                    from_waitlist: true,
                    ..HoldRecord::active(buyer, places, prices, (*placed_at_ms, *expires_at_ms), &None)
                };
                self.insert_hold(hold_id, record);
                Outcome::Hold(hold_id.clone())
            }
            Command::JoinWaitlist { buyer, section, quantity, joined_at_ms } => {
                self.apply_join_waitlist(buyer, *section, *quantity, *joined_at_ms);
                Outcome::Waitlist { buyer: buyer.clone() }
            }
            Command::LeaveWaitlist { buyer } => {
                self.apply_leave_waitlist(buyer);
                Outcome::Waitlist { buyer: buyer.clone() }
            }
            Command::ExtendHold { hold_id, expires_at_ms, payment } => {
                let hold = Arc::make_mut(self.holds.get_mut(hold_id).expect("extended hold exists"));
                assert_eq!(hold.status, HoldStatus::Active, "hold {hold_id} extended after it ended");
                assert!(
                    self.deadlines.remove(&(hold.expires_at_ms, hold_id.clone())).is_some(),
                    "active hold has a deadline"
                );
                hold.expires_at_ms = *expires_at_ms;
                if *payment {
                    hold.payment_started = true;
                } else {
                    hold.extensions += 1;
                }
                self.deadlines.insert((*expires_at_ms, hold_id.clone()));
                Outcome::Hold(hold_id.clone())
            }
            Command::SetPricing { rules } => {
                self.pricing = rules.clone();
                Outcome::TermsUpdated
            }
            Command::RedeemTicket { booking_id, ticket, now_ms } => {
                let booking = Arc::make_mut(self.bookings.get_mut(booking_id).expect("redeemed booking exists"));
                assert_eq!(booking.status, BookingStatus::Confirmed, "ticket of a cancelled booking {booking_id} used");
                let count = booking.places.count() as usize;
                booking.redeemed_at_ms.resize(count, None);
                let slot = &mut booking.redeemed_at_ms[*ticket as usize];
                assert!(slot.is_none(), "ticket {ticket} of {booking_id} used twice");
                *slot = Some(*now_ms);
                Outcome::Booking(booking_id.clone())
            }
            Command::ConfirmExpiredHold { hold_id, booking_id, payment_reference, idempotency_key, now_ms } => {
                let hold = Arc::make_mut(self.holds.get_mut(hold_id).expect("revived hold exists"));
                assert_eq!(hold.status, HoldStatus::Expired, "hold {hold_id} confirmed late but had not expired");
                hold.status = HoldStatus::Confirmed;
                hold.booking_id = Some(booking_id.clone());
                let hold = hold.clone();
                self.take_places(&hold.places, SeatStatus::Available, SeatStatus::Booked);
                self.adjust_buyer(&hold.buyer, i64::from(hold.places.count()), 0);
                self.book(hold_id, booking_id, hold, payment_reference, idempotency_key, *now_ms);
                Outcome::Booking(booking_id.clone())
            }
            Command::ConfirmHold { hold_id, booking_id, payment_reference, idempotency_key, now_ms } => {
                let hold = self.end_hold(hold_id, HoldStatus::Confirmed, *now_ms);
                self.take_places(&hold.places, SeatStatus::Held, SeatStatus::Booked);
                Arc::make_mut(self.holds.get_mut(hold_id).expect("hold just ended")).booking_id =
                    Some(booking_id.clone());
                self.book(hold_id, booking_id, hold, payment_reference, idempotency_key, *now_ms);
                Outcome::Booking(booking_id.clone())
            }
            Command::ReleaseHold { hold_id, now_ms } => {
                let hold = self.end_hold(hold_id, HoldStatus::Released, *now_ms);
                self.take_places(&hold.places, SeatStatus::Held, SeatStatus::Available);
                Outcome::Hold(hold_id.clone())
            }
            Command::ExpireHolds { now_ms } => {
                let mut hold_ids = Vec::new();
                while let Some((deadline, hold_id)) = self.deadlines.get_min().cloned() {
                    if deadline > *now_ms {
                        break;
                    }
                    let hold = self.end_hold(&hold_id, HoldStatus::Expired, *now_ms);
                    self.take_places(&hold.places, SeatStatus::Held, SeatStatus::Available);
                    hold_ids.push(hold_id);
                }
                self.forget_ended_holds(*now_ms);
                Outcome::HoldsExpired { hold_ids }
            }
            Command::CancelBooking { booking_id, now_ms } => {
                let booking = Arc::make_mut(self.bookings.get_mut(booking_id).expect("cancelled booking exists"));
                assert_eq!(booking.status, BookingStatus::Confirmed, "booking {booking_id} cancelled twice");
                booking.status = BookingStatus::Cancelled;
                booking.cancelled_at_ms = Some(*now_ms);
                let (buyer, places) = (booking.buyer.clone(), booking.places.clone());
                self.take_places(&places, SeatStatus::Booked, SeatStatus::Available);
                self.adjust_buyer(&buyer, -i64::from(places.count()), 0);
                Outcome::Booking(booking_id.clone())
            }
            Command::UpdateTerms { hold_ttl_ms, buyer_seat_limit } => {
                if let Some(hold_ttl_ms) = hold_ttl_ms {
                    self.terms.hold_ttl_ms = *hold_ttl_ms;
                }
                if let Some(buyer_seat_limit) = buyer_seat_limit {
                    self.terms.buyer_seat_limit = *buyer_seat_limit;
                }
                Outcome::TermsUpdated
            }
            Command::CancelEvent { now_ms } => {
                self.status = EventStatus::Cancelled;
                let active: Vec<HoldId> = self.deadlines.iter().map(|(_, hold_id)| hold_id.clone()).collect();
                for hold_id in &active {
                    let hold = self.end_hold(hold_id, HoldStatus::Cancelled, *now_ms);
                    self.take_places(&hold.places, SeatStatus::Held, SeatStatus::Available);
                }
                let mut cancelled: Vec<BookingId> = self
                    .bookings
                    .iter()
                    .filter(|(_, booking)| booking.status == BookingStatus::Confirmed)
                    .map(|(booking_id, _)| booking_id.clone())
                    .collect();
                cancelled.sort();
                for booking_id in &cancelled {
                    let booking = Arc::make_mut(self.bookings.get_mut(booking_id).expect("listed booking"));
                    booking.status = BookingStatus::Cancelled;
                    booking.cancelled_at_ms = Some(*now_ms);
                    let (buyer, places) = (booking.buyer.clone(), booking.places.clone());
                    self.take_places(&places, SeatStatus::Booked, SeatStatus::Available);
                    self.adjust_buyer(&buyer, -i64::from(places.count()), 0);
                }
                Outcome::EventCancelled { holds_released: active.len() as u32, bookings_cancelled: cancelled }
            }
        };
        debug_assert!(self.check_invariants().is_ok(), "{:?}", self.check_invariants());
        outcome
    }

    /// Records the booking a confirmed hold became.
    fn book(
        &mut self,
        hold_id: &HoldId,
        booking_id: &BookingId,
        hold: HoldRecord,
        payment_reference: &str,
        idempotency_key: &Option<String>,
        now_ms: u64,
    ) {
        if let Some(key) = idempotency_key {
            self.confirm_keys.insert((hold.buyer.clone(), key.clone()), booking_id.clone());
        }
        assert!(!self.bookings.contains_key(booking_id), "booking {booking_id} made twice");
        self.bookings.insert(
            booking_id.clone(),
            Arc::new(BookingRecord {
                hold_id: hold_id.clone(),
                buyer: hold.buyer,
                places: hold.places,
                prices: hold.prices,
                payment_reference: payment_reference.to_string(),
                booked_at_ms: now_ms,
                cancelled_at_ms: None,
                status: BookingStatus::Confirmed,
                redeemed_at_ms: Vec::new(),
            }),
        );
    }

    /// Moves places from one status to another and keeps the section counters with them.
    fn take_places(&mut self, places: &Places, from: SeatStatus, to: SeatStatus) {
        let adjust = |counts: &mut SectionCounts, status: SeatStatus, delta: i64| {
            let counter = match status {
                SeatStatus::Held => &mut counts.held,
                SeatStatus::Booked => &mut counts.booked,
                SeatStatus::Available => return,
            };
            *counter = u32::try_from(i64::from(*counter) + delta).expect("section counter in range");
        };
        match places {
            Places::Seats(seats) => {
                for &seat in seats {
                    let status = &mut self.seats[seat as usize];
                    assert_eq!(*status, from, "seat {seat} is {status:?}, expected {from:?}");
                    *status = to;
                    let section = self.seat_map.position(seat).section as usize;
                    adjust(&mut self.counts[section], from, -1);
                    adjust(&mut self.counts[section], to, 1);
                }
            }
            Places::General { section, quantity } => {
                let section = *section as usize;
                let delta = i64::from(*quantity);
                adjust(&mut self.counts[section], from, -delta);
                adjust(&mut self.counts[section], to, delta);
                let counts = self.counts[section];
                assert!(
                    counts.held + counts.booked <= self.seat_map.sections[section].general_admission_capacity,
                    "general admission section {section} oversold"
                );
            }
        }
    }

    /// Takes a new active hold's places and records it.
    fn insert_hold(&mut self, hold_id: &HoldId, record: HoldRecord) {
        assert!(!self.holds.contains_key(hold_id), "hold {hold_id} placed twice");
        self.take_places(&record.places, SeatStatus::Available, SeatStatus::Held);
        self.adjust_buyer(&record.buyer, i64::from(record.places.count()), 1);
        self.note_hold(record.placed_at_ms);
        self.deadlines.insert((record.expires_at_ms, hold_id.clone()));
        self.holds.insert(hold_id.clone(), Arc::new(record));
    }

    /// Ends an active hold; returns a copy of its record as it was.
    fn end_hold(&mut self, hold_id: &HoldId, status: HoldStatus, now_ms: u64) -> HoldRecord {
        let hold = Arc::make_mut(self.holds.get_mut(hold_id).expect("ended hold exists"));
        assert_eq!(hold.status, HoldStatus::Active, "hold {hold_id} ended twice");
        hold.status = status;
        let record = hold.clone();
        assert!(
            self.deadlines.remove(&(record.expires_at_ms, hold_id.clone())).is_some(),
            "active hold has a deadline"
        );
        self.ended_holds.push_back((now_ms, hold_id.clone()));
        self.forget_ended_holds(now_ms);
        // A confirmed hold's seats stay counted against the buyer: they move into a booking.
        let seats_freed = if status == HoldStatus::Confirmed { 0 } else { i64::from(record.places.count()) };
        self.adjust_buyer(&record.buyer, -seats_freed, -1);
        if record.from_waitlist {
            self.offer_ended(hold_id);
        }
        record
    }

    fn adjust_buyer(&mut self, buyer: &BuyerId, seats_delta: i64, holds_delta: i64) {
        let usage = self.buyers.entry(buyer.clone()).or_default();
        usage.seats = u32::try_from(i64::from(usage.seats) + seats_delta).expect("buyer seat count in range");
        usage.active_holds =
            u32::try_from(i64::from(usage.active_holds) + holds_delta).expect("buyer hold count in range");
        if usage.seats == 0 && usage.active_holds == 0 {
            self.buyers.remove(buyer);
        }
    }

    /// Forgets the ended holds older than the retention, and the oldest beyond the count bound.
    fn forget_ended_holds(&mut self, now_ms: u64) {
        while let Some((ended_at_ms, _)) = self.ended_holds.front() {
            if ended_at_ms + limits::HOLD_RETENTION_MS > now_ms
                && self.ended_holds.len() <= limits::ENDED_HOLDS_RETAINED_MAX
            {
                break;
            }
            let (_, hold_id) = self.ended_holds.pop_front().expect("front exists");
            if let Some(hold) = self.holds.remove(&hold_id) {
                // The record is usually the map's alone: take it apart instead of copying its ids.
                let hold = Arc::unwrap_or_clone(hold);
                if let Some(key) = hold.idempotency_key {
                    self.hold_keys.remove(&(hold.buyer, key));
                }
            }
        }
    }

    /// Recounts everything from the seats and records. O(seats + holds + bookings): for tests and
    /// debug builds.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let mut expected = vec![SectionCounts::default(); self.counts.len()];
        let mut seat_owner = vec![0u8; self.seats.len()];
        let mut usage: HashMap<&BuyerId, BuyerUsage> = HashMap::new();
        let mut count_places = |places: &Places, status: SeatStatus, marker: u8| -> std::result::Result<(), String> {
            match places {
                Places::Seats(seats) => {
                    for &seat in seats {
                        if self.seats[seat as usize] != status {
                            return Err(format!(
                                "seat {seat} is {:?}, its record says {status:?}",
                                self.seats[seat as usize]
                            ));
                        }
                        if seat_owner[seat as usize] != 0 {
                            return Err(format!("seat {seat} is in two live records"));
                        }
                        seat_owner[seat as usize] = marker;
                        let section = self.seat_map.position(seat).section as usize;
                        match status {
                            SeatStatus::Held => expected[section].held = expected[section].held.saturating_add(1),
                            _ => expected[section].booked = expected[section].booked.saturating_add(1),
                        }
                    }
                }
                Places::General { section, quantity } => {
                    let counts = &mut expected[*section as usize];
                    match status {
                        SeatStatus::Held => counts.held = counts.held.saturating_add(*quantity),
                        _ => counts.booked = counts.booked.saturating_add(*quantity),
                    }
                }
            }
            Ok(())
        };
        for hold in self.holds.values().filter(|hold| hold.status == HoldStatus::Active) {
            count_places(&hold.places, SeatStatus::Held, 1)?;
            let entry = usage.entry(&hold.buyer).or_default();
            entry.seats = entry.seats.saturating_add(hold.places.count());
            entry.active_holds = entry.active_holds.saturating_add(1);
        }
        for booking in self.bookings.values().filter(|booking| booking.status == BookingStatus::Confirmed) {
            count_places(&booking.places, SeatStatus::Booked, 2)?;
            let entry = usage.entry(&booking.buyer).or_default();
            entry.seats = entry.seats.saturating_add(booking.places.count());
        }
        if expected != self.counts {
            return Err(format!("section counters {:?} do not match records {:?}", self.counts, expected));
        }
        for (seat, status) in self.seats.iter().enumerate() {
            if *status != SeatStatus::Available && seat_owner[seat] == 0 {
                return Err(format!("seat {seat} is {status:?} but no live record has it"));
            }
        }
        if usage.len() != self.buyers.len() {
            return Err(format!("{} buyers tracked, {} have seats", self.buyers.len(), usage.len()));
        }
        for (buyer, expected_usage) in usage {
            let actual = self.buyers.get(buyer).copied().unwrap_or_default();
            if (actual.seats, actual.active_holds) != (expected_usage.seats, expected_usage.active_holds) {
                return Err(format!("buyer {buyer} usage {actual:?}, records say {expected_usage:?}"));
            }
        }
        let active = self.holds.values().filter(|hold| hold.status == HoldStatus::Active).count();
        if active != self.deadlines.len() {
            return Err(format!("{active} active holds, {} deadlines", self.deadlines.len()));
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------

    fn tickets(&self, places: &Places, prices: &[LockedPrice]) -> (Vec<TicketView>, i64) {
        let price_of = |section: u16| {
            prices.iter().find(|price| price.section == section).copied().expect("every section of a hold is priced")
        };
        let ticket = |section: u16, seat_id: Option<String>| {
            let price = price_of(section);
            TicketView {
                section_id: self.seat_map.sections[section as usize].section_id.clone(),
                seat_id,
                price_level_id: self.terms.price_levels[price.level as usize].price_level_id.clone(),
                amount_minor: price.amount_minor,
                redeemed_at_ms: None,
            }
        };
        let tickets: Vec<TicketView> = match places {
            Places::Seats(seats) => seats
                .iter()
                .map(|&seat| ticket(self.seat_map.position(seat).section, Some(self.seat_map.seat_id(seat))))
                .collect(),
            Places::General { section, quantity } => (0..*quantity).map(|_| ticket(*section, None)).collect(),
        };
        let total = tickets.iter().map(|ticket| ticket.amount_minor).sum();
        (tickets, total)
    }

    /// The caller's view of a hold; `None` if unknown, `PermissionDenied` if not theirs.
    pub fn hold_view(&self, hold_id: &HoldId, caller: Option<&Caller>) -> Result<HoldView> {
        let hold = self.holds.get(hold_id).ok_or_else(|| Error::not_found("hold", hold_id.as_str()))?;
        if let Some(caller) = caller {
            if !caller.may_touch(&hold.buyer) {
                return Err(Error::PermissionDenied { reason: format!("hold '{hold_id}' belongs to another buyer") });
            }
        }
        let (tickets, total_minor) = self.tickets(&hold.places, &hold.prices);
        Ok(HoldView {
            hold_id: hold_id.clone(),
            event_id: self.event_id.clone(),
            buyer: hold.buyer.clone(),
            tickets,
            total_minor,
            currency: self.terms.currency.clone(),
            status: hold.status,
            placed_at_ms: hold.placed_at_ms,
            expires_at_ms: hold.expires_at_ms,
            booking_id: hold.booking_id.clone(),
            extensions: u32::from(hold.extensions),
            payment_in_progress: hold.payment_started && hold.status == HoldStatus::Active,
        })
    }

    pub fn booking_view(&self, booking_id: &BookingId, caller: Option<&Caller>) -> Result<BookingView> {
        let booking = self.bookings.get(booking_id).ok_or_else(|| Error::not_found("booking", booking_id.as_str()))?;
        if let Some(caller) = caller {
            if !caller.may_touch(&booking.buyer) {
                return Err(Error::PermissionDenied {
                    reason: format!("booking '{booking_id}' belongs to another buyer"),
                });
            }
        }
        let (mut tickets, total_minor) = self.tickets(&booking.places, &booking.prices);
        for (ticket, redeemed_at_ms) in tickets.iter_mut().zip(&booking.redeemed_at_ms) {
            ticket.redeemed_at_ms = *redeemed_at_ms;
        }
        Ok(BookingView {
            booking_id: booking_id.clone(),
            event_id: self.event_id.clone(),
            buyer: booking.buyer.clone(),
            hold_id: booking.hold_id.clone(),
            tickets,
            total_minor,
            currency: self.terms.currency.clone(),
            status: booking.status,
            payment_reference: booking.payment_reference.clone(),
            booked_at_ms: booking.booked_at_ms,
            cancelled_at_ms: booking.cancelled_at_ms,
        })
    }

    pub fn availability(&self) -> Vec<AvailabilityView> {
        self.seat_map
            .sections
            .iter()
            .zip(&self.counts)
            .zip(&self.section_levels)
            .map(|((section, counts), &level)| {
                let level = &self.terms.price_levels[level as usize];
                AvailabilityView {
                    section_id: section.section_id.clone(),
                    price_level_id: level.price_level_id.clone(),
                    amount_minor: level.amount_minor,
                    general_admission: section.is_general_admission(),
                    total: section.capacity(),
                    available: section.capacity() - counts.held - counts.booked,
                    held: counts.held,
                    booked: counts.booked,
                }
            })
            .collect()
    }

    /// What a read snapshot keeps of each section between term changes.
    pub fn section_rows(&self) -> Vec<SectionRow> {
        self.availability()
            .into_iter()
            .map(|row| SectionRow {
                section_id: row.section_id,
                price_level_id: row.price_level_id,
                amount_minor: row.amount_minor,
                general_admission: row.general_admission,
                total: row.total,
            })
            .collect()
    }

    /// `(held, booked)` per section, in seat-map order: what changes with every hold.
    pub fn section_counts(&self) -> Vec<(u32, u32)> {
        self.counts.iter().map(|counts| (counts.held, counts.booked)).collect()
    }

    /// `(held, booked)` of one section (an index of the seat map).
    pub fn section_count(&self, section: u16) -> (u32, u32) {
        let counts = self.counts[section as usize];
        (counts.held, counts.booked)
    }

    /// Every reserved seat's status, in seat-map order.
    pub fn seat_statuses(&self) -> &[SeatStatus] {
        &self.seats
    }

    /// The places of a hold this inventory still remembers (live, or ended within the retention).
    pub fn hold_places(&self, hold_id: &HoldId) -> Option<&Places> {
        self.holds.get(hold_id).map(|hold| &hold.places)
    }

    pub fn booking_places(&self, booking_id: &BookingId) -> Option<&Places> {
        self.bookings.get(booking_id).map(|booking| &booking.places)
    }

    /// Places in active holds whose deadline is at or before `deadline_ms`: what will be back on
    /// sale by then unless their buyers confirm.
    pub fn places_expiring_by(&self, deadline_ms: u64) -> u32 {
        self.deadlines
            .iter()
            .take_while(|(expires_at_ms, _)| *expires_at_ms <= deadline_ms)
            .filter_map(|(_, hold_id)| self.holds.get(hold_id))
            .map(|hold| hold.places.count())
            .sum()
    }
}

mod pricing;
pub use pricing::{PriceStep, PricingRules};
mod restore;
mod waitlist;
pub use waitlist::WaitlistView;

#[cfg(test)]
mod tests;
