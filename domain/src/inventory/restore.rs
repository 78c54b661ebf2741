//! Checking a checkpoint before it is trusted. A checkpoint is our own bytes, CRC-checked by the
//! store, but recovery must never turn a damaged or mismatched one into a panic later (a view that
//! indexes past the venue, an expiry that finds no hold). Every record is checked here for what the
//! rest of the inventory takes for granted: indexes within the venue and the terms, prices for
//! every section a hold touches, deadlines exactly for the active holds, references that resolve.
//! The accounting (counters, seat states, buyer usage) is `check_invariants`' part.

use std::collections::{BTreeSet, HashSet};

use super::{BookingStatus, HoldStatus, Inventory, LockedPrice, Places};
use crate::limits;

type Check = std::result::Result<(), String>;

impl Inventory {
    /// Structural checks of every record; `check_invariants` follows.
    pub(super) fn validate_records(&self) -> Check {
        let section_levels = self.terms.section_levels(&self.seat_map).map_err(|error| format!("terms: {error}"))?;
        if section_levels != self.section_levels {
            return Err(format!(
                "section price levels {:?} do not follow from the terms ({section_levels:?})",
                self.section_levels
            ));
        }
        if let Some(rules) = &self.pricing {
            rules.validate().map_err(|error| format!("pricing: {error}"))?;
        }
        if self.recent_holds.len() > limits::DEMAND_HOLDS_PER_MINUTE_MAX as usize {
            return Err(format!("{} holds in the demand window", self.recent_holds.len()));
        }
        for (hold_id, hold) in &self.holds {
            let what = format!("hold {hold_id}");
            self.check_places(&what, &hold.places)?;
            self.check_prices(&what, &hold.places, &hold.prices)?;
            if hold.expires_at_ms < hold.placed_at_ms {
                return Err(format!("{what} expires before it was placed"));
            }
            if u32::from(hold.extensions) > limits::HOLD_EXTENSIONS_MAX {
                return Err(format!("{what} was extended {} times", hold.extensions));
            }
            match (&hold.status, &hold.booking_id) {
                (HoldStatus::Confirmed, Some(booking_id)) => {
                    let booking = self.bookings.get(booking_id).ok_or(format!("{what} names a missing booking"))?;
                    if &booking.hold_id != hold_id || booking.buyer != hold.buyer {
                        return Err(format!("{what} and its booking {booking_id} do not name each other"));
                    }
                }
                (HoldStatus::Confirmed, None) => return Err(format!("{what} is confirmed without a booking")),
                (_, Some(_)) => return Err(format!("{what} is {:?} but names a booking", hold.status)),
                (_, None) => {}
            }
        }
        for (booking_id, booking) in &self.bookings {
            let what = format!("booking {booking_id}");
            self.check_places(&what, &booking.places)?;
            self.check_prices(&what, &booking.places, &booking.prices)?;
            if let Some(hold) = self.holds.get(&booking.hold_id) {
                if hold.booking_id.as_ref() != Some(booking_id) {
                    return Err(format!("{what} names hold {}, which names another booking", booking.hold_id));
                }
            }
            if booking.redeemed_at_ms.len() > booking.places.count() as usize {
                return Err(format!("{what} has more redeemed tickets than tickets"));
            }
            if booking.status == BookingStatus::Cancelled && booking.cancelled_at_ms.is_none() {
                return Err(format!("{what} is cancelled without a time"));
            }
        }
        let expected: BTreeSet<(u64, &super::HoldId)> = self
            .holds
            .iter()
            .filter(|(_, hold)| hold.status == HoldStatus::Active)
            .map(|(hold_id, hold)| (hold.expires_at_ms, hold_id))
            .collect();
        let deadlines: BTreeSet<(u64, &super::HoldId)> =
            self.deadlines.iter().map(|(deadline, hold_id)| (*deadline, hold_id)).collect();
        if expected != deadlines {
            return Err("the deadlines are not exactly those of the active holds".into());
        }
        for (_, hold_id) in &self.ended_holds {
            if self.holds.get(hold_id).is_some_and(|hold| hold.status == HoldStatus::Active) {
                return Err(format!("hold {hold_id} is listed as ended but is active"));
            }
        }
        for ((buyer, key), hold_id) in &self.hold_keys {
            if self.holds.get(hold_id).is_none_or(|hold| &hold.buyer != buyer) {
                return Err(format!("idempotency key '{key}' of {buyer} names hold {hold_id}, not theirs"));
            }
        }
        for ((buyer, key), booking_id) in &self.confirm_keys {
            if self.bookings.get(booking_id).is_none_or(|booking| &booking.buyer != buyer) {
                return Err(format!("idempotency key '{key}' of {buyer} names booking {booking_id}, not theirs"));
            }
        }
        self.check_waitlist()
    }

    fn check_places(&self, what: &str, places: &Places) -> Check {
        match places {
            Places::Seats(seats) => {
                if seats.is_empty() || seats.len() > limits::SEATS_PER_HOLD_MAX as usize {
                    return Err(format!("{what} has {} seats", seats.len()));
                }
                let mut seen = HashSet::with_capacity(seats.len());
                for &seat in seats {
                    if seat >= self.seat_map.seat_count {
                        return Err(format!("{what} names seat {seat}; the venue has {}", self.seat_map.seat_count));
                    }
                    if !seen.insert(seat) {
                        return Err(format!("{what} names seat {seat} twice"));
                    }
                }
            }
            Places::General { section, quantity } => {
                let Some(layout) = self.seat_map.sections.get(*section as usize) else {
                    return Err(format!(
                        "{what} names section {section}; the venue has {}",
                        self.seat_map.sections.len()
                    ));
                };
                if !layout.is_general_admission() {
                    return Err(format!("{what} takes a quantity in reserved section {}", layout.section_id));
                }
                if *quantity == 0 || *quantity > layout.capacity() {
                    return Err(format!("{what} takes {quantity} places of {}", layout.capacity()));
                }
            }
        }
        Ok(())
    }

    /// One price per section the places touch, at that section's level, within bounds.
    fn check_prices(&self, what: &str, places: &Places, prices: &[LockedPrice]) -> Check {
        let mut sections: Vec<u16> = match places {
            Places::Seats(seats) => seats.iter().map(|&seat| self.seat_map.position(seat).section).collect(),
            Places::General { section, .. } => vec![*section],
        };
        sections.sort_unstable();
        sections.dedup();
        let mut priced: Vec<u16> = prices.iter().map(|price| price.section).collect();
        priced.sort_unstable();
        if priced != sections {
            return Err(format!("{what} is priced for sections {priced:?}, its places are in {sections:?}"));
        }
        let price_max = limits::PRICE_MINOR_MAX * i64::from(limits::PRICE_CEILING_PERCENT_MAX) / 100;
        for price in prices {
            if price.level != self.section_levels[price.section as usize] {
                return Err(format!("{what} prices section {} at level {}", price.section, price.level));
            }
            if !(0..=price_max).contains(&price.amount_minor) {
                return Err(format!("{what} has a price of {}", price.amount_minor));
            }
        }
        Ok(())
    }

    fn check_waitlist(&self) -> Check {
        if self.waitlist.len() > limits::WAITLIST_MAX {
            return Err(format!("{} buyers on the waitlist", self.waitlist.len()));
        }
        let mut buyers = HashSet::with_capacity(self.waitlist.len());
        for entry in &self.waitlist {
            if !buyers.insert(&entry.buyer) {
                return Err(format!("buyer {} is on the waitlist twice", entry.buyer));
            }
            if entry.section.is_some_and(|section| section as usize >= self.seat_map.sections.len()) {
                return Err(format!("waitlist entry of {} names a section past the venue", entry.buyer));
            }
            if entry.quantity == 0 || entry.quantity > limits::SEATS_PER_HOLD_MAX {
                return Err(format!("waitlist entry of {} wants {} places", entry.buyer, entry.quantity));
            }
            if let Some(hold_id) = &entry.offered {
                let offered = self.holds.get(hold_id).is_some_and(|hold| {
                    hold.status == HoldStatus::Active && hold.from_waitlist && hold.buyer == entry.buyer
                });
                if !offered {
                    return Err(format!("waitlist entry of {} names hold {hold_id}, not a live offer", entry.buyer));
                }
            }
        }
        Ok(())
    }
}
