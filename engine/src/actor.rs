//! The actor that owns one event's inventory.
//!
//! Every change to the event passes through this actor's mailbox, one at a time: there are no
//! locks on seats anywhere. The actor decides a request against the inventory, applies the
//! resulting command, publishes what readers outside need (the buyer's booking directory) and only
//! then replies. Expiry runs on one timer per actor, armed for the earliest hold deadline.
//!
//! Business rejections travel inside the reply. A handler `Err` would mean the state can no longer
//! be trusted; nothing here returns one, and a broken invariant panics inside `apply`.

use std::sync::Arc;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::engine::BookingDirectory;
use crate::error::Result;
use crate::ids::{BookingId, HoldId};
use crate::inventory::{
    AvailabilityView, BookingView, Caller, Command, Decision, EventStatus, HoldView, Inventory,
    Outcome, Request, SeatStatus, Terms,
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

/// What the actor replies.
#[derive(Clone, Debug)]
pub enum Answer {
    Hold(HoldView),
    Booking(BookingView),
    Overview(EventOverview),
    EventCancelled {
        holds_released: u32,
        bookings_cancelled: u32,
    },
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
}

pub struct EventArguments {
    pub inventory: Inventory,
    pub clock: Clock,
    pub directory: Arc<BookingDirectory>,
}

pub struct EventActor;

pub struct EventState {
    inventory: Inventory,
    clock: Clock,
    directory: Arc<BookingDirectory>,
    /// The armed wake-up: its deadline (Unix ms) and the task that will send `ExpireDue`.
    timer: Option<(u64, JoinHandle<Result<(), MessagingErr<EventMsg>>>)>,
}

impl EventState {
    fn execute(&mut self, request: &Request) -> Result<Answer> {
        let now_ms = self.clock.now_ms();
        let outcome = match self.inventory.decide(request, now_ms, rand::random())? {
            Decision::Apply(command) => self.commit(&command),
            Decision::Answered(outcome) => outcome,
        };
        let caller = match request {
            Request::PlaceHold { caller, .. }
            | Request::ConfirmHold { caller, .. }
            | Request::ReleaseHold { caller, .. }
            | Request::CancelBooking { caller, .. } => Some(caller),
            Request::UpdateTerms { .. } | Request::CancelEvent => None,
        };
        self.answer(outcome, caller)
    }

    /// Applies a decided command and publishes its effects. The durable log slots in here: the
    /// command is written before anything is published or answered.
    fn commit(&mut self, command: &Command) -> Outcome {
        let outcome = self.inventory.apply(command);
        let changed_bookings: &[BookingId] = match &outcome {
            Outcome::Booking(booking_id) => std::slice::from_ref(booking_id),
            Outcome::EventCancelled {
                bookings_cancelled, ..
            } => bookings_cancelled,
            Outcome::Hold(_) | Outcome::HoldsExpired { .. } | Outcome::TermsUpdated => &[],
        };
        for booking_id in changed_bookings {
            let view = self
                .inventory
                .booking_view(booking_id, None)
                .expect("booking just changed");
            self.directory.publish(view);
        }
        outcome
    }

    fn answer(&self, outcome: Outcome, caller: Option<&Caller>) -> Result<Answer> {
        Ok(match outcome {
            Outcome::Hold(hold_id) => Answer::Hold(self.inventory.hold_view(&hold_id, caller)?),
            Outcome::Booking(booking_id) => {
                Answer::Booking(self.inventory.booking_view(&booking_id, caller)?)
            }
            Outcome::EventCancelled {
                holds_released,
                bookings_cancelled,
            } => Answer::EventCancelled {
                holds_released,
                bookings_cancelled: bookings_cancelled.len() as u32,
            },
            Outcome::HoldsExpired { .. } | Outcome::TermsUpdated => {
                Answer::Overview(self.overview(false))
            }
        })
    }

    fn read(&self, query: &Query) -> Result<Answer> {
        Ok(match query {
            Query::Hold { hold_id, caller } => {
                Answer::Hold(self.inventory.hold_view(hold_id, Some(caller))?)
            }
            Query::Booking { booking_id, caller } => {
                Answer::Booking(self.inventory.booking_view(booking_id, Some(caller))?)
            }
            Query::Overview { include_seats } => Answer::Overview(self.overview(*include_seats)),
        })
    }

    fn overview(&self, include_seats: bool) -> EventOverview {
        let seats = include_seats.then(|| {
            let seat_map = self.inventory.seat_map();
            self.inventory
                .seat_statuses()
                .iter()
                .enumerate()
                .map(|(seat, status)| (seat_map.seat_id(seat as u32), *status))
                .collect()
        });
        EventOverview {
            version: self.inventory.version(),
            status: self.inventory.status().clone(),
            terms: self.inventory.terms().clone(),
            availability: self.inventory.availability(),
            seats,
        }
    }

    fn expire_due(&mut self) {
        let now_ms = self.clock.now_ms();
        if self
            .timer
            .as_ref()
            .is_some_and(|(deadline, _)| *deadline <= now_ms)
        {
            self.timer = None;
        }
        if let Some(command) = self.inventory.expiry_due(now_ms) {
            if let Outcome::HoldsExpired { hold_ids } = self.commit(&command) {
                tracing::debug!(event_id = %self.inventory.event_id(), expired = hold_ids.len(), "holds expired");
            }
        }
    }

    /// Keeps exactly one wake-up armed, for the earliest deadline.
    fn rearm(&mut self, myself: &ActorRef<EventMsg>) {
        let next_deadline = self.inventory.next_deadline_ms();
        if self.timer.as_ref().map(|(deadline, _)| *deadline) == next_deadline {
            return;
        }
        if let Some((_, handle)) = self.timer.take() {
            handle.abort();
        }
        if let Some(deadline) = next_deadline {
            let delay = self
                .clock
                .instant_at(deadline)
                .saturating_duration_since(Instant::now());
            let handle = myself.send_after(delay, || EventMsg::ExpireDue);
            self.timer = Some((deadline, handle));
        }
    }
}

impl Actor for EventActor {
    type Msg = EventMsg;
    type State = EventState;
    type Arguments = EventArguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        arguments: Self::Arguments,
    ) -> std::result::Result<Self::State, ActorProcessingErr> {
        let mut state = EventState {
            inventory: arguments.inventory,
            clock: arguments.clock,
            directory: arguments.directory,
            timer: None,
        };
        state.rearm(&myself);
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        if let Some((_, handle)) = state.timer.take() {
            handle.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match message {
            EventMsg::Execute {
                request,
                permit,
                reply,
            } => {
                let answer = state.execute(&request);
                drop(permit);
                // A caller that gave up waiting is not an error of this actor.
                let _ = reply.send(answer);
                state.rearm(&myself);
            }
            EventMsg::Read {
                query,
                permit,
                reply,
            } => {
                let answer = state.read(&query);
                drop(permit);
                let _ = reply.send(answer);
            }
            EventMsg::ExpireDue => {
                state.expire_due();
                state.rearm(&myself);
            }
        }
        Ok(())
    }
}
