//! Forwarding between two real servers: node A's router names node B as the leader of every
//! event, so A authenticates a call and sends it to B, whose answer (or refusal) comes back
//! unchanged; a forwarded call is never forwarded again, an unreachable leader is reported in
//! bounded time, and a write whose outcome is unknown is not sent twice.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{authed, best, seats, venue_request, CLUSTER_SECRET, SECRET};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use turnstile::auth::{Authenticator, Role};
use turnstile::config::Config;
use turnstile::forward::{Forwarding, FORWARDED_HEADER, NOT_LEADER_HEADER, RETRY_AFTER_HEADER, RETRY_WINDOW};
use turnstile::routing::{EventRouter, Route};
use turnstile::server::Server;
use turnstile_engine::engine::EngineOptions;
use turnstile_engine::ids::EventId;
use turnstile_engine::Engine;
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::admin_service_client::AdminServiceClient;
use turnstile_proto::v1::booking_service_client::BookingServiceClient;
use turnstile_proto::v1::catalog_service_client::CatalogServiceClient;
use turnstile_proto::v1::queue_service_client::QueueServiceClient;

/// Longest any single step of these tests may take.
const STEP: Duration = Duration::from_secs(10);

/// A router that gives the same answer for every event: how a test says "B leads everything".
struct StaticRouter(Route);

impl EventRouter for StaticRouter {
    fn route(&self, _event_id: &str) -> Route {
        self.0.clone()
    }
}

fn forward_to(node: &str, address: impl ToString) -> Option<Arc<dyn EventRouter>> {
    Some(Arc::new(StaticRouter(Route::Forward { node: node.into(), address: address.to_string() })))
}

struct Node {
    server: Option<Server>,
    _data_dir: tempfile::TempDir,
    channel: Channel,
    address: String,
}

impl Node {
    async fn start(id: &str, router: Option<Arc<dyn EventRouter>>) -> Self {
        Self::start_with(id, router, |_| {}).await
    }

    async fn start_with(id: &str, router: Option<Arc<dyn EventRouter>>, edit: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.node.id = id.into();
        config.auth.secret = SECRET.into();
        config.cluster.secret = CLUSTER_SECRET.into();
        config.limits.buyer_requests_per_second = 0;
        edit(&mut config);
        let engine = Engine::open(data_dir.path(), EngineOptions::default()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::start_with_router(&config, engine, listener, router).await.unwrap();
        let address = server.local_addr.to_string();
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        Self { server: Some(server), _data_dir: data_dir, channel, address }
    }

    fn engine(&self) -> &Engine {
        &self.server.as_ref().unwrap().engine
    }

    fn catalog(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::new(self.channel.clone())
    }

    fn booking(&self) -> BookingServiceClient<Channel> {
        BookingServiceClient::new(self.channel.clone())
    }

    fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    fn queue(&self) -> QueueServiceClient<Channel> {
        QueueServiceClient::new(self.channel.clone())
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            tokio::time::timeout(STEP, server.shutdown()).await.expect("shutdown in time").unwrap();
        }
    }
}

fn token(user: &str) -> String {
    Authenticator::new(SECRET.as_bytes()).mint(user, Role::User, 3_600)
}

fn admin_token() -> String {
    Authenticator::new(SECRET.as_bytes()).mint("ops", Role::Admin, 3_600)
}

/// A venue of 2 rows of 5 seats and an event there, created on `node` itself (the catalog is
/// not forwarded). Returns the event id.
async fn create_event(node: &Node) -> String {
    let venue = node
        .admin()
        .create_venue(authed(&admin_token(), venue_request(2, 5, 0)))
        .await
        .unwrap()
        .into_inner()
        .venue
        .unwrap();
    let request = common::event_request(&venue, 8);
    node.admin().create_event(authed(&admin_token(), request)).await.unwrap().into_inner().event.unwrap().event_id
}

fn hold_request(event_id: &str, seat_ids: &[&str], key: &str) -> pb::HoldSeatsRequest {
    let ids: Vec<String> = seat_ids.iter().map(|id| id.to_string()).collect();
    pb::HoldSeatsRequest {
        event_id: event_id.into(),
        selection: seats(&ids),
        idempotency_key: key.into(),
        ..Default::default()
    }
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future).await.expect("an answer in time")
}

fn same_status(through_a: &Status, direct: &Status) {
    assert_eq!(through_a.code(), direct.code(), "{through_a:?} vs {direct:?}");
    assert_eq!(through_a.message(), direct.message());
}

#[tokio::test]
async fn calls_through_one_node_are_served_by_the_leader() {
    let b = Node::start("node-b", None).await;
    let a = Node::start("node-a", forward_to("node-b", &b.address)).await;
    let event_id = create_event(&b).await;
    let alice = token("alice");

    // A hold placed through A lands on B: B shows it, A's own engine has never heard of the event.
    let hold = within(a.booking().hold_seats(authed(&alice, hold_request(&event_id, &["S:R0:1", "S:R0:2"], "h1"))))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let on_b = b.booking().get_hold(authed(&alice, pb::GetHoldRequest { hold_id: hold.hold_id.clone() })).await;
    assert_eq!(on_b.unwrap().into_inner().hold.unwrap(), hold);
    assert!(a.engine().event_details(&EventId::new(&event_id), false).await.is_err(), "A serves nothing itself");
    // The same key through A answers the same hold.
    let again = a.booking().hold_seats(authed(&alice, hold_request(&event_id, &["S:R0:1", "S:R0:2"], "h1"))).await;
    assert_eq!(again.unwrap().into_inner().hold.unwrap().hold_id, hold.hold_id);

    // Reads through A see B's inventory.
    let request =
        authed(&alice, pb::GetEventRequest { event_id: event_id.clone(), include_seats: true, ..Default::default() });
    let event = within(a.catalog().get_event(request)).await.unwrap().into_inner();
    let held: Vec<&str> = event
        .seats
        .iter()
        .filter(|seat| seat.status == pb::SeatStatus::Held as i32)
        .map(|seat| seat.seat_id.as_str())
        .collect();
    assert_eq!(held, ["S:R0:1", "S:R0:2"]);

    // Confirm, read and cancel through A; B agrees at every step.
    let confirm = pb::ConfirmHoldRequest {
        hold_id: hold.hold_id.clone(),
        payment_reference: "psp-1".into(),
        idempotency_key: "c1".into(),
    };
    let booking =
        within(a.booking().confirm_hold(authed(&alice, confirm))).await.unwrap().into_inner().booking.unwrap();
    assert_eq!(booking.status, pb::BookingStatus::Confirmed as i32);
    let get = |id: String| pb::GetBookingRequest { booking_id: id };
    let on_b = b.booking().get_booking(authed(&alice, get(booking.booking_id.clone()))).await.unwrap().into_inner();
    assert_eq!(on_b.booking.unwrap(), booking);

    // A ticket code redeemed through A is used on B: once.
    let code = booking.tickets[0].code.clone();
    let redeem = |code: &str| authed(&admin_token(), pb::RedeemTicketRequest { code: code.into() });
    let first = within(a.admin().redeem_ticket(redeem(&code))).await.unwrap().into_inner();
    assert_eq!(first.result, pb::redeem_ticket_response::Result::Admitted as i32, "{first:?}");
    let second = b.admin().redeem_ticket(redeem(&code)).await.unwrap().into_inner();
    assert_eq!(second.result, pb::redeem_ticket_response::Result::AlreadyUsed as i32, "{second:?}");

    let cancelled = within(
        a.booking().cancel_booking(authed(&alice, pb::CancelBookingRequest { booking_id: booking.booking_id.clone() })),
    )
    .await
    .unwrap()
    .into_inner()
    .booking
    .unwrap();
    assert_eq!(cancelled.status, pb::BookingStatus::Cancelled as i32);
    let on_b = b.booking().get_booking(authed(&alice, get(booking.booking_id.clone()))).await.unwrap().into_inner();
    assert_eq!(on_b.booking.unwrap().status, pb::BookingStatus::Cancelled as i32);

    // Release through A; the report through A counts what B holds and sold.
    let second_hold = a.booking().hold_seats(authed(&alice, hold_request(&event_id, &["S:R1:3"], ""))).await;
    let second_hold = second_hold.unwrap().into_inner().hold.unwrap();
    let released =
        a.booking().release_hold(authed(&alice, pb::ReleaseHoldRequest { hold_id: second_hold.hold_id.clone() })).await;
    assert_eq!(released.unwrap().into_inner().hold.unwrap().status, pb::HoldStatus::Released as i32);
    let request = authed(&admin_token(), pb::GetEventReportRequest { event_id: event_id.clone() });
    let report = within(a.admin().get_event_report(request)).await.unwrap().into_inner();
    let total = report.total.unwrap();
    assert_eq!((total.total, total.held, total.booked, total.available), (10, 0, 0, 10), "{total:?}");

    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_waiting_room_lives_with_the_event_on_the_leader() {
    let b = Node::start("node-b", None).await;
    let a = Node::start("node-a", forward_to("node-b", &b.address)).await;
    let event_id = create_event(&b).await;
    let bob = token("bob");

    let configure = pb::ConfigureQueueRequest { event_id: event_id.clone(), enabled: true, ..Default::default() };
    let configured = within(a.admin().configure_queue(authed(&admin_token(), configure))).await.unwrap().into_inner();
    assert!(configured.enabled);
    // Without a pass, B refuses the hold, and A passes the refusal on.
    let refused = a.booking().hold_seats(authed(&bob, hold_request(&event_id, &["S:R0:1"], "q1"))).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().starts_with("admission_pass"), "{refused:?}");

    let joined = within(a.queue().join_queue(authed(&bob, pb::JoinQueueRequest { event_id: event_id.clone() })))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(joined.standing.unwrap().position, 1);
    let watch = pb::WatchQueueRequest { event_id: event_id.clone(), queue_token: joined.queue_token };
    let mut stream = within(a.queue().watch_queue(authed(&bob, watch))).await.unwrap().into_inner();
    let mut pass = String::new();
    while let Some(standing) = within(stream.message()).await.unwrap() {
        if standing.state == pb::QueueState::Admitted as i32 {
            pass = standing.admission_pass;
        }
    }
    assert!(!pass.is_empty(), "automatic admission lets the only buyer in");
    let mut request = hold_request(&event_id, &["S:R0:1"], "q2");
    request.admission_pass = pass;
    let hold = within(a.booking().hold_seats(authed(&bob, request))).await.unwrap().into_inner().hold.unwrap();
    assert_eq!(hold.tickets.len(), 1);

    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_leaders_refusals_come_back_unchanged() {
    let b = Node::start("node-b", None).await;
    let a = Node::start("node-a", forward_to("node-b", &b.address)).await;
    let event_id = create_event(&b).await;
    let alice = token("alice");

    // NOT_FOUND: a hold id of the right shape that B never minted.
    let missing = format!("hld_{}_00000000000000ff", event_id.trim_start_matches("evt_"));
    let get = || authed(&alice, pb::GetHoldRequest { hold_id: missing.clone() });
    let through_a = a.booking().get_hold(get()).await.unwrap_err();
    let direct = b.booking().get_hold(get()).await.unwrap_err();
    assert_eq!(through_a.code(), Code::NotFound);
    same_status(&through_a, &direct);

    // INVALID_ARGUMENT naming the field, decided by B.
    let bad = || {
        authed(
            &alice,
            pb::HoldSeatsRequest { event_id: event_id.clone(), selection: best("S", 0), ..Default::default() },
        )
    };
    let through_a = a.booking().hold_seats(bad()).await.unwrap_err();
    let direct = b.booking().hold_seats(bad()).await.unwrap_err();
    assert_eq!(through_a.code(), Code::InvalidArgument, "{through_a:?}");
    assert!(through_a.message().contains("quantity"), "{through_a:?}");
    same_status(&through_a, &direct);

    // FAILED_PRECONDITION: seats another buyer holds.
    a.booking().hold_seats(authed(&token("carol"), hold_request(&event_id, &["S:R0:3"], ""))).await.unwrap();
    let taken = || authed(&alice, hold_request(&event_id, &["S:R0:3"], ""));
    let through_a = a.booking().hold_seats(taken()).await.unwrap_err();
    let direct = b.booking().hold_seats(taken()).await.unwrap_err();
    assert_eq!(through_a.code(), Code::FailedPrecondition, "{through_a:?}");
    same_status(&through_a, &direct);

    // An unknown event: B's NOT_FOUND.
    let unknown =
        || pb::GetEventRequest { event_id: "evt_00000000000000aa".into(), include_seats: false, ..Default::default() };
    let through_a = a.catalog().get_event(authed(&alice, unknown())).await.unwrap_err();
    let direct = b.catalog().get_event(authed(&alice, unknown())).await.unwrap_err();
    assert_eq!(through_a.code(), Code::NotFound);
    same_status(&through_a, &direct);

    // A hold id that names no event cannot be routed: A answers it, as B would.
    let shapeless = || authed(&alice, pb::GetHoldRequest { hold_id: "not-a-hold".into() });
    same_status(
        &a.booking().get_hold(shapeless()).await.unwrap_err(),
        &b.booking().get_hold(shapeless()).await.unwrap_err(),
    );

    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn tokens_are_checked_where_a_call_arrives_and_where_it_is_served() {
    // B limits each buyer to one call a second; A does not limit.
    let b = Node::start_with("node-b", None, |config| {
        config.limits.buyer_requests_per_second = 1;
        config.limits.buyer_requests_burst = 1;
    })
    .await;
    let a = Node::start("node-a", forward_to("node-b", &b.address)).await;
    let event_id = create_event(&b).await;

    // No token: A refuses before forwarding.
    let bare = a.booking().hold_seats(Request::new(hold_request(&event_id, &["S:R0:1"], ""))).await.unwrap_err();
    assert_eq!(bare.code(), Code::Unauthenticated, "{bare:?}");
    // A buyer's token on an admin call: refused.
    let report = pb::GetEventReportRequest { event_id: event_id.clone() };
    let denied = a.admin().get_event_report(authed(&token("dave"), report)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    // A call carrying a genuine forwarded mark but no token: B checks the token itself.
    let mark = Forwarding::new("node-a", Some(CLUSTER_SECRET.as_bytes())).stamp();
    let mut marked_hold = Request::new(hold_request(&event_id, &["S:R0:1"], ""));
    marked_hold.metadata_mut().insert(FORWARDED_HEADER, MetadataValue::try_from(mark.as_str()).unwrap());
    let refused = b.booking().hold_seats(marked_hold).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    // A mark signed with another secret is refused outright: the buyers' token secret above all
    // (whoever can mint buyer tokens must not be able to pass for a node and skip rate limits).
    for secret in [&b"not-the-cluster-secret-0123456789"[..], SECRET.as_bytes()] {
        let forged = Forwarding::new("node-a", Some(secret)).stamp();
        let mut forged_request = authed(&token("erin"), pb::GetHoldRequest { hold_id: "hld_x".into() });
        forged_request.metadata_mut().insert(FORWARDED_HEADER, MetadataValue::try_from(forged.as_str()).unwrap());
        let refused = b.booking().get_hold(forged_request).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().starts_with(FORWARDED_HEADER), "{refused:?}");
    }

    // B counts erin's direct calls against her limit, but not the ones A forwards (A counted
    // them, under its own configuration).
    let erin = token("erin");
    let hold = b.booking().hold_seats(authed(&erin, hold_request(&event_id, &["S:R1:1"], ""))).await.unwrap();
    let hold_id = hold.into_inner().hold.unwrap().hold_id;
    let get = || authed(&erin, pb::GetHoldRequest { hold_id: hold_id.clone() });
    let limited = b.booking().get_hold(get()).await.unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    for _ in 0..5 {
        within(a.booking().get_hold(get())).await.unwrap();
    }

    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_forwarded_call_is_never_forwarded_again() {
    // A believes B leads; B believes A does (a stale route on both sides).
    let b_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_address = b_listener.local_addr().unwrap();
    let a = Node::start("node-a", forward_to("node-b", b_address)).await;
    let b_data = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.node.id = "node-b".into();
    config.auth.secret = SECRET.into();
    config.cluster.secret = CLUSTER_SECRET.into();
    let engine = Engine::open(b_data.path(), EngineOptions::default()).await.unwrap();
    let b_server =
        Server::start_with_router(&config, engine, b_listener, forward_to("node-a", &a.address)).await.unwrap();
    let b_channel = Channel::from_shared(format!("http://{b_address}")).unwrap().connect().await.unwrap();
    let alice = token("alice");
    let get = || {
        authed(
            &alice,
            pb::GetEventRequest { event_id: "evt_0000000000000001".into(), include_seats: false, ..Default::default() },
        )
    };

    // Sent straight to B with A's mark: refused at once as not the leader, with the retry hint.
    let mut marked = get();
    let mark = Forwarding::new("node-a", Some(CLUSTER_SECRET.as_bytes())).stamp();
    marked.metadata_mut().insert(FORWARDED_HEADER, MetadataValue::try_from(mark.as_str()).unwrap());
    let refused = CatalogServiceClient::new(b_channel.clone()).get_event(marked).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("not the leader"), "{refused:?}");
    assert!(refused.metadata().get(NOT_LEADER_HEADER).is_some());
    assert!(refused.metadata().get(RETRY_AFTER_HEADER).is_some());

    // Through A: A forwards, B refuses, A asks its router again and gives up within the bound.
    let started = Instant::now();
    let refused = within(a.catalog().get_event(get())).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("not the leader"), "{refused:?}");
    assert!(refused.metadata().get(RETRY_AFTER_HEADER).is_some(), "{refused:?}");
    assert!(took < RETRY_WINDOW + Duration::from_secs(1), "gave up after {took:?}");
    println!("a call between two nodes that each think the other leads: UNAVAILABLE after {took:?}");

    a.stop().await;
    tokio::time::timeout(STEP, b_server.shutdown()).await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unreachable_or_unknown_leader_is_reported_in_bounded_time() {
    // An address where nothing listens.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let a = Node::start("node-a", forward_to("node-b", dead)).await;
    let nobody = Node::start(
        "node-c",
        Some(Arc::new(StaticRouter(Route::Unavailable { reason: "an election is under way".into() }))),
    )
    .await;
    let alice = token("alice");
    let event_id = "evt_0000000000000001";

    let unreachable = async {
        let started = Instant::now();
        // Never connected, so nothing was sent: even a write without a key is tried again.
        let error = a.booking().hold_seats(authed(&alice, hold_request(event_id, &["S:R0:1"], ""))).await.unwrap_err();
        (error, started.elapsed())
    };
    let leaderless = async {
        let started = Instant::now();
        let request = authed(&alice, pb::GetHoldRequest { hold_id: "hld_0000000000000001_0000000000000002".into() });
        (nobody.booking().get_hold(request).await.unwrap_err(), started.elapsed())
    };
    let ((unreachable, unreachable_took), (leaderless, leaderless_took)) =
        within(async { tokio::join!(unreachable, leaderless) }).await;
    for (error, took) in [(&unreachable, unreachable_took), (&leaderless, leaderless_took)] {
        assert_eq!(error.code(), Code::Unavailable, "{error:?}");
        assert!(error.metadata().get(RETRY_AFTER_HEADER).is_some(), "{error:?}");
        assert!(took < RETRY_WINDOW + Duration::from_secs(1), "answered after {took:?}");
    }
    assert!(unreachable.message().contains("cannot connect"), "{unreachable:?}");
    assert!(unreachable.message().contains("3 attempt(s)"), "{unreachable:?}");
    assert!(leaderless.message().contains("an election is under way"), "{leaderless:?}");
    println!("unreachable leader: UNAVAILABLE after {unreachable_took:?}; no leader: after {leaderless_took:?}");

    // A client deadline shorter than the window is kept.
    let mut short = authed(&alice, pb::GetHoldRequest { hold_id: "hld_0000000000000001_0000000000000002".into() });
    short.set_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let error = within(nobody.booking().get_hold(short)).await.unwrap_err();
    // The node answers just before the deadline; the client's own timer may win the race.
    assert!(matches!(error.code(), Code::DeadlineExceeded | Code::Cancelled), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    a.stop().await;
    nobody.stop().await;
}

/// HTTP/2's connection preface, sent first by every client.
const PREFACE_BYTES: usize = 24;
/// Largest frame this peer reads (HTTP/2's default maximum frame size).
const FRAME_BYTES_MAX: usize = 16_384;

/// A peer that speaks just enough HTTP/2 to receive a request, counts it, and drops the
/// connection without answering: a leader that dies with the request in its hands.
async fn breaking_peer() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut preface = [0u8; PREFACE_BYTES];
                socket.read_exact(&mut preface).await?;
                // An empty SETTINGS frame: the server's half of the handshake.
                socket.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await?;
                let mut payload = vec![0u8; FRAME_BYTES_MAX];
                for _ in 0..64 {
                    let mut header = [0u8; 9];
                    socket.read_exact(&mut header).await?;
                    let length = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
                    socket.read_exact(&mut payload[..length.min(FRAME_BYTES_MAX)]).await?;
                    const HEADERS: u8 = 1;
                    if header[3] == HEADERS {
                        counter.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                }
                drop(socket);
                Ok::<_, std::io::Error>(())
            });
        }
    });
    (address, requests)
}

#[tokio::test]
async fn a_write_whose_outcome_is_unknown_is_sent_again_only_with_an_idempotency_key() {
    let (peer, requests) = breaking_peer().await;
    let a = Node::start("node-a", forward_to("node-b", peer)).await;
    let alice = token("alice");
    let event_id = "evt_0000000000000001";

    let once =
        within(a.booking().hold_seats(authed(&alice, hold_request(event_id, &["S:R0:1"], "")))).await.unwrap_err();
    assert_eq!(once.code(), Code::Unavailable, "{once:?}");
    assert!(once.message().contains("outcome is unknown"), "{once:?}");
    assert_eq!(requests.load(Ordering::SeqCst), 1, "a write without a key is sent once");

    let keyed =
        within(a.booking().hold_seats(authed(&alice, hold_request(event_id, &["S:R0:1"], "k1")))).await.unwrap_err();
    assert_eq!(keyed.code(), Code::Unavailable, "{keyed:?}");
    assert!(keyed.message().contains("3 attempt(s)"), "{keyed:?}");
    assert_eq!(requests.load(Ordering::SeqCst), 4, "with a key it is tried three times");

    a.stop().await;
}

#[tokio::test]
async fn a_watch_through_one_node_streams_the_leaders_changes() {
    let b = Node::start("node-b", None).await;
    let a = Node::start("node-a", forward_to("node-b", &b.address)).await;
    let event_id = create_event(&b).await;
    let alice = token("alice");

    let watch = pb::WatchEventRequest { event_id: event_id.clone(), after_version: 0 };
    let mut stream = within(a.catalog().watch_event(authed(&alice, watch))).await.unwrap().into_inner();
    let snapshot = within(stream.message()).await.unwrap().expect("a snapshot first");
    assert_eq!(snapshot.kind, pb::watch_event_response::Kind::Snapshot as i32);

    // Changes made on B, directly, arrive through A.
    for (index, seat) in ["S:R0:1", "S:R0:2", "S:R1:5"].iter().enumerate() {
        b.booking().hold_seats(authed(&alice, hold_request(&event_id, &[*seat], ""))).await.unwrap();
        let change = within(stream.message()).await.unwrap().expect("the stream stays open");
        assert_eq!(change.kind, pb::watch_event_response::Kind::Change as i32);
        assert_eq!(change.version, snapshot.version + index as u64 + 1);
        assert_eq!(change.seats.iter().map(|seat| seat.seat_id.as_str()).collect::<Vec<_>>(), [*seat]);
    }

    // When B stops, the stream through A ends too.
    b.stop().await;
    let mut ended = false;
    for _ in 0..100 {
        if !matches!(within(stream.message()).await, Ok(Some(_))) {
            ended = true;
            break;
        }
    }
    assert!(ended, "the stream through A ends once B's has");
    a.stop().await;
}
