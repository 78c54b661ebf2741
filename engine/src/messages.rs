//! What passes between the engine, the event actors, the change feed and the waiting rooms:
//! requests that only read, the answers, the actor's messages and the read snapshot it publishes.
//! Plain types, so that none of those modules imports another to name them.

use std::sync::Arc;

use ractor::RpcReplyPort;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::Result;
use crate::ids::{BookingId, BuyerId, HoldId};
use crate::inventory::{
    AvailabilityView, BookingView, Caller, EventStatus, HoldView, Inventory, ReportRow, Request, SeatStatus,
    SectionRow, Terms, WaitlistView,
};

/// Requests that only read.
#[derive(Clone, Debug)]
pub enum Query {
    Hold {
        hold_id: HoldId,
        caller: Caller,
    },
    Booking {
        booking_id: BookingId,
        caller: Caller,
    },
    Overview {
        include_seats: bool,
    },
    /// Places in active holds that expire at or before the deadline.
    PlacesExpiringBy {
        deadline_ms: u64,
    },
    Report,
    Waitlist {
        buyer: BuyerId,
    },
}

/// The live state of an event as its actor sees it.
#[derive(Clone, Debug)]
pub struct EventOverview {
    pub version: u64,
    pub status: EventStatus,
    pub terms: Terms,
    pub availability: Vec<AvailabilityView>,
    /// `(seat id, status)` for every reserved seat, when asked for.
    pub seats: Option<Vec<(String, SeatStatus)>>,
}

/// What readers see of an event without asking its actor: published by the actor after every
/// change, read through an `ArcSwap` (no lock, no mailbox). The parts that only change with the
/// terms are shared between snapshots, so a change costs one small vector of counts.
#[derive(Clone, Debug)]
pub struct EventSnapshot {
    pub version: u64,
    pub status: EventStatus,
    pub terms: Arc<Terms>,
    pub sections: Arc<Vec<SectionRow>>,
    /// `(held, booked)` per section, aligned with `sections`.
    pub counts: Vec<(u32, u32)>,
    /// Each section's price as of this snapshot (moves with dynamic pricing), aligned with
    /// `sections`. Shared with the snapshot before when nothing could have moved them.
    pub prices: Arc<Vec<i64>>,
}

impl EventSnapshot {
    pub fn of(inventory: &Inventory, now_ms: u64) -> Self {
        Self {
            version: inventory.version(),
            status: inventory.status().clone(),
            terms: Arc::new(inventory.terms().clone()),
            sections: Arc::new(inventory.section_rows()),
            counts: inventory.section_counts(),
            prices: Arc::new(inventory.current_prices(now_ms)),
        }
    }

    pub fn availability(&self) -> Vec<AvailabilityView> {
        self.sections
            .iter()
            .zip(&self.counts)
            .zip(self.prices.iter())
            .map(|((section, &(held, booked)), &amount_minor)| AvailabilityView {
                section_id: section.section_id.clone(),
                price_level_id: section.price_level_id.clone(),
                amount_minor,
                general_admission: section.general_admission,
                total: section.total,
                available: section.total - held - booked,
                held,
                booked,
            })
            .collect()
    }

    pub fn overview(&self) -> EventOverview {
        EventOverview {
            version: self.version,
            status: self.status.clone(),
            terms: Terms::clone(&self.terms),
            availability: self.availability(),
            seats: None,
        }
    }
}

/// What the actor replies.
#[derive(Clone, Debug)]
pub enum Answer {
    Hold(HoldView),
    Booking(BookingView),
    Overview(EventOverview),
    EventCancelled { holds_released: u32, bookings_cancelled: u32 },
    Places(u32),
    Report(Vec<ReportRow>),
    Waitlist(WaitlistView),
}

pub enum EventMsg {
    /// Decide and apply a change. The permit holds a mailbox slot until the message is handled.
    Execute {
        request: Request,
        permit: OwnedSemaphorePermit,
        reply: RpcReplyPort<Result<Answer>>,
    },
    Read {
        query: Query,
        permit: OwnedSemaphorePermit,
        reply: RpcReplyPort<Result<Answer>>,
    },
    /// The expiry timer fired.
    ExpireDue,
    /// Write a checkpoint if anything changed since the last one.
    Checkpoint,
    /// A write of this actor failed: its memory is ahead of the log. Stop, to be rebuilt.
    Poisoned,
}
