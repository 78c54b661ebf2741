//! The engine facade: what the gateway calls. It owns the catalog, routes each request to the
//! actor of the event it concerns (spawning the actor on first use, from the catalog), bounds each
//! actor's mailbox, and keeps the per-buyer booking directory that `ListBookings` reads.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ractor::{Actor, ActorRef, RpcReplyPort};
use tokio::sync::{OnceCell, Semaphore};

use crate::actor::{Answer, EventActor, EventArguments, EventMsg, EventOverview, Query};
use crate::catalog::{
    Catalog, EventInfo, EventSpec, EventUpdate, Performer, PerformerSpec, Venue, VenueSpec,
};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::ids::{BookingId, BuyerId, EventId, HoldId};
use crate::inventory::{BookingView, Caller, EventStatus, HoldView, Inventory, Request, Selection};
use crate::limits;

/// Position in a buyer's booking list, newest first: `(booked at, booking id)`.
pub type BookingCursor = (u64, BookingId);

/// Every buyer's bookings across events, newest first. Written by event actors before they
/// acknowledge a booking or a cancellation, so a buyer always finds what they were told about.
#[derive(Default)]
pub struct BookingDirectory {
    by_buyer: DashMap<BuyerId, BTreeMap<(Reverse<u64>, BookingId), BookingView>>,
}

impl BookingDirectory {
    pub fn publish(&self, booking: BookingView) {
        let key = (Reverse(booking.booked_at_ms), booking.booking_id.clone());
        self.by_buyer
            .entry(booking.buyer.clone())
            .or_default()
            .insert(key, booking);
    }

    /// One page of a buyer's bookings after `cursor`, and the cursor of the next page if any.
    pub fn list(
        &self,
        buyer: &BuyerId,
        cursor: Option<&BookingCursor>,
        page_size: usize,
    ) -> (Vec<BookingView>, Option<BookingCursor>) {
        let Some(bookings) = self.by_buyer.get(buyer) else {
            return (Vec::new(), None);
        };
        let mut page: Vec<BookingView> = match cursor {
            Some((booked_at_ms, booking_id)) => {
                let after = (Reverse(*booked_at_ms), booking_id.clone());
                bookings
                    .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .take(page_size + 1)
                    .map(|(_, booking)| booking.clone())
                    .collect()
            }
            None => bookings.values().take(page_size + 1).cloned().collect(),
        };
        let next = if page.len() > page_size {
            page.truncate(page_size);
            page.last()
                .map(|last| (last.booked_at_ms, last.booking_id.clone()))
        } else {
            None
        };
        (page, next)
    }
}

#[derive(Clone)]
struct EventHandle {
    actor: ActorRef<EventMsg>,
    /// One permit per request waiting in the actor's mailbox: the mailbox bound.
    mailbox: Arc<Semaphore>,
}

/// An event with everything a view shows.
#[derive(Clone, Debug)]
pub struct EventDetails {
    pub info: Arc<EventInfo>,
    pub venue: Arc<Venue>,
    pub performers: Vec<Arc<Performer>>,
    pub overview: EventOverview,
}

struct EngineInner {
    catalog: Catalog,
    directory: Arc<BookingDirectory>,
    actors: DashMap<EventId, Arc<OnceCell<EventHandle>>>,
    clock: Clock,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        for entry in self.actors.iter() {
            if let Some(handle) = entry.value().get() {
                handle.actor.stop(None);
            }
        }
    }
}

/// Cheap to clone; clones share one engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(EngineInner {
                catalog: Catalog::default(),
                directory: Arc::new(BookingDirectory::default()),
                actors: DashMap::new(),
                clock: Clock::start(),
            }),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    pub fn create_venue(&self, spec: VenueSpec) -> Result<Arc<Venue>> {
        self.inner.catalog.create_venue(spec, rand::random())
    }

    pub fn create_performer(&self, spec: PerformerSpec) -> Result<Arc<Performer>> {
        self.inner.catalog.create_performer(spec, rand::random())
    }

    pub fn create_event(&self, spec: EventSpec) -> Result<Arc<EventInfo>> {
        self.inner
            .catalog
            .create_event(spec, rand::random(), self.now_ms())
    }

    pub async fn update_event(
        &self,
        event_id: &EventId,
        update: EventUpdate,
    ) -> Result<EventDetails> {
        self.inner.catalog.validate_update(event_id, &update)?;
        let request = Request::UpdateTerms {
            hold_ttl_ms: update.hold_ttl_ms,
            buyer_seat_limit: update.buyer_seat_limit,
        };
        let Answer::Overview(overview) = self.execute(event_id, request).await? else {
            unreachable!("an update answers with the overview")
        };
        self.inner.catalog.edit_event(event_id, |event| {
            if let Some(name) = update.name {
                event.name = name;
            }
            if let Some(description) = update.description {
                event.description = description;
            }
            if let Some(category) = update.category {
                event.category = category;
            }
            if let Some(starts_at_ms) = update.starts_at_ms {
                event.starts_at_ms = starts_at_ms;
            }
            if let Some(ends_at_ms) = update.ends_at_ms {
                event.ends_at_ms = ends_at_ms;
            }
            event.terms = overview.terms.clone();
        })?;
        self.event_details(event_id, false).await
    }

    /// Takes the event off sale; returns it with the number of holds released and bookings
    /// cancelled.
    pub async fn cancel_event(&self, event_id: &EventId) -> Result<(EventDetails, u32, u32)> {
        let Answer::EventCancelled {
            holds_released,
            bookings_cancelled,
        } = self.execute(event_id, Request::CancelEvent).await?
        else {
            unreachable!("a cancellation answers with its counts")
        };
        self.inner
            .catalog
            .edit_event(event_id, |event| event.status = EventStatus::Cancelled)?;
        Ok((
            self.event_details(event_id, false).await?,
            holds_released,
            bookings_cancelled,
        ))
    }

    pub async fn event_details(
        &self,
        event_id: &EventId,
        include_seats: bool,
    ) -> Result<EventDetails> {
        let info = self.inner.catalog.event(event_id)?;
        let venue = self.inner.catalog.venue(&info.venue_id)?;
        let performers = info
            .performer_ids
            .iter()
            .map(|performer_id| self.inner.catalog.performer(performer_id))
            .collect::<Result<Vec<_>>>()?;
        let Answer::Overview(overview) = self
            .read(event_id, Query::Overview { include_seats })
            .await?
        else {
            unreachable!("an overview query answers with the overview")
        };
        Ok(EventDetails {
            info,
            venue,
            performers,
            overview,
        })
    }

    pub async fn place_hold(
        &self,
        caller: Caller,
        event_id: &EventId,
        selection: Selection,
        idempotency_key: Option<String>,
    ) -> Result<HoldView> {
        let request = Request::PlaceHold {
            caller,
            selection,
            idempotency_key,
        };
        expect_hold(self.execute(event_id, request).await?)
    }

    pub async fn get_hold(&self, caller: Caller, hold_id: &HoldId) -> Result<HoldView> {
        let event_id = hold_event(hold_id)?;
        expect_hold(
            self.read_owned(
                &event_id,
                Query::Hold {
                    hold_id: hold_id.clone(),
                    caller,
                },
                "hold",
                hold_id.as_str(),
            )
            .await?,
        )
    }

    pub async fn release_hold(&self, caller: Caller, hold_id: &HoldId) -> Result<HoldView> {
        let event_id = hold_event(hold_id)?;
        let request = Request::ReleaseHold {
            caller,
            hold_id: hold_id.clone(),
        };
        expect_hold(
            self.execute_owned(&event_id, request, "hold", hold_id.as_str())
                .await?,
        )
    }

    pub async fn confirm_hold(
        &self,
        caller: Caller,
        hold_id: &HoldId,
        payment_reference: String,
        idempotency_key: Option<String>,
    ) -> Result<BookingView> {
        let event_id = hold_event(hold_id)?;
        let request = Request::ConfirmHold {
            caller,
            hold_id: hold_id.clone(),
            payment_reference,
            idempotency_key,
        };
        expect_booking(
            self.execute_owned(&event_id, request, "hold", hold_id.as_str())
                .await?,
        )
    }

    pub async fn get_booking(&self, caller: Caller, booking_id: &BookingId) -> Result<BookingView> {
        let event_id = booking_event(booking_id)?;
        let query = Query::Booking {
            booking_id: booking_id.clone(),
            caller,
        };
        expect_booking(
            self.read_owned(&event_id, query, "booking", booking_id.as_str())
                .await?,
        )
    }

    pub async fn cancel_booking(
        &self,
        caller: Caller,
        booking_id: &BookingId,
    ) -> Result<BookingView> {
        let event_id = booking_event(booking_id)?;
        let request = Request::CancelBooking {
            caller,
            booking_id: booking_id.clone(),
        };
        expect_booking(
            self.execute_owned(&event_id, request, "booking", booking_id.as_str())
                .await?,
        )
    }

    pub fn list_bookings(
        &self,
        buyer: &BuyerId,
        cursor: Option<&BookingCursor>,
        page_size: usize,
    ) -> (Vec<BookingView>, Option<BookingCursor>) {
        self.inner.directory.list(buyer, cursor, page_size)
    }

    // -------------------------------------------------------------------------------------------
    // Routing to event actors
    // -------------------------------------------------------------------------------------------

    async fn handle(&self, event_id: &EventId) -> Result<EventHandle> {
        let info = self.inner.catalog.event(event_id)?;
        let cell = self
            .inner
            .actors
            .entry(event_id.clone())
            .or_default()
            .clone();
        let handle = cell
            .get_or_try_init(|| async {
                let venue = self.inner.catalog.venue(&info.venue_id)?;
                let mut inventory =
                    Inventory::new(event_id.clone(), venue.seat_map.clone(), info.terms.clone())?;
                if info.status == EventStatus::Cancelled {
                    inventory.apply(&crate::inventory::Command::CancelEvent {
                        now_ms: self.now_ms(),
                    });
                }
                let arguments = EventArguments {
                    inventory,
                    clock: self.inner.clock,
                    directory: self.inner.directory.clone(),
                };
                let (actor, _join) =
                    Actor::spawn(None, EventActor, arguments)
                        .await
                        .map_err(|error| Error::Unavailable {
                            reason: format!("event actor failed to start: {error}"),
                        })?;
                Ok::<_, Error>(EventHandle {
                    actor,
                    mailbox: Arc::new(Semaphore::new(limits::MAILBOX_DEPTH_MAX)),
                })
            })
            .await?;
        Ok(handle.clone())
    }

    async fn call(
        &self,
        event_id: &EventId,
        message: impl FnOnce(
            tokio::sync::OwnedSemaphorePermit,
            RpcReplyPort<Result<Answer>>,
        ) -> EventMsg,
    ) -> Result<Answer> {
        let handle = self.handle(event_id).await?;
        let permit =
            handle
                .mailbox
                .clone()
                .try_acquire_owned()
                .map_err(|_| Error::LimitExceeded {
                    limit: "mailbox_depth",
                    reason: format!(
                        "event '{event_id}' has {} requests waiting; retry shortly",
                        limits::MAILBOX_DEPTH_MAX
                    ),
                })?;
        let timeout = Some(Duration::from_millis(limits::ACTOR_CALL_TIMEOUT_MS));
        match handle
            .actor
            .call(|reply| message(permit, reply), timeout)
            .await
        {
            Ok(ractor::rpc::CallResult::Success(answer)) => answer,
            Ok(ractor::rpc::CallResult::Timeout) => Err(Error::Unavailable {
                reason: format!("event '{event_id}' did not answer in time"),
            }),
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => Err(Error::Unavailable {
                reason: format!("event '{event_id}' is not running"),
            }),
        }
    }

    async fn execute(&self, event_id: &EventId, request: Request) -> Result<Answer> {
        self.call(event_id, |permit, reply| EventMsg::Execute {
            request,
            permit,
            reply,
        })
        .await
    }

    async fn read(&self, event_id: &EventId, query: Query) -> Result<Answer> {
        self.call(event_id, |permit, reply| EventMsg::Read {
            query,
            permit,
            reply,
        })
        .await
    }

    /// For requests that name a hold or booking: an unknown event means an unknown hold or
    /// booking, not an unknown event the caller never mentioned.
    async fn execute_owned(
        &self,
        event_id: &EventId,
        request: Request,
        kind: &'static str,
        id: &str,
    ) -> Result<Answer> {
        self.execute(event_id, request)
            .await
            .map_err(|error| rename_missing_event(error, kind, id))
    }

    async fn read_owned(
        &self,
        event_id: &EventId,
        query: Query,
        kind: &'static str,
        id: &str,
    ) -> Result<Answer> {
        self.read(event_id, query)
            .await
            .map_err(|error| rename_missing_event(error, kind, id))
    }
}

fn rename_missing_event(error: Error, kind: &'static str, id: &str) -> Error {
    match error {
        Error::NotFound { kind: "event", .. } => Error::not_found(kind, id),
        other => other,
    }
}

fn hold_event(hold_id: &HoldId) -> Result<EventId> {
    hold_id
        .event_id()
        .ok_or_else(|| Error::not_found("hold", hold_id.as_str()))
}

fn booking_event(booking_id: &BookingId) -> Result<EventId> {
    booking_id
        .event_id()
        .ok_or_else(|| Error::not_found("booking", booking_id.as_str()))
}

fn expect_hold(answer: Answer) -> Result<HoldView> {
    match answer {
        Answer::Hold(hold) => Ok(hold),
        other => unreachable!("expected a hold, got {other:?}"),
    }
}

fn expect_booking(answer: Answer) -> Result<BookingView> {
    match answer {
        Answer::Booking(booking) => Ok(booking),
        other => unreachable!("expected a booking, got {other:?}"),
    }
}
