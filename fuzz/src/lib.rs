//! Fixtures shared by the fuzz targets: one small venue, its terms, and a checkpoint of an
//! inventory with every kind of record in it.
//!
//! The venue is deliberately small (35 reserved seats, two general-admission sections) so that
//! short op sequences fill sections, strand seats and hit the buyer limits: a fuzzer spends its
//! time where the edge cases are, not walking a stadium.

use std::sync::{Arc, OnceLock};

use turnstile_engine::ids::{BuyerId, EventId};
use turnstile_engine::inventory::{Caller, Decision, Inventory, Outcome, PriceLevel, Request, Selection, Terms};
use turnstile_engine::limits;
use turnstile_engine::seat_map::{numbered_rows, SeatMap, SectionSpec};

/// Start of the fuzzed clock: a plausible wall-clock time in milliseconds (2027), far from both
/// zero and `u64::MAX`, as the engine's clock always is.
pub const T0_MS: u64 = 1_800_000_000_000;

/// Sections: "101" (3 rows of 10), "102" (1 row of 5), "FLOOR" (general admission, 100) and
/// "BOX" (general admission, 3, so it sells out within a few ops).
pub fn venue_sections() -> Vec<SectionSpec> {
    vec![
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
        SectionSpec { section_id: "BOX".into(), name: "Box".into(), rows: vec![], general_admission_capacity: 3 },
    ]
}

/// The venue's seat map, built once per process (targets share it the way events at one venue do).
pub fn seat_map() -> Arc<SeatMap> {
    static SEAT_MAP: OnceLock<Arc<SeatMap>> = OnceLock::new();
    SEAT_MAP.get_or_init(|| Arc::new(SeatMap::build(&venue_sections()).expect("the fixture venue is valid"))).clone()
}

/// Every section id of the venue, in seat-map order.
pub fn section_ids() -> &'static [String] {
    static SECTION_IDS: OnceLock<Vec<String>> = OnceLock::new();
    SECTION_IDS.get_or_init(|| seat_map().sections.iter().map(|section| section.section_id.clone()).collect())
}

/// Every reserved seat id of the venue, indexed like the seat map.
pub fn seat_ids() -> &'static [String] {
    static SEAT_IDS: OnceLock<Vec<String>> = OnceLock::new();
    SEAT_IDS.get_or_init(|| {
        let seat_map = seat_map();
        (0..seat_map.seat_count).map(|seat| seat_map.seat_id(seat)).collect()
    })
}

pub fn terms() -> Terms {
    Terms {
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
                section_ids: vec!["102".into(), "FLOOR".into(), "BOX".into()],
            },
        ],
        hold_ttl_ms: limits::HOLD_TTL_MS_DEFAULT,
        buyer_seat_limit: limits::BUYER_SEAT_LIMIT_DEFAULT,
    }
}

pub fn event_id() -> EventId {
    EventId::mint(0x7e57)
}

pub fn new_inventory() -> Inventory {
    Inventory::new(event_id(), seat_map(), terms()).expect("the fixture terms price every section")
}

/// Decides and, when the decision is to apply, applies: the engine's path for one request.
pub fn run(inventory: &mut Inventory, request: Request, now_ms: u64, nonce: u64) -> Option<Outcome> {
    match inventory.decide(&request, now_ms, nonce).ok()? {
        Decision::Apply(command) => Some(inventory.apply(&command)),
        Decision::Answered(outcome) => Some(outcome),
    }
}

/// Checkpoint bytes of an inventory holding active, confirmed, released and expired holds, live
/// and cancelled bookings, reserved and general-admission places and idempotency keys: a
/// well-formed starting point that the checkpoint fuzzing corrupts a few bytes at a time.
pub fn rich_checkpoint() -> &'static [u8] {
    static CHECKPOINT: OnceLock<Vec<u8>> = OnceLock::new();
    CHECKPOINT.get_or_init(|| {
        let mut inventory = new_inventory();
        let buyer = |name: &str| Caller { buyer: BuyerId::new(name), admin: false };
        let seats = |ids: &[&str]| Selection::Seats(ids.iter().map(|id| id.to_string()).collect());
        let hold = |outcome: Option<Outcome>| match outcome {
            Some(Outcome::Hold(hold_id)) => hold_id,
            other => panic!("fixture hold failed: {other:?}"),
        };
        let booking = |outcome: Option<Outcome>| match outcome {
            Some(Outcome::Booking(booking_id)) => booking_id,
            other => panic!("fixture booking failed: {other:?}"),
        };
        let mut now_ms = T0_MS;
        let place = |caller, selection, key: Option<&str>| Request::PlaceHold {
            caller,
            selection,
            idempotency_key: key.map(str::to_string),
        };
        let confirm = |caller, hold_id, key: Option<&str>| Request::ConfirmHold {
            caller,
            hold_id,
            payment_reference: "pay-1".into(),
            idempotency_key: key.map(str::to_string),
        };

        // Expires: placed first, so the later steps pass its deadline.
        hold(run(&mut inventory, place(buyer("eve"), seats(&["102:A:5"]), None), now_ms, 1));
        now_ms += limits::HOLD_TTL_MS_DEFAULT / 2;
        let booked =
            hold(run(&mut inventory, place(buyer("ann"), seats(&["101:A:1", "101:A:2"]), Some("k1")), now_ms, 2));
        booking(run(&mut inventory, confirm(buyer("ann"), booked, Some("c1")), now_ms, 3));
        let general = hold(run(
            &mut inventory,
            place(buyer("bob"), Selection::BestAvailable { section_id: "FLOOR".into(), quantity: 4 }, Some("k2")),
            now_ms,
            4,
        ));
        let cancelled = booking(run(&mut inventory, confirm(buyer("bob"), general, None), now_ms, 5));
        run(&mut inventory, Request::CancelBooking { caller: buyer("bob"), booking_id: cancelled }, now_ms, 6);
        let released = hold(run(&mut inventory, place(buyer("cy"), seats(&["101:B:5"]), None), now_ms, 7));
        run(&mut inventory, Request::ReleaseHold { caller: buyer("cy"), hold_id: released }, now_ms, 8);
        hold(run(
            &mut inventory,
            place(buyer("cy"), Selection::BestAvailable { section_id: "101".into(), quantity: 3 }, None),
            now_ms,
            9,
        ));
        hold(run(
            &mut inventory,
            place(buyer("dee"), Selection::BestAvailable { section_id: "BOX".into(), quantity: 2 }, None),
            now_ms,
            10,
        ));
        now_ms += limits::HOLD_TTL_MS_DEFAULT / 2;
        let command = inventory.expiry_due(now_ms).expect("eve's hold is due");
        inventory.apply(&command);
        inventory.check_invariants().expect("fixture inventory is consistent");
        inventory.checkpoint()
    })
}

/// Known, reported panics that a target tolerates while they are open, so that fuzzing goes on
/// past them to find new ones instead of stopping at the same crash on every run.
///
/// A target installs [`known_panics::install`] in its `init` block and wraps the code that may
/// hit a known panic in [`known_panics::tolerate`]. A panic inside that wrapper whose source file
/// and message match an entry of the target's list unwinds back to the wrapper, which reports the
/// input as rejected; any other panic, anywhere, aborts as libFuzzer expects.
///
/// Two switches, read once at start:
/// - `TURNSTILE_FUZZ_STRICT=1` tolerates nothing: to reproduce a known panic, or to check that a
///   fix has removed it;
/// - `TURNSTILE_FUZZ_DISCOVER=1` tolerates every panic inside [`tolerate`] and prints each
///   distinct panic site once (`panic site (known|NEW): <file>:<line>: <message>`): to list what is
///   left to fix, in one run, instead of one crash per run. With `TURNSTILE_FUZZ_DISCOVER_DIR`
///   set as well, the first input to reach each site is saved there, named after the site.
pub mod known_panics {
    use std::cell::Cell;
    use std::panic::{self, AssertUnwindSafe};
    use std::sync::OnceLock;

    /// A panic by where it is raised and what it says. Lines are left out on purpose: the engine
    /// changes under the fuzzer and a line number would stop matching after any edit above it.
    #[derive(Clone, Copy, Debug)]
    pub struct KnownPanic {
        /// End of the source path of the panic location, e.g. `domain/src/inventory.rs`.
        pub file_suffix: &'static str,
        /// Text the panic message contains.
        pub message_contains: &'static str,
        /// Where the finding is written up.
        pub reported_in: &'static str,
    }

    thread_local! {
        /// Whether the current thread is inside [`tolerate`]; a panic elsewhere is never tolerated.
        static TOLERATING: Cell<bool> = const { Cell::new(false) };
        /// The input being run, kept in discovery mode only, to save the first to reach a site.
        static INPUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    static KNOWN: OnceLock<&'static [KnownPanic]> = OnceLock::new();

    fn switch(name: &str) -> bool {
        std::env::var(name).is_ok_and(|value| value == "1")
    }

    fn strict() -> bool {
        static STRICT: OnceLock<bool> = OnceLock::new();
        *STRICT.get_or_init(|| switch("TURNSTILE_FUZZ_STRICT"))
    }

    fn discover() -> bool {
        static DISCOVER: OnceLock<bool> = OnceLock::new();
        *DISCOVER.get_or_init(|| switch("TURNSTILE_FUZZ_DISCOVER"))
    }

    /// Panic sites already printed in discovery mode.
    static SITES_SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    /// Installs the panic hook; call once, from the target's `init` block (after libFuzzer's own
    /// hook, which this one wraps).
    pub fn install(known: &'static [KnownPanic]) {
        KNOWN.set(known).expect("known panics are installed once");
        if strict() {
            eprintln!("TURNSTILE_FUZZ_STRICT=1: known panics of this target are crashes:");
            for known in known {
                eprintln!("  {}: '{}' ({})", known.file_suffix, known.message_contains, known.reported_in);
            }
            return;
        }
        let abort_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            let file = info.location().map(|location| location.file()).unwrap_or("");
            let known = KNOWN
                .get()
                .copied()
                .unwrap_or_default()
                .iter()
                .any(|known| file.ends_with(known.file_suffix) && message.contains(known.message_contains));
            if TOLERATING.with(Cell::get) && discover() {
                let line = info.location().map(|location| location.line()).unwrap_or(0);
                // Messages carry indexes and ids; a site is its file, line and message with the
                // numbers taken out, so one site prints once however many values reach it.
                let mut kind = String::with_capacity(message.len());
                for character in message.chars() {
                    if !character.is_ascii_digit() {
                        kind.push(character);
                    } else if !kind.ends_with('#') {
                        kind.push('#');
                    }
                }
                let site = format!("{file}:{line}: {kind}");
                let mut seen = SITES_SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if !seen.contains(&site) {
                    eprintln!("panic site ({}): {site}", if known { "known" } else { "NEW" });
                    if let Ok(directory) = std::env::var("TURNSTILE_FUZZ_DISCOVER_DIR") {
                        let name: String = site
                            .rsplit("/src/")
                            .next()
                            .unwrap_or(&site)
                            .chars()
                            .map(|character| if character.is_ascii_alphanumeric() { character } else { '_' })
                            .take(80)
                            .collect();
                        let path = std::path::Path::new(&directory).join(name);
                        let written = INPUT.with(|input| std::fs::write(&path, &*input.borrow()));
                        if let Err(error) = written {
                            eprintln!("cannot save {}: {error}", path.display());
                        }
                    }
                    seen.push(site);
                }
                return;
            }
            if known && TOLERATING.with(Cell::get) {
                return; // unwinds into `tolerate`, which drops the input
            }
            abort_hook(info);
        }));
    }

    /// Runs `body` on `input` (the fuzz input, kept for discovery mode); a known panic inside it
    /// makes this return `None` instead of crashing.
    pub fn tolerate<T>(input: &[u8], body: impl FnOnce() -> T) -> Option<T> {
        if discover() {
            INPUT.with(|kept| {
                let mut kept = kept.borrow_mut();
                kept.clear();
                kept.extend_from_slice(input);
            });
        }
        TOLERATING.with(|tolerating| tolerating.set(true));
        let result = panic::catch_unwind(AssertUnwindSafe(body));
        TOLERATING.with(|tolerating| tolerating.set(false));
        result.ok()
    }
}
