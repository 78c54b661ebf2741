//! Where an engine's changes go before they are acknowledged.
//!
//! A single node writes them to its own [`Store`]. In a cluster (docs/CLUSTER.md) they are
//! replicated first: the cluster layer implements [`Journal`] by proposing each job to the raft
//! group of the event's shard, and every replica writes the committed job to its own store. The
//! engine does not know which: it submits jobs and waits for `done`.

use std::future::Future;
use std::pin::Pin;

use turnstile_storage::{CheckpointFiller, Done, Store, Write};

use crate::ids::EventId;
use crate::Result;

/// Makes jobs durable (and, in a cluster, replicated to a majority) before `done` is called.
pub trait Journal: Send + Sync + 'static {
    /// Stores `writes` on `stream` (an event id, or `""` for the catalog). Jobs of one stream take
    /// effect in the order they were submitted; `done` runs once the job is durable or has failed.
    fn submit(&self, stream: &str, writes: Vec<Write>, done: Done);

    /// Takes a checkpoint's place in `stream`'s order (it covers every job submitted before) and
    /// returns where to put its state, which the caller serializes off its own path. `None` when
    /// this journal keeps no checkpoints (a cluster's replicas replay their shard's log instead),
    /// so the caller need not serialize anything.
    fn checkpoint_later(&self, stream: &str, done: Done) -> Option<CheckpointFiller> {
        let _ = (stream, done);
        None
    }
}

impl Journal for Store {
    fn submit(&self, stream: &str, writes: Vec<Write>, done: Done) {
        Store::submit(self, stream, writes, done)
    }

    fn checkpoint_later(&self, stream: &str, done: Done) -> Option<CheckpointFiller> {
        Some(Store::checkpoint_later(self, stream, done))
    }
}

/// A future the engine awaits; boxed so the trait stays object safe.
pub type GateFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// In a cluster, which events this node may run. The node runs an event's actor only while it
/// leads the event's shard, and only once it has applied every entry of its log, so the actor
/// starts from everything the shard committed.
pub trait ShardGate: Send + Sync + 'static {
    /// Resolves when this node leads `event_id`'s shard and has applied its log; an error
    /// (`Unavailable`) when it does not lead it or does not catch up in time.
    fn ready(&self, event_id: &EventId) -> GateFuture;
}
