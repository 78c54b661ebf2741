//! A cluster of three real `turnstile serve --node ID` processes on 127.0.0.1 ports (issue 8).
//!
//! Buyers book one hot event through all three nodes at random (a node that does not lead the
//! event's shard forwards the call) while the shard's leader is killed with SIGKILL and restarted,
//! several times, then paused with SIGSTOP past the election timeout and resumed. Afterwards:
//! every acknowledged booking is there with its seats and status, no seat is in two confirmed
//! bookings, the seat map agrees with the bookings, and no booking exists that no buyer attempted.
//! Each failover time (kill or pause until the next acknowledged booking) is printed.
//!
//! TURNSTILE_CLUSTER_KILLS sets the number of kill cycles (default 3).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{authed, event_request, venue_request};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use turnstile::auth::{Authenticator, Role};
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::admin_service_client::AdminServiceClient;
use turnstile_proto::v1::booking_service_client::BookingServiceClient;
use turnstile_proto::v1::catalog_service_client::CatalogServiceClient;

const SECRET: &str = "cluster-test-secret-0123456789";
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const SHARDS: u32 = 8;
const ROWS: usize = 40;
const SEATS_PER_ROW: usize = 25;
const BUYERS: usize = 12;
/// A buyer cancels its oldest booking once it has this many, so the event never sells out.
const BOOKINGS_PER_BUYER_KEPT: usize = 6;
const KILLS_DEFAULT: usize = 3;
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
const HEALTHY_WAIT_MAX: Duration = Duration::from_secs(30);
/// How long the storm runs before a kill, and after a restart before the next one.
const STORM_BEFORE_KILL: Duration = Duration::from_millis(1_500);
/// A failover must bring acknowledged bookings back within this.
const FAILOVER_MAX: Duration = Duration::from_secs(20);
/// The pause outlasts the election timeout (600 to 1,200 ms) several times.
const PAUSE: Duration = Duration::from_secs(4);
const TOKEN_TTL_SECONDS: u64 = 3_600;

fn free_local_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
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
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self, config: &Path) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_turnstile"))
            .args(["serve", "--config"])
            .arg(config)
            .args(["--node", self.name, "--data-dir"])
            .arg(&self.data_dir)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
        }
        self.kill();
    }
}

async fn healthy(address: SocketAddr) -> bool {
    let mut client = HealthClient::new(channel(address));
    matches!(
        client.check(HealthCheckRequest { service: String::new() }).await,
        Ok(reply) if reply.get_ref().status == ServingStatus::Serving as i32
    )
}

async fn wait_healthy(node: &Node) {
    let started = Instant::now();
    while !healthy(node.address).await {
        assert!(started.elapsed() < HEALTHY_WAIT_MAX, "{} not healthy; log:\n{}", node.name, node.log_tail());
        tokio::time::sleep(Duration::from_millis(50)).await;
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

async fn buyer_storm(
    buyer: String,
    token: String,
    event_id: String,
    clients: Vec<BookingServiceClient<Channel>>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut number = 0u64;
    let mut mine: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        number += 1;
        let mut client = clients[rng.random_range(0..clients.len())].clone();
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
        let hold_id = match client.hold_seats(authed(&token, hold)).await {
            Ok(reply) => reply.into_inner().hold.expect("a hold").hold_id,
            Err(status) => {
                if !outcome_known(&status) {
                    ledger.lock().unwrap().unanswered += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                continue;
            }
        };
        let payment_reference = format!("pay-{buyer}-{number}");
        ledger.lock().unwrap().attempted_payments.insert(payment_reference.clone());
        let confirm =
            pb::ConfirmHoldRequest { hold_id, payment_reference, idempotency_key: format!("confirm-{buyer}-{number}") };
        // Any node: the confirmation may travel another way than its hold did.
        let mut client = clients[rng.random_range(0..clients.len())].clone();
        match client.confirm_hold(authed(&token, confirm)).await {
            Ok(reply) => {
                let booking = reply.into_inner().booking.expect("a booking");
                let mut seats: Vec<String> = booking.tickets.iter().map(|ticket| ticket.seat_id.clone()).collect();
                seats.sort();
                let mut ledger = ledger.lock().unwrap();
                ledger.acknowledged.insert(booking.booking_id.clone(), (buyer.clone(), seats, Some(false)));
                ledger.acknowledged_at.push((hold_sent, Instant::now()));
                mine.push(booking.booking_id);
            }
            Err(status) if outcome_known(&status) => {}
            Err(_) => ledger.lock().unwrap().unanswered += 1,
        }
    }
}

/// The node running the event's actor: the leader of its shard (followers run no actors).
async fn leader_of_event(nodes: &[Node], admin: &str, skip: Option<usize>) -> Option<usize> {
    for (position, node) in nodes.iter().enumerate() {
        if Some(position) == skip || node.child.is_none() {
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
    let directory = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = names
        .iter()
        .map(|name| Node {
            name,
            address: free_local_address(),
            data_dir: directory.path().join(name),
            log: directory.path().join(format!("{name}.log")),
            child: None,
        })
        .collect();
    let mut config = format!(
        "[auth]\nsecret = \"{SECRET}\"\n[limits]\nbuyer_requests_per_second = 0\n[cluster]\nshards = {SHARDS}\nreplicas = 3\n"
    );
    for node in &nodes {
        config.push_str(&format!("[[nodes]]\nid = \"{}\"\naddress = \"{}\"\n", node.name, node.address));
    }
    let config_path = directory.path().join("cluster.toml");
    std::fs::write(&config_path, config).unwrap();
    for node in &mut nodes {
        node.start(&config_path);
    }
    for node in &nodes {
        wait_healthy(node).await;
    }
    (directory, nodes, config_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_survive_leader_kills_and_a_pause() {
    let kills: usize =
        std::env::var("TURNSTILE_CLUSTER_KILLS").ok().and_then(|value| value.parse().ok()).unwrap_or(KILLS_DEFAULT);
    let (_directory, mut nodes, config_path) = start_cluster(&NODES).await;

    let authenticator = Authenticator::new(SECRET.as_bytes());
    let admin = authenticator.mint("cluster-admin", Role::Admin, TOKEN_TTL_SECONDS);
    // The catalog is replicated to every node: create it through one, read it through all.
    let mut admin_client = AdminServiceClient::new(channel(nodes[1].address));
    let venue = venue_request(ROWS, SEATS_PER_ROW, 0);
    let venue = admin_client.create_venue(authed(&admin, venue)).await.unwrap().into_inner().venue.unwrap();
    let event = event_request(&venue, 1_000);
    let event_id = admin_client.create_event(authed(&admin, event)).await.unwrap().into_inner().event.unwrap().event_id;
    for node in &nodes {
        let mut catalog = CatalogServiceClient::new(channel(node.address));
        let started = Instant::now();
        loop {
            let request = pb::GetEventRequest { event_id: event_id.clone(), include_seats: false };
            if catalog.get_event(request).await.is_ok() {
                break;
            }
            assert!(started.elapsed() < HEALTHY_WAIT_MAX, "event not readable through {}", node.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<BookingServiceClient<Channel>> =
        nodes.iter().map(|node| BookingServiceClient::new(channel(node.address))).collect();
    let mut buyers = Vec::new();
    let mut tokens = HashMap::new();
    for number in 0..BUYERS {
        let buyer = format!("buyer-{number}");
        let token = authenticator.mint(&buyer, Role::User, TOKEN_TTL_SECONDS);
        tokens.insert(buyer.clone(), token.clone());
        buyers.push(tokio::spawn(buyer_storm(
            buyer,
            token,
            event_id.clone(),
            clients.clone(),
            ledger.clone(),
            stop.clone(),
            0x5eed_0000 + number as u64,
        )));
    }

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
        wait_healthy(&nodes[leader]).await;
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

    stop.store(true, Ordering::Relaxed);
    for buyer in buyers {
        tokio::time::timeout(Duration::from_secs(30), buyer).await.expect("buyers stop").expect("no buyer panicked");
    }
    // The resumed node has heard of the new term by now: within a bound, at most one node runs the
    // event (the resumed one stopped its actor when it stepped down).
    let settle_started = Instant::now();
    loop {
        let mut running = Vec::new();
        for node in &nodes {
            let mut client = AdminServiceClient::new(channel(node.address));
            let reply = client.get_node_status(authed(&admin, pb::GetNodeStatusRequest {})).await.unwrap();
            if reply.get_ref().events_active > 0 {
                running.push(node.name);
            }
        }
        if running.len() <= 1 {
            break;
        }
        assert!(
            settle_started.elapsed() < Duration::from_secs(10),
            "nodes running the event after the pause: {running:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let ledger = ledger.lock().unwrap();
    println!(
        "{} calls, {} acknowledged bookings, {} unanswered calls; failovers {:?}",
        ledger.calls,
        ledger.acknowledged.len(),
        ledger.unanswered,
        failovers
    );
    assert!(ledger.acknowledged.len() >= 20, "the storm booked too little to prove anything");

    // Every booking the server has: listed per buyer, through every node (each holds a replica).
    let mut violations = Vec::new();
    let mut server_bookings: BTreeMap<String, pb::Booking> = BTreeMap::new();
    for node in &nodes {
        let mut client = BookingServiceClient::new(channel(node.address));
        for (buyer, token) in &tokens {
            let mut page_token = String::new();
            for _ in 0..1_000 {
                let request = pb::ListBookingsRequest { page_size: 100, page_token: page_token.clone() };
                let reply = client.list_bookings(authed(token, request)).await.unwrap().into_inner();
                for booking in reply.bookings {
                    if &booking.buyer_id != buyer {
                        violations.push(format!("{} lists {} under {buyer}", node.name, booking.booking_id));
                    }
                    if let Some(known) = server_bookings.get(&booking.booking_id) {
                        if known.status != booking.status && node.name == NODES[2] {
                            violations.push(format!("{} differs between nodes", booking.booking_id));
                        }
                    }
                    server_bookings.entry(booking.booking_id.clone()).or_insert(booking);
                }
                if reply.next_page_token.is_empty() {
                    break;
                }
                page_token = reply.next_page_token;
            }
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
        if !server_bookings.contains_key(booking_id) {
            violations.push(format!("acknowledged booking {booking_id} is not listed for {buyer}"));
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
        .get_event(pb::GetEventRequest { event_id: event_id.clone(), include_seats: true })
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
        for node in &nodes {
            eprintln!("--- {} log tail ---\n{}", node.name, node.log_tail());
        }
        panic!(
            "{} violations:\n{}",
            violations.len(),
            violations.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
        );
    }
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
