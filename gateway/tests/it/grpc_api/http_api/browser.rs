//! The live seat-map page in headless Chromium: the page shows a seat available, a hold made
//! through the API turns it held on the page without a reload (over server-sent events); then the
//! page itself, with the buyer's token typed in, holds a clicked seat and confirms it into a
//! booking; a screenshot is saved. The browser is driven by `gateway/tests/browser/seatmap.mjs` (Node.js and
//! playwright-core, installed by `.ci/run` with Debian's chromium).
//!
//! Without Chromium, Node.js or the script's packages the test says what is missing and passes,
//! unless `TURNSTILE_BROWSER_TESTS=required` (set by `.ci/run`), where it fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use turnstile_proto::v1 as pb;

use super::{create_event_over_http, Http};
use crate::common::*;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What the browser test needs and does not find, if anything.
fn missing(chromium: &Path) -> Option<String> {
    if !chromium.exists() {
        return Some(format!("no Chromium at {} (apt-get install chromium)", chromium.display()));
    }
    if std::process::Command::new("node").arg("--version").output().map_or(true, |output| !output.status.success()) {
        return Some("no node on PATH (apt-get install nodejs)".to_string());
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some(format!("no playwright-core under {} (npm ci there)", browser_dir().display()));
    }
    None
}

#[tokio::test]
async fn the_seat_map_page_shows_a_hold_made_through_the_api_live() {
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if let Some(what) = missing(&chromium) {
        let required = std::env::var("TURNSTILE_BROWSER_TESTS").is_ok_and(|value| value == "required");
        assert!(!required, "the browser test cannot run: {what}");
        eprintln!("NOT RUN: the browser test needs {what}; .ci/run installs it");
        return;
    }
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let event_id = create_event_over_http(&http, &server.admin_token(), 2, 6).await;
    let ann = server.token("ann");
    let seat = "S:B:3";
    let clicked = "S:A:5";
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("seatmap.png");
    let _ = std::fs::remove_file(&screenshot);

    let script = browser_dir().join("seatmap.mjs");
    let mut command = std::process::Command::new("node");
    command
        .arg(&script)
        .env("TURNSTILE_URL", format!("http://{}", server.server.as_ref().unwrap().local_addr))
        .env("EVENT_ID", &event_id)
        .env("TOKEN", &ann)
        .env("SEAT_ID", seat)
        .env("SEAT2_ID", clicked)
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", &chromium);
    // The script bounds every wait and has a watchdog of its own (two minutes).
    let output = tokio::time::timeout(Duration::from_secs(150), tokio::task::spawn_blocking(move || command.output()))
        .await
        .expect("the browser script ends within 150 s")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser script failed: {}\n{stdout}\n{stderr}", output.status);
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a result line")).expect("the result line is JSON");
    assert_eq!(result["ok"], true, "{result}");
    assert_ne!(result["before"], result["after"], "the seat's colour changed: {result}");

    // The hold the page showed is the buyer's real hold of that seat.
    let hold_id = result["holdId"].as_str().unwrap().to_string();
    let hold = server
        .booking()
        .get_hold(authed(&ann, pb::GetHoldRequest { hold_id }))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    assert_eq!(hold.tickets[0].seat_id, seat);
    assert_eq!(hold.status, pb::HoldStatus::Active as i32);

    // The page's own hold of the clicked seat, confirmed into a booking.
    assert_eq!(result["booked"], true, "{result}");
    assert_eq!(result["clickedSeat"], clicked);
    let page_hold_id = result["pageHoldId"].as_str().unwrap().to_string();
    assert_ne!(result["holdId"], result["pageHoldId"]);
    let page_hold = server
        .booking()
        .get_hold(authed(&ann, pb::GetHoldRequest { hold_id: page_hold_id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    assert_eq!(page_hold.tickets.len(), 1);
    assert_eq!(page_hold.tickets[0].seat_id, clicked);
    assert_eq!(page_hold.status, pb::HoldStatus::Confirmed as i32);
    assert_eq!(page_hold.booking_id, result["bookingId"].as_str().unwrap());
    let booking = server
        .booking()
        .get_booking(authed(&ann, pb::GetBookingRequest { booking_id: page_hold.booking_id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .booking
        .unwrap();
    assert_eq!((booking.buyer_id.as_str(), booking.hold_id.as_str()), ("ann", page_hold_id.as_str()));
    assert_eq!(booking.status, pb::BookingStatus::Confirmed as i32);

    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1_000, "a PNG screenshot");
    eprintln!("screenshot: {}", screenshot.display());
    server.stop().await;
}
