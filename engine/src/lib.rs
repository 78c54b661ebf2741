//! Turnstile's seat inventory engine: the runtime around the seat logic of `turnstile-domain`
//! (re-exported here as [`seat_map`], [`inventory`], [`catalog`], [`limits`], [`ids`] and
//! [`error`], plain synchronous code).
//!
//! Layout:
//! - [`messages`]: what the engine, the actors, the feed and the queues pass each other;
//! - [`directory`]: every buyer's bookings across events, published by the actors;
//! - [`actor`]: the ractor actor that owns one event's inventory, serializes its changes and runs
//!   its one expiry timer;
//! - [`feed`]: each event's change feed and the watch subscriptions over it (live seat map);
//! - [`queue`]: the waiting room: one queue actor per on-sale meters admission;
//! - [`journal`]: where changes are made durable (the node's store, or a replicated log);
//! - [`engine`]: the facade the gateway calls: routes requests to event actors, spawning them on
//!   first use, and keeps the per-buyer booking directory;
//! - [`clock`]: time.

pub mod actor;
pub mod clock;
pub mod directory;
pub mod engine;
pub mod feed;
pub mod journal;
pub mod messages;
pub mod queue;

pub use turnstile_domain::{catalog, error, ids, inventory, limits, seat_map};

pub use engine::Engine;
pub use error::{Error, Result, TicketRejection};
