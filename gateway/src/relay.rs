//! Serving a call here or relaying it to the node that leads its event's shard
//! ([`Gateway::route`]), with retries, deadlines and the forwarded mark; `forward` has the
//! channels, the mark and the constants.

use std::future::Future;
use std::time::Duration;

use crate::routing::Route;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Extensions, Request, Response, Status, Streaming};
use turnstile_engine::ids::EventId;

use crate::forward::{
    classify, client_timeout, unavailable, Failure, Kind, Routed, ATTEMPTS_MAX, BACKOFF_FIRST, NOT_LEADER_HEADER,
    REQUEST_TIMEOUT, RETRY_WINDOW, ROUTE_POLL, STREAM_BUFFER,
};
use crate::state::Gateway;

impl Gateway {
    /// Serves the call here (no router, or this node leads the event's shard) or forwards it to
    /// the leader the router names and returns the answer. Call after authenticating the caller
    /// and reading the event id; `None` (a hold or booking id that names no event) is served here,
    /// where it is not found. `call` sends one attempt on a channel with the generated client.
    pub(crate) async fn route<Req, Resp, Call, Fut>(
        &self,
        event_id: Option<&EventId>,
        request: Request<Req>,
        kind: Kind,
        call: Call,
    ) -> Result<Routed<Req, Resp>, Status>
    where
        Req: Clone,
        Call: Fn(Channel, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let forwarded_by = self.forwarding.forwarded_by(request.metadata())?;
        let (Some(router), Some(event_id)) = (self.router.as_ref(), event_id) else { return Ok(Routed::Here(request)) };
        let route = router.route(event_id.as_str());
        if let Some(from) = forwarded_by {
            // A forwarded call is served here or refused: forwarding it again could loop.
            return match route {
                Route::Local => Ok(Routed::Here(request)),
                Route::Forward { node, .. } if node == self.node_id => Ok(Routed::Here(request)),
                Route::Forward { node: leader, .. } => {
                    Err(self.not_leader(event_id, &from, &format!("its leader is node '{leader}'"), Some(&leader)))
                }
                Route::Unavailable { reason } => Err(self.not_leader(event_id, &from, &reason, None)),
            };
        }
        match route {
            Route::Local => return Ok(Routed::Here(request)),
            Route::Forward { node, .. } if node == self.node_id => return Ok(Routed::Here(request)),
            _ => {}
        }
        self.forward(router.as_ref(), event_id, request, kind, route, call).await
    }

    /// The refusal of a forwarded call for an event this node does not lead: forwarding it on
    /// could loop between nodes whose routes disagree.
    fn not_leader(&self, event_id: &EventId, from: &str, now: &str, leader: Option<&str>) -> Status {
        let mut status = unavailable(format!(
            "node '{}' is not the leader of the shard of event '{event_id}' (node '{from}' forwarded the call here; \
             {now}); retry",
            self.node_id
        ));
        // The leader this node knows, for a forwarder that cannot see the shard itself.
        let leader = leader.and_then(|leader| MetadataValue::try_from(leader).ok());
        status.metadata_mut().insert(NOT_LEADER_HEADER, leader.unwrap_or(MetadataValue::from_static("1")));
        metrics::counter!("turnstile_forward_refused_total").increment(1);
        status
    }

    async fn forward<Req, Resp, Call, Fut>(
        &self,
        router: &dyn crate::routing::EventRouter,
        event_id: &EventId,
        request: Request<Req>,
        kind: Kind,
        mut route: Route,
        call: Call,
    ) -> Result<Routed<Req, Resp>, Status>
    where
        Req: Clone,
        Call: Fn(Channel, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let started = Instant::now();
        let deadline = client_timeout(request.metadata()).map(|timeout| started + timeout);
        let outgoing = self.forwarding.outgoing_metadata(request.metadata())?;
        let (metadata, extensions, message) = request.into_parts();
        let mut attempts = 0;
        // The address that last failed and when it may be tried again.
        let mut failed: Option<(String, Instant)> = None;
        let mut last_failure = String::new();
        loop {
            match route {
                Route::Local => return Ok(Routed::Here(Request::from_parts(metadata, extensions, message))),
                Route::Forward { ref node, .. } if *node == self.node_id => {
                    return Ok(Routed::Here(Request::from_parts(metadata, extensions, message)));
                }
                Route::Unavailable { reason } => last_failure = reason,
                Route::Forward { node, address } => {
                    let wait_more =
                        failed.as_ref().is_some_and(|(failed, at)| *failed == address && Instant::now() < *at);
                    if !wait_more {
                        attempts += 1;
                        let now = Instant::now();
                        let left = deadline.map(|deadline| deadline.saturating_duration_since(now));
                        if left == Some(Duration::ZERO) {
                            return Err(Status::deadline_exceeded(
                                "the call's deadline passed while finding the leader",
                            ));
                        }
                        let wait = left.map_or(REQUEST_TIMEOUT, |left| left.min(REQUEST_TIMEOUT));
                        let mut attempt = Request::from_parts(outgoing.clone(), Extensions::default(), message.clone());
                        match (kind, left) {
                            (Kind::Stream, None) => {}
                            (Kind::Stream, Some(left)) => attempt.set_timeout(left),
                            _ => attempt.set_timeout(wait),
                        }
                        let channel = self.forwarding.channel(&node, &address)?;
                        let failure = match tokio::time::timeout(wait, call(channel, attempt)).await {
                            Ok(Ok(response)) => {
                                metrics::counter!("turnstile_forwarded_total", "result" => "answered").increment(1);
                                return Ok(Routed::There(response));
                            }
                            Ok(Err(status)) => {
                                if let Some(leader) =
                                    status.metadata().get(NOT_LEADER_HEADER).and_then(|value| value.to_str().ok())
                                {
                                    router.hint_leader(event_id.as_str(), leader);
                                }
                                classify(status)
                            }
                            Err(_) if deadline.is_some_and(|deadline| Instant::now() >= deadline) => {
                                return Err(Status::deadline_exceeded(format!(
                                    "node '{node}' ({address}) did not answer before the call's deadline"
                                )));
                            }
                            Err(_) => Failure::Unknown(format!("no answer within {} s", wait.as_secs_f64())),
                        };
                        match failure {
                            Failure::Answered(status) => {
                                metrics::counter!("turnstile_forwarded_total", "result" => "answered").increment(1);
                                return Err(status);
                            }
                            Failure::NotDone(why) => {
                                last_failure = format!("node '{node}' ({address}): {why}");
                            }
                            Failure::Unknown(why) => {
                                self.forwarding.forget(&address);
                                if kind == Kind::Once {
                                    metrics::counter!("turnstile_forwarded_total", "result" => "unknown").increment(1);
                                    return Err(unavailable(format!(
                                        "the call was forwarded to node '{node}' ({address}), the leader of the \
                                         shard of event '{event_id}', and failed ({why}); the outcome is unknown: \
                                         read the state before trying again, or send an idempotency key to make \
                                         retries safe"
                                    )));
                                }
                                last_failure = format!("node '{node}' ({address}): {why}");
                            }
                        }
                        tracing::debug!(%event_id, %node, %address, attempts, failure = %last_failure, "forward failed");
                        if attempts == ATTEMPTS_MAX {
                            break;
                        }
                        failed = Some((address, Instant::now() + BACKOFF_FIRST * 2u32.pow(attempts - 1)));
                    }
                }
            }
            // Ask again after a pause, within the window and the client's deadline.
            let resume = Instant::now() + ROUTE_POLL;
            if resume > started + RETRY_WINDOW {
                break;
            }
            if deadline.is_some_and(|deadline| resume >= deadline) {
                return Err(Status::deadline_exceeded(format!(
                    "no leader of the shard of event '{event_id}' could be reached before the call's deadline \
                     (last: {last_failure})"
                )));
            }
            tokio::time::sleep_until(resume).await;
            route = router.route(event_id.as_str());
        }
        metrics::counter!("turnstile_forwarded_total", "result" => "unavailable").increment(1);
        Err(unavailable(format!(
            "event '{event_id}' cannot be served right now: the leader of its shard was not reached in {} ms \
             ({attempts} attempt(s); last: {last_failure}); retry",
            started.elapsed().as_millis()
        )))
    }

    /// A stream opened on the leader, handed to the client through a bounded buffer; it ends when
    /// the leader's stream ends, the client goes away or this server stops.
    pub(crate) fn pipe<T: Send + 'static>(
        &self,
        response: Response<Streaming<T>>,
    ) -> Response<ReceiverStream<Result<T, Status>>> {
        let (metadata, mut upstream, extensions) = response.into_parts();
        let (sender, receiver) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    item = upstream.message() => item,
                    () = sender.closed() => break,
                    _ = stopping.wait_for(|stopping| *stopping) => Err(Status::unavailable("the server is stopping")),
                };
                match item {
                    Ok(Some(message)) => {
                        if sender.send(Ok(message)).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        let _ = sender.send(Err(status)).await;
                        break;
                    }
                }
            }
        });
        Response::from_parts(metadata, ReceiverStream::new(receiver), extensions)
    }
}
