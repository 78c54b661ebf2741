//! Every bound of the engine in one place. A bound that is hit becomes a clear error naming it;
//! nothing in the engine grows without one of these limits behind it.

/// Reserved seats plus general-admission places in one venue (and so in one event's inventory).
pub const SEATS_PER_EVENT_MAX: u32 = 200_000;
/// Sections in one venue.
pub const SECTIONS_PER_VENUE_MAX: usize = 1_000;
/// Rows in one section.
pub const ROWS_PER_SECTION_MAX: usize = 1_000;
/// Seats in one row.
pub const SEATS_PER_ROW_MAX: usize = 1_000;
/// Length of a section, row or seat label. Labels build seat ids (`section:row:seat`).
pub const LABEL_LENGTH_MAX: usize = 16;
/// Length of a seat id, `<section>:<row>:<seat>`: three labels and two colons.
pub const SEAT_ID_LENGTH_MAX: usize = 3 * LABEL_LENGTH_MAX + 2;
/// Characters of a caller's value an error message quotes; a longer value is cut there and marked
/// "...". A message quoting a value whole could outgrow a client's metadata limit (16 KiB in most
/// gRPC clients), and the caller would see a transport error instead of the reason.
pub const QUOTED_CHARS_MAX: usize = 64;
/// Length of a display name (venue, performer, event, section, price level).
pub const NAME_LENGTH_MAX: usize = 200;
/// Length of a free-text description, address or category.
pub const TEXT_LENGTH_MAX: usize = 4_000;
/// Performers billed on one event.
pub const PERFORMERS_PER_EVENT_MAX: usize = 50;
/// Price levels in one event.
pub const PRICE_LEVELS_PER_EVENT_MAX: usize = 100;
/// Largest price of one ticket, in minor units (10 million in major units).
pub const PRICE_MINOR_MAX: i64 = 1_000_000_000;

/// Seats in one hold, by explicit list or by quantity.
pub const SEATS_PER_HOLD_MAX: u32 = 50;
/// Live holds one buyer may have on one event at a time.
pub const HOLDS_PER_BUYER_MAX: u32 = 10;
/// Default for an event's per-buyer seat limit (live holds plus bookings).
pub const BUYER_SEAT_LIMIT_DEFAULT: u32 = 8;
/// Largest per-buyer seat limit an admin may set.
pub const BUYER_SEAT_LIMIT_MAX: u32 = 1_000;

/// Default hold lifetime: ten minutes, the time a buyer has to pay.
pub const HOLD_TTL_MS_DEFAULT: u64 = 10 * 60 * 1_000;
/// Shortest hold lifetime an admin may set.
pub const HOLD_TTL_MS_MIN: u64 = 30 * 1_000;
/// Longest hold lifetime an admin may set.
pub const HOLD_TTL_MS_MAX: u64 = 60 * 60 * 1_000;
/// How long an ended hold (confirmed, released, expired) stays readable and keeps its idempotency
/// key, so that a late retry gets the first answer instead of a second hold (and an expired hold
/// can still be confirmed late).
pub const HOLD_RETENTION_MS: u64 = 10 * 60 * 1_000;
/// Ended holds one event remembers at most, whatever their age: under a storm of holds the
/// retention is this many, not ten minutes' worth (about 0.5 kB each).
pub const ENDED_HOLDS_RETAINED_MAX: usize = 100_000;

/// Dynamic pricing: highest ceiling (in percent of a level's base price), steps per rule list,
/// and the largest demand threshold (holds per minute, also the size of the demand window).
pub const PRICE_CEILING_PERCENT_MAX: u32 = 1_000;
pub const PRICE_STEPS_MAX: usize = 20;
pub const DEMAND_HOLDS_PER_MINUTE_MAX: u32 = 100_000;
// A ceiling price times every seat of an event still fits an i64 of minor units.
const _: () = assert!(
    (PRICE_MINOR_MAX as i128) * (PRICE_CEILING_PERCENT_MAX as i128 / 100) * (SEATS_PER_EVENT_MAX as i128)
        < i64::MAX as i128
);

/// Buyers on one event's waitlist.
pub const WAITLIST_MAX: usize = 10_000;
/// Times one hold may be extended (each by half the event's hold TTL).
pub const HOLD_EXTENSIONS_MAX: u32 = 2;
/// Extensions never take a hold past this many TTLs after it was placed.
pub const HOLD_LIFETIME_TTLS_MAX: u64 = 2;
/// Once a buyer says payment is under way, the hold lives at least this much longer (once).
pub const PAYMENT_GRACE_MS: u64 = 5 * 60 * 1_000;

/// Length of an idempotency key or payment reference.
pub const KEY_LENGTH_MAX: usize = 128;
/// Requests waiting in one event actor's mailbox before new ones are refused.
pub const MAILBOX_DEPTH_MAX: usize = 4_096;
/// Default and largest page of a listing.
pub const PAGE_SIZE_DEFAULT: u32 = 20;
pub const PAGE_SIZE_MAX: u32 = 100;
/// Changes each event keeps for watchers resuming from a version they saw; older means a snapshot.
pub const WATCH_RETAINED_CHANGES_MAX: usize = 1_024;
/// Changes buffered for a live watcher before it is told it lagged and gets a snapshot.
pub const WATCH_BUFFERED_CHANGES_MAX: usize = 256;
/// Watch streams open at once over the whole node.
pub const WATCH_STREAMS_MAX: usize = 10_000;
/// How long an admission pass lets its buyer hold: default and bounds.
pub const PASS_TTL_MS_DEFAULT: u64 = 2 * 60 * 1_000;
pub const PASS_TTL_MS_MIN: u64 = 10 * 1_000;
pub const PASS_TTL_MS_MAX: u64 = 30 * 60 * 1_000;
/// Largest fixed admission rate of a waiting room, buyers per second.
pub const ADMISSION_RATE_MAX: u32 = 100_000;
/// Buyers one event's waiting room holds (about 20 bytes each).
pub const QUEUE_BUYERS_MAX: u64 = 20_000_000;
/// Buyers one admission step (every 100 ms) lets in at most.
pub const ADMISSIONS_PER_TICK_MAX: u64 = 10_000;
/// How long a caller waits for an event actor's reply before giving up.
pub const ACTOR_CALL_TIMEOUT_MS: u64 = 10_000;

const _: () = assert!(BUYER_SEAT_LIMIT_DEFAULT <= BUYER_SEAT_LIMIT_MAX);
const _: () = assert!(HOLD_TTL_MS_MIN <= HOLD_TTL_MS_DEFAULT && HOLD_TTL_MS_DEFAULT <= HOLD_TTL_MS_MAX);
const _: () = assert!(PAGE_SIZE_DEFAULT <= PAGE_SIZE_MAX);
const _: () = assert!((SECTIONS_PER_VENUE_MAX as u64) <= u16::MAX as u64, "section indexes are u16");
const _: () = assert!(PRICE_LEVELS_PER_EVENT_MAX <= u16::MAX as usize);
// A whole event's revenue must fit an i64 in minor units.
const _: () = assert!((PRICE_MINOR_MAX as i128) * (SEATS_PER_EVENT_MAX as i128) < i64::MAX as i128);

/// Venues, performers and events one node's catalog holds.
pub const VENUES_MAX: usize = 100_000;
pub const PERFORMERS_MAX: usize = 1_000_000;
pub const EVENTS_MAX: usize = 2_000_000;
