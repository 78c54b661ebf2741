//! The waiting room: one queue actor per event meters admission to an on-sale.
//!
//! Buyers join and get a place in line; the actor admits them in order, in batches, at a fixed
//! rate or automatically as fast as the event's inventory can serve them. An admitted buyer gets
//! a pass (signed by the gateway) that lets them hold once before it expires; a pass that expires
//! unused frees its slot. When the event sells out, admission stops and everyone waiting is told;
//! when seats come back, it resumes.
//!
//! A waiting buyer costs one map entry of a 64-bit keyed hash of their id and a 32-bit position
//! (about 20 bytes with the map's overhead); nothing else is kept per buyer. Watchers do not poll
//! the actor: it publishes its progress (how far admission has got, which batches hold live
//! passes) on a `watch` channel and each watcher works out its own standing from its position.
//!
//! Before an opening time, joiners are collected without a position and put in random order at
//! the opening; later joiners are first in, first out.
//!
//! What defines the line is stored on the event's stream (`RecordKind::QueueLine`, replicated with
//! the event's shard in a cluster), so a queue actor started anew (a restart, a new shard leader)
//! goes on with it: whether it opened, how far positions were handed out, how far admission got,
//! the batches whose passes are live and the passes used. Positions are handed out in blocks
//! reserved ahead (`POSITIONS_RESERVED`), so a join is not a write; positions of the last block
//! that nobody got before a restart are admitted like anyone's (their passes go unused). An
//! admission is stored before its passes are published. A waiting buyer's place is in their queue
//! token (`WatchQueue`), not in the stored line.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::actor::{Answer, Query};
use crate::engine::WeakEngine;
use crate::error::{Error, Result};
use crate::ids::{BuyerId, EventId};
use crate::inventory::EventStatus;
use crate::limits;
use crate::Engine;

/// How an event's waiting room is run. Stored with the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    pub enabled: bool,
    /// Buyers admitted per second; 0 admits automatically, following the inventory.
    pub rate_per_second: u32,
    /// Buyers who join before this time are put in random order at this time.
    pub opens_at_ms: Option<u64>,
    /// How long an admitted buyer has to place their hold.
    pub pass_ttl_ms: u64,
    /// Seats one pass allows; 0 takes the event's per-buyer limit.
    pub seats_per_pass: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            rate_per_second: 0,
            opens_at_ms: None,
            pass_ttl_ms: limits::PASS_TTL_MS_DEFAULT,
            seats_per_pass: 0,
        }
    }
}

impl QueueConfig {
    pub fn validate(&self) -> Result<()> {
        if self.rate_per_second > limits::ADMISSION_RATE_MAX {
            return Err(Error::invalid(
                "admission_rate_per_second",
                format!("at most {} buyers per second, got {}", limits::ADMISSION_RATE_MAX, self.rate_per_second),
            ));
        }
        if !(limits::PASS_TTL_MS_MIN..=limits::PASS_TTL_MS_MAX).contains(&self.pass_ttl_ms) {
            return Err(Error::invalid(
                "pass_ttl_seconds",
                format!(
                    "must be between {} and {} seconds, got {}",
                    limits::PASS_TTL_MS_MIN / 1_000,
                    limits::PASS_TTL_MS_MAX / 1_000,
                    self.pass_ttl_ms / 1_000
                ),
            ));
        }
        if self.seats_per_pass > limits::SEATS_PER_HOLD_MAX {
            return Err(Error::invalid(
                "seats_per_pass",
                format!(
                    "at most {} (the seats one hold may take), got {}",
                    limits::SEATS_PER_HOLD_MAX,
                    self.seats_per_pass
                ),
            ));
        }
        Ok(())
    }
}

/// Buyers admitted together: positions `first..=last`, whose passes expire together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub first: u64,
    pub last: u64,
    pub admitted_at_ms: u64,
    pub expires_at_ms: u64,
}

/// What the queue actor publishes for watchers after every change.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub enabled: bool,
    pub opens_at_ms: Option<u64>,
    /// Positions have been drawn for those who joined before the opening.
    pub opened: bool,
    /// Positions handed out so far.
    pub joined: u64,
    /// Every position up to this one has been admitted.
    pub admitted_through: u64,
    pub sold_out: bool,
    /// Recent admission speed, for wait estimates.
    pub admissions_per_second: f64,
    /// Batches whose passes are still live, oldest first.
    pub batches: Arc<Vec<Batch>>,
    pub seats_per_pass: u32,
}

/// Where one buyer stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Standing {
    /// The waiting room is off: hold without a pass.
    Closed,
    /// Joined before the opening; the order is drawn then.
    NotOpen {
        opens_at_ms: Option<u64>,
    },
    Waiting {
        ahead: u64,
        estimated_wait_seconds: Option<u64>,
    },
    Admitted {
        pass_expires_at_ms: u64,
        seats: u32,
    },
    /// Admitted, but the pass expired without a hold.
    PassExpired,
    SoldOut,
}

impl Progress {
    /// The standing of the buyer at `position` (0: not drawn yet).
    pub fn standing(&self, position: u64) -> Standing {
        if !self.enabled {
            return Standing::Closed;
        }
        if position == 0 {
            return Standing::NotOpen { opens_at_ms: self.opens_at_ms };
        }
        if position <= self.admitted_through {
            return match self.batch_of(position) {
                Some(batch) => {
                    Standing::Admitted { pass_expires_at_ms: batch.expires_at_ms, seats: self.seats_per_pass }
                }
                None => Standing::PassExpired,
            };
        }
        if self.sold_out {
            return Standing::SoldOut;
        }
        let ahead = position - self.admitted_through - 1;
        let estimated_wait_seconds =
            (self.admissions_per_second > 0.0).then(|| ((ahead + 1) as f64 / self.admissions_per_second).ceil() as u64);
        Standing::Waiting { ahead, estimated_wait_seconds }
    }

    pub fn batch_of(&self, position: u64) -> Option<&Batch> {
        let index = self.batches.partition_point(|batch| batch.last < position);
        self.batches.get(index).filter(|batch| batch.first <= position)
    }
}

/// A buyer's place in line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    /// 1-based; 0 until the opening draw for those who joined before it.
    pub position: u64,
}

pub enum QueueMsg {
    Join {
        buyer: BuyerId,
        reply: RpcReplyPort<Result<Place>>,
    },
    /// Marks the pass of `position` used by a hold with this idempotency key.
    Claim {
        position: u64,
        idempotency_key: Option<String>,
        reply: RpcReplyPort<Result<()>>,
    },
    /// The hold the pass was claimed for did not happen: the pass may be used again.
    Unclaim {
        position: u64,
    },
    Configure {
        config: QueueConfig,
        reply: RpcReplyPort<()>,
    },
    Tick,
}

pub struct QueueArguments {
    pub event_id: EventId,
    pub engine: WeakEngine,
    pub config: QueueConfig,
}

pub struct QueueActor;

pub struct QueueState {
    event_id: EventId,
    /// To read the inventory; weak, so a dropped engine is not kept alive by its queues.
    engine: WeakEngine,
    config: QueueConfig,
    /// Seeds the buyer hash; a fresh key per queue so ids cannot be chosen to collide.
    hasher: std::collections::hash_map::RandomState,
    places: HashMap<u64, u32>,
    /// Hashes of buyers who joined before the opening.
    early: HashSet<u64>,
    opened: bool,
    joined: u64,
    admitted_through: u64,
    batches: VecDeque<Batch>,
    /// Positions whose pass was used, with the idempotency key of the hold, while their batch
    /// is live.
    used: HashMap<u64, Option<String>>,
    /// Admissions owed in rate mode (fractions carry over between ticks).
    credit: f64,
    last_tick_ms: u64,
    /// Admissions over the last ticks: `(at_ms, count)`, for the speed estimate.
    recent: VecDeque<(u64, u64)>,
    sold_out: bool,
    progress: watch::Sender<Progress>,
    ticker: Option<JoinHandle<()>>,
    /// Positions handed out at most, as stored.
    reserved: u64,
    /// The line as last stored (a change is stored before it is published).
    stored: LineRecord,
}

/// How often the queue actor admits and publishes.
const TICK: Duration = Duration::from_millis(100);
/// Positions reserved (stored) ahead of those handed out: one write per this many joins.
const POSITIONS_RESERVED: u64 = 64;

/// The line as stored: what a queue actor started anew goes on from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LineRecord {
    pub opened: bool,
    /// Positions up to this one may have been handed out.
    pub reserved: u64,
    pub admitted_through: u64,
    pub batches: Vec<Batch>,
    /// Positions whose pass was used, with the hold's idempotency key.
    pub used: Vec<(u64, Option<String>)>,
}
/// The window of the admission speed estimate.
const SPEED_WINDOW_MS: u64 = 10_000;

impl QueueState {
    fn buyer_key(&self, buyer: &BuyerId) -> u64 {
        self.hasher.hash_one(buyer.as_str())
    }

    async fn join(&mut self, buyer: &BuyerId) -> Result<Place> {
        if !self.config.enabled {
            return Err(Error::Queue {
                event_id: self.event_id.to_string(),
                reason: "the waiting room is off; hold seats directly".into(),
            });
        }
        let key = self.buyer_key(buyer);
        if let Some(&position) = self.places.get(&key) {
            return Ok(Place { position: u64::from(position) });
        }
        if !self.opened && self.early.contains(&key) {
            return Ok(Place { position: 0 });
        }
        if self.joined + self.early.len() as u64 >= limits::QUEUE_BUYERS_MAX {
            return Err(Error::LimitExceeded {
                limit: "queue_buyers",
                reason: format!("the waiting room of '{}' holds {} buyers", self.event_id, limits::QUEUE_BUYERS_MAX),
            });
        }
        if !self.opened {
            self.early.insert(key);
            return Ok(Place { position: 0 });
        }
        if self.joined + 1 > self.reserved {
            self.reserved = self.joined + POSITIONS_RESERVED;
            self.store().await?;
        }
        self.joined += 1;
        self.places.insert(key, self.joined as u32);
        Ok(Place { position: self.joined })
    }

    fn line(&self) -> LineRecord {
        let mut used: Vec<(u64, Option<String>)> =
            self.used.iter().map(|(position, key)| (*position, key.clone())).collect();
        used.sort_unstable();
        LineRecord {
            opened: self.opened,
            reserved: self.reserved,
            admitted_through: self.admitted_through,
            batches: self.batches.iter().copied().collect(),
            used,
        }
    }

    /// Stores the line if it changed since it was last stored.
    async fn store(&mut self) -> Result<()> {
        let line = self.line();
        if line == self.stored {
            return Ok(());
        }
        let Some(engine) = self.engine.upgrade() else {
            return Err(Error::Unavailable { reason: "the engine stopped".into() });
        };
        engine
            .persist_on(
                self.event_id.as_str(),
                vec![turnstile_storage::Write::Put {
                    kind: turnstile_storage::RecordKind::QueueLine,
                    key: self.event_id.to_string(),
                    value: postcard::to_stdvec(&line).expect("lines serialize"),
                }],
            )
            .await?;
        self.stored = line;
        Ok(())
    }

    fn claim(&mut self, position: u64, idempotency_key: Option<String>) -> Result<()> {
        let denied = |reason: &str| Error::PermissionDenied { reason: reason.to_string() };
        if position == 0 || position > self.admitted_through {
            return Err(denied("this admission pass is not for an admitted place"));
        }
        let live = self.batches.iter().any(|batch| batch.first <= position && position <= batch.last);
        if !live {
            return Err(denied("this admission pass has expired"));
        }
        match self.used.get(&position) {
            Some(Some(key)) if idempotency_key.as_ref() == Some(key) => Ok(()),
            Some(_) => Err(denied("this admission pass has already been used")),
            None => {
                self.used.insert(position, idempotency_key);
                Ok(())
            }
        }
    }

    async fn configure(&mut self, config: QueueConfig) {
        // A later opening, before anyone has a position (the line opened while nobody was in it,
        // or while the room was off): draw again then. `Engine::configure_queue` refuses it once
        // positions were handed out.
        let now_ms = self.engine.upgrade().map(|engine| engine.now_ms()).unwrap_or(0);
        if config.opens_at_ms.is_some_and(|opens_at_ms| opens_at_ms > now_ms) && self.joined == 0 {
            self.opened = false;
        }
        self.config = config;
        self.tick().await;
    }

    /// Draws the early joiners at the opening, retires expired batches, admits whoever the
    /// mode allows and publishes the progress.
    async fn tick(&mut self) {
        let Some(engine) = self.engine.upgrade() else { return };
        let now_ms = engine.now_ms();
        if !self.opened && self.config.opens_at_ms.is_none_or(|opens_at_ms| opens_at_ms <= now_ms) {
            self.draw();
        }
        while self.batches.front().is_some_and(|batch| batch.expires_at_ms <= now_ms) {
            let batch = self.batches.pop_front().expect("front exists");
            for position in batch.first..=batch.last {
                self.used.remove(&position);
            }
        }
        let automatic = self.config.rate_per_second == 0;
        let gauge = engine.queue_gauge(&self.event_id, now_ms + self.config.pass_ttl_ms, automatic).await;
        let seats_per_pass = self.seats_per_pass(&engine);
        let elapsed_ms = now_ms.saturating_sub(self.last_tick_ms).min(1_000);
        self.last_tick_ms = now_ms;
        self.sold_out = gauge.cancelled || (gauge.available == 0 && gauge.held == 0);
        let waiting = self.joined - self.admitted_through;
        let mut admit = 0;
        if self.config.enabled && self.opened && !self.sold_out && waiting > 0 {
            if self.config.rate_per_second > 0 {
                let rate = f64::from(self.config.rate_per_second);
                self.credit = (self.credit + rate * elapsed_ms as f64 / 1_000.0).min(rate.max(1.0));
                if gauge.available > 0 {
                    admit = self.credit.floor() as u64;
                }
            } else {
                // Every live unused pass may still take `seats_per_pass` seats.
                let outstanding: u64 = self
                    .batches
                    .iter()
                    .map(|batch| batch.last - batch.first + 1)
                    .sum::<u64>()
                    .saturating_sub(self.used.len() as u64);
                // Rounded up: the last few seats go to one more buyer, who may take fewer than
                // a pass allows, rather than to nobody.
                let servable = u64::from(gauge.available) + u64::from(gauge.expiring);
                let reserved = outstanding * u64::from(seats_per_pass);
                admit = servable.saturating_sub(reserved).div_ceil(u64::from(seats_per_pass.max(1)));
            }
            admit = admit.min(waiting).min(limits::ADMISSIONS_PER_TICK_MAX);
        }
        if admit > 0 {
            if self.config.rate_per_second > 0 {
                self.credit -= admit as f64;
            }
            let batch = Batch {
                first: self.admitted_through + 1,
                last: self.admitted_through + admit,
                admitted_at_ms: now_ms,
                expires_at_ms: now_ms + self.config.pass_ttl_ms,
            };
            self.admitted_through = batch.last;
            self.batches.push_back(batch);
            metrics::counter!("turnstile_queue_admissions_total").increment(admit);
        }
        self.recent.push_back((now_ms, admit));
        while self.recent.front().is_some_and(|(at_ms, _)| at_ms + SPEED_WINDOW_MS < now_ms) {
            self.recent.pop_front();
        }
        metrics::gauge!("turnstile_queue_waiting", "event" => self.event_id.to_string())
            .set((self.joined - self.admitted_through + self.early.len() as u64) as f64);
        // Positions drawn at the opening are handed out: reserve them.
        if self.joined > self.reserved {
            self.reserved = self.joined + POSITIONS_RESERVED;
        }
        // Stored before published: a pass handed out is one a new leader knows of. If storing
        // fails (this node no longer leads the shard), nothing new is published.
        if let Err(error) = self.store().await {
            tracing::debug!(event = %self.event_id, %error, "the waiting room's line was not stored");
            return;
        }
        self.publish(seats_per_pass);
    }

    fn seats_per_pass(&self, engine: &Engine) -> u32 {
        if self.config.seats_per_pass > 0 {
            return self.config.seats_per_pass;
        }
        let limit = engine.catalog().event(&self.event_id).map(|event| event.terms.buyer_seat_limit).unwrap_or(1);
        limit.clamp(1, limits::SEATS_PER_HOLD_MAX)
    }

    fn draw(&mut self) {
        self.opened = true;
        let mut early: Vec<u64> = std::mem::take(&mut self.early).into_iter().collect();
        early.shuffle(&mut rand::rng());
        for key in early {
            self.joined += 1;
            self.places.insert(key, self.joined as u32);
        }
    }

    fn publish(&self, seats_per_pass: u32) {
        let window_ms = self.recent.front().map(|(at_ms, _)| self.last_tick_ms - at_ms).unwrap_or(0).max(1_000);
        let admitted: u64 = self.recent.iter().map(|(_, count)| count).sum();
        let progress = Progress {
            enabled: self.config.enabled,
            opens_at_ms: self.config.opens_at_ms,
            opened: self.opened,
            joined: self.joined,
            admitted_through: self.admitted_through,
            sold_out: self.sold_out,
            admissions_per_second: if self.config.rate_per_second > 0 {
                f64::from(self.config.rate_per_second)
            } else {
                admitted as f64 * 1_000.0 / window_ms as f64
            },
            batches: Arc::new(self.batches.iter().copied().collect()),
            seats_per_pass,
        };
        self.progress.send_if_modified(|current| {
            let changed = *current != progress;
            if changed {
                *current = progress;
            }
            changed
        });
    }
}

impl Actor for QueueActor {
    type Msg = QueueMsg;
    type State = QueueState;
    type Arguments = (QueueArguments, watch::Sender<Progress>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (arguments, progress): Self::Arguments,
    ) -> std::result::Result<Self::State, ActorProcessingErr> {
        let now_ms = arguments.engine.upgrade().map(|engine| engine.now_ms()).unwrap_or(0);
        let stored = match arguments.engine.upgrade() {
            Some(engine) => engine.queue_line(&arguments.event_id)?,
            None => None,
        }
        .unwrap_or_default();
        let mut state = QueueState {
            event_id: arguments.event_id,
            engine: arguments.engine,
            config: arguments.config,
            hasher: std::collections::hash_map::RandomState::new(),
            places: HashMap::new(),
            early: HashSet::new(),
            // Every reserved position counts as handed out: some may have been.
            opened: stored.opened,
            joined: stored.reserved,
            admitted_through: stored.admitted_through,
            batches: stored.batches.iter().copied().collect(),
            used: stored.used.iter().cloned().collect(),
            credit: 0.0,
            last_tick_ms: now_ms,
            recent: VecDeque::new(),
            sold_out: false,
            progress,
            ticker: None,
            reserved: stored.reserved,
            stored,
        };
        state.ticker = Some(myself.send_interval(TICK, || QueueMsg::Tick));
        state.tick().await;
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match message {
            QueueMsg::Join { buyer, reply } => {
                let place = state.join(&buyer).await;
                let _ = reply.send(place);
            }
            QueueMsg::Claim { position, idempotency_key, reply } => {
                let claimed = state.claim(position, idempotency_key);
                let _ = reply.send(claimed);
            }
            QueueMsg::Unclaim { position } => {
                state.used.remove(&position);
            }
            QueueMsg::Configure { config, reply } => {
                state.configure(config).await;
                let _ = reply.send(());
            }
            QueueMsg::Tick => state.tick().await,
        }
        Ok(())
    }
}

/// A queue actor and the progress it publishes.
#[derive(Clone)]
pub struct QueueHandle {
    pub actor: ActorRef<QueueMsg>,
    pub progress: watch::Receiver<Progress>,
}

/// What admission needs to know about the inventory, read without the event's mailbox except
/// for the holds about to expire.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueGauge {
    pub available: u32,
    pub held: u32,
    /// Places in holds that expire before the horizon.
    pub expiring: u32,
    pub cancelled: bool,
}

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
                let arguments = QueueArguments { event_id: event_id.clone(), engine: self.downgrade(), config };
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
