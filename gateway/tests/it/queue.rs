//! The waiting room over gRPC: buyers join a line, are admitted in order with a signed pass that
//! HoldSeats requires and accepts once, and learn when the event sells out.

use crate::common;

use std::time::Duration;

use common::{authed, best, create_event, seats, TestServer};
use tonic::Code;
use turnstile_proto::v1 as pb;

async fn configure(server: &TestServer, event_id: &str, rate: u32, seats_per_pass: u32) -> pb::ConfigureQueueResponse {
    let request = pb::ConfigureQueueRequest {
        event_id: event_id.into(),
        enabled: true,
        admission_rate_per_second: rate,
        seats_per_pass,
        ..Default::default()
    };
    server.admin().configure_queue(authed(&server.admin_token(), request)).await.unwrap().into_inner()
}

async fn join(server: &TestServer, buyer: &str, event_id: &str) -> pb::JoinQueueResponse {
    let request = pb::JoinQueueRequest { event_id: event_id.into() };
    server.queue().join_queue(authed(&server.token(buyer), request)).await.unwrap().into_inner()
}

/// Watches a buyer's standing until it is final; returns every standing received.
async fn watch_until_final(
    server: &TestServer,
    buyer: &str,
    event_id: &str,
    queue_token: &str,
) -> Vec<pb::QueueStanding> {
    let request = pb::WatchQueueRequest { event_id: event_id.into(), queue_token: queue_token.into() };
    let mut stream = server.queue().watch_queue(authed(&server.token(buyer), request)).await.unwrap().into_inner();
    let mut standings = Vec::new();
    while let Some(standing) =
        tokio::time::timeout(Duration::from_secs(20), stream.message()).await.expect("a standing in time").unwrap()
    {
        standings.push(standing);
    }
    standings
}

fn state(standing: &pb::QueueStanding) -> pb::QueueState {
    pb::QueueState::try_from(standing.state).unwrap()
}

async fn hold(
    server: &TestServer,
    buyer: &str,
    event_id: &str,
    selection: Option<pb::hold_seats_request::Selection>,
    pass: &str,
    key: &str,
) -> Result<pb::Hold, tonic::Status> {
    let request = pb::HoldSeatsRequest {
        event_id: event_id.into(),
        idempotency_key: key.into(),
        selection,
        admission_pass: pass.into(),
    };
    server
        .booking()
        .hold_seats(authed(&server.token(buyer), request))
        .await
        .map(|response| response.into_inner().hold.unwrap())
}

#[tokio::test]
async fn buyers_are_admitted_in_order_with_a_pass_that_is_required_and_used_once() {
    let server = TestServer::start().await;
    let event_id = create_event(&server, 3, 10, 0, 2).await;
    let configured = configure(&server, &event_id, 4, 0).await;
    assert!(configured.enabled);
    assert_eq!(configured.seats_per_pass, 2, "a pass allows the event's per-buyer limit by default");

    let buyers: Vec<String> = (0..6).map(|index| format!("buyer-{index}")).collect();
    let mut tokens = Vec::new();
    for (index, buyer) in buyers.iter().enumerate() {
        let joined = join(&server, buyer, &event_id).await;
        let standing = joined.standing.unwrap();
        assert_eq!(standing.position, index as u64 + 1, "first in, first placed");
        tokens.push(joined.queue_token);
    }
    // Joining again keeps the place.
    let again = join(&server, &buyers[2], &event_id).await.standing.unwrap();
    assert_eq!(again.position, 3);

    // Without a pass, no hold.
    let refused = hold(&server, &buyers[0], &event_id, best("S", 1), "", "").await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("admission_pass"), "{refused:?}");

    // Whoever is admitted at any moment is a prefix of the line.
    for _ in 0..5 {
        let mut admitted = Vec::new();
        for buyer in &buyers {
            let standing = join(&server, buyer, &event_id).await.standing.unwrap();
            admitted.push(state(&standing) == pb::QueueState::Admitted);
        }
        let first_waiting = admitted.iter().position(|admitted| !admitted).unwrap_or(admitted.len());
        assert!(admitted[first_waiting..].iter().all(|admitted| !admitted), "admitted out of order: {admitted:?}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    let mut passes = Vec::new();
    for (buyer, token) in buyers.iter().zip(&tokens) {
        let standings = watch_until_final(&server, buyer, &event_id, token).await;
        let last = standings.last().expect("at least one standing");
        assert_eq!(state(last), pb::QueueState::Admitted, "{standings:?}");
        assert_eq!(last.pass_seats, 2);
        assert!(standings.windows(2).all(|pair| pair[0] != pair[1]), "a standing was sent twice: {standings:?}");
        passes.push(last.admission_pass.clone());
    }

    // A pass is for its buyer, its event and its seats, once.
    let stolen = hold(&server, &buyers[1], &event_id, best("S", 1), &passes[0], "").await.unwrap_err();
    assert_eq!(stolen.code(), Code::PermissionDenied);
    assert!(stolen.message().contains("another buyer"), "{stolen:?}");
    let greedy = hold(&server, &buyers[0], &event_id, best("S", 3), &passes[0], "").await.unwrap_err();
    assert_eq!(greedy.code(), Code::PermissionDenied);
    assert!(greedy.message().contains("allows 2 seats"), "{greedy:?}");
    let first = hold(&server, &buyers[0], &event_id, best("S", 2), &passes[0], "k1").await.unwrap();
    let retried = hold(&server, &buyers[0], &event_id, best("S", 2), &passes[0], "k1").await.unwrap();
    assert_eq!(retried.hold_id, first.hold_id, "a retry of the same hold is not a second use");
    let reused = hold(&server, &buyers[0], &event_id, best("S", 1), &passes[0], "k2").await.unwrap_err();
    assert_eq!(reused.code(), Code::PermissionDenied);
    assert!(reused.message().contains("already been used"), "{reused:?}");

    // A refused hold gives the pass back.
    let taken: Vec<String> = first.tickets.iter().map(|ticket| ticket.seat_id.clone()).collect();
    let conflict = hold(&server, &buyers[1], &event_id, seats(&taken), &passes[1], "").await.unwrap_err();
    assert_eq!(conflict.code(), Code::FailedPrecondition, "{conflict:?}");
    hold(&server, &buyers[1], &event_id, best("S", 2), &passes[1], "").await.unwrap();

    // Forged tokens are refused.
    let forger = turnstile::admission::AdmissionTokens::new(b"some-other-secret-0123456789");
    let forged_pass = forger.pass(
        &turnstile_engine::ids::BuyerId::new(&buyers[2]),
        &turnstile_engine::ids::EventId::new(&event_id),
        3,
        2,
        u64::MAX / 2,
    );
    let forged = hold(&server, &buyers[2], &event_id, best("S", 1), &forged_pass, "").await.unwrap_err();
    assert_eq!(forged.code(), Code::PermissionDenied);
    assert!(forged.message().contains("signature"), "{forged:?}");
    let forged_token = forger.queue_token(
        &turnstile_engine::ids::BuyerId::new(&buyers[2]),
        &turnstile_engine::ids::EventId::new(&event_id),
        1,
    );
    let request = pb::WatchQueueRequest { event_id: event_id.clone(), queue_token: forged_token };
    let refused = server.queue().watch_queue(authed(&server.token(&buyers[2]), request)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    // Someone else's queue token.
    let request = pb::WatchQueueRequest { event_id: event_id.clone(), queue_token: tokens[0].clone() };
    let refused = server.queue().watch_queue(authed(&server.token(&buyers[3]), request)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_sold_out_event_admits_nobody_and_tells_everyone_waiting() {
    let server = TestServer::start().await;
    // Four seats, two per buyer: automatic admission lets exactly two buyers in.
    let event_id = create_event(&server, 1, 4, 0, 2).await;
    configure(&server, &event_id, 0, 2).await;
    let mut tokens = Vec::new();
    for index in 0..5 {
        tokens.push(join(&server, &format!("fan-{index}"), &event_id).await.queue_token);
    }
    let mut bookings = Vec::new();
    for index in 0..2 {
        let buyer = format!("fan-{index}");
        let standings = watch_until_final(&server, &buyer, &event_id, &tokens[index]).await;
        let pass = &standings.last().unwrap().admission_pass;
        assert!(!pass.is_empty(), "{standings:?}");
        let held = hold(&server, &buyer, &event_id, best("S", 2), pass, "").await.unwrap();
        let confirm =
            pb::ConfirmHoldRequest { hold_id: held.hold_id, payment_reference: "p".into(), ..Default::default() };
        let booking = server.booking().confirm_hold(authed(&server.token(&buyer), confirm)).await.unwrap();
        bookings.push(booking.into_inner().booking.unwrap());
    }
    for index in 2..5 {
        let standings = watch_until_final(&server, &format!("fan-{index}"), &event_id, &tokens[index]).await;
        assert_eq!(state(standings.last().unwrap()), pb::QueueState::SoldOut, "{standings:?}");
    }
    let late = join(&server, "latecomer", &event_id).await.standing.unwrap();
    assert_eq!(state(&late), pb::QueueState::SoldOut);

    // Seats come back: admission resumes, in order.
    let cancel = pb::CancelBookingRequest { booking_id: bookings[0].booking_id.clone() };
    server.booking().cancel_booking(authed(&server.token("fan-0"), cancel)).await.unwrap();
    // The waiting room sees the returned seats at its next admission step.
    let started = std::time::Instant::now();
    while state(&join(&server, "fan-2", &event_id).await.standing.unwrap()) == pb::QueueState::SoldOut {
        assert!(started.elapsed() < Duration::from_secs(10), "admission never resumed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let standings = watch_until_final(&server, "fan-2", &event_id, &tokens[2]).await;
    assert_eq!(state(standings.last().unwrap()), pb::QueueState::Admitted, "{standings:?}");
    let next = join(&server, "fan-3", &event_id).await.standing.unwrap();
    assert_eq!(state(&next), pb::QueueState::Waiting, "two seats serve one pass of two: {next:?}");
    server.stop().await;
}

#[tokio::test]
async fn waiting_room_requests_are_checked() {
    let server = TestServer::start().await;
    let event_id = create_event(&server, 1, 4, 0, 2).await;
    // Off: nobody joins, holds need no pass.
    let refused = server
        .queue()
        .join_queue(authed(&server.token("ann"), pb::JoinQueueRequest { event_id: event_id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    hold(&server, "ann", &event_id, best("S", 1), "", "").await.unwrap();

    let admin = server.admin_token();
    for (request, field) in [
        (
            pb::ConfigureQueueRequest {
                event_id: event_id.clone(),
                enabled: true,
                pass_ttl_seconds: 1,
                ..Default::default()
            },
            "pass_ttl_seconds",
        ),
        (
            pb::ConfigureQueueRequest {
                event_id: event_id.clone(),
                enabled: true,
                seats_per_pass: 3,
                ..Default::default()
            },
            "seats_per_pass",
        ),
        (
            pb::ConfigureQueueRequest {
                event_id: event_id.clone(),
                enabled: true,
                admission_rate_per_second: 10_000_000,
                ..Default::default()
            },
            "admission_rate_per_second",
        ),
        (pb::ConfigureQueueRequest { event_id: String::new(), enabled: true, ..Default::default() }, "event_id"),
    ] {
        let error = server.admin().configure_queue(authed(&admin, request)).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{field}: {error:?}");
        assert!(error.message().contains(field), "{field}: {error:?}");
    }
    let missing =
        pb::ConfigureQueueRequest { event_id: "evt_0000000000000009".into(), enabled: true, ..Default::default() };
    assert_eq!(server.admin().configure_queue(authed(&admin, missing)).await.unwrap_err().code(), Code::NotFound);
    let bad_token = pb::WatchQueueRequest { event_id: event_id.clone(), queue_token: "not.a.token".into() };
    configure(&server, &event_id, 10, 0).await;
    let error = server.queue().watch_queue(authed(&server.token("ann"), bad_token)).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");
    assert!(error.message().contains("queue_token"), "{error:?}");
    server.stop().await;
}

#[tokio::test]
async fn the_waiting_room_setting_survives_a_restart() {
    let server = TestServer::start().await;
    let event_id = create_event(&server, 1, 4, 0, 2).await;
    configure(&server, &event_id, 10, 0).await;
    let server = server.restart_with(|_| {}).await;
    let refused = hold(&server, "ann", &event_id, best("S", 1), "", "").await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "the waiting room is still on: {refused:?}");
    let joined = join(&server, "ann", &event_id).await.standing.unwrap();
    assert_eq!(joined.position, 1);
    server.stop().await;
}

fn unix_seconds_from_now(seconds: i64) -> prost_types::Timestamp {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    prost_types::Timestamp { seconds: now + seconds, nanos: 0 }
}

async fn configure_with(
    server: &TestServer,
    request: pb::ConfigureQueueRequest,
) -> Result<pb::ConfigureQueueResponse, tonic::Status> {
    server.admin().configure_queue(authed(&server.admin_token(), request)).await.map(|response| response.into_inner())
}

/// Every standing of a WatchQueue stream until it ends, and how it ended (`Ok` for a clean end).
async fn watch_to_end(
    server: &TestServer,
    buyer: &str,
    event_id: &str,
    queue_token: &str,
) -> (Vec<pb::QueueStanding>, Result<(), tonic::Status>) {
    let request = pb::WatchQueueRequest { event_id: event_id.into(), queue_token: queue_token.into() };
    let mut stream = server.queue().watch_queue(authed(&server.token(buyer), request)).await.unwrap().into_inner();
    let mut standings = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.message()).await.expect("a standing in time") {
            Ok(Some(standing)) => standings.push(standing),
            Ok(None) => return (standings, Ok(())),
            Err(status) => return (standings, Err(status)),
        }
    }
}

/// Regression: switching the waiting room off ended the stream of a buyer who joined before the
/// opening with FAILED_PRECONDITION (the stream tried to join a line that was off); a buyer already
/// in line got CLOSED. Both must end with a CLOSED standing.
#[tokio::test]
async fn switching_the_room_off_tells_every_watcher_closed() {
    let server = TestServer::start().await;
    // Before the opening: the buyer has no position yet.
    let early_event = create_event(&server, 1, 4, 0, 2).await;
    let opens_later = pb::ConfigureQueueRequest {
        event_id: early_event.clone(),
        enabled: true,
        admission_rate_per_second: 1,
        opens_at: Some(unix_seconds_from_now(3_600)),
        ..Default::default()
    };
    configure_with(&server, opens_later).await.unwrap();
    let early = join(&server, "early", &early_event).await;
    assert_eq!(state(early.standing.as_ref().unwrap()), pb::QueueState::NotOpen);
    // In line: one admission a second and nine buyers ahead.
    let open_event = create_event(&server, 1, 4, 0, 2).await;
    configure(&server, &open_event, 1, 0).await;
    for index in 0..9 {
        join(&server, &format!("ahead-{index}"), &open_event).await;
    }
    let waiting = join(&server, "waiting", &open_event).await;
    assert_eq!(state(waiting.standing.as_ref().unwrap()), pb::QueueState::Waiting);

    let early_watch = {
        let (server, event_id, token) = (&server, early_event.clone(), early.queue_token.clone());
        async move { watch_to_end(server, "early", &event_id, &token).await }
    };
    let waiting_watch = {
        let (server, event_id, token) = (&server, open_event.clone(), waiting.queue_token.clone());
        async move { watch_to_end(server, "waiting", &event_id, &token).await }
    };
    let switch_off = async {
        // Both streams have sent their first standing by then.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for event_id in [&early_event, &open_event] {
            let off = pb::ConfigureQueueRequest { event_id: event_id.clone(), enabled: false, ..Default::default() };
            configure_with(&server, off).await.unwrap();
        }
    };
    let ((early_standings, early_end), (waiting_standings, waiting_end), ()) =
        tokio::join!(early_watch, waiting_watch, switch_off);
    for (who, standings, end) in [("early", early_standings, early_end), ("waiting", waiting_standings, waiting_end)] {
        assert!(end.is_ok(), "{who}: the stream failed: {end:?} after {standings:?}");
        assert_eq!(state(standings.last().unwrap()), pb::QueueState::Closed, "{who}: {standings:?}");
    }
    // And holds need no pass again.
    hold(&server, "early", &early_event, best("S", 1), "", "").await.unwrap();
    server.stop().await;
}

/// Regression: ConfigureQueue with `opens_at` in the future on a line that had opened already was
/// accepted and echoed back, then ignored (the opening draw happens once). It is refused now.
#[tokio::test]
async fn a_later_opening_of_a_line_that_opened_already_is_refused() {
    let server = TestServer::start().await;
    let event_id = create_event(&server, 1, 4, 0, 2).await;
    // Before the line opens, the opening may move.
    for hours in [2, 1] {
        let request = pb::ConfigureQueueRequest {
            event_id: event_id.clone(),
            enabled: true,
            admission_rate_per_second: 1,
            opens_at: Some(unix_seconds_from_now(hours * 3_600)),
            ..Default::default()
        };
        let configured = configure_with(&server, request.clone()).await.unwrap();
        assert_eq!(configured.opens_at, request.opens_at);
    }
    let joined = join(&server, "early", &event_id).await.standing.unwrap();
    assert_eq!(state(&joined), pb::QueueState::NotOpen);
    let moved_to = joined.opens_at.unwrap().seconds;
    assert!((moved_to - unix_seconds_from_now(3_600).seconds).abs() <= 2, "the move applied: {moved_to}");

    // An opening now (no opens_at) opens the line; a later one cannot apply any more.
    configure(&server, &event_id, 1, 0).await;
    let later = pb::ConfigureQueueRequest {
        event_id: event_id.clone(),
        enabled: true,
        admission_rate_per_second: 1,
        opens_at: Some(unix_seconds_from_now(600)),
        ..Default::default()
    };
    let refused = configure_with(&server, later).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("opens_at"), "{refused:?}");
    let standing = join(&server, "early", &event_id).await.standing.unwrap();
    assert_eq!(standing.position, 1, "the line kept its order: {standing:?}");
    // An opening in the past changes nothing and is accepted.
    let past = pb::ConfigureQueueRequest {
        event_id: event_id.clone(),
        enabled: true,
        admission_rate_per_second: 1,
        opens_at: Some(unix_seconds_from_now(-60)),
        ..Default::default()
    };
    configure_with(&server, past).await.unwrap();

    // A line that opened with nobody in it takes a later opening: it closes again until then.
    let empty_event = create_event(&server, 1, 4, 0, 2).await;
    configure(&server, &empty_event, 1, 0).await;
    let later = pb::ConfigureQueueRequest {
        event_id: empty_event.clone(),
        enabled: true,
        admission_rate_per_second: 1,
        opens_at: Some(unix_seconds_from_now(3_600)),
        ..Default::default()
    };
    configure_with(&server, later).await.unwrap();
    let standing = join(&server, "first", &empty_event).await.standing.unwrap();
    assert_eq!(state(&standing), pb::QueueState::NotOpen, "{standing:?}");
    server.stop().await;
}

/// The line outlives its actor: after a restart, an admitted buyer holds with their pass (once),
/// a buyer who was waiting watches from the place their token names and is admitted in turn, and
/// a newcomer gets a place behind everyone who had one (no position is handed out twice).
#[tokio::test]
async fn the_line_survives_a_restart_with_its_places_and_passes() {
    let server = TestServer::start().await;
    let event_id = create_event(&server, 1, 10, 0, 2).await;
    configure(&server, &event_id, 1, 1).await;
    let mut tokens = Vec::new();
    for buyer in ["ann", "bob", "cat"] {
        let joined = join(&server, buyer, &event_id).await;
        tokens.push(joined.queue_token);
    }
    let admitted = watch_until_final(&server, "ann", &event_id, &tokens[0]).await;
    let last = admitted.last().unwrap();
    assert_eq!((state(last), last.position), (pb::QueueState::Admitted, 1));
    let pass = last.admission_pass.clone();

    let server = server.restart_with(|_| {}).await;
    let held = hold(&server, "ann", &event_id, best("S", 1), &pass, "ann-1").await.expect("the pass still admits");
    assert_eq!(held.tickets.len(), 1);
    let again = hold(&server, "ann", &event_id, best("S", 1), &pass, "ann-2").await.unwrap_err();
    assert_eq!(again.code(), Code::PermissionDenied, "the pass was used: {again:?}");

    // bob (2) then cat (3): their places are their tokens', and admission goes on in order.
    let bob = watch_until_final(&server, "bob", &event_id, &tokens[1]).await;
    assert!(bob.iter().all(|standing| standing.position == 2), "{bob:?}");
    assert_eq!(state(bob.last().unwrap()), pb::QueueState::Admitted);
    let cat = watch_until_final(&server, "cat", &event_id, &tokens[2]).await;
    assert!(cat.iter().all(|standing| standing.position == 3), "{cat:?}");
    assert_eq!(state(cat.last().unwrap()), pb::QueueState::Admitted);
    let newcomer = join(&server, "dan", &event_id).await.standing.unwrap();
    assert!(newcomer.position > 3, "no place is handed out twice: {newcomer:?}");
    server.stop().await;
}
