//! `BookingService.Book`, many buyers' booking calls on one stream, and the `turnstile-client`
//! crate (its pool, typed calls, retries and the booking stream), against a real node on 127.0.0.1.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::book_request::Call;
use turnstile_proto::v1::book_response::Result as Answer;

use crate::common::*;

fn hold_call(event_id: &str, seat: &str, key: &str) -> Call {
    Call::Hold(pb::HoldSeatsRequest {
        event_id: event_id.into(),
        idempotency_key: key.into(),
        selection: seats(&[seat.to_string()]),
        ..Default::default()
    })
}

/// An open Book stream: a sender of requests and the answers.
async fn open(server: &TestServer) -> (mpsc::Sender<pb::BookRequest>, tonic::Streaming<pb::BookResponse>) {
    let (sender, receiver) = mpsc::channel(1_024);
    let answers = server.booking().book(ReceiverStream::new(receiver)).await.unwrap().into_inner();
    (sender, answers)
}

async fn next(answers: &mut tonic::Streaming<pb::BookResponse>) -> pb::BookResponse {
    tokio::time::timeout(Duration::from_secs(10), answers.message())
        .await
        .expect("an answer within 10 s")
        .unwrap()
        .expect("the stream goes on")
}

fn hold_of(answer: &pb::BookResponse) -> &pb::Hold {
    match answer.result.as_ref().unwrap() {
        Answer::Hold(hold) => hold.hold.as_ref().unwrap(),
        other => panic!("not a hold: {other:?}"),
    }
}

fn error_of(answer: &pb::BookResponse) -> (Code, &str) {
    match answer.result.as_ref().unwrap() {
        Answer::Error(error) => (Code::from(error.code), error.message.as_str()),
        other => panic!("not an error: {other:?}"),
    }
}

#[tokio::test]
async fn interleaved_requests_of_many_buyers_are_answered_under_their_own_ids() {
    let server = TestServer::start().await;
    let event_id = create_event(&server, 4, 10, 0, 4).await;
    let (sender, mut answers) = open(&server).await;
    // 40 holds by 10 buyers, then each buyer confirms the first of theirs, all on one stream.
    let buyers: Vec<String> = (0..10).map(|buyer| format!("buyer-{buyer}")).collect();
    let mut expected = HashMap::new();
    for index in 0..40u64 {
        let buyer = &buyers[index as usize % 10];
        let seat = format!("S:{}:{}", ["R0", "R1", "R2", "R3"][index as usize / 10], index % 10 + 1);
        let request_id = 1_000 + index * 7;
        expected.insert(request_id, (buyer.clone(), seat.clone()));
        let call = hold_call(&event_id, &seat, &format!("key-{index}"));
        sender.send(pb::BookRequest { request_id, token: server.token(buyer), call: Some(call) }).await.unwrap();
    }
    let mut holds = HashMap::new();
    for _ in 0..40 {
        let answer = next(&mut answers).await;
        let (buyer, seat) = expected.remove(&answer.request_id).expect("an id that was sent, once");
        let hold = hold_of(&answer);
        assert_eq!((hold.buyer_id.as_str(), hold.tickets[0].seat_id.as_str()), (buyer.as_str(), seat.as_str()));
        holds.entry(buyer).or_insert(hold.hold_id.clone());
    }
    for (index, (buyer, hold_id)) in holds.iter().enumerate() {
        let call = Call::Confirm(pb::ConfirmHoldRequest {
            hold_id: hold_id.clone(),
            payment_reference: format!("pay-{buyer}"),
            ..Default::default()
        });
        let request = pb::BookRequest { request_id: index as u64, token: server.token(buyer), call: Some(call) };
        sender.send(request).await.unwrap();
    }
    let mut confirmed = HashSet::new();
    for _ in 0..holds.len() {
        let answer = next(&mut answers).await;
        let Answer::Confirm(booking) = answer.result.as_ref().unwrap() else { panic!("{answer:?}") };
        let booking = booking.booking.as_ref().unwrap();
        assert_eq!(booking.payment_reference, format!("pay-{}", booking.buyer_id));
        assert!(confirmed.insert(answer.request_id));
    }
    // The client is done: the server ends the stream once every answer is out.
    drop(sender);
    assert!(answers.message().await.unwrap().is_none());
    server.stop().await;
}

#[tokio::test]
async fn a_broken_stream_loses_no_acknowledged_hold_and_a_retry_answers_the_first_result() {
    let server = TestServer::start().await;
    let event_id = create_event(&server, 2, 25, 0, 50).await;
    // A buyer per seat (a buyer may have at most ten holds live on an event).
    let tokens: Vec<String> = (0..50).map(|index| server.token(&format!("buyer-{index}"))).collect();
    let seat_of = |index: usize| format!("S:{}:{}", if index < 25 { "R0" } else { "R1" }, index % 25 + 1);
    let (sender, mut answers) = open(&server).await;
    for index in 0..50usize {
        let call = hold_call(&event_id, &seat_of(index), &format!("key-{index}"));
        let token = tokens[index].clone();
        sender.send(pb::BookRequest { request_id: index as u64, token, call: Some(call) }).await.unwrap();
    }
    // Read a few answers, then break the stream with the rest in flight.
    let mut acknowledged = HashMap::new();
    for _ in 0..5 {
        let answer = next(&mut answers).await;
        acknowledged.insert(answer.request_id, hold_of(&answer).hold_id.clone());
    }
    drop(answers);
    drop(sender);

    // Every request again, same keys, on a new stream: the acknowledged ones answer their first
    // hold, and no seat is held twice.
    let (sender, mut answers) = open(&server).await;
    for index in 0..50usize {
        let call = hold_call(&event_id, &seat_of(index), &format!("key-{index}"));
        let token = tokens[index].clone();
        sender.send(pb::BookRequest { request_id: index as u64, token, call: Some(call) }).await.unwrap();
    }
    let mut hold_ids = HashSet::new();
    for _ in 0..50 {
        let answer = next(&mut answers).await;
        let hold = hold_of(&answer);
        assert_eq!(hold.tickets[0].seat_id, seat_of(answer.request_id as usize));
        if let Some(first) = acknowledged.get(&answer.request_id) {
            assert_eq!(&hold.hold_id, first, "the retry answers the first result");
        }
        hold_ids.insert(hold.hold_id.clone());
    }
    assert_eq!(hold_ids.len(), 50);
    let view = server
        .catalog()
        .get_event(pb::GetEventRequest { event_id: event_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let held: u32 = view.availability.iter().map(|row| row.held).sum();
    assert_eq!(held, 50, "one hold per seat, none doubled");
    server.stop().await;
}

#[tokio::test]
async fn each_message_is_authorized_on_its_own_and_in_flight_requests_are_bounded() {
    let server = TestServer::start_with(|config| config.limits.stream_requests_in_flight_max = 2).await;
    let event_id = create_event(&server, 4, 25, 0, 100).await;
    let (sender, mut answers) = open(&server).await;
    let ann_hold =
        pb::BookRequest { request_id: 1, token: server.token("ann"), call: Some(hold_call(&event_id, "S:R0:1", "")) };
    sender.send(ann_hold).await.unwrap();
    let answer = next(&mut answers).await;
    let hold_id = hold_of(&answer).hold_id.clone();
    // Bob may not release ann's hold; a forged token and no token are refused; the stream goes on.
    let release = |request_id, token: String| pb::BookRequest {
        request_id,
        token,
        call: Some(Call::Release(pb::ReleaseHoldRequest { hold_id: hold_id.clone() })),
    };
    sender.send(release(2, server.token("bob"))).await.unwrap();
    assert_eq!(error_of(&next(&mut answers).await).0, Code::PermissionDenied);
    sender.send(release(3, "forged.token.here".into())).await.unwrap();
    assert_eq!(error_of(&next(&mut answers).await).0, Code::Unauthenticated);
    sender.send(release(4, String::new())).await.unwrap();
    assert_eq!(error_of(&next(&mut answers).await).0, Code::Unauthenticated);
    sender.send(pb::BookRequest { request_id: 5, token: server.token("ann"), call: None }).await.unwrap();
    let answer = next(&mut answers).await;
    assert_eq!((answer.request_id, error_of(&answer).0), (5, Code::InvalidArgument));
    sender.send(release(6, server.token("ann"))).await.unwrap();
    let Answer::Release(released) = next(&mut answers).await.result.unwrap() else { panic!() };
    assert_eq!(released.hold.unwrap().status, pb::HoldStatus::Released as i32);

    // Many requests at once: beyond two in flight, answered RESOURCE_EXHAUSTED naming the bound.
    for index in 0..60u64 {
        let seat = format!("S:{}:{}", ["R0", "R1", "R2"][index as usize / 20], index % 20 + 2);
        let request = pb::BookRequest {
            request_id: 100 + index,
            token: server.token(&format!("many-{index}")),
            call: Some(hold_call(&event_id, &seat, "")),
        };
        sender.send(request).await.unwrap();
    }
    let mut refused = 0;
    for _ in 0..60 {
        let answer = next(&mut answers).await;
        if let Some(Answer::Error(error)) = &answer.result {
            assert_eq!(Code::from(error.code), Code::ResourceExhausted, "{error:?}");
            assert!(error.message.contains("stream_requests_in_flight_max"), "{}", error.message);
            refused += 1;
        }
    }
    assert!(refused > 0, "some of 60 requests sent at once found two in flight");
    server.stop().await;
}

#[tokio::test]
async fn the_client_crate_batches_concurrent_callers_onto_one_stream_and_retries_safely() {
    let server = TestServer::start().await;
    let event_id = create_event(&server, 4, 25, 0, 100).await;
    let address = format!("http://{}", server.server.as_ref().unwrap().local_addr);
    let client = turnstile_client::Client::builder(&address).connections(2).connect().await.unwrap();

    // 100 tasks, 100 buyers, one stream.
    let mut tasks = Vec::new();
    for index in 0..100usize {
        let stream = client.stream().clone();
        let token = server.token(&format!("fan-{index}"));
        let request = pb::HoldSeatsRequest {
            event_id: event_id.clone(),
            selection: seats(&[format!("S:{}:{}", ["R0", "R1", "R2", "R3"][index / 25], index % 25 + 1)]),
            ..Default::default()
        };
        tasks.push(tokio::spawn(async move { stream.hold(&token, request).await }));
    }
    let mut buyers = HashSet::new();
    for task in tasks {
        let hold = task.await.unwrap().unwrap().hold.unwrap();
        buyers.insert(hold.buyer_id);
    }
    assert_eq!(buyers.len(), 100);
    let taken = client
        .stream()
        .hold(
            &server.token("late"),
            pb::HoldSeatsRequest {
                event_id: event_id.clone(),
                selection: seats(&["S:R0:1".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::FailedPrecondition);

    // Unary typed calls with the client's token; the retry of a hold with its key is the same hold.
    let ann = client.with_token(&server.token("ann")).unwrap();
    let view = ann.get_event(pb::GetEventRequest { event_id: event_id.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(view.availability.iter().map(|row| row.held).sum::<u32>(), 100);
    server.stop().await;

    let server = TestServer::start().await;
    let event_id = create_event(&server, 1, 10, 0, 10).await;
    let address = format!("http://{}", server.server.as_ref().unwrap().local_addr);
    let ann = turnstile_client::Client::builder(&address).token(server.token("ann")).connect().await.unwrap();
    let request = pb::HoldSeatsRequest {
        event_id: event_id.clone(),
        idempotency_key: "ann-once".into(),
        selection: seats(&["S:R0:3".into()]),
        ..Default::default()
    };
    let first = ann.hold(request.clone()).await.unwrap();
    let again = ann.hold(request).await.unwrap();
    assert_eq!(first.hold_id, again.hold_id);
    let booking = ann
        .confirm(pb::ConfirmHoldRequest {
            hold_id: first.hold_id.clone(),
            payment_reference: "p".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(booking.hold_id, first.hold_id);
    let listed = ann.list_bookings(pb::ListBookingsRequest::default()).await.unwrap();
    assert_eq!(listed.bookings.len(), 1);
    // The booking stream with the client's own token (empty per-message token).
    let second = ann
        .stream()
        .hold("", pb::HoldSeatsRequest { event_id, selection: seats(&["S:R0:4".into()]), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(second.hold.unwrap().buyer_id, "ann");

    // A node that stops: the stream's callers are told UNAVAILABLE (after the retries), not left
    // waiting.
    server.stop().await;
    let gone = ann.stream().get_hold("", pb::GetHoldRequest { hold_id: first.hold_id }).await.unwrap_err();
    assert_eq!(gone.code(), Code::Unavailable, "{gone:?}");
}
