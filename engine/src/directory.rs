//! Every buyer's bookings across events, for listing them: published by the event actors.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use dashmap::DashMap;

use crate::ids::{BookingId, BuyerId};
use crate::inventory::BookingView;

/// Position in a buyer's booking list, newest first: `(booked at, booking id)`.
pub type BookingCursor = (u64, BookingId);

/// Every buyer's bookings across events, newest first. Written by event actors before they
/// acknowledge a booking or a cancellation, so a buyer always finds what they were told about.
#[derive(Default)]
pub struct BookingDirectory {
    by_buyer: DashMap<BuyerId, BTreeMap<(Reverse<u64>, BookingId), BookingView>>,
}

impl BookingDirectory {
    pub fn publish(&self, booking: BookingView) {
        let key = (Reverse(booking.booked_at_ms), booking.booking_id.clone());
        self.by_buyer.entry(booking.buyer.clone()).or_default().insert(key, booking);
    }

    /// One page of a buyer's bookings after `cursor`, and the cursor of the next page if any.
    pub fn list(
        &self,
        buyer: &BuyerId,
        cursor: Option<&BookingCursor>,
        page_size: usize,
    ) -> (Vec<BookingView>, Option<BookingCursor>) {
        let Some(bookings) = self.by_buyer.get(buyer) else {
            return (Vec::new(), None);
        };
        let mut page: Vec<BookingView> = match cursor {
            Some((booked_at_ms, booking_id)) => {
                let after = (Reverse(*booked_at_ms), booking_id.clone());
                bookings
                    .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .take(page_size + 1)
                    .map(|(_, booking)| booking.clone())
                    .collect()
            }
            None => bookings.values().take(page_size + 1).cloned().collect(),
        };
        let next = if page.len() > page_size {
            page.truncate(page_size);
            page.last().map(|last| (last.booked_at_ms, last.booking_id.clone()))
        } else {
            None
        };
        (page, next)
    }
}
