//! Where a request about an event is served. A single node serves everything itself; in a
//! cluster an event's requests go to the leader of its shard (docs/CLUSTER.md), which the
//! cluster layer knows and the services ask through [`EventRouter`].

/// Where requests about one event are served right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// This node leads the event's shard: serve here.
    Local,
    /// Another node leads it: forward the call to its gRPC address (`host:port`).
    Forward { node: String, address: String },
    /// Nobody leads it at the moment (an election is under way) or the shard is unknown.
    Unavailable { reason: String },
}

/// Answers [`Route`] for an event id. Implemented by the cluster layer; a single node has none.
pub trait EventRouter: Send + Sync + 'static {
    fn route(&self, event_id: &str) -> Route;
}
