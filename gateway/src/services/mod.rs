//! The gRPC services, one file each: every method authenticates, converts the request, calls the
//! engine (or relays the call to its shard leader) and converts the answer; errors go through
//! `error::status`. They all implement their trait on `state::Gateway`.

mod admin;
mod booking;
mod catalog;
pub mod queue;
