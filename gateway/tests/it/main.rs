//! The crate's integration tests in one binary: each file a module (one link instead of one
//! per file). Tests that measure the process itself keep a binary of their own.

mod authz;
mod backup;
mod bad_input;
mod client_cli;
mod cluster;
mod commerce;
#[path = "../common/mod.rs"]
mod common;
mod crash;
mod forwarding;
mod grpc_api;
mod queue;
mod race;
mod search;
mod soak;
mod watch;
