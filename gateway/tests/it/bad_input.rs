//! Bad input over real gRPC: every kind of rejected request gets the right status code and a
//! message that names what was wrong (the field path, the id or the bound), and a rejected request
//! changes nothing.

use crate::common;

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};
use turnstile::auth::{Authenticator, Claims, Role};
use turnstile_engine::limits;
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::hold_seats_request::Selection;

// -------------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------------

/// The error of a call that must fail.
#[track_caller]
fn error_of<T: Debug>(result: Result<T, Status>) -> Status {
    match result {
        Ok(answer) => panic!("expected an error, got {answer:?}"),
        Err(status) => status,
    }
}

/// The call failed with `code` and a message containing every one of `needles`.
#[track_caller]
fn assert_rejected<T: Debug>(result: Result<T, Status>, code: Code, needles: &[&str]) -> Status {
    let status = error_of(result);
    assert_eq!(status.code(), code, "wrong code; message: {}", status.message());
    for needle in needles {
        assert!(status.message().contains(needle), "message {:?} should mention {needle:?}", status.message());
    }
    status
}

/// The call failed with INVALID_ARGUMENT and a message of the form `<field>: <reason>`.
#[track_caller]
fn assert_invalid<T: Debug>(result: Result<T, Status>, field: &str) -> Status {
    let status = error_of(result);
    assert_eq!(status.code(), Code::InvalidArgument, "wrong code for {field}; message: {}", status.message());
    assert!(
        status.message().starts_with(&format!("{field}: ")),
        "message {:?} should name the field {field:?}",
        status.message()
    );
    status
}

/// Seat ids (`a:b:c`) listed in a message, in order; exact, so `S:R0:1` never matches `S:R0:10`.
fn seat_ids_in(message: &str) -> Vec<String> {
    message
        .split(|c: char| c.is_whitespace() || c == ',' || c == '\'')
        .filter(|word| word.matches(':').count() == 2 && !word.ends_with(':'))
        .map(str::to_string)
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|id| id.to_string()).collect()
}

/// `count` seat ids of section S, row after row, for a venue of `seats_per_row` seats per row.
fn seat_range(count: usize, seats_per_row: usize) -> Vec<String> {
    (0..count).map(|index| format!("S:R{}:{}", index / seats_per_row, index % seats_per_row + 1)).collect()
}

/// The key an event id embeds into hold and booking ids.
fn event_key(event_id: &str) -> &str {
    event_id.strip_prefix("evt_").expect("event ids start with evt_")
}

async fn hold(
    server: &TestServer,
    token: &str,
    event_id: &str,
    selection: Option<Selection>,
) -> Result<pb::Hold, Status> {
    server
        .booking()
        .hold_seats(authed(
            token,
            pb::HoldSeatsRequest {
                event_id: event_id.into(),
                idempotency_key: String::new(),
                selection,
                ..Default::default()
            },
        ))
        .await
        .map(|response| response.into_inner().hold.unwrap())
}

async fn get_hold(server: &TestServer, token: &str, hold_id: &str) -> Result<pb::Hold, Status> {
    server
        .booking()
        .get_hold(authed(token, pb::GetHoldRequest { hold_id: hold_id.into() }))
        .await
        .map(|response| response.into_inner().hold.unwrap())
}

async fn release(server: &TestServer, token: &str, hold_id: &str) -> Result<pb::Hold, Status> {
    server
        .booking()
        .release_hold(authed(token, pb::ReleaseHoldRequest { hold_id: hold_id.into() }))
        .await
        .map(|response| response.into_inner().hold.unwrap())
}

async fn confirm(
    server: &TestServer,
    token: &str,
    hold_id: &str,
    payment_reference: &str,
) -> Result<pb::Booking, Status> {
    server
        .booking()
        .confirm_hold(authed(
            token,
            pb::ConfirmHoldRequest {
                hold_id: hold_id.into(),
                payment_reference: payment_reference.into(),
                idempotency_key: String::new(),
            },
        ))
        .await
        .map(|response| response.into_inner().booking.unwrap())
}

async fn get_booking(server: &TestServer, token: &str, booking_id: &str) -> Result<pb::Booking, Status> {
    server
        .booking()
        .get_booking(authed(token, pb::GetBookingRequest { booking_id: booking_id.into() }))
        .await
        .map(|response| response.into_inner().booking.unwrap())
}

async fn cancel_booking(server: &TestServer, token: &str, booking_id: &str) -> Result<pb::Booking, Status> {
    server
        .booking()
        .cancel_booking(authed(token, pb::CancelBookingRequest { booking_id: booking_id.into() }))
        .await
        .map(|response| response.into_inner().booking.unwrap())
}

async fn list_bookings(
    server: &TestServer,
    token: &str,
    page_size: u32,
    page_token: &str,
) -> Result<pb::ListBookingsResponse, Status> {
    server
        .booking()
        .list_bookings(authed(token, pb::ListBookingsRequest { page_size, page_token: page_token.into() }))
        .await
        .map(|response| response.into_inner())
}

async fn get_event(server: &TestServer, event_id: &str) -> Result<pb::GetEventResponse, Status> {
    server
        .catalog()
        .get_event(authed(
            &server.admin_token(),
            pb::GetEventRequest { event_id: event_id.into(), include_seats: true, ..Default::default() },
        ))
        .await
        .map(|response| response.into_inner())
}

async fn create_venue(server: &TestServer, request: pb::CreateVenueRequest) -> Result<pb::Venue, Status> {
    server
        .admin()
        .create_venue(authed(&server.admin_token(), request))
        .await
        .map(|response| response.into_inner().venue.unwrap())
}

async fn create_event_with(server: &TestServer, request: pb::CreateEventRequest) -> Result<pb::Event, Status> {
    server
        .admin()
        .create_event(authed(&server.admin_token(), request))
        .await
        .map(|response| response.into_inner().event.unwrap())
}

async fn create_performer(server: &TestServer, name: &str) -> pb::Performer {
    server
        .admin()
        .create_performer(authed(
            &server.admin_token(),
            pb::CreatePerformerRequest { name: name.into(), description: String::new(), genre: "rock".into() },
        ))
        .await
        .unwrap()
        .into_inner()
        .performer
        .unwrap()
}

/// Everything GetEvent shows that a rejected request must leave alone.
#[derive(Debug, PartialEq)]
struct Snapshot {
    version: u64,
    availability: Vec<pb::Availability>,
    seats: Vec<pb::SeatState>,
    event: pb::Event,
}

async fn snapshot(server: &TestServer, event_id: &str) -> Snapshot {
    let view = get_event(server, event_id).await.unwrap();
    Snapshot { version: view.version, availability: view.availability, seats: view.seats, event: view.event.unwrap() }
}

fn section<'a>(snapshot: &'a Snapshot, section_id: &str) -> &'a pb::Availability {
    snapshot
        .availability
        .iter()
        .find(|row| row.section_id == section_id)
        .unwrap_or_else(|| panic!("no section {section_id} in {:?}", snapshot.availability))
}

fn seat_status(snapshot: &Snapshot, seat_id: &str) -> pb::SeatStatus {
    let seat =
        snapshot.seats.iter().find(|seat| seat.seat_id == seat_id).unwrap_or_else(|| panic!("no seat {seat_id}"));
    pb::SeatStatus::try_from(seat.status).unwrap()
}

/// A HoldSeats request carrying `authorization: <header>` verbatim.
fn with_authorization(header: &str, event_id: &str) -> Request<pb::HoldSeatsRequest> {
    let mut request = Request::new(pb::HoldSeatsRequest {
        event_id: event_id.into(),
        idempotency_key: String::new(),
        selection: best("S", 1),
        ..Default::default()
    });
    let value: MetadataValue<_> = header.parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

// -------------------------------------------------------------------------------------------------
// Unknown ids
// -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_ids_are_not_found_and_unknown_references_are_invalid() {
    let server = TestServer::start().await;
    let ann = server.token("ann");
    let event_id = create_event(&server, 2, 10, 0, 8).await;
    let before = snapshot(&server, &event_id).await;

    // Events.
    for missing in ["evt_00000000deadbeef", "no-such-event"] {
        assert_rejected(get_event(&server, missing).await, Code::NotFound, &[missing]);
        assert_rejected(hold(&server, &ann, missing, best("S", 1)).await, Code::NotFound, &["event", missing]);
        assert_rejected(
            server
                .admin()
                .update_event(authed(
                    &server.admin_token(),
                    pb::UpdateEventRequest {
                        event_id: missing.into(),
                        name: Some("Renamed".into()),
                        ..Default::default()
                    },
                ))
                .await,
            Code::NotFound,
            &[missing],
        );
        assert_rejected(
            server
                .admin()
                .cancel_event(authed(&server.admin_token(), pb::CancelEventRequest { event_id: missing.into() }))
                .await,
            Code::NotFound,
            &[missing],
        );
    }

    // Holds: well formed (of an unknown event and of this event) and garbage.
    let key = event_key(&event_id);
    let well_formed_elsewhere = "hld_00000000deadbeef_0123456789abcdef".to_string();
    let well_formed_here = format!("hld_{key}_00000000000000ff");
    let booking_shaped = format!("bkg_{key}_00000000000000ff");
    for hold_id in [
        well_formed_elsewhere.as_str(),
        well_formed_here.as_str(),
        booking_shaped.as_str(),
        "garbage",
        "hld_zz_zz",
        "hld_",
    ] {
        let needles = ["hold", hold_id];
        assert_rejected(get_hold(&server, &ann, hold_id).await, Code::NotFound, &needles);
        assert_rejected(release(&server, &ann, hold_id).await, Code::NotFound, &needles);
        assert_rejected(confirm(&server, &ann, hold_id, "pay-1").await, Code::NotFound, &needles);
    }

    // Bookings likewise.
    let well_formed_elsewhere = "bkg_00000000deadbeef_0123456789abcdef".to_string();
    let well_formed_here = format!("bkg_{key}_00000000000000ff");
    let hold_shaped = format!("hld_{key}_00000000000000ff");
    for booking_id in
        [well_formed_elsewhere.as_str(), well_formed_here.as_str(), hold_shaped.as_str(), "garbage", "bkg_zz_zz"]
    {
        let needles = ["booking", booking_id];
        assert_rejected(get_booking(&server, &ann, booking_id).await, Code::NotFound, &needles);
        assert_rejected(cancel_booking(&server, &ann, booking_id).await, Code::NotFound, &needles);
    }

    // CreateEvent naming a venue or performer that does not exist: the request is invalid.
    let venue = create_venue(&server, venue_request(2, 10, 0)).await.unwrap();
    let mut request = event_request(&venue, 8);
    request.venue_id = "ven_00000000deadbeef".into();
    let status = assert_invalid(create_event_with(&server, request).await, "venue_id");
    assert!(status.message().contains("ven_00000000deadbeef"), "{status:?}");

    let mut request = event_request(&venue, 8);
    request.performer_ids = ids(&["prf_00000000deadbeef"]);
    let status = assert_invalid(create_event_with(&server, request).await, "performer_ids[0]");
    assert!(status.message().contains("prf_00000000deadbeef"), "{status:?}");

    let performer = create_performer(&server, "The Testers").await;
    let mut request = event_request(&venue, 8);
    request.performer_ids = vec![performer.performer_id.clone(), "prf_missing".into()];
    let status = assert_invalid(create_event_with(&server, request).await, "performer_ids[1]");
    assert!(status.message().contains("prf_missing"), "{status:?}");

    let mut request = event_request(&venue, 8);
    request.performer_ids = vec![performer.performer_id.clone(); 2];
    let status = assert_invalid(create_event_with(&server, request).await, "performer_ids[1]");
    assert!(status.message().contains("twice"), "{status:?}");

    // The same request with known references is accepted.
    let mut request = event_request(&venue, 8);
    request.performer_ids = vec![performer.performer_id.clone()];
    create_event_with(&server, request).await.unwrap();

    assert_eq!(snapshot(&server, &event_id).await, before);
    server.stop().await;
}

// -------------------------------------------------------------------------------------------------
// Empty required ids, missing selection
// -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn empty_required_ids_and_missing_selection_are_invalid() {
    let server = TestServer::start().await;
    let ann = server.token("ann");
    let admin = server.admin_token();
    let event_id = create_event(&server, 2, 10, 0, 8).await;

    assert_invalid(get_event(&server, "").await, "event_id");
    assert_invalid(hold(&server, &ann, "", best("S", 1)).await, "event_id");
    assert_invalid(hold(&server, &ann, &event_id, None).await, "selection");
    assert_invalid(get_hold(&server, &ann, "").await, "hold_id");
    assert_invalid(release(&server, &ann, "").await, "hold_id");
    assert_invalid(confirm(&server, &ann, "", "pay-1").await, "hold_id");
    assert_invalid(get_booking(&server, &ann, "").await, "booking_id");
    assert_invalid(cancel_booking(&server, &ann, "").await, "booking_id");
    assert_invalid(server.admin().update_event(authed(&admin, pb::UpdateEventRequest::default())).await, "event_id");
    assert_invalid(server.admin().cancel_event(authed(&admin, pb::CancelEventRequest::default())).await, "event_id");
    let venue = create_venue(&server, venue_request(1, 5, 0)).await.unwrap();
    let mut request = event_request(&venue, 8);
    request.venue_id = String::new();
    assert_invalid(create_event_with(&server, request).await, "venue_id");

    // An id too long to name anything is refused before any lookup.
    let long_id = format!("hld_{}", "a".repeat(200));
    let status = assert_invalid(get_hold(&server, &ann, &long_id).await, "hold_id");
    assert!(status.message().contains("128"), "{status:?}");
    assert_invalid(get_event(&server, &"e".repeat(129)).await, "event_id");

    // Confirming needs a payment reference; the hold stays active.
    let held = hold(&server, &ann, &event_id, seats(&ids(&["S:R0:1"]))).await.unwrap();
    for reference in ["", "   "] {
        assert_invalid(confirm(&server, &ann, &held.hold_id, reference).await, "payment_reference");
    }
    assert_invalid(confirm(&server, &ann, &held.hold_id, &"p".repeat(129)).await, "payment_reference");
    let after = get_hold(&server, &ann, &held.hold_id).await.unwrap();
    assert_eq!(after.status, pb::HoldStatus::Active as i32);
    assert!(after.booking_id.is_empty());

    // Over-long idempotency keys are refused, not truncated.
    let status = assert_invalid(
        server
            .booking()
            .hold_seats(authed(
                &ann,
                pb::HoldSeatsRequest {
                    event_id: event_id.clone(),
                    idempotency_key: "k".repeat(129),
                    selection: best("S", 1),
                    ..Default::default()
                },
            ))
            .await,
        "idempotency_key",
    );
    assert!(status.message().contains("128"), "{status:?}");

    let view = snapshot(&server, &event_id).await;
    assert_eq!(view.version, 1, "only the one hold changed the event");
    assert_eq!(section(&view, "S").held, 1);
    assert_eq!(section(&view, "S").booked, 0);
    server.stop().await;
}

// -------------------------------------------------------------------------------------------------
// Seat lists
// -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_seat_lists_name_the_offending_seat() {
    let server = TestServer::start().await;
    let ann = server.token("ann");
    // 60 reserved seats, 20 standing places, a limit that never gets in the way here.
    let event_id = create_event(&server, 6, 10, 20, 100).await;
    let before = snapshot(&server, &event_id).await;
    let seat_list = |list: Vec<String>| hold(&server, &ann, &event_id, seats(&list));

    // Empty and oversized lists name the list itself.
    assert_invalid(seat_list(vec![]).await, "seats.seat_ids");
    let too_many = seat_range(limits::SEATS_PER_HOLD_MAX as usize + 1, 10);
    let status = assert_invalid(seat_list(too_many).await, "seats.seat_ids");
    assert!(status.message().contains("50") && status.message().contains("51"), "{status:?}");

    // Duplicates name the second occurrence.
    let status = assert_invalid(seat_list(ids(&["S:R0:1", "S:R0:1"])).await, "seats.seat_ids[1]");
    assert!(status.message().contains("twice"), "{status:?}");
    assert_eq!(seat_ids_in(status.message()), ids(&["S:R0:1"]));
    assert_invalid(seat_list(ids(&["S:R0:1", "S:R0:2", "S:R0:1"])).await, "seats.seat_ids[2]");

    // Malformed ids and ids naming nothing, at the position where they are.
    for (list, field, mention) in [
        (vec!["S-R0-1"], "seats.seat_ids[0]", "S-R0-1"),
        (vec![""], "seats.seat_ids[0]", "<section>:<row>:<seat>"),
        (vec!["S:R0:1", "S:R0"], "seats.seat_ids[1]", "S:R0"),
        (vec!["S:R0:1", "S:R0:2", "S:R0:3:4"], "seats.seat_ids[2]", "S:R0:3:4"),
        (vec!["S:R0:1", "X:R0:1"], "seats.seat_ids[1]", "'X'"),
        (vec!["S:R0:1", "S:R9:1"], "seats.seat_ids[1]", "'R9'"),
        (vec!["S:R0:11"], "seats.seat_ids[0]", "'11'"),
        (vec!["s:r0:1"], "seats.seat_ids[0]", "'s'"),
    ] {
        let status = assert_invalid(seat_list(ids(&list)).await, field);
        assert!(
            status.message().contains(mention),
            "{list:?}: message {:?} should mention {mention:?}",
            status.message()
        );
    }

    // A general-admission section has no seat ids.
    let status = assert_invalid(seat_list(ids(&["S:R0:1", "GA:R0:1"])).await, "seats.seat_ids[1]");
    assert!(status.message().contains("general admission"), "{status:?}");

    // Nothing was held by any of it.
    assert_eq!(snapshot(&server, &event_id).await, before);

    // The largest list allowed is accepted: the bound is exactly SEATS_PER_HOLD_MAX.
    let largest = seat_list(seat_range(limits::SEATS_PER_HOLD_MAX as usize, 10)).await.unwrap();
    assert_eq!(largest.tickets.len(), 50);
    server.stop().await;
}

// -------------------------------------------------------------------------------------------------
// best_available
// -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_quantities_and_sections_are_invalid() {
    let server = TestServer::start().await;
    let ann = server.token("ann");
    let event_id = create_event(&server, 6, 10, 20, 100).await;
    let before = snapshot(&server, &event_id).await;

    for section_id in ["S", "GA"] {
        for quantity in [0, -1, -50, i32::MIN, 51, 1_000, i32::MAX] {
            let status = assert_invalid(
                hold(&server, &ann, &event_id, best(section_id, quantity)).await,
                "best_available.quantity",
            );
            assert!(status.message().contains(&format!("got {quantity}")), "{section_id} x {quantity}: {status:?}");
        }
    }
    for section_id in ["ZZ", "", "s", "S:R0:1"] {
        let status =
            assert_invalid(hold(&server, &ann, &event_id, best(section_id, 2)).await, "best_available.section_id");
        assert!(status.message().contains(&format!("'{section_id}'")), "{status:?}");
    }

    // Valid requests the section cannot satisfy: a precondition, naming the section.
    assert_rejected(
        hold(&server, &ann, &event_id, best("S", 11)).await,
        Code::FailedPrecondition,
        &["'S'", "adjacent"],
    );
    assert_rejected(hold(&server, &ann, &event_id, best("GA", 21)).await, Code::FailedPrecondition, &["'GA'", "21"]);

    assert_eq!(snapshot(&server, &event_id).await, before);

    // The bounds themselves are accepted.
    let one = hold(&server, &ann, &event_id, best("S", 1)).await.unwrap();
    assert_eq!(one.tickets.len(), 1);
    let all_standing = hold(&server, &ann, &event_id, best("GA", 20)).await.unwrap();
    assert_eq!(all_standing.tickets.len(), 20);
    server.stop().await;
}

// -------------------------------------------------------------------------------------------------
// Per-buyer limits and listing bounds
// -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn buyer_seat_limit_spans_holds_and_bookings() {
    let server = TestServer::start().await;
    let ann = server.token("ann");
    let bob = server.token("bob");
    let event_id = create_event(&server, 3, 10, 20, 5).await;

    let seats_hold = hold(&server, &ann, &event_id, seats(&ids(&["S:R0:1", "S:R0:2"]))).await.unwrap();
    let standing = hold(&server, &ann, &event_id, best("GA", 2)).await.unwrap();
    let before = snapshot(&server, &event_id).await;

    // Four held, limit five: two more is one too many, whichever way they are asked for.
    for selection in [best("S", 2), best("GA", 2), seats(&ids(&["S:R1:1", "S:R1:2"]))] {
        assert_rejected(
            hold(&server, &ann, &event_id, selection).await,
            Code::ResourceExhausted,
            &["buyer_seat_limit", "is 5"],
        );
    }
    // One request alone over the limit.
    assert_rejected(
        hold(&server, &bob, &event_id, best("S", 6)).await,
        Code::ResourceExhausted,
        &["buyer_seat_limit", "is 5"],
    );
    assert_rejected(
        hold(&server, &bob, &event_id, seats(&seat_range(6, 10))).await,
        Code::ResourceExhausted,
        &["buyer_seat_limit", "is 5"],
    );
    assert_eq!(snapshot(&server, &event_id).await, before);

    // The limit is per buyer: bob may take five.
    hold(&server, &bob, &event_id, best("S", 5)).await.unwrap();

    // A confirmed booking still counts; a released hold does not.
    confirm(&server, &ann, &seats_hold.hold_id, "pay-ann").await.unwrap();
    assert_rejected(hold(&server, &ann, &event_id, best("S", 2)).await, Code::ResourceExhausted, &["buyer_seat_limit"]);
    release(&server, &ann, &standing.hold_id).await.unwrap();
    let again = hold(&server, &ann, &event_id, best("S", 3)).await.unwrap();
    assert_eq!(again.tickets.len(), 3);
    assert_rejected(
        hold(&server, &ann, &event_id, best("GA", 1)).await,
        Code::ResourceExhausted,
        &["buyer_seat_limit"],
    );
    server.stop().await;
}

#[tokio::test]
async fn live_holds_per_buyer_are_bounded() {
    let server = TestServer::start().await;
    let dan = server.token("dan");
    let eve = server.token("eve");
    let event_id = create_event(&server, 3, 10, 0, 100).await;

    let mut holds = Vec::new();
    for index in 0..limits::HOLDS_PER_BUYER_MAX {
        let seat = format!("S:R0:{}", index + 1);
        holds.push(hold(&server, &dan, &event_id, seats(&[seat])).await.unwrap());
    }
    let before = snapshot(&server, &event_id).await;
    for selection in [best("S", 1), seats(&ids(&["S:R2:1"]))] {
        assert_rejected(
            hold(&server, &dan, &event_id, selection).await,
            Code::ResourceExhausted,
            &["holds_per_buyer", "10"],
        );
    }
    assert_eq!(snapshot(&server, &event_id).await, before);

    // Another buyer is not affected, and ending one of dan's holds makes room for one more.
    hold(&server, &eve, &event_id, best("S", 1)).await.unwrap();
    release(&server, &dan, &holds[0].hold_id).await.unwrap();
    hold(&server, &dan, &event_id, best("S", 1)).await.unwrap();
    assert_rejected(hold(&server, &dan, &event_id, best("S", 1)).await, Code::ResourceExhausted, &["holds_per_buyer"]);
    server.stop().await;
}

#[tokio::test]
async fn list_bookings_bounds_page_size_and_checks_page_tokens() {
    let server = TestServer::start().await;
    let ann = server.token("ann");

    for page_size in [limits::PAGE_SIZE_MAX + 1, 1_000, u32::MAX] {
        let status = assert_invalid(list_bookings(&server, &ann, page_size, "").await, "page_size");
        assert!(status.message().contains("100") && status.message().contains(&page_size.to_string()), "{status:?}");
    }
    list_bookings(&server, &ann, limits::PAGE_SIZE_MAX, "").await.unwrap();

    let encode = |text: &str| URL_SAFE_NO_PAD.encode(text);
    let booking_id = "bkg_0000000000000001_0000000000000002";
    for page_token in [
        "%%%".to_string(),
        "not a token".to_string(),
        encode("not a token"),
        encode("123:bkg_x"),
        encode(&format!("abc:{booking_id}")),
        encode(&format!("-5:{booking_id}")),
        encode("123:hld_0000000000000001_0000000000000002"),
        encode(booking_id),
    ] {
        let status = assert_invalid(list_bookings(&server, &ann, 10, &page_token).await, "page_token");
        assert!(status.message().contains("ListBookings"), "{status:?}");
    }
    // A token of the right shape is accepted (and names no booking of ann's).
    let page = list_bookings(&server, &ann, 10, &encode(&format!("123:{booking_id}"))).await.unwrap();
    assert!(page.bookings.is_empty() && page.next_page_token.is_empty());
    server.stop().await;
}

// -------------------------------------------------------------------------------------------------
// Conflicts and ended holds
// -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn taken_seats_are_listed_and_ended_holds_cannot_be_confirmed() {
    let server = TestServer::start().await;
    let ann = server.token("ann");
    let bob = server.token("bob");
    let event_id = create_event(&server, 2, 10, 0, 8).await;

    let ann_hold = hold(&server, &ann, &event_id, seats(&ids(&["S:R0:1", "S:R0:2"]))).await.unwrap();
    let before = snapshot(&server, &event_id).await;

    // Only the taken seats are listed, in the order asked; the free one is not held either.
    let status = assert_rejected(
        hold(&server, &bob, &event_id, seats(&ids(&["S:R0:3", "S:R0:2", "S:R0:10", "S:R0:1"]))).await,
        Code::FailedPrecondition,
        &[],
    );
    assert_eq!(seat_ids_in(status.message()), ids(&["S:R0:2", "S:R0:1"]));
    let status =
        assert_rejected(hold(&server, &ann, &event_id, seats(&ids(&["S:R0:2"]))).await, Code::FailedPrecondition, &[]);
    assert_eq!(seat_ids_in(status.message()), ids(&["S:R0:2"]));
    let after = snapshot(&server, &event_id).await;
    assert_eq!(after, before);
    assert_eq!(seat_status(&after, "S:R0:3"), pb::SeatStatus::Available);

    // Booked seats are taken too.
    let booking = confirm(&server, &ann, &ann_hold.hold_id, "pay-ann").await.unwrap();
    let status =
        assert_rejected(hold(&server, &bob, &event_id, seats(&ids(&["S:R0:1"]))).await, Code::FailedPrecondition, &[]);
    assert_eq!(seat_ids_in(status.message()), ids(&["S:R0:1"]));

    // Confirming a confirmed hold again with another payment: already confirmed, as that booking.
    assert_rejected(
        confirm(&server, &ann, &ann_hold.hold_id, "pay-other").await,
        Code::FailedPrecondition,
        &[&ann_hold.hold_id, &booking.booking_id, "confirmed"],
    );

    // A released hold cannot be confirmed; releasing it again is an idempotent retry.
    let released = hold(&server, &ann, &event_id, seats(&ids(&["S:R1:5"]))).await.unwrap();
    release(&server, &ann, &released.hold_id).await.unwrap();
    let before = snapshot(&server, &event_id).await;
    assert_rejected(
        confirm(&server, &ann, &released.hold_id, "pay-late").await,
        Code::FailedPrecondition,
        &[&released.hold_id, "released"],
    );
    let again = release(&server, &ann, &released.hold_id).await.unwrap();
    assert_eq!(again.status, pb::HoldStatus::Released as i32);
    let after = snapshot(&server, &event_id).await;
    assert_eq!(after, before);
    assert_eq!(seat_status(&after, "S:R1:5"), pb::SeatStatus::Available);

    // A cancelled event is off sale.
    server
        .admin()
        .cancel_event(authed(&server.admin_token(), pb::CancelEventRequest { event_id: event_id.clone() }))
        .await
        .unwrap();
    assert_rejected(
        hold(&server, &bob, &event_id, best("S", 1)).await,
        Code::FailedPrecondition,
        &[&event_id, "cancelled"],
    );
    server.stop().await;
}

// -------------------------------------------------------------------------------------------------
// Tokens and roles
// -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_tokens_are_unauthenticated_with_a_reason() {
    let server = TestServer::start().await;
    let event_id = create_event(&server, 2, 10, 0, 8).await;
    let before = snapshot(&server, &event_id).await;

    // No token at all.
    assert_rejected(
        server
            .booking()
            .hold_seats(pb::HoldSeatsRequest {
                event_id: event_id.clone(),
                idempotency_key: String::new(),
                selection: best("S", 1),
                ..Default::default()
            })
            .await,
        Code::Unauthenticated,
        &["missing authorization"],
    );
    assert_rejected(
        server.booking().list_bookings(pb::ListBookingsRequest::default()).await,
        Code::Unauthenticated,
        &["missing authorization"],
    );
    assert_rejected(
        server.admin().create_venue(venue_request(1, 1, 0)).await,
        Code::Unauthenticated,
        &["missing authorization"],
    );

    let hour_ago = unix_now() - 3_600;
    let expired = server.authenticator.mint_claims(&Claims { sub: "ann".into(), role: Role::User, exp: hour_ago });
    let other_secret = Authenticator::new(b"another-secret-of-enough-length").mint("ann", Role::User, 3_600);
    let secret = EncodingKey::from_secret(SECRET.as_bytes());
    let claims = |role: &str| serde_json::json!({ "sub": "ann", "role": role, "exp": unix_now() + 3_600 });
    let unknown_role = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims("superuser"), &secret).unwrap();
    let wrong_algorithm = jsonwebtoken::encode(&Header::new(Algorithm::HS384), &claims("user"), &secret).unwrap();
    let no_subject = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({ "role": "user", "exp": unix_now() + 3_600 }),
        &secret,
    )
    .unwrap();
    let empty_subject = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({ "sub": "", "role": "user", "exp": unix_now() + 3_600 }),
        &secret,
    )
    .unwrap();
    // Regression: a token whose `nbf` (not before) is ahead was accepted and placed a hold.
    let not_yet_valid = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({ "sub": "ann", "role": "user", "exp": unix_now() + 7_200, "nbf": unix_now() + 3_600 }),
        &secret,
    )
    .unwrap();
    let good = server.token("ann");

    let cases: Vec<(String, &str)> = vec![
        ("Bearer abc".into(), "malformed"),
        ("Bearer ".into(), "malformed"),
        (good.clone(), "Bearer <token>"),
        (format!("Basic {good}"), "Bearer <token>"),
        (format!("Token {good}"), "Bearer <token>"),
        (format!("Bearer {expired}"), "expired"),
        (format!("Bearer {not_yet_valid}"), "nbf"),
        (format!("Bearer {other_secret}"), "signature"),
        (format!("Bearer {unknown_role}"), "role"),
        (format!("Bearer {wrong_algorithm}"), "HS256"),
        (format!("Bearer {no_subject}"), "sub"),
        (format!("Bearer {empty_subject}"), "'sub'"),
    ];
    for (header, reason) in &cases {
        let status = assert_rejected(
            server.booking().hold_seats(with_authorization(header, &event_id)).await,
            Code::Unauthenticated,
            &[*reason],
        );
        assert!(
            !status.message().contains("missing authorization"),
            "{header}: a bad token is not a missing one: {status:?}"
        );
    }

    // A token that is present but bad is refused even where anonymous reads are allowed.
    for (token, reason) in [(&expired, "expired"), (&other_secret, "signature")] {
        assert_rejected(
            server
                .catalog()
                .get_event(authed(
                    token,
                    pb::GetEventRequest { event_id: event_id.clone(), include_seats: false, ..Default::default() },
                ))
                .await,
            Code::Unauthenticated,
            &[reason],
        );
        assert_rejected(
            server.admin().cancel_event(authed(token, pb::CancelEventRequest { event_id: event_id.clone() })).await,
            Code::Unauthenticated,
            &[reason],
        );
    }
    assert_eq!(snapshot(&server, &event_id).await, before);

    // The good token in the same shape works.
    server.booking().hold_seats(with_authorization(&format!("Bearer {good}"), &event_id)).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn buyer_tokens_are_refused_on_admin_calls() {
    let server = TestServer::start().await;
    let ann = server.token("ann");
    let event_id = create_event(&server, 2, 10, 0, 8).await;
    let before = snapshot(&server, &event_id).await;
    let admin_only = "role 'admin'";

    assert_rejected(
        server.admin().create_venue(authed(&ann, venue_request(1, 5, 0))).await,
        Code::PermissionDenied,
        &[admin_only],
    );
    assert_rejected(
        server
            .admin()
            .create_performer(authed(&ann, pb::CreatePerformerRequest { name: "Sneaky".into(), ..Default::default() }))
            .await,
        Code::PermissionDenied,
        &[admin_only],
    );
    let venue = create_venue(&server, venue_request(1, 5, 0)).await.unwrap();
    assert_rejected(
        server.admin().create_event(authed(&ann, event_request(&venue, 8))).await,
        Code::PermissionDenied,
        &[admin_only],
    );
    assert_rejected(
        server
            .admin()
            .update_event(authed(
                &ann,
                pb::UpdateEventRequest {
                    event_id: event_id.clone(),
                    name: Some("Mine now".into()),
                    ..Default::default()
                },
            ))
            .await,
        Code::PermissionDenied,
        &[admin_only],
    );
    assert_rejected(
        server.admin().cancel_event(authed(&ann, pb::CancelEventRequest { event_id: event_id.clone() })).await,
        Code::PermissionDenied,
        &[admin_only],
    );

    let after = snapshot(&server, &event_id).await;
    assert_eq!(after, before);
    assert_eq!(after.event.name, "Test Night");
    assert_eq!(after.event.status, pb::EventStatus::OnSale as i32);
    server.stop().await;
}

// -------------------------------------------------------------------------------------------------
// Another buyer's hold and booking
// -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn another_buyers_hold_and_booking_are_off_limits() {
    let server = TestServer::start().await;
    let ann = server.token("ann");
    let bob = server.token("bob");
    let event_id = create_event(&server, 2, 10, 0, 8).await;

    let confirmed = hold(&server, &ann, &event_id, seats(&ids(&["S:R0:1", "S:R0:2"]))).await.unwrap();
    let booking = confirm(&server, &ann, &confirmed.hold_id, "pay-ann").await.unwrap();
    let active = hold(&server, &ann, &event_id, seats(&ids(&["S:R1:1"]))).await.unwrap();
    let hold_before = get_hold(&server, &ann, &active.hold_id).await.unwrap();
    let booking_before = get_booking(&server, &ann, &booking.booking_id).await.unwrap();
    let before = snapshot(&server, &event_id).await;

    for hold_id in [&active.hold_id, &confirmed.hold_id] {
        let needles = ["another buyer", hold_id.as_str()];
        assert_rejected(get_hold(&server, &bob, hold_id).await, Code::PermissionDenied, &needles);
        assert_rejected(release(&server, &bob, hold_id).await, Code::PermissionDenied, &needles);
        assert_rejected(confirm(&server, &bob, hold_id, "pay-bob").await, Code::PermissionDenied, &needles);
    }
    let needles = ["another buyer", booking.booking_id.as_str()];
    assert_rejected(get_booking(&server, &bob, &booking.booking_id).await, Code::PermissionDenied, &needles);
    assert_rejected(cancel_booking(&server, &bob, &booking.booking_id).await, Code::PermissionDenied, &needles);

    // Unchanged, as the owner sees them.
    let hold_after = get_hold(&server, &ann, &active.hold_id).await.unwrap();
    assert_eq!(hold_after, hold_before);
    assert_eq!(hold_after.status, pb::HoldStatus::Active as i32);
    assert!(hold_after.booking_id.is_empty());
    let booking_after = get_booking(&server, &ann, &booking.booking_id).await.unwrap();
    assert_eq!(booking_after, booking_before);
    assert_eq!(booking_after.status, pb::BookingStatus::Confirmed as i32);
    assert_eq!(booking_after.payment_reference, "pay-ann");
    assert!(booking_after.cancelled_at.is_none());
    let after = snapshot(&server, &event_id).await;
    assert_eq!(after, before);
    assert_eq!(section(&after, "S").held, 1);
    assert_eq!(section(&after, "S").booked, 2);

    // Bob's listing shows nothing of ann's; ann's shows her booking.
    let bobs = list_bookings(&server, &bob, 0, "").await.unwrap();
    assert!(bobs.bookings.is_empty(), "{bobs:?}");
    let anns = list_bookings(&server, &ann, 0, "").await.unwrap();
    assert_eq!(anns.bookings, vec![booking_after]);
    server.stop().await;
}

// -------------------------------------------------------------------------------------------------
// Admin input
// -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_venues_name_the_offending_field() {
    let server = TestServer::start().await;

    let mut request = venue_request(1, 5, 0);
    request.sections.clear();
    assert_invalid(create_venue(&server, request).await, "sections");

    let mut request = venue_request(3, 5, 0);
    request.sections[0].rows[1].seat_labels = ids(&["1", "2", "1"]);
    let status = assert_invalid(create_venue(&server, request).await, "sections[0].rows[1].seat_labels[2]");
    assert!(status.message().contains("duplicate seat '1'"), "{status:?}");

    let mut request = venue_request(2, 5, 0);
    request.sections[0].rows[1].label = "R0".into();
    assert_invalid(create_venue(&server, request).await, "sections[0].rows[1].label");

    let mut request = venue_request(1, 5, 10);
    request.sections[1].section_id = "S".into();
    assert_invalid(create_venue(&server, request).await, "sections[1].section_id");

    // A colon would make seat ids ambiguous.
    let mut request = venue_request(1, 5, 0);
    request.sections[0].rows[0].seat_labels[3] = "1:2".into();
    assert_invalid(create_venue(&server, request).await, "sections[0].rows[0].seat_labels[3]");

    let mut request = venue_request(1, 5, 0);
    request.sections[0].rows[0].seat_labels.clear();
    assert_invalid(create_venue(&server, request).await, "sections[0].rows[0].seat_labels");

    let mut request = venue_request(1, 5, 10);
    request.sections[1].rows = venue_request(1, 2, 0).sections[0].rows.clone();
    assert_invalid(create_venue(&server, request).await, "sections[1]");

    let mut request = venue_request(1, 5, 0);
    request.name = "  ".into();
    assert_invalid(create_venue(&server, request).await, "name");

    create_venue(&server, venue_request(1, 5, 10)).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn bad_events_name_the_offending_field() {
    let server = TestServer::start().await;
    let venue = create_venue(&server, venue_request(2, 10, 20)).await.unwrap();
    let good = event_request(&venue, 8);
    let create = |request: pb::CreateEventRequest| create_event_with(&server, request);

    // Schedule.
    let mut request = good.clone();
    request.ends_at = Some(timestamp(1_999_990_000));
    assert_invalid(create(request).await, "ends_at");
    let mut request = good.clone();
    request.ends_at = request.starts_at;
    assert_invalid(create(request).await, "ends_at");
    let mut request = good.clone();
    request.starts_at = None;
    assert_invalid(create(request).await, "starts_at");
    let mut request = good.clone();
    request.ends_at = None;
    assert_invalid(create(request).await, "ends_at");
    let mut request = good.clone();
    request.starts_at = Some(timestamp(-5));
    assert_invalid(create(request).await, "starts_at");
    let mut request = good.clone();
    request.starts_at = Some(prost_types::Timestamp { seconds: 2_000_000_000, nanos: -1 });
    assert_invalid(create(request).await, "starts_at");

    // Price levels.
    let mut request = good.clone();
    request.price_levels[0].section_ids.push("X".into());
    let status = assert_invalid(create(request).await, "price_levels[0].section_ids[1]");
    assert!(status.message().contains("'X'"), "{status:?}");

    let mut request = good.clone();
    request.price_levels.truncate(1);
    let status = assert_invalid(create(request).await, "price_levels");
    assert!(status.message().contains("section 'GA'"), "{status:?}");

    let mut request = good.clone();
    request.price_levels[1].section_ids = ids(&["S"]);
    assert_invalid(create(request).await, "price_levels[1].section_ids[0]");

    let mut request = good.clone();
    request.price_levels[1].price.as_mut().unwrap().currency = "USD".into();
    let status = assert_invalid(create(request).await, "price_levels[1].price.currency");
    assert!(status.message().contains("USD") && status.message().contains("EUR"), "{status:?}");

    let mut request = good.clone();
    for level in &mut request.price_levels {
        level.price.as_mut().unwrap().currency = "eur".into();
    }
    assert_invalid(create(request).await, "price_levels[0].price.currency");

    let mut request = good.clone();
    request.price_levels[0].price.as_mut().unwrap().amount_minor = -1;
    let status = assert_invalid(create(request).await, "price_levels[0].price.amount_minor");
    assert!(status.message().contains("-1"), "{status:?}");

    let mut request = good.clone();
    request.price_levels[1].price = None;
    assert_invalid(create(request).await, "price_levels[1].price");

    let mut request = good.clone();
    request.price_levels[1].price_level_id = "STD".into();
    assert_invalid(create(request).await, "price_levels[1].price_level_id");

    // Terms.
    for hold_ttl_seconds in [1, 29, 3_601, u32::MAX] {
        let mut request = good.clone();
        request.hold_ttl_seconds = hold_ttl_seconds;
        let status = assert_invalid(create(request).await, "hold_ttl_seconds");
        assert!(status.message().contains("30") && status.message().contains("3600"), "{status:?}");
    }
    let mut request = good.clone();
    request.buyer_seat_limit = limits::BUYER_SEAT_LIMIT_MAX + 1;
    assert_invalid(create(request).await, "buyer_seat_limit");

    // The bounds themselves are accepted.
    for hold_ttl_seconds in [30, 3_600] {
        let mut request = good.clone();
        request.hold_ttl_seconds = hold_ttl_seconds;
        let event = create(request).await.unwrap();
        assert_eq!(event.hold_ttl_seconds, hold_ttl_seconds);
    }

    // UpdateEvent: a rejected update changes nothing, not even the fields that were fine.
    let event = create(good.clone()).await.unwrap();
    let before = snapshot(&server, &event.event_id).await;
    let admin = server.admin_token();
    let update = |request: pb::UpdateEventRequest| {
        let mut admin_client = server.admin();
        let admin = admin.clone();
        async move { admin_client.update_event(authed(&admin, request)).await }
    };
    assert_invalid(
        update(pb::UpdateEventRequest {
            event_id: event.event_id.clone(),
            name: Some("Renamed".into()),
            ends_at: Some(timestamp(1_999_000_000)),
            ..Default::default()
        })
        .await,
        "ends_at",
    );
    assert_invalid(
        update(pb::UpdateEventRequest {
            event_id: event.event_id.clone(),
            name: Some("Renamed".into()),
            hold_ttl_seconds: Some(5),
            ..Default::default()
        })
        .await,
        "hold_ttl_seconds",
    );
    assert_invalid(
        update(pb::UpdateEventRequest {
            event_id: event.event_id.clone(),
            name: Some("Renamed".into()),
            buyer_seat_limit: Some(0),
            ..Default::default()
        })
        .await,
        "buyer_seat_limit",
    );
    assert_invalid(
        update(pb::UpdateEventRequest {
            event_id: event.event_id.clone(),
            name: Some(" ".into()),
            ..Default::default()
        })
        .await,
        "name",
    );
    let after = snapshot(&server, &event.event_id).await;
    assert_eq!(after, before);
    assert_eq!(after.event.name, "Test Night");
    server.stop().await;
}

/// An event with no price levels at all must be told exactly that. (The engine has the check, but
/// the gateway derives the event's currency from the first level, so with no levels the currency
/// check on `""` fires first and blames a field the caller never sent.)
#[tokio::test]
async fn an_event_without_price_levels_is_told_so() {
    let server = TestServer::start().await;
    let venue = create_venue(&server, venue_request(1, 5, 0)).await.unwrap();
    let mut request = event_request(&venue, 8);
    request.price_levels.clear();
    let status = assert_invalid(create_event_with(&server, request).await, "price_levels");
    assert!(status.message().contains("at least one price level"), "{status:?}");
    server.stop().await;
}

// -------------------------------------------------------------------------------------------------
// Nothing half-applied
// -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn rejected_requests_leave_the_event_exactly_as_it_was() {
    let server = TestServer::start().await;
    let ann = server.token("ann");
    let bob = server.token("bob");
    let admin = server.admin_token();
    let event_id = create_event(&server, 3, 10, 10, 6).await;

    // Ann: a booking of two seats, a live hold of one seat and two standing places (five of six).
    let first = hold(&server, &ann, &event_id, seats(&ids(&["S:R0:1", "S:R0:2"]))).await.unwrap();
    let booking = confirm(&server, &ann, &first.hold_id, "pay-ann").await.unwrap();
    let live = hold(&server, &ann, &event_id, seats(&ids(&["S:R1:5"]))).await.unwrap();
    hold(&server, &ann, &event_id, best("GA", 2)).await.unwrap();
    let before = snapshot(&server, &event_id).await;
    assert_eq!(before.version, 4);
    assert_eq!((section(&before, "S").held, section(&before, "S").booked), (1, 2));
    assert_eq!(section(&before, "GA").held, 2);

    let rejected_holds: Vec<(&str, Option<Selection>, Code)> = vec![
        // Free seats listed with taken ones: none of them is held.
        (bob.as_str(), seats(&ids(&["S:R2:1", "S:R2:2", "S:R0:1"])), Code::FailedPrecondition),
        (bob.as_str(), seats(&ids(&["S:R2:1", "S:R1:5"])), Code::FailedPrecondition),
        // Valid seats before a bad one.
        (bob.as_str(), seats(&ids(&["S:R2:1", "S:R2:2", "S:R9:1"])), Code::InvalidArgument),
        (bob.as_str(), seats(&ids(&["S:R2:1", "S:R2:2", "S:R2:1"])), Code::InvalidArgument),
        (bob.as_str(), seats(&ids(&["S:R2:1", "GA:R0:1"])), Code::InvalidArgument),
        (bob.as_str(), seats(&seat_range(51, 10)), Code::InvalidArgument),
        (bob.as_str(), seats(&[]), Code::InvalidArgument),
        (bob.as_str(), best("S", 0), Code::InvalidArgument),
        (bob.as_str(), best("S", -3), Code::InvalidArgument),
        (bob.as_str(), best("S", 51), Code::InvalidArgument),
        (bob.as_str(), best("NOPE", 1), Code::InvalidArgument),
        (bob.as_str(), best("S", 7), Code::ResourceExhausted),
        (bob.as_str(), None, Code::InvalidArgument),
        // Over ann's limit, in both forms, including seats that are free.
        (ann.as_str(), seats(&ids(&["S:R2:1", "S:R2:2"])), Code::ResourceExhausted),
        (ann.as_str(), best("GA", 2), Code::ResourceExhausted),
    ];
    for (token, selection, code) in rejected_holds {
        let status = error_of(hold(&server, token, &event_id, selection.clone()).await);
        assert_eq!(status.code(), code, "{selection:?}: {}", status.message());
    }
    // Bad tokens.
    for header in ["Bearer abc", "Basic abc"] {
        assert_rejected(
            server.booking().hold_seats(with_authorization(header, &event_id)).await,
            Code::Unauthenticated,
            &[],
        );
    }
    // Someone else's hold and booking; bad confirmations of ann's own hold.
    assert_rejected(release(&server, &bob, &live.hold_id).await, Code::PermissionDenied, &[]);
    assert_rejected(confirm(&server, &bob, &live.hold_id, "pay-bob").await, Code::PermissionDenied, &[]);
    assert_rejected(cancel_booking(&server, &bob, &booking.booking_id).await, Code::PermissionDenied, &[]);
    assert_invalid(confirm(&server, &ann, &live.hold_id, "").await, "payment_reference");
    assert_rejected(confirm(&server, &ann, &first.hold_id, "pay-again").await, Code::FailedPrecondition, &[]);
    // Bad admin updates and a buyer's attempt at one.
    assert_invalid(
        server
            .admin()
            .update_event(authed(
                &admin,
                pb::UpdateEventRequest {
                    event_id: event_id.clone(),
                    hold_ttl_seconds: Some(10),
                    buyer_seat_limit: Some(50),
                    ..Default::default()
                },
            ))
            .await,
        "hold_ttl_seconds",
    );
    assert_rejected(
        server.admin().cancel_event(authed(&bob, pb::CancelEventRequest { event_id: event_id.clone() })).await,
        Code::PermissionDenied,
        &[],
    );

    let after = snapshot(&server, &event_id).await;
    assert_eq!(after.version, before.version, "a rejection changed the version");
    assert_eq!(after.availability, before.availability);
    assert_eq!(after, before);
    assert_eq!(seat_status(&after, "S:R2:1"), pb::SeatStatus::Available);
    assert_eq!(after.event.buyer_seat_limit, 6);
    assert_eq!(after.event.hold_ttl_seconds, 600);

    // The event still takes good requests, and each counts once.
    hold(&server, &bob, &event_id, seats(&ids(&["S:R2:1", "S:R2:2"]))).await.unwrap();
    let later = snapshot(&server, &event_id).await;
    assert_eq!(later.version, before.version + 1);
    assert_eq!(section(&later, "S").held, 3);
    server.stop().await;
}

// -------------------------------------------------------------------------------------------------
// Malformed bytes and oversized requests
// -------------------------------------------------------------------------------------------------

/// Sends request and response messages as they are, so a test can send bytes no client would.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Status> {
        prost::bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let remaining = prost::bytes::Buf::remaining(buf);
        Ok(Some(prost::bytes::Buf::copy_to_bytes(buf, remaining).to_vec()))
    }
}

/// One unary call to `path` ("/turnstile.v1.CatalogService/GetEvent") whose request message is
/// `body`, byte for byte; a server-streaming RPC refused before it starts answers the same way.
async fn raw_call(server: &TestServer, path: &str, body: &[u8]) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::try_from(path).unwrap();
    let request = authed(&server.admin_token(), body.to_vec());
    grpc.unary(request, path, RawCodec).await.map(tonic::Response::into_inner)
}

/// Every RPC of the Turnstile API, as "/package.Service/Method", from its own descriptor set.
fn every_rpc_path() -> Vec<String> {
    use prost::Message as _;
    let descriptors = prost_types::FileDescriptorSet::decode(turnstile_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut paths = Vec::new();
    for file in descriptors.file.iter().filter(|file| file.package() == "turnstile.v1") {
        for service in &file.service {
            for method in &service.method {
                paths.push(format!("/turnstile.v1.{}/{}", service.name(), method.name()));
            }
        }
    }
    assert!(paths.len() > 20, "{paths:?}");
    paths
}

/// Regression: bytes that do not decode as the request message were answered INTERNAL (tonic-prost's
/// code), though they are the client's fault; INTERNAL is kept for the server's own faults.
#[tokio::test]
async fn malformed_request_bytes_are_invalid_in_every_rpc() {
    let server = TestServer::start().await;
    let event_id = create_event(&server, 2, 10, 0, 8).await;
    let before = snapshot(&server, &event_id).await;

    // Bytes that no message decodes from, whatever its first field.
    let broken_varint = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    let truncated = [0x0a, 0x10, b'a', b'b'];
    for path in every_rpc_path() {
        for body in [&broken_varint[..], &truncated[..]] {
            let status = error_of(raw_call(&server, &path, body).await);
            assert_eq!(status.code(), Code::InvalidArgument, "{path} {body:02x?}: {}", status.message());
            assert!(status.message().starts_with("request: "), "{path}: {status:?}");
        }
    }
    // Health checking (tonic's service and codec) answers them the same way.
    for path in ["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"] {
        for body in [&broken_varint[..], &truncated[..]] {
            let status = error_of(raw_call(&server, path, body).await);
            assert_eq!(status.code(), Code::InvalidArgument, "{path} {body:02x?}: {}", status.message());
        }
    }
    raw_call(&server, "/grpc.health.v1.Health/Check", &[]).await.expect("an empty request is a valid check");

    // Field by field, in GetEvent and HoldSeats: the message names the field where it can.
    let mut not_utf8_event_id = vec![0x0a, 0x02, 0xff, 0xfe];
    let get_event_cases: [(&[u8], &str); 3] = [
        (&not_utf8_event_id, "event_id"),
        // Field 1 (event_id, a string) sent as a varint.
        (&[0x08, 0x01], "wire type"),
        // include_seats (field 2, a bool) whose varint never ends.
        (&[0x10, 0x80], ""),
    ];
    for (body, needle) in get_event_cases {
        let status = error_of(raw_call(&server, "/turnstile.v1.CatalogService/GetEvent", body).await);
        assert_eq!(status.code(), Code::InvalidArgument, "{body:02x?}: {}", status.message());
        assert!(status.message().contains(needle), "{body:02x?}: {status:?}");
    }
    // event_id "" then seats { seat_ids: "\xff" }.
    let not_utf8_seat = [0x1a, 0x03, 0x0a, 0x01, 0xff];
    // seats {} claiming 5 bytes and carrying 2.
    let truncated_selection = [0x1a, 0x05, 0x0a, 0x01];
    not_utf8_event_id.extend_from_slice(&[0x22, 0x04, 0x0a, 0x00, 0x10, 0x01]);
    for (body, needle) in
        [(&not_utf8_seat[..], "seat_ids"), (&truncated_selection[..], ""), (&not_utf8_event_id[..], "event_id")]
    {
        let status = error_of(raw_call(&server, "/turnstile.v1.BookingService/HoldSeats", body).await);
        assert_eq!(status.code(), Code::InvalidArgument, "{body:02x?}: {}", status.message());
        assert!(status.message().contains(needle), "{body:02x?}: {status:?}");
    }

    // The same path with well-formed bytes works: the codec decodes what it should.
    let good = {
        use prost::Message as _;
        pb::GetEventRequest { event_id: event_id.clone(), include_seats: false, ..Default::default() }.encode_to_vec()
    };
    raw_call(&server, "/turnstile.v1.CatalogService/GetEvent", &good).await.unwrap();
    assert_eq!(snapshot(&server, &event_id).await, before);
    server.stop().await;
}

/// Regression: a request over `limits.request_bytes_max` was answered OUT_OF_RANGE (tonic's code);
/// gRPC's convention for a message over the size limit is RESOURCE_EXHAUSTED.
#[tokio::test]
async fn a_request_over_the_size_limit_is_resource_exhausted() {
    let server = TestServer::start_with(|config| config.limits.request_bytes_max = 1_024).await;
    let ann = server.token("ann");
    let event_id = create_event(&server, 2, 10, 0, 8).await;

    let status = error_of(get_event(&server, &"e".repeat(2_000)).await);
    assert_eq!(status.code(), Code::ResourceExhausted, "{}", status.message());
    let many_seats = seats(&(0..200).map(|index| format!("S:R0:{index}")).collect::<Vec<_>>());
    let status = error_of(hold(&server, &ann, &event_id, many_seats).await);
    assert_eq!(status.code(), Code::ResourceExhausted, "{}", status.message());
    assert!(status.message().contains("1024"), "the message names the limit: {status:?}");

    // Under the limit, the same calls are judged on their content.
    assert_invalid(get_event(&server, &"e".repeat(500)).await, "event_id");
    server.stop().await;
}

// -------------------------------------------------------------------------------------------------
// Long strings
// -------------------------------------------------------------------------------------------------

/// The call failed with INVALID_ARGUMENT naming `field`, in a message short enough for any client's
/// metadata limit (it quotes at most a prefix of the value).
#[track_caller]
fn assert_invalid_and_short<T: Debug>(result: Result<T, Status>, field: &str) -> Status {
    let status = assert_invalid(result, field);
    assert!(status.message().len() < 300, "{field}: a message of {} bytes", status.message().len());
    status
}

/// Regression: seat ids and section ids had no length bound and errors quoted them whole, so a
/// 20 KB seat id made the error outgrow a standard client's 16 KiB metadata limit and the caller
/// saw RESOURCE_EXHAUSTED "Stream removed" instead of INVALID_ARGUMENT.
#[tokio::test]
async fn long_strings_are_refused_naming_the_field_and_quoted_short() {
    let server = TestServer::start().await;
    let ann = server.token("ann");
    let event_id = create_event(&server, 2, 10, 0, 8).await;
    let before = snapshot(&server, &event_id).await;
    let huge = "X".repeat(20_000);

    // HoldSeats: a seat id, alone or after a good one, and a section id.
    let status = assert_invalid_and_short(
        hold(&server, &ann, &event_id, seats(std::slice::from_ref(&huge))).await,
        "seats.seat_ids[0]",
    );
    assert!(status.message().contains(&limits::SEAT_ID_LENGTH_MAX.to_string()), "{status:?}");
    assert_invalid_and_short(
        hold(&server, &ann, &event_id, seats(&["S:R0:1".to_string(), format!("S:R0:{huge}")])).await,
        "seats.seat_ids[1]",
    );
    // Just over the bound is refused the same way; a bad id under it is quoted whole.
    let just_over = format!("S:R0:{}", "9".repeat(limits::SEAT_ID_LENGTH_MAX - 4));
    assert_invalid(hold(&server, &ann, &event_id, seats(&[just_over])).await, "seats.seat_ids[0]");
    let status = assert_invalid(hold(&server, &ann, &event_id, seats(&ids(&["S:R0:99"]))).await, "seats.seat_ids[0]");
    assert!(status.message().contains("'99'"), "{status:?}");
    assert_invalid_and_short(hold(&server, &ann, &event_id, best(&huge, 1)).await, "best_available.section_id");

    // The waitlist's section id.
    assert_invalid_and_short(
        server
            .booking()
            .join_waitlist(authed(
                &ann,
                pb::JoinWaitlistRequest { event_id: event_id.clone(), section_id: huge.clone(), quantity: 1 },
            ))
            .await,
        "section_id",
    );

    // ListBookings' page token.
    assert_invalid_and_short(list_bookings(&server, &ann, 10, &huge).await, "page_token");

    // Admin input: a long label is quoted by its first characters only.
    let mut venue = venue_request(1, 5, 0);
    venue.sections[0].section_id = huge.clone();
    let status = assert_invalid_and_short(create_venue(&server, venue).await, "sections[0].section_id");
    assert!(status.message().contains(&format!("'{}...'", &huge[..limits::QUOTED_CHARS_MAX])), "{status:?}");
    let venue = create_venue(&server, venue_request(1, 5, 0)).await.unwrap();
    let mut request = event_request(&venue, 8);
    request.venue_id = huge.clone();
    assert_invalid_and_short(create_event_with(&server, request).await, "venue_id");
    let mut request = event_request(&venue, 8);
    request.performer_ids = vec![huge.clone()];
    assert_invalid_and_short(create_event_with(&server, request).await, "performer_ids[0]");
    let mut request = event_request(&venue, 8);
    request.price_levels[0].price.as_mut().unwrap().currency = huge.clone();
    assert_invalid_and_short(create_event_with(&server, request).await, "price_levels[0].price.currency");
    let mut request = event_request(&venue, 8);
    request.price_levels[0].section_ids = vec![huge.clone()];
    assert_invalid_and_short(create_event_with(&server, request).await, "price_levels[0].section_ids[0]");

    assert_eq!(snapshot(&server, &event_id).await, before);
    server.stop().await;
}

// -------------------------------------------------------------------------------------------------
// Idempotency keys
// -------------------------------------------------------------------------------------------------

async fn hold_with_key(
    server: &TestServer,
    token: &str,
    event_id: &str,
    key: &str,
    selection: Option<Selection>,
) -> Result<pb::Hold, Status> {
    let request = pb::HoldSeatsRequest {
        event_id: event_id.into(),
        idempotency_key: key.into(),
        selection,
        ..Default::default()
    };
    server.booking().hold_seats(authed(token, request)).await.map(|response| response.into_inner().hold.unwrap())
}

/// Regression: HoldSeats with an idempotency key reused for another selection silently answered
/// the first hold. A key is per buyer and per event; the same request again is a retry, another
/// request with the same key is refused naming the key (as ConfirmHold refuses a key reused for
/// another hold).
#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_refused() {
    let server = TestServer::start().await;
    let ann = server.token("ann");
    let bob = server.token("bob");
    let event_id = create_event(&server, 3, 10, 10, 8).await;

    let first = hold_with_key(&server, &ann, &event_id, "k1", seats(&ids(&["S:R0:1", "S:R0:2"]))).await.unwrap();
    let retried = hold_with_key(&server, &ann, &event_id, "k1", seats(&ids(&["S:R0:1", "S:R0:2"]))).await.unwrap();
    assert_eq!(retried.hold_id, first.hold_id, "the same request again is a retry");
    let before = snapshot(&server, &event_id).await;
    for other in [
        seats(&ids(&["S:R0:3"])),
        seats(&ids(&["S:R0:1"])),
        seats(&ids(&["S:R0:2", "S:R0:1"])),
        seats(&ids(&["S:R0:1", "S:R0:2", "S:R0:3"])),
        best("S", 3),
        best("GA", 2),
    ] {
        assert_rejected(
            hold_with_key(&server, &ann, &event_id, "k1", other.clone()).await,
            Code::FailedPrecondition,
            &["idempotency_key", "'k1'", &first.hold_id],
        );
    }
    assert_eq!(snapshot(&server, &event_id).await, before, "a refused reuse holds nothing");

    // Best available: the same section and quantity is a retry; anything else is not.
    let chosen = hold_with_key(&server, &ann, &event_id, "k2", best("S", 2)).await.unwrap();
    assert_eq!(hold_with_key(&server, &ann, &event_id, "k2", best("S", 2)).await.unwrap().hold_id, chosen.hold_id);
    for other in [best("S", 3), best("GA", 2)] {
        assert_rejected(
            hold_with_key(&server, &ann, &event_id, "k2", other).await,
            Code::FailedPrecondition,
            &["idempotency_key", "'k2'"],
        );
    }
    let standing = hold_with_key(&server, &ann, &event_id, "k3", best("GA", 2)).await.unwrap();
    assert_eq!(hold_with_key(&server, &ann, &event_id, "k3", best("GA", 2)).await.unwrap().hold_id, standing.hold_id);
    assert_rejected(
        hold_with_key(&server, &ann, &event_id, "k3", best("GA", 1)).await,
        Code::FailedPrecondition,
        &["'k3'"],
    );

    // Keys are per buyer and per event: another buyer, or another event, starts afresh.
    hold_with_key(&server, &bob, &event_id, "k1", seats(&ids(&["S:R1:1"]))).await.unwrap();
    let other_event = create_event(&server, 1, 10, 0, 8).await;
    hold_with_key(&server, &ann, &other_event, "k1", seats(&ids(&["S:R0:3"]))).await.unwrap();

    // ConfirmHold refuses a key reused for another hold the same way.
    let confirm_with_key = |hold_id: String| {
        let mut booking = server.booking();
        let ann = ann.clone();
        async move {
            let request =
                pb::ConfirmHoldRequest { hold_id, payment_reference: "pay".into(), idempotency_key: "c1".into() };
            booking.confirm_hold(authed(&ann, request)).await
        }
    };
    confirm_with_key(first.hold_id.clone()).await.unwrap();
    confirm_with_key(first.hold_id.clone()).await.unwrap();
    assert_rejected(
        confirm_with_key(chosen.hold_id.clone()).await,
        Code::FailedPrecondition,
        &["idempotency_key", "'c1'"],
    );
    server.stop().await;
}
