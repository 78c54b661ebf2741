//! Turnstile's seat logic, as plain synchronous code: no runtime, no actors, no storage. The
//! engine (`turnstile-engine`) runs it; everything here is tested on its own.
//!
//! - [`seat_map`]: a venue's seats, validated and given dense indexes;
//! - [`inventory`]: one event's inventory as plain data with a deterministic `decide` / `apply`
//!   over [`inventory::Command`]s;
//! - [`catalog`]: venues, performers and events (the descriptive data around inventories);
//! - [`limits`], [`ids`], [`error`]: bounds, identifiers and rejections.

pub mod catalog;
pub mod error;
pub mod ids;
pub mod inventory;
pub mod limits;
pub mod seat_map;

pub use error::{Error, Result, TicketRejection};
