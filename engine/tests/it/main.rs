//! The crate's integration tests in one binary: each file a module (one link instead of one
//! per file). Tests that measure the process itself keep a binary of their own.

mod actor;
#[path = "../common/mod.rs"]
mod common;
mod durability;
mod model;
mod onsale;
mod queue;
mod storage_faults;
mod waitlist;
mod watch;
