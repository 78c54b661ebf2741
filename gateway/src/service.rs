//! The gRPC services. Each method authenticates, converts the request, calls the engine and
//! converts the answer; errors go through `error::status`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use turnstile_engine::catalog::{EventSpec, EventUpdate, PerformerSpec, VenueSpec};
use turnstile_engine::engine::BookingCursor;
use turnstile_engine::ids::{BookingId, EventId, HoldId, PerformerId, VenueId};
use turnstile_engine::inventory::Selection;
use turnstile_engine::limits;
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::admin_service_server::AdminService;
use turnstile_proto::v1::booking_service_server::BookingService;
use turnstile_proto::v1::catalog_service_server::CatalogService;

use turnstile_proto::v1::admin_service_client::AdminServiceClient;
use turnstile_proto::v1::booking_service_client::BookingServiceClient;
use turnstile_proto::v1::catalog_service_client::CatalogServiceClient;

use crate::convert;
use crate::error::{invalid, status};
use crate::forward::{forward_call, Kind, Routed};
pub use crate::state::{Gateway, NodeInfo};

/// Messages of one watch stream waiting for the client to read them.
const WATCH_STREAM_BUFFER: usize = 64;

/// The process's resident memory, from /proc (0 where there is none).
fn resident_bytes() -> u64 {
    const PAGE_BYTES: u64 = 4_096;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<u64>().ok()))
        .map(|pages| pages * PAGE_BYTES)
        .unwrap_or(0)
}

fn page_size(requested: u32) -> Result<usize, Status> {
    match requested {
        0 => Ok(limits::PAGE_SIZE_DEFAULT as usize),
        size if size <= limits::PAGE_SIZE_MAX => Ok(size as usize),
        size => Err(invalid("page_size", format!("at most {}, got {size}", limits::PAGE_SIZE_MAX))),
    }
}

fn encode_cursor((booked_at_ms, booking_id): &BookingCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{booked_at_ms}:{booking_id}"))
}

fn decode_cursor(token: &str) -> Result<Option<BookingCursor>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    // A cursor is a time and a booking id, base64-encoded: far less than this.
    const PAGE_TOKEN_LENGTH_MAX: usize = 512;
    if token.len() > PAGE_TOKEN_LENGTH_MAX {
        return Err(invalid("page_token", format!("is longer than {PAGE_TOKEN_LENGTH_MAX} bytes")));
    }
    let bad = || invalid("page_token", "is not a token from a previous ListBookings page");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (booked_at_ms, booking_id) = text.split_once(':').ok_or_else(bad)?;
    let booked_at_ms = booked_at_ms.parse::<u64>().map_err(|_| bad())?;
    let booking_id = BookingId::new(booking_id);
    booking_id.event_id().ok_or_else(bad)?;
    Ok(Some((booked_at_ms, booking_id)))
}

#[tonic::async_trait]
impl CatalogService for Gateway {
    async fn get_event(&self, request: Request<pb::GetEventRequest>) -> Result<Response<pb::GetEventResponse>, Status> {
        self.check_catalog_reader(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        let request = match self
            .route(Some(&event_id), request, Kind::Repeatable, forward_call!(CatalogServiceClient::get_event))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        }
        .into_inner();
        let details = self.engine.event_details(&event_id, request.include_seats).await.map_err(status)?;
        Ok(Response::new(convert::event_details(&details, request.include_layout)))
    }

    async fn search_events(
        &self,
        request: Request<pb::SearchEventsRequest>,
    ) -> Result<Response<pb::SearchEventsResponse>, Status> {
        self.check_catalog_reader(&request)?;
        let response = crate::search::search(&self.engine, &self.search, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    type WatchEventStream = ReceiverStream<Result<pb::WatchEventResponse, Status>>;

    async fn watch_event(
        &self,
        request: Request<pb::WatchEventRequest>,
    ) -> Result<Response<Self::WatchEventStream>, Status> {
        self.check_catalog_reader(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        let request = match self
            .route(Some(&event_id), request, Kind::Stream, forward_call!(CatalogServiceClient::watch_event))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(self.pipe(response)),
        }
        .into_inner();
        let (mut watch, permit) = self.engine.watch_event(&event_id, request.after_version).await.map_err(status)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(WATCH_STREAM_BUFFER);
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                // A client that stops reading fills this channel; the watch then lags behind the
                // event's feed and resumes from a snapshot, while the event actor never waits.
                let message = tokio::select! {
                    item = watch.next() => item.map(|item| convert::watch_item(&item)).map_err(status),
                    () = sender.closed() => break,
                    _ = stopping.wait_for(|stopping| *stopping) => Err(Status::unavailable("the server is stopping")),
                };
                let failed = message.is_err();
                if sender.send(message).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

impl Gateway {
    /// A buyer's bookings in a cluster where no node holds every shard: the same page asked of
    /// every node (each answers from its own store), merged in the listing's order (newest first,
    /// then by id) without duplicates. Enough nodes must answer to cover every shard.
    async fn list_bookings_everywhere(
        &self,
        request: Request<pb::ListBookingsRequest>,
        holders: crate::routing::BookingHolders,
    ) -> Result<Response<pb::ListBookingsResponse>, Status> {
        let wanted = page_size(request.get_ref().page_size)?;
        decode_cursor(&request.get_ref().page_token)?;
        let outgoing = self.forwarding.outgoing_metadata(request.metadata())?;
        let message = request.into_inner();
        let asks = holders.nodes.iter().map(|(node, address)| {
            let mut attempt = Request::from_parts(outgoing.clone(), Default::default(), message.clone());
            attempt.set_timeout(crate::forward::REQUEST_TIMEOUT);
            let channel = self.forwarding.channel(node, address);
            async move {
                let mut client = turnstile_proto::v1::booking_service_client::BookingServiceClient::new(channel?);
                client.list_bookings(attempt).await.map(Response::into_inner)
            }
        });
        let mut merged: std::collections::BTreeMap<(std::cmp::Reverse<u64>, String), pb::Booking> = Default::default();
        let mut answers = 0usize;
        let mut more = false;
        let mut last_failure = None;
        for reply in futures::future::join_all(asks).await {
            match reply {
                Ok(page) => {
                    answers += 1;
                    more |= !page.next_page_token.is_empty();
                    for booking in page.bookings {
                        let booked_at_ms = booking
                            .booked_at
                            .as_ref()
                            .map_or(0, |at| (at.seconds.max(0) as u64) * 1_000 + (at.nanos.max(0) as u64) / 1_000_000);
                        merged.insert((std::cmp::Reverse(booked_at_ms), booking.booking_id.clone()), booking);
                    }
                }
                // An answer from the node itself (a bad token, a bad page token) stands.
                Err(status)
                    if status.code() != tonic::Code::Unavailable && status.code() != tonic::Code::DeadlineExceeded =>
                {
                    return Err(status)
                }
                Err(status) => last_failure = Some(status),
            }
        }
        if answers < holders.answers_needed {
            let reason = last_failure.map(|status| status.message().to_string()).unwrap_or_default();
            return Err(Status::unavailable(format!(
                "bookings are spread over the cluster and only {answers} of {} nodes answered (at least {} must); \
                 retry: {reason}",
                holders.nodes.len(),
                holders.answers_needed
            )));
        }
        more |= merged.len() > wanted;
        let bookings: Vec<(u64, pb::Booking)> =
            merged.into_iter().take(wanted).map(|((std::cmp::Reverse(at), _), booking)| (at, booking)).collect();
        let next_page_token = match bookings.last() {
            Some((at, booking)) if more => encode_cursor(&(*at, BookingId::new(&booking.booking_id))),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListBookingsResponse {
            bookings: bookings.into_iter().map(|(_, booking)| booking).collect(),
            next_page_token,
        }))
    }
}

#[tonic::async_trait]
impl BookingService for Gateway {
    async fn hold_seats(
        &self,
        request: Request<pb::HoldSeatsRequest>,
    ) -> Result<Response<pb::HoldSeatsResponse>, Status> {
        let caller = self.buyer(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        // A hold with an idempotency key answers its first result when sent again.
        let kind = if request.get_ref().idempotency_key.is_empty() { Kind::Once } else { Kind::Repeatable };
        let request =
            match self.route(Some(&event_id), request, kind, forward_call!(BookingServiceClient::hold_seats)).await? {
                Routed::Here(request) => request,
                Routed::There(response) => return Ok(response),
            }
            .into_inner();
        let selection = match request.selection {
            Some(pb::hold_seats_request::Selection::Seats(list)) => Selection::Seats(list.seat_ids),
            Some(pb::hold_seats_request::Selection::BestAvailable(best)) => {
                Selection::BestAvailable { section_id: best.section_id, quantity: i64::from(best.quantity) }
            }
            None => return Err(invalid("selection", "set either seats or best_available")),
        };
        let idempotency_key = convert::optional_key(request.idempotency_key);
        let hold = if self.engine.queue_enabled(&event_id) {
            self.hold_with_pass(caller, &event_id, selection, idempotency_key, &request.admission_pass).await?
        } else {
            self.engine.place_hold(caller, &event_id, selection, idempotency_key).await.map_err(status)?
        };
        Ok(Response::new(pb::HoldSeatsResponse { hold: Some(convert::hold(&hold)) }))
    }

    type BookStream = crate::stream::BookStream;

    async fn book(
        &self,
        request: Request<tonic::Streaming<pb::BookRequest>>,
    ) -> Result<Response<Self::BookStream>, Status> {
        Ok(Response::new(crate::stream::serve(self.clone(), request)))
    }

    async fn get_hold(&self, request: Request<pb::GetHoldRequest>) -> Result<Response<pb::GetHoldResponse>, Status> {
        let caller = self.buyer(&request)?;
        let hold_id = HoldId::new(convert::id("hold_id", &request.get_ref().hold_id)?);
        match self
            .route(
                hold_id.event_id().as_ref(),
                request,
                Kind::Repeatable,
                forward_call!(BookingServiceClient::get_hold),
            )
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        let hold = self.engine.get_hold(caller, &hold_id).await.map_err(status)?;
        Ok(Response::new(pb::GetHoldResponse { hold: Some(convert::hold(&hold)) }))
    }

    async fn release_hold(
        &self,
        request: Request<pb::ReleaseHoldRequest>,
    ) -> Result<Response<pb::ReleaseHoldResponse>, Status> {
        let caller = self.buyer(&request)?;
        let hold_id = HoldId::new(convert::id("hold_id", &request.get_ref().hold_id)?);
        // Releasing again answers the first release.
        match self
            .route(
                hold_id.event_id().as_ref(),
                request,
                Kind::Repeatable,
                forward_call!(BookingServiceClient::release_hold),
            )
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        let hold = self.engine.release_hold(caller, &hold_id).await.map_err(status)?;
        Ok(Response::new(pb::ReleaseHoldResponse { hold: Some(convert::hold(&hold)) }))
    }

    async fn confirm_hold(
        &self,
        request: Request<pb::ConfirmHoldRequest>,
    ) -> Result<Response<pb::ConfirmHoldResponse>, Status> {
        let caller = self.buyer(&request)?;
        let hold_id = HoldId::new(convert::id("hold_id", &request.get_ref().hold_id)?);
        let kind = if request.get_ref().idempotency_key.is_empty() { Kind::Once } else { Kind::Repeatable };
        let request = match self
            .route(hold_id.event_id().as_ref(), request, kind, forward_call!(BookingServiceClient::confirm_hold))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        }
        .into_inner();
        let booking = self
            .engine
            .confirm_hold(caller, &hold_id, request.payment_reference, convert::optional_key(request.idempotency_key))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ConfirmHoldResponse { booking: Some(self.booking_message(&booking)) }))
    }

    async fn extend_hold(
        &self,
        request: Request<pb::ExtendHoldRequest>,
    ) -> Result<Response<pb::ExtendHoldResponse>, Status> {
        let caller = self.buyer(&request)?;
        let hold_id = HoldId::new(convert::id("hold_id", &request.get_ref().hold_id)?);
        // Each extension moves the deadline again (at most twice): never sent twice.
        match self
            .route(hold_id.event_id().as_ref(), request, Kind::Once, forward_call!(BookingServiceClient::extend_hold))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        let hold = self.engine.extend_hold(caller, &hold_id).await.map_err(status)?;
        Ok(Response::new(pb::ExtendHoldResponse { hold: Some(convert::hold(&hold)) }))
    }

    async fn start_payment(
        &self,
        request: Request<pb::StartPaymentRequest>,
    ) -> Result<Response<pb::StartPaymentResponse>, Status> {
        let caller = self.buyer(&request)?;
        let hold_id = HoldId::new(convert::id("hold_id", &request.get_ref().hold_id)?);
        // Saying it again changes nothing.
        match self
            .route(
                hold_id.event_id().as_ref(),
                request,
                Kind::Repeatable,
                forward_call!(BookingServiceClient::start_payment),
            )
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        let hold = self.engine.start_payment(caller, &hold_id).await.map_err(status)?;
        Ok(Response::new(pb::StartPaymentResponse { hold: Some(convert::hold(&hold)) }))
    }

    async fn join_waitlist(
        &self,
        request: Request<pb::JoinWaitlistRequest>,
    ) -> Result<Response<pb::WaitlistStatus>, Status> {
        let caller = self.buyer(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        // Joining again keeps the place.
        let request = match self
            .route(Some(&event_id), request, Kind::Repeatable, forward_call!(BookingServiceClient::join_waitlist))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        }
        .into_inner();
        let section_id = (!request.section_id.is_empty()).then_some(request.section_id);
        let view = self
            .engine
            .join_waitlist(caller.clone(), &event_id, section_id, i64::from(request.quantity))
            .await
            .map_err(status)?;
        Ok(Response::new(self.waitlist_status(caller, view).await?))
    }

    async fn get_waitlist_status(
        &self,
        request: Request<pb::GetWaitlistStatusRequest>,
    ) -> Result<Response<pb::WaitlistStatus>, Status> {
        let caller = self.buyer(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        match self
            .route(Some(&event_id), request, Kind::Repeatable, forward_call!(BookingServiceClient::get_waitlist_status))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        let view = self.engine.waitlist_status(caller.clone(), &event_id).await.map_err(status)?;
        Ok(Response::new(self.waitlist_status(caller, view).await?))
    }

    async fn leave_waitlist(
        &self,
        request: Request<pb::LeaveWaitlistRequest>,
    ) -> Result<Response<pb::WaitlistStatus>, Status> {
        let caller = self.buyer(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        match self
            .route(Some(&event_id), request, Kind::Repeatable, forward_call!(BookingServiceClient::leave_waitlist))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        let view = self.engine.leave_waitlist(caller.clone(), &event_id).await.map_err(status)?;
        Ok(Response::new(self.waitlist_status(caller, view).await?))
    }

    async fn get_booking(
        &self,
        request: Request<pb::GetBookingRequest>,
    ) -> Result<Response<pb::GetBookingResponse>, Status> {
        let caller = self.buyer(&request)?;
        let booking_id = BookingId::new(convert::id("booking_id", &request.get_ref().booking_id)?);
        match self
            .route(
                booking_id.event_id().as_ref(),
                request,
                Kind::Repeatable,
                forward_call!(BookingServiceClient::get_booking),
            )
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        let booking = self.engine.get_booking(caller, &booking_id).await.map_err(status)?;
        Ok(Response::new(pb::GetBookingResponse { booking: Some(self.booking_message(&booking)) }))
    }

    async fn list_bookings(
        &self,
        request: Request<pb::ListBookingsRequest>,
    ) -> Result<Response<pb::ListBookingsResponse>, Status> {
        let caller = self.buyer(&request)?;
        if self.forwarding.forwarded_by(request.metadata())?.is_none() {
            if let Some(holders) = self.router.as_ref().and_then(|router| router.booking_holders()) {
                return self.list_bookings_everywhere(request, holders).await;
            }
        }
        let request = request.into_inner();
        let page_size = page_size(request.page_size)?;
        let cursor = decode_cursor(&request.page_token)?;
        let (bookings, next) = self.engine.list_bookings(&caller.buyer, cursor.as_ref(), page_size).map_err(status)?;
        Ok(Response::new(pb::ListBookingsResponse {
            bookings: bookings.iter().map(|booking| self.booking_message(booking)).collect(),
            next_page_token: next.as_ref().map(encode_cursor).unwrap_or_default(),
        }))
    }

    async fn cancel_booking(
        &self,
        request: Request<pb::CancelBookingRequest>,
    ) -> Result<Response<pb::CancelBookingResponse>, Status> {
        let caller = self.buyer(&request)?;
        let booking_id = BookingId::new(convert::id("booking_id", &request.get_ref().booking_id)?);
        // Cancelling again answers the first cancellation.
        match self
            .route(
                booking_id.event_id().as_ref(),
                request,
                Kind::Repeatable,
                forward_call!(BookingServiceClient::cancel_booking),
            )
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        let booking = self.engine.cancel_booking(caller, &booking_id).await.map_err(status)?;
        Ok(Response::new(pb::CancelBookingResponse { booking: Some(self.booking_message(&booking)) }))
    }
}

#[tonic::async_trait]
impl AdminService for Gateway {
    async fn create_venue(
        &self,
        request: Request<pb::CreateVenueRequest>,
    ) -> Result<Response<pb::CreateVenueResponse>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        let spec = VenueSpec {
            name: request.name,
            city: request.city,
            address: request.address,
            sections: convert::section_specs(request.sections),
        };
        let venue = self.engine.create_venue(spec).await.map_err(status)?;
        Ok(Response::new(pb::CreateVenueResponse { venue: Some(convert::venue(&venue)) }))
    }

    async fn create_performer(
        &self,
        request: Request<pb::CreatePerformerRequest>,
    ) -> Result<Response<pb::CreatePerformerResponse>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        let spec = PerformerSpec { name: request.name, description: request.description, genre: request.genre };
        let performer = self.engine.create_performer(spec).await.map_err(status)?;
        Ok(Response::new(pb::CreatePerformerResponse { performer: Some(convert::performer(&performer)) }))
    }

    async fn create_event(
        &self,
        request: Request<pb::CreateEventRequest>,
    ) -> Result<Response<pb::CreateEventResponse>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        let starts_at_ms = convert::required_time("starts_at", request.starts_at.as_ref())?;
        let ends_at_ms = convert::required_time("ends_at", request.ends_at.as_ref())?;
        let (currency, price_levels) = convert::price_levels(request.price_levels)?;
        let spec = EventSpec {
            name: request.name,
            description: request.description,
            category: request.category,
            venue_id: VenueId::new(request.venue_id),
            performer_ids: request.performer_ids.into_iter().map(PerformerId::new).collect(),
            starts_at_ms,
            ends_at_ms,
            currency,
            price_levels,
            hold_ttl_ms: (request.hold_ttl_seconds > 0).then(|| u64::from(request.hold_ttl_seconds) * 1_000),
            buyer_seat_limit: (request.buyer_seat_limit > 0).then_some(request.buyer_seat_limit),
        };
        let event = self.engine.create_event(spec).await.map_err(status)?;
        Ok(Response::new(pb::CreateEventResponse { event: Some(convert::event(&event, None)) }))
    }

    async fn update_event(
        &self,
        request: Request<pb::UpdateEventRequest>,
    ) -> Result<Response<pb::UpdateEventResponse>, Status> {
        self.admin(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        // It sets fields to values: sending it again changes nothing more.
        let request = match self
            .route(Some(&event_id), request, Kind::Repeatable, forward_call!(AdminServiceClient::update_event))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        }
        .into_inner();
        let update = EventUpdate {
            name: request.name,
            description: request.description,
            category: request.category,
            starts_at_ms: request.starts_at.as_ref().map(|at| convert::unix_ms("starts_at", at)).transpose()?,
            ends_at_ms: request.ends_at.as_ref().map(|at| convert::unix_ms("ends_at", at)).transpose()?,
            hold_ttl_ms: request.hold_ttl_seconds.map(|seconds| u64::from(seconds) * 1_000),
            buyer_seat_limit: request.buyer_seat_limit,
        };
        let details = self.engine.update_event(&event_id, update).await.map_err(status)?;
        Ok(Response::new(pb::UpdateEventResponse {
            event: Some(convert::event(&details.info, Some(&details.overview))),
        }))
    }

    async fn cancel_event(
        &self,
        request: Request<pb::CancelEventRequest>,
    ) -> Result<Response<pb::CancelEventResponse>, Status> {
        self.admin(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        match self.route(Some(&event_id), request, Kind::Once, forward_call!(AdminServiceClient::cancel_event)).await? {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        let (details, holds_released, bookings_cancelled) =
            self.engine.cancel_event(&event_id).await.map_err(status)?;
        Ok(Response::new(pb::CancelEventResponse {
            event: Some(convert::event(&details.info, Some(&details.overview))),
            holds_released,
            bookings_cancelled,
        }))
    }

    async fn get_node_status(
        &self,
        request: Request<pb::GetNodeStatusRequest>,
    ) -> Result<Response<pb::GetNodeStatusResponse>, Status> {
        self.admin(&request)?;
        let (events_active, live_holds) = self.engine.activity();
        let mut response = pb::GetNodeStatusResponse {
            node_id: self.node_id.clone(),
            events_owned: self.engine.catalog().events().len() as u64,
            events_active,
            live_holds,
            resident_bytes: resident_bytes(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: Some(prost_types::Timestamp::from(self.node_info.started_at)),
            listen_address: self.node_info.listen_address.to_string(),
            metrics_address: self.node_info.metrics_address.map(|address| address.to_string()).unwrap_or_default(),
            data_directory: self.node_info.data_directory.display().to_string(),
            ..Default::default()
        };
        if let Some(router) = &self.router {
            let view = router.cluster_view();
            response.groups = view
                .groups
                .into_iter()
                .map(|group| pb::GroupStatus {
                    group: group.name,
                    leader_node_id: group.leader.unwrap_or_default(),
                    last_log_index: group.last_log_index,
                    last_applied_index: group.last_applied_index,
                    replication_lag: group.replication_lag,
                })
                .collect();
            response.peers = view
                .peers
                .into_iter()
                .map(|peer| pb::PeerStatus {
                    node_id: peer.node,
                    address: peer.address,
                    groups_shared: peer.groups_shared,
                    reachable: peer.reachable,
                    unreachable_seconds: peer.unreachable_for.as_secs(),
                })
                .collect();
        }
        if let Some(store) = self.engine.store() {
            let unavailable = |error: turnstile_storage::StoreError| Status::unavailable(error.to_string());
            response.log_entries = store.log_len().map_err(unavailable)?;
            response.log_last_index = store.last_index().map_err(unavailable)?;
            response.log_purged_index = store.purged_index().map_err(unavailable)?;
            response.database_bytes = std::fs::metadata(store.path()).map(|metadata| metadata.len()).unwrap_or(0);
            let stats = store.stats();
            let last_checkpoint_ms = stats.last_checkpoint_unix_ms.load(std::sync::atomic::Ordering::Relaxed);
            response.last_checkpoint_at = (last_checkpoint_ms > 0).then(|| convert::timestamp_u(last_checkpoint_ms));
            response.log_commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
            response.log_commands = stats.entries.load(std::sync::atomic::Ordering::Relaxed);
        }
        Ok(Response::new(response))
    }

    async fn configure_queue(
        &self,
        request: Request<pb::ConfigureQueueRequest>,
    ) -> Result<Response<pb::ConfigureQueueResponse>, Status> {
        self.admin(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        let request = match self
            .route(Some(&event_id), request, Kind::Once, forward_call!(AdminServiceClient::configure_queue))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        }
        .into_inner();
        let config = crate::waiting_room::config(&request)?;
        let progress = self.engine.configure_queue(&event_id, config.clone()).await.map_err(status)?;
        Ok(Response::new(crate::waiting_room::configured(&event_id, &config, &progress)))
    }

    async fn set_pricing(
        &self,
        request: Request<pb::SetPricingRequest>,
    ) -> Result<Response<pb::SetPricingResponse>, Status> {
        self.admin(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        // It replaces the rules: sending it again changes nothing more.
        let request = match self
            .route(Some(&event_id), request, Kind::Repeatable, forward_call!(AdminServiceClient::set_pricing))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        }
        .into_inner();
        let rules = request.rules.map(convert::pricing_rules);
        let details = self.engine.set_pricing(&event_id, rules).await.map_err(status)?;
        let response = convert::event_details(&details, false);
        Ok(Response::new(pb::SetPricingResponse { availability: response.availability }))
    }

    async fn redeem_ticket(
        &self,
        request: Request<pb::RedeemTicketRequest>,
    ) -> Result<Response<pb::RedeemTicketResponse>, Status> {
        self.admin(&request)?;
        // The code names its booking, whose id names the event. A code this cluster did not sign
        // is answered here (FORGED).
        let event_id = self
            .admission
            .verify_ticket_code(request.get_ref().code.trim())
            .and_then(|claims| BookingId::new(claims.bkg).event_id());
        // A second redemption answers ALREADY_USED: never sent twice.
        let request = match self
            .route(event_id.as_ref(), request, Kind::Once, forward_call!(AdminServiceClient::redeem_ticket))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        Ok(Response::new(self.redeem(&request.get_ref().code).await?))
    }

    async fn get_event_report(
        &self,
        request: Request<pb::GetEventReportRequest>,
    ) -> Result<Response<pb::GetEventReportResponse>, Status> {
        self.admin(&request)?;
        let event_id = EventId::new(convert::id("event_id", &request.get_ref().event_id)?);
        match self
            .route(Some(&event_id), request, Kind::Repeatable, forward_call!(AdminServiceClient::get_event_report))
            .await?
        {
            Routed::Here(request) => request,
            Routed::There(response) => return Ok(response),
        };
        Ok(Response::new(self.report(&event_id).await?))
    }

    async fn create_backup(
        &self,
        request: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<pb::CreateBackupResponse>, Status> {
        self.admin(&request)?;
        let requested = convert::id("path", &request.get_ref().path)?;
        let Some(store) = self.engine.store().cloned() else {
            return Err(Status::failed_precondition("this node runs in memory only and has nothing to back up"));
        };
        let path = backup_path(&self.backup_dir, requested)?;
        let target = path.clone();
        // A backup reads the whole database: keep it off the async workers.
        tokio::task::spawn_blocking(move || store.backup(&target))
            .await
            .map_err(|error| Status::internal(format!("backup task failed: {error}")))?
            .map_err(|error| invalid("path", error))?;
        let size_bytes = std::fs::metadata(&path).map(|metadata| metadata.len()).unwrap_or(0);
        tracing::info!(path = %path.display(), size_bytes, "backup taken");
        Ok(Response::new(pb::CreateBackupResponse { path: path.display().to_string(), size_bytes }))
    }
}

/// Where a requested backup goes: a relative path is resolved in `backup_dir` (created if
/// missing, but nothing below it is), an absolute one must lie in it, and neither may climb out
/// with `..`. Refusals name the field and the backup directory.
fn backup_path(backup_dir: &std::path::Path, requested: &str) -> Result<std::path::PathBuf, Status> {
    use std::path::Component;
    std::fs::create_dir_all(backup_dir).map_err(|error| {
        Status::failed_precondition(format!("backup directory {} cannot be created: {error}", backup_dir.display()))
    })?;
    let base = backup_dir
        .canonicalize()
        .map_err(|error| Status::failed_precondition(format!("backup directory {}: {error}", backup_dir.display())))?;
    let requested = std::path::Path::new(requested);
    let relative = if requested.is_absolute() {
        let inside = requested.strip_prefix(&base).or_else(|_| requested.strip_prefix(backup_dir));
        inside.map(std::path::Path::to_path_buf).map_err(|_| {
            Status::invalid_argument(format!(
                "path: backups go in the backup directory {}; give a path in it or relative to it",
                base.display()
            ))
        })?
    } else {
        requested.to_path_buf()
    };
    if relative.as_os_str().is_empty()
        || relative.components().any(|component| !matches!(component, Component::Normal(_)))
    {
        return Err(Status::invalid_argument(format!(
            "path: must name a file in the backup directory {} without '..' or '.'",
            base.display()
        )));
    }
    let path = base.join(&relative);
    if !path.parent().is_some_and(std::path::Path::is_dir) {
        return Err(Status::invalid_argument(format!(
            "path: directory {} does not exist in the backup directory; create it first",
            path.parent().map(|parent| parent.display().to_string()).unwrap_or_default()
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_garbage_is_rejected() {
        let cursor = (1_700_000_000_123, BookingId::new("bkg_00000000000000aa_00000000000000bb"));
        assert_eq!(decode_cursor(&encode_cursor(&cursor)).unwrap(), Some(cursor));
        assert_eq!(decode_cursor("").unwrap(), None);
        for garbage in ["%%%", "bm90IGEgdG9rZW4", "MTIzOmJrZ194"] {
            let error = decode_cursor(garbage).unwrap_err();
            assert!(error.message().starts_with("page_token"), "{garbage}: {error:?}");
        }
    }
}
