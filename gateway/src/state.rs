//! The state every service shares (`Gateway`: the engine, search, auth, limits, routing and
//! forwarding) and the checks every call starts with (rate limits, the caller's token). Each
//! service lives in its own file and implements its trait on this one type.

use std::sync::Arc;

use tonic::{Request, Status};
use turnstile_engine::inventory::Caller;
use turnstile_engine::Engine;

use crate::auth::Authenticator;
use crate::forward::Forwarding;
use crate::rate::RateLimits;

/// Shared by the three services.
#[derive(Clone)]
pub struct Gateway {
    pub engine: Engine,
    pub search: Arc<turnstile_search::SearchIndex>,
    pub authenticator: Arc<Authenticator>,
    /// Signs and checks queue tokens and admission passes.
    pub admission: Arc<crate::admission::AdmissionTokens>,
    pub anonymous_catalog_reads: bool,
    pub rate_limits: Arc<RateLimits>,
    pub node_id: String,
    /// Where the node serves and keeps its files, and when it started (for `GetNodeStatus`).
    pub node_info: Arc<NodeInfo>,
    /// Turns true when the server stops: long-lived streams end so the shutdown can finish.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// In a cluster, where each event's requests are served; `None` on a single node.
    pub router: Option<Arc<dyn crate::routing::EventRouter>>,
    /// Channels to the other nodes and the mark of forwarded calls (`forward.rs`).
    pub forwarding: Arc<Forwarding>,
    /// Where backups go (`[storage] backup_dir`); created when the first backup is taken.
    pub backup_dir: std::path::PathBuf,
    /// Requests of one `Book` stream in flight at once (`limits.stream_requests_in_flight_max`).
    pub stream_requests_in_flight_max: usize,
}

/// What `GetNodeStatus` says about the node itself.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub started_at: std::time::SystemTime,
    pub listen_address: std::net::SocketAddr,
    pub metrics_address: Option<std::net::SocketAddr>,
    pub data_directory: std::path::PathBuf,
}

impl Gateway {
    /// The rate limit of the client's address, where a call first arrives: a call another node
    /// forwarded (a valid mark) was counted there. Answers whether the call was forwarded.
    pub(crate) fn limit_address<T>(&self, request: &Request<T>) -> Result<bool, Status> {
        let forwarded = self.forwarding.forwarded_by(request.metadata())?.is_some();
        if !forwarded {
            self.rate_limits.check_address(request.remote_addr().map(|address| address.ip()))?;
        }
        Ok(forwarded)
    }

    /// A buyer (or admin) call: rate limits by address and by buyer, then the token.
    pub(crate) fn buyer<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let forwarded = self.limit_address(request)?;
        let caller = self.authenticator.require_caller(request.metadata())?;
        if !forwarded {
            self.rate_limits.check_buyer(caller.buyer.as_str())?;
        }
        Ok(caller)
    }

    pub(crate) fn admin<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.limit_address(request)?;
        self.authenticator.require_admin(request.metadata())
    }

    pub(crate) fn check_catalog_reader<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.limit_address(request)?;
        let caller = self.authenticator.caller(request.metadata())?;
        if caller.is_none() && !self.anonymous_catalog_reads {
            return Err(Status::unauthenticated("this server requires a token for catalog reads"));
        }
        Ok(())
    }
}
