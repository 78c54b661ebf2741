//! What client commands print: one serde struct per answer (the `--json` form, kept stable and
//! documented in docs/CLI.md) built from the protobuf reply, and its aligned text form.
//!
//! Conventions of the JSON form: times are RFC 3339 strings in UTC, money is
//! `{"amount_minor": 12000, "currency": "EUR"}`, statuses are lower-case words without the proto
//! enum's prefix (`"active"`, `"on_sale"`), absent values are `null`.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;
use turnstile_proto::v1 as pb;

#[derive(Debug, Serialize)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: String,
}

impl Money {
    fn from_pb(money: Option<&pb::Money>) -> Option<Self> {
        money.map(|money| Self { amount_minor: money.amount_minor, currency: money.currency.clone() })
    }
}

/// Money in major units with two decimals: right for EUR, USD and most currencies; the JSON form
/// keeps the exact minor units.
fn money_text(money: &Option<Money>) -> String {
    match money {
        Some(money) => {
            let sign = if money.amount_minor < 0 { "-" } else { "" };
            let amount = money.amount_minor.unsigned_abs();
            format!("{sign}{}.{:02} {}", amount / 100, amount % 100, money.currency)
        }
        None => "-".into(),
    }
}

fn time(timestamp: Option<&prost_types::Timestamp>) -> Option<String> {
    timestamp.map(ToString::to_string)
}

fn time_text(time: &Option<String>) -> &str {
    time.as_deref().unwrap_or("-")
}

/// A proto enum's name without its prefix, lower case: `HOLD_STATUS_ACTIVE` -> `active`.
fn enum_word(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase()
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// Left-aligned columns, numbers right-aligned, two spaces apart; no trailing spaces.
fn table(headers: &[&str], numeric: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header_row: Vec<String> = headers.iter().map(|header| header.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            let width = widths[index];
            if index > 0 {
                line.push_str("  ");
            }
            if numeric.get(index).copied().unwrap_or(false) {
                let _ = write!(line, "{cell:>width$}");
            } else {
                let _ = write!(line, "{cell:<width$}");
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

// -------------------------------------------------------------------------------------------------
// Events
// -------------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct EventView {
    pub event_id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    /// `on_sale` or `cancelled`.
    pub status: String,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub venue: Option<VenueSummary>,
    pub performers: Vec<PerformerSummary>,
    pub hold_ttl_seconds: u32,
    pub buyer_seat_limit: u32,
    /// Grows with every change to the event's inventory or terms.
    pub version: u64,
    pub availability: Vec<SectionAvailability>,
    /// Every reserved seat, with `--seats` only (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seats: Option<Vec<SeatView>>,
    /// Row order of each reserved section, for the text seat map; not part of the JSON form.
    #[serde(skip)]
    rows: Vec<(String, String, Vec<String>)>,
}

#[derive(Debug, Serialize)]
pub struct VenueSummary {
    pub venue_id: String,
    pub name: String,
    pub city: String,
}

#[derive(Debug, Serialize)]
pub struct PerformerSummary {
    pub performer_id: String,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct SectionAvailability {
    pub section_id: String,
    pub price_level_id: String,
    pub price: Option<Money>,
    pub total: u32,
    pub available: u32,
    pub held: u32,
    pub booked: u32,
    pub general_admission: bool,
}

#[derive(Debug, Serialize)]
pub struct SeatView {
    /// `SECTION:ROW:SEAT`.
    pub seat_id: String,
    /// `available`, `held` or `booked`.
    pub status: String,
}

fn availability(availability: &[pb::Availability]) -> Vec<SectionAvailability> {
    availability
        .iter()
        .map(|section| SectionAvailability {
            section_id: section.section_id.clone(),
            price_level_id: section.price_level_id.clone(),
            price: Money::from_pb(section.price.as_ref()),
            total: section.total,
            available: section.available,
            held: section.held,
            booked: section.booked,
            general_admission: section.general_admission,
        })
        .collect()
}

impl EventView {
    pub fn from_pb(response: pb::GetEventResponse, with_seats: bool) -> Self {
        let event = response.event.unwrap_or_default();
        let status = pb::EventStatus::try_from(event.status).unwrap_or_default();
        let rows = response
            .venue
            .iter()
            .flat_map(|venue| &venue.sections)
            .flat_map(|section| {
                section.rows.iter().map(|row| (section.section_id.clone(), row.label.clone(), row.seat_labels.clone()))
            })
            .collect();
        Self {
            event_id: event.event_id,
            name: event.name,
            description: event.description,
            category: event.category,
            status: enum_word(status.as_str_name(), "EVENT_STATUS_"),
            starts_at: time(event.starts_at.as_ref()),
            ends_at: time(event.ends_at.as_ref()),
            venue: response.venue.map(|venue| VenueSummary {
                venue_id: venue.venue_id,
                name: venue.name,
                city: venue.city,
            }),
            performers: response
                .performers
                .into_iter()
                .map(|performer| PerformerSummary { performer_id: performer.performer_id, name: performer.name })
                .collect(),
            hold_ttl_seconds: event.hold_ttl_seconds,
            buyer_seat_limit: event.buyer_seat_limit,
            version: response.version,
            availability: availability(&response.availability),
            seats: with_seats.then(|| {
                response
                    .seats
                    .into_iter()
                    .map(|seat| SeatView {
                        seat_id: seat.seat_id,
                        status: enum_word(
                            pb::SeatStatus::try_from(seat.status).unwrap_or_default().as_str_name(),
                            "SEAT_STATUS_",
                        ),
                    })
                    .collect()
            }),
            rows,
        }
    }

    pub fn text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "{}  {}", self.event_id, self.name);
        let _ = writeln!(text, "  status      {} ({})", self.status.replace('_', " "), self.category);
        let _ = writeln!(text, "  starts      {}", time_text(&self.starts_at));
        let _ = writeln!(text, "  ends        {}", time_text(&self.ends_at));
        if let Some(venue) = &self.venue {
            let _ = writeln!(text, "  venue       {}, {} ({})", venue.name, venue.city, venue.venue_id);
        }
        if !self.performers.is_empty() {
            let names: Vec<&str> = self.performers.iter().map(|performer| performer.name.as_str()).collect();
            let _ = writeln!(text, "  performers  {}", names.join(", "));
        }
        let _ = writeln!(
            text,
            "  holds       last {} s; at most {} seats per buyer; version {}",
            self.hold_ttl_seconds, self.buyer_seat_limit, self.version
        );
        text.push('\n');
        let mut rows: Vec<Vec<String>> = self
            .availability
            .iter()
            .map(|section| {
                vec![
                    section.section_id.clone(),
                    section.price_level_id.clone(),
                    money_text(&section.price),
                    section.total.to_string(),
                    section.available.to_string(),
                    section.held.to_string(),
                    section.booked.to_string(),
                    if section.general_admission { "standing".into() } else { "seated".into() },
                ]
            })
            .collect();
        let sum = |field: fn(&SectionAvailability) -> u32| -> String {
            self.availability.iter().map(field).map(u64::from).sum::<u64>().to_string()
        };
        rows.push(vec![
            "total".into(),
            String::new(),
            String::new(),
            sum(|section| section.total),
            sum(|section| section.available),
            sum(|section| section.held),
            sum(|section| section.booked),
            String::new(),
        ]);
        text.push_str(&table(
            &["SECTION", "LEVEL", "PRICE", "TOTAL", "AVAILABLE", "HELD", "BOOKED", "KIND"],
            &[false, false, true, true, true, true, true, false],
            &rows,
        ));
        if let Some(seats) = &self.seats {
            text.push_str(&self.seat_map(seats));
        }
        text
    }

    /// One line per row, one character per seat in physical order: `.` available, `h` held,
    /// `x` booked.
    fn seat_map(&self, seats: &[SeatView]) -> String {
        let status: HashMap<&str, &str> =
            seats.iter().map(|seat| (seat.seat_id.as_str(), seat.status.as_str())).collect();
        let mut text = String::from("\nseats ('.' available, 'h' held, 'x' booked; seat labels in row order)\n");
        let section_width = self.rows.iter().map(|(section, _, _)| section.len()).max().unwrap_or(0);
        let row_width = self.rows.iter().map(|(_, row, _)| row.len()).max().unwrap_or(0);
        for (section, row, labels) in &self.rows {
            let marks: String = labels
                .iter()
                .map(|label| match status.get(format!("{section}:{row}:{label}").as_str()) {
                    Some(&"available") => '.',
                    Some(&"held") => 'h',
                    Some(&"booked") => 'x',
                    _ => '?',
                })
                .collect();
            let first = labels.first().map(String::as_str).unwrap_or("");
            let last = labels.last().map(String::as_str).unwrap_or("");
            let _ = writeln!(text, "{section:<section_width$}  {row:<row_width$}  {marks}  ({first}-{last})");
        }
        text
    }
}

#[derive(Debug, Serialize)]
pub struct SearchPage {
    pub events: Vec<EventSummary>,
    /// Pass to `--page` for the next page; `null` on the last page.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EventSummary {
    pub event_id: String,
    pub name: String,
    pub category: String,
    pub venue_name: String,
    pub city: String,
    pub performer_names: Vec<String>,
    pub starts_at: Option<String>,
    pub available: u32,
    pub score: f32,
}

impl SearchPage {
    pub fn from_pb(response: pb::SearchEventsResponse) -> Self {
        Self {
            events: response
                .events
                .into_iter()
                .map(|event| EventSummary {
                    event_id: event.event_id,
                    name: event.name,
                    category: event.category,
                    venue_name: event.venue_name,
                    city: event.city,
                    performer_names: event.performer_names,
                    starts_at: time(event.starts_at.as_ref()),
                    available: event.available,
                    score: event.score,
                })
                .collect(),
            next_page_token: non_empty(&response.next_page_token),
        }
    }

    pub fn text(&self) -> String {
        if self.events.is_empty() {
            return "no events found\n".into();
        }
        let rows: Vec<Vec<String>> = self
            .events
            .iter()
            .map(|event| {
                vec![
                    event.event_id.clone(),
                    time_text(&event.starts_at).to_string(),
                    event.name.clone(),
                    format!("{}, {}", event.venue_name, event.city),
                    event.available.to_string(),
                ]
            })
            .collect();
        let mut text =
            table(&["EVENT", "STARTS", "NAME", "VENUE", "AVAILABLE"], &[false, false, false, false, true], &rows);
        if let Some(token) = &self.next_page_token {
            let _ = writeln!(text, "more: --page {token}");
        }
        text
    }

    pub fn ids(&self) -> String {
        self.events.iter().map(|event| format!("{}\n", event.event_id)).collect()
    }
}

// -------------------------------------------------------------------------------------------------
// Holds and bookings
// -------------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct TicketView {
    pub section_id: String,
    /// `SECTION:ROW:SEAT`; `null` for a general-admission place.
    pub seat_id: Option<String>,
    pub price_level_id: String,
    pub price: Option<Money>,
    /// Set on a confirmed booking's tickets: the code redeemed at the door.
    pub code: Option<String>,
}

fn tickets(tickets: &[pb::Ticket]) -> Vec<TicketView> {
    tickets
        .iter()
        .map(|ticket| TicketView {
            section_id: ticket.section_id.clone(),
            seat_id: non_empty(&ticket.seat_id),
            price_level_id: ticket.price_level_id.clone(),
            price: Money::from_pb(ticket.price.as_ref()),
            code: non_empty(&ticket.code),
        })
        .collect()
}

/// Seats as one short line: "101:A:1 101:A:2" or "FLOOR x2".
fn places_text(tickets: &[TicketView]) -> String {
    let mut seats: Vec<String> = tickets.iter().filter_map(|ticket| ticket.seat_id.clone()).collect();
    let mut standing: Vec<(String, usize)> = Vec::new();
    for ticket in tickets.iter().filter(|ticket| ticket.seat_id.is_none()) {
        match standing.iter_mut().find(|(section, _)| *section == ticket.section_id) {
            Some((_, count)) => *count += 1,
            None => standing.push((ticket.section_id.clone(), 1)),
        }
    }
    seats.extend(standing.into_iter().map(|(section, count)| format!("{section} x{count}")));
    seats.join(" ")
}

#[derive(Debug, Serialize)]
pub struct HoldView {
    pub hold_id: String,
    pub event_id: String,
    pub buyer_id: String,
    /// `active`, `confirmed`, `released`, `expired` or `cancelled`.
    pub status: String,
    pub tickets: Vec<TicketView>,
    pub total: Option<Money>,
    pub placed_at: Option<String>,
    pub expires_at: Option<String>,
    /// Set once the hold is confirmed.
    pub booking_id: Option<String>,
    /// The key the hold was placed with (given or generated): send it again with `--key` to
    /// retry safely. `null` on answers other than `hold`.
    pub idempotency_key: Option<String>,
}

impl HoldView {
    pub fn from_pb(hold: pb::Hold, idempotency_key: Option<String>) -> Self {
        let status = pb::HoldStatus::try_from(hold.status).unwrap_or_default();
        Self {
            status: enum_word(status.as_str_name(), "HOLD_STATUS_"),
            tickets: tickets(&hold.tickets),
            total: Money::from_pb(hold.total.as_ref()),
            placed_at: time(hold.placed_at.as_ref()),
            expires_at: time(hold.expires_at.as_ref()),
            booking_id: non_empty(&hold.booking_id),
            hold_id: hold.hold_id,
            event_id: hold.event_id,
            buyer_id: hold.buyer_id,
            idempotency_key,
        }
    }

    pub fn text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "hold      {}", self.hold_id);
        let _ = writeln!(text, "status    {}", self.status);
        let _ = writeln!(text, "event     {}", self.event_id);
        let _ = writeln!(text, "seats     {}", places_text(&self.tickets));
        let _ = writeln!(text, "total     {}", money_text(&self.total));
        let _ = writeln!(text, "expires   {}", time_text(&self.expires_at));
        if let Some(booking_id) = &self.booking_id {
            let _ = writeln!(text, "booking   {booking_id}");
        }
        if let Some(key) = &self.idempotency_key {
            let _ = writeln!(text, "key       {key}");
        }
        text
    }
}

#[derive(Debug, Serialize)]
pub struct BookingView {
    pub booking_id: String,
    pub event_id: String,
    pub buyer_id: String,
    pub hold_id: String,
    /// `confirmed` or `cancelled`.
    pub status: String,
    pub tickets: Vec<TicketView>,
    pub total: Option<Money>,
    pub payment_reference: String,
    pub booked_at: Option<String>,
    pub cancelled_at: Option<String>,
    /// The key the confirmation was sent with (given or generated); `null` on answers other than
    /// `confirm`.
    pub idempotency_key: Option<String>,
}

impl BookingView {
    pub fn from_pb(booking: pb::Booking, idempotency_key: Option<String>) -> Self {
        let status = pb::BookingStatus::try_from(booking.status).unwrap_or_default();
        Self {
            status: enum_word(status.as_str_name(), "BOOKING_STATUS_"),
            tickets: tickets(&booking.tickets),
            total: Money::from_pb(booking.total.as_ref()),
            booked_at: time(booking.booked_at.as_ref()),
            cancelled_at: time(booking.cancelled_at.as_ref()),
            booking_id: booking.booking_id,
            event_id: booking.event_id,
            buyer_id: booking.buyer_id,
            hold_id: booking.hold_id,
            payment_reference: booking.payment_reference,
            idempotency_key,
        }
    }

    pub fn text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "booking   {}", self.booking_id);
        let _ = writeln!(text, "status    {}", self.status);
        let _ = writeln!(text, "event     {}", self.event_id);
        let _ = writeln!(text, "hold      {}", self.hold_id);
        let _ = writeln!(text, "seats     {}", places_text(&self.tickets));
        let _ = writeln!(text, "total     {}", money_text(&self.total));
        let _ = writeln!(text, "payment   {}", self.payment_reference);
        let _ = writeln!(text, "booked    {}", time_text(&self.booked_at));
        if let Some(cancelled_at) = &self.cancelled_at {
            let _ = writeln!(text, "cancelled {cancelled_at}");
        }
        for ticket in &self.tickets {
            if let Some(code) = &ticket.code {
                let place = ticket.seat_id.as_deref().unwrap_or(&ticket.section_id);
                let _ = writeln!(text, "ticket    {place}  {code}");
            }
        }
        if let Some(key) = &self.idempotency_key {
            let _ = writeln!(text, "key       {key}");
        }
        text
    }
}

#[derive(Debug, Serialize)]
pub struct BookingsPage {
    /// Newest first.
    pub bookings: Vec<BookingView>,
    /// Pass to `--page` for the next page; `null` on the last page.
    pub next_page_token: Option<String>,
}

impl BookingsPage {
    pub fn from_pb(response: pb::ListBookingsResponse) -> Self {
        Self {
            bookings: response.bookings.into_iter().map(|booking| BookingView::from_pb(booking, None)).collect(),
            next_page_token: non_empty(&response.next_page_token),
        }
    }

    pub fn text(&self) -> String {
        if self.bookings.is_empty() {
            return "no bookings\n".into();
        }
        let rows: Vec<Vec<String>> = self
            .bookings
            .iter()
            .map(|booking| {
                vec![
                    booking.booking_id.clone(),
                    booking.status.clone(),
                    booking.event_id.clone(),
                    places_text(&booking.tickets),
                    money_text(&booking.total),
                    time_text(&booking.booked_at).to_string(),
                ]
            })
            .collect();
        let mut text = table(
            &["BOOKING", "STATUS", "EVENT", "SEATS", "TOTAL", "BOOKED"],
            &[false, false, false, false, true, false],
            &rows,
        );
        if let Some(token) = &self.next_page_token {
            let _ = writeln!(text, "more: --page {token}");
        }
        text
    }

    pub fn ids(&self) -> String {
        self.bookings.iter().map(|booking| format!("{}\n", booking.booking_id)).collect()
    }
}

// -------------------------------------------------------------------------------------------------
// Admin
// -------------------------------------------------------------------------------------------------

/// What `create` made.
#[derive(Debug, Serialize)]
pub struct Created {
    /// `venue`, `performer` or `event`.
    pub kind: &'static str,
    pub id: String,
    pub name: String,
}

impl Created {
    pub fn text(&self) -> String {
        format!("created {} {}  {}\n", self.kind, self.id, self.name)
    }
}

#[derive(Debug, Serialize)]
pub struct QueueSettings {
    pub event_id: String,
    pub enabled: bool,
    pub admission_rate_per_second: u32,
    pub opens_at: Option<String>,
    pub pass_ttl_seconds: u32,
    pub seats_per_pass: u32,
    pub joined: u64,
    pub admitted: u64,
    pub sold_out: bool,
}

impl QueueSettings {
    pub fn from_pb(response: pb::ConfigureQueueResponse) -> Self {
        Self {
            opens_at: time(response.opens_at.as_ref()),
            event_id: response.event_id,
            enabled: response.enabled,
            admission_rate_per_second: response.admission_rate_per_second,
            pass_ttl_seconds: response.pass_ttl_seconds,
            seats_per_pass: response.seats_per_pass,
            joined: response.joined,
            admitted: response.admitted,
            sold_out: response.sold_out,
        }
    }

    pub fn text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "event           {}", self.event_id);
        let _ = writeln!(text, "waiting room    {}", if self.enabled { "on" } else { "off" });
        let rate = match self.admission_rate_per_second {
            0 => "automatic (as seats allow)".to_string(),
            rate => format!("{rate} buyers per second"),
        };
        let _ = writeln!(text, "admission       {rate}");
        let _ = writeln!(text, "opens           {}", self.opens_at.as_deref().unwrap_or("now (first in, first out)"));
        let _ = writeln!(text, "pass            {} s, {} seats", self.pass_ttl_seconds, self.seats_per_pass);
        let _ = writeln!(text, "joined          {} ({} admitted)", self.joined, self.admitted);
        if self.sold_out {
            let _ = writeln!(text, "sold out");
        }
        text
    }
}

// -------------------------------------------------------------------------------------------------
// Waiting room
// -------------------------------------------------------------------------------------------------

/// One message of the buyer's standing in line (`queue join --json` prints one per line).
#[derive(Debug, Serialize)]
pub struct Standing {
    pub event_id: String,
    /// `not_open`, `waiting`, `admitted`, `pass_expired`, `sold_out` or `closed`.
    pub state: String,
    /// 1-based place in line; 0 before the opening draw.
    pub position: u64,
    pub ahead: u64,
    pub estimated_wait_seconds: Option<u32>,
    pub opens_at: Option<String>,
    /// Set when admitted: pass it to `hold --pass`.
    pub admission_pass: Option<String>,
    pub pass_expires_at: Option<String>,
    pub pass_seats: u32,
}

impl Standing {
    pub fn from_pb(standing: pb::QueueStanding) -> Self {
        let state = pb::QueueState::try_from(standing.state).unwrap_or_default();
        Self {
            state: enum_word(state.as_str_name(), "QUEUE_STATE_"),
            opens_at: time(standing.opens_at.as_ref()),
            pass_expires_at: time(standing.pass_expires_at.as_ref()),
            admission_pass: non_empty(&standing.admission_pass),
            event_id: standing.event_id,
            position: standing.position,
            ahead: standing.ahead,
            estimated_wait_seconds: standing.estimated_wait_seconds,
            pass_seats: standing.pass_seats,
        }
    }

    /// The standing as one line (without the pass, which is printed apart).
    pub fn line(&self) -> String {
        match self.state.as_str() {
            "not_open" => format!("not open yet: opens at {}; the order is drawn then", time_text(&self.opens_at)),
            "waiting" => {
                let wait = match self.estimated_wait_seconds {
                    Some(seconds) => format!(", about {seconds} s to go"),
                    None => String::new(),
                };
                format!("waiting: position {}, {} ahead{wait}", self.position, self.ahead)
            }
            "admitted" => format!(
                "admitted: hold up to {} seats with the pass before {}",
                self.pass_seats,
                time_text(&self.pass_expires_at)
            ),
            "pass_expired" => "the admission pass expired without a hold".into(),
            "sold_out" => "sold out".into(),
            "closed" => "the waiting room is off: hold seats directly".into(),
            other => format!("state {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_money_has_two_decimals() {
        let text = table(&["A", "NUMBER"], &[false, true], &[vec!["long cell".into(), "7".into()]]);
        assert_eq!(text, "A          NUMBER\nlong cell       7\n");
        assert_eq!(money_text(&Some(Money { amount_minor: 12_005, currency: "EUR".into() })), "120.05 EUR");
        assert_eq!(money_text(&Some(Money { amount_minor: -5, currency: "USD".into() })), "-0.05 USD");
        assert_eq!(enum_word("HOLD_STATUS_ACTIVE", "HOLD_STATUS_"), "active");
    }

    #[test]
    fn places_list_seats_then_standing_counts() {
        let ticket = |section: &str, seat: Option<&str>| TicketView {
            section_id: section.into(),
            seat_id: seat.map(Into::into),
            price_level_id: "P".into(),
            price: None,
            code: None,
        };
        let tickets = [ticket("101", Some("101:A:1")), ticket("FLOOR", None), ticket("FLOOR", None)];
        assert_eq!(places_text(&tickets), "101:A:1 FLOOR x2");
    }
}
