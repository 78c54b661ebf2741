//! Fuzzes the HTTP routes' reading of requests: arbitrary path/query values and JSON bodies are
//! read as API request messages (`turnstile_proto::json::decode_parts`, what every `/v1` route
//! runs before the service method). Nothing may panic, and a request that reads must write back
//! to JSON that reads as the same message (`json::encode`, what the routes answer with).
//!
//! Input: the first byte picks the message; then `name=value` pairs separated by `&` (the values
//! a route takes from its path and query) up to a zero byte; the rest is the body.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use turnstile_proto::json;
use turnstile_proto::v1 as pb;

fn check<T: prost::Message + Default + PartialEq + Debug>(message: &str, body: &[u8], values: &[(&str, &str)]) {
    let Ok(request) = json::decode_parts::<T>(message, body, values) else { return };
    let written = json::encode(message, &request);
    let again: T = json::decode(message, &written)
        .unwrap_or_else(|error| panic!("{message}: our own JSON does not read back: {error}"));
    assert_eq!(again, request, "{message}: the JSON round trip changed the message");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let (values, body) = match rest.iter().position(|&byte| byte == 0) {
        Some(end) => (&rest[..end], &rest[end + 1..]),
        None => (&[][..], rest),
    };
    let values = String::from_utf8_lossy(values);
    let values: Vec<(&str, &str)> = values
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .take(8)
        .collect();
    match which % 14 {
        0 => check::<pb::GetEventRequest>("turnstile.v1.GetEventRequest", body, &values),
        1 => check::<pb::SearchEventsRequest>("turnstile.v1.SearchEventsRequest", body, &values),
        2 => check::<pb::WatchEventRequest>("turnstile.v1.WatchEventRequest", body, &values),
        3 => check::<pb::HoldSeatsRequest>("turnstile.v1.HoldSeatsRequest", body, &values),
        4 => check::<pb::ConfirmHoldRequest>("turnstile.v1.ConfirmHoldRequest", body, &values),
        5 => check::<pb::ListBookingsRequest>("turnstile.v1.ListBookingsRequest", body, &values),
        6 => check::<pb::JoinWaitlistRequest>("turnstile.v1.JoinWaitlistRequest", body, &values),
        7 => check::<pb::CreateVenueRequest>("turnstile.v1.CreateVenueRequest", body, &values),
        8 => check::<pb::CreateEventRequest>("turnstile.v1.CreateEventRequest", body, &values),
        9 => check::<pb::UpdateEventRequest>("turnstile.v1.UpdateEventRequest", body, &values),
        10 => check::<pb::ConfigureQueueRequest>("turnstile.v1.ConfigureQueueRequest", body, &values),
        11 => check::<pb::SetPricingRequest>("turnstile.v1.SetPricingRequest", body, &values),
        12 => check::<pb::WatchQueueRequest>("turnstile.v1.WatchQueueRequest", body, &values),
        _ => check::<pb::RedeemTicketRequest>("turnstile.v1.RedeemTicketRequest", body, &values),
    }
});
