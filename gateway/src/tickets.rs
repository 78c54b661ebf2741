//! Ticket codes on bookings, their redemption at the door, the sales report, and waitlist
//! answers.

use tonic::Status;
use turnstile_engine::ids::{BookingId, EventId};
use turnstile_engine::inventory::{BookingStatus, BookingView, ReportRow, WaitlistView};
use turnstile_engine::{Error, TicketRejection};
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::redeem_ticket_response::Result as Check;

use crate::convert;
use crate::error::{invalid, status};
use crate::state::Gateway;

impl Gateway {
    /// A booking as its buyer sees it: a confirmed booking's tickets carry their codes.
    pub(crate) fn booking_message(&self, booking: &BookingView) -> pb::Booking {
        let mut message = convert::booking(booking);
        if booking.status == BookingStatus::Confirmed {
            for (index, ticket) in message.tickets.iter_mut().enumerate() {
                ticket.code = self.admission.ticket_code(booking.booking_id.as_str(), index as u32);
            }
        }
        message
    }

    pub(crate) async fn waitlist_status(
        &self,
        caller: turnstile_engine::inventory::Caller,
        view: WaitlistView,
    ) -> Result<pb::WaitlistStatus, Status> {
        use pb::waitlist_status::State;
        Ok(match view {
            WaitlistView::NotWaiting => pb::WaitlistStatus { state: State::NotWaiting as i32, ..Default::default() },
            WaitlistView::Waiting { position, section_id, quantity } => pb::WaitlistStatus {
                state: State::Waiting as i32,
                position,
                section_id: section_id.unwrap_or_default(),
                quantity,
                offered_hold: None,
            },
            WaitlistView::Offered { hold_id } => {
                let hold = self.engine.get_hold(caller, &hold_id).await.map_err(status)?;
                pb::WaitlistStatus {
                    state: State::Offered as i32,
                    quantity: hold.tickets.len() as u32,
                    offered_hold: Some(convert::hold(&hold)),
                    ..Default::default()
                }
            }
        })
    }

    pub(crate) async fn redeem(&self, code: &str) -> Result<pb::RedeemTicketResponse, Status> {
        let code = code.trim();
        if code.is_empty() {
            return Err(invalid("code", "required"));
        }
        let answer = |result: Check, reason: String| pb::RedeemTicketResponse {
            result: result as i32,
            reason,
            ..Default::default()
        };
        let Some(claims) = self.admission.verify_ticket_code(code) else {
            return Ok(answer(Check::Forged, "not a ticket code signed by this system".into()));
        };
        let booking_id = BookingId::new(claims.bkg);
        let known = |mut response: pb::RedeemTicketResponse, booking: &BookingView| {
            response.booking_id = booking.booking_id.to_string();
            response.event_id = booking.event_id.to_string();
            let message = convert::booking(booking);
            response.ticket = message.tickets.into_iter().nth(claims.idx as usize);
            response.redeemed_at = response.ticket.as_ref().and_then(|ticket| ticket.redeemed_at);
            response
        };
        match self.engine.redeem_ticket(&booking_id, claims.idx).await {
            Ok(booking) => Ok(known(answer(Check::Admitted, "valid: admit the holder".into()), &booking)),
            Err(Error::TicketRejected { reason }) => {
                let check = match reason {
                    TicketRejection::Cancelled => Check::Cancelled,
                    TicketRejection::AlreadyUsed { .. } => Check::AlreadyUsed,
                };
                let response = answer(check, reason.to_string());
                // The booking as it stands, for the person at the door.
                let caller = turnstile_engine::inventory::Caller {
                    buyer: turnstile_engine::ids::BuyerId::new("door"),
                    admin: true,
                };
                match self.engine.get_booking(caller, &booking_id).await {
                    Ok(booking) => Ok(known(response, &booking)),
                    Err(_) => Ok(response),
                }
            }
            Err(Error::NotFound { .. }) => {
                Ok(answer(Check::Unknown, format!("no booking '{booking_id}' with ticket {} here", claims.idx)))
            }
            Err(error) => Err(status(error)),
        }
    }

    pub(crate) async fn report(&self, event_id: &EventId) -> Result<pb::GetEventReportResponse, Status> {
        let (info, rows) = self.engine.event_report(event_id).await.map_err(status)?;
        let currency = info.terms.currency.clone();
        let section = |row: &ReportRow| pb::SectionReport {
            section_id: row.section_id.clone(),
            price_level_id: row.price_level_id.clone(),
            total: row.total,
            available: row.available,
            held: row.held,
            booked: row.booked,
            revenue: Some(convert::money(row.revenue_minor, &currency)),
            redeemed: row.redeemed,
        };
        let mut total = ReportRow {
            section_id: String::new(),
            price_level_id: String::new(),
            total: 0,
            available: 0,
            held: 0,
            booked: 0,
            revenue_minor: 0,
            redeemed: 0,
        };
        for row in &rows {
            total.total += row.total;
            total.available += row.available;
            total.held += row.held;
            total.booked += row.booked;
            total.revenue_minor += row.revenue_minor;
            total.redeemed += row.redeemed;
        }
        Ok(pb::GetEventReportResponse {
            event_id: event_id.to_string(),
            sections: rows.iter().map(section).collect(),
            total: Some(section(&total)),
        })
    }
}
