//! QueueService (JoinQueue, WatchQueue), AdminService.ConfigureQueue's conversions, and the pass
//! check HoldSeats runs while an event's waiting room is on.

use std::time::Duration;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use turnstile_engine::ids::{BuyerId, EventId};
use turnstile_engine::inventory::{Caller, HoldView, Selection};
use turnstile_engine::queue::{Progress, QueueConfig, Standing};
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::queue_service_client::QueueServiceClient;
use turnstile_proto::v1::queue_service_server::QueueService;

use crate::convert;
use crate::error::status;
use crate::forward::{forward_call, Kind, Routed};
use crate::state::Gateway;

/// Least time between two WAITING updates of one stream: positions move continuously and
/// nobody needs them more often.
const WAITING_UPDATE_INTERVAL: Duration = Duration::from_secs(1);
/// Standings of one stream waiting for the client to read them.
const QUEUE_STREAM_BUFFER: usize = 4;

pub fn config(request: &pb::ConfigureQueueRequest) -> Result<QueueConfig, Status> {
    Ok(QueueConfig {
        enabled: request.enabled,
        rate_per_second: request.admission_rate_per_second,
        opens_at_ms: request
            .opens_at
            .as_ref()
            .map(|at| convert::unix_ms("opens_at", at).map(|ms| ms.max(0) as u64))
            .transpose()?,
        pass_ttl_ms: match request.pass_ttl_seconds {
            0 => turnstile_engine::limits::PASS_TTL_MS_DEFAULT,
            seconds => u64::from(seconds) * 1_000,
        },
        seats_per_pass: request.seats_per_pass,
    })
}

pub fn configured(event_id: &EventId, config: &QueueConfig, progress: &Progress) -> pb::ConfigureQueueResponse {
    pb::ConfigureQueueResponse {
        event_id: event_id.to_string(),
        enabled: config.enabled,
        admission_rate_per_second: config.rate_per_second,
        opens_at: config.opens_at_ms.map(convert::timestamp_u),
        pass_ttl_seconds: (config.pass_ttl_ms / 1_000) as u32,
        seats_per_pass: progress.seats_per_pass,
        joined: progress.joined,
        admitted: progress.admitted_through,
        sold_out: progress.sold_out,
    }
}

impl Gateway {
    /// What the buyer at `position` is told, with their pass once admitted.
    fn standing(&self, buyer: &BuyerId, event_id: &EventId, position: u64, progress: &Progress) -> pb::QueueStanding {
        let mut standing = pb::QueueStanding { event_id: event_id.to_string(), position, ..Default::default() };
        let state = match progress.standing(position) {
            Standing::Closed => pb::QueueState::Closed,
            Standing::NotOpen { opens_at_ms } => {
                standing.opens_at = opens_at_ms.map(convert::timestamp_u);
                pb::QueueState::NotOpen
            }
            Standing::Waiting { ahead, estimated_wait_seconds } => {
                standing.ahead = ahead;
                standing.estimated_wait_seconds =
                    estimated_wait_seconds.map(|seconds| seconds.min(u32::MAX as u64) as u32);
                pb::QueueState::Waiting
            }
            Standing::Admitted { pass_expires_at_ms, seats } => {
                standing.admission_pass = self.admission.pass(buyer, event_id, position, seats, pass_expires_at_ms);
                standing.pass_expires_at = Some(convert::timestamp_u(pass_expires_at_ms));
                standing.pass_seats = seats;
                pb::QueueState::Admitted
            }
            Standing::PassExpired => pb::QueueState::PassExpired,
            Standing::SoldOut => pb::QueueState::SoldOut,
        };
        standing.state = state as i32;
        standing
    }

    /// HoldSeats while the waiting room is on: the pass must admit this buyer to this event for
    /// this many seats, and is used up by the hold (given back if the hold is refused).
    pub(crate) async fn hold_with_pass(
        &self,
        caller: Caller,
        event_id: &EventId,
        selection: Selection,
        idempotency_key: Option<String>,
        pass: &str,
    ) -> Result<HoldView, Status> {
        let claims = self.admission.verify_pass(pass, &caller.buyer, event_id)?;
        let wanted = match &selection {
            Selection::Seats(seat_ids) => seat_ids.len() as i64,
            Selection::BestAvailable { quantity, .. } => *quantity,
        };
        if wanted > i64::from(claims.seats) {
            return Err(Status::permission_denied(format!(
                "admission_pass: allows {} seats, the request asks for {wanted}",
                claims.seats
            )));
        }
        self.engine.claim_pass(event_id, claims.pos, idempotency_key.clone()).await.map_err(status)?;
        match self.engine.place_hold(caller, event_id, selection, idempotency_key).await {
            Ok(hold) => Ok(hold),
            Err(error) => {
                // A key reused for another selection found the pass used by the key's first hold:
                // it stays used.
                if !matches!(error, turnstile_engine::Error::KeyReused { .. }) {
                    self.engine.unclaim_pass(event_id, claims.pos).await;
                }
                Err(status(error))
            }
        }
    }
}

fn is_final(state: i32) -> bool {
    state != pb::QueueState::Waiting as i32 && state != pb::QueueState::NotOpen as i32
}

#[tonic::async_trait]
impl QueueService for Gateway {
    async fn join_queue(
        &self,
        request: Request<pb::JoinQueueRequest>,
    ) -> Result<Response<pb::JoinQueueResponse>, Status> {
        let caller = self.buyer(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        // The line lives beside the event's actor, on the leader. Joining again keeps the place.
        match self
            .route(Some(&event_id), request, Kind::Repeatable, forward_call!(QueueServiceClient::join_queue))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        let (place, progress) = self.engine.join_queue(&event_id, &caller.buyer).await.map_err(status)?;
        let standing = self.standing(&caller.buyer, &event_id, place.position, &progress.borrow());
        Ok(Response::new(pb::JoinQueueResponse {
            queue_token: self.admission.queue_token(&caller.buyer, &event_id, place.position),
            standing: Some(standing),
        }))
    }

    type WatchQueueStream = ReceiverStream<Result<pb::QueueStanding, Status>>;

    async fn watch_queue(
        &self,
        request: Request<pb::WatchQueueRequest>,
    ) -> Result<Response<Self::WatchQueueStream>, Status> {
        let caller = self.buyer(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        let token = self.admission.verify_queue_token(&request.get_ref().queue_token, &caller.buyer, &event_id)?;
        match self.route(Some(&event_id), request, Kind::Stream, forward_call!(QueueServiceClient::watch_queue)).await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(self.pipe(response)),
        };
        // The place is the token's: it holds across a restart or a new shard leader, which keep
        // the line but not who joined it. A token from before the opening (position 0) asks the
        // line, which draws a place for the buyer at the opening.
        let (mut place, mut progress) = if token.pos > 0 {
            let progress = self.engine.queue_progress(&event_id).await.map_err(status)?;
            (turnstile_engine::queue::Place { position: token.pos }, progress)
        } else {
            self.engine.join_queue(&event_id, &caller.buyer).await.map_err(status)?
        };
        let (sender, receiver) = tokio::sync::mpsc::channel(QUEUE_STREAM_BUFFER);
        let gateway = self.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let mut last_sent: Option<pb::QueueStanding> = None;
            let mut last_sent_at = tokio::time::Instant::now() - WAITING_UPDATE_INTERVAL;
            loop {
                let current = progress.borrow_and_update().clone();
                if place.position == 0 && current.opened && current.enabled {
                    // The opening draw gave this buyer a position. (Switching the room off draws
                    // too, but then there is no line to join: the standing below says CLOSED.)
                    match gateway.engine.join_queue(&event_id, &caller.buyer).await {
                        Ok((joined, _)) => place = joined,
                        Err(error) => {
                            let _ = sender.send(Err(status(error))).await;
                            break;
                        }
                    }
                }
                let standing = gateway.standing(&caller.buyer, &event_id, place.position, &current);
                if last_sent.as_ref() != Some(&standing) {
                    let state = standing.state;
                    if state == pb::QueueState::Waiting as i32 {
                        // Throttled: wait out the interval, then send whatever is current then.
                        let due = last_sent_at + WAITING_UPDATE_INTERVAL;
                        if tokio::time::Instant::now() < due {
                            tokio::select! {
                                () = tokio::time::sleep_until(due) => continue,
                                () = sender.closed() => break,
                            }
                        }
                    }
                    if sender.send(Ok(standing.clone())).await.is_err() {
                        break;
                    }
                    last_sent = Some(standing);
                    last_sent_at = tokio::time::Instant::now();
                    if is_final(state) {
                        break;
                    }
                }
                let ended = tokio::select! {
                    changed = progress.changed() => changed.err().map(|_| "the waiting room stopped"),
                    () = sender.closed() => break,
                    _ = stopping.wait_for(|stopping| *stopping) => Some("the server is stopping"),
                };
                if let Some(reason) = ended {
                    let _ = sender.send(Err(Status::unavailable(reason))).await;
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}
