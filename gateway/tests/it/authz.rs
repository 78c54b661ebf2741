//! The authorization matrix: every RPC against every kind of caller (no token, expired token, a
//! token not valid yet, wrong signature, the buyer who owns the resource, another buyer, an admin),
//! over real gRPC.

use crate::common;

use common::*;
use tonic::{Code, Request, Status};
use turnstile::auth::{Authenticator, Claims, Role};
use turnstile_proto::v1 as pb;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Nobody,
    Expired,
    /// An admin token whose `nbf` is an hour ahead (it was accepted once: a hold was placed).
    NotYetValid,
    WrongSignature,
    Owner,
    OtherBuyer,
    Admin,
}

const EVERYONE: [Who; 7] =
    [Who::Nobody, Who::Expired, Who::NotYetValid, Who::WrongSignature, Who::Owner, Who::OtherBuyer, Who::Admin];

fn request<T>(server: &TestServer, who: Who, owner: &str, message: T) -> Request<T> {
    let past = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 3_600;
    match who {
        Who::Nobody => Request::new(message),
        Who::Expired => authed(
            &server.authenticator.mint_claims(&Claims { sub: "ann".into(), role: Role::User, exp: past }),
            message,
        ),
        Who::NotYetValid => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            let claims = serde_json::json!({ "sub": owner, "role": "admin", "exp": now + 7_200, "nbf": now + 3_600 });
            let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
            authed(&jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap(), message)
        }
        Who::WrongSignature => {
            authed(&Authenticator::new(b"not-the-server-secret-at-all").mint("ann", Role::Admin, 3_600), message)
        }
        Who::Owner => authed(&server.token(owner), message),
        Who::OtherBuyer => authed(&server.token("bob"), message),
        Who::Admin => authed(&server.admin_token(), message),
    }
}

/// What each kind of caller must get, for one class of RPC.
fn expected(class: &str, who: Who) -> Code {
    let unauthenticated = matches!(who, Who::Expired | Who::NotYetValid | Who::WrongSignature);
    match class {
        // Catalog reads: anonymous allowed, but a token that is sent must be valid.
        "catalog" if unauthenticated => Code::Unauthenticated,
        "catalog" => Code::Ok,
        _ if unauthenticated || who == Who::Nobody => Code::Unauthenticated,
        // Any buyer acts for themselves.
        "self" => Code::Ok,
        // Someone's hold or booking: the owner, or an admin (who may read and undo, not pay).
        "owned" => match who {
            Who::OtherBuyer => Code::PermissionDenied,
            _ => Code::Ok,
        },
        "owner_only" => match who {
            Who::Owner => Code::Ok,
            _ => Code::PermissionDenied,
        },
        "admin" => match who {
            Who::Admin => Code::Ok,
            _ => Code::PermissionDenied,
        },
        // Admin calls a single node refuses for what it is (membership needs a cluster).
        "admin_cluster" => match who {
            Who::Admin => Code::FailedPrecondition,
            _ => Code::PermissionDenied,
        },
        other => unreachable!("{other}"),
    }
}

fn code<T>(result: Result<tonic::Response<T>, Status>) -> (Code, String) {
    match result {
        Ok(_) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_string()),
    }
}

struct Fixture {
    event_id: String,
    /// An event whose waiting room is on.
    queued_event_id: String,
    /// An event with no seat left.
    sold_out_event_id: String,
    venue: pb::Venue,
}

async fn fresh_hold(server: &TestServer, fixture: &Fixture, owner: &str) -> pb::Hold {
    let request = pb::HoldSeatsRequest {
        event_id: fixture.event_id.clone(),
        idempotency_key: "".into(),
        selection: best("S", 1),
        ..Default::default()
    };
    server.booking().hold_seats(authed(&server.token(owner), request)).await.unwrap().into_inner().hold.unwrap()
}

async fn fresh_booking(server: &TestServer, fixture: &Fixture, owner: &str) -> pb::Booking {
    let hold = fresh_hold(server, fixture, owner).await;
    let request =
        pb::ConfirmHoldRequest { hold_id: hold.hold_id, payment_reference: "pay".into(), idempotency_key: "".into() };
    server.booking().confirm_hold(authed(&server.token(owner), request)).await.unwrap().into_inner().booking.unwrap()
}

/// One request on a `Book` stream, its buyer named by the message's token (none for `Nobody`,
/// and the stream itself carries no authorization); returns the answer's code and message.
async fn on_stream(server: &TestServer, who: Who, owner: &str, call: pb::book_request::Call) -> (Code, String) {
    let token = request(server, who, owner, ())
        .metadata()
        .get("authorization")
        .map(|value| value.to_str().unwrap().trim_start_matches("Bearer ").to_string())
        .unwrap_or_default();
    let message = pb::BookRequest { request_id: 7, token, call: Some(call) };
    let mut answers = server.booking().book(tokio_stream::iter(vec![message])).await.unwrap().into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    assert_eq!(answer.request_id, 7);
    match answer.result.expect("a result") {
        pb::book_response::Result::Error(error) => (Code::from(error.code), error.message),
        _ => (Code::Ok, String::new()),
    }
}

/// Runs one RPC as `who` against fresh resources; returns its code and message.
async fn call(server: &TestServer, fixture: &Fixture, rpc: &str, who: Who, owner: &str) -> (Code, String) {
    match rpc {
        "GetEvent" => code(
            server
                .catalog()
                .get_event(request(
                    server,
                    who,
                    owner,
                    pb::GetEventRequest {
                        event_id: fixture.event_id.clone(),
                        include_seats: false,
                        ..Default::default()
                    },
                ))
                .await,
        ),
        "SearchEvents" => {
            code(server.catalog().search_events(request(server, who, owner, pb::SearchEventsRequest::default())).await)
        }
        "HoldSeats" => {
            let message = pb::HoldSeatsRequest {
                event_id: fixture.event_id.clone(),
                idempotency_key: "".into(),
                selection: best("S", 1),
                ..Default::default()
            };
            code(server.booking().hold_seats(request(server, who, owner, message)).await)
        }
        "ListBookings" => {
            code(server.booking().list_bookings(request(server, who, owner, pb::ListBookingsRequest::default())).await)
        }
        "Book/Hold" => {
            let message = pb::HoldSeatsRequest {
                event_id: fixture.event_id.clone(),
                selection: best("S", 1),
                ..Default::default()
            };
            on_stream(server, who, owner, pb::book_request::Call::Hold(message)).await
        }
        "Book/GetHold" => {
            let hold = fresh_hold(server, fixture, owner).await;
            let message = pb::GetHoldRequest { hold_id: hold.hold_id };
            on_stream(server, who, owner, pb::book_request::Call::GetHold(message)).await
        }
        "Book/Release" => {
            let hold = fresh_hold(server, fixture, owner).await;
            let message = pb::ReleaseHoldRequest { hold_id: hold.hold_id };
            on_stream(server, who, owner, pb::book_request::Call::Release(message)).await
        }
        "Book/Confirm" => {
            let hold = fresh_hold(server, fixture, owner).await;
            let message =
                pb::ConfirmHoldRequest { hold_id: hold.hold_id, payment_reference: "p".into(), ..Default::default() };
            on_stream(server, who, owner, pb::book_request::Call::Confirm(message)).await
        }
        "Book/Extend" => {
            let hold = fresh_hold(server, fixture, owner).await;
            let message = pb::ExtendHoldRequest { hold_id: hold.hold_id };
            on_stream(server, who, owner, pb::book_request::Call::Extend(message)).await
        }
        "Book/Cancel" => {
            let booking = fresh_booking(server, fixture, owner).await;
            let message = pb::CancelBookingRequest { booking_id: booking.booking_id };
            on_stream(server, who, owner, pb::book_request::Call::Cancel(message)).await
        }
        "GetHold" => {
            let hold = fresh_hold(server, fixture, owner).await;
            code(
                server
                    .booking()
                    .get_hold(request(server, who, owner, pb::GetHoldRequest { hold_id: hold.hold_id }))
                    .await,
            )
        }
        "ReleaseHold" => {
            let hold = fresh_hold(server, fixture, owner).await;
            code(
                server
                    .booking()
                    .release_hold(request(server, who, owner, pb::ReleaseHoldRequest { hold_id: hold.hold_id }))
                    .await,
            )
        }
        "ConfirmHold" => {
            let hold = fresh_hold(server, fixture, owner).await;
            let message = pb::ConfirmHoldRequest {
                hold_id: hold.hold_id,
                payment_reference: "p".into(),
                idempotency_key: "".into(),
            };
            code(server.booking().confirm_hold(request(server, who, owner, message)).await)
        }
        "ExtendHold" => {
            let hold = fresh_hold(server, fixture, owner).await;
            code(
                server
                    .booking()
                    .extend_hold(request(server, who, owner, pb::ExtendHoldRequest { hold_id: hold.hold_id }))
                    .await,
            )
        }
        "StartPayment" => {
            let hold = fresh_hold(server, fixture, owner).await;
            code(
                server
                    .booking()
                    .start_payment(request(server, who, owner, pb::StartPaymentRequest { hold_id: hold.hold_id }))
                    .await,
            )
        }
        "JoinWaitlist" => {
            let message = pb::JoinWaitlistRequest {
                event_id: fixture.sold_out_event_id.clone(),
                section_id: String::new(),
                quantity: 1,
            };
            code(server.booking().join_waitlist(request(server, who, owner, message)).await)
        }
        "GetWaitlistStatus" => {
            let message = pb::GetWaitlistStatusRequest { event_id: fixture.sold_out_event_id.clone() };
            code(server.booking().get_waitlist_status(request(server, who, owner, message)).await)
        }
        "LeaveWaitlist" => {
            let message = pb::LeaveWaitlistRequest { event_id: fixture.sold_out_event_id.clone() };
            code(server.booking().leave_waitlist(request(server, who, owner, message)).await)
        }
        "GetBooking" => {
            let booking = fresh_booking(server, fixture, owner).await;
            code(
                server
                    .booking()
                    .get_booking(request(server, who, owner, pb::GetBookingRequest { booking_id: booking.booking_id }))
                    .await,
            )
        }
        "CancelBooking" => {
            let booking = fresh_booking(server, fixture, owner).await;
            code(
                server
                    .booking()
                    .cancel_booking(request(
                        server,
                        who,
                        owner,
                        pb::CancelBookingRequest { booking_id: booking.booking_id },
                    ))
                    .await,
            )
        }
        "CreateVenue" => code(server.admin().create_venue(request(server, who, owner, venue_request(1, 2, 0))).await),
        "CreatePerformer" => {
            let message = pb::CreatePerformerRequest { name: "P".into(), description: "".into(), genre: "".into() };
            code(server.admin().create_performer(request(server, who, owner, message)).await)
        }
        "CreateEvent" => {
            code(server.admin().create_event(request(server, who, owner, event_request(&fixture.venue, 500))).await)
        }
        "UpdateEvent" => {
            let message = pb::UpdateEventRequest {
                event_id: fixture.event_id.clone(),
                description: Some("updated".into()),
                ..Default::default()
            };
            code(server.admin().update_event(request(server, who, owner, message)).await)
        }
        "CancelEvent" => {
            // A throwaway event, so the shared one stays on sale.
            let event = server
                .admin()
                .create_event(authed(&server.admin_token(), event_request(&fixture.venue, 500)))
                .await
                .unwrap()
                .into_inner()
                .event
                .unwrap();
            code(
                server
                    .admin()
                    .cancel_event(request(server, who, owner, pb::CancelEventRequest { event_id: event.event_id }))
                    .await,
            )
        }
        "CreateBackup" => {
            let path = std::path::PathBuf::from(format!("backup-{}.redb", rand::random::<u64>()));
            code(
                server
                    .admin()
                    .create_backup(request(
                        server,
                        who,
                        owner,
                        pb::CreateBackupRequest { path: path.display().to_string() },
                    ))
                    .await,
            )
        }
        "GetNodeStatus" => {
            code(server.admin().get_node_status(request(server, who, owner, pb::GetNodeStatusRequest {})).await)
        }
        "ChangeClusterMembers" => {
            let message = pb::ChangeClusterMembersRequest {
                add: vec![pb::ClusterNode { node_id: "node-9".into(), address: "127.0.0.1:7".into() }],
                remove: vec![],
            };
            code(server.admin().change_cluster_members(request(server, who, owner, message)).await)
        }
        "WatchEvent" => {
            let message = pb::WatchEventRequest { event_id: fixture.event_id.clone(), after_version: 0 };
            code(server.catalog().watch_event(request(server, who, owner, message)).await)
        }
        "JoinQueue" => {
            let message = pb::JoinQueueRequest { event_id: fixture.queued_event_id.clone() };
            code(server.queue().join_queue(request(server, who, owner, message)).await)
        }
        "WatchQueue" => {
            // Each caller presents the queue token they were given themselves (if they can get one).
            let subject = match who {
                Who::OtherBuyer => "bob".to_string(),
                Who::Admin => "admin".to_string(),
                _ => owner.to_string(),
            };
            let token = if who == Who::Admin { server.admin_token() } else { server.token(&subject) };
            let joined = server
                .queue()
                .join_queue(authed(&token, pb::JoinQueueRequest { event_id: fixture.queued_event_id.clone() }))
                .await
                .unwrap()
                .into_inner();
            let message =
                pb::WatchQueueRequest { event_id: fixture.queued_event_id.clone(), queue_token: joined.queue_token };
            code(server.queue().watch_queue(request(server, who, owner, message)).await)
        }
        "RedeemTicket" => {
            let booking = fresh_booking(server, fixture, owner).await;
            let ticket_code = booking.tickets[0].code.clone();
            let message = pb::RedeemTicketRequest { code: ticket_code };
            code(server.admin().redeem_ticket(request(server, who, owner, message)).await)
        }
        "SetPricing" => {
            let message = pb::SetPricingRequest { event_id: fixture.event_id.clone(), rules: None };
            code(server.admin().set_pricing(request(server, who, owner, message)).await)
        }
        "GetEventReport" => {
            let message = pb::GetEventReportRequest { event_id: fixture.event_id.clone() };
            code(server.admin().get_event_report(request(server, who, owner, message)).await)
        }
        "ConfigureQueue" => {
            let message = pb::ConfigureQueueRequest {
                event_id: fixture.queued_event_id.clone(),
                enabled: true,
                admission_rate_per_second: 5,
                ..Default::default()
            };
            code(server.admin().configure_queue(request(server, who, owner, message)).await)
        }
        other => unreachable!("{other}"),
    }
}

#[tokio::test]
async fn every_rpc_answers_every_kind_of_caller_as_it_should() {
    let server = TestServer::start().await;
    let admin = server.admin_token();
    let venue = server
        .admin()
        .create_venue(authed(&admin, venue_request(10, 50, 0)))
        .await
        .unwrap()
        .into_inner()
        .venue
        .unwrap();
    let event = server
        .admin()
        .create_event(authed(&admin, event_request(&venue, 500)))
        .await
        .unwrap()
        .into_inner()
        .event
        .unwrap();
    let queued = server
        .admin()
        .create_event(authed(&admin, event_request(&venue, 500)))
        .await
        .unwrap()
        .into_inner()
        .event
        .unwrap();
    let configure = pb::ConfigureQueueRequest {
        event_id: queued.event_id.clone(),
        enabled: true,
        admission_rate_per_second: 5,
        ..Default::default()
    };
    server.admin().configure_queue(authed(&admin, configure)).await.unwrap();
    let small =
        server.admin().create_venue(authed(&admin, venue_request(1, 2, 0))).await.unwrap().into_inner().venue.unwrap();
    let sold_out = server
        .admin()
        .create_event(authed(&admin, event_request(&small, 8)))
        .await
        .unwrap()
        .into_inner()
        .event
        .unwrap();
    let filler =
        pb::HoldSeatsRequest { event_id: sold_out.event_id.clone(), selection: best("S", 2), ..Default::default() };
    server.booking().hold_seats(authed(&server.token("filler"), filler)).await.unwrap();
    let fixture = Fixture {
        event_id: event.event_id,
        queued_event_id: queued.event_id,
        sold_out_event_id: sold_out.event_id,
        venue,
    };
    let matrix = [
        ("GetEvent", "catalog"),
        ("SearchEvents", "catalog"),
        ("HoldSeats", "self"),
        ("ListBookings", "self"),
        ("GetHold", "owned"),
        ("ReleaseHold", "owned"),
        ("ConfirmHold", "owner_only"),
        ("ExtendHold", "owner_only"),
        ("StartPayment", "owner_only"),
        ("JoinWaitlist", "self"),
        ("GetWaitlistStatus", "self"),
        ("LeaveWaitlist", "self"),
        ("GetBooking", "owned"),
        ("CancelBooking", "owned"),
        ("CreateVenue", "admin"),
        ("CreatePerformer", "admin"),
        ("CreateEvent", "admin"),
        ("UpdateEvent", "admin"),
        ("CancelEvent", "admin"),
        ("CreateBackup", "admin"),
        ("GetNodeStatus", "admin"),
        ("ChangeClusterMembers", "admin_cluster"),
        ("WatchEvent", "catalog"),
        ("JoinQueue", "self"),
        ("WatchQueue", "self"),
        ("ConfigureQueue", "admin"),
        ("RedeemTicket", "admin"),
        ("GetEventReport", "admin"),
        ("SetPricing", "admin"),
        // The same calls as messages of a Book stream, each with its own token.
        ("Book/Hold", "self"),
        ("Book/GetHold", "owned"),
        ("Book/Release", "owned"),
        ("Book/Confirm", "owner_only"),
        ("Book/Extend", "owner_only"),
        ("Book/Cancel", "owned"),
    ];
    let mut failures = Vec::new();
    for (case, (rpc, class)) in matrix.iter().enumerate() {
        for (position, who) in EVERYONE.into_iter().enumerate() {
            // A buyer of their own per case, so no case runs into the per-buyer limits.
            let owner = format!("owner-{case}-{position}");
            let want = expected(class, who);
            let (got, message) = call(&server, &fixture, rpc, who, &owner).await;
            if got != want {
                failures.push(format!("{rpc} as {who:?}: expected {want:?}, got {got:?} ({message})"));
            }
            if got == Code::Unauthenticated {
                let says_why = ["expired", "nbf", "signature", "missing authorization"]
                    .iter()
                    .any(|reason| message.contains(reason));
                if !says_why {
                    failures.push(format!("{rpc} as {who:?}: UNAUTHENTICATED without a reason: {message}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        matrix.len() * EVERYONE.len(),
        failures.join("\n")
    );
    server.stop().await;
}
