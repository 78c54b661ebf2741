//! The booking flow end to end over real gRPC on 127.0.0.1, plus health checking and reflection.

use crate::common;
// JSON over HTTP, server-sent events, grpc-web and the page: the same server, another protocol.
mod http_api;
// BookingService.Book and the Rust client crate over it.
mod stream_api;

use common::*;
use tonic::Code;
use turnstile_proto::v1 as pb;

#[tokio::test]
async fn view_hold_confirm_list_and_cancel() {
    let server = TestServer::start().await;
    let admin = server.admin_token();
    let ann = server.token("ann");
    let performer = server
        .admin()
        .create_performer(authed(
            &admin,
            pb::CreatePerformerRequest { name: "The Testers".into(), description: "".into(), genre: "rock".into() },
        ))
        .await
        .unwrap()
        .into_inner()
        .performer
        .unwrap();
    let venue = server
        .admin()
        .create_venue(authed(&admin, venue_request(3, 10, 50)))
        .await
        .unwrap()
        .into_inner()
        .venue
        .unwrap();
    assert_eq!(venue.capacity, 80);
    let mut request = event_request(&venue, 6);
    request.performer_ids = vec![performer.performer_id.clone()];
    let event = server.admin().create_event(authed(&admin, request)).await.unwrap().into_inner().event.unwrap();
    assert_eq!(event.hold_ttl_seconds, 600, "default TTL is ten minutes");

    // View without a token: anonymous catalog reads are allowed.
    let view = server
        .catalog()
        .get_event(pb::GetEventRequest { event_id: event.event_id.clone(), include_seats: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.performers[0].name, "The Testers");
    assert_eq!(view.seats.len(), 30);
    assert!(view.seats.iter().all(|seat| seat.status == pb::SeatStatus::Available as i32));
    let version_before = view.version;

    // Hold the best pair in S, then two standing places.
    let hold = server
        .booking()
        .hold_seats(authed(
            &ann,
            pb::HoldSeatsRequest {
                event_id: event.event_id.clone(),
                idempotency_key: "hold-1".into(),
                selection: best("S", 2),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    assert_eq!(hold.status, pb::HoldStatus::Active as i32);
    let seat_ids: Vec<&str> = hold.tickets.iter().map(|ticket| ticket.seat_id.as_str()).collect();
    assert_eq!(seat_ids, ["S:R0:5", "S:R0:6"]);
    assert_eq!(hold.total.as_ref().unwrap().amount_minor, 5_000);
    let expires = hold.expires_at.as_ref().unwrap().seconds - hold.placed_at.as_ref().unwrap().seconds;
    assert_eq!(expires, 600);
    let standing = server
        .booking()
        .hold_seats(authed(
            &ann,
            pb::HoldSeatsRequest {
                event_id: event.event_id.clone(),
                idempotency_key: "".into(),
                selection: best("GA", 2),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    assert!(standing.tickets.iter().all(|ticket| ticket.seat_id.is_empty() && ticket.section_id == "GA"));

    let view = server
        .catalog()
        .get_event(pb::GetEventRequest { event_id: event.event_id.clone(), include_seats: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(view.version > version_before, "version grows with every change");
    let held: Vec<&str> = view
        .seats
        .iter()
        .filter(|seat| seat.status == pb::SeatStatus::Held as i32)
        .map(|seat| seat.seat_id.as_str())
        .collect();
    assert_eq!(held, ["S:R0:5", "S:R0:6"]);
    let stalls = view.availability.iter().find(|row| row.section_id == "S").unwrap();
    assert_eq!((stalls.available, stalls.held, stalls.booked), (28, 2, 0));

    // Confirm, with a retry that must not book twice.
    let confirm = pb::ConfirmHoldRequest {
        hold_id: hold.hold_id.clone(),
        payment_reference: "psp-123".into(),
        idempotency_key: "confirm-1".into(),
    };
    let booking =
        server.booking().confirm_hold(authed(&ann, confirm.clone())).await.unwrap().into_inner().booking.unwrap();
    let retried = server.booking().confirm_hold(authed(&ann, confirm)).await.unwrap().into_inner().booking.unwrap();
    assert_eq!(booking.booking_id, retried.booking_id);
    assert_eq!(booking.status, pb::BookingStatus::Confirmed as i32);
    let hold_now = server
        .booking()
        .get_hold(authed(&ann, pb::GetHoldRequest { hold_id: hold.hold_id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    assert_eq!(hold_now.status, pb::HoldStatus::Confirmed as i32);
    assert_eq!(hold_now.booking_id, booking.booking_id);

    // Release the standing hold; confirming it afterwards fails.
    server
        .booking()
        .release_hold(authed(&ann, pb::ReleaseHoldRequest { hold_id: standing.hold_id.clone() }))
        .await
        .unwrap();
    let error = server
        .booking()
        .confirm_hold(authed(
            &ann,
            pb::ConfirmHoldRequest {
                hold_id: standing.hold_id.clone(),
                payment_reference: "psp-9".into(),
                idempotency_key: "".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(error.message().contains("released"), "{}", error.message());

    // The buyer sees the booking in their list; another buyer sees nothing.
    let listed =
        server.booking().list_bookings(authed(&ann, pb::ListBookingsRequest::default())).await.unwrap().into_inner();
    assert_eq!(listed.bookings.len(), 1);
    assert_eq!(listed.bookings[0].booking_id, booking.booking_id);
    let bob = server.token("bob");
    let other =
        server.booking().list_bookings(authed(&bob, pb::ListBookingsRequest::default())).await.unwrap().into_inner();
    assert!(other.bookings.is_empty());

    // Cancel: the seats return to sale and the list shows the cancellation.
    let cancelled = server
        .booking()
        .cancel_booking(authed(&ann, pb::CancelBookingRequest { booking_id: booking.booking_id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(cancelled.status, pb::BookingStatus::Cancelled as i32);
    assert!(cancelled.cancelled_at.is_some());
    let listed =
        server.booking().list_bookings(authed(&ann, pb::ListBookingsRequest::default())).await.unwrap().into_inner();
    assert_eq!(listed.bookings[0].status, pb::BookingStatus::Cancelled as i32);
    let view = server
        .catalog()
        .get_event(pb::GetEventRequest { event_id: event.event_id.clone(), include_seats: false, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(view.seats.is_empty(), "seats only on request");
    assert!(view.availability.iter().all(|row| row.held == 0 && row.booked == 0));
    server.stop().await;
}

#[tokio::test]
async fn update_and_cancel_an_event() {
    let server = TestServer::start().await;
    let admin = server.admin_token();
    let ann = server.token("ann");
    let event_id = create_event(&server, 2, 5, 0, 4).await;
    let updated = server
        .admin()
        .update_event(authed(
            &admin,
            pb::UpdateEventRequest {
                event_id: event_id.clone(),
                name: Some("Renamed Night".into()),
                hold_ttl_seconds: Some(120),
                buyer_seat_limit: Some(2),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .event
        .unwrap();
    assert_eq!((updated.name.as_str(), updated.hold_ttl_seconds, updated.buyer_seat_limit), ("Renamed Night", 120, 2));
    assert_eq!(updated.description, "A test", "fields not sent stay as they were");

    // The new terms apply to the next hold.
    let hold = server
        .booking()
        .hold_seats(authed(
            &ann,
            pb::HoldSeatsRequest {
                event_id: event_id.clone(),
                idempotency_key: "".into(),
                selection: best("S", 2),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    assert_eq!(hold.expires_at.unwrap().seconds - hold.placed_at.unwrap().seconds, 120);
    let error = server
        .booking()
        .hold_seats(authed(
            &ann,
            pb::HoldSeatsRequest {
                event_id: event_id.clone(),
                idempotency_key: "".into(),
                selection: best("S", 1),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);

    let bob = server.token("bob");
    let bob_hold = server
        .booking()
        .hold_seats(authed(
            &bob,
            pb::HoldSeatsRequest {
                event_id: event_id.clone(),
                idempotency_key: "".into(),
                selection: best("S", 1),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let bob_booking = server
        .booking()
        .confirm_hold(authed(
            &bob,
            pb::ConfirmHoldRequest {
                hold_id: bob_hold.hold_id,
                payment_reference: "p".into(),
                idempotency_key: "".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();

    let cancelled = server
        .admin()
        .cancel_event(authed(&admin, pb::CancelEventRequest { event_id: event_id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((cancelled.holds_released, cancelled.bookings_cancelled), (1, 1));
    assert_eq!(cancelled.event.unwrap().status, pb::EventStatus::Cancelled as i32);
    let listed =
        server.booking().list_bookings(authed(&bob, pb::ListBookingsRequest::default())).await.unwrap().into_inner();
    assert_eq!(listed.bookings[0].booking_id, bob_booking.booking_id);
    assert_eq!(listed.bookings[0].status, pb::BookingStatus::Cancelled as i32);
    let error = server
        .booking()
        .hold_seats(authed(
            &ann,
            pb::HoldSeatsRequest {
                event_id: event_id.clone(),
                idempotency_key: "".into(),
                selection: best("S", 1),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(error.message().contains("cancelled"), "{}", error.message());
    server.stop().await;
}

#[tokio::test]
async fn health_checking_and_reflection_answer() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel.clone());
    for service in ["", "turnstile.v1.BookingService", "turnstile.v1.CatalogService", "turnstile.v1.AdminService"] {
        let response = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(response.status, ServingStatus::Serving as i32, "{service}");
    }
    let error = health.check(HealthCheckRequest { service: "no.Such".into() }).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    let mut reflection = ServerReflectionClient::new(server.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        reflection.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected {response:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|service| service.name).collect();
    // Regression: health checking was served but not listed, so grpcurl could not find it.
    for expected in [
        "turnstile.v1.BookingService",
        "turnstile.v1.CatalogService",
        "turnstile.v1.AdminService",
        "turnstile.v1.QueueService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|name| name == expected), "{expected} is not listed: {names:?}");
    }
    // grpcurl then asks for the file that defines the service, to build the call.
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol("grpc.health.v1.Health".into())),
    };
    let mut responses =
        reflection.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("no file for grpc.health.v1.Health: {response:?}")
    };
    assert!(!files.file_descriptor_proto.is_empty());
    server.stop().await;
}

/// GetEvent leaves the venue's layout out unless asked: the venue comes as a summary with a
/// layout version that is the same for the same layout (clients cache the layout by it) and
/// differs for another; `include_layout` brings the sections, rows and seat labels.
#[tokio::test]
async fn get_event_sends_the_layout_only_when_asked() {
    use prost::Message as _;
    let server = TestServer::start().await;
    let big = create_event(&server, 20, 30, 100, 4).await;
    let same_layout = create_event(&server, 20, 30, 100, 4).await;
    let other_layout = create_event(&server, 2, 3, 0, 4).await;
    let get = |event_id: &str, include_layout: bool| pb::GetEventRequest {
        event_id: event_id.into(),
        include_layout,
        ..Default::default()
    };
    let summary = server.catalog().get_event(get(&big, false)).await.unwrap().into_inner();
    let venue = summary.venue.clone().unwrap();
    assert!(venue.sections.is_empty(), "no layout unless asked");
    assert_eq!(venue.capacity, 20 * 30 + 100);
    assert_eq!(venue.layout_version.len(), 16, "{venue:?}");
    assert!(!summary.availability.is_empty(), "availability is always there");

    let full = server.catalog().get_event(get(&big, true)).await.unwrap().into_inner();
    let full_venue = full.venue.clone().unwrap();
    assert_eq!(full_venue.layout_version, venue.layout_version);
    let labels: usize =
        full_venue.sections.iter().flat_map(|section| &section.rows).map(|row| row.seat_labels.len()).sum();
    assert_eq!(labels, 20 * 30, "every seat label with the layout");
    assert!(
        summary.encoded_len() * 5 < full.encoded_len(),
        "the summary is a fraction of the whole: {} against {} bytes",
        summary.encoded_len(),
        full.encoded_len()
    );

    let same = server.catalog().get_event(get(&same_layout, false)).await.unwrap().into_inner().venue.unwrap();
    assert_ne!(same.venue_id, venue.venue_id);
    assert_eq!(same.layout_version, venue.layout_version, "the same layout, the same version");
    let other = server.catalog().get_event(get(&other_layout, false)).await.unwrap().into_inner().venue.unwrap();
    assert_ne!(other.layout_version, venue.layout_version);
    server.stop().await;
}
