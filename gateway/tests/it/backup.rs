//! Online backup over gRPC while the node serves, restore into a fresh data directory, and a node
//! started on the restored directory serving exactly what was backed up.

use crate::common;

use common::*;
use tonic::Code;
use turnstile::config::Config;
use turnstile::server::Server;
use turnstile_engine::engine::EngineOptions;
use turnstile_engine::Engine;
use turnstile_proto::v1 as pb;

#[tokio::test]
async fn a_backup_restores_into_a_node_that_serves_the_same_bookings() {
    let backups = tempfile::tempdir().unwrap();
    let backup_dir = backups.path().to_path_buf();
    let server = TestServer::start_with(|config| config.storage.backup_dir = Some(backup_dir)).await;
    let admin = server.admin_token();
    let ann = server.token("ann");
    let event_id = create_event(&server, 2, 10, 0, 8).await;
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
    let booking = server
        .booking()
        .confirm_hold(authed(
            &ann,
            pb::ConfirmHoldRequest {
                hold_id: hold.hold_id,
                payment_reference: "psp-1".into(),
                idempotency_key: "".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();

    // A relative path lands in the configured backup directory, and the reply says where.
    let backup_path = backups.path().canonicalize().unwrap().join("node-1.redb");
    let request = pb::CreateBackupRequest { path: "node-1.redb".into() };
    let error = server.admin().create_backup(authed(&ann, request.clone())).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "only admins take backups");
    let response = server.admin().create_backup(authed(&admin, request.clone())).await.unwrap().into_inner();
    assert!(response.size_bytes > 0);
    assert_eq!(response.path, backup_path.display().to_string());
    assert!(backup_path.is_file());
    // Nothing lands outside it, and no directory is made below it.
    let outside = tempfile::tempdir().unwrap();
    for (path, says) in [
        ("../escape.redb".to_string(), "without '..'"),
        (outside.path().join("elsewhere.redb").display().to_string(), "backup directory"),
        ("missing/inner.redb".to_string(), "does not exist"),
    ] {
        let request = pb::CreateBackupRequest { path: path.clone() };
        let error = server.admin().create_backup(authed(&admin, request)).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{path}: {}", error.message());
        assert!(error.message().starts_with("path") && error.message().contains(says), "{path}: {}", error.message());
    }
    assert!(!outside.path().join("elsewhere.redb").exists() && !backups.path().join("missing").exists());
    let error = server.admin().create_backup(authed(&admin, request)).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "a backup never overwrites: {}", error.message());

    // A change after the backup is not in it.
    let later = server
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
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    server.stop().await;

    let restored_dir = tempfile::tempdir().unwrap();
    let data_dir = restored_dir.path().join("node-1");
    turnstile_storage::backup::restore(&backup_path, &data_dir).unwrap();
    assert!(turnstile_storage::backup::restore(&backup_path, &data_dir).is_err(), "restore never overwrites");

    let mut config = Config::default();
    config.auth.secret = SECRET.into();
    let engine = Engine::open(&data_dir, EngineOptions::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let restored = Server::start(&config, engine, listener).await.unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", restored.local_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut booking_client = turnstile_proto::v1::booking_service_client::BookingServiceClient::new(channel.clone());
    let got = booking_client
        .get_booking(authed(&ann, pb::GetBookingRequest { booking_id: booking.booking_id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!(got.tickets, booking.tickets);
    let listed =
        booking_client.list_bookings(authed(&ann, pb::ListBookingsRequest::default())).await.unwrap().into_inner();
    assert_eq!(listed.bookings.len(), 1);
    let error = booking_client.get_hold(authed(&ann, pb::GetHoldRequest { hold_id: later.hold_id })).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound, "the hold placed after the backup is not restored");
    let view = turnstile_proto::v1::catalog_service_client::CatalogServiceClient::new(channel)
        .get_event(pb::GetEventRequest { event_id, include_seats: false, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((view.availability[0].booked, view.availability[0].held), (2, 0));
    restored.shutdown().await.unwrap();
}
