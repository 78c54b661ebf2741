//! Forwarding: in a cluster, a call about an event that another node leads is sent to that node
//! and its answer returned unchanged (docs/CLUSTER.md, "Forwarding").
//!
//! Every event-scoped handler authenticates (and rate-limits) the caller, reads the event id from
//! the request or from the hold, booking or ticket it names, and then asks [`Gateway::route`]:
//! serve here, or the leader's answer. The metadata copying, the deadline, the loop guard and the
//! retries are all here, once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::Validation;
use serde::{Deserialize, Serialize};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::token::{self, unix_seconds, Keys};

/// Metadata a forwarded call carries: a token signed with the cluster's secret (`cluster.secret`,
/// never the buyers' `auth.secret`) naming the node that forwarded it. A node that receives it does not rate-limit the call again and never
/// forwards it a second time.
pub const FORWARDED_HEADER: &str = "x-turnstile-forwarded";
/// Metadata on the refusal of a node asked to serve a forwarded call for an event it does not
/// lead: the forwarding node then knows nothing was done and asks its router again.
pub const NOT_LEADER_HEADER: &str = "x-turnstile-not-leader";
/// The retry hint on UNAVAILABLE answers, as the rate limiter gives it on RESOURCE_EXHAUSTED.
pub const RETRY_AFTER_HEADER: &str = "retry-after-ms";

/// Time to open a TCP connection to another node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for another node's answer to one forwarded call (for a stream: until it opens),
/// shortened to the client's own deadline when it has one.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts to send one call to a leader, counting the first.
pub const ATTEMPTS_MAX: u32 = 3;
/// No attempt starts, and no wait for a leader goes on, later than this after the call arrived.
pub const RETRY_WINDOW: Duration = Duration::from_secs(3);
/// Wait after a failed attempt before the same address is tried again: doubled each time. A new
/// route (another leader) is tried at once.
pub(crate) const BACKOFF_FIRST: Duration = Duration::from_millis(300);
/// How often the router is asked again while it knows no leader or still names a failed one.
pub(crate) const ROUTE_POLL: Duration = Duration::from_millis(100);
/// The hint given with UNAVAILABLE: about one election.
const RETRY_AFTER_MS: u64 = 1_000;
/// Largest answer accepted from another node (a full seat map of a very large venue fits).
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Channels kept, one per address; beyond that one is dropped to make room.
const CHANNELS_MAX: usize = 256;
/// Messages of one forwarded stream waiting for the client to read them.
pub const STREAM_BUFFER: usize = 64;
/// Lifetime of a forwarded mark. Generous for clock skew between nodes, short for replays.
const STAMP_TTL_SECONDS: u64 = 60;
/// Clock skew tolerated on a mark's expiry.
const STAMP_LEEWAY_SECONDS: u64 = 5;
const STAMP_AUDIENCE: &str = "turnstile-forward";
/// Longest mark accepted, well above what its claims sign to.
const STAMP_LENGTH_MAX: usize = 1_024;

/// Request headers that describe one hop, not the call: they are not copied to the leader.
/// (`grpc-timeout` is set again from what is left of the client's deadline.)
const HOP_HEADERS: [&str; 10] = [
    "te",
    "content-type",
    "content-length",
    "user-agent",
    "host",
    "connection",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    FORWARDED_HEADER,
];

#[derive(Debug, Serialize, Deserialize)]
struct StampClaims {
    /// The node that forwarded the call.
    node: String,
    aud: String,
    exp: u64,
}

/// What a call does if it runs twice, which decides whether it may be sent again when the first
/// attempt may have reached the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A read, or a write whose repetition answers the first result (release, cancel, a hold or
    /// confirm with an idempotency key): sent again after any failure.
    Repeatable,
    /// A write that must not run twice: sent again only if the first attempt surely never left.
    Once,
    /// A server stream (watch): opened again after any failure; no deadline of ours once open.
    Stream,
}

/// Where a call is served.
pub(crate) enum Routed<Req, Resp> {
    /// Here: the request, untouched.
    Here(Request<Req>),
    /// The leader's answer.
    There(Response<Resp>),
}

/// One node's side of forwarding: the channels to other nodes and the forwarded mark.
pub struct Forwarding {
    node_id: String,
    /// Keys of the cluster's secret; `None` on a node without one, which accepts no mark.
    keys: Option<Keys>,
    /// How other nodes are called when their gRPC ports speak TLS.
    tls: Option<tonic::transport::ClientTlsConfig>,
    validation: Validation,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Forwarding {
    /// `secret` is the cluster's secret (`cluster.secret`), shared by every node of a cluster and
    /// apart from the buyers' token secret; `None` on a node outside a cluster.
    pub fn new(node_id: &str, secret: Option<&[u8]>) -> Arc<Self> {
        Self::with_tls(node_id, secret, None)
    }

    /// Like `new`, calling other nodes over TLS with `tls` when it is set.
    pub fn with_tls(node_id: &str, secret: Option<&[u8]>, tls: Option<tonic::transport::ClientTlsConfig>) -> Arc<Self> {
        let validation = token::validation(Some(STAMP_AUDIENCE), &["exp", "aud"], STAMP_LEEWAY_SECONDS);
        Arc::new(Self {
            node_id: node_id.to_string(),
            keys: secret.map(Keys::new),
            tls,
            validation,
            channels: Mutex::new(HashMap::new()),
        })
    }

    /// A fresh forwarded mark naming this node.
    pub fn stamp(&self) -> String {
        let claims = StampClaims {
            node: self.node_id.clone(),
            aud: STAMP_AUDIENCE.into(),
            exp: unix_seconds() + STAMP_TTL_SECONDS,
        };
        let Some(keys) = &self.keys else {
            // Only a cluster node forwards, and a cluster node has a secret (config validation).
            return String::new();
        };
        keys.sign(&claims)
    }

    /// The node that forwarded this call, if it carries a mark; a mark that is not valid (not
    /// signed with this cluster's secret, or expired) is refused rather than ignored.
    pub fn forwarded_by(&self, metadata: &MetadataMap) -> Result<Option<String>, Status> {
        let Some(value) = metadata.get(FORWARDED_HEADER) else { return Ok(None) };
        let refuse =
            |why: &str| Status::permission_denied(format!("{FORWARDED_HEADER}: {why}; only cluster nodes send it"));
        let value = value.to_str().map_err(|_| refuse("not printable ASCII"))?;
        if value.len() > STAMP_LENGTH_MAX {
            return Err(refuse("too long"));
        }
        let Some(keys) = &self.keys else {
            return Err(refuse("this node is in no cluster"));
        };
        let claims = keys
            .verify::<StampClaims>(value, &self.validation)
            .map_err(|error| refuse(&format!("not a valid mark ({error})")))?;
        Ok(Some(claims.node))
    }

    /// The channel to `address`, made on first use; it connects when a call needs it.
    pub(crate) fn channel(&self, node: &str, address: &str) -> Result<Channel, Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let invalid = |error: tonic::transport::Error| {
            Status::unavailable(format!(
                "cannot forward to node '{node}': its address '{address}' is not valid: {error}"
            ))
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}")).map_err(invalid)?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(invalid)?;
        }
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        if channels.len() >= CHANNELS_MAX {
            if let Some(victim) = channels.keys().next().cloned() {
                channels.remove(&victim);
            }
        }
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    /// Drops the channel to `address` after a transport failure: the next call starts afresh.
    pub(crate) fn forget(&self, address: &str) {
        self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(address);
    }

    /// The metadata sent to the leader: the client's (its token above all), minus the
    /// per-hop headers, plus this node's mark.
    pub(crate) fn outgoing_metadata(&self, incoming: &MetadataMap) -> Result<MetadataMap, Status> {
        let mut metadata = incoming.clone();
        for header in HOP_HEADERS {
            metadata.remove(header);
        }
        let stamp = MetadataValue::try_from(self.stamp())
            .map_err(|_| Status::internal("the forwarded mark is not valid metadata"))?;
        metadata.insert(FORWARDED_HEADER, stamp);
        Ok(metadata)
    }
}

/// The client's deadline, from its `grpc-timeout` header (`<up to 8 digits><H|M|S|m|u|n>`).
pub(crate) fn client_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3_600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// UNAVAILABLE with the retry hint.
pub(crate) fn unavailable(message: String) -> Status {
    let mut status = Status::unavailable(message);
    status.metadata_mut().insert(RETRY_AFTER_HEADER, MetadataValue::from(RETRY_AFTER_MS));
    status
}

/// How a forwarded attempt failed.
pub(crate) enum Failure {
    /// The leader answered: its status goes back to the client unchanged.
    Answered(Status),
    /// Nothing was done: the connection never opened, or the node refused as not the leader.
    NotDone(String),
    /// The call may or may not have run there.
    Unknown(String),
}

pub(crate) fn classify(status: Status) -> Failure {
    if status.metadata().get(NOT_LEADER_HEADER).is_some() {
        return Failure::NotDone(status.message().to_string());
    }
    // A status decoded from the other node's answer has no source; one made by the transport
    // (connect, reset, protocol error) has the error behind it.
    let Some(source) = std::error::Error::source(&status) else { return Failure::Answered(status) };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
    while let Some(error) = cause {
        if error.downcast_ref::<tonic::ConnectError>().is_some() {
            return Failure::NotDone(format!("cannot connect: {error}"));
        }
        cause = error.source();
    }
    Failure::Unknown(format!("{}: {}", status.code(), status.message()))
}

/// The generated client of a service on a channel, accepting answers up to the bound.
macro_rules! client {
    ($client:ident, $channel:expr) => {
        $client::new($channel).max_decoding_message_size($crate::forward::response_bytes_max())
    };
}
pub(crate) use client;

pub(crate) const fn response_bytes_max() -> usize {
    RESPONSE_BYTES_MAX
}

/// The call that sends a request to another node: `forward_call!(BookingServiceClient::hold_seats)`
/// is the closure `Gateway::route` takes, calling that method on a client of the leader's channel.
/// A handler then serves the request itself or returns the leader's answer:
///
/// ```ignore
/// let request = match self.route(Some(&event_id), request, kind, forward_call!(Client::method)).await? {
///     Routed::Here(request) => request,
///     Routed::There(response) => return Ok(response),
/// };
/// ```
macro_rules! forward_call {
    ($client:ident :: $method:ident) => {
        |channel, request| async move { $crate::forward::client!($client, channel).$method(request).await }
    };
}
pub(crate) use forward_call;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_deadlines_are_read_from_grpc_timeout() {
        let mut metadata = MetadataMap::new();
        assert_eq!(client_timeout(&metadata), None);
        for (value, expected) in [
            ("250m", Some(Duration::from_millis(250))),
            ("3S", Some(Duration::from_secs(3))),
            ("2M", Some(Duration::from_secs(120))),
            ("1H", Some(Duration::from_secs(3_600))),
            ("99999999u", Some(Duration::from_micros(99_999_999))),
            ("5n", Some(Duration::from_nanos(5))),
            ("123456789S", None),
            ("m", None),
            ("10x", None),
            ("-1S", None),
        ] {
            metadata.insert("grpc-timeout", value.parse().unwrap());
            assert_eq!(client_timeout(&metadata), expected, "{value}");
        }
    }

    #[test]
    fn marks_are_checked_against_the_secret() {
        let ours = Forwarding::new("node-a", Some(&b"a-secret-of-the-cluster-0123456789"[..]));
        let theirs = Forwarding::new("node-x", Some(&b"another-secret-entirely-0123456789"[..]));
        let mut metadata = MetadataMap::new();
        assert_eq!(ours.forwarded_by(&metadata).unwrap(), None);
        metadata.insert(FORWARDED_HEADER, ours.stamp().parse().unwrap());
        assert_eq!(ours.forwarded_by(&metadata).unwrap(), Some("node-a".to_string()));
        metadata.insert(FORWARDED_HEADER, theirs.stamp().parse().unwrap());
        let error = ours.forwarded_by(&metadata).unwrap_err();
        assert_eq!(error.code(), tonic::Code::PermissionDenied);
        assert!(error.message().starts_with(FORWARDED_HEADER), "{error:?}");
        metadata.insert(FORWARDED_HEADER, "1".parse().unwrap());
        assert_eq!(ours.forwarded_by(&metadata).unwrap_err().code(), tonic::Code::PermissionDenied);
        // A node in no cluster accepts no mark, however it is signed.
        let alone = Forwarding::new("node-1", None);
        metadata.insert(FORWARDED_HEADER, ours.stamp().parse().unwrap());
        let error = alone.forwarded_by(&metadata).unwrap_err();
        assert_eq!(error.code(), tonic::Code::PermissionDenied);
        assert!(error.message().contains("no cluster"), "{error:?}");
    }

    #[test]
    fn hop_headers_are_dropped_and_the_mark_added() {
        let forwarding = Forwarding::new("node-a", Some(&b"a-secret-of-the-cluster-0123456789"[..]));
        let mut incoming = MetadataMap::new();
        incoming.insert("authorization", "Bearer abc".parse().unwrap());
        incoming.insert("x-request-id", "r-1".parse().unwrap());
        incoming.insert("grpc-timeout", "5S".parse().unwrap());
        incoming.insert("te", "trailers".parse().unwrap());
        incoming.insert(FORWARDED_HEADER, "forged".parse().unwrap());
        let outgoing = forwarding.outgoing_metadata(&incoming).unwrap();
        assert_eq!(outgoing.get("authorization").unwrap(), "Bearer abc");
        assert_eq!(outgoing.get("x-request-id").unwrap(), "r-1");
        assert!(outgoing.get("grpc-timeout").is_none());
        assert!(outgoing.get("te").is_none());
        assert_eq!(forwarding.forwarded_by(&outgoing).unwrap(), Some("node-a".to_string()));
    }
}
