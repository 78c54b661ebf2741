//! Operability over real gRPC: metrics recorded by the actors, the log and the RPC layer; rate
//! limits answering RESOURCE_EXHAUSTED with a retry hint; TLS on the gRPC port.

mod common;

use std::time::Duration;

use common::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::Code;
use turnstile::config::Config;
use turnstile::server::Server;
use turnstile_engine::engine::EngineOptions;
use turnstile_engine::Engine;
use turnstile_proto::v1 as pb;

/// The value of an unlabelled counter in a Prometheus text rendering.
fn counter(rendered: &str, name: &str) -> u64 {
    rendered
        .lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map(|value| value.trim().parse::<f64>().unwrap() as u64)
        .unwrap_or(0)
}

#[tokio::test]
async fn metrics_count_holds_confirms_conflicts_commits_and_rpcs() {
    let handle = turnstile::metrics::install_recorder().unwrap();
    let server = TestServer::start().await;
    let (ann, bob) = (server.token("ann"), server.token("bob"));
    let event_id = create_event(&server, 1, 10, 0, 8).await;
    let seat_ids = vec!["S:R0:1".to_string(), "S:R0:2".to_string()];
    let hold = server
        .booking()
        .hold_seats(authed(
            &ann,
            pb::HoldSeatsRequest {
                event_id: event_id.clone(),
                idempotency_key: "".into(),
                selection: seats(&seat_ids),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let conflict = server
        .booking()
        .hold_seats(authed(
            &bob,
            pb::HoldSeatsRequest {
                event_id: event_id.clone(),
                idempotency_key: "".into(),
                selection: seats(&seat_ids),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Code::FailedPrecondition);
    server
        .booking()
        .confirm_hold(authed(
            &ann,
            pb::ConfirmHoldRequest { hold_id: hold.hold_id, payment_reference: "p".into(), idempotency_key: "".into() },
        ))
        .await
        .unwrap();

    let rendered = handle.render();
    assert!(counter(&rendered, "turnstile_holds_placed_total") >= 1, "{rendered}");
    assert!(counter(&rendered, "turnstile_holds_confirmed_total") >= 1, "{rendered}");
    assert!(rendered.contains("turnstile_rejections_total{reason=\"seat_conflict\"}"), "{rendered}");
    assert!(counter(&rendered, "turnstile_log_entries_total") >= 2, "{rendered}");
    assert!(rendered.contains("turnstile_log_commit_seconds_bucket"), "{rendered}");
    assert!(rendered.contains("turnstile_log_commit_jobs_bucket"), "{rendered}");
    assert!(
        rendered.contains("turnstile_rpc_seconds_count{method=\"BookingService/HoldSeats\",code=\"Ok\"}"),
        "{rendered}"
    );
    assert!(
        rendered
            .contains("turnstile_rpc_seconds_count{method=\"BookingService/HoldSeats\",code=\"FailedPrecondition\"}"),
        "{rendered}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_buyer_over_the_rate_limit_is_told_when_to_retry() {
    let server = TestServer::start_with(|config| {
        config.limits.buyer_requests_per_second = 1;
        config.limits.buyer_requests_burst = 3;
    })
    .await;
    let (ann, bob) = (server.token("ann"), server.token("bob"));
    let mut client = server.booking();
    let mut other_client = server.booking();
    let list = |token: &str| authed(token, pb::ListBookingsRequest::default());
    for _ in 0..3 {
        client.list_bookings(list(&ann)).await.unwrap();
    }
    let error = client.list_bookings(list(&ann)).await.unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(error.message().contains("retry after"), "{}", error.message());
    let wait_ms: u64 = error.metadata().get("retry-after-ms").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=1_000).contains(&wait_ms), "{wait_ms}");
    // Another buyer is not affected, and the first one may go again after the wait.
    other_client.list_bookings(list(&bob)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(wait_ms + 20)).await;
    client.list_bookings(list(&ann)).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn the_grpc_port_speaks_tls_when_a_certificate_is_configured() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let files = tempfile::tempdir().unwrap();
    let (certificate_file, private_key_file) = (files.path().join("node.crt"), files.path().join("node.key"));
    std::fs::write(&certificate_file, certified.cert.pem()).unwrap();
    std::fs::write(&private_key_file, certified.signing_key.serialize_pem()).unwrap();

    let mut config = Config::default();
    config.auth.secret = SECRET.into();
    config.tls.certificate_file = Some(certificate_file);
    config.tls.private_key_file = Some(private_key_file);
    config.validate().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(data_dir.path(), EngineOptions::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::start(&config, engine, listener).await.unwrap();
    let port = server.local_addr.port();

    let tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(certified.cert.pem())).domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let error = turnstile_proto::v1::catalog_service_client::CatalogServiceClient::new(channel)
        .get_event(pb::GetEventRequest { event_id: "evt_0000000000000001".into(), include_seats: false })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound, "the call went through TLS to the service: {error:?}");

    // Plaintext is refused.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    if let Ok(plain) = plain {
        let result = turnstile_proto::v1::catalog_service_client::CatalogServiceClient::new(plain)
            .get_event(pb::GetEventRequest { event_id: "evt_0000000000000001".into(), include_seats: false })
            .await;
        assert!(
            result.is_err_and(|error| error.code() != Code::NotFound),
            "a plaintext call must not reach the service"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn node_status_reports_events_live_holds_and_the_log() {
    let server = TestServer::start().await;
    let (admin, ann) = (server.admin_token(), server.token("ann"));
    let event_id = create_event(&server, 1, 10, 0, 8).await;
    for quantity in [1, 2] {
        server
            .booking()
            .hold_seats(authed(
                &ann,
                pb::HoldSeatsRequest {
                    event_id: event_id.clone(),
                    idempotency_key: "".into(),
                    selection: best("S", quantity),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    let error = server.admin().get_node_status(authed(&ann, pb::GetNodeStatusRequest {})).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let status =
        server.admin().get_node_status(authed(&admin, pb::GetNodeStatusRequest {})).await.unwrap().into_inner();
    assert_eq!(status.node_id, "node-1");
    assert_eq!((status.events_owned, status.events_active, status.live_holds), (1, 1, 2));
    assert_eq!(status.log_entries, 2, "two holds logged, no checkpoint yet");
    assert_eq!(status.log_last_index, 2);
    assert!(status.database_bytes > 0);
    assert!(status.log_commands >= 2);
    server.stop().await;
}

/// Runs `turnstile serve` with `config` (in a fresh directory, listening on a port the OS picks,
/// no metrics) and `RUST_LOG` as given; returns the process's exit status if it ends within
/// `within`, and its output so far (stdout and stderr, in one file).
fn serve_briefly(config: &str, rust_log: Option<&str>, within: Duration) -> (Option<std::process::ExitStatus>, String) {
    let directory = tempfile::tempdir().unwrap();
    let config_path = directory.path().join("node.toml");
    std::fs::write(&config_path, format!("[auth]\nsecret = \"{SECRET}\"\n{config}")).unwrap();
    let output_path = directory.path().join("output.log");
    let output = std::fs::File::create(&output_path).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_turnstile"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config_path)
        .arg("--data-dir")
        .arg(directory.path().join("data"))
        .stdout(output.try_clone().unwrap())
        .stderr(output);
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let mut child = command.spawn().unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(&output_path).unwrap_or_default())
}

/// A log level that names no level used to turn logging off in silence: now the node refuses to
/// start and names the key. Output that is not a terminal carries no colour codes.
#[test]
fn an_unknown_log_level_is_refused_and_logs_to_a_file_are_plain() {
    let (status, output) = serve_briefly("[log]\nlevel = \"verbose\"\n[metrics]\n", None, Duration::from_secs(20));
    let status = status.expect("the node refuses to start at once");
    assert!(!status.success(), "{output}");
    assert!(output.contains("log.level") && output.contains("verbose"), "{output}");

    let (status, output) = serve_briefly("[metrics]\n", Some("info,turnstile=loud"), Duration::from_secs(20));
    assert!(!status.expect("refused at once").success(), "{output}");
    assert!(output.contains("RUST_LOG"), "{output}");

    let (status, output) = serve_briefly("[log]\nlevel = \"info\"\n[metrics]\n", None, Duration::from_secs(3));
    assert!(status.is_none(), "a valid level serves: {output}");
    assert!(output.contains("INFO"), "info lines are logged: {output}");
    assert!(!output.contains('\u{1b}'), "no colour codes in a file: {output}");
}
