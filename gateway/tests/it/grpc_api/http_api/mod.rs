//! JSON over HTTP, server-sent events, grpc-web, CORS and the seat-map page, through a real
//! server on 127.0.0.1 and a plain HTTP/1.1 client (hyper): every route, each class of error,
//! authorization, and resuming a watch with `Last-Event-ID`.

mod browser;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use serde_json::{json, Value};
use turnstile_proto::v1 as pb;

use crate::common::*;

pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Bytes,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text))
    }

    /// Asserts the status and the error body's code; returns the body.
    #[track_caller]
    pub fn refused(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.headers["content-type"], "application/json");
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|message| !message.is_empty()), "{body}");
        body
    }

    #[track_caller]
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        assert_eq!(self.headers["content-type"], "application/json");
        self.json()
    }
}

impl Http {
    pub fn new(server: &TestServer) -> Self {
        let address = server.server.as_ref().unwrap().local_addr;
        Self {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            base: format!("http://{address}"),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut request = http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer { status, headers, bytes, text }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Method::GET, path, token, &[], Bytes::new()).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.send(Method::POST, path, token, &[("content-type", "application/json")], body.to_string()).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Method::DELETE, path, token, &[], Bytes::new()).await
    }

    /// Opens a server-sent-event stream.
    pub async fn events(&self, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut request = http::Request::builder().uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.client.request(request.body(Full::new(Bytes::new())).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Sse { body: response.into_body(), buffer: String::new() }
    }
}

pub struct Sse {
    body: hyper::body::Incoming,
    buffer: String,
}

#[derive(Debug)]
pub struct SseEvent {
    pub id: Option<String>,
    /// The event's type: none for the stream's messages, "error" for a failure.
    pub event: Option<String>,
    pub data: Value,
}

impl Sse {
    /// The next event (comments, the keep-alives, are skipped), within 10 s.
    pub async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let (mut id, mut event, mut data) = (None, None, String::new());
                    for line in block.lines() {
                        if let Some(value) = line.strip_prefix("id:") {
                            id = Some(value.trim_start().to_string());
                        } else if let Some(value) = line.strip_prefix("event:") {
                            event = Some(value.trim_start().to_string());
                        } else if let Some(value) = line.strip_prefix("data:") {
                            data.push_str(value.trim_start());
                        }
                    }
                    if data.is_empty() {
                        continue;
                    }
                    return SseEvent { id, event, data: serde_json::from_str(&data).unwrap() };
                }
                let frame = self.body.frame().await.expect("the stream goes on").unwrap();
                if let Ok(data) = frame.into_data() {
                    self.buffer.push_str(std::str::from_utf8(&data).unwrap());
                }
            }
        })
        .await
        .expect("an event within 10 s")
    }
}

/// A venue (section "S" of rows A.. by `seats` seats and a standing "GA" area), a performer and an
/// event, all through the JSON admin routes; returns the event's id.
pub async fn create_event_over_http(http: &Http, admin: &str, rows: usize, seats: usize) -> String {
    let row_labels = ["A", "B", "C", "D"];
    let rows: Vec<Value> = row_labels[..rows]
        .iter()
        .map(|label| json!({"label": label, "seatLabels": (1..=seats).map(|n| n.to_string()).collect::<Vec<_>>()}))
        .collect();
    let venue = http
        .post(
            "/v1/venues",
            Some(admin),
            json!({"name": "Json Hall", "city": "Porto", "sections": [
                {"sectionId": "S", "name": "Stalls", "rows": rows},
                {"sectionId": "GA", "name": "Floor", "generalAdmissionCapacity": 20}
            ]}),
        )
        .await
        .ok();
    let venue_id = venue["venue"]["venueId"].as_str().unwrap().to_string();
    let performer = http.post("/v1/performers", Some(admin), json!({"name": "The Curls", "genre": "rock"})).await.ok();
    let event = http
        .post(
            "/v1/events",
            Some(admin),
            json!({
                "name": "Json Night",
                "category": "concert",
                "venueId": venue_id,
                "performerIds": [performer["performer"]["performerId"]],
                "startsAt": "2033-05-18T20:00:00Z",
                "endsAt": "2033-05-18T23:00:00Z",
                "priceLevels": [
                    {"priceLevelId": "STD", "name": "Standard", "price": {"amountMinor": "2500", "currency": "EUR"}, "sectionIds": ["S"]},
                    {"priceLevelId": "GA", "name": "Standing", "price": {"amountMinor": 1500, "currency": "EUR"}, "sectionIds": ["GA"]}
                ],
                "buyerSeatLimit": 8
            }),
        )
        .await
        .ok();
    event["event"]["eventId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_json_route_answers_in_the_proto_s_json_form() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let admin = server.admin_token();
    let ann = server.token("ann");
    let event_id = create_event_over_http(&http, &admin, 2, 5).await;

    // View: the summary by default, the layout and every seat when asked.
    let view = http.get(&format!("/v1/events/{event_id}"), None).await.ok();
    assert_eq!(view["event"]["name"], "Json Night");
    assert_eq!(view["venue"]["sections"], json!([]), "no layout unless asked");
    assert!(view["venue"]["layoutVersion"].as_str().is_some_and(|version| !version.is_empty()));
    assert_eq!(view["seats"], json!([]));
    assert_eq!(view["performers"][0]["name"], "The Curls");
    let full = http.get(&format!("/v1/events/{event_id}?include_layout=true&includeSeats=true"), None).await.ok();
    assert_eq!(full["venue"]["sections"][0]["rows"][1]["seatLabels"][4], "5");
    assert_eq!(full["seats"].as_array().unwrap().len(), 10);
    assert_eq!(full["seats"][0]["status"], "SEAT_STATUS_AVAILABLE");
    assert_eq!(full["version"], "0", "64-bit integers are strings in proto3 JSON");

    // Search with the design notes' parameter names, paged (the index follows the catalog
    // within moments).
    let search = "/v1/events/search?keyword=json%20nigth&start=2033-01-01T00:00:00Z&end=2034-01-01T00:00:00Z&limit=1";
    let mut found = http.get(search, None).await.ok();
    for _ in 0..100 {
        if found["events"] != json!([]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        found = http.get(search, None).await.ok();
    }
    assert_eq!(found["events"][0]["eventId"], event_id.as_str(), "typos tolerated: {found}");
    let outside = http.get("/v1/events/search?keyword=json&end=2030-01-01T00:00:00Z", None).await.ok();
    assert_eq!(outside["events"], json!([]), "the date range applies");
    let page = found["nextPageToken"].as_str().unwrap();
    let next = http.get(&format!("/v1/events/search?keyword=json&limit=1&page_token={page}"), None).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.text);

    // Hold with the Idempotency-Key header; the retry answers the same hold.
    let hold_path = format!("/v1/events/{event_id}/holds");
    let body = json!({"seats": {"seatIds": ["S:A:1", "S:A:2"]}}).to_string();
    let headers = [("content-type", "application/json"), ("idempotency-key", "ann-1")];
    let hold = http.send(Method::POST, &hold_path, Some(&ann), &headers, body.clone()).await.ok();
    let again = http.send(Method::POST, &hold_path, Some(&ann), &headers, body).await.ok();
    let hold_id = hold["hold"]["holdId"].as_str().unwrap().to_string();
    assert_eq!(again["hold"]["holdId"], hold_id.as_str());
    assert_eq!(hold["hold"]["status"], "HOLD_STATUS_ACTIVE");
    assert_eq!(hold["hold"]["total"]["amountMinor"], "5000");
    let got = http.get(&format!("/v1/holds/{hold_id}"), Some(&ann)).await.ok();
    assert_eq!(got["hold"]["tickets"][1]["seatId"], "S:A:2");
    let extended = http.post(&format!("/v1/holds/{hold_id}/extend"), Some(&ann), json!({})).await.ok();
    assert_eq!(extended["hold"]["extensions"], 1);
    let paying = http.post(&format!("/v1/holds/{hold_id}/payment"), Some(&ann), json!({})).await.ok();
    assert_eq!(paying["hold"]["holdId"], hold_id.as_str());

    // Confirm, list, read and cancel the booking.
    let booking =
        http.post(&format!("/v1/holds/{hold_id}/confirm"), Some(&ann), json!({"paymentReference": "pay-1"})).await.ok();
    let booking_id = booking["booking"]["bookingId"].as_str().unwrap().to_string();
    let code = booking["booking"]["tickets"][0]["code"].as_str().unwrap().to_string();
    let listed = http.get("/v1/bookings?limit=10", Some(&ann)).await.ok();
    assert_eq!(listed["bookings"][0]["bookingId"], booking_id.as_str());
    let read = http.get(&format!("/v1/bookings/{booking_id}"), Some(&ann)).await.ok();
    assert_eq!(read["booking"]["paymentReference"], "pay-1");

    // A second hold, released.
    let other =
        http.post(&hold_path, Some(&ann), json!({"bestAvailable": {"sectionId": "GA", "quantity": 2}})).await.ok();
    let other_id = other["hold"]["holdId"].as_str().unwrap();
    let released = http.delete(&format!("/v1/holds/{other_id}"), Some(&ann)).await.ok();
    assert_eq!(released["hold"]["status"], "HOLD_STATUS_RELEASED");

    // Admin: redeem a ticket, report, update, pricing, node status, backup.
    let redeemed = http.post("/v1/tickets/redeem", Some(&admin), json!({"code": code})).await.ok();
    assert_eq!(redeemed["result"], "RESULT_ADMITTED");
    let report = http.get(&format!("/v1/events/{event_id}/report"), Some(&admin)).await.ok();
    assert_eq!(report["eventId"], event_id.as_str());
    let patch = json!({"name": "Json Night (late show)"}).to_string();
    let updated = http
        .send(
            Method::PATCH,
            &format!("/v1/events/{event_id}"),
            Some(&admin),
            &[("content-type", "application/json")],
            patch,
        )
        .await
        .ok();
    assert_eq!(updated["event"]["name"], "Json Night (late show)");
    let pricing = json!({"rules": {"floorPercent": 80, "ceilingPercent": 200}}).to_string();
    let priced =
        http.send(Method::PUT, &format!("/v1/events/{event_id}/pricing"), Some(&admin), &[], pricing).await.ok();
    assert!(!priced["availability"].as_array().unwrap().is_empty());
    let node = http.get("/v1/node", Some(&admin)).await.ok();
    assert_eq!(node["eventsOwned"], "1");
    // Membership changes need a cluster: a single node says so (409), naming why.
    let change = json!({"add": [{"nodeId": "node-9", "address": "127.0.0.1:7"}]});
    let refused = http
        .post("/v1/cluster/members", Some(&admin), change)
        .await
        .refused(StatusCode::CONFLICT, "FAILED_PRECONDITION");
    assert!(refused["message"].as_str().unwrap().contains("not in a cluster"), "{refused}");
    let backup = http.post("/v1/backups", Some(&admin), json!({"path": "json.redb"})).await.ok();
    assert!(backup["path"].as_str().unwrap().ends_with("json.redb"));

    let cancelled = http.delete(&format!("/v1/bookings/{booking_id}"), Some(&ann)).await.ok();
    assert!(cancelled["booking"]["cancelledAt"].is_string(), "{cancelled}");

    // Waitlist: nothing to wait for while seats are on sale.
    let waitlist = format!("/v1/events/{event_id}/waitlist");
    http.post(&waitlist, Some(&ann), json!({"quantity": 1})).await.refused(StatusCode::CONFLICT, "FAILED_PRECONDITION");
    let standing = http.get(&waitlist, Some(&ann)).await.ok();
    assert_eq!(standing["state"], "STATE_NOT_WAITING");
    assert_eq!(http.delete(&waitlist, Some(&ann)).await.ok()["state"], "STATE_NOT_WAITING");

    // Waiting room: configure, join, watch the standing as server-sent events.
    let configured = http
        .send(
            Method::PUT,
            &format!("/v1/events/{event_id}/queue/config"),
            Some(&admin),
            &[],
            json!({"enabled": true, "admissionRatePerSecond": 50}).to_string(),
        )
        .await
        .ok();
    assert_eq!(configured["enabled"], true);
    let joined = http.post(&format!("/v1/events/{event_id}/queue"), Some(&ann), json!({})).await.ok();
    let queue_token = joined["queueToken"].as_str().unwrap();
    let mut standing = http
        .events(
            &format!("/v1/events/{event_id}/queue/watch?queue_token={queue_token}"),
            &[("authorization", &format!("Bearer {ann}"))],
        )
        .await;
    let mut last = standing.next().await;
    while last.data["state"] == "QUEUE_STATE_WAITING" {
        last = standing.next().await;
    }
    assert_eq!(last.data["state"], "QUEUE_STATE_ADMITTED", "{:?}", last);
    let pass = last.data["admissionPass"].as_str().unwrap();
    let with_pass =
        http.post(&hold_path, Some(&ann), json!({"seats": {"seatIds": ["S:B:1"]}, "admissionPass": pass})).await.ok();
    assert_eq!(with_pass["hold"]["tickets"][0]["seatId"], "S:B:1");

    let cancelled = http.post(&format!("/v1/events/{event_id}/cancel"), Some(&admin), json!({})).await.ok();
    assert_eq!(cancelled["event"]["status"], "EVENT_STATUS_CANCELLED");
    server.stop().await;
}

#[tokio::test]
async fn errors_carry_an_http_status_the_grpc_code_and_the_field() {
    let server = TestServer::start_with(|config| {
        config.limits.buyer_requests_per_second = 1;
        config.limits.buyer_requests_burst = 3;
        config.limits.request_bytes_max = 1024;
    })
    .await;
    let http = Http::new(&server);
    let admin = server.admin_token();
    let ann = server.token("ann");
    let bob = server.token("bob");
    let event_id = create_event_over_http(&http, &admin, 1, 4).await;
    let holds = format!("/v1/events/{event_id}/holds");

    // Bad input: the body, the query, the address; each names what is wrong.
    let body = http.post(&holds, Some(&ann), json!({"seats": {"seatIds": "S:A:1"}})).await;
    assert_eq!(body.refused(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")["field"], "seats.seatIds");
    let body = http.post(&holds, Some(&ann), json!({"seatz": []})).await;
    assert!(body.refused(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")["message"].as_str().unwrap().contains("seatz"));
    let body = http.send(Method::POST, &holds, Some(&ann), &[], "{not json").await;
    body.refused(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    let body = http.get(&format!("/v1/events/{event_id}?colour=red"), None).await;
    assert_eq!(body.refused(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")["field"], "colour");
    let body = http.get(&format!("/v1/events/{event_id}?include_seats=perhaps"), None).await;
    assert_eq!(body.refused(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")["field"], "include_seats");
    let body = http.post(&holds, Some(&bob), json!({"eventId": "evt_other", "seats": {"seatIds": ["S:A:1"]}})).await;
    assert_eq!(body.refused(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")["field"], "eventId");
    let body = http.post(&holds, Some(&bob), json!({"seats": {"seatIds": []}})).await;
    body.refused(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    let big = json!({"seats": {"seatIds": vec!["S:A:1"; 200]}});
    http.post(&holds, Some(&bob), big).await.refused(StatusCode::PAYLOAD_TOO_LARGE, "RESOURCE_EXHAUSTED");

    // Authentication and authorization.
    let missing = http.post(&holds, None, json!({"seats": {"seatIds": ["S:A:1"]}})).await;
    missing.refused(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    assert_eq!(missing.headers["www-authenticate"], "Bearer");
    http.post(&holds, Some("not-a-token"), json!({})).await.refused(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    http.post("/v1/venues", Some(&bob), json!({"name": "Mine"}))
        .await
        .refused(StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    http.get("/v1/node", Some(&bob)).await.refused(StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let hold = http.post(&holds, Some(&bob), json!({"seats": {"seatIds": ["S:A:1"]}})).await.ok();
    let hold_id = hold["hold"]["holdId"].as_str().unwrap();
    let theirs = http.get(&format!("/v1/holds/{hold_id}"), Some(&ann)).await;
    assert!(matches!(theirs.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND), "{}", theirs.text);

    // Not found, conflicts, methods and routes.
    http.get("/v1/events/evt_nope", None).await.refused(StatusCode::NOT_FOUND, "NOT_FOUND");
    http.get("/v1/nothing/here", None).await.refused(StatusCode::NOT_FOUND, "NOT_FOUND");
    let taken = http.post(&holds, Some(&ann), json!({"seats": {"seatIds": ["S:A:1"]}})).await;
    taken.refused(StatusCode::CONFLICT, "FAILED_PRECONDITION");
    assert_eq!(http.delete("/v1/events/search", None).await.status, StatusCode::METHOD_NOT_ALLOWED);

    // A buyer over their rate limit is told when to come back.
    let mut limited = None;
    for _ in 0..10 {
        let answer = http.get("/v1/bookings", Some(&ann)).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("the buyer's rate limit is reached within 10 calls");
    limited.refused(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED");
    assert!(limited.headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);

    // No development tokens unless the server uses the development secret.
    http.post("/v1/dev/token", None, json!({"user": "ann"})).await.refused(StatusCode::NOT_FOUND, "NOT_FOUND");
    server.stop().await;
}

fn hold_json(seat: &str) -> Value {
    json!({"seats": {"seatIds": [seat]}})
}

#[tokio::test]
async fn the_seat_map_streams_and_a_browser_resumes_with_last_event_id() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let admin = server.admin_token();
    let ann = server.token("ann");
    let event_id = create_event_over_http(&http, &admin, 1, 8).await;
    let watch = format!("/v1/events/{event_id}/watch");
    let holds = format!("/v1/events/{event_id}/holds");

    let mut stream = http.events(&watch, &[]).await;
    let snapshot = stream.next().await;
    assert_eq!(snapshot.data["kind"], "KIND_SNAPSHOT");
    assert_eq!(snapshot.event, None, "the stream's messages are of the default type");
    let version: u64 = snapshot.id.clone().unwrap().parse().unwrap();
    assert_eq!(snapshot.data["version"], version.to_string());
    assert_eq!(snapshot.data["seats"].as_array().unwrap().len(), 8);
    for seat in ["S:A:1", "S:A:2", "S:A:3"] {
        http.post(&holds, Some(&ann), hold_json(seat)).await.ok();
    }
    let mut last_id = String::new();
    for (offset, seat) in ["S:A:1", "S:A:2", "S:A:3"].iter().enumerate() {
        let change = stream.next().await;
        assert_eq!(change.data["kind"], "KIND_CHANGE");
        assert_eq!(change.id.clone().unwrap(), (version + 1 + offset as u64).to_string());
        assert_eq!(change.data["seats"], json!([{"seatId": seat, "status": "SEAT_STATUS_HELD"}]));
        last_id = change.id.unwrap();
    }
    drop(stream);

    // Missed while away: two holds. The browser reconnects with the last id it saw.
    for seat in ["S:A:4", "S:A:5"] {
        http.post(&holds, Some(&ann), hold_json(seat)).await.ok();
    }
    let mut resumed = http.events(&watch, &[("last-event-id", &last_id)]).await;
    let first = resumed.next().await;
    assert_eq!(first.data["kind"], "KIND_CHANGE", "resumes with changes, not a snapshot: {:?}", first);
    assert_eq!(first.id.unwrap(), (version + 4).to_string());
    assert_eq!(first.data["seats"][0]["seatId"], "S:A:4");
    let second = resumed.next().await;
    assert_eq!(second.id.unwrap(), (version + 5).to_string());
    assert_eq!(second.data["seats"][0]["seatId"], "S:A:5");
    drop(resumed);

    // The same by hand, and a version that is not one.
    let mut by_hand = http.events(&format!("{watch}?after_version={}", version + 4), &[]).await;
    assert_eq!(by_hand.next().await.data["seats"][0]["seatId"], "S:A:5");
    drop(by_hand);
    let wrong = http.send(Method::GET, &watch, None, &[("last-event-id", "seven")], Bytes::new()).await;
    assert_eq!(wrong.refused(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")["field"], "last-event-id");
    http.get("/v1/events/evt_nope/watch", None).await.refused(StatusCode::NOT_FOUND, "NOT_FOUND");
    server.stop().await;
}

#[tokio::test]
async fn grpc_web_cors_and_the_page_share_the_port_with_grpc() {
    let server = TestServer::start_with(|config| {
        config.http.cors_allowed_origins = vec!["https://tickets.example.com".into()];
    })
    .await;
    let http = Http::new(&server);
    let admin = server.admin_token();
    let event_id = create_event_over_http(&http, &admin, 1, 3).await;

    // grpc-web over HTTP/1.1: a framed protobuf in, a data frame and a trailer frame out.
    let message = pb::GetEventRequest { event_id: event_id.clone(), ..Default::default() }.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let answer = http
        .send(
            Method::POST,
            "/turnstile.v1.CatalogService/GetEvent",
            None,
            &[("content-type", "application/grpc-web+proto"), ("x-grpc-web", "1")],
            framed,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/grpc-web+proto");
    let bytes = &answer.bytes[..];
    assert_eq!(bytes[0], 0, "a data frame first");
    let length = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
    let response = pb::GetEventResponse::decode(&bytes[5..5 + length]).unwrap();
    assert_eq!(response.event.unwrap().event_id, event_id);
    assert_eq!(bytes[5 + length], 0x80, "then the trailers");
    let trailers = String::from_utf8_lossy(&bytes[5 + length + 5..]);
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");

    // CORS: the configured origin may call, preflight included; another origin is not told it may.
    let preflight = http
        .send(
            Method::OPTIONS,
            &format!("/v1/events/{event_id}/holds"),
            None,
            &[
                ("origin", "https://tickets.example.com"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization,content-type"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(preflight.status, StatusCode::OK);
    assert_eq!(preflight.headers["access-control-allow-origin"], "https://tickets.example.com");
    assert!(preflight.headers["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let allowed = http
        .send(
            Method::GET,
            &format!("/v1/events/{event_id}"),
            None,
            &[("origin", "https://tickets.example.com")],
            Bytes::new(),
        )
        .await;
    assert_eq!(allowed.headers["access-control-allow-origin"], "https://tickets.example.com");
    let other = http
        .send(Method::GET, &format!("/v1/events/{event_id}"), None, &[("origin", "https://evil.example")], Bytes::new())
        .await;
    assert!(other.headers.get("access-control-allow-origin").is_none());

    // The page and its assets, built into the binary.
    let page = http.get("/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert!(page.text.contains("/assets/seatmap.js"), "{}", page.text);
    let script = http.get("/assets/seatmap.js", None).await;
    assert_eq!(script.headers["content-type"], "text/javascript; charset=utf-8");
    assert!(script.text.contains("EventSource"));
    assert_eq!(http.get("/assets/seatmap.css", None).await.status, StatusCode::OK);

    // gRPC itself is unchanged on the same port.
    let view = server
        .catalog()
        .get_event(pb::GetEventRequest { event_id: event_id.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(view.into_inner().event.unwrap().event_id, event_id);
    server.stop().await;
}

#[tokio::test]
async fn without_cors_origins_no_cross_origin_call_is_allowed_and_http_can_be_off() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let answer =
        http.send(Method::GET, "/v1/events/search", None, &[("origin", "https://a.example")], Bytes::new()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers.get("access-control-allow-origin").is_none());
    server.stop().await;

    let server = TestServer::start_with(|config| config.http.enabled = false).await;
    let http = Http::new(&server);
    // HTTP/1.1 is not spoken at all then; gRPC still is.
    let request =
        http::Request::builder().uri(format!("{}/v1/events/search", http.base)).body(Full::new(Bytes::new())).unwrap();
    let refused = match http.client.request(request).await {
        Ok(response) => response.status() != StatusCode::OK,
        Err(_) => true,
    };
    assert!(refused, "no JSON route answers with [http] enabled = false");
    server.catalog().search_events(pb::SearchEventsRequest::default()).await.unwrap();
    server.stop().await;
}
