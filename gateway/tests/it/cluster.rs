//! A cluster of three real `turnstile serve --node ID` processes on 127.0.0.1 ports (issue 8).
//!
//! Buyers book one hot event through all three nodes at random (a node that does not lead the
//! event's shard forwards the call) while the shard's leader is killed with SIGKILL and restarted,
//! several times, then paused with SIGSTOP past the election timeout and resumed. Afterwards:
//! every acknowledged booking is there with its seats and status, no seat is in two confirmed
//! bookings, the seat map agrees with the bookings, and no booking exists that no buyer attempted.
//! Each failover time (kill or pause until the next acknowledged booking) is printed.
//!
//! A second run takes snapshots every few entries: a replica killed and wiped rejoins by
//! installing a snapshot and ends with every acknowledged booking, and a leader killed right after
//! it built a snapshot (while it purges its log behind it) loses nothing.
//!
//! TURNSTILE_CLUSTER_KILLS sets the number of kill cycles (default 3).

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{authed, event_request, venue_request, ServerProcess};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use turnstile::auth::{Authenticator, Role};
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::admin_service_client::AdminServiceClient;
use turnstile_proto::v1::booking_service_client::BookingServiceClient;
use turnstile_proto::v1::catalog_service_client::CatalogServiceClient;

const SECRET: &str = "cluster-test-secret-0123456789";
/// What the nodes prove to each other with (`cluster.secret`), apart from the buyers' secret.
const CLUSTER_SECRET: &str = "cluster-nodes-secret-9876543210";
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const SHARDS: u32 = 8;
const ROWS: usize = 40;
const SEATS_PER_ROW: usize = 25;
const BUYERS: usize = 12;
/// A buyer cancels its oldest booking once it has this many, so the event never sells out.
const BOOKINGS_PER_BUYER_KEPT: usize = 6;
const KILLS_DEFAULT: usize = 3;
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Tries of a hold or a confirmation whose outcome is unknown, each through a node at random.
const CALL_ATTEMPTS: usize = 4;
const HEALTHY_WAIT_MAX: Duration = Duration::from_secs(30);
/// How long the storm runs before a kill, and after a restart before the next one.
const STORM_BEFORE_KILL: Duration = Duration::from_millis(1_500);
/// A failover must bring acknowledged bookings back within this.
const FAILOVER_MAX: Duration = Duration::from_secs(20);
/// The pause outlasts the election timeout (600 to 1,200 ms) several times.
const PAUSE: Duration = Duration::from_secs(4);
const TOKEN_TTL_SECONDS: u64 = 3_600;

/// An address where nothing listens (it did a moment ago). Only where a test needs a dead
/// address, or hands addresses to a script that binds them itself.
fn unused_local_address() -> SocketAddr {
    common::local_listener().local_addr().unwrap()
}

fn channel(address: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(CALL_TIMEOUT)
        .connect_lazy()
}

struct Node {
    name: &'static str,
    address: SocketAddr,
    /// The node's listening socket until its first start hands it over (then the process has
    /// it, and a restart binds the same address again).
    listener: Option<std::net::TcpListener>,
    data_dir: PathBuf,
    log: PathBuf,
    /// The running process, if any.
    process: Option<ServerProcess>,
}

impl Node {
    /// A node not started yet, its data and log in `directory`, on a port held for it.
    fn new(directory: &Path, name: &'static str) -> Self {
        let mut node = Node {
            name,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            listener: None,
            data_dir: directory.join(name),
            log: directory.join(format!("{name}.log")),
            process: None,
        };
        node.move_to_new_port();
        node
    }

    /// Gives the (stopped) node another port, held for it until it starts.
    fn move_to_new_port(&mut self) {
        let listener = common::local_listener();
        self.address = listener.local_addr().unwrap();
        self.listener = Some(listener);
    }

    /// The listening socket to hand to the node's process: the one held since the node got its
    /// port, or (on a restart) its address bound again.
    fn listener(&mut self) -> std::net::TcpListener {
        self.listener.take().unwrap_or_else(|| {
            std::net::TcpListener::bind(self.address)
                .unwrap_or_else(|error| panic!("{}'s address {} is taken: {error}", self.name, self.address))
        })
    }

    fn start(&mut self, config: &Path) {
        self.start_with(config, &[]);
    }

    /// Starts the node to join a running cluster (`serve --join`).
    fn start_joining(&mut self, config: &Path) {
        self.start_with(config, &["--join"]);
    }

    fn start_with(&mut self, config: &Path, extra: &[&str]) {
        let listener = self.listener();
        let mut command = Command::new(env!("CARGO_BIN_EXE_turnstile"));
        command
            .args(["serve", "--config"])
            .arg(config)
            .args(["--node", self.name, "--data-dir"])
            .arg(&self.data_dir)
            .args(extra)
            .env("RUST_LOG", "info,openraft=warn,turnstile::cluster=debug");
        self.process = Some(ServerProcess::spawn(command, &listener, &self.log));
    }

    /// SIGKILL; the node's address is free again until it restarts.
    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    fn signal(&self, signal: &str) {
        self.process.as_ref().expect("running").signal(signal);
    }

    /// Lines of this node's log (all its runs) that contain `text`.
    fn log_lines_with(&self, text: &str) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().filter(|line| line.contains(text)).count()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

async fn wait_healthy(node: &mut Node) {
    let process = node.process.as_mut().expect("started");
    if let Err(reason) = process.wait_serving(HEALTHY_WAIT_MAX).await {
        panic!("{} not healthy ({reason}); log:\n{}", node.name, node.log_tail());
    }
}

/// What the buyers were told and what they only asked.
#[derive(Default)]
struct Ledger {
    /// Payment references of every ConfirmHold sent (acknowledged or not).
    attempted_payments: HashSet<String>,
    /// booking id -> (buyer, seats sorted, cancelled): acknowledged confirmations; `cancelled`
    /// is Some(true) once a cancellation was acknowledged, None while one is unanswered.
    acknowledged: BTreeMap<String, (String, Vec<String>, Option<bool>)>,
    /// (hold sent, booking acknowledged) of every acknowledged booking, to time failovers.
    acknowledged_at: Vec<(Instant, Instant)>,
    calls: u64,
    unanswered: u64,
}

fn outcome_known(status: &tonic::Status) -> bool {
    // A business refusal: nothing happened. Anything else may or may not have happened.
    matches!(
        status.code(),
        Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::NotFound
            | Code::InvalidArgument
            | Code::ResourceExhausted
    )
}

/// The nodes a storm's buyers call, replaceable while it runs (nodes join and leave).
type Clients = Arc<std::sync::RwLock<Vec<BookingServiceClient<Channel>>>>;

/// A client of one of `clients`' nodes, at random.
fn any_client(clients: &Clients, rng: &mut StdRng) -> BookingServiceClient<Channel> {
    let clients = clients.read().unwrap();
    clients[rng.random_range(0..clients.len())].clone()
}

async fn buyer_storm(
    buyer: String,
    token: String,
    event_id: String,
    clients: Clients,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut number = 0u64;
    let mut mine: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        number += 1;
        let mut client = any_client(&clients, &mut rng);
        if mine.len() >= BOOKINGS_PER_BUYER_KEPT {
            let booking_id = mine.remove(0);
            let request = pb::CancelBookingRequest { booking_id: booking_id.clone() };
            ledger.lock().unwrap().acknowledged.get_mut(&booking_id).expect("mine").2 = None;
            match client.cancel_booking(authed(&token, request)).await {
                Ok(_) => ledger.lock().unwrap().acknowledged.get_mut(&booking_id).expect("mine").2 = Some(true),
                Err(status) if outcome_known(&status) => {
                    ledger.lock().unwrap().acknowledged.get_mut(&booking_id).expect("mine").2 = Some(false)
                }
                Err(_) => ledger.lock().unwrap().unanswered += 1,
            }
            continue;
        }
        let quantity = rng.random_range(1..=2usize);
        let row = rng.random_range(0..ROWS);
        let first = rng.random_range(1..=SEATS_PER_ROW - quantity + 1);
        let seat_ids: Vec<String> = (first..first + quantity).map(|seat| format!("S:R{row}:{seat}")).collect();
        let hold = pb::HoldSeatsRequest {
            event_id: event_id.clone(),
            selection: Some(pb::hold_seats_request::Selection::Seats(pb::SeatList { seat_ids: seat_ids.clone() })),
            idempotency_key: format!("hold-{buyer}-{number}"),
            ..Default::default()
        };
        ledger.lock().unwrap().calls += 1;
        let hold_sent = Instant::now();
        // A call whose outcome is unknown (a node down, a failover) is sent again, with the same
        // idempotency key, through another node at random, as a careful client would.
        let mut hold_id = None;
        for _ in 0..CALL_ATTEMPTS {
            match client.hold_seats(authed(&token, hold.clone())).await {
                Ok(reply) => {
                    hold_id = Some(reply.into_inner().hold.expect("a hold").hold_id);
                    break;
                }
                Err(status) if outcome_known(&status) => break,
                Err(_) => client = after_unknown_outcome(&ledger, &mut rng, &clients).await,
            }
        }
        let Some(hold_id) = hold_id else { continue };
        let payment_reference = format!("pay-{buyer}-{number}");
        ledger.lock().unwrap().attempted_payments.insert(payment_reference.clone());
        let confirm =
            pb::ConfirmHoldRequest { hold_id, payment_reference, idempotency_key: format!("confirm-{buyer}-{number}") };
        // Any node: the confirmation may travel another way than its hold did.
        let mut client = any_client(&clients, &mut rng);
        for _ in 0..CALL_ATTEMPTS {
            match client.confirm_hold(authed(&token, confirm.clone())).await {
                Ok(reply) => {
                    let booking = reply.into_inner().booking.expect("a booking");
                    let mut seats: Vec<String> = booking.tickets.iter().map(|ticket| ticket.seat_id.clone()).collect();
                    seats.sort();
                    let mut ledger = ledger.lock().unwrap();
                    ledger.acknowledged.insert(booking.booking_id.clone(), (buyer.clone(), seats, Some(false)));
                    ledger.acknowledged_at.push((hold_sent, Instant::now()));
                    mine.push(booking.booking_id);
                    break;
                }
                Err(status) if outcome_known(&status) => break,
                Err(_) => client = after_unknown_outcome(&ledger, &mut rng, &clients).await,
            }
        }
    }
}

/// A call's outcome is unknown: count it, wait a moment, and pick the node for the next try.
async fn after_unknown_outcome(
    ledger: &Mutex<Ledger>,
    rng: &mut StdRng,
    clients: &Clients,
) -> BookingServiceClient<Channel> {
    ledger.lock().unwrap().unanswered += 1;
    tokio::time::sleep(Duration::from_millis(20)).await;
    any_client(clients, rng)
}

/// The node running the event's actor: the leader of its shard (followers run no actors).
async fn leader_of_event(nodes: &[Node], admin: &str, skip: Option<usize>) -> Option<usize> {
    for (position, node) in nodes.iter().enumerate() {
        if Some(position) == skip || node.process.is_none() {
            continue;
        }
        let mut client = AdminServiceClient::new(channel(node.address));
        if let Ok(reply) = client.get_node_status(authed(admin, pb::GetNodeStatusRequest {})).await {
            if reply.get_ref().events_active > 0 {
                return Some(position);
            }
        }
    }
    None
}

/// Time from `since` until the first acknowledged booking whose hold was sent after it (replies
/// already on their way when the leader died do not count).
async fn failover_time(ledger: &Arc<Mutex<Ledger>>, since: Instant) -> Duration {
    let started = Instant::now();
    loop {
        let first = ledger
            .lock()
            .unwrap()
            .acknowledged_at
            .iter()
            .filter(|(sent, _)| *sent > since)
            .map(|(_, acknowledged)| *acknowledged)
            .min();
        if let Some(at) = first {
            return at - since;
        }
        assert!(started.elapsed() < FAILOVER_MAX, "no acknowledged booking within {FAILOVER_MAX:?} of the failure");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A cluster of `names`, started and healthy: its directory (kept alive), nodes and config path.
async fn start_cluster(names: &[&'static str]) -> (tempfile::TempDir, Vec<Node>, PathBuf) {
    start_cluster_with(names, "").await
}

/// The same, with `extra` at the end of the config's `[cluster]` table (it may open more tables).
async fn start_cluster_with(names: &[&'static str], extra: &str) -> (tempfile::TempDir, Vec<Node>, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = names.iter().map(|name| Node::new(directory.path(), name)).collect();
    let config_path = write_config(directory.path(), &nodes, extra);
    for node in &mut nodes {
        node.start(&config_path);
    }
    for node in &mut nodes {
        wait_healthy(node).await;
    }
    (directory, nodes, config_path)
}

/// Writes the cluster's config (every node at its address, `extra` at the end of `[cluster]`) in
/// `directory`; returns its path.
fn write_config(directory: &Path, nodes: &[Node], extra: &str) -> PathBuf {
    let mut config = format!(
        "[auth]\nsecret = \"{SECRET}\"\n[limits]\nbuyer_requests_per_second = 0\n[cluster]\nsecret = \"{CLUSTER_SECRET}\"\nshards = {SHARDS}\nreplicas = 3\n{extra}"
    );
    for node in nodes {
        config.push_str(&format!("[[nodes]]\nid = \"{}\"\naddress = \"{}\"\n", node.name, node.address));
    }
    let config_path = directory.join("cluster.toml");
    std::fs::write(&config_path, config).unwrap();
    config_path
}

/// The hot event of a storm: a venue and an event created through one node, readable through all.
async fn create_hot_event(nodes: &[Node], admin: &str) -> String {
    let mut admin_client = AdminServiceClient::new(channel(nodes[1].address));
    let venue = venue_request(ROWS, SEATS_PER_ROW, 0);
    let venue = admin_client.create_venue(authed(admin, venue)).await.unwrap().into_inner().venue.unwrap();
    let event = event_request(&venue, 1_000);
    let event_id = admin_client.create_event(authed(admin, event)).await.unwrap().into_inner().event.unwrap().event_id;
    for node in nodes {
        let mut catalog = CatalogServiceClient::new(channel(node.address));
        let started = Instant::now();
        loop {
            let request =
                pb::GetEventRequest { event_id: event_id.clone(), include_seats: false, ..Default::default() };
            if catalog.get_event(request).await.is_ok() {
                break;
            }
            assert!(started.elapsed() < HEALTHY_WAIT_MAX, "event not readable through {}", node.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    event_id
}

/// A running storm of `BUYERS` buyers on one event through every node.
struct Storm {
    ledger: Arc<Mutex<Ledger>>,
    clients: Clients,
    stop: Arc<AtomicBool>,
    buyers: Vec<tokio::task::JoinHandle<()>>,
    tokens: HashMap<String, String>,
}

impl Storm {
    fn start(nodes: &[Node], authenticator: &Authenticator, event_id: &str) -> Self {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Clients = Arc::new(std::sync::RwLock::new(
            nodes.iter().map(|node| BookingServiceClient::new(channel(node.address))).collect(),
        ));
        let mut buyers = Vec::new();
        let mut tokens = HashMap::new();
        for number in 0..BUYERS {
            let buyer = format!("buyer-{number}");
            let token = authenticator.mint(&buyer, Role::User, TOKEN_TTL_SECONDS);
            tokens.insert(buyer.clone(), token.clone());
            buyers.push(tokio::spawn(buyer_storm(
                buyer,
                token,
                event_id.to_string(),
                clients.clone(),
                ledger.clone(),
                stop.clone(),
                0x5eed_0000 + number as u64,
            )));
        }
        Self { ledger, clients, stop, buyers, tokens }
    }

    /// From now on the buyers call these nodes.
    fn route_through<'a>(&self, nodes: impl Iterator<Item = &'a Node>) {
        *self.clients.write().unwrap() = nodes.map(|node| BookingServiceClient::new(channel(node.address))).collect();
    }

    async fn stop(self) -> (Ledger, HashMap<String, String>) {
        self.stop.store(true, Ordering::Relaxed);
        for buyer in self.buyers {
            tokio::time::timeout(Duration::from_secs(30), buyer)
                .await
                .expect("buyers stop")
                .expect("no buyer panicked");
        }
        let ledger = std::mem::take(&mut *self.ledger.lock().unwrap());
        (ledger, self.tokens)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_survive_leader_kills_and_a_pause() {
    let kills: usize =
        std::env::var("TURNSTILE_CLUSTER_KILLS").ok().and_then(|value| value.parse().ok()).unwrap_or(KILLS_DEFAULT);
    let (_directory, mut nodes, config_path) = start_cluster(&NODES).await;

    let authenticator = Authenticator::new(SECRET.as_bytes());
    let admin = authenticator.mint("cluster-admin", Role::Admin, TOKEN_TTL_SECONDS);
    // The catalog is replicated to every node: create it through one, read it through all.
    let event_id = create_hot_event(&nodes, &admin).await;
    let storm = Storm::start(&nodes, &authenticator, &event_id);
    let ledger = storm.ledger.clone();

    let mut failovers = Vec::new();
    for cycle in 0..kills {
        tokio::time::sleep(STORM_BEFORE_KILL).await;
        let leader = leader_of_event(&nodes, &admin, None).await.expect("some node runs the hot event");
        let killed_at = Instant::now();
        nodes[leader].kill();
        let failover = failover_time(&ledger, killed_at).await;
        println!(
            "kill {}: SIGKILL of {} (shard leader); next acknowledged booking after {failover:?}",
            cycle + 1,
            nodes[leader].name
        );
        failovers.push(failover);
        nodes[leader].start(&config_path);
        wait_healthy(&mut nodes[leader]).await;
    }

    tokio::time::sleep(STORM_BEFORE_KILL).await;
    let leader = leader_of_event(&nodes, &admin, None).await.expect("some node runs the hot event");
    nodes[leader].signal("-STOP");
    let paused_at = Instant::now();
    let failover = failover_time(&ledger, paused_at).await;
    println!("pause: SIGSTOP of {} (shard leader); next acknowledged booking after {failover:?}", nodes[leader].name);
    tokio::time::sleep(PAUSE.saturating_sub(paused_at.elapsed())).await;
    nodes[leader].signal("-CONT");
    tokio::time::sleep(STORM_BEFORE_KILL).await;

    let (ledger, tokens) = storm.stop().await;
    wait_for_one_runner(&nodes, &admin).await;
    println!(
        "{} calls, {} acknowledged bookings, {} unanswered calls; failovers {:?}",
        ledger.calls,
        ledger.acknowledged.len(),
        ledger.unanswered,
        failovers
    );
    check_bookings(&nodes, &ledger, &tokens, &event_id).await;
}

/// A resumed or restarted node hears of the new term within a bound: then at most one node runs
/// the event (one that stepped down stopped its actor).
async fn wait_for_one_runner(nodes: &[Node], admin: &str) {
    let settle_started = Instant::now();
    loop {
        let mut running = Vec::new();
        for node in nodes {
            let mut client = AdminServiceClient::new(channel(node.address));
            let reply = client.get_node_status(authed(admin, pb::GetNodeStatusRequest {})).await.unwrap();
            if reply.get_ref().events_active > 0 {
                running.push(node.name);
            }
        }
        if running.len() <= 1 {
            break;
        }
        assert!(
            settle_started.elapsed() < Duration::from_secs(10),
            "nodes running the event after the storm: {running:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every buyer's bookings as `node` lists them (from its own store: each of three nodes holds a
/// replica of every shard).
async fn listed_bookings(node: &Node, tokens: &HashMap<String, String>) -> Vec<pb::Booking> {
    let mut client = BookingServiceClient::new(channel(node.address));
    let mut bookings = Vec::new();
    for token in tokens.values() {
        let mut page_token = String::new();
        for _ in 0..1_000 {
            let request = pb::ListBookingsRequest { page_size: 100, page_token: page_token.clone() };
            let reply = client.list_bookings(authed(token, request)).await.unwrap().into_inner();
            bookings.extend(reply.bookings);
            if reply.next_page_token.is_empty() {
                break;
            }
            page_token = reply.next_page_token;
        }
    }
    bookings
}

/// After a storm: every acknowledged booking is there with its seats and status and is listed
/// by every node, no seat is in two confirmed bookings, nothing nobody attempted exists, and the
/// seat map agrees with the bookings.
async fn check_bookings(nodes: &[Node], ledger: &Ledger, tokens: &HashMap<String, String>, event_id: &str) {
    assert!(ledger.acknowledged.len() >= 20, "the storm booked too little to prove anything");
    let mut violations = Vec::new();
    let mut server_bookings: BTreeMap<String, pb::Booking> = BTreeMap::new();
    for node in nodes {
        // A node that just caught up may still be applying: give it a bounded while.
        let started = Instant::now();
        let listed = loop {
            let listed = listed_bookings(node, tokens).await;
            let ids: HashSet<&String> = listed.iter().map(|booking| &booking.booking_id).collect();
            if ledger.acknowledged.keys().all(|id| ids.contains(id)) || started.elapsed() > Duration::from_secs(15) {
                break listed;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let ids: HashSet<String> = listed.iter().map(|booking| booking.booking_id.clone()).collect();
        for (booking_id, (buyer, _, _)) in &ledger.acknowledged {
            if !ids.contains(booking_id) {
                violations.push(format!("{} does not list acknowledged booking {booking_id} of {buyer}", node.name));
            }
        }
        for booking in listed {
            if !tokens.contains_key(&booking.buyer_id) {
                violations.push(format!("{} lists {} under an unknown buyer", node.name, booking.booking_id));
            }
            if let Some(known) = server_bookings.get(&booking.booking_id) {
                if known.status != booking.status && node.name == nodes[nodes.len() - 1].name {
                    violations.push(format!("{} differs between nodes", booking.booking_id));
                }
            }
            server_bookings.entry(booking.booking_id.clone()).or_insert(booking);
        }
    }
    let confirmed = pb::BookingStatus::Confirmed as i32;
    let cancelled = pb::BookingStatus::Cancelled as i32;
    // Read each acknowledged booking back through the leader (forwarded from node 0 if need be).
    let mut client = BookingServiceClient::new(channel(nodes[0].address));
    for (booking_id, (buyer, seats, was_cancelled)) in &ledger.acknowledged {
        let request = pb::GetBookingRequest { booking_id: booking_id.clone() };
        let booking = match client.get_booking(authed(&tokens[buyer], request)).await {
            Ok(reply) => reply.into_inner().booking.unwrap(),
            Err(status) => {
                violations.push(format!("acknowledged booking {booking_id} of {buyer} is gone: {status:?}"));
                continue;
            }
        };
        let mut found: Vec<String> = booking.tickets.iter().map(|ticket| ticket.seat_id.clone()).collect();
        found.sort();
        if &found != seats {
            violations.push(format!("booking {booking_id} has seats {found:?}, acknowledged with {seats:?}"));
        }
        match was_cancelled {
            Some(false) if booking.status != confirmed => {
                violations.push(format!("acknowledged booking {booking_id} is not confirmed ({})", booking.status))
            }
            Some(true) if booking.status != cancelled => {
                violations.push(format!("acknowledged cancellation of {booking_id} is lost ({})", booking.status))
            }
            _ => {}
        }
    }
    // No seat in two confirmed bookings; nothing nobody asked for; the seat map agrees.
    let mut seat_owner: HashMap<String, String> = HashMap::new();
    for booking in server_bookings.values() {
        if !ledger.attempted_payments.contains(&booking.payment_reference) {
            violations
                .push(format!("booking {} was never attempted ({})", booking.booking_id, booking.payment_reference));
        }
        if booking.status == confirmed {
            for ticket in &booking.tickets {
                if let Some(other) = seat_owner.insert(ticket.seat_id.clone(), booking.booking_id.clone()) {
                    violations
                        .push(format!("seat {} is in bookings {other} and {}", ticket.seat_id, booking.booking_id));
                }
            }
        }
    }
    let mut catalog = CatalogServiceClient::new(channel(nodes[0].address));
    let view = catalog
        .get_event(pb::GetEventRequest { event_id: event_id.to_string(), include_seats: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let booked = pb::SeatStatus::Booked as i32;
    let booked_seats: HashSet<String> =
        view.seats.iter().filter(|seat| seat.status == booked).map(|seat| seat.seat_id.clone()).collect();
    let owned: HashSet<String> = seat_owner.keys().cloned().collect();
    if booked_seats != owned {
        violations.push(format!(
            "seat map: {} seats BOOKED, {} in confirmed bookings; differing: {:?}",
            booked_seats.len(),
            owned.len(),
            booked_seats.symmetric_difference(&owned).take(10).collect::<Vec<_>>()
        ));
    }
    if !violations.is_empty() {
        for node in nodes {
            eprintln!("--- {} log tail ---\n{}", node.name, node.log_tail());
        }
        panic!(
            "{} violations:\n{}",
            violations.len(),
            violations.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

/// Waits (bounded) until `node`'s log has more than `seen` lines with `text`.
async fn wait_for_log(node: &Node, text: &str, seen: usize, within: Duration) {
    let started = Instant::now();
    while node.log_lines_with(text) <= seen {
        assert!(
            started.elapsed() < within,
            "{} never logged '{text}' within {within:?}; log:\n{}",
            node.name,
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Snapshots every 20 entries (checkpoints every 100 commands): the log is purged behind them
/// all the time. A follower is killed and its data directory deleted while the storm goes on; it
/// comes back empty, installs a snapshot of the shard (its log says so) and ends up listing every
/// acknowledged booking from its own store. Then the leader is killed right after it built a
/// snapshot (when it purges its log behind it) and restarted: nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_replica_rejoins_by_snapshot_and_a_leader_killed_at_a_snapshot_loses_nothing() {
    let snapshots = "snapshot_interval_entries = 20\n[storage]\ncheckpoint_commands = 100\n";
    let (_directory, mut nodes, config_path) = start_cluster_with(&NODES, snapshots).await;
    let authenticator = Authenticator::new(SECRET.as_bytes());
    let admin = authenticator.mint("cluster-admin", Role::Admin, TOKEN_TTL_SECONDS);
    let event_id = create_hot_event(&nodes, &admin).await;
    let storm = Storm::start(&nodes, &authenticator, &event_id);
    let ledger = storm.ledger.clone();
    tokio::time::sleep(STORM_BEFORE_KILL).await;

    let leader = leader_of_event(&nodes, &admin, None).await.expect("some node runs the hot event");
    let wiped = (leader + 1) % nodes.len();
    nodes[wiped].kill();
    std::fs::remove_dir_all(&nodes[wiped].data_dir).unwrap();
    // The others go on, snapshot and purge their logs past anything the wiped node had.
    tokio::time::sleep(STORM_BEFORE_KILL * 2).await;
    nodes[wiped].start(&config_path);
    wait_healthy(&mut nodes[wiped]).await;
    wait_for_log(&nodes[wiped], "installed a snapshot", 0, Duration::from_secs(30)).await;
    println!("{} was wiped and installed a snapshot", nodes[wiped].name);
    tokio::time::sleep(STORM_BEFORE_KILL).await;

    let leader = leader_of_event(&nodes, &admin, None).await.expect("some node runs the hot event");
    let built = nodes[leader].log_lines_with("built a snapshot");
    wait_for_log(&nodes[leader], "built a snapshot", built, Duration::from_secs(20)).await;
    let killed_at = Instant::now();
    nodes[leader].kill();
    let failover = failover_time(&ledger, killed_at).await;
    println!("SIGKILL of {} right after a snapshot; next acknowledged booking after {failover:?}", nodes[leader].name);
    nodes[leader].start(&config_path);
    wait_healthy(&mut nodes[leader]).await;
    tokio::time::sleep(STORM_BEFORE_KILL).await;

    let (ledger, tokens) = storm.stop().await;
    wait_for_one_runner(&nodes, &admin).await;
    println!(
        "{} calls, {} acknowledged bookings, {} unanswered calls",
        ledger.calls,
        ledger.acknowledged.len(),
        ledger.unanswered
    );
    check_bookings(&nodes, &ledger, &tokens, &event_id).await;
}

/// Four nodes, three replicas per shard: every node misses some shards, yet any node answers for
/// any event (forwarding to the leader, even of a shard it does not replicate) and lists every
/// booking of a buyer (gathered from all nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_nodes_answer_for_shards_they_do_not_hold() {
    let (_directory, nodes, _) = start_cluster(&["node-a", "node-b", "node-c", "node-d"]).await;
    let authenticator = Authenticator::new(SECRET.as_bytes());
    let admin = authenticator.mint("cluster-admin", Role::Admin, TOKEN_TTL_SECONDS);
    let buyer = authenticator.mint("buyer-x", Role::User, TOKEN_TTL_SECONDS);
    let mut admin_client = AdminServiceClient::new(channel(nodes[3].address));
    let venue = venue_request(1, 10, 0);
    let venue = admin_client.create_venue(authed(&admin, venue)).await.unwrap().into_inner().venue.unwrap();
    // Enough events that, with 8 shards over 4 nodes, every node misses the shard of some.
    let mut booked = HashSet::new();
    for number in 0..12 {
        let event = event_request(&venue, 10);
        let event_id =
            admin_client.create_event(authed(&admin, event)).await.unwrap().into_inner().event.unwrap().event_id;
        // Through each node in turn: most calls land on a node that is not the shard's leader.
        let node = &nodes[number as usize % nodes.len()];
        let mut client = BookingServiceClient::new(channel(node.address));
        let started = Instant::now();
        let hold = loop {
            let request = pb::HoldSeatsRequest {
                event_id: event_id.clone(),
                selection: Some(pb::hold_seats_request::Selection::Seats(pb::SeatList {
                    seat_ids: vec!["S:R0:1".into()],
                })),
                idempotency_key: format!("hold-{number}"),
                ..Default::default()
            };
            match client.hold_seats(authed(&buyer, request)).await {
                Ok(reply) => break reply.into_inner().hold.unwrap(),
                // The event's record may not have reached the shard's leader yet.
                Err(status) if started.elapsed() < HEALTHY_WAIT_MAX => {
                    assert!(matches!(status.code(), Code::NotFound | Code::Unavailable), "{status:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => panic!("hold on {event_id} through {}: {status:?}", node.name),
            }
        };
        let confirm = pb::ConfirmHoldRequest {
            hold_id: hold.hold_id,
            payment_reference: format!("pay-{number}"),
            idempotency_key: format!("confirm-{number}"),
        };
        let booking = client.confirm_hold(authed(&buyer, confirm)).await.unwrap().into_inner().booking.unwrap();
        booked.insert(booking.booking_id);
    }
    for node in &nodes {
        let mut client = BookingServiceClient::new(channel(node.address));
        let mut listed = HashSet::new();
        let mut page_token = String::new();
        for _ in 0..100 {
            let request = pb::ListBookingsRequest { page_size: 5, page_token: page_token.clone() };
            let reply = client.list_bookings(authed(&buyer, request)).await.unwrap().into_inner();
            for booking in reply.bookings {
                assert!(
                    listed.insert(booking.booking_id.clone()),
                    "{} listed twice by {}",
                    booking.booking_id,
                    node.name
                );
            }
            if reply.next_page_token.is_empty() {
                break;
            }
            page_token = reply.next_page_token;
        }
        assert_eq!(listed, booked, "{} lists every booking of the buyer", node.name);
    }
}

/// The three-node example of docs/examples/three-nodes, as shipped but on free ports: its script
/// starts three nodes that form a cluster (a catalog write through one node is read through
/// another), `turnstile status` shows the groups and peers; with one node killed each survivor
/// logs at most 20 lines in 10 s; SIGTERM to the script stops the others cleanly (each exits 0
/// after "stopped").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_three_node_example_starts_forms_a_cluster_and_stops_on_sigterm() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/three-nodes");
    let directory = tempfile::tempdir().unwrap();
    let copy = directory.path().join("example");
    std::fs::create_dir(&copy).unwrap();
    let mut replacements = Vec::new();
    for port in ["50051", "50052", "50053", "9464", "9465", "9466"] {
        replacements.push((format!("127.0.0.1:{port}"), unused_local_address().to_string()));
    }
    for file in ["node-a.toml", "node-b.toml", "node-c.toml", "start.sh"] {
        let mut text = std::fs::read_to_string(example.join(file)).unwrap();
        for (from, to) in &replacements {
            text = text.replace(from, to);
        }
        std::fs::write(copy.join(file), text).unwrap();
    }
    let addresses: Vec<SocketAddr> = replacements[..3].iter().map(|(_, to)| to.parse().unwrap()).collect();
    let output_path = directory.path().join("start.log");
    let output = std::fs::File::create(&output_path).unwrap();
    let mut script = Command::new("bash")
        .arg(copy.join("start.sh"))
        .current_dir(directory.path())
        .env("TURNSTILE_BIN", env!("CARGO_BIN_EXE_turnstile"))
        .env_remove("TURNSTILE_AUTH_SECRET")
        .env_remove("RUST_LOG")
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap();
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            // Quietly: by now the script has usually ended by itself.
            let quiet = || std::process::Stdio::null();
            let _ = Command::new("pkill").args(["-KILL", "-P", &self.0.to_string()]).stderr(quiet()).status();
            let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).stderr(quiet()).status();
        }
    }
    let _guard = KillOnDrop(script.id());
    let started = Instant::now();
    while !std::fs::read_to_string(&output_path).unwrap().contains("cluster up") {
        assert!(script.try_wait().unwrap().is_none(), "{}", std::fs::read_to_string(&output_path).unwrap());
        assert!(started.elapsed() < Duration::from_secs(90), "{}", std::fs::read_to_string(&output_path).unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let authenticator = Authenticator::new(turnstile::config::DEVELOPMENT_SECRET.as_bytes());
    let admin = authenticator.mint("example-admin", Role::Admin, TOKEN_TTL_SECONDS);
    let mut admin_client = AdminServiceClient::new(channel(addresses[0]));
    let venue = loop {
        match admin_client.create_venue(authed(&admin, venue_request(1, 5, 0))).await {
            Ok(reply) => break reply.into_inner().venue.unwrap(),
            Err(status) if started.elapsed() < Duration::from_secs(90) => {
                assert!(matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded), "{status:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("the example cluster takes no catalog write: {status:?}"),
        }
    };
    let event_id = admin_client
        .create_event(authed(&admin, event_request(&venue, 4)))
        .await
        .unwrap()
        .into_inner()
        .event
        .unwrap()
        .event_id;
    let mut catalog = CatalogServiceClient::new(channel(addresses[2]));
    loop {
        let request = pb::GetEventRequest { event_id: event_id.clone(), include_seats: false, ..Default::default() };
        match catalog.get_event(request).await {
            Ok(_) => break,
            Err(status) => {
                assert!(started.elapsed() < Duration::from_secs(90), "node-c never has the event: {status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    let status = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(["status", "--server", &addresses[1].to_string(), "--config"])
        .arg(copy.join("node-b.toml"))
        .env_remove("TURNSTILE_AUTH_SECRET")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}{}", String::from_utf8_lossy(&status.stderr));
    assert!(text.contains("node-b (turnstile"), "{text}");
    assert!(text.contains("catalog") && text.contains("shard "), "the groups are listed: {text}");
    let peers = text.split("PEER").nth(1).unwrap_or_else(|| panic!("no peers: {text}"));
    assert!(peers.contains("node-a") && peers.contains("node-c") && !peers.contains("node-b"), "{text}");
    assert!(peers.contains(&addresses[0].to_string()), "{text}");

    // `turnstile cluster status` asks every node: all up, the catalog has a leader.
    let cluster_status = || {
        let output = Command::new(env!("CARGO_BIN_EXE_turnstile"))
            .args(["cluster", "status", "--config"])
            .arg(copy.join("node-a.toml"))
            .env_remove("TURNSTILE_AUTH_SECRET")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
        text
    };
    let row =
        |text: &str, prefix: &str| text.lines().find(|line| line.starts_with(prefix)).unwrap_or_default().to_string();
    let text = cluster_status();
    for node in ["node-a", "node-b", "node-c"] {
        assert!(row(&text, node).contains(" up "), "{node}: {text}");
    }
    assert!(!row(&text, "catalog").contains("(electing)") && !row(&text, "catalog").is_empty(), "{text}");
    assert_eq!(text.lines().filter(|line| line.starts_with("shard ")).count(), 64, "every shard listed: {text}");

    // One node killed: each survivor's log says so once, not per failed call (openraft retries
    // a peer that is down hundreds of times a second), and the shards' leadership moves in a
    // line or two: at most 20 lines in 10 s at level info.
    let log_of = |node: &str| std::fs::read_to_string(directory.path().join(format!("data/{node}.log"))).unwrap();
    let before = [log_of("node-a").lines().count(), log_of("node-b").lines().count()];
    let node_c = Command::new("pgrep").arg("-f").arg(copy.join("node-c.toml")).output().unwrap();
    let node_c = String::from_utf8_lossy(&node_c.stdout).lines().next().expect("node-c runs").to_string();
    assert!(Command::new("kill").args(["-KILL", &node_c]).status().unwrap().success());
    tokio::time::sleep(Duration::from_secs(10)).await;
    for (index, node) in ["node-a", "node-b"].into_iter().enumerate() {
        let log = log_of(node);
        let added: Vec<&str> = log.lines().skip(before[index]).collect();
        assert!(
            added.len() <= 20,
            "{node} logged {} lines in 10 s with a peer down:\n{}",
            added.len(),
            added.join("\n")
        );
        assert!(added.iter().any(|line| line.contains("peer unreachable")), "{node}: {}", added.join("\n"));
    }
    // The cluster's status says node-c is down and the survivors cannot reach it.
    let text = cluster_status();
    assert!(row(&text, "node-c").contains(" down "), "{text}");
    for node in ["node-a", "node-b"] {
        assert!(row(&text, node).contains(" up ") && row(&text, node).ends_with("node-c"), "{node}: {text}");
    }

    let terminated = Command::new("kill").args(["-TERM", &script.id().to_string()]).status().unwrap();
    assert!(terminated.success());
    let stopped_at = Instant::now();
    let exit = loop {
        if let Some(exit) = script.try_wait().unwrap() {
            break exit;
        }
        assert!(stopped_at.elapsed() < Duration::from_secs(60), "the nodes did not stop within 60 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let script_output = std::fs::read_to_string(&output_path).unwrap();
    // The survivors exit 0 on SIGTERM; the script reports node-c's SIGKILL as its own failure.
    assert!(script_output.contains("node-a exited with status 0"), "{script_output}");
    assert!(script_output.contains("node-b exited with status 0"), "{script_output}");
    assert!(script_output.contains("node-c exited with status 137"), "{script_output}");
    assert_eq!(exit.code(), Some(137), "{script_output}");
    for node in ["node-a", "node-b"] {
        let log = log_of(node);
        assert!(log.contains("signal=\"SIGTERM\"") && log.contains("stopped"), "{node}: {log}");
    }
    for node in ["node-a", "node-b", "node-c"] {
        assert!(log_of(node).contains("development secret"), "{node} warns about the development secret");
    }
}

/// Regression: three nodes restarted on new ports over their data directories kept calling the
/// addresses their groups' stored membership recorded, and never elected a catalog leader (every
/// catalog write answered "no commit within 5 s"), with nothing in the logs naming the mismatch.
/// The configured addresses win, and each node says which stored address it overrides.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_restarted_on_new_ports_uses_the_configured_addresses() {
    let (directory, mut nodes, _) = start_cluster(&NODES).await;
    let authenticator = Authenticator::new(SECRET.as_bytes());
    let admin = authenticator.mint("cluster-admin", Role::Admin, TOKEN_TTL_SECONDS);
    let event_id = create_hot_event(&nodes, &admin).await;
    for node in &mut nodes {
        node.kill();
        node.move_to_new_port();
    }
    let config_path = write_config(directory.path(), &nodes, "");
    for node in &mut nodes {
        node.start(&config_path);
    }
    for node in &mut nodes {
        wait_healthy(node).await;
    }
    // A catalog write commits (through a node that is not the first), and the earlier event is
    // read through every node at its new address.
    let started = Instant::now();
    let mut admin_client = AdminServiceClient::new(channel(nodes[2].address));
    loop {
        match admin_client.create_venue(authed(&admin, venue_request(1, 5, 0))).await {
            Ok(_) => break,
            Err(status) => {
                assert!(
                    started.elapsed() < HEALTHY_WAIT_MAX,
                    "no catalog write after the move: {status:?}\n{}",
                    nodes[2].log_tail()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    for node in &nodes {
        // A restarted node re-applies its catalog once it hears the commit point: read until then.
        let mut catalog = CatalogServiceClient::new(channel(node.address));
        loop {
            let request =
                pb::GetEventRequest { event_id: event_id.clone(), include_seats: false, ..Default::default() };
            match catalog.get_event(request).await {
                Ok(_) => break,
                Err(status) => {
                    assert!(started.elapsed() < HEALTHY_WAIT_MAX, "{}: {status:?}", node.name);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        assert!(
            node.log_lines_with("differs from the one stored in the cluster's membership") >= 1,
            "{} names the moved addresses: {}",
            node.name,
            node.log_tail()
        );
    }
}

/// With TLS on, nodes replicate and forward over TLS, checking each other's certificates against
/// `tls.ca_file`: a catalog write through one node is read through every node (replication), and
/// holds through every node succeed (two of three forward to the shard's leader).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_with_tls_replicates_and_forwards_over_tls() {
    use tonic::transport::{Certificate, ClientTlsConfig};
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let (certificate, key) = (directory.path().join("node.crt"), directory.path().join("node.key"));
    std::fs::write(&certificate, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let tls_table = format!(
        "[tls]\ncertificate_file = \"{}\"\nprivate_key_file = \"{}\"\nca_file = \"{}\"\n",
        certificate.display(),
        key.display(),
        certificate.display()
    );
    let mut nodes: Vec<Node> = NODES.iter().map(|name| Node::new(directory.path(), name)).collect();
    let config_path = write_config(directory.path(), &nodes, &tls_table);
    for node in &mut nodes {
        node.start(&config_path);
    }
    let tls_channel = |address: SocketAddr| {
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(certified.cert.pem()));
        Endpoint::from_shared(format!("https://{address}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .timeout(CALL_TIMEOUT)
            .connect_lazy()
    };
    let authenticator = Authenticator::new(SECRET.as_bytes());
    let admin = authenticator.mint("cluster-admin", Role::Admin, TOKEN_TTL_SECONDS);
    let started = Instant::now();
    let mut admin_client = AdminServiceClient::new(tls_channel(nodes[1].address));
    let venue = loop {
        match admin_client.create_venue(authed(&admin, venue_request(2, 10, 0))).await {
            Ok(reply) => break reply.into_inner().venue.unwrap(),
            Err(status) => {
                assert!(started.elapsed() < HEALTHY_WAIT_MAX, "no catalog write: {status:?}\n{}", nodes[1].log_tail());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let event = event_request(&venue, 10);
    let event_id = admin_client.create_event(authed(&admin, event)).await.unwrap().into_inner().event.unwrap().event_id;
    for (number, node) in nodes.iter().enumerate() {
        let buyer = authenticator.mint(&format!("tls-buyer-{number}"), Role::User, TOKEN_TTL_SECONDS);
        let mut booking = BookingServiceClient::new(tls_channel(node.address));
        loop {
            let request = pb::HoldSeatsRequest {
                event_id: event_id.clone(),
                selection: Some(pb::hold_seats_request::Selection::Seats(pb::SeatList {
                    seat_ids: vec![format!("S:R0:{}", number + 1)],
                })),
                idempotency_key: format!("tls-hold-{number}"),
                ..Default::default()
            };
            match booking.hold_seats(authed(&buyer, request)).await {
                Ok(_) => break,
                // The event may not have reached this node, or the shard be electing.
                Err(status) if started.elapsed() < HEALTHY_WAIT_MAX => {
                    assert!(matches!(status.code(), Code::NotFound | Code::Unavailable), "{status:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => panic!("hold through {}: {status:?}\n{}", node.name, node.log_tail()),
            }
        }
    }
    // Every node saw the three holds: replication and forwarding both went through.
    for node in &nodes {
        let mut catalog = CatalogServiceClient::new(tls_channel(node.address));
        let request = pb::GetEventRequest { event_id: event_id.clone(), include_seats: false, ..Default::default() };
        let event = catalog.get_event(request).await.unwrap().into_inner();
        let held: u32 = event.availability.iter().map(|availability| availability.held).sum();
        assert_eq!(held, 3, "{}: {:?}", node.name, event.availability);
        assert_eq!(node.log_lines_with("peer unreachable"), 0, "{}: {}", node.name, node.log_tail());
    }
    // The client commands take the CA from the config when its [tls] is on.
    let status = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(["status", "--node", "node-c", "--config"])
        .arg(&config_path)
        .env_remove("TURNSTILE_AUTH_SECRET")
        .env_remove("TURNSTILE_SERVER")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}{}", String::from_utf8_lossy(&status.stderr));
    assert!(text.contains("node-c (turnstile"), "{text}");
}

/// Until one buyer's standing is final (admitted, ...), through the nodes `via` in turn: a stream
/// cut by a failover is opened again through the next. Every standing seen, in order.
async fn watch_queue_until_final(
    nodes: &[Node],
    via: &[usize],
    token: &str,
    event_id: &str,
    queue_token: &str,
) -> Vec<pb::QueueStanding> {
    use turnstile_proto::v1::queue_service_client::QueueServiceClient;
    let started = Instant::now();
    let mut standings = Vec::new();
    for attempt in 0.. {
        assert!(started.elapsed() < Duration::from_secs(60), "no final standing in 60 s: {standings:?}");
        let node = &nodes[via[attempt % via.len()]];
        let mut client = QueueServiceClient::new(channel(node.address));
        let request = pb::WatchQueueRequest { event_id: event_id.into(), queue_token: queue_token.into() };
        let mut request = authed(token, request);
        request.set_timeout(Duration::from_secs(60));
        let Ok(reply) = client.watch_queue(request).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut stream = reply.into_inner();
        while let Ok(Some(standing)) = stream.message().await {
            let state = standing.state;
            standings.push(standing);
            if state != pb::QueueState::Waiting as i32 && state != pb::QueueState::NotOpen as i32 {
                return standings;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unreachable!()
}

/// Regression: a waiting room's line lived only in memory on the shard leader: after a failover
/// buyers had to rejoin at the end and passes handed out were refused. Now buyers in line before a
/// leader kill keep their places (and are admitted in that order) and a buyer admitted before it
/// holds with their pass after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_room_survives_a_leader_kill() {
    use turnstile_proto::v1::queue_service_client::QueueServiceClient;
    let (_directory, mut nodes, _) = start_cluster(&NODES).await;
    let authenticator = Authenticator::new(SECRET.as_bytes());
    let admin = authenticator.mint("cluster-admin", Role::Admin, TOKEN_TTL_SECONDS);
    let event_id = create_hot_event(&nodes, &admin).await;
    let mut admin_client = AdminServiceClient::new(channel(nodes[0].address));
    let configure = pb::ConfigureQueueRequest {
        event_id: event_id.clone(),
        enabled: true,
        admission_rate_per_second: 1,
        seats_per_pass: 1,
        ..Default::default()
    };
    admin_client.configure_queue(authed(&admin, configure)).await.unwrap();

    let buyers: Vec<String> =
        (0..4).map(|number| authenticator.mint(&format!("q-{number}"), Role::User, TOKEN_TTL_SECONDS)).collect();
    let mut queue_tokens = Vec::new();
    for (number, token) in buyers.iter().enumerate() {
        let mut client = QueueServiceClient::new(channel(nodes[number % nodes.len()].address));
        let request = authed(token, pb::JoinQueueRequest { event_id: event_id.clone() });
        let joined = client.join_queue(request).await.unwrap().into_inner();
        assert_eq!(joined.standing.unwrap().position, number as u64 + 1);
        queue_tokens.push(joined.queue_token);
    }
    let first = watch_queue_until_final(&nodes, &[0, 1, 2], &buyers[0], &event_id, &queue_tokens[0]).await;
    let last = first.last().unwrap();
    assert_eq!(last.state, pb::QueueState::Admitted as i32, "{first:?}");
    let pass = last.admission_pass.clone();

    let leader = leader_of_event(&nodes, &admin, None).await.expect("some node runs the event");
    nodes[leader].kill();
    let live: Vec<usize> = (0..nodes.len()).filter(|&position| position != leader).collect();

    // The pass admitted before the kill holds after it, through a survivor.
    let started = Instant::now();
    let mut booking = BookingServiceClient::new(channel(nodes[live[0]].address));
    loop {
        let request = pb::HoldSeatsRequest {
            event_id: event_id.clone(),
            idempotency_key: "queued-hold-0".into(),
            selection: Some(pb::hold_seats_request::Selection::Seats(pb::SeatList { seat_ids: vec!["S:R0:1".into()] })),
            admission_pass: pass.clone(),
        };
        match booking.hold_seats(authed(&buyers[0], request)).await {
            Ok(_) => break,
            Err(status) => {
                assert!(
                    started.elapsed() < HEALTHY_WAIT_MAX
                        && matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled),
                    "the pass from before the kill: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // The others keep their places and are admitted in order.
    let mut admitted_at = Vec::new();
    for number in 1..buyers.len() {
        let standings = watch_queue_until_final(&nodes, &live, &buyers[number], &event_id, &queue_tokens[number]).await;
        assert!(
            standings.iter().all(|standing| standing.position == number as u64 + 1),
            "buyer {number}: {standings:?}"
        );
        assert_eq!(standings.last().unwrap().state, pb::QueueState::Admitted as i32, "buyer {number}: {standings:?}");
        admitted_at.push(standings.last().unwrap().pass_expires_at.unwrap().seconds);
    }
    assert!(admitted_at.windows(2).all(|pair| pair[0] <= pair[1]), "admitted in order: {admitted_at:?}");
    let mut client = QueueServiceClient::new(channel(nodes[live[1]].address));
    let newcomer = authenticator.mint("q-new", Role::User, TOKEN_TTL_SECONDS);
    let joined =
        client.join_queue(authed(&newcomer, pb::JoinQueueRequest { event_id: event_id.clone() })).await.unwrap();
    assert!(joined.into_inner().standing.unwrap().position > 4, "no place is handed out twice");
}

/// The node list of the configuration and the cluster's stored membership must not disagree
/// silently: restarted with a config that lists a node the cluster never had, every node says so
/// (and that the stored membership wins).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_configured_node_list_that_differs_from_the_membership_is_reported() {
    let (directory, mut nodes, _) = start_cluster(&NODES).await;
    let authenticator = Authenticator::new(SECRET.as_bytes());
    let admin = authenticator.mint("cluster-admin", Role::Admin, TOKEN_TTL_SECONDS);
    create_hot_event(&nodes, &admin).await;
    for node in &mut nodes {
        node.kill();
    }
    let mut listed: Vec<Node> = nodes
        .iter()
        .map(|node| {
            let mut listed = Node::new(directory.path(), node.name);
            listed.address = node.address;
            listed
        })
        .collect();
    listed.push(Node::new(directory.path(), "node-d"));
    let config_path = write_config(directory.path(), &listed, "");
    for node in &mut nodes {
        node.start(&config_path);
    }
    for node in &nodes {
        wait_for_log(node, "stored membership differ", 0, HEALTHY_WAIT_MAX).await;
        let text = std::fs::read_to_string(&node.log).unwrap();
        let line = text.lines().find(|line| line.contains("stored membership differ")).unwrap();
        assert!(line.contains("node-d") && line.contains("wins"), "{}: {line}", node.name);
    }
}

/// Runs `turnstile cluster ARGS... --config CONFIG` (the operator's command) and answers its
/// output and how long it took; fails the test if it fails.
async fn operator(config: &Path, args: &[&str]) -> (String, Duration) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_turnstile"));
    command.arg("cluster").args(args).arg("--config").arg(config);
    let started = Instant::now();
    // The command waits at most --wait-seconds (its own bound) for the cluster to settle.
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "turnstile cluster {args:?} failed:\n{text}");
    (text, started.elapsed())
}

/// The 99th percentile of the time from a hold's sending to its booking's acknowledgement, over
/// the bookings whose hold was sent within `window`, and how many there are.
fn storm_p99(ledger: &Mutex<Ledger>, window: (Instant, Instant)) -> (Duration, usize) {
    let mut cycles: Vec<Duration> = ledger
        .lock()
        .unwrap()
        .acknowledged_at
        .iter()
        .filter(|(sent, _)| *sent >= window.0 && *sent <= window.1)
        .map(|(sent, acknowledged)| *acknowledged - *sent)
        .collect();
    cycles.sort();
    let p99 = cycles.get((cycles.len() * 99).div_ceil(100).saturating_sub(1)).copied().unwrap_or_default();
    (p99, cycles.len())
}

/// Every shard, and the catalog, as the members report them: led by a member whose voters are
/// the group's target, with no learner left; every shard with `replicas` voters.
async fn check_replica_counts(members: &[&Node], admin: &str, replicas: usize) {
    let mut statuses = Vec::new();
    for node in members {
        let mut client = AdminServiceClient::new(channel(node.address));
        statuses.push(client.get_node_status(authed(admin, pb::GetNodeStatusRequest {})).await.unwrap().into_inner());
    }
    let names: Vec<&str> = members.iter().map(|node| node.name).collect();
    let mut groups: Vec<String> = (0..SHARDS).map(|shard| format!("shard {shard}")).collect();
    groups.push("catalog".into());
    for group in groups {
        let led = statuses.iter().find_map(|status| {
            status.groups.iter().find(|seen| seen.group == group && seen.leader_node_id == status.node_id)
        });
        let led = led.unwrap_or_else(|| panic!("{group}: no member leads it"));
        let wanted = if group == "catalog" { members.len() } else { replicas };
        assert_eq!(led.voters.len(), wanted, "{group}: voters {:?}", led.voters);
        assert_eq!(led.voters, led.target_voters, "{group}: voters are not the target");
        assert!(led.learners.is_empty(), "{group}: learners left {:?}", led.learners);
        assert!(led.voters.iter().all(|voter| names.contains(&voter.as_str())), "{group}: {:?}", led.voters);
    }
    for status in &statuses {
        assert_eq!(status.membership.as_ref().unwrap().nodes.len(), members.len(), "{}", status.node_id);
    }
}

/// Issue 20: the cluster grows, shrinks and repairs itself while buyers book through every
/// node. Three nodes (snapshots every 20 entries, so a new replica catches up by snapshot); a
/// fourth joins (`serve --join`, then `turnstile cluster add-node`); an original one is removed
/// (`remove-node`, then stopped); another is killed and replaced by a fresh one
/// (`replace-node`). Afterwards every acknowledged booking is present with its seats, no seat is
/// in two confirmed bookings, nothing unattempted exists, and every shard has its full replica
/// count on the members. Each move's time and the storm's p99 during it are printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_grows_shrinks_and_replaces_a_node_under_a_storm() {
    let snapshots = "snapshot_interval_entries = 20\n";
    let (directory, mut nodes, config_path) = start_cluster_with(&NODES, snapshots).await;
    let authenticator = Authenticator::new(SECRET.as_bytes());
    let admin = authenticator.mint("cluster-admin", Role::Admin, TOKEN_TTL_SECONDS);
    let event_id = create_hot_event(&nodes, &admin).await;
    // More catalog entries than a snapshot interval: the catalog's log is purged behind a
    // snapshot, so a new node gets the catalog by snapshot (as it does a busy shard).
    let mut admin_client = AdminServiceClient::new(channel(nodes[0].address));
    for number in 0..25 {
        let performer = pb::CreatePerformerRequest { name: format!("Band {number}"), ..Default::default() };
        admin_client.create_performer(authed(&admin, performer)).await.unwrap();
    }
    let storm = Storm::start(&nodes, &authenticator, &event_id);
    let storm_started = Instant::now();
    tokio::time::sleep(STORM_BEFORE_KILL).await;
    // Each move's window; the storm's p99 over the holds sent in it is taken once the storm has
    // stopped, so calls still under way at the window's end count. The first 1.5 s, before any
    // move, are the baseline.
    let mut moves = vec![("no move (the first 1.5 s)", Duration::ZERO, (storm_started, Instant::now()))];

    // Grow: node-d starts to join (its config lists every node), then the operator adds it.
    nodes.push(Node::new(directory.path(), "node-d"));
    let config_path = {
        let grown = write_config(directory.path(), &nodes, snapshots);
        assert_eq!(grown, config_path);
        grown
    };
    nodes[3].start_joining(&config_path);
    wait_healthy(&mut nodes[3]).await;
    let address = nodes[3].address.to_string();
    let started = Instant::now();
    let (output, took) = operator(&config_path, &["add-node", "node-d", &address, "--wait-seconds", "120"]).await;
    assert!(output.contains("every group settled on version 2"), "{output}");
    moves.push(("add node-d", took, (started, Instant::now())));
    storm.route_through(nodes.iter());
    wait_for_log(&nodes[3], "installed a snapshot", 0, Duration::from_secs(30)).await;
    tokio::time::sleep(STORM_BEFORE_KILL).await;

    // Shrink: an original node leaves; once it has, it is stopped.
    let started = Instant::now();
    let (output, took) = operator(&config_path, &["remove-node", "node-a", "--wait-seconds", "120"]).await;
    assert!(output.contains("every group settled on version 3"), "{output}");
    moves.push(("remove node-a", took, (started, Instant::now())));
    wait_for_log(&nodes[0], "no longer a member of the cluster", 0, Duration::from_secs(30)).await;
    storm.route_through(nodes[1..].iter());
    nodes[0].kill();
    tokio::time::sleep(STORM_BEFORE_KILL).await;

    // Repair: node-c dies; node-e takes its place.
    nodes[2].kill();
    nodes.push(Node::new(directory.path(), "node-e"));
    storm.route_through([&nodes[1], &nodes[3]].into_iter());
    let config_path = write_config(directory.path(), &nodes, snapshots);
    nodes[4].start_joining(&config_path);
    wait_healthy(&mut nodes[4]).await;
    let address = nodes[4].address.to_string();
    let started = Instant::now();
    let (output, took) =
        operator(&config_path, &["replace-node", "node-c", "node-e", &address, "--wait-seconds", "120"]).await;
    assert!(output.contains("every group settled on version 4"), "{output}");
    moves.push(("replace node-c by node-e", took, (started, Instant::now())));
    storm.route_through([&nodes[1], &nodes[3], &nodes[4]].into_iter());
    tokio::time::sleep(STORM_BEFORE_KILL).await;

    let (ledger, tokens) = storm.stop().await;
    let ledger = Mutex::new(ledger);
    for (what, took, window) in &moves {
        let (p99, bookings) = storm_p99(&ledger, *window);
        let rate = bookings as f64 / (window.1 - window.0).as_secs_f64();
        println!(
            "{what}: settled in {took:.1?}; {bookings} bookings of holds sent meanwhile ({rate:.0}/s), \
             hold-to-booking p99 {p99:.1?}"
        );
    }
    let ledger = ledger.into_inner().unwrap();
    println!(
        "{} calls, {} acknowledged bookings, {} unanswered calls",
        ledger.calls,
        ledger.acknowledged.len(),
        ledger.unanswered
    );
    let members = [&nodes[1], &nodes[3], &nodes[4]];
    check_replica_counts(&members, &admin, 3).await;
    let (_, remaining) = {
        let mut remaining: Vec<Node> = Vec::new();
        for name in ["node-b", "node-d", "node-e"] {
            let position = nodes.iter().position(|node| node.name == name).unwrap();
            remaining.push(nodes.remove(position));
        }
        (nodes, remaining)
    };
    wait_for_one_runner(&remaining, &admin).await;
    check_bookings(&remaining, &ledger, &tokens, &event_id).await;
}

/// A membership change that cannot work is refused before anything changes, naming the field:
/// a node that does not run at the address, a node that is another one, an id already a member,
/// an id that is none; the operator's command says why and exits non-zero. The membership is
/// still the first one afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_changes_that_cannot_work_are_refused_naming_the_field() {
    let (_directory, nodes, config_path) = start_cluster(&NODES).await;
    let authenticator = Authenticator::new(SECRET.as_bytes());
    let admin = authenticator.mint("cluster-admin", Role::Admin, TOKEN_TTL_SECONDS);
    let mut client = AdminServiceClient::new(channel(nodes[0].address));
    // The first membership is recorded once the catalog group has a leader.
    let started = Instant::now();
    loop {
        let status = client.get_node_status(authed(&admin, pb::GetNodeStatusRequest {})).await.unwrap().into_inner();
        if status.membership.is_some_and(|membership| membership.version == 1) {
            break;
        }
        assert!(started.elapsed() < HEALTHY_WAIT_MAX, "no membership recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let change = |add: Vec<(&str, String)>, remove: Vec<&str>| pb::ChangeClusterMembersRequest {
        add: add.into_iter().map(|(id, address)| pb::ClusterNode { node_id: id.into(), address }).collect(),
        remove: remove.into_iter().map(str::to_string).collect(),
    };
    let nobody = unused_local_address().to_string();
    let cases = [
        (change(vec![("node-x", nobody.clone())], vec![]), Code::FailedPrecondition, "add[0].address: the node at"),
        (
            change(vec![("node-x", nodes[1].address.to_string())], vec![]),
            Code::InvalidArgument,
            "is 'node-b', not 'node-x'",
        ),
        (change(vec![("node-b", nobody.clone())], vec![]), Code::AlreadyExists, "add[0].node_id: 'node-b' is already"),
        (change(vec![], vec!["node-x"]), Code::NotFound, "remove[0]: 'node-x' is not a member"),
        (change(vec![("node-x", "here".into())], vec![]), Code::InvalidArgument, "add[0].address"),
        (change(vec![], vec![]), Code::InvalidArgument, "add, remove"),
    ];
    for (request, code, says) in cases {
        let refused = client.change_cluster_members(authed(&admin, request.clone())).await.unwrap_err();
        assert_eq!(refused.code(), code, "{request:?}: {refused:?}");
        assert!(refused.message().contains(says), "{request:?}: {}", refused.message());
    }
    let buyer = authenticator.mint("buyer-x", Role::User, TOKEN_TTL_SECONDS);
    let refused = client.change_cluster_members(authed(&buyer, change(vec![], vec!["node-c"]))).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let output = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(["cluster", "add-node", "node-x", &nobody, "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("FAILED_PRECONDITION") && stderr.contains("serve --node node-x --join"), "{stderr}");

    let status = client.get_node_status(authed(&admin, pb::GetNodeStatusRequest {})).await.unwrap().into_inner();
    let membership = status.membership.unwrap();
    assert_eq!(membership.version, 1, "nothing changed");
    let ids: Vec<&str> = membership.nodes.iter().map(|node| node.node_id.as_str()).collect();
    assert_eq!(ids, NODES);
}
