//! Turnstile's seat inventory engine.
//!
//! Layout:
//! - [`seat_map`]: a venue's seats, validated and given dense indexes;
//! - [`inventory`]: one event's inventory as plain data with a deterministic `decide` / `apply`
//!   over [`inventory::Command`]s; no runtime, no I/O, tested on its own;
//! - [`actor`]: the ractor actor that owns one event's inventory, serializes its changes and runs
//!   its one expiry timer;
//! - [`feed`]: each event's change feed and the watch subscriptions over it (live seat map);
//! - [`queue`]: the waiting room: one queue actor per on-sale meters admission;
//! - [`journal`]: where changes are made durable (the node's store, or a replicated log);
//! - [`catalog`]: venues, performers and events (the descriptive data around inventories);
//! - [`engine`]: the facade the gateway calls: routes requests to event actors, spawning them on
//!   first use, and keeps the per-buyer booking directory;
//! - [`limits`], [`ids`], [`error`], [`clock`]: bounds, identifiers, rejections and time.

pub mod actor;
pub mod catalog;
pub mod clock;
pub mod engine;
pub mod error;
pub mod feed;
pub mod ids;
pub mod inventory;
pub mod journal;
pub mod limits;
pub mod queue;
pub mod seat_map;

pub use engine::Engine;
pub use error::{Error, Result, TicketRejection};
