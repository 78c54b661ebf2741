//! SearchEvents over real gRPC: typos, freshness after create, update and cancel, availability in
//! results, bad input, and a rebuild when the index directory is deleted.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use tonic::Code;
use turnstile_proto::v1 as pb;

async fn search(
    server: &TestServer,
    request: pb::SearchEventsRequest,
) -> Result<pb::SearchEventsResponse, tonic::Status> {
    server.catalog().search_events(request).await.map(|response| response.into_inner())
}

fn text(query: &str) -> pb::SearchEventsRequest {
    pb::SearchEventsRequest { query: query.into(), ..Default::default() }
}

/// Polls until `found(response)` holds, for at most `limit`; returns how long it took.
async fn wait_until(
    server: &TestServer,
    request: pb::SearchEventsRequest,
    found: impl Fn(&pb::SearchEventsResponse) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let response = search(server, request.clone()).await.unwrap();
        if found(&response) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(3), "search did not catch up: {response:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_named_event(server: &TestServer, name: &str, performer: &str) -> String {
    let admin = server.admin_token();
    let performer = server
        .admin()
        .create_performer(authed(
            &admin,
            pb::CreatePerformerRequest { name: performer.into(), description: "".into(), genre: "pop".into() },
        ))
        .await
        .unwrap()
        .into_inner()
        .performer
        .unwrap();
    let venue =
        server.admin().create_venue(authed(&admin, venue_request(2, 10, 0))).await.unwrap().into_inner().venue.unwrap();
    let mut request = event_request(&venue, 8);
    request.name = name.into();
    request.performer_ids = vec![performer.performer_id];
    server.admin().create_event(authed(&admin, request)).await.unwrap().into_inner().event.unwrap().event_id
}

#[tokio::test]
async fn created_events_are_found_with_typos_and_cancelled_ones_disappear() {
    let server = TestServer::start().await;
    let swift = create_named_event(&server, "The Eras Tour", "Taylor Swift").await;
    let other = create_named_event(&server, "Symphony Night", "Orchestra of Porto").await;

    let elapsed = wait_until(&server, text("tayler swift"), |response| {
        response.events.iter().any(|event| event.event_id == swift)
    })
    .await;
    assert!(elapsed < Duration::from_secs(1), "searchable within 1 s, took {elapsed:?}");
    let response = search(&server, text("tayler swift")).await.unwrap();
    let hit = &response.events[0];
    assert_eq!(hit.event_id, swift);
    assert_eq!(hit.performer_names, ["Taylor Swift"]);
    assert_eq!(hit.venue_name, "Test Hall");
    assert_eq!(hit.available, 20);
    assert!(response.events.iter().all(|event| event.event_id != other));

    // Availability in results follows the inventory.
    let ann = server.token("ann");
    server
        .booking()
        .hold_seats(authed(
            &ann,
            pb::HoldSeatsRequest {
                event_id: swift.clone(),
                idempotency_key: "".into(),
                selection: best("S", 3),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let response = search(&server, text("eras tour")).await.unwrap();
    assert_eq!(response.events[0].available, 17);

    // An update is searchable by its new name.
    let admin = server.admin_token();
    server
        .admin()
        .update_event(authed(
            &admin,
            pb::UpdateEventRequest {
                event_id: other.clone(),
                name: Some("Moonlight Sonata Gala".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    wait_until(&server, text("moonlight sonata"), |response| {
        response.events.iter().any(|event| event.event_id == other)
    })
    .await;

    // A cancelled event disappears.
    server.admin().cancel_event(authed(&admin, pb::CancelEventRequest { event_id: swift.clone() })).await.unwrap();
    let elapsed = wait_until(&server, text("taylor swift"), |response| {
        response.events.iter().all(|event| event.event_id != swift)
    })
    .await;
    assert!(elapsed < Duration::from_secs(1), "cancellation visible within 1 s, took {elapsed:?}");
    server.stop().await;
}

#[tokio::test]
async fn bad_search_input_names_the_field() {
    let server = TestServer::start().await;
    create_named_event(&server, "Rock Night", "The Band").await;
    let cases = [
        (pb::SearchEventsRequest { query: "x".repeat(300), ..Default::default() }, "query"),
        (pb::SearchEventsRequest { page_token: "garbage!".into(), ..Default::default() }, "page_token"),
        (pb::SearchEventsRequest { page_size: 1_000, ..Default::default() }, "page_size"),
        (
            pb::SearchEventsRequest {
                starts_after: Some(timestamp(2_000_000_000)),
                starts_before: Some(timestamp(1_900_000_000)),
                ..Default::default()
            },
            "starts_before",
        ),
        (pb::SearchEventsRequest { sort: 7, ..Default::default() }, "sort"),
    ];
    for (request, field) in cases {
        let error = search(&server, request).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{field}: {error:?}");
        assert!(error.message().starts_with(field), "{field}: {}", error.message());
    }
    // Query syntax in user input is plain text.
    for query in ["\"unbalanced", "name:rock", "(rock", "rock AND OR", "*", "~2 ^3", "🎸 rock"] {
        search(&server, text(query)).await.unwrap_or_else(|error| panic!("{query}: {error:?}"));
    }
    server.stop().await;
}

#[tokio::test]
async fn the_index_is_rebuilt_when_its_directory_is_deleted() {
    let server = TestServer::start().await;
    let event_id = create_named_event(&server, "Jazz Evening", "Blue Quartet").await;
    wait_until(&server, text("jazz"), |response| response.events.iter().any(|event| event.event_id == event_id)).await;
    let data_dir = server.data_dir.path().to_path_buf();
    let restarted = server.restart_with(|data_dir| std::fs::remove_dir_all(data_dir.join("search")).unwrap()).await;
    assert!(data_dir.join("search").exists(), "the index directory was recreated");
    let response = search(&restarted, text("blue quartett")).await.unwrap();
    assert_eq!(response.events.len(), 1);
    assert_eq!(response.events[0].event_id, event_id);
    restarted.stop().await;
}
