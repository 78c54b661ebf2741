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

use crate::error::{Error, Result};
use crate::ids::{BuyerId, EventId};
use crate::limits;

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

/// What a waiting room needs of the engine that runs it: its clock, the event's seats, where its
/// line is stored. The engine implements it over a weak reference, so a queue never keeps a
/// stopped engine alive (and this module never names the engine).
pub trait QueueHost: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
    /// Seats on sale, in holds and about to come back by `horizon_ms` (`with_expiring` asks the
    /// event's actor for the last).
    fn gauge(
        &self,
        event_id: &EventId,
        horizon_ms: u64,
        with_expiring: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = QueueGauge> + Send + '_>>;
    /// The most seats one buyer may hold on the event (1 when the event is unknown).
    fn buyer_seat_limit(&self, event_id: &EventId) -> u32;
    /// The line as stored, if the waiting room ran before.
    fn stored_line(&self, event_id: &EventId) -> Result<Option<LineRecord>>;
    /// Stores the line on the event's stream (replicated with its shard in a cluster).
    fn store_line<'a>(
        &'a self,
        event_id: &'a EventId,
        line: &'a LineRecord,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>;
}

pub struct QueueArguments {
    pub event_id: EventId,
    pub host: Arc<dyn QueueHost>,
    pub config: QueueConfig,
}

pub struct QueueActor;

pub struct QueueState {
    event_id: EventId,
    /// The engine that runs the queue (which holds it weakly).
    host: Arc<dyn QueueHost>,
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
        self.host.store_line(&self.event_id, &line).await?;
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
        let now_ms = self.host.now_ms();
        if config.opens_at_ms.is_some_and(|opens_at_ms| opens_at_ms > now_ms) && self.joined == 0 {
            self.opened = false;
        }
        self.config = config;
        self.tick().await;
    }

    /// Draws the early joiners at the opening, retires expired batches, admits whoever the
    /// mode allows and publishes the progress.
    async fn tick(&mut self) {
        let now_ms = self.host.now_ms();
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
        let gauge = self.host.gauge(&self.event_id, now_ms + self.config.pass_ttl_ms, automatic).await;
        let seats_per_pass = self.seats_per_pass();
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

    fn seats_per_pass(&self) -> u32 {
        if self.config.seats_per_pass > 0 {
            return self.config.seats_per_pass;
        }
        let limit = self.host.buyer_seat_limit(&self.event_id);
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
        let now_ms = arguments.host.now_ms();
        let stored = arguments.host.stored_line(&arguments.event_id)?.unwrap_or_default();
        let mut state = QueueState {
            event_id: arguments.event_id,
            host: arguments.host,
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
