//! CatalogService.WatchEvent over gRPC: a snapshot, then every change with its version; a client
//! that reconnects with the last version it saw receives exactly what it missed.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::{authed, create_event, seats, TestServer};
use tonic::Streaming;
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::watch_event_response::{Kind, SnapshotReason};

#[derive(Debug, Default, PartialEq)]
struct Mirror {
    version: u64,
    seats: HashMap<String, i32>,
    available: HashMap<String, u32>,
}

impl Mirror {
    fn apply(&mut self, message: &pb::WatchEventResponse) {
        if message.kind == Kind::Snapshot as i32 {
            self.seats.clear();
            self.available.clear();
        } else {
            assert_eq!(message.kind, Kind::Change as i32);
            assert_eq!(message.version, self.version + 1, "a change skipped or repeated a version");
        }
        self.version = message.version;
        for seat in &message.seats {
            self.seats.insert(seat.seat_id.clone(), seat.status);
        }
        for row in &message.availability {
            self.available.insert(row.section_id.clone(), row.available);
        }
    }

    async fn truth(server: &TestServer, event_id: &str) -> Self {
        let response = server
            .catalog()
            .get_event(pb::GetEventRequest { event_id: event_id.into(), include_seats: true, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        Mirror {
            version: response.version,
            seats: response.seats.iter().map(|seat| (seat.seat_id.clone(), seat.status)).collect(),
            available: response.availability.iter().map(|row| (row.section_id.clone(), row.available)).collect(),
        }
    }
}

async fn watch(server: &TestServer, event_id: &str, after_version: u64) -> Streaming<pb::WatchEventResponse> {
    server
        .catalog()
        .watch_event(pb::WatchEventRequest { event_id: event_id.into(), after_version })
        .await
        .unwrap()
        .into_inner()
}

async fn next(stream: &mut Streaming<pb::WatchEventResponse>) -> pb::WatchEventResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a message in time")
        .unwrap()
        .expect("the stream stays open")
}

async fn hold(server: &TestServer, token: &str, event_id: &str, seat_ids: &[&str]) -> pb::Hold {
    let ids: Vec<String> = seat_ids.iter().map(|id| id.to_string()).collect();
    let request = pb::HoldSeatsRequest { event_id: event_id.into(), selection: seats(&ids), ..Default::default() };
    server.booking().hold_seats(authed(token, request)).await.unwrap().into_inner().hold.unwrap()
}

#[tokio::test]
async fn a_watcher_sees_every_change_and_resumes_where_it_left_off() {
    let server = TestServer::start().await;
    let event_id = create_event(&server, 3, 5, 20, 8).await;
    let token = server.token("ann");

    let mut stream = watch(&server, &event_id, 0).await;
    let first = next(&mut stream).await;
    assert_eq!((first.kind, first.snapshot_reason), (Kind::Snapshot as i32, SnapshotReason::Initial as i32));
    let mut mirror = Mirror::default();
    mirror.apply(&first);
    assert_eq!(mirror.seats.len(), 15);

    let held = hold(&server, &token, &event_id, &["S:R0:1", "S:R0:2"]).await;
    let change = next(&mut stream).await;
    assert_eq!(change.seats.len(), 2);
    assert!(change.seats.iter().all(|seat| seat.status == pb::SeatStatus::Held as i32), "{change:?}");
    mirror.apply(&change);
    let confirm = pb::ConfirmHoldRequest { hold_id: held.hold_id, payment_reference: "p".into(), ..Default::default() };
    server.booking().confirm_hold(authed(&token, confirm)).await.unwrap();
    mirror.apply(&next(&mut stream).await);
    assert_eq!(mirror, Mirror::truth(&server, &event_id).await);
    drop(stream);

    // Changes made while the client is away.
    let second = hold(&server, &token, &event_id, &["S:R1:3"]).await;
    server.booking().release_hold(authed(&token, pb::ReleaseHoldRequest { hold_id: second.hold_id })).await.unwrap();
    hold(&server, &token, &event_id, &["S:R2:5"]).await;

    let mut resumed = watch(&server, &event_id, mirror.version).await;
    for _ in 0..3 {
        let message = next(&mut resumed).await;
        assert_eq!(message.kind, Kind::Change as i32, "resuming replays the missed changes: {message:?}");
        mirror.apply(&message);
    }
    assert_eq!(mirror, Mirror::truth(&server, &event_id).await);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), resumed.message()).await.is_err(),
        "nothing arrives twice and nothing arrives unasked"
    );
    server.stop().await;
}

#[tokio::test]
async fn watch_requests_are_checked() {
    let server = TestServer::start().await;
    let missing = server
        .catalog()
        .watch_event(pb::WatchEventRequest { event_id: "evt_0000000000000001".into(), after_version: 0 })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    let empty = server.catalog().watch_event(pb::WatchEventRequest::default()).await.unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    assert!(empty.message().contains("event_id"), "{empty:?}");
    server.stop().await;
}
