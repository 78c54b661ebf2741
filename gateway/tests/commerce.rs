//! Beyond plain holds, over gRPC: extending a hold, paying without expiring mid-payment, and a
//! late confirm that books the same seats again.

mod common;

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
