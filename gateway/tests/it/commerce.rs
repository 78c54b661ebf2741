//! Beyond plain holds, over gRPC: extending a hold, paying without expiring mid-payment, and a
//! late confirm that books the same seats again.

use crate::common;

use common::{authed, create_event, seats, TestServer};
use tonic::Code;
use turnstile_proto::v1 as pb;

async fn hold(server: &TestServer, buyer: &str, event_id: &str, seat_ids: &[&str]) -> pb::Hold {
    let ids: Vec<String> = seat_ids.iter().map(|id| id.to_string()).collect();
    let request = pb::HoldSeatsRequest { event_id: event_id.into(), selection: seats(&ids), ..Default::default() };
    server.booking().hold_seats(authed(&server.token(buyer), request)).await.unwrap().into_inner().hold.unwrap()
}

fn seconds(timestamp: &Option<prost_types::Timestamp>) -> i64 {
    timestamp.as_ref().unwrap().seconds
}

#[tokio::test]
async fn holds_are_extended_within_bounds_and_payment_keeps_them_alive() {
    let server = TestServer::start().await;
    let event_id = create_event(&server, 2, 10, 0, 8).await;
    let placed = hold(&server, "ann", &event_id, &["S:R0:1"]).await;
    let token = server.token("ann");
    let ttl = seconds(&placed.expires_at) - seconds(&placed.placed_at);

    let extend = || pb::ExtendHoldRequest { hold_id: placed.hold_id.clone() };
    let once = server.booking().extend_hold(authed(&token, extend())).await.unwrap().into_inner().hold.unwrap();
    assert_eq!(seconds(&once.expires_at), seconds(&placed.expires_at) + ttl / 2);
    assert_eq!(once.extensions, 1);
    let twice = server.booking().extend_hold(authed(&token, extend())).await.unwrap().into_inner().hold.unwrap();
    assert_eq!(seconds(&twice.expires_at), seconds(&placed.placed_at) + 2 * ttl);
    let refused = server.booking().extend_hold(authed(&token, extend())).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("hold_extensions"), "{refused:?}");
    let stranger = server.booking().extend_hold(authed(&server.token("bob"), extend())).await.unwrap_err();
    assert_eq!(stranger.code(), Code::PermissionDenied);

    let start = pb::StartPaymentRequest { hold_id: placed.hold_id.clone() };
    let paying =
        server.booking().start_payment(authed(&token, start.clone())).await.unwrap().into_inner().hold.unwrap();
    assert!(paying.payment_in_progress);
    let again = server.booking().start_payment(authed(&token, start)).await.unwrap().into_inner().hold.unwrap();
    assert_eq!(again.expires_at, paying.expires_at, "a second start changes nothing");
    let confirm =
        pb::ConfirmHoldRequest { hold_id: placed.hold_id.clone(), payment_reference: "p".into(), ..Default::default() };
    let booking = server.booking().confirm_hold(authed(&token, confirm)).await.unwrap().into_inner().booking.unwrap();
    assert_eq!(booking.status, pb::BookingStatus::Confirmed as i32);

    let missing = pb::ExtendHoldRequest { hold_id: "hld_0000000000000001_0000000000000002".into() };
    assert_eq!(server.booking().extend_hold(authed(&token, missing)).await.unwrap_err().code(), Code::NotFound);
    let empty = server.booking().extend_hold(authed(&token, pb::ExtendHoldRequest::default())).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert!(empty.message().contains("hold_id"), "{empty:?}");
    server.stop().await;
}

async fn book(server: &TestServer, buyer: &str, event_id: &str, seat_ids: &[&str]) -> pb::Booking {
    let held = hold(server, buyer, event_id, seat_ids).await;
    let confirm = pb::ConfirmHoldRequest { hold_id: held.hold_id, payment_reference: "p".into(), ..Default::default() };
    server.booking().confirm_hold(authed(&server.token(buyer), confirm)).await.unwrap().into_inner().booking.unwrap()
}

async fn redeem(server: &TestServer, code: &str) -> pb::RedeemTicketResponse {
    let request = pb::RedeemTicketRequest { code: code.into() };
    server.admin().redeem_ticket(authed(&server.admin_token(), request)).await.unwrap().into_inner()
}

fn result(response: &pb::RedeemTicketResponse) -> pb::redeem_ticket_response::Result {
    pb::redeem_ticket_response::Result::try_from(response.result).unwrap()
}

#[tokio::test]
async fn every_booked_seat_has_a_code_that_admits_once_and_says_why_it_does_not() {
    use pb::redeem_ticket_response::Result as Check;
    let server = TestServer::start().await;
    let event_id = create_event(&server, 2, 10, 0, 8).await;
    let booking = book(&server, "ann", &event_id, &["S:R0:1", "S:R0:2", "S:R0:3"]).await;
    let codes: Vec<String> = booking.tickets.iter().map(|ticket| ticket.code.clone()).collect();
    assert!(codes.iter().all(|code| !code.is_empty()), "{booking:?}");
    assert_eq!(codes.iter().collect::<std::collections::HashSet<_>>().len(), 3, "one code per seat");

    let admitted = redeem(&server, &codes[0]).await;
    assert_eq!(result(&admitted), Check::Admitted, "{admitted:?}");
    assert_eq!(admitted.ticket.as_ref().unwrap().seat_id, "S:R0:1");
    let again = redeem(&server, &codes[0]).await;
    assert_eq!(result(&again), Check::AlreadyUsed, "{again:?}");
    assert!(again.redeemed_at.is_some() && again.reason.contains("already used"), "{again:?}");
    let read = pb::GetBookingRequest { booking_id: booking.booking_id.clone() };
    let read = server.booking().get_booking(authed(&server.token("ann"), read)).await.unwrap().into_inner();
    let tickets = read.booking.unwrap().tickets;
    assert!(tickets[0].redeemed_at.is_some() && tickets[1].redeemed_at.is_none());

    // Two gates scan the same code at once: one lets the holder in.
    let (first, second) = tokio::join!(redeem(&server, &codes[1]), redeem(&server, &codes[1]));
    let mut results = vec![result(&first), result(&second)];
    results.sort_by_key(|check| *check as i32);
    assert_eq!(results, vec![Check::Admitted, Check::AlreadyUsed]);

    // Altered or foreign codes are forged; a cancelled booking's codes are refused as such.
    let mut altered = codes[2].clone().into_bytes();
    let last = altered.len() - 3;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    assert_eq!(result(&redeem(&server, &altered).await), Check::Forged);
    let foreign = turnstile::admission::AdmissionTokens::new(b"another-system-secret-0123456789");
    assert_eq!(result(&redeem(&server, &foreign.ticket_code(&booking.booking_id, 2)).await), Check::Forged);
    assert_eq!(result(&redeem(&server, "garbage").await), Check::Forged);
    let cancel = pb::CancelBookingRequest { booking_id: booking.booking_id.clone() };
    let cancelled = server.booking().cancel_booking(authed(&server.token("ann"), cancel)).await.unwrap().into_inner();
    assert!(cancelled.booking.unwrap().tickets.iter().all(|ticket| ticket.code.is_empty()), "no codes once cancelled");
    let refused = redeem(&server, &codes[2]).await;
    assert_eq!(result(&refused), Check::Cancelled, "{refused:?}");
    let empty = server.admin().redeem_ticket(authed(&server.admin_token(), pb::RedeemTicketRequest::default())).await;
    assert_eq!(empty.unwrap_err().code(), Code::InvalidArgument);
    let buyer = server
        .admin()
        .redeem_ticket(authed(&server.token("ann"), pb::RedeemTicketRequest { code: codes[2].clone() }))
        .await;
    assert_eq!(buyer.unwrap_err().code(), Code::PermissionDenied, "buyers do not redeem their own tickets");
    server.stop().await;
}

#[tokio::test]
async fn the_report_counts_places_revenue_and_tickets_used_per_section() {
    let server = TestServer::start().await;
    // Section S (2 x 10 at 25.00) and GA (50 at 15.00).
    let event_id = create_event(&server, 2, 10, 50, 8).await;
    let booking = book(&server, "ann", &event_id, &["S:R0:1", "S:R0:2"]).await;
    book(&server, "bob", &event_id, &["S:R1:5"]).await;
    let cancelled = book(&server, "cy", &event_id, &["S:R1:9"]).await;
    let cancel = pb::CancelBookingRequest { booking_id: cancelled.booking_id.clone() };
    server.booking().cancel_booking(authed(&server.token("cy"), cancel)).await.unwrap();
    hold(&server, "dee", &event_id, &["S:R0:9"]).await;
    let general =
        pb::HoldSeatsRequest { event_id: event_id.clone(), selection: common::best("GA", 4), ..Default::default() };
    let general =
        server.booking().hold_seats(authed(&server.token("eve"), general)).await.unwrap().into_inner().hold.unwrap();
    let confirm =
        pb::ConfirmHoldRequest { hold_id: general.hold_id, payment_reference: "p".into(), ..Default::default() };
    server.booking().confirm_hold(authed(&server.token("eve"), confirm)).await.unwrap();
    redeem(&server, &booking.tickets[0].code).await;

    let request = pb::GetEventReportRequest { event_id: event_id.clone() };
    let report = server.admin().get_event_report(authed(&server.admin_token(), request)).await.unwrap().into_inner();
    let row = |section: &str| report.sections.iter().find(|row| row.section_id == section).unwrap().clone();
    let stalls = row("S");
    assert_eq!((stalls.total, stalls.available, stalls.held, stalls.booked), (20, 16, 1, 3));
    assert_eq!(stalls.revenue.unwrap().amount_minor, 3 * 2_500);
    assert_eq!(stalls.redeemed, 1);
    let floor = row("GA");
    assert_eq!((floor.total, floor.available, floor.held, floor.booked), (50, 46, 0, 4));
    assert_eq!(floor.revenue.as_ref().unwrap().amount_minor, 4 * 1_500);
    assert_eq!(floor.revenue.unwrap().currency, "EUR");
    let total = report.total.unwrap();
    assert_eq!((total.total, total.booked, total.redeemed), (70, 7, 1));
    assert_eq!(total.revenue.unwrap().amount_minor, 3 * 2_500 + 4 * 1_500);
    let missing = pb::GetEventReportRequest { event_id: "evt_0000000000000009".into() };
    let error = server.admin().get_event_report(authed(&server.admin_token(), missing)).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn dynamic_prices_move_with_sell_through_and_holds_keep_theirs() {
    let server = TestServer::start().await;
    // Section S: 2 x 10 seats at 25.00.
    let event_id = create_event(&server, 2, 10, 0, 8).await;
    let rules = pb::PricingRules {
        floor_percent: 100,
        ceiling_percent: 200,
        sell_through_steps: vec![pb::PriceStep { threshold: 20, adjust_percent: 40 }],
        demand_steps: vec![],
    };
    let request = pb::SetPricingRequest { event_id: event_id.clone(), rules: Some(rules.clone()) };
    let set = server.admin().set_pricing(authed(&server.admin_token(), request)).await.unwrap().into_inner();
    assert_eq!(set.availability[0].price.as_ref().unwrap().amount_minor, 2_500);

    let early = hold(&server, "ann", &event_id, &["S:R0:1", "S:R0:2", "S:R0:3", "S:R0:4"]).await;
    assert_eq!(early.total.as_ref().unwrap().amount_minor, 4 * 2_500);
    // 4 of 20 sold: the 20% step applies to the next buyer, and GetEvent shows it.
    let view = pb::GetEventRequest { event_id: event_id.clone(), include_seats: false, ..Default::default() };
    let event = server.catalog().get_event(view.clone()).await.unwrap().into_inner();
    assert_eq!(event.availability[0].price.as_ref().unwrap().amount_minor, 3_500);
    let late = hold(&server, "bob", &event_id, &["S:R1:1"]).await;
    assert_eq!(late.total.unwrap().amount_minor, 3_500);
    let read = pb::GetHoldRequest { hold_id: early.hold_id.clone() };
    let early_now =
        server.booking().get_hold(authed(&server.token("ann"), read)).await.unwrap().into_inner().hold.unwrap();
    assert_eq!(early_now.total, early.total, "the price is locked for the hold's life");

    let bad = pb::PricingRules { ceiling_percent: 50, ..rules };
    let request = pb::SetPricingRequest { event_id: event_id.clone(), rules: Some(bad) };
    let error = server.admin().set_pricing(authed(&server.admin_token(), request)).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("rules.ceiling_percent"), "{error:?}");
    // Switched off: back to the base price.
    let request = pb::SetPricingRequest { event_id: event_id.clone(), rules: None };
    server.admin().set_pricing(authed(&server.admin_token(), request)).await.unwrap();
    let event = server.catalog().get_event(view).await.unwrap().into_inner();
    assert_eq!(event.availability[0].price.as_ref().unwrap().amount_minor, 2_500);
    server.stop().await;
}

#[tokio::test]
async fn a_sold_out_section_takes_a_waitlist_and_offers_returned_seats_as_holds() {
    use pb::waitlist_status::State;
    let server = TestServer::start().await;
    let event_id = create_event(&server, 1, 4, 0, 8).await;
    let taken = hold(&server, "ann", &event_id, &["S:R0:1", "S:R0:2", "S:R0:3", "S:R0:4"]).await;
    let join = |quantity| pb::JoinWaitlistRequest { event_id: event_id.clone(), section_id: "S".into(), quantity };
    let waiting = server.booking().join_waitlist(authed(&server.token("wes"), join(2))).await.unwrap().into_inner();
    assert_eq!((waiting.state, waiting.position, waiting.quantity), (State::Waiting as i32, 1, 2));
    let second = server.booking().join_waitlist(authed(&server.token("wyn"), join(3))).await.unwrap().into_inner();
    assert_eq!(second.position, 2);
    let bad = server.booking().join_waitlist(authed(&server.token("wyn"), join(0))).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("quantity"), "{bad:?}");

    let release = pb::ReleaseHoldRequest { hold_id: taken.hold_id };
    server.booking().release_hold(authed(&server.token("ann"), release)).await.unwrap();
    let status = pb::GetWaitlistStatusRequest { event_id: event_id.clone() };
    let offered =
        server.booking().get_waitlist_status(authed(&server.token("wes"), status.clone())).await.unwrap().into_inner();
    assert_eq!(offered.state, State::Offered as i32, "{offered:?}");
    let offer = offered.offered_hold.unwrap();
    assert_eq!(offer.tickets.len(), 2);
    // wyn wants three and only two are left: still waiting, now first in line.
    let still =
        server.booking().get_waitlist_status(authed(&server.token("wyn"), status.clone())).await.unwrap().into_inner();
    assert_eq!((still.state, still.position), (State::Waiting as i32, 1));
    // The offer is an ordinary hold: wes confirms it.
    let confirm =
        pb::ConfirmHoldRequest { hold_id: offer.hold_id, payment_reference: "p".into(), ..Default::default() };
    server.booking().confirm_hold(authed(&server.token("wes"), confirm)).await.unwrap();
    let done = server.booking().get_waitlist_status(authed(&server.token("wes"), status)).await.unwrap().into_inner();
    assert_eq!(done.state, State::NotWaiting as i32);
    // Seats on sale: no waitlist for them.
    let open = pb::JoinWaitlistRequest { event_id: event_id.clone(), section_id: "S".into(), quantity: 1 };
    let refused = server.booking().join_waitlist(authed(&server.token("cy"), open)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let left = pb::LeaveWaitlistRequest { event_id: event_id.clone() };
    let left = server.booking().leave_waitlist(authed(&server.token("wyn"), left)).await.unwrap().into_inner();
    assert_eq!(left.state, State::NotWaiting as i32);
    server.stop().await;
}
