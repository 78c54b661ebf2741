//! A real server on 127.0.0.1:0 and real gRPC clients, shared by the integration tests.
#![allow(dead_code)]

use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;
use turnstile::auth::{Authenticator, Role};
use turnstile::config::Config;
use turnstile::server::Server;
use turnstile_engine::engine::EngineOptions;
use turnstile_engine::Engine;
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::admin_service_client::AdminServiceClient;
use turnstile_proto::v1::booking_service_client::BookingServiceClient;
use turnstile_proto::v1::catalog_service_client::CatalogServiceClient;
use turnstile_proto::v1::queue_service_client::QueueServiceClient;

pub const SECRET: &str = "integration-test-secret-0123456789";
/// The nodes' own secret (`cluster.secret`) where a test plays a cluster.
#[allow(dead_code)]
pub const CLUSTER_SECRET: &str = "integration-test-cluster-secret-0123";

pub struct TestServer {
    pub server: Option<Server>,
    /// The server's data directory, removed when the test ends.
    pub data_dir: tempfile::TempDir,
    pub channel: Channel,
    pub authenticator: Authenticator,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap()).await
    }

    /// A server whose config `edit` adjusts (rate limits, TLS).
    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> Self {
        Self::start_configured(tempfile::tempdir().unwrap(), edit).await
    }

    /// A server on an existing data directory (reopening what an earlier server left there).
    pub async fn start_in(data_dir: tempfile::TempDir) -> Self {
        Self::start_configured(data_dir, |_| {}).await
    }

    async fn start_configured(data_dir: tempfile::TempDir, edit: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::default();
        config.auth.secret = SECRET.into();
        // Tests drive one buyer far faster than a person would; the rate-limit test turns it on.
        config.limits.buyer_requests_per_second = 0;
        // Backups stay in the test's own directory (the default is beside the data directory).
        config.storage.backup_dir = Some(data_dir.path().join("backups"));
        edit(&mut config);
        // A stopped server returns once its database is closed: it opens at the first try.
        let engine = Engine::open(data_dir.path(), EngineOptions::default())
            .await
            .unwrap_or_else(|error| panic!("cannot open {}: {error}", data_dir.path().display()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::start(&config, engine, listener).await.unwrap();
        let channel = Channel::from_shared(format!("http://{}", server.local_addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        Self { server: Some(server), data_dir, channel, authenticator: Authenticator::new(SECRET.as_bytes()) }
    }

    /// Stops this server, lets `change` alter its data directory, and starts a new one on it.
    pub async fn restart_with(mut self, change: impl FnOnce(&std::path::Path)) -> Self {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
        let TestServer { data_dir, channel, .. } = self;
        drop(channel);
        change(data_dir.path());
        Self::start_in(data_dir).await
    }

    pub fn token(&self, user: &str) -> String {
        self.authenticator.mint(user, Role::User, 3_600)
    }

    pub fn admin_token(&self) -> String {
        self.authenticator.mint("admin", Role::Admin, 3_600)
    }

    pub fn catalog(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::new(self.channel.clone())
    }

    pub fn booking(&self) -> BookingServiceClient<Channel> {
        BookingServiceClient::new(self.channel.clone())
    }

    pub fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    pub fn queue(&self) -> QueueServiceClient<Channel> {
        QueueServiceClient::new(self.channel.clone())
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.unwrap();
        }
    }
}

/// A request carrying `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

pub fn timestamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// Section "S" of `rows` rows by `seats_per_row` seats, plus a general-admission "GA" section.
pub fn venue_request(rows: usize, seats_per_row: usize, general_admission: u32) -> pb::CreateVenueRequest {
    let mut sections = vec![pb::Section {
        section_id: "S".into(),
        name: "Stalls".into(),
        rows: (0..rows)
            .map(|row| pb::Row {
                label: format!("R{row}"),
                seat_labels: (1..=seats_per_row).map(|seat| seat.to_string()).collect(),
            })
            .collect(),
        general_admission_capacity: 0,
    }];
    if general_admission > 0 {
        sections.push(pb::Section {
            section_id: "GA".into(),
            name: "Standing".into(),
            rows: vec![],
            general_admission_capacity: general_admission,
        });
    }
    pb::CreateVenueRequest { name: "Test Hall".into(), city: "Porto".into(), address: "".into(), sections }
}

pub fn event_request(venue: &pb::Venue, buyer_seat_limit: u32) -> pb::CreateEventRequest {
    let mut levels = vec![pb::PriceLevel {
        price_level_id: "STD".into(),
        name: "Standard".into(),
        price: Some(pb::Money { amount_minor: 2_500, currency: "EUR".into() }),
        section_ids: vec!["S".into()],
    }];
    if venue.sections.iter().any(|section| section.section_id == "GA") {
        levels.push(pb::PriceLevel {
            price_level_id: "GA".into(),
            name: "Standing".into(),
            price: Some(pb::Money { amount_minor: 1_500, currency: "EUR".into() }),
            section_ids: vec!["GA".into()],
        });
    }
    pb::CreateEventRequest {
        name: "Test Night".into(),
        description: "A test".into(),
        category: "concert".into(),
        venue_id: venue.venue_id.clone(),
        performer_ids: vec![],
        starts_at: Some(timestamp(2_000_000_000)),
        ends_at: Some(timestamp(2_000_010_000)),
        price_levels: levels,
        hold_ttl_seconds: 0,
        buyer_seat_limit,
    }
}

/// Creates a venue and an event through the admin API; returns the event id.
pub async fn create_event(
    server: &TestServer,
    rows: usize,
    seats_per_row: usize,
    general_admission: u32,
    buyer_seat_limit: u32,
) -> String {
    let admin = server.admin_token();
    let venue = server
        .admin()
        .create_venue(authed(&admin, venue_request(rows, seats_per_row, general_admission)))
        .await
        .unwrap()
        .into_inner()
        .venue
        .unwrap();
    server
        .admin()
        .create_event(authed(&admin, event_request(&venue, buyer_seat_limit)))
        .await
        .unwrap()
        .into_inner()
        .event
        .unwrap()
        .event_id
}

pub fn seats(ids: &[String]) -> Option<pb::hold_seats_request::Selection> {
    Some(pb::hold_seats_request::Selection::Seats(pb::SeatList { seat_ids: ids.to_vec() }))
}

pub fn best(section_id: &str, quantity: i32) -> Option<pb::hold_seats_request::Selection> {
    Some(pb::hold_seats_request::Selection::BestAvailable(pb::BestAvailable {
        section_id: section_id.into(),
        quantity,
    }))
}

/// A listening socket on a free port of 127.0.0.1, held by the test until it hands it to a
/// server: no other process can take the port in between.
pub fn local_listener() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free local port")
}

/// Makes `command` (a `turnstile serve`) serve on `listener`: a duplicate of it becomes the
/// child's descriptor 3, and LISTEN_FDS=1 says so (socket activation, as systemd does it). The
/// server listens on the port from its first instant; nothing binds and releases it before.
pub fn hand_listener(command: &mut std::process::Command, listener: &std::net::TcpListener) {
    use command_fds::{CommandFdExt, FdMapping};
    let socket: std::os::fd::OwnedFd = listener.try_clone().expect("the listener duplicates").into();
    command.fd_mappings(vec![FdMapping { parent_fd: socket, child_fd: 3 }]).expect("descriptor 3 is free");
    command.env("LISTEN_FDS", "1").env_remove("LISTEN_PID").env_remove("LISTEN_FDNAMES");
}

/// A `turnstile serve` process: the harness of every test that runs its servers as processes
/// (the crash campaigns, the cluster, the command-line client). It is handed its listening
/// socket, appends its output to a log file, and is killed and reaped when dropped, so a failing
/// test leaves no server behind. (A test process killed by a signal drops nothing: its server
/// then outlives it.)
pub struct ServerProcess {
    pub child: std::process::Child,
    pub address: std::net::SocketAddr,
    pub log: std::path::PathBuf,
}

impl ServerProcess {
    /// Spawns `command` (`turnstile serve` with its arguments, no listen address) serving on
    /// `listener`, its output appended to `log`.
    pub fn spawn(mut command: std::process::Command, listener: &std::net::TcpListener, log: &std::path::Path) -> Self {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("the log opens");
        command
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().expect("the log handle clones"))
            .stderr(file);
        hand_listener(&mut command, listener);
        let child = command.spawn().expect("the turnstile binary starts");
        Self { child, address: listener.local_addr().expect("a bound listener"), log: log.to_path_buf() }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` ("-STOP", "-CONT", "-TERM") to the process.
    pub fn signal(&self, signal: &str) {
        let status =
            std::process::Command::new("kill").args([signal, &self.pid().to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// SIGKILL (a stopped process too), then reap.
    pub fn kill(&mut self) -> std::process::ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("the killed server can be reaped")
    }

    /// The last `lines` lines of the log (every run that wrote to it).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until the server answers health checks as serving the booking service, at most
    /// `within`; the reason if it does not (it exited, or did not answer in time).
    pub async fn wait_serving(&mut self, within: Duration) -> Result<(), String> {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::health_client::HealthClient;
        let deadline = std::time::Instant::now() + within;
        let endpoint = format!("http://{}", self.address);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|error| format!("cannot poll the child: {error}"))? {
                return Err(format!("the server exited ({status}) before serving"));
            }
            let check = async {
                let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .ok()?
                    .connect_timeout(Duration::from_millis(500))
                    .connect()
                    .await
                    .ok()?;
                let request = tonic_health::pb::HealthCheckRequest { service: "turnstile.v1.BookingService".into() };
                HealthClient::new(channel).check(request).await.ok()
            };
            let serving = tokio::time::timeout(Duration::from_secs(1), check)
                .await
                .ok()
                .flatten()
                .is_some_and(|reply| reply.get_ref().status == ServingStatus::Serving as i32);
            if serving {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!("not serving within {within:?}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
