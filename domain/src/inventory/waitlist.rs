//! The waitlist: when a section (or the whole event) has no places left for what a buyer wants,
//! they may wait in line for it. Places that come back (a release, an expiry, a cancelled booking)
//! are offered in line order, as holds that expire like any other; an offer that lapses goes to
//! the next in line. The event actor makes the offers right after the change that returned the
//! places, before it handles any other request, so new buyers never take returned places from
//! under the waitlist.

use serde::{Deserialize, Serialize};

use super::{Caller, Command, Decision, HoldId, Inventory, Outcome, Places};
use crate::error::{Error, Result};
use crate::ids::BuyerId;
use crate::limits;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct WaitlistEntry {
    pub(super) buyer: BuyerId,
    /// `None`: any section.
    pub(super) section: Option<u16>,
    pub(super) quantity: u32,
    pub(super) joined_at_ms: u64,
    /// The hold offered to this buyer, while it lives.
    pub(super) offered: Option<HoldId>,
}

/// Where a buyer stands on an event's waitlist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitlistView {
    NotWaiting,
    /// 1-based place among those still waiting.
    Waiting {
        position: u32,
        section_id: Option<String>,
        quantity: u32,
    },
    /// Places came back: this hold is theirs until it expires.
    Offered {
        hold_id: HoldId,
    },
}

impl Inventory {
    pub(super) fn decide_join_waitlist(
        &self,
        caller: &Caller,
        section_id: &Option<String>,
        quantity: i64,
        now_ms: u64,
    ) -> Result<Decision> {
        if self.status == super::EventStatus::Cancelled {
            return Err(Error::EventCancelled { event_id: self.event_id.to_string() });
        }
        if !(1..=i64::from(limits::SEATS_PER_HOLD_MAX)).contains(&quantity) {
            return Err(Error::invalid(
                "quantity",
                format!("must be between 1 and {}, got {quantity}", limits::SEATS_PER_HOLD_MAX),
            ));
        }
        let quantity = quantity as u32;
        let section = match section_id {
            None => None,
            Some(section_id) if section_id.len() > limits::LABEL_LENGTH_MAX => {
                return Err(Error::invalid("section_id", format!("is longer than {} bytes", limits::LABEL_LENGTH_MAX)));
            }
            Some(section_id) => Some(
                self.seat_map
                    .section_index(section_id)
                    .ok_or_else(|| Error::invalid("section_id", format!("no section '{section_id}' in this venue")))?,
            ),
        };
        if self.waitlist.iter().any(|entry| entry.buyer == caller.buyer) {
            // Joining again keeps the place.
            return Ok(Decision::Answered(Outcome::Waitlist { buyer: caller.buyer.clone() }));
        }
        if self.could_offer(&caller.buyer, section, quantity).is_some() {
            return Err(Error::Waitlist {
                reason: "places are on sale for this request: hold them instead of waiting".into(),
            });
        }
        self.check_buyer_limits(&caller.buyer, quantity)?;
        if self.waitlist.len() >= limits::WAITLIST_MAX {
            return Err(Error::LimitExceeded {
                limit: "waitlist",
                reason: format!("the waitlist of this event holds {} buyers", limits::WAITLIST_MAX),
            });
        }
        Ok(Decision::Apply(Command::JoinWaitlist {
            buyer: caller.buyer.clone(),
            section,
            quantity,
            joined_at_ms: now_ms,
        }))
    }

    pub(super) fn decide_leave_waitlist(&self, caller: &Caller) -> Result<Decision> {
        match self.waitlist.iter().find(|entry| entry.buyer == caller.buyer) {
            Some(entry) if entry.offered.is_none() => {
                Ok(Decision::Apply(Command::LeaveWaitlist { buyer: caller.buyer.clone() }))
            }
            Some(_) => Err(Error::Waitlist {
                reason: "places were already offered as a hold: release the hold instead".into(),
            }),
            None => Ok(Decision::Answered(Outcome::Waitlist { buyer: caller.buyer.clone() })),
        }
    }

    pub(super) fn apply_join_waitlist(
        &mut self,
        buyer: &BuyerId,
        section: Option<u16>,
        quantity: u32,
        joined_at_ms: u64,
    ) {
        assert!(self.waitlist.iter().all(|entry| &entry.buyer != buyer), "buyer {buyer} on the waitlist twice");
        self.waitlist.push_back(WaitlistEntry { buyer: buyer.clone(), section, quantity, joined_at_ms, offered: None });
    }

    pub(super) fn apply_leave_waitlist(&mut self, buyer: &BuyerId) {
        let before = self.waitlist.len();
        self.waitlist.retain(|entry| &entry.buyer != buyer || entry.offered.is_some());
        assert_eq!(self.waitlist.len() + 1, before, "buyer {buyer} left a waitlist they were not waiting on");
    }

    /// Marks the buyer's entry as offered this hold.
    pub(super) fn apply_offer(&mut self, buyer: &BuyerId, hold_id: &HoldId) {
        let entry = self
            .waitlist
            .iter_mut()
            .find(|entry| &entry.buyer == buyer && entry.offered.is_none())
            .expect("an offer goes to a waiting buyer");
        entry.offered = Some(hold_id.clone());
    }

    /// An offered hold ended (confirmed, released, expired, cancelled): its entry is done.
    pub(super) fn offer_ended(&mut self, hold_id: &HoldId) {
        self.waitlist.retain(|entry| entry.offered.as_ref() != Some(hold_id));
    }

    /// Places for this request, if they are on sale now.
    fn could_offer(&self, buyer: &BuyerId, section: Option<u16>, quantity: u32) -> Option<Places> {
        let sections: Vec<u16> = match section {
            Some(section) => vec![section],
            None => (0..self.seat_map.sections.len() as u16).collect(),
        };
        sections.into_iter().find_map(|section| {
            let section_id = &self.seat_map.sections[section as usize].section_id;
            self.best_available(section_id, i64::from(quantity), buyer).ok()
        })
    }

    /// The next offer to make, if any waiting buyer's request can be served now: the first in
    /// line whose request fits (a buyer over their limit is passed over, not removed).
    pub fn waitlist_offer(&self, now_ms: u64, nonce: u64) -> Option<Command> {
        if self.status == super::EventStatus::Cancelled {
            return None;
        }
        for entry in self.waitlist.iter().filter(|entry| entry.offered.is_none()) {
            if self.check_buyer_limits(&entry.buyer, entry.quantity).is_err() {
                continue;
            }
            let Some(places) = self.could_offer(&entry.buyer, entry.section, entry.quantity) else { continue };
            let prices = self.lock_prices(&places, now_ms);
            let mut hold_nonce = nonce;
            let mut hold_id = HoldId::mint(&self.event_id, hold_nonce);
            while self.holds.contains_key(&hold_id) {
                hold_nonce = hold_nonce.wrapping_add(1);
                hold_id = HoldId::mint(&self.event_id, hold_nonce);
            }
            return Some(Command::OfferFromWaitlist {
                hold_id,
                buyer: entry.buyer.clone(),
                places,
                prices,
                placed_at_ms: now_ms,
                expires_at_ms: now_ms + self.terms.hold_ttl_ms,
            });
        }
        None
    }

    pub fn waitlist_view(&self, buyer: &BuyerId) -> WaitlistView {
        let mut position = 0;
        for entry in &self.waitlist {
            if entry.offered.is_none() {
                position += 1;
            }
            if &entry.buyer == buyer {
                return match &entry.offered {
                    Some(hold_id) => WaitlistView::Offered { hold_id: hold_id.clone() },
                    None => WaitlistView::Waiting {
                        position,
                        section_id: entry
                            .section
                            .map(|section| self.seat_map.sections[section as usize].section_id.clone()),
                        quantity: entry.quantity,
                    },
                };
            }
        }
        WaitlistView::NotWaiting
    }

    /// Buyers waiting (not yet offered anything).
    pub fn waitlist_len(&self) -> usize {
        self.waitlist.iter().filter(|entry| entry.offered.is_none()).count()
    }
}
