//! BookingService: holds, bookings, waitlists and the `Book` stream (served by `crate::stream`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tonic::{Request, Response, Status};
use turnstile_engine::engine::BookingCursor;
use turnstile_engine::ids::{BookingId, EventId, HoldId};
use turnstile_engine::inventory::Selection;
use turnstile_engine::limits;
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::booking_service_server::BookingService;

use turnstile_proto::v1::booking_service_client::BookingServiceClient;

use crate::convert;
use crate::error::{invalid, status};
use crate::forward::{forward_call, Kind, Routed};
use crate::state::Gateway;

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
                client.list_bookings(attempt).await.map(|reply| (node.as_str(), reply.into_inner()))
            }
        });
        let mut merged: std::collections::BTreeMap<(std::cmp::Reverse<u64>, String), pb::Booking> = Default::default();
        let mut answers = 0usize;
        let mut more = false;
        let mut last_failure = None;
        for reply in futures::future::join_all(asks).await {
            match reply {
                Ok((node, page)) => {
                    answers += 1;
                    more |= !page.next_page_token.is_empty();
                    for booking in page.bookings {
                        let booked_at_ms = booking
                            .booked_at
                            .as_ref()
                            .map_or(0, |at| (at.seconds.max(0) as u64) * 1_000 + (at.nanos.max(0) as u64) / 1_000_000);
                        // A node that left the booking's shard keeps what it had then: when
                        // answers differ, a current replica's wins.
                        let current = BookingId::new(&booking.booking_id)
                            .event_id()
                            .is_some_and(|event_id| holders.current_replica(node, event_id.as_str()));
                        let key = (std::cmp::Reverse(booked_at_ms), booking.booking_id.clone());
                        if current || !merged.contains_key(&key) {
                            merged.insert(key, booking);
                        }
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
