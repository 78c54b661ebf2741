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
        .get_event(pb::GetEventRequest {
            event_id: "evt_0000000000000001".into(),
            include_seats: false,
            ..Default::default()
        })
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
            .get_event(pb::GetEventRequest {
                event_id: "evt_0000000000000001".into(),
                include_seats: false,
                ..Default::default()
            })
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

/// `turnstile serve` as a process, its output in a file; killed when dropped.
struct Node {
    child: std::process::Child,
    directory: tempfile::TempDir,
    output_path: std::path::PathBuf,
}

impl Node {
    /// Starts `turnstile serve` in a fresh directory with a config holding `config` (after a
    /// secret line `secret`) and the extra `args`, from that directory.
    fn start(secret: &str, config: &str, args: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), secret, config, args)
    }

    /// Like `start`, in `directory` (which may hold an earlier node's data).
    fn start_in(directory: tempfile::TempDir, secret: &str, config: &str, args: &[&str]) -> Self {
        std::fs::write(directory.path().join("node.toml"), format!("[auth]\nsecret = \"{secret}\"\n{config}")).unwrap();
        let output_path = directory.path().join("output.log");
        let output = std::fs::File::create(&output_path).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_turnstile"))
            .args(["serve", "--config", "node.toml"])
            .args(args)
            .current_dir(directory.path())
            .env_remove("RUST_LOG")
            .env_remove(turnstile::config::AUTH_SECRET_ENV)
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap();
        Node { child, directory, output_path }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output_path).unwrap_or_default()
    }

    /// Waits (at most 60 s) for a log line holding `needle`; returns the whole output.
    fn wait_for(&mut self, needle: &str) -> String {
        let started = std::time::Instant::now();
        loop {
            let output = self.output();
            if output.contains(needle) {
                return output;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the node exited ({status}) before logging '{needle}': {output}");
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no '{needle}' within 60 s: {output}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the node and hands its directory back.
    fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let directory = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.directory, directory)
    }

    /// Waits (at most `within`) for the process to end.
    fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address logged after `key=` on the line holding `needle`.
fn logged_address(output: &str, needle: &str, key: &str) -> std::net::SocketAddr {
    let line = output.lines().find(|line| line.contains(needle)).unwrap_or_else(|| panic!("no '{needle}': {output}"));
    let value = line.split(&format!("{key}=")).nth(1).unwrap().split_whitespace().next().unwrap();
    value.parse().unwrap_or_else(|_| panic!("'{value}' in {line}"))
}

/// One HTTP/1.1 request; answers the status code and the body.
fn http(address: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (code, body)
}

/// The metrics port serves Prometheus text with HELP lines, build info and process metrics, and
/// /healthz and /readyz; any other path is 404 and any other method 405. `--metrics-listen` sets
/// it, and `turnstile status` names the version, start, addresses and data directory.
#[test]
fn the_metrics_port_serves_metrics_health_and_readiness_and_status_names_the_node() {
    let mut node = Node::start(
        SECRET,
        "",
        &["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir", "data/node-x", "--demo"],
    );
    let output = node.wait_for("serving gRPC");
    let grpc = logged_address(&output, "serving gRPC", "local_addr");
    let metrics = logged_address(&output, "serving Prometheus metrics", "listen");

    let (code, body) = http(metrics, "GET", "/metrics");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("# HELP turnstile_log_entries_total "), "{body}");
    assert!(body.contains("# HELP turnstile_build_info "), "{body}");
    assert!(body.contains(&format!("turnstile_build_info{{version=\"{}\"", env!("CARGO_PKG_VERSION"))), "{body}");
    let resident = body
        .lines()
        .find_map(|line| line.strip_prefix("process_resident_memory_bytes "))
        .unwrap_or_else(|| panic!("no process metrics: {body}"));
    assert!(resident.trim().parse::<f64>().unwrap() > 1e6, "{resident}");
    assert_eq!(http(metrics, "GET", "/healthz").0, 200);
    assert_eq!(http(metrics, "GET", "/readyz").0, 200, "ready once serving");
    assert_eq!(http(metrics, "GET", "/").0, 404);
    assert_eq!(http(metrics, "GET", "/metricsx").0, 404);
    assert_eq!(http(metrics, "POST", "/metrics").0, 405);
    assert_eq!(http(metrics, "DELETE", "/healthz").0, 405);

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(["status", "--server", &grpc.to_string(), "--config"])
        .arg(node.directory.path().join("node.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text} {}", String::from_utf8_lossy(&status.stderr));
    assert!(text.contains(&format!("node-1 (turnstile {})", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains(&format!("gRPC address       {grpc}")), "{text}");
    assert!(text.contains(&format!("metrics address    {metrics}")), "{text}");
    let data_dir = std::fs::canonicalize(node.directory.path().join("data/node-x")).unwrap();
    assert!(text.contains(&format!("data directory     {}", data_dir.display())), "{text}");
    assert!(text.contains(" ago)"), "times say how long ago: {text}");
    assert!(!text.contains("since the Unix epoch"), "{text}");

    // SIGTERM: not ready any more, then a clean exit.
    let terminated = std::process::Command::new("kill").args(["-TERM", &node.child.id().to_string()]).status().unwrap();
    assert!(terminated.success());
    let exit = node.wait_exit(Duration::from_secs(30)).expect("the node stops within 30 s of SIGTERM");
    assert!(exit.success(), "{exit}: {}", node.output());
}

/// What a node says at start: the development secret is warned about; a data directory that
/// already has the demo data says nothing was seeded; a port in use names the address (and
/// where it came from) and nothing is created on disk; a bad TOML value is reported once.
#[test]
fn a_node_warns_about_the_development_secret_and_reports_what_it_did_and_could_not_do() {
    let development = turnstile::config::DEVELOPMENT_SECRET;
    let mut node = Node::start(development, "", &["--listen", "127.0.0.1:0", "--data-dir", "data/here", "--demo"]);
    let output = node.wait_for("serving gRPC");
    assert!(output.contains("WARN") && output.contains("development secret"), "{output}");
    assert!(output.contains("demo data seeded"), "{output}");
    assert!(output.contains("data_dir=data/here") && output.contains("data_dir_from=\"--data-dir\""), "{output}");
    let directory = node.kill();

    // The same data directory again: the demo data is there already, and the log says so.
    let mut node =
        Node::start_in(directory, SECRET, "", &["--listen", "127.0.0.1:0", "--data-dir", "data/here", "--demo"]);
    let output = node.wait_for("serving gRPC");
    assert!(!output.contains("development secret"), "another secret is not warned about: {output}");
    assert!(
        output.contains("demo data already in this data directory") && !output.contains("demo data seeded"),
        "{output}"
    );
    drop(node);

    // Ports in use: the gRPC port, then the metrics port; neither creates the data directory.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut node = Node::start(SECRET, "", &["--listen", &address, "--data-dir", "data/fresh"]);
    let exit = node.wait_exit(Duration::from_secs(30)).expect("refused at once");
    let output = node.output();
    assert!(!exit.success());
    assert!(output.contains(&format!("cannot listen on {address} (node.listen or --listen)")), "{output}");
    assert!(!node.directory.path().join("data/fresh").exists(), "nothing created before the bind failed");
    let mut node =
        Node::start(SECRET, "", &["--listen", "127.0.0.1:0", "--metrics-listen", &address, "--data-dir", "data/fresh"]);
    let exit = node.wait_exit(Duration::from_secs(30)).expect("refused at once");
    let output = node.output();
    assert!(!exit.success());
    assert!(output.contains(&format!("cannot serve metrics on {address}")), "{output}");
    assert!(!node.directory.path().join("data/fresh").exists(), "nothing created before the bind failed");

    let mut node = Node::start(SECRET, "[node]\nlisten = 5\n", &[]);
    let exit = node.wait_exit(Duration::from_secs(30)).expect("refused at once");
    let output = node.output();
    assert!(!exit.success());
    assert_eq!(output.matches("expected socket address").count(), 1, "said once: {output}");
    assert!(output.starts_with("error: node.toml: TOML parse error at line"), "{output}");
    assert!(!output.contains("Stack backtrace"), "{output}");
}
