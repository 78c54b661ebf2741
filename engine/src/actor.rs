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

use arc_swap::ArcSwap;
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use tokio::time::Instant;
use turnstile_storage::{RecordKind, StoreError, Write};

use crate::clock::Clock;
use crate::directory::BookingDirectory;
use crate::error::Result;
use crate::feed::{Change, EventFeed};
use crate::ids::BookingId;
use crate::inventory::{BookingView, Caller, Command, Decision, Inventory, Outcome, Request};
use crate::journal::Journal;
pub use crate::messages::{Answer, EventMsg, EventOverview, EventSnapshot, Query};

pub struct EventArguments {
    pub inventory: Inventory,
    pub clock: Clock,
    pub directory: Arc<BookingDirectory>,
    /// Where changes are made durable; `None` runs in memory only.
    pub store: Option<Arc<dyn Journal>>,
    /// Commands between automatic checkpoints.
    pub checkpoint_commands: u64,
    /// Age past which the periodic sweep checkpoints an event that changed.
    pub checkpoint_max_age: std::time::Duration,
    /// Live holds over all events of the node; each actor adds its own changes.
    pub live_holds: Arc<std::sync::atomic::AtomicI64>,
    /// Where the actor publishes its read snapshot.
    pub snapshot: Arc<ArcSwap<EventSnapshot>>,
    /// Where the actor publishes each change once it is durable, for watchers.
    pub feed: Arc<EventFeed>,
}

pub struct EventActor;

pub struct EventState {
    inventory: Inventory,
    clock: Clock,
    directory: Arc<BookingDirectory>,
    store: Option<Arc<dyn Journal>>,
    /// The event id as the log's stream name.
    stream: String,
    commands_since_checkpoint: u64,
    /// Bytes of this event's log entries (what recovery replays) since its last checkpoint.
    log_bytes_since_checkpoint: u64,
    /// Size of this event's last checkpoint, set by the thread that encodes it. A checkpoint by
    /// count also waits until the log since the last one is [`CHECKPOINT_BYTES_PER_LOG_BYTE`]
    /// times smaller than it (see there).
    last_checkpoint_bytes: Arc<std::sync::atomic::AtomicU64>,
    checkpoint_commands: u64,
    checkpoint_max_age: std::time::Duration,
    /// When this actor last stored a checkpoint (`None`: not since it was loaded).
    last_checkpoint: Option<Instant>,
    live_holds: Arc<std::sync::atomic::AtomicI64>,
    /// Set by the store's callback as soon as a write of this event fails, before the failure is
    /// answered: from then on the actor serves nothing and stops.
    poisoned: Arc<std::sync::atomic::AtomicBool>,
    snapshot: Arc<ArcSwap<EventSnapshot>>,
    feed: Arc<EventFeed>,
    /// This event's live holds as last added to `live_holds`.
    live_holds_counted: i64,
    /// The armed wake-up: its deadline (Unix ms) and the task that will send `ExpireDue`.
    timer: Option<(u64, JoinHandle<Result<(), MessagingErr<EventMsg>>>)>,
}

/// A checkpoint by count waits until the event's log since its last checkpoint has at least
/// 1/`CHECKPOINT_BYTES_PER_LOG_BYTE` of that checkpoint's bytes. An event's state grows with its
/// bookings and retained holds (a hot event's reaches tens of megabytes) while a command is a
/// few dozen bytes, so without this a hot event would rewrite its whole state every
/// `checkpoint_commands` commands. With it, checkpoints write at most this many bytes per byte
/// of log, and recovery replays at most an eighth of a state's worth of log after loading the
/// state: replaying a byte of log costs several times loading a byte of checkpoint (measured in
/// docs/DURABILITY.md), so the replay takes about as long again as loading the checkpoint.
pub const CHECKPOINT_BYTES_PER_LOG_BYTE: u64 = 8;

/// Snapshots waiting for the checkpoint thread before an actor serializes its own inline.
const CHECKPOINTS_QUEUED_MAX: usize = 64;

type SerializeJob = Box<dyn FnOnce() + Send>;

/// Runs a checkpoint's serialization on the process's one checkpoint thread, so an event's actor
/// does not stop its commands for it and at most one state is being encoded at a time (a
/// snapshot waiting shares its maps with the live inventory; encoding makes a copy). When that
/// thread is behind by `CHECKPOINTS_QUEUED_MAX`, the caller does it itself.
fn serialize_off_thread(job: SerializeJob) {
    static QUEUE: std::sync::OnceLock<Option<std::sync::mpsc::SyncSender<SerializeJob>>> = std::sync::OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<SerializeJob>(CHECKPOINTS_QUEUED_MAX);
        let spawned = std::thread::Builder::new().name("turnstile-checkpoint".into()).spawn(move || {
            for job in receiver {
                job();
            }
        });
        match spawned {
            Ok(_) => Some(sender),
            Err(error) => {
                tracing::warn!(%error, "no checkpoint thread; actors serialize their own checkpoints");
                None
            }
        }
    });
    let job = match queue {
        Some(sender) => match sender.try_send(job) {
            Ok(()) => return,
            Err(std::sync::mpsc::TrySendError::Full(job) | std::sync::mpsc::TrySendError::Disconnected(job)) => job,
        },
        None => job,
    };
    job();
}

/// Counts applied changes by kind, for the metrics endpoint.
fn count_change(command: &Command, outcome: &Outcome) {
    let (name, count) = match (command, outcome) {
        (Command::PlaceHold { .. }, _) => ("turnstile_holds_placed_total", 1),
        (Command::ConfirmHold { .. }, _) => ("turnstile_holds_confirmed_total", 1),
        (Command::ConfirmExpiredHold { .. }, _) => ("turnstile_holds_confirmed_late_total", 1),
        (Command::RedeemTicket { .. }, _) => ("turnstile_tickets_redeemed_total", 1),
        (Command::OfferFromWaitlist { .. }, _) => ("turnstile_waitlist_offers_total", 1),
        (Command::ExtendHold { payment: false, .. }, _) => ("turnstile_holds_extended_total", 1),
        (Command::ExtendHold { payment: true, .. }, _) => ("turnstile_payments_started_total", 1),
        (Command::ReleaseHold { .. }, _) => ("turnstile_holds_released_total", 1),
        (Command::ExpireHolds { .. }, Outcome::HoldsExpired { hold_ids }) => {
            ("turnstile_holds_expired_total", hold_ids.len() as u64)
        }
        (Command::CancelBooking { .. }, _) => ("turnstile_bookings_cancelled_total", 1),
        (Command::CancelEvent { .. }, _) => ("turnstile_events_cancelled_total", 1),
        _ => return,
    };
    metrics::counter!(name).increment(count);
}

/// Commands after which places may be back on sale for the waitlist.
fn returns_places(command: &Command) -> bool {
    matches!(command, Command::ReleaseHold { .. } | Command::CancelBooking { .. })
}

/// A short label for a rejection; seat conflicts are the ones operators watch.
fn rejection_reason(error: &crate::Error) -> &'static str {
    use crate::Error;
    match error {
        Error::SeatsTaken { .. } | Error::NotEnoughSeats { .. } => "seat_conflict",
        Error::HoldNotActive { .. } | Error::HoldAlreadyConfirmed { .. } => "hold_not_active",
        Error::EventCancelled { .. } => "event_cancelled",
        Error::LimitExceeded { .. } => "limit",
        Error::PermissionDenied { .. } => "permission",
        Error::InvalidArgument { .. } => "invalid",
        Error::KeyReused { .. } => "key_reused",
        Error::NotFound { .. } => "not_found",
        Error::Queue { .. } => "waiting_room",
        Error::TicketRejected { .. } => "ticket",
        Error::Waitlist { .. } => "waitlist",
        Error::AlreadyExists { .. } | Error::Unavailable { .. } => "other",
    }
}

type Reply = RpcReplyPort<Result<Answer>>;

impl EventState {
    fn execute(&mut self, myself: &ActorRef<EventMsg>, request: &Request, reply: Reply) {
        let now_ms = self.clock.now_ms();
        let caller = match request {
            Request::PlaceHold { caller, .. }
            | Request::ConfirmHold { caller, .. }
            | Request::ReleaseHold { caller, .. }
            | Request::CancelBooking { caller, .. }
            | Request::ExtendHold { caller, .. }
            | Request::StartPayment { caller, .. }
            | Request::JoinWaitlist { caller, .. }
            | Request::LeaveWaitlist { caller } => Some(caller),
            Request::UpdateTerms { .. }
            | Request::CancelEvent
            | Request::RedeemTicket { .. }
            | Request::SetPricing { .. } => None,
        };
        match self.inventory.decide(request, now_ms, rand::random()) {
            // A rejection acknowledges nothing: it may go at once.
            Err(error) => {
                metrics::counter!("turnstile_rejections_total", "reason" => rejection_reason(&error)).increment(1);
                drop(reply.send(Err(error)))
            }
            Ok(Decision::Answered(outcome)) => {
                // A retry's first answer may still be on its way to disk: answer behind it.
                let answer = self.answer(outcome, caller);
                self.persist(myself, Vec::new(), Vec::new(), None, Some((reply, answer)));
            }
            Ok(Decision::Apply(command)) => {
                let (outcome, writes, bookings, change) = self.commit(&command);
                let answer = self.answer(outcome, caller);
                self.persist(myself, writes, bookings, Some(change), Some((reply, answer)));
                if returns_places(&command) {
                    self.offer_to_waitlist(myself);
                }
            }
        }
    }

    /// Applies a decided command; returns its outcome, the writes that make it durable, the
    /// bookings it changed and the change for watchers.
    fn commit(&mut self, command: &Command) -> (Outcome, Vec<Write>, Vec<BookingView>, Change) {
        let outcome = self.inventory.apply(command);
        let change = Change::of(&self.inventory, command, &outcome);
        count_change(command, &outcome);
        self.publish_snapshot(command);
        self.commands_since_checkpoint += 1;
        let payload = postcard::to_stdvec(command).expect("commands serialize");
        self.log_bytes_since_checkpoint += payload.len() as u64;
        let mut writes = vec![Write::Append { payload }];
        let changed: &[BookingId] = match &outcome {
            Outcome::Booking(booking_id) => std::slice::from_ref(booking_id),
            Outcome::EventCancelled { bookings_cancelled, .. } => bookings_cancelled,
            Outcome::Hold(_) | Outcome::HoldsExpired { .. } | Outcome::TermsUpdated | Outcome::Waitlist { .. } => &[],
        };
        let mut bookings = Vec::with_capacity(changed.len());
        for booking_id in changed {
            let view = self.inventory.booking_view(booking_id, None).expect("booking just changed");
            writes.push(Write::Put {
                kind: RecordKind::Booking,
                key: booking_id.to_string(),
                value: postcard::to_stdvec(&view).expect("bookings serialize"),
            });
            if matches!(command, Command::ConfirmHold { .. } | Command::ConfirmExpiredHold { .. }) {
                writes.push(Write::IndexBooking {
                    buyer: view.buyer.to_string(),
                    booked_at_ms: view.booked_at_ms,
                    booking_id: booking_id.to_string(),
                });
            }
            bookings.push(view);
        }
        (outcome, writes, bookings, change)
    }

    /// Makes writes durable, then publishes the change to watchers and sends the reply. Without a
    /// store, does it all at once. If the writes fail, the reply is an error and the actor is
    /// stopped.
    fn persist(
        &mut self,
        myself: &ActorRef<EventMsg>,
        writes: Vec<Write>,
        bookings: Vec<BookingView>,
        change: Option<Change>,
        reply: Option<(Reply, Result<Answer>)>,
    ) {
        let Some(store) = &self.store else {
            for booking in bookings {
                self.directory.publish(booking);
            }
            if let Some(change) = change {
                self.feed.publish(change);
            }
            if let Some((port, answer)) = reply {
                let _ = port.send(answer);
            }
            return;
        };
        let poison_target = myself.clone();
        let poisoned = self.poisoned.clone();
        let event_id = self.inventory.event_id().clone();
        let feed = self.feed.clone();
        store.submit(
            &self.stream,
            writes,
            Box::new(move |result| match result {
                Ok(_) => {
                    if let Some(change) = change {
                        feed.publish(change);
                    }
                    if let Some((port, answer)) = reply {
                        let _ = port.send(answer);
                    }
                }
                Err(error) => {
                    poisoned.store(true, std::sync::atomic::Ordering::SeqCst);
                    tracing::error!(%event_id, %error, "a change of this event was not stored; rebuilding it");
                    if let Some((port, _)) = reply {
                        let reason = format!("the change was not stored ({error}); it did not happen");
                        let _ = port.send(Err(crate::Error::Unavailable { reason }));
                    }
                    let _ = poison_target.cast(EventMsg::Poisoned);
                }
            }),
        );
        if self.commands_since_checkpoint >= self.checkpoint_commands
            && self.log_bytes_since_checkpoint * CHECKPOINT_BYTES_PER_LOG_BYTE
                >= self.last_checkpoint_bytes.load(std::sync::atomic::Ordering::Relaxed)
        {
            self.checkpoint(myself);
        }
    }

    /// The periodic sweep's checkpoint: only when the last one is old enough (or there is none
    /// since the event was loaded); busy events checkpoint every `checkpoint_commands` anyway.
    fn sweep_checkpoint(&mut self, myself: &ActorRef<EventMsg>) {
        if self.last_checkpoint.is_none_or(|at| at.elapsed() >= self.checkpoint_max_age) {
            self.checkpoint(myself);
        }
    }

    /// Stores the whole inventory so recovery can start from here and the log behind it can go.
    /// The actor only takes a snapshot (a clone that shares the inventory's persistent maps) and
    /// its place in the log's order; the snapshot is serialized on the checkpoint thread, so commands
    /// go on while a large state is encoded.
    fn checkpoint(&mut self, myself: &ActorRef<EventMsg>) {
        let Some(store) = &self.store else { return };
        if self.commands_since_checkpoint == 0 {
            return;
        }
        self.commands_since_checkpoint = 0;
        self.log_bytes_since_checkpoint = 0;
        self.last_checkpoint = Some(Instant::now());
        let poison_target = myself.clone();
        let poisoned = self.poisoned.clone();
        let done: turnstile_storage::Done = Box::new(move |result| match result {
            Ok(_) => {}
            // Nothing was written (the node is stopping, or the checkpoint was dropped before it
            // was): the log behind the last checkpoint is all still there, the next one follows.
            Err(error @ (StoreError::Stopped | StoreError::Refused(_) | StoreError::Full)) => {
                tracing::warn!(%error, "checkpoint not taken");
            }
            Err(error) => {
                poisoned.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::error!(%error, "checkpoint not stored; rebuilding the event");
                let _ = poison_target.cast(EventMsg::Poisoned);
            }
        });
        let Some(filler) = store.checkpoint_later(&self.stream, done) else { return };
        let snapshot = self.inventory.clone();
        let size = self.last_checkpoint_bytes.clone();
        serialize_off_thread(Box::new(move || {
            let state = snapshot.checkpoint();
            size.store(state.len() as u64, std::sync::atomic::Ordering::Relaxed);
            filler.fill(state)
        }));
    }
    fn answer(&self, outcome: Outcome, caller: Option<&Caller>) -> Result<Answer> {
        Ok(match outcome {
            Outcome::Hold(hold_id) => Answer::Hold(self.inventory.hold_view(&hold_id, caller)?),
            Outcome::Booking(booking_id) => Answer::Booking(self.inventory.booking_view(&booking_id, caller)?),
            Outcome::EventCancelled { holds_released, bookings_cancelled } => {
                Answer::EventCancelled { holds_released, bookings_cancelled: bookings_cancelled.len() as u32 }
            }
            Outcome::HoldsExpired { .. } | Outcome::TermsUpdated => Answer::Overview(self.overview(false)),
            Outcome::Waitlist { buyer } => Answer::Waitlist(self.inventory.waitlist_view(&buyer)),
        })
    }

    fn read(&self, query: &Query) -> Result<Answer> {
        Ok(match query {
            Query::Hold { hold_id, caller } => Answer::Hold(self.inventory.hold_view(hold_id, Some(caller))?),
            Query::Booking { booking_id, caller } => {
                Answer::Booking(self.inventory.booking_view(booking_id, Some(caller))?)
            }
            Query::Overview { include_seats } => Answer::Overview(self.overview(*include_seats)),
            Query::PlacesExpiringBy { deadline_ms } => Answer::Places(self.inventory.places_expiring_by(*deadline_ms)),
            Query::Report => Answer::Report(self.inventory.report()),
            Query::Waitlist { buyer } => Answer::Waitlist(self.inventory.waitlist_view(buyer)),
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
        let mut availability = self.inventory.availability();
        for (row, price) in availability.iter_mut().zip(self.inventory.current_prices(self.clock.now_ms())) {
            row.amount_minor = price;
        }
        EventOverview {
            version: self.inventory.version(),
            status: self.inventory.status().clone(),
            terms: self.inventory.terms().clone(),
            availability,
            seats,
        }
    }

    fn expire_due(&mut self, myself: &ActorRef<EventMsg>) {
        let now_ms = self.clock.now_ms();
        if self.timer.as_ref().is_some_and(|(deadline, _)| *deadline <= now_ms) {
            self.timer = None;
        }
        if let Some(command) = self.inventory.expiry_due(now_ms) {
            let (outcome, writes, bookings, change) = self.commit(&command);
            if let Outcome::HoldsExpired { hold_ids } = outcome {
                tracing::debug!(event_id = %self.inventory.event_id(), expired = hold_ids.len(), "holds expired");
            }
            self.persist(myself, writes, bookings, Some(change), None);
            self.offer_to_waitlist(myself);
        }
    }

    /// Offers places that came back to the waitlist, in line order, before anything else can
    /// take them. Each offer is a command like any other (logged, then applied).
    fn offer_to_waitlist(&mut self, myself: &ActorRef<EventMsg>) {
        for _ in 0..self.inventory.waitlist_len() {
            let Some(offer) = self.inventory.waitlist_offer(self.clock.now_ms(), rand::random()) else { break };
            let (_, writes, bookings, change) = self.commit(&offer);
            self.persist(myself, writes, bookings, Some(change), None);
        }
    }

    fn publish_snapshot(&self, command: &Command) {
        let previous = self.snapshot.load();
        let terms_changed = matches!(command, Command::UpdateTerms { .. } | Command::CancelEvent { .. });
        let snapshot = if terms_changed {
            EventSnapshot::of(&self.inventory, self.clock.now_ms())
        } else {
            // Without pricing rules a price is its level's, which only the terms change; a
            // change of the rules themselves reprices.
            let fixed_prices = !self.inventory.has_pricing() && !matches!(command, Command::SetPricing { .. });
            EventSnapshot {
                version: self.inventory.version(),
                status: self.inventory.status().clone(),
                terms: previous.terms.clone(),
                sections: previous.sections.clone(),
                counts: self.inventory.section_counts(),
                prices: if fixed_prices {
                    previous.prices.clone()
                } else {
                    Arc::new(self.inventory.current_prices(self.clock.now_ms()))
                },
            }
        };
        self.snapshot.store(Arc::new(snapshot));
    }

    fn count_live_holds(&mut self) {
        let live = self.inventory.live_hold_count() as i64;
        self.live_holds.fetch_add(live - self.live_holds_counted, std::sync::atomic::Ordering::Relaxed);
        self.live_holds_counted = live;
    }

    /// Keeps exactly one wake-up armed, for the earliest deadline.
    fn rearm(&mut self, myself: &ActorRef<EventMsg>) {
        self.count_live_holds();
        let next_deadline = self.inventory.next_deadline_ms();
        if self.timer.as_ref().map(|(deadline, _)| *deadline) == next_deadline {
            return;
        }
        if let Some((_, handle)) = self.timer.take() {
            handle.abort();
        }
        if let Some(deadline) = next_deadline {
            let delay = self.clock.instant_at(deadline).saturating_duration_since(Instant::now());
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
            stream: arguments.inventory.event_id().to_string(),
            inventory: arguments.inventory,
            clock: arguments.clock,
            directory: arguments.directory,
            store: arguments.store,
            commands_since_checkpoint: 0,
            log_bytes_since_checkpoint: 0,
            last_checkpoint_bytes: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            checkpoint_commands: arguments.checkpoint_commands.max(1),
            checkpoint_max_age: arguments.checkpoint_max_age,
            last_checkpoint: None,
            live_holds: arguments.live_holds,
            poisoned: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            snapshot: arguments.snapshot,
            feed: arguments.feed,
            live_holds_counted: 0,
            timer: None,
        };
        state.count_live_holds();
        state.rearm(&myself);
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        state.live_holds.fetch_sub(state.live_holds_counted, std::sync::atomic::Ordering::Relaxed);
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
        if state.poisoned.load(std::sync::atomic::Ordering::SeqCst) {
            // Memory is ahead of the log: answer nothing from it, stop, and be rebuilt.
            let reason = format!("event {} is being rebuilt after a failed write; retry", state.stream);
            match message {
                EventMsg::Execute { reply, .. } | EventMsg::Read { reply, .. } => {
                    let _ = reply.send(Err(crate::Error::Unavailable { reason: reason.clone() }));
                }
                EventMsg::ExpireDue | EventMsg::Checkpoint | EventMsg::Poisoned => {}
            }
            return Err(reason.into());
        }
        match message {
            EventMsg::Execute { request, permit, reply } => {
                state.execute(&myself, &request, reply);
                drop(permit);
                state.rearm(&myself);
            }
            EventMsg::Read { query, permit, reply } => {
                let answer = state.read(&query);
                drop(permit);
                let _ = reply.send(answer);
            }
            EventMsg::ExpireDue => {
                state.expire_due(&myself);
                state.rearm(&myself);
            }
            EventMsg::Checkpoint => state.sweep_checkpoint(&myself),
            EventMsg::Poisoned => {
                // Memory is ahead of the log: this state must not serve another request.
                return Err(format!("event {} lost a write; stopping to rebuild from the log", state.stream).into());
            }
        }
        Ok(())
    }
}
