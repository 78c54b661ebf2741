//! The Turnstile gateway: the gRPC front of the engine and the `turnstile` command (the load
//! generator and the demo data are in `turnstile-tools`).
//!
//! Layout:
//! - [`config`]: `cluster.toml`, strict and validated;
//! - [`token`]: every signed token (HS256 JWTs): keys, signing, checking, the clock;
//! - [`auth`]: buyers' and admins' bearer tokens;
//! - [`cluster`]: a node of a cluster: replicated journal, applier, leadership, routing;
//! - [`admission`]: the waiting room's signed queue tokens and admission passes;
//! - [`tickets`]: ticket codes on bookings, redemption at the door, sales reports;
//! - [`state`]: `Gateway`, the state every service shares, and the checks every call starts with;
//! - [`services`]: the Catalog, Booking, Queue and Admin services, one file each (`services::queue` also
//!   has the pass check of HoldSeats);
//! - [`stream`]: `BookingService.Book`, many buyers' booking calls on one stream;
//! - [`convert`]: protobuf <-> engine types;
//! - [`error`]: the one mapping from engine rejections to gRPC status codes (and tonic's size limit);
//! - [`rate`]: rate limits per buyer and per client address;
//! - [`routing`]: where an event's requests are served (this node, or its shard leader);
//! - [`relay`]: `Gateway::route`: serve a call here or relay it to its shard leader;
//! - [`forward`]: sends an event's requests to its shard leader and returns the answer;
//! - [`http`]: JSON over HTTP, server-sent events and the seat-map page, beside gRPC on its port;
//! - [`search`]: keeps the search index in step with the catalog and answers `SearchEvents`;
//! - [`client`]: the client commands (view, search, hold, confirm, ...) and their connection options;
//! - [`metrics`]: the Prometheus endpoint and per-RPC latency;
//! - [`server`]: builds and runs the tonic server with health checking and reflection;

pub mod admission;
pub mod auth;
pub mod client;
pub mod cluster;
pub mod config;
pub mod convert;
pub mod error;
pub mod forward;
pub mod http;
pub mod metrics;
pub mod rate;
pub mod relay;
pub mod routing;
pub mod search;
pub mod server;
pub mod services;
pub mod state;
pub mod status;
pub mod stream;
pub mod tickets;
pub mod token;
