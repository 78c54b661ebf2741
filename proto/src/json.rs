//! The proto3 JSON mapping of the API's messages, for the HTTP routes: read and written through
//! the descriptor set the build embeds (prost-reflect), so JSON bodies follow the proto exactly
//! and there is no hand-written twin of any message.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};

static POOL: LazyLock<DescriptorPool> =
    LazyLock::new(|| DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET).expect("the embedded descriptor set decodes"));

/// A JSON body that is not the named message, with serde's description of where and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(String);

fn descriptor(message: &str) -> MessageDescriptor {
    POOL.get_message_by_name(message).unwrap_or_else(|| panic!("{message} is not in the descriptor set"))
}

/// Reads `json` as the proto3 JSON form of `message` (a full name such as
/// "turnstile.v1.HoldSeatsRequest"). Unknown fields are refused, named.
pub fn decode<T: prost::Message + Default>(message: &str, json: &[u8]) -> Result<T, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let read = read(message, &mut deserializer)?;
    deserializer.end().map_err(|error| JsonError(error.to_string()))?;
    Ok(read)
}

/// `message` from any serde deserializer of its JSON form; an error names the path to the bad field.
fn read<'de, T, D>(message: &str, deserializer: D) -> Result<T, JsonError>
where
    T: prost::Message + Default,
    D: serde::Deserializer<'de>,
{
    let mut track = serde_path_to_error::Track::new();
    let dynamic = DynamicMessage::deserialize_with_options(
        descriptor(message),
        serde_path_to_error::Deserializer::new(deserializer, &mut track),
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .map_err(|error| {
        let path = track.path().to_string();
        JsonError(if path == "." { error.to_string() } else { format!("{path}: {error}") })
    })?;
    dynamic.transcode_to::<T>().map_err(|error| JsonError(error.to_string()))
}

/// Whether `message` has a top-level field of this proto name.
pub fn has_field(message: &str, field: &str) -> bool {
    descriptor(message).get_field_by_name(field).is_some()
}

/// Reads a request of `message` from a JSON body (empty for none) and named values taken from
/// elsewhere (an HTTP route's path and query), each the proto or JSON name of a top-level field of
/// the message and its value as text: a bool is `true` or `false`, numbers, enums (by name) and
/// timestamps (RFC 3339) are read as proto3 JSON reads their quoted form. A value also present in
/// the body must agree with it.
pub fn decode_parts<T: prost::Message + Default>(
    message: &str,
    body: &[u8],
    values: &[(&str, &str)],
) -> Result<T, JsonError> {
    if values.is_empty() {
        return decode(message, if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body });
    }
    let descriptor = descriptor(message);
    let mut object = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(object)) => object,
            Ok(_) => return Err(JsonError("the body must be a JSON object".to_string())),
            Err(error) => return Err(JsonError(error.to_string())),
        }
    };
    for (name, text) in values {
        let field = descriptor
            .get_field_by_name(name)
            .or_else(|| descriptor.get_field_by_json_name(name))
            .ok_or_else(|| JsonError(format!("{name}: no such parameter")))?;
        let value = match field.kind() {
            prost_reflect::Kind::Bool if !field.is_list() => match *text {
                "true" | "1" | "" => serde_json::Value::Bool(true),
                "false" | "0" => serde_json::Value::Bool(false),
                other => return Err(JsonError(format!("{name}: expected true or false, got {other:?}"))),
            },
            _ if field.is_list() || field.is_map() => {
                return Err(JsonError(format!("{name}: a list cannot be given here; put it in the body")));
            }
            _ => serde_json::Value::String(text.to_string()),
        };
        // The body may name the field by its JSON name or its proto name.
        let existing = object.remove(field.json_name()).or_else(|| object.remove(field.name()));
        let disagrees = existing.as_ref().is_some_and(|existing| *existing != value && existing.as_str() != Some(""));
        if let (true, Some(existing)) = (disagrees, existing) {
            return Err(JsonError(format!("{}: the body says {existing}, the address {value}", field.json_name())));
        }
        object.insert(field.json_name().to_string(), value);
    }
    read(message, serde_json::Value::Object(object))
}

/// Writes `value` as the proto3 JSON form of `message`: lowerCamelCase names, 64-bit integers as
/// strings, enums by name, and every field, defaults included, so a client never has to know
/// which zero a missing field stands for.
pub fn encode<T: prost::Message>(message: &str, value: &T) -> Vec<u8> {
    let mut dynamic = DynamicMessage::new(descriptor(message));
    dynamic.transcode_from(value).expect("a generated message transcodes into its own descriptor");
    let mut serializer = serde_json::Serializer::new(Vec::with_capacity(256));
    dynamic
        .serialize_with_options(&mut serializer, &SerializeOptions::new().skip_default_fields(false))
        .expect("serializing into memory does not fail");
    serializer.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    #[test]
    fn a_request_round_trips_through_its_json_form() {
        let request: v1::HoldSeatsRequest = decode(
            "turnstile.v1.HoldSeatsRequest",
            br#"{"eventId": "e1", "seats": {"seatIds": ["101:A:1", "101:A:2"]}, "idempotencyKey": "k"}"#,
        )
        .unwrap();
        assert_eq!(request.event_id, "e1");
        assert_eq!(
            request.selection,
            Some(v1::hold_seats_request::Selection::Seats(v1::SeatList {
                seat_ids: vec!["101:A:1".into(), "101:A:2".into()]
            }))
        );
        let json = String::from_utf8(encode("turnstile.v1.HoldSeatsRequest", &request)).unwrap();
        assert!(json.contains(r#""eventId":"e1""#), "{json}");
        // Defaults are written too.
        assert!(json.contains(r#""admissionPass":"""#), "{json}");
    }

    #[test]
    fn path_and_query_values_fill_their_fields() {
        let request: v1::GetEventRequest =
            decode_parts("turnstile.v1.GetEventRequest", b"", &[("event_id", "e1"), ("includeSeats", "true")]).unwrap();
        assert_eq!(request.event_id, "e1");
        assert!(request.include_seats);
        assert!(!request.include_layout);
        let request: v1::SearchEventsRequest = decode_parts(
            "turnstile.v1.SearchEventsRequest",
            b"",
            &[("page_size", "5"), ("starts_after", "2027-01-02T03:04:05Z"), ("sort", "SORT_DATE")],
        )
        .unwrap();
        assert_eq!(request.page_size, 5);
        assert_eq!(request.starts_after.unwrap().seconds, 1_798_859_045);
        assert_eq!(request.sort, v1::search_events_request::Sort::Date as i32);
        let request: v1::ConfirmHoldRequest =
            decode_parts("turnstile.v1.ConfirmHoldRequest", br#"{"paymentReference": "p"}"#, &[("hold_id", "h1")])
                .unwrap();
        assert_eq!((request.hold_id.as_str(), request.payment_reference.as_str()), ("h1", "p"));

        for (values, body, expected) in [
            (&[("page_size", "many")][..], &b""[..], "pageSize"),
            (&[("colour", "red")][..], &b""[..], "colour: no such parameter"),
            (&[("include_seats", "maybe")][..], &b""[..], "include_seats: expected true or false"),
            (&[("hold_id", "h1")][..], &br#"{"holdId": "h2"}"#[..], "holdId: the body says"),
            (&[("hold_id", "h1")][..], &b"[1]"[..], "must be a JSON object"),
        ] {
            let message = if values[0].0 == "hold_id" {
                "turnstile.v1.ConfirmHoldRequest"
            } else {
                "turnstile.v1.SearchEventsRequest"
            };
            let error = match message {
                "turnstile.v1.ConfirmHoldRequest" => {
                    decode_parts::<v1::ConfirmHoldRequest>(message, body, values).unwrap_err()
                }
                _ if values[0].0 == "include_seats" => {
                    decode_parts::<v1::GetEventRequest>("turnstile.v1.GetEventRequest", body, values).unwrap_err()
                }
                _ => decode_parts::<v1::SearchEventsRequest>(message, body, values).unwrap_err(),
            }
            .to_string();
            assert!(error.contains(expected), "{values:?}: {error}");
        }
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused_with_their_name() {
        let error = decode::<v1::HoldSeatsRequest>("turnstile.v1.HoldSeatsRequest", br#"{"eventid": "e1"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("eventid"), "{error}");
        let error = decode::<v1::HoldSeatsRequest>("turnstile.v1.HoldSeatsRequest", br#"{"seats": {"seatIds": 3}}"#)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("seats.seatIds: "), "{error}");
        assert!(decode::<v1::HoldSeatsRequest>("turnstile.v1.HoldSeatsRequest", b"{} x").is_err());
    }
}
