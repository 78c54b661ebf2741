//! Conversions between protobuf messages and engine types. Field checks that only concern the
//! wire format (timestamps, id lengths) happen here; everything about meaning is the engine's.

use prost_types::Timestamp;
use tonic::Status;
use turnstile_engine::actor::EventOverview;
use turnstile_engine::catalog::{EventInfo, Performer, Venue};
use turnstile_engine::engine::EventDetails;
use turnstile_engine::feed::{SnapshotReason, WatchItem};
use turnstile_engine::inventory::{
    AvailabilityView, BookingStatus, BookingView, EventStatus, HoldStatus, HoldView, PriceLevel, PriceStep,
    PricingRules, SeatStatus, TicketView,
};
use turnstile_engine::seat_map::{RowSpec, SectionSpec};
use turnstile_proto::v1 as pb;

use turnstile_engine::error::quoted;

use crate::error::invalid;

/// Longest id accepted in a request; anything longer names nothing.
const ID_LENGTH_MAX: usize = 128;

pub fn timestamp(unix_ms: i64) -> Timestamp {
    Timestamp { seconds: unix_ms.div_euclid(1_000), nanos: (unix_ms.rem_euclid(1_000) * 1_000_000) as i32 }
}

pub fn timestamp_u(unix_ms: u64) -> Timestamp {
    timestamp(unix_ms as i64)
}

/// Milliseconds since the Unix epoch; years 1970 to 9999 only.
pub fn unix_ms(field: &str, timestamp: &Timestamp) -> Result<i64, Status> {
    const SECONDS_MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if !(0..=SECONDS_MAX).contains(&timestamp.seconds) || !(0..1_000_000_000).contains(&timestamp.nanos) {
        return Err(invalid(field, "is not a valid timestamp between 1970 and 9999"));
    }
    Ok(timestamp.seconds * 1_000 + i64::from(timestamp.nanos / 1_000_000))
}

pub fn required_time(field: &str, timestamp: Option<&Timestamp>) -> Result<i64, Status> {
    match timestamp {
        Some(timestamp) => unix_ms(field, timestamp),
        None => Err(invalid(field, "is required")),
    }
}

/// A required id field: non-empty, bounded.
pub fn id<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if value.len() > ID_LENGTH_MAX {
        return Err(invalid(field, format!("is longer than {ID_LENGTH_MAX} bytes")));
    }
    Ok(value)
}

/// An optional key: empty means absent.
pub fn optional_key(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

pub fn money(amount_minor: i64, currency: &str) -> pb::Money {
    pb::Money { amount_minor, currency: currency.to_string() }
}

pub fn section_specs(sections: Vec<pb::Section>) -> Vec<SectionSpec> {
    sections
        .into_iter()
        .map(|section| SectionSpec {
            section_id: section.section_id,
            name: section.name,
            rows: section
                .rows
                .into_iter()
                .map(|row| RowSpec { label: row.label, seat_labels: row.seat_labels })
                .collect(),
            general_admission_capacity: section.general_admission_capacity,
        })
        .collect()
}

/// Price levels and the one currency they share.
pub fn price_levels(levels: Vec<pb::PriceLevel>) -> Result<(String, Vec<PriceLevel>), Status> {
    let mut currency: Option<String> = None;
    let mut converted = Vec::with_capacity(levels.len());
    for (position, level) in levels.into_iter().enumerate() {
        let price = level.price.ok_or_else(|| invalid(&format!("price_levels[{position}].price"), "is required"))?;
        match &currency {
            None => currency = Some(price.currency.clone()),
            Some(first) if *first != price.currency => {
                return Err(invalid(
                    &format!("price_levels[{position}].price.currency"),
                    format!("{} differs from the event's currency {}", quoted(&price.currency), quoted(first)),
                ));
            }
            Some(_) => {}
        }
        converted.push(PriceLevel {
            price_level_id: level.price_level_id,
            name: level.name,
            amount_minor: price.amount_minor,
            section_ids: level.section_ids,
        });
    }
    Ok((currency.unwrap_or_default(), converted))
}

/// The venue without its layout (`sections` empty), with the layout's version.
pub fn venue_summary(venue: &Venue) -> pb::Venue {
    pb::Venue {
        venue_id: venue.venue_id.to_string(),
        name: venue.name.clone(),
        city: venue.city.clone(),
        address: venue.address.clone(),
        sections: Vec::new(),
        capacity: venue.seat_map.capacity(),
        layout_version: format!("{:016x}", venue.seat_map.layout_version),
    }
}

pub fn venue(venue: &Venue) -> pb::Venue {
    pb::Venue {
        sections: venue
            .seat_map
            .specs()
            .into_iter()
            .map(|section| pb::Section {
                section_id: section.section_id,
                name: section.name,
                rows: section
                    .rows
                    .into_iter()
                    .map(|row| pb::Row { label: row.label, seat_labels: row.seat_labels })
                    .collect(),
                general_admission_capacity: section.general_admission_capacity,
            })
            .collect(),
        ..venue_summary(venue)
    }
}

pub fn performer(performer: &Performer) -> pb::Performer {
    pb::Performer {
        performer_id: performer.performer_id.to_string(),
        name: performer.name.clone(),
        description: performer.description.clone(),
        genre: performer.genre.clone(),
    }
}

fn event_status(status: &EventStatus) -> pb::EventStatus {
    match status {
        EventStatus::OnSale => pb::EventStatus::OnSale,
        EventStatus::Cancelled => pb::EventStatus::Cancelled,
    }
}

/// The catalog record, with terms and status taken from the live overview when there is one.
pub fn event(info: &EventInfo, overview: Option<&EventOverview>) -> pb::Event {
    let terms = overview.map(|overview| &overview.terms).unwrap_or(&info.terms);
    let status = overview.map(|overview| &overview.status).unwrap_or(&info.status);
    pb::Event {
        event_id: info.event_id.to_string(),
        name: info.name.clone(),
        description: info.description.clone(),
        category: info.category.clone(),
        venue_id: info.venue_id.to_string(),
        performer_ids: info.performer_ids.iter().map(ToString::to_string).collect(),
        starts_at: Some(timestamp(info.starts_at_ms)),
        ends_at: Some(timestamp(info.ends_at_ms)),
        price_levels: terms
            .price_levels
            .iter()
            .map(|level| pb::PriceLevel {
                price_level_id: level.price_level_id.clone(),
                name: level.name.clone(),
                price: Some(money(level.amount_minor, &terms.currency)),
                section_ids: level.section_ids.clone(),
            })
            .collect(),
        hold_ttl_seconds: (terms.hold_ttl_ms / 1_000) as u32,
        buyer_seat_limit: terms.buyer_seat_limit,
        status: event_status(status) as i32,
        created_at: Some(timestamp_u(info.created_at_ms)),
    }
}

fn availability(row: &AvailabilityView, currency: &str) -> pb::Availability {
    pb::Availability {
        section_id: row.section_id.clone(),
        price_level_id: row.price_level_id.clone(),
        price: Some(money(row.amount_minor, currency)),
        total: row.total,
        available: row.available,
        held: row.held,
        booked: row.booked,
        general_admission: row.general_admission,
    }
}

fn seat_status(status: SeatStatus) -> pb::SeatStatus {
    match status {
        SeatStatus::Available => pb::SeatStatus::Available,
        SeatStatus::Held => pb::SeatStatus::Held,
        SeatStatus::Booked => pb::SeatStatus::Booked,
    }
}

/// GetEvent's answer; the venue's layout only when `include_layout`.
pub fn event_details(details: &EventDetails, include_layout: bool) -> pb::GetEventResponse {
    let overview = &details.overview;
    pb::GetEventResponse {
        event: Some(event(&details.info, Some(overview))),
        venue: Some(if include_layout { venue(&details.venue) } else { venue_summary(&details.venue) }),
        performers: details.performers.iter().map(|performer| self::performer(performer)).collect(),
        availability: overview.availability.iter().map(|row| availability(row, &overview.terms.currency)).collect(),
        seats: seat_states(overview.seats.iter().flatten()),
        version: overview.version,
    }
}

fn tickets(tickets: &[TicketView], currency: &str) -> Vec<pb::Ticket> {
    tickets
        .iter()
        .map(|ticket| pb::Ticket {
            section_id: ticket.section_id.clone(),
            seat_id: ticket.seat_id.clone().unwrap_or_default(),
            price_level_id: ticket.price_level_id.clone(),
            price: Some(money(ticket.amount_minor, currency)),
            code: String::new(),
            redeemed_at: ticket.redeemed_at_ms.map(timestamp_u),
        })
        .collect()
}

pub fn hold(hold: &HoldView) -> pb::Hold {
    let status = match hold.status {
        HoldStatus::Active => pb::HoldStatus::Active,
        HoldStatus::Confirmed => pb::HoldStatus::Confirmed,
        HoldStatus::Released => pb::HoldStatus::Released,
        HoldStatus::Expired => pb::HoldStatus::Expired,
        HoldStatus::Cancelled => pb::HoldStatus::Cancelled,
    };
    pb::Hold {
        hold_id: hold.hold_id.to_string(),
        event_id: hold.event_id.to_string(),
        buyer_id: hold.buyer.to_string(),
        tickets: tickets(&hold.tickets, &hold.currency),
        total: Some(money(hold.total_minor, &hold.currency)),
        status: status as i32,
        placed_at: Some(timestamp_u(hold.placed_at_ms)),
        expires_at: Some(timestamp_u(hold.expires_at_ms)),
        booking_id: hold.booking_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        extensions: hold.extensions,
        payment_in_progress: hold.payment_in_progress,
    }
}

pub fn booking(booking: &BookingView) -> pb::Booking {
    let status = match booking.status {
        BookingStatus::Confirmed => pb::BookingStatus::Confirmed,
        BookingStatus::Cancelled => pb::BookingStatus::Cancelled,
    };
    pb::Booking {
        booking_id: booking.booking_id.to_string(),
        event_id: booking.event_id.to_string(),
        buyer_id: booking.buyer.to_string(),
        hold_id: booking.hold_id.to_string(),
        tickets: tickets(&booking.tickets, &booking.currency),
        total: Some(money(booking.total_minor, &booking.currency)),
        status: status as i32,
        payment_reference: booking.payment_reference.clone(),
        booked_at: Some(timestamp_u(booking.booked_at_ms)),
        cancelled_at: booking.cancelled_at_ms.map(timestamp_u),
    }
}

/// One message of a WatchEvent stream.
pub fn watch_item(item: &WatchItem) -> pb::WatchEventResponse {
    use pb::watch_event_response::{Kind, SnapshotReason as Reason};
    match item {
        WatchItem::Snapshot { overview, reason } => pb::WatchEventResponse {
            kind: Kind::Snapshot as i32,
            snapshot_reason: match reason {
                SnapshotReason::Initial => Reason::Initial,
                SnapshotReason::TooFarBehind => Reason::TooFarBehind,
                SnapshotReason::Lagged => Reason::Lagged,
                SnapshotReason::WholeEvent => Reason::WholeEvent,
            } as i32,
            version: overview.version,
            status: event_status(&overview.status) as i32,
            seats: seat_states(overview.seats.iter().flatten()),
            availability: overview.availability.iter().map(|row| availability(row, &overview.terms.currency)).collect(),
        },
        WatchItem::Change(change) => pb::WatchEventResponse {
            kind: Kind::Change as i32,
            snapshot_reason: Reason::Unspecified as i32,
            version: change.version,
            status: event_status(&change.status) as i32,
            seats: seat_states(change.seats.iter()),
            availability: change.availability.iter().map(|row| availability(row, &change.currency)).collect(),
        },
    }
}

fn seat_states<'a>(seats: impl Iterator<Item = &'a (String, SeatStatus)>) -> Vec<pb::SeatState> {
    seats
        .map(|(seat_id, status)| pb::SeatState { seat_id: seat_id.clone(), status: seat_status(*status) as i32 })
        .collect()
}

pub fn pricing_rules(rules: pb::PricingRules) -> PricingRules {
    let steps = |steps: Vec<pb::PriceStep>| {
        steps
            .into_iter()
            .map(|step| PriceStep { threshold: step.threshold, adjust_percent: step.adjust_percent })
            .collect()
    };
    PricingRules {
        floor_percent: rules.floor_percent,
        ceiling_percent: rules.ceiling_percent,
        sell_through_steps: steps(rules.sell_through_steps),
        demand_steps: steps(rules.demand_steps),
    }
}
