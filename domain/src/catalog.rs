//! Venues, performers and events: the descriptive data around inventories. Read by every view and
//! by search; written by admins. Each record is immutable behind an `Arc` and replaced whole on
//! update, so readers never see half an update and never hold a lock while they work.

use std::sync::Arc;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::error::{quoted, Error, Result};
use crate::ids::{EventId, PerformerId, VenueId};
use crate::inventory::{EventStatus, PriceLevel, Terms};
use crate::limits;
use crate::seat_map::{validate_name, validate_text, SeatMap, SectionSpec};

#[derive(Clone, Debug, Default)]
pub struct VenueSpec {
    pub name: String,
    pub city: String,
    pub address: String,
    pub sections: Vec<SectionSpec>,
}

#[derive(Debug)]
pub struct Venue {
    pub venue_id: VenueId,
    pub name: String,
    pub city: String,
    pub address: String,
    pub seat_map: Arc<SeatMap>,
}

/// A venue as stored: the admin's spec, from which the seat map is rebuilt.
#[derive(Debug, Serialize, Deserialize)]
pub struct VenueRecord {
    pub venue_id: VenueId,
    pub name: String,
    pub city: String,
    pub address: String,
    pub sections: Vec<SectionSpec>,
}

impl Venue {
    pub fn record(&self) -> VenueRecord {
        VenueRecord {
            venue_id: self.venue_id.clone(),
            name: self.name.clone(),
            city: self.city.clone(),
            address: self.address.clone(),
            sections: self.seat_map.specs(),
        }
    }

    pub fn from_record(record: VenueRecord) -> Result<Self> {
        Ok(Self {
            seat_map: Arc::new(SeatMap::build(&record.sections)?),
            venue_id: record.venue_id,
            name: record.name,
            city: record.city,
            address: record.address,
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct PerformerSpec {
    pub name: String,
    pub description: String,
    pub genre: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Performer {
    pub performer_id: PerformerId,
    pub name: String,
    pub description: String,
    pub genre: String,
}

#[derive(Clone, Debug, Default)]
pub struct EventSpec {
    pub name: String,
    pub description: String,
    pub category: String,
    pub venue_id: VenueId,
    pub performer_ids: Vec<PerformerId>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub currency: String,
    pub price_levels: Vec<PriceLevel>,
    /// `None` takes the default.
    pub hold_ttl_ms: Option<u64>,
    /// `None` takes the default.
    pub buyer_seat_limit: Option<u32>,
}

/// Changes to an event; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct EventUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub starts_at_ms: Option<i64>,
    pub ends_at_ms: Option<i64>,
    pub hold_ttl_ms: Option<u64>,
    pub buyer_seat_limit: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventInfo {
    pub event_id: EventId,
    pub name: String,
    pub description: String,
    pub category: String,
    pub venue_id: VenueId,
    pub performer_ids: Vec<PerformerId>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    /// The terms the event was created with, updated as admins change them. The event's actor is
    /// built from these and is the authority on them from then on.
    pub terms: Terms,
    pub status: EventStatus,
    pub created_at_ms: u64,
}

impl Default for VenueId {
    fn default() -> Self {
        VenueId::new("")
    }
}

fn validate_schedule(starts_at_ms: i64, ends_at_ms: i64) -> Result<()> {
    if starts_at_ms <= 0 {
        return Err(Error::invalid("starts_at", "is required"));
    }
    if ends_at_ms <= starts_at_ms {
        return Err(Error::invalid("ends_at", "must be after starts_at"));
    }
    Ok(())
}

/// The catalog of one node. Maps are concurrent so views and search read without a global lock.
#[derive(Default)]
pub struct Catalog {
    venues: DashMap<VenueId, Arc<Venue>>,
    performers: DashMap<PerformerId, Arc<Performer>>,
    events: DashMap<EventId, Arc<EventInfo>>,
}

impl Catalog {
    pub fn venue(&self, venue_id: &VenueId) -> Result<Arc<Venue>> {
        self.venues.get(venue_id).map(|venue| venue.clone()).ok_or_else(|| Error::not_found("venue", venue_id.as_str()))
    }

    pub fn performer(&self, performer_id: &PerformerId) -> Result<Arc<Performer>> {
        self.performers
            .get(performer_id)
            .map(|performer| performer.clone())
            .ok_or_else(|| Error::not_found("performer", performer_id.as_str()))
    }

    pub fn event(&self, event_id: &EventId) -> Result<Arc<EventInfo>> {
        self.events.get(event_id).map(|event| event.clone()).ok_or_else(|| Error::not_found("event", event_id.as_str()))
    }

    pub fn events(&self) -> Vec<Arc<EventInfo>> {
        self.events.iter().map(|entry| entry.value().clone()).collect()
    }

    /// Validates a new venue; [`Catalog::insert_venue`] adds it.
    pub fn build_venue(&self, spec: VenueSpec, nonce: u64) -> Result<Arc<Venue>> {
        validate_name("name", &spec.name, true)?;
        validate_name("city", &spec.city, false)?;
        validate_text("address", &spec.address, limits::TEXT_LENGTH_MAX)?;
        let seat_map = SeatMap::build(&spec.sections)?;
        if self.venues.len() >= limits::VENUES_MAX {
            return Err(Error::LimitExceeded {
                limit: "venues",
                reason: format!("at most {} venues", limits::VENUES_MAX),
            });
        }
        Ok(Arc::new(Venue {
            venue_id: VenueId::mint(nonce),
            name: spec.name,
            city: spec.city,
            address: spec.address,
            seat_map: Arc::new(seat_map),
        }))
    }

    /// Adds `venue` or replaces the one with its id (a replicated record applied twice).
    pub fn upsert_venue(&self, venue: Arc<Venue>) {
        self.venues.insert(venue.venue_id.clone(), venue);
    }

    pub fn upsert_performer(&self, performer: Arc<Performer>) {
        self.performers.insert(performer.performer_id.clone(), performer);
    }

    pub fn upsert_event(&self, event: Arc<EventInfo>) {
        self.events.insert(event.event_id.clone(), event);
    }

    pub fn insert_venue(&self, venue: Arc<Venue>) -> Result<()> {
        insert_new(&self.venues, venue.venue_id.clone(), venue, "venue")
    }

    pub fn build_performer(&self, spec: PerformerSpec, nonce: u64) -> Result<Arc<Performer>> {
        validate_name("name", &spec.name, true)?;
        validate_text("description", &spec.description, limits::TEXT_LENGTH_MAX)?;
        validate_name("genre", &spec.genre, false)?;
        if self.performers.len() >= limits::PERFORMERS_MAX {
            return Err(Error::LimitExceeded {
                limit: "performers",
                reason: format!("at most {} performers", limits::PERFORMERS_MAX),
            });
        }
        Ok(Arc::new(Performer {
            performer_id: PerformerId::mint(nonce),
            name: spec.name,
            description: spec.description,
            genre: spec.genre,
        }))
    }

    pub fn insert_performer(&self, performer: Arc<Performer>) -> Result<()> {
        insert_new(&self.performers, performer.performer_id.clone(), performer, "performer")
    }

    pub fn build_event(&self, spec: EventSpec, nonce: u64, now_ms: u64) -> Result<Arc<EventInfo>> {
        validate_name("name", &spec.name, true)?;
        validate_text("description", &spec.description, limits::TEXT_LENGTH_MAX)?;
        validate_name("category", &spec.category, false)?;
        validate_schedule(spec.starts_at_ms, spec.ends_at_ms)?;
        if spec.venue_id.as_str().is_empty() {
            return Err(Error::invalid("venue_id", "is required"));
        }
        let venue = self
            .venue(&spec.venue_id)
            .map_err(|_| Error::invalid("venue_id", format!("no venue {}", quoted(spec.venue_id.as_str()))))?;
        if spec.performer_ids.len() > limits::PERFORMERS_PER_EVENT_MAX {
            return Err(Error::invalid(
                "performer_ids",
                format!("at most {} performers per event", limits::PERFORMERS_PER_EVENT_MAX),
            ));
        }
        for (position, performer_id) in spec.performer_ids.iter().enumerate() {
            if self.performer(performer_id).is_err() {
                return Err(Error::invalid(
                    format!("performer_ids[{position}]"),
                    format!("no performer {}", quoted(performer_id.as_str())),
                ));
            }
            if spec.performer_ids[..position].contains(performer_id) {
                return Err(Error::invalid(
                    format!("performer_ids[{position}]"),
                    format!("performer {} is listed twice", quoted(performer_id.as_str())),
                ));
            }
        }
        let terms = Terms {
            currency: spec.currency,
            price_levels: spec.price_levels,
            hold_ttl_ms: spec.hold_ttl_ms.unwrap_or(limits::HOLD_TTL_MS_DEFAULT),
            buyer_seat_limit: spec.buyer_seat_limit.unwrap_or(limits::BUYER_SEAT_LIMIT_DEFAULT),
        };
        terms.section_levels(&venue.seat_map)?;
        if self.events.len() >= limits::EVENTS_MAX {
            return Err(Error::LimitExceeded {
                limit: "events",
                reason: format!("at most {} events", limits::EVENTS_MAX),
            });
        }
        Ok(Arc::new(EventInfo {
            event_id: EventId::mint(nonce),
            name: spec.name,
            description: spec.description,
            category: spec.category,
            venue_id: spec.venue_id,
            performer_ids: spec.performer_ids,
            starts_at_ms: spec.starts_at_ms,
            ends_at_ms: spec.ends_at_ms,
            terms,
            status: EventStatus::OnSale,
            created_at_ms: now_ms,
        }))
    }

    pub fn insert_event(&self, event: Arc<EventInfo>) -> Result<()> {
        insert_new(&self.events, event.event_id.clone(), event, "event")
    }

    /// Validates and adds a venue in one step (no storage involved).
    pub fn create_venue(&self, spec: VenueSpec, nonce: u64) -> Result<Arc<Venue>> {
        let venue = self.build_venue(spec, nonce)?;
        self.insert_venue(venue.clone())?;
        Ok(venue)
    }

    pub fn create_performer(&self, spec: PerformerSpec, nonce: u64) -> Result<Arc<Performer>> {
        let performer = self.build_performer(spec, nonce)?;
        self.insert_performer(performer.clone())?;
        Ok(performer)
    }

    pub fn create_event(&self, spec: EventSpec, nonce: u64, now_ms: u64) -> Result<Arc<EventInfo>> {
        let event = self.build_event(spec, nonce, now_ms)?;
        self.insert_event(event.clone())?;
        Ok(event)
    }

    /// Checks the descriptive part of an update without applying it.
    pub fn validate_update(&self, event_id: &EventId, update: &EventUpdate) -> Result<()> {
        let event = self.event(event_id)?;
        if let Some(name) = &update.name {
            validate_name("name", name, true)?;
        }
        if let Some(description) = &update.description {
            validate_text("description", description, limits::TEXT_LENGTH_MAX)?;
        }
        if let Some(category) = &update.category {
            validate_name("category", category, false)?;
        }
        validate_schedule(
            update.starts_at_ms.unwrap_or(event.starts_at_ms),
            update.ends_at_ms.unwrap_or(event.ends_at_ms),
        )
    }

    /// Replaces an event's record with `edit` applied to a copy of it.
    pub fn edit_event(&self, event_id: &EventId, edit: impl FnOnce(&mut EventInfo)) -> Result<Arc<EventInfo>> {
        let mut entry = self.events.get_mut(event_id).ok_or_else(|| Error::not_found("event", event_id.as_str()))?;
        let mut event = EventInfo::clone(&entry);
        edit(&mut event);
        *entry = Arc::new(event);
        Ok(entry.clone())
    }
}

fn insert_new<K: std::hash::Hash + Eq + std::fmt::Display + Clone, V>(
    map: &DashMap<K, V>,
    key: K,
    value: V,
    kind: &'static str,
) -> Result<()> {
    match map.entry(key.clone()) {
        dashmap::mapref::entry::Entry::Occupied(_) => Err(Error::AlreadyExists { kind, id: key.to_string() }),
        dashmap::mapref::entry::Entry::Vacant(slot) => {
            slot.insert(value);
            Ok(())
        }
    }
}
