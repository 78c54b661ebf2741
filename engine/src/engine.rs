//! The engine facade: what the gateway calls. It owns the catalog, routes each request to the
//! actor of the event it concerns (spawning the actor on first use, from the catalog), bounds each
//! actor's mailbox, and keeps the per-buyer booking directory that `ListBookings` reads.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use ractor::{Actor, ActorRef, ActorStatus, RpcReplyPort};
use tokio::sync::{watch, OnceCell, Semaphore};
use turnstile_storage::{RecordKind, Store, StoreError, Write};

use crate::actor::{EventActor, EventArguments};
use crate::catalog::{
    Catalog, EventInfo, EventSpec, EventUpdate, Performer, PerformerSpec, Venue, VenueRecord, VenueSpec,
};
use crate::clock::Clock;
pub use crate::directory::{BookingCursor, BookingDirectory};
use crate::error::{Error, Result};
use crate::feed::{EventFeed, EventWatch, WatchSource};
use crate::ids::{BookingId, BuyerId, EventId, HoldId};
use crate::inventory::{
    BookingView, Caller, Command, EventStatus, HoldView, Inventory, PricingRules, ReportRow, Request, Selection,
    WaitlistView,
};
use crate::journal::{Journal, ShardGate};
use crate::limits;
use crate::messages::{Answer, EventMsg, EventOverview, EventSnapshot, Query};
use crate::queue::{
    LineRecord, Place, Progress, QueueActor, QueueArguments, QueueConfig, QueueGauge, QueueHandle, QueueHost, QueueMsg,
};
use crate::seat_map::SeatMap;

#[derive(Clone)]
struct EventHandle {
    actor: ActorRef<EventMsg>,
    /// The actor's latest read snapshot.
    snapshot: Arc<ArcSwap<EventSnapshot>>,
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

#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Commands an event applies at least between automatic checkpoints (it also waits for its
    /// log to grow by `actor::CHECKPOINT_BYTES_PER_LOG_BYTE`'s share of its last checkpoint).
    pub checkpoint_commands: u64,
    /// How often the sweep looks for events to checkpoint, so the log behind them can be purged.
    pub checkpoint_interval: Duration,
    /// The sweep checkpoints an event that changed only when it has no checkpoint since it was
    /// loaded or its last one is at least this old. A checkpoint encodes the event's whole state
    /// (on the checkpoint thread) and the log writer stores it in pieces between log commits, so
    /// checkpointing every busy event every sweep stalled the others (the soak's p99,
    /// docs/SOAK.md).
    pub checkpoint_max_age: Duration,
    /// How far ahead of the wall clock the engine's clock runs (zero in production). Tests move
    /// it to stand for time that passed while the node was down (holds due at recovery) without
    /// waiting it out.
    pub clock_ahead: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            checkpoint_commands: 10_000,
            checkpoint_interval: Duration::from_secs(30),
            checkpoint_max_age: Duration::from_secs(300),
            clock_ahead: Duration::ZERO,
        }
    }
}

struct EngineInner {
    catalog: Catalog,
    /// Bookings by buyer when running in memory; with a store, the store's index serves.
    directory: Arc<BookingDirectory>,
    actors: DashMap<EventId, Arc<OnceCell<EventHandle>>>,
    clock: Clock,
    /// Reads: the catalog, bookings, recovery. Each node has its own.
    store: Option<Arc<Store>>,
    /// Writes: the store itself on a single node, the shard's replicated log in a cluster.
    journal: Option<Arc<dyn Journal>>,
    /// In a cluster, which events this node may run now; `None` on a single node (all of them).
    gate: Option<Arc<dyn ShardGate>>,
    /// Inventories rebuilt from the store, waiting for their actor to be spawned.
    recovered: DashMap<EventId, Inventory>,
    options: EngineOptions,
    /// The id of every event whose catalog record changed (created, updated, cancelled), for
    /// readers that keep their own copy, such as the search index.
    catalog_changes: tokio::sync::broadcast::Sender<EventId>,
    live_holds: Arc<std::sync::atomic::AtomicI64>,
    /// Each started event's change feed; kept across actor rebuilds so watchers stay subscribed.
    feeds: DashMap<EventId, Arc<EventFeed>>,
    /// One permit per open watch stream over the whole node.
    watchers: Arc<Semaphore>,
    /// Waiting rooms: settings as stored, and the queue actors started so far.
    queue_configs: DashMap<EventId, QueueConfig>,
    queues: DashMap<EventId, Arc<OnceCell<QueueHandle>>>,
}

/// Catalog changes buffered for a slow subscriber before it is told it lagged.
const CATALOG_CHANGES_BUFFERED_MAX: usize = 4_096;
/// How long [`Engine::close`] waits for the database to close after the engine stopped.
const DATABASE_RELEASE_WAIT: Duration = Duration::from_secs(10);

impl Drop for EngineInner {
    fn drop(&mut self) {
        for entry in self.actors.iter() {
            if let Some(handle) = entry.value().get() {
                handle.actor.stop(None);
            }
        }
        for entry in self.queues.iter() {
            if let Some(queue) = entry.value().get() {
                queue.actor.stop(None);
            }
        }
    }
}

/// An engine reference that does not keep the engine alive (held by its own queue actors).
#[derive(Clone)]
pub struct WeakEngine(std::sync::Weak<EngineInner>);

impl WeakEngine {
    pub fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
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

pub(crate) fn storage_error(error: StoreError) -> Error {
    match error {
        StoreError::Full => Error::LimitExceeded { limit: "storage_queue", reason: error.to_string() },
        other => Error::Unavailable { reason: other.to_string() },
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    postcard::from_bytes(bytes)
        .map_err(|error| Error::Unavailable { reason: format!("{what} does not decode: {error}") })
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("catalog records serialize")
}

impl Engine {
    /// An engine that keeps everything in memory: nothing survives a restart.
    pub fn new() -> Self {
        Self::build(None, None, None, EngineOptions::default())
    }

    fn build(
        store: Option<Arc<Store>>,
        journal: Option<Arc<dyn Journal>>,
        gate: Option<Arc<dyn ShardGate>>,
        options: EngineOptions,
    ) -> Self {
        Self {
            inner: Arc::new(EngineInner {
                catalog: Catalog::default(),
                directory: Arc::new(BookingDirectory::default()),
                actors: DashMap::new(),
                clock: Clock::start().ahead_by(options.clock_ahead),
                store,
                journal,
                gate,
                recovered: DashMap::new(),
                options,
                catalog_changes: tokio::sync::broadcast::channel(CATALOG_CHANGES_BUFFERED_MAX).0,
                live_holds: Arc::new(std::sync::atomic::AtomicI64::new(0)),
                feeds: DashMap::new(),
                watchers: Arc::new(Semaphore::new(limits::WATCH_STREAMS_MAX)),
                queue_configs: DashMap::new(),
                queues: DashMap::new(),
            }),
        }
    }

    /// An engine whose every change is written ahead to the store in `data_dir`: opens it, loads
    /// the catalog, rebuilds every event from its checkpoint and the log after it, and restarts
    /// the timers of events with live holds (expiring those whose deadline passed meanwhile).
    pub async fn open(data_dir: &std::path::Path, options: EngineOptions) -> Result<Self> {
        let store = Arc::new(Store::open(data_dir).map_err(storage_error)?);
        Self::open_store(store, options).await
    }

    pub async fn open_store(store: Arc<Store>, options: EngineOptions) -> Result<Self> {
        let journal: Arc<dyn Journal> = store.clone();
        let engine = Self::build(Some(store.clone()), Some(journal), None, options);
        engine.load_catalog(&store)?;
        let catalog = &engine.inner.catalog;
        let inventories = recover_inventories(&store.view().map_err(storage_error)?, catalog, &|_| true)?;
        let mut with_live_holds = Vec::new();
        for (event_id, inventory) in inventories {
            if inventory.status() == &EventStatus::Cancelled {
                // The cancellation is in the log; the catalog record may predate it.
                catalog.edit_event(&event_id, |event| event.status = EventStatus::Cancelled)?;
            }
            if inventory.next_deadline_ms().is_some() {
                with_live_holds.push(event_id.clone());
            }
            engine.inner.recovered.insert(event_id, inventory);
        }
        for event_id in with_live_holds {
            engine.handle(&event_id).await?;
        }
        engine.start_checkpoint_sweep();
        Ok(engine)
    }

    /// Loads every catalog record of `store` (venues, performers, events, waiting rooms).
    fn load_catalog(&self, store: &Store) -> Result<()> {
        for kind in RecordKind::CATALOG {
            for (key, bytes) in store.records(kind).map_err(storage_error)? {
                self.apply_catalog_record(kind, &key, &bytes)?;
            }
        }
        Ok(())
    }

    /// Puts one catalog record into the in-memory catalog, replacing an older version. Returns
    /// the event it concerns, if any. Records of other kinds are ignored.
    fn apply_catalog_record(&self, kind: RecordKind, key: &str, bytes: &[u8]) -> Result<Option<EventId>> {
        let catalog = &self.inner.catalog;
        match kind {
            RecordKind::Venue => {
                let record: VenueRecord = decode(bytes, "venue record")?;
                catalog.upsert_venue(Arc::new(Venue::from_record(record)?));
            }
            RecordKind::Performer => {
                catalog.upsert_performer(Arc::new(decode::<Performer>(bytes, "performer record")?))
            }
            RecordKind::Event => {
                let event = decode::<EventInfo>(bytes, "event record")?;
                let event_id = event.event_id.clone();
                catalog.upsert_event(Arc::new(event));
                return Ok(Some(event_id));
            }
            RecordKind::Queue => {
                let config: QueueConfig = decode(bytes, "waiting room record")?;
                self.inner.queue_configs.insert(EventId::new(key), config);
            }
            RecordKind::QueueLine | RecordKind::Booking | RecordKind::RaftAppliedState | RecordKind::ClusterMembers => {
            }
        }
        Ok(None)
    }

    /// An engine for one node of a cluster. Changes go to `journal` (the shards' replicated logs),
    /// which writes each committed job to every replica's `store`; reads come from `store`. The
    /// catalog is loaded from `store`; no event actor starts until the cluster layer says this
    /// node leads the event's shard (`gate`, and [`Engine::host_events`]).
    pub async fn open_clustered(
        store: Arc<Store>,
        journal: Arc<dyn Journal>,
        gate: Arc<dyn ShardGate>,
        options: EngineOptions,
    ) -> Result<Self> {
        let engine = Self::build(Some(store.clone()), Some(journal), Some(gate), options);
        engine.load_catalog(&store)?;
        engine.start_checkpoint_sweep();
        Ok(engine)
    }

    /// Applies catalog records a replica received from the cluster (the same `Put`s the node
    /// that made the change wrote), so every node's catalog and search index follow.
    pub fn apply_replicated_catalog(&self, writes: &[Write]) -> Result<()> {
        for write in writes {
            if let Write::Put { kind, key, value } = write {
                if let Some(event_id) = self.apply_catalog_record(*kind, key, value)? {
                    self.announce_catalog_change(&event_id);
                }
            }
        }
        Ok(())
    }

    /// This node now leads the shard whose events `belongs` picks: once the gate lets it, rebuilds
    /// those events from the store and starts the ones with live holds, so their expiry timers run
    /// again (holds whose deadline passed expire at once, by a command with this node's time).
    pub async fn host_events(&self, belongs: &(dyn Fn(&EventId) -> bool + Sync)) -> Result<usize> {
        let Some(store) = self.inner.store.clone() else { return Ok(0) };
        let view = store.view().map_err(storage_error)?;
        let mut inventories = recover_inventories(&view, &self.inner.catalog, belongs)?;
        let with_live_holds: Vec<EventId> = inventories
            .iter()
            .filter(|(_, inventory)| inventory.next_deadline_ms().is_some())
            .map(|(event_id, _)| event_id.clone())
            .collect();
        for (event_id, inventory) in inventories.drain() {
            self.inner.recovered.insert(event_id, inventory);
        }
        let started = with_live_holds.len();
        for event_id in with_live_holds {
            self.handle(&event_id).await?;
        }
        Ok(started)
    }

    /// This node no longer leads the shard whose events `belongs` picks: stops their actors and
    /// forgets what it had rebuilt. Their requests go to the new leader.
    pub async fn release_events(&self, belongs: &(dyn Fn(&EventId) -> bool + Sync)) {
        /// Removes the actors of the events `belongs` picks from `actors` and stops them.
        fn stop<H, M: ractor::Message>(
            actors: &DashMap<EventId, Arc<OnceCell<H>>>,
            belongs: &(dyn Fn(&EventId) -> bool + Sync),
            actor: impl Fn(&H) -> &ActorRef<M>,
        ) {
            let picked: Vec<EventId> =
                actors.iter().map(|entry| entry.key().clone()).filter(|event_id| belongs(event_id)).collect();
            for event_id in picked {
                if let Some((_, cell)) = actors.remove(&event_id) {
                    if let Some(handle) = cell.get() {
                        actor(handle).stop(None);
                    }
                }
            }
        }
        stop(&self.inner.actors, belongs, |handle| &handle.actor);
        // Their waiting rooms too: the next leader goes on from the stored line, and this node,
        // if it leads again, starts afresh from it rather than from what it had.
        stop(&self.inner.queues, belongs, |handle| &handle.actor);
        self.inner.recovered.retain(|event_id, _| !belongs(event_id));
    }

    fn start_checkpoint_sweep(&self) {
        let weak = Arc::downgrade(&self.inner);
        let interval = self.inner.options.checkpoint_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                for entry in inner.actors.iter() {
                    if let Some(handle) = entry.value().get() {
                        let _ = handle.actor.cast(EventMsg::Checkpoint);
                    }
                }
            }
        });
    }

    /// Stops every event actor (waiting for each to finish what it was doing) and the store's
    /// writer after the writes already queued. The database file is released once the last clone
    /// of this engine is dropped.
    pub async fn shutdown(&self) {
        // Waiting rooms first: each one's admission step reads its event, and would start the
        // event's actor again if that had stopped (holding the engine, and so the store, open).
        let queues: Vec<QueueHandle> =
            self.inner.queues.iter().filter_map(|entry| entry.value().get().cloned()).collect();
        for queue in queues {
            queue.actor.stop_and_wait(None, Some(Duration::from_secs(5))).await.ok();
        }
        self.inner.queues.clear();
        let handles: Vec<EventHandle> =
            self.inner.actors.iter().filter_map(|entry| entry.value().get().cloned()).collect();
        for handle in handles {
            handle.actor.stop_and_wait(None, Some(Duration::from_secs(5))).await.ok();
        }
        self.inner.actors.clear();
        if let Some(store) = self.inner.store.clone() {
            // Joins the writer thread: keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || store.close()).await;
        }
    }

    /// Stops the engine (as [`Engine::shutdown`]) and returns once its database is closed: every
    /// task that held the engine has ended, and the data directory can be opened again at once.
    /// Waits at most `DATABASE_RELEASE_WAIT`, then says something still holds it.
    pub async fn close(self) -> Result<()> {
        let released = self.inner.store.as_ref().map(|store| store.released());
        self.shutdown().await;
        drop(self);
        let Some(released) = released else { return Ok(()) };
        let closed = tokio::task::spawn_blocking(move || released.wait(DATABASE_RELEASE_WAIT)).await.unwrap_or(false);
        if closed {
            Ok(())
        } else {
            Err(Error::Unavailable {
                reason: format!(
                    "the database is still open {DATABASE_RELEASE_WAIT:?} after the engine stopped: something still \
                     holds the engine"
                ),
            })
        }
    }

    /// Events with a running actor, and live holds over them.
    pub fn activity(&self) -> (u64, u64) {
        let active = self.inner.actors.iter().filter(|entry| entry.value().get().is_some()).count() as u64;
        let live_holds = self.inner.live_holds.load(std::sync::atomic::Ordering::Relaxed).max(0) as u64;
        (active, live_holds)
    }

    /// Ids of events whose catalog record changes from now on. A receiver that falls more than
    /// 4,096 changes behind is told it lagged and must reread the catalog.
    pub fn subscribe_catalog_changes(&self) -> tokio::sync::broadcast::Receiver<EventId> {
        self.inner.catalog_changes.subscribe()
    }

    fn announce_catalog_change(&self, event_id: &EventId) {
        // No subscriber is fine: nobody keeps a copy.
        let _ = self.inner.catalog_changes.send(event_id.clone());
    }

    pub fn store(&self) -> Option<&Arc<Store>> {
        self.inner.store.as_ref()
    }

    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }

    pub(crate) fn queues(&self) -> &DashMap<EventId, Arc<OnceCell<QueueHandle>>> {
        &self.inner.queues
    }

    pub(crate) fn queue_configs(&self) -> &DashMap<EventId, QueueConfig> {
        &self.inner.queue_configs
    }

    /// The event's latest read snapshot (starting its actor if needed).
    pub(crate) async fn event_snapshot(&self, event_id: &EventId) -> Result<Arc<EventSnapshot>> {
        Ok(self.handle(event_id).await?.snapshot.load_full())
    }

    /// Makes catalog writes durable before the change is visible or acknowledged.
    pub(crate) async fn persist(&self, writes: Vec<Write>) -> Result<()> {
        self.persist_on("", writes).await
    }

    /// Writes `writes` on `stream` (an event's, or `""` for the catalog) and waits until they
    /// are durable (in a cluster: committed in the stream's group).
    pub(crate) async fn persist_on(&self, stream: &str, writes: Vec<Write>) -> Result<()> {
        let Some(journal) = &self.inner.journal else { return Ok(()) };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        journal.submit(stream, writes, Box::new(move |result| drop(sender.send(result))));
        match receiver.await {
            Ok(result) => result.map(drop).map_err(storage_error),
            Err(_) => Err(Error::Unavailable { reason: "the store stopped".into() }),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    pub async fn create_venue(&self, spec: VenueSpec) -> Result<Arc<Venue>> {
        self.create_venue_with_nonce(spec, rand::random()).await
    }

    /// `nonce` fixes the minted id (demo data uses stable ids).
    pub async fn create_venue_with_nonce(&self, spec: VenueSpec, nonce: u64) -> Result<Arc<Venue>> {
        let venue = self.inner.catalog.build_venue(spec, nonce)?;
        self.persist(vec![Write::Put {
            kind: RecordKind::Venue,
            key: venue.venue_id.to_string(),
            value: encode(&venue.record()),
        }])
        .await?;
        // Upsert: in a cluster this node may already have applied its own replicated record.
        self.inner.catalog.upsert_venue(venue.clone());
        Ok(venue)
    }

    pub async fn create_performer(&self, spec: PerformerSpec) -> Result<Arc<Performer>> {
        self.create_performer_with_nonce(spec, rand::random()).await
    }

    pub async fn create_performer_with_nonce(&self, spec: PerformerSpec, nonce: u64) -> Result<Arc<Performer>> {
        let performer = self.inner.catalog.build_performer(spec, nonce)?;
        self.persist(vec![Write::Put {
            kind: RecordKind::Performer,
            key: performer.performer_id.to_string(),
            value: encode(&*performer),
        }])
        .await?;
        self.inner.catalog.upsert_performer(performer.clone());
        Ok(performer)
    }

    pub async fn create_event(&self, spec: EventSpec) -> Result<Arc<EventInfo>> {
        self.create_event_with_nonce(spec, rand::random()).await
    }

    pub async fn create_event_with_nonce(&self, spec: EventSpec, nonce: u64) -> Result<Arc<EventInfo>> {
        let event = self.inner.catalog.build_event(spec, nonce, self.now_ms())?;
        self.persist_event(&event).await?;
        self.inner.catalog.upsert_event(event.clone());
        self.announce_catalog_change(&event.event_id);
        Ok(event)
    }

    async fn persist_event(&self, event: &EventInfo) -> Result<()> {
        self.persist(vec![Write::Put {
            kind: RecordKind::Event,
            key: event.event_id.to_string(),
            value: encode(event),
        }])
        .await
    }

    pub async fn update_event(&self, event_id: &EventId, update: EventUpdate) -> Result<EventDetails> {
        self.inner.catalog.validate_update(event_id, &update)?;
        let request =
            Request::UpdateTerms { hold_ttl_ms: update.hold_ttl_ms, buyer_seat_limit: update.buyer_seat_limit };
        let Answer::Overview(overview) = self.execute(event_id, request).await? else {
            unreachable!("an update answers with the overview")
        };
        let mut edited = EventInfo::clone(&*self.inner.catalog.event(event_id)?);
        {
            let event = &mut edited;
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
        }
        self.persist_event(&edited).await?;
        self.inner.catalog.edit_event(event_id, |event| *event = edited)?;
        self.announce_catalog_change(event_id);
        self.event_details(event_id, false).await
    }

    /// Takes the event off sale; returns it with the number of holds released and bookings
    /// cancelled.
    pub async fn cancel_event(&self, event_id: &EventId) -> Result<(EventDetails, u32, u32)> {
        let Answer::EventCancelled { holds_released, bookings_cancelled } =
            self.execute(event_id, Request::CancelEvent).await?
        else {
            unreachable!("a cancellation answers with its counts")
        };
        let mut edited = EventInfo::clone(&*self.inner.catalog.event(event_id)?);
        edited.status = EventStatus::Cancelled;
        self.persist_event(&edited).await?;
        self.inner.catalog.edit_event(event_id, |event| *event = edited)?;
        self.announce_catalog_change(event_id);
        Ok((self.event_details(event_id, false).await?, holds_released, bookings_cancelled))
    }

    pub async fn event_details(&self, event_id: &EventId, include_seats: bool) -> Result<EventDetails> {
        let info = self.inner.catalog.event(event_id)?;
        let venue = self.inner.catalog.venue(&info.venue_id)?;
        let performers = info
            .performer_ids
            .iter()
            .map(|performer_id| self.inner.catalog.performer(performer_id))
            .collect::<Result<Vec<_>>>()?;
        let overview = if include_seats {
            // Every seat's status is too much to copy after each change: ask the actor.
            let Answer::Overview(overview) = self.read(event_id, Query::Overview { include_seats }).await? else {
                unreachable!("an overview query answers with the overview")
            };
            overview
        } else {
            // Views never wait behind writes: the actor's published snapshot answers.
            self.handle(event_id).await?.snapshot.load().overview()
        };
        Ok(EventDetails { info, venue, performers, overview })
    }

    /// Places left to sell, without starting an actor for an event nobody has touched.
    pub async fn available_places(&self, event_id: &EventId) -> Result<u32> {
        let snapshot =
            self.inner.actors.get(event_id).and_then(|cell| cell.get().map(|handle| handle.snapshot.load_full()));
        let snapshot = match snapshot {
            Some(snapshot) => snapshot,
            None => match self.inner.recovered.get(event_id) {
                Some(inventory) => Arc::new(EventSnapshot::of(&inventory, self.now_ms())),
                None => {
                    let info = self.inner.catalog.event(event_id)?;
                    if info.status == EventStatus::Cancelled {
                        return Ok(0);
                    }
                    return Ok(self.inner.catalog.venue(&info.venue_id)?.seat_map.capacity());
                }
            },
        };
        if snapshot.status == EventStatus::Cancelled {
            return Ok(0);
        }
        Ok(snapshot.availability().iter().map(|row| row.available).sum())
    }

    pub async fn place_hold(
        &self,
        caller: Caller,
        event_id: &EventId,
        selection: Selection,
        idempotency_key: Option<String>,
    ) -> Result<HoldView> {
        let request = Request::PlaceHold { caller, selection, idempotency_key };
        expect_hold(self.execute(event_id, request).await?)
    }

    pub async fn get_hold(&self, caller: Caller, hold_id: &HoldId) -> Result<HoldView> {
        let event_id = hold_event(hold_id)?;
        expect_hold(
            self.read_owned(&event_id, Query::Hold { hold_id: hold_id.clone(), caller }, "hold", hold_id.as_str())
                .await?,
        )
    }

    pub async fn release_hold(&self, caller: Caller, hold_id: &HoldId) -> Result<HoldView> {
        let event_id = hold_event(hold_id)?;
        let request = Request::ReleaseHold { caller, hold_id: hold_id.clone() };
        expect_hold(self.execute_owned(&event_id, request, "hold", hold_id.as_str()).await?)
    }

    pub async fn confirm_hold(
        &self,
        caller: Caller,
        hold_id: &HoldId,
        payment_reference: String,
        idempotency_key: Option<String>,
    ) -> Result<BookingView> {
        let event_id = hold_event(hold_id)?;
        let request = Request::ConfirmHold { caller, hold_id: hold_id.clone(), payment_reference, idempotency_key };
        expect_booking(self.execute_owned(&event_id, request, "hold", hold_id.as_str()).await?)
    }

    pub async fn extend_hold(&self, caller: Caller, hold_id: &HoldId) -> Result<HoldView> {
        let event_id = hold_event(hold_id)?;
        let request = Request::ExtendHold { caller, hold_id: hold_id.clone() };
        expect_hold(self.execute_owned(&event_id, request, "hold", hold_id.as_str()).await?)
    }

    pub async fn start_payment(&self, caller: Caller, hold_id: &HoldId) -> Result<HoldView> {
        let event_id = hold_event(hold_id)?;
        let request = Request::StartPayment { caller, hold_id: hold_id.clone() };
        expect_hold(self.execute_owned(&event_id, request, "hold", hold_id.as_str()).await?)
    }

    /// Sets or removes an event's dynamic pricing rules; returns the event with its prices now.
    pub async fn set_pricing(&self, event_id: &EventId, rules: Option<PricingRules>) -> Result<EventDetails> {
        self.execute(event_id, Request::SetPricing { rules }).await?;
        self.event_details(event_id, false).await
    }

    /// Puts the buyer on the event's waitlist (section `None`: any section).
    pub async fn join_waitlist(
        &self,
        caller: Caller,
        event_id: &EventId,
        section_id: Option<String>,
        quantity: i64,
    ) -> Result<WaitlistView> {
        expect_waitlist(self.execute(event_id, Request::JoinWaitlist { caller, section_id, quantity }).await?)
    }

    pub async fn leave_waitlist(&self, caller: Caller, event_id: &EventId) -> Result<WaitlistView> {
        expect_waitlist(self.execute(event_id, Request::LeaveWaitlist { caller }).await?)
    }

    pub async fn waitlist_status(&self, caller: Caller, event_id: &EventId) -> Result<WaitlistView> {
        expect_waitlist(self.read(event_id, Query::Waitlist { buyer: caller.buyer }).await?)
    }

    /// Admits the holder of ticket `ticket` of a booking, once.
    pub async fn redeem_ticket(&self, booking_id: &BookingId, ticket: u32) -> Result<BookingView> {
        let event_id = booking_event(booking_id)?;
        let request = Request::RedeemTicket { booking_id: booking_id.clone(), ticket };
        expect_booking(self.execute_owned(&event_id, request, "booking", booking_id.as_str()).await?)
    }

    /// Sales per section of an event: places by status, revenue, tickets used.
    pub async fn event_report(&self, event_id: &EventId) -> Result<(Arc<EventInfo>, Vec<ReportRow>)> {
        let info = self.inner.catalog.event(event_id)?;
        match self.read(event_id, Query::Report).await? {
            Answer::Report(rows) => Ok((info, rows)),
            other => unreachable!("a report query answers with a report, got {other:?}"),
        }
    }

    pub async fn get_booking(&self, caller: Caller, booking_id: &BookingId) -> Result<BookingView> {
        let event_id = booking_event(booking_id)?;
        let query = Query::Booking { booking_id: booking_id.clone(), caller };
        expect_booking(self.read_owned(&event_id, query, "booking", booking_id.as_str()).await?)
    }

    pub async fn cancel_booking(&self, caller: Caller, booking_id: &BookingId) -> Result<BookingView> {
        let event_id = booking_event(booking_id)?;
        let request = Request::CancelBooking { caller, booking_id: booking_id.clone() };
        expect_booking(self.execute_owned(&event_id, request, "booking", booking_id.as_str()).await?)
    }

    /// One page of a buyer's bookings, newest first.
    pub fn list_bookings(
        &self,
        buyer: &BuyerId,
        cursor: Option<&BookingCursor>,
        page_size: usize,
    ) -> Result<(Vec<BookingView>, Option<BookingCursor>)> {
        let Some(store) = &self.inner.store else {
            return Ok(self.inner.directory.list(buyer, cursor, page_size));
        };
        let after = cursor.map(|(booked_at_ms, booking_id)| (*booked_at_ms, booking_id.as_str()));
        let ids = store.buyer_bookings(buyer.as_str(), after, page_size + 1).map_err(storage_error)?;
        let mut page = Vec::with_capacity(page_size.min(ids.len()));
        for (_, booking_id) in ids.iter().take(page_size) {
            let bytes = store.record(RecordKind::Booking, booking_id).map_err(storage_error)?.ok_or_else(|| {
                Error::Unavailable { reason: format!("booking '{booking_id}' is indexed for its buyer but not stored") }
            })?;
            page.push(decode::<BookingView>(&bytes, "booking record")?);
        }
        let next = (ids.len() > page_size)
            .then(|| page.last().map(|last| (last.booked_at_ms, last.booking_id.clone())))
            .flatten();
        Ok((page, next))
    }

    /// Subscribes to an event's changes after `after_version` (0: start from a full snapshot).
    /// The permit counts the watch against the node's bound; drop it with the watch.
    pub async fn watch_event(
        &self,
        event_id: &EventId,
        after_version: u64,
    ) -> Result<(EventWatch, tokio::sync::OwnedSemaphorePermit)> {
        let permit = self.inner.watchers.clone().try_acquire_owned().map_err(|_| Error::LimitExceeded {
            limit: "watch_streams",
            reason: format!("this node already serves {} watch streams; retry later", limits::WATCH_STREAMS_MAX),
        })?;
        self.handle(event_id).await?;
        let feed = self
            .inner
            .feeds
            .get(event_id)
            .map(|feed| feed.clone())
            .ok_or_else(|| Error::Unavailable { reason: format!("event '{event_id}' has no change feed") })?;
        let (catchup, receiver) = feed.subscribe(after_version);
        Ok((EventWatch::new(Arc::new(self.clone()), event_id.clone(), after_version, catchup, receiver), permit))
    }

    /// What a watcher needs to name seats and sections: the venue's seat map and the event's
    /// section rows.
    pub(crate) fn seat_names(&self, event_id: &EventId) -> Result<(Arc<SeatMap>, Arc<EventSnapshot>)> {
        let info = self.inner.catalog.event(event_id)?;
        let seat_map = self.inner.catalog.venue(&info.venue_id)?.seat_map.clone();
        let snapshot = match self.inner.actors.get(event_id).and_then(|cell| cell.get().cloned()) {
            Some(handle) => handle.snapshot.load_full(),
            None => return Err(Error::Unavailable { reason: format!("event '{event_id}' is not running") }),
        };
        Ok((seat_map, snapshot))
    }

    // -------------------------------------------------------------------------------------------
    // Routing to event actors
    // -------------------------------------------------------------------------------------------

    /// In a cluster, waits until this node may serve the event (it leads the event's shard and
    /// has applied its log); at once on a single node.
    pub(crate) async fn shard_ready(&self, event_id: &EventId) -> Result<()> {
        match &self.inner.gate {
            Some(gate) => gate.ready(event_id).await,
            None => Ok(()),
        }
    }

    async fn handle(&self, event_id: &EventId) -> Result<EventHandle> {
        let info = self.inner.catalog.event(event_id)?;
        if let Some(gate) = &self.inner.gate {
            // Cheap when the actor runs already; otherwise waits until this node may start it.
            let running = self.inner.actors.get(event_id).is_some_and(|cell| {
                cell.get().is_some_and(|handle| {
                    !matches!(handle.actor.get_status(), ActorStatus::Stopping | ActorStatus::Stopped)
                })
            });
            if !running {
                gate.ready(event_id).await?;
            }
        }
        let cell = self.inner.actors.entry(event_id.clone()).or_default().clone();
        if let Some(handle) = cell.get() {
            if !matches!(handle.actor.get_status(), ActorStatus::Stopping | ActorStatus::Stopped) {
                return Ok(handle.clone());
            }
            // The actor stopped (a write failed): rebuild its event from the log. If the rebuild
            // fails, the dead actor stays in place and the next request tries again; the event is
            // never served from an empty inventory.
            let rebuilt = match &self.inner.store {
                Some(store) => {
                    Some(recover_inventories(&store.view().map_err(storage_error)?, &self.inner.catalog, &|id| {
                        id == event_id
                    })?)
                }
                None => None,
            };
            let removed = self.inner.actors.remove_if(event_id, |_, current| Arc::ptr_eq(current, &cell));
            if removed.is_some() {
                if let (Some(store), Some(rebuilt)) = (&self.inner.store, rebuilt) {
                    for (rebuilt_id, inventory) in rebuilt {
                        self.inner.recovered.insert(rebuilt_id, inventory);
                    }
                    store.clear_poison(event_id.as_str());
                }
                tracing::warn!(%event_id, "event actor rebuilt from the log");
            }
            return Box::pin(self.handle(event_id)).await;
        }
        let handle = cell
            .get_or_try_init(|| async {
                let recovered = match self.inner.recovered.remove(event_id) {
                    Some((_, inventory)) => Some(inventory),
                    // In a cluster the store may hold this event's history even though this node
                    // never ran it (it was a follower): start from there.
                    None if self.inner.gate.is_some() => {
                        let store = self.inner.store.as_ref().expect("a clustered engine has a store");
                        recover_inventories(&store.view().map_err(storage_error)?, &self.inner.catalog, &|id| {
                            id == event_id
                        })?
                        .remove(event_id)
                    }
                    None => None,
                };
                let inventory = match recovered {
                    Some(inventory) => inventory,
                    None => {
                        let venue = self.inner.catalog.venue(&info.venue_id)?;
                        let mut inventory =
                            Inventory::new(event_id.clone(), venue.seat_map.clone(), info.terms.clone())?;
                        if info.status == EventStatus::Cancelled {
                            inventory.apply(&Command::CancelEvent { now_ms: self.now_ms() });
                        }
                        inventory
                    }
                };
                let snapshot = Arc::new(ArcSwap::from_pointee(EventSnapshot::of(&inventory, self.now_ms())));
                let feed = self
                    .inner
                    .feeds
                    .entry(event_id.clone())
                    .or_insert_with(|| Arc::new(EventFeed::new(inventory.version())))
                    .clone();
                let arguments = EventArguments {
                    inventory,
                    clock: self.inner.clock,
                    directory: self.inner.directory.clone(),
                    store: self.inner.journal.clone(),
                    checkpoint_commands: self.inner.options.checkpoint_commands,
                    checkpoint_max_age: self.inner.options.checkpoint_max_age,
                    live_holds: self.inner.live_holds.clone(),
                    snapshot: snapshot.clone(),
                    feed,
                };
                let (actor, _join) = Actor::spawn(None, EventActor, arguments)
                    .await
                    .map_err(|error| Error::Unavailable { reason: format!("event actor failed to start: {error}") })?;
                Ok::<_, Error>(EventHandle {
                    actor,
                    snapshot,
                    mailbox: Arc::new(Semaphore::new(limits::MAILBOX_DEPTH_MAX)),
                })
            })
            .await?;
        Ok(handle.clone())
    }

    async fn call(
        &self,
        event_id: &EventId,
        message: impl FnOnce(tokio::sync::OwnedSemaphorePermit, RpcReplyPort<Result<Answer>>) -> EventMsg,
    ) -> Result<Answer> {
        let handle = self.handle(event_id).await?;
        let permit = handle.mailbox.clone().try_acquire_owned().map_err(|_| Error::LimitExceeded {
            limit: "mailbox_depth",
            reason: format!("event '{event_id}' has {} requests waiting; retry shortly", limits::MAILBOX_DEPTH_MAX),
        })?;
        let timeout = Some(Duration::from_millis(limits::ACTOR_CALL_TIMEOUT_MS));
        match handle.actor.call(|reply| message(permit, reply), timeout).await {
            Ok(ractor::rpc::CallResult::Success(answer)) => answer,
            Ok(ractor::rpc::CallResult::Timeout) => {
                Err(Error::Unavailable { reason: format!("event '{event_id}' did not answer in time") })
            }
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => {
                Err(Error::Unavailable { reason: format!("event '{event_id}' is not running") })
            }
        }
    }

    /// Runs a request on its event's actor. Times each kind from the call to the answer (the
    /// mailbox, the decision and, for a change, its log commit) for the metrics endpoint.
    async fn execute(&self, event_id: &EventId, request: Request) -> Result<Answer> {
        let kind = request_kind(&request);
        let started = std::time::Instant::now();
        let answer = self.call(event_id, |permit, reply| EventMsg::Execute { request, permit, reply }).await;
        metrics::histogram!("turnstile_event_request_seconds", "request" => kind)
            .record(started.elapsed().as_secs_f64());
        answer
    }

    pub(crate) async fn read(&self, event_id: &EventId, query: Query) -> Result<Answer> {
        self.call(event_id, |permit, reply| EventMsg::Read { query, permit, reply }).await
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
        self.execute(event_id, request).await.map_err(|error| rename_missing_event(error, kind, id))
    }

    async fn read_owned(&self, event_id: &EventId, query: Query, kind: &'static str, id: &str) -> Result<Answer> {
        self.read(event_id, query).await.map_err(|error| rename_missing_event(error, kind, id))
    }
}

/// Rebuilds events from the store: each from its checkpoint, then the log entries after it, all
/// read from one view so that a checkpoint stored meanwhile (and the purge behind it) cannot
/// be half seen. `belongs` limits the work to some events (one, when rebuilding one actor; a
/// shard's, in a cluster). An empty checkpoint (what a replica writes when it installs a shard
/// snapshot of an event that had none) means the event's fresh state.
pub(crate) fn recover_inventories(
    store: &turnstile_storage::StoreView,
    catalog: &Catalog,
    belongs: &(dyn Fn(&EventId) -> bool + Sync),
) -> Result<std::collections::HashMap<EventId, Inventory>> {
    use std::collections::hash_map::Entry;
    let path = store.path().display().to_string();
    let mut inventories: std::collections::HashMap<EventId, (u64, Inventory)> = std::collections::HashMap::new();
    let fresh = |event_id: &EventId| -> Result<Inventory> {
        let info = catalog.event(event_id).map_err(|_| Error::Unavailable {
            reason: format!("{path}: the log names event '{event_id}', which the catalog does not have"),
        })?;
        let venue = catalog.venue(&info.venue_id)?;
        Inventory::new(event_id.clone(), venue.seat_map.clone(), info.terms.clone())
    };
    for (stream, index, state) in store.checkpoints().map_err(storage_error)? {
        let event_id = EventId::new(stream);
        if !belongs(&event_id) {
            continue;
        }
        let fresh_inventory = fresh(&event_id)?;
        let inventory = if state.is_empty() {
            fresh_inventory
        } else {
            Inventory::restore(&state, fresh_inventory.seat_map().clone()).map_err(|reason| Error::Unavailable {
                reason: format!("{path}: checkpoint of '{event_id}': {reason}"),
            })?
        };
        inventories.insert(event_id, (index, inventory));
    }
    store
        .for_each_entry::<EngineError>(0, |entry| {
            let event_id = EventId::new(entry.stream);
            if !belongs(&event_id) {
                return Ok(());
            }
            let command: Command = decode(&entry.payload, &format!("{path} log entry {}", entry.index))?;
            let slot = match inventories.entry(event_id) {
                Entry::Occupied(occupied) => occupied.into_mut(),
                Entry::Vacant(vacant) => {
                    let inventory = fresh(vacant.key())?;
                    vacant.insert((0, inventory))
                }
            };
            if entry.index > slot.0 {
                slot.1.apply(&command);
            }
            Ok(())
        })
        .map_err(|EngineError(error)| error)?;
    Ok(inventories.into_iter().map(|(event_id, (_, inventory))| (event_id, inventory)).collect())
}

/// An engine error that a store error converts into (`Error` is the domain's, and the store's
/// errors are the storage crate's: neither may implement the other's conversion here).
struct EngineError(Error);

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        EngineError(storage_error(error))
    }
}

impl From<Error> for EngineError {
    fn from(error: Error) -> Self {
        EngineError(error)
    }
}

fn request_kind(request: &Request) -> &'static str {
    match request {
        Request::PlaceHold { .. } => "place_hold",
        Request::ConfirmHold { .. } => "confirm_hold",
        Request::ReleaseHold { .. } => "release_hold",
        Request::CancelBooking { .. } => "cancel_booking",
        Request::ExtendHold { .. } => "extend_hold",
        Request::StartPayment { .. } => "start_payment",
        Request::JoinWaitlist { .. } => "join_waitlist",
        Request::LeaveWaitlist { .. } => "leave_waitlist",
        Request::UpdateTerms { .. } => "update_terms",
        Request::CancelEvent => "cancel_event",
        Request::RedeemTicket { .. } => "redeem_ticket",
        Request::SetPricing { .. } => "set_pricing",
    }
}

fn rename_missing_event(error: Error, kind: &'static str, id: &str) -> Error {
    match error {
        Error::NotFound { kind: "event", .. } => Error::not_found(kind, id),
        other => other,
    }
}

fn hold_event(hold_id: &HoldId) -> Result<EventId> {
    hold_id.event_id().ok_or_else(|| Error::not_found("hold", hold_id.as_str()))
}

fn booking_event(booking_id: &BookingId) -> Result<EventId> {
    booking_id.event_id().ok_or_else(|| Error::not_found("booking", booking_id.as_str()))
}

fn expect_hold(answer: Answer) -> Result<HoldView> {
    match answer {
        Answer::Hold(hold) => Ok(hold),
        other => unreachable!("expected a hold, got {other:?}"),
    }
}

fn expect_waitlist(answer: Answer) -> Result<WaitlistView> {
    match answer {
        Answer::Waitlist(view) => Ok(view),
        other => unreachable!("expected a waitlist entry, got {other:?}"),
    }
}

fn expect_booking(answer: Answer) -> Result<BookingView> {
    match answer {
        Answer::Booking(booking) => Ok(booking),
        other => unreachable!("expected a booking, got {other:?}"),
    }
}

// What a watch reads besides the feed.
impl WatchSource for Engine {
    fn seat_overview<'a>(
        &'a self,
        event_id: &'a EventId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<EventOverview>> + Send + 'a>> {
        Box::pin(async move {
            match self.read(event_id, Query::Overview { include_seats: true }).await? {
                Answer::Overview(overview) => Ok(overview),
                other => unreachable!("an overview query answers with the overview, got {other:?}"),
            }
        })
    }

    fn seat_names(&self, event_id: &EventId) -> Result<(Arc<SeatMap>, Arc<EventSnapshot>)> {
        Engine::seat_names(self, event_id)
    }
}

// The waiting rooms.
impl Engine {
    /// Switches an event's waiting room on or off, or changes how it admits. Stored before it
    /// takes effect.
    pub async fn configure_queue(&self, event_id: &EventId, config: QueueConfig) -> Result<Progress> {
        config.validate()?;
        let event = self.catalog().event(event_id)?;
        if config.seats_per_pass > event.terms.buyer_seat_limit {
            return Err(Error::invalid(
                "seats_per_pass",
                format!(
                    "at most the event's per-buyer limit of {}, got {}",
                    event.terms.buyer_seat_limit, config.seats_per_pass
                ),
            ));
        }
        // A line that has handed out positions keeps its order, so a later opening cannot apply
        // to it: refused rather than accepted and ignored. With no position handed out yet, the
        // line closes again until then (`QueueState::configure`).
        if let Some(opens_at_ms) = config.opens_at_ms.filter(|&opens_at_ms| opens_at_ms > self.now_ms()) {
            let progress = self.queue(event_id).await?.progress.borrow().clone();
            if progress.opened && progress.joined > 0 {
                return Err(Error::Queue {
                    event_id: event_id.to_string(),
                    reason: format!(
                        "opens_at: the line opened already and keeps its order, so an opening at {opens_at_ms} ms \
                         (Unix time) cannot apply; leave opens_at unset or in the past"
                    ),
                });
            }
        }
        self.persist(vec![turnstile_storage::Write::Put {
            kind: turnstile_storage::RecordKind::Queue,
            key: event_id.to_string(),
            value: postcard::to_stdvec(&config).expect("queue configs serialize"),
        }])
        .await?;
        self.queue_configs().insert(event_id.clone(), config.clone());
        let queue = self.queue(event_id).await?;
        queue
            .actor
            .call(
                |reply| QueueMsg::Configure { config, reply },
                Some(Duration::from_millis(limits::ACTOR_CALL_TIMEOUT_MS)),
            )
            .await
            .map_err(|error| Error::Unavailable { reason: format!("waiting room of '{event_id}': {error}") })?;
        let progress = queue.progress.borrow().clone();
        Ok(progress)
    }

    /// The event's waiting room settings, if an admin ever set them.
    pub fn queue_config(&self, event_id: &EventId) -> Option<QueueConfig> {
        self.queue_configs().get(event_id).map(|config| config.clone())
    }

    pub fn queue_enabled(&self, event_id: &EventId) -> bool {
        self.queue_configs().get(event_id).is_some_and(|config| config.enabled)
    }

    /// The event's line as stored (`None` before its waiting room first ran).
    pub(crate) fn queue_line(&self, event_id: &EventId) -> Result<Option<LineRecord>> {
        let Some(store) = self.store() else { return Ok(None) };
        let Some(bytes) = store
            .record(turnstile_storage::RecordKind::QueueLine, event_id.as_str())
            .map_err(crate::engine::storage_error)?
        else {
            return Ok(None);
        };
        postcard::from_bytes(&bytes).map(Some).map_err(|error| Error::Unavailable {
            reason: format!("the stored line of '{event_id}' does not decode: {error}"),
        })
    }

    /// The progress of the event's line, for a buyer who has a place already (their queue token
    /// says which): nobody is put in line.
    pub async fn queue_progress(&self, event_id: &EventId) -> Result<watch::Receiver<Progress>> {
        Ok(self.queue(event_id).await?.progress)
    }

    /// Puts the buyer in line, or finds their place if they joined before.
    pub async fn join_queue(&self, event_id: &EventId, buyer: &BuyerId) -> Result<(Place, watch::Receiver<Progress>)> {
        let queue = self.queue(event_id).await?;
        let place = self.queue_call(event_id, &queue, |reply| QueueMsg::Join { buyer: buyer.clone(), reply }).await?;
        Ok((place, queue.progress.clone()))
    }

    /// Uses the pass of an admitted place for one hold. A retry of that hold (same idempotency
    /// key) may use it again; anything else is refused.
    pub async fn claim_pass(&self, event_id: &EventId, position: u64, idempotency_key: Option<String>) -> Result<()> {
        let queue = self.queue(event_id).await?;
        self.queue_call(event_id, &queue, |reply| QueueMsg::Claim { position, idempotency_key, reply }).await
    }

    /// Gives a claimed pass back after its hold was refused.
    pub async fn unclaim_pass(&self, event_id: &EventId, position: u64) {
        if let Ok(queue) = self.queue(event_id).await {
            let _ = queue.actor.cast(QueueMsg::Unclaim { position });
        }
    }

    async fn queue_call<T: Send + 'static>(
        &self,
        event_id: &EventId,
        queue: &QueueHandle,
        message: impl FnOnce(RpcReplyPort<Result<T>>) -> QueueMsg,
    ) -> Result<T> {
        let timeout = Some(Duration::from_millis(limits::ACTOR_CALL_TIMEOUT_MS));
        match queue.actor.call(message, timeout).await {
            Ok(ractor::rpc::CallResult::Success(answer)) => answer,
            _ => Err(Error::Unavailable { reason: format!("the waiting room of '{event_id}' did not answer") }),
        }
    }

    /// The event's queue actor, started on first use with the stored settings and line (in a
    /// cluster, once this node leads the event's shard and has applied its log).
    async fn queue(&self, event_id: &EventId) -> Result<QueueHandle> {
        self.catalog().event(event_id)?;
        if let Some(handle) = self.queues().get(event_id).and_then(|cell| cell.get().cloned()) {
            return Ok(handle);
        }
        self.shard_ready(event_id).await?;
        let cell = self.queues().entry(event_id.clone()).or_default().clone();
        let handle = cell
            .get_or_try_init(|| async {
                let config = self.queue_config(event_id).unwrap_or_default();
                let (sender, progress) = watch::channel(Progress {
                    enabled: false,
                    opens_at_ms: None,
                    opened: false,
                    joined: 0,
                    admitted_through: 0,
                    sold_out: false,
                    admissions_per_second: 0.0,
                    batches: Arc::new(Vec::new()),
                    seats_per_pass: 1,
                });
                let host: Arc<dyn QueueHost> = Arc::new(EngineQueueHost(self.downgrade()));
                let arguments = QueueArguments { event_id: event_id.clone(), host, config };
                let (actor, _join) = Actor::spawn(None, QueueActor, (arguments, sender))
                    .await
                    .map_err(|error| Error::Unavailable { reason: format!("waiting room failed to start: {error}") })?;
                Ok::<_, Error>(QueueHandle { actor, progress })
            })
            .await?;
        Ok(handle.clone())
    }

    /// Seats on sale, in holds and about to come back by `horizon_ms`; `with_expiring` asks the
    /// event's actor for the last (the rest comes from its published snapshot).
    pub(crate) async fn queue_gauge(&self, event_id: &EventId, horizon_ms: u64, with_expiring: bool) -> QueueGauge {
        let Ok(snapshot) = self.event_snapshot(event_id).await else {
            return QueueGauge { cancelled: true, ..QueueGauge::default() };
        };
        let availability = snapshot.availability();
        let mut gauge = QueueGauge {
            available: availability.iter().map(|row| row.available).sum(),
            held: availability.iter().map(|row| row.held).sum(),
            expiring: 0,
            cancelled: snapshot.status == EventStatus::Cancelled,
        };
        if with_expiring && gauge.held > 0 {
            if let Ok(Answer::Places(places)) =
                self.read(event_id, Query::PlacesExpiringBy { deadline_ms: horizon_ms }).await
            {
                gauge.expiring = places;
            }
        }
        gauge
    }
}

/// The engine as its waiting rooms see it, held weakly: a queue does not keep a stopped engine
/// alive, and finds nothing (no seats, no stored line) once it is gone.
struct EngineQueueHost(WeakEngine);

impl QueueHost for EngineQueueHost {
    fn now_ms(&self) -> u64 {
        self.0.upgrade().map(|engine| engine.now_ms()).unwrap_or(0)
    }

    fn gauge(
        &self,
        event_id: &EventId,
        horizon_ms: u64,
        with_expiring: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = QueueGauge> + Send + '_>> {
        let engine = self.0.upgrade();
        let event_id = event_id.clone();
        Box::pin(async move {
            match engine {
                Some(engine) => engine.queue_gauge(&event_id, horizon_ms, with_expiring).await,
                None => QueueGauge { cancelled: true, ..QueueGauge::default() },
            }
        })
    }

    fn buyer_seat_limit(&self, event_id: &EventId) -> u32 {
        self.0
            .upgrade()
            .and_then(|engine| engine.catalog().event(event_id).ok().map(|event| event.terms.buyer_seat_limit))
            .unwrap_or(1)
    }

    fn stored_line(&self, event_id: &EventId) -> Result<Option<LineRecord>> {
        match self.0.upgrade() {
            Some(engine) => engine.queue_line(event_id),
            None => Ok(None),
        }
    }

    fn store_line<'a>(
        &'a self,
        event_id: &'a EventId,
        line: &'a LineRecord,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let Some(engine) = self.0.upgrade() else {
                return Err(Error::Unavailable { reason: "the engine stopped".into() });
            };
            engine
                .persist_on(
                    event_id.as_str(),
                    vec![Write::Put {
                        kind: RecordKind::QueueLine,
                        key: event_id.to_string(),
                        value: postcard::to_stdvec(line).expect("lines serialize"),
                    }],
                )
                .await
        })
    }
}
