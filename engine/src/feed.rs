//! The live seat map: every change of an event's inventory, in version order, for subscribers
//! (`CatalogService.WatchEvent`).
//!
//! The event actor publishes one [`Change`] per applied command, once the command is durable, so a
//! subscriber never sees a change that a failed write later takes back. Publishing never waits: the
//! feed keeps the most recent changes in a bounded ring (for subscribers resuming from a version
//! they saw) and hands live ones to a bounded broadcast channel. A subscriber that falls behind the
//! channel is told it lagged and starts again from a full snapshot; the actor never slows down for
//! it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::ids::EventId;
use crate::inventory::{AvailabilityView, Command, EventStatus, Inventory, Outcome, Places, SeatStatus, SectionRow};
use crate::limits;
use crate::messages::{EventOverview, EventSnapshot};
use crate::seat_map::SeatMap;

/// What one applied command changed, in seat-map indexes (names are looked up by readers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub version: u64,
    pub status: EventStatus,
    /// Reserved seats whose status changed, with their new status.
    pub seats: Vec<(u32, SeatStatus)>,
    /// Sections whose counts changed: `(section index, held, booked)` after the change.
    pub sections: Vec<(u16, u32, u32)>,
    /// The change touched the whole event (it was cancelled): readers take a full snapshot.
    pub whole_event: bool,
}

impl Change {
    /// Describes what `command` did to `inventory`, which has just applied it.
    pub fn of(inventory: &Inventory, command: &Command, outcome: &Outcome) -> Self {
        let mut change = Change {
            version: inventory.version(),
            status: inventory.status().clone(),
            seats: Vec::new(),
            sections: Vec::new(),
            whole_event: false,
        };
        let mut moved = |places: Option<&Places>, status: SeatStatus| {
            let Some(places) = places else { return };
            match places {
                Places::Seats(seats) => {
                    for &seat in seats {
                        change.seats.push((seat, status));
                        change.sections.push((inventory.seat_map().position(seat).section, 0, 0));
                    }
                }
                Places::General { section, .. } => change.sections.push((*section, 0, 0)),
            }
        };
        match (command, outcome) {
            (Command::PlaceHold { places, .. } | Command::OfferFromWaitlist { places, .. }, _) => {
                moved(Some(places), SeatStatus::Held)
            }
            (Command::ConfirmHold { hold_id, .. } | Command::ConfirmExpiredHold { hold_id, .. }, _) => {
                moved(inventory.hold_places(hold_id), SeatStatus::Booked)
            }
            (Command::ReleaseHold { hold_id, .. }, _) => moved(inventory.hold_places(hold_id), SeatStatus::Available),
            (Command::ExpireHolds { .. }, Outcome::HoldsExpired { hold_ids }) => {
                for hold_id in hold_ids {
                    moved(inventory.hold_places(hold_id), SeatStatus::Available);
                }
            }
            (Command::CancelBooking { booking_id, .. }, _) => {
                moved(inventory.booking_places(booking_id), SeatStatus::Available)
            }
            (Command::CancelEvent { .. }, _) => change.whole_event = true,
            (
                Command::ExpireHolds { .. }
                | Command::UpdateTerms { .. }
                | Command::ExtendHold { .. }
                | Command::RedeemTicket { .. }
                | Command::SetPricing { .. }
                | Command::JoinWaitlist { .. }
                | Command::LeaveWaitlist { .. },
                _,
            ) => {}
        }
        change.sections.sort_unstable();
        change.sections.dedup();
        for (section, held, booked) in &mut change.sections {
            (*held, *booked) = inventory.section_count(*section);
        }
        change
    }
}

struct Recent {
    /// The version of the last change published (or of the inventory when the feed started).
    version: u64,
    changes: VecDeque<Arc<Change>>,
}

/// One event's change feed. Outlives its actor: a rebuilt actor publishes into the same feed.
pub struct EventFeed {
    recent: Mutex<Recent>,
    live: broadcast::Sender<Arc<Change>>,
}

/// Where a subscriber starts.
#[derive(Debug)]
pub enum Catchup {
    /// These changes (possibly none) bring the subscriber from its version to the present.
    Changes(Vec<Arc<Change>>),
    /// The subscriber's version is older than the ring (or unknown): it needs a full snapshot.
    Snapshot,
}

impl EventFeed {
    pub fn new(version: u64) -> Self {
        Self {
            recent: Mutex::new(Recent { version, changes: VecDeque::new() }),
            live: broadcast::channel(limits::WATCH_BUFFERED_CHANGES_MAX).0,
        }
    }

    /// Never blocks on subscribers.
    pub fn publish(&self, change: Change) {
        let change = Arc::new(change);
        let mut recent = self.recent.lock().expect("feed lock");
        if change.version <= recent.version {
            // Already published (a rebuilt actor replays nothing, but be safe).
            return;
        }
        recent.version = change.version;
        if recent.changes.len() == limits::WATCH_RETAINED_CHANGES_MAX {
            recent.changes.pop_front();
        }
        recent.changes.push_back(change.clone());
        // No receiver is fine: nobody watches.
        let _ = self.live.send(change);
    }

    /// Subscribes to changes after `after_version`. The catch-up and the live receiver meet
    /// without a gap: both are taken under the lock that `publish` holds.
    pub fn subscribe(&self, after_version: u64) -> (Catchup, broadcast::Receiver<Arc<Change>>) {
        let recent = self.recent.lock().expect("feed lock");
        let receiver = self.live.subscribe();
        let catchup = if after_version == 0 || after_version > recent.version {
            Catchup::Snapshot
        } else if after_version == recent.version {
            Catchup::Changes(Vec::new())
        } else {
            match recent.changes.front() {
                Some(oldest) if oldest.version <= after_version + 1 => Catchup::Changes(
                    recent.changes.iter().filter(|change| change.version > after_version).cloned().collect(),
                ),
                _ => Catchup::Snapshot,
            }
        };
        (catchup, receiver)
    }
}

/// Why a watcher is sent a full snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotReason {
    /// The watcher asked for no version: it starts here.
    Initial,
    /// The version it resumes from is older than the changes the node keeps, or unknown.
    TooFarBehind,
    /// It read too slowly and missed changes.
    Lagged,
    /// A change touched the whole event (cancellation).
    WholeEvent,
}

/// One change with names instead of indexes, as a watcher receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeView {
    pub version: u64,
    /// Of the prices in `availability`.
    pub currency: String,
    pub status: EventStatus,
    pub seats: Vec<(String, SeatStatus)>,
    pub availability: Vec<AvailabilityView>,
}

#[derive(Clone, Debug)]
pub enum WatchItem {
    Snapshot { overview: EventOverview, reason: SnapshotReason },
    Change(ChangeView),
}

/// What a watch reads besides the feed: the seat map and every seat's status, for snapshots.
/// The engine implements it; this module does not name the engine.
pub trait WatchSource: Send + Sync + 'static {
    /// Every seat's status, read through the event's actor.
    fn seat_overview<'a>(
        &'a self,
        event_id: &'a EventId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<EventOverview>> + Send + 'a>>;
    /// The event's seat map (to name seats) and its latest read snapshot.
    fn seat_names(&self, event_id: &EventId) -> Result<(Arc<SeatMap>, Arc<EventSnapshot>)>;
}

/// A subscription to one event's changes: yields a snapshot or the missed changes first, then
/// every change in version order, with no gap and no repeat.
pub struct EventWatch {
    engine: Arc<dyn WatchSource>,
    event_id: EventId,
    pending: VecDeque<Arc<Change>>,
    receiver: broadcast::Receiver<Arc<Change>>,
    /// The last version the watcher was given.
    version: u64,
    snapshot_due: Option<SnapshotReason>,
}

impl EventWatch {
    pub(crate) fn new(
        engine: Arc<dyn WatchSource>,
        event_id: EventId,
        after_version: u64,
        catchup: Catchup,
        receiver: broadcast::Receiver<Arc<Change>>,
    ) -> Self {
        let (pending, snapshot_due) = match catchup {
            Catchup::Changes(changes) => (changes.into(), None),
            Catchup::Snapshot if after_version == 0 => (VecDeque::new(), Some(SnapshotReason::Initial)),
            Catchup::Snapshot => (VecDeque::new(), Some(SnapshotReason::TooFarBehind)),
        };
        Self { engine, event_id, pending, receiver, version: after_version, snapshot_due }
    }

    /// The next thing the watcher must see. Waits for the event to change.
    pub async fn next(&mut self) -> Result<WatchItem> {
        loop {
            if let Some(reason) = self.snapshot_due.take() {
                let overview = self.engine.seat_overview(&self.event_id).await?;
                self.version = overview.version;
                return Ok(WatchItem::Snapshot { overview, reason });
            }
            let change = match self.pending.pop_front() {
                Some(change) => change,
                None => match self.receiver.recv().await {
                    Ok(change) => change,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.snapshot_due = Some(SnapshotReason::Lagged);
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(Error::Unavailable { reason: format!("event '{}' stopped", self.event_id) })
                    }
                },
            };
            if change.version <= self.version {
                continue;
            }
            if change.version > self.version + 1 {
                // Cannot happen while the feed publishes in order; a snapshot repairs it anyway.
                self.snapshot_due = Some(SnapshotReason::Lagged);
                continue;
            }
            if change.whole_event {
                self.snapshot_due = Some(SnapshotReason::WholeEvent);
                continue;
            }
            self.version = change.version;
            return Ok(WatchItem::Change(self.name(&change)?));
        }
    }

    fn name(&self, change: &Change) -> Result<ChangeView> {
        let (seat_map, snapshot) = self.engine.seat_names(&self.event_id)?;
        let availability = change
            .sections
            .iter()
            .filter_map(|&(section, held, booked)| {
                let row: &SectionRow = snapshot.sections.get(section as usize)?;
                Some(AvailabilityView {
                    section_id: row.section_id.clone(),
                    price_level_id: row.price_level_id.clone(),
                    amount_minor: snapshot.prices.get(section as usize).copied().unwrap_or(row.amount_minor),
                    general_admission: row.general_admission,
                    total: row.total,
                    available: row.total.saturating_sub(held + booked),
                    held,
                    booked,
                })
            })
            .collect();
        Ok(ChangeView {
            version: change.version,
            currency: snapshot.terms.currency.clone(),
            status: change.status.clone(),
            seats: change.seats.iter().map(|&(seat, status)| (seat_map.seat_id(seat), status)).collect(),
            availability,
        })
    }
}
