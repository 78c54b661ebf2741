//! The crate's integration tests in one binary: each file a module (one link instead of one
//! per file). Tests that measure the process itself keep a binary of their own.

mod service;
mod shards;
mod storage_suite;
mod three_nodes;
