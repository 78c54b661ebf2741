//! Builds search documents from the engine's catalog: the one place that knows both sides.

use turnstile_engine::catalog::{Catalog, EventInfo};
use turnstile_engine::inventory::EventStatus;

use crate::schema::EventDocument;

/// The document for `event`, or `None` when it is cancelled and must not be found. A venue or
/// performer missing from the catalog leaves its names empty rather than hiding the event.
pub fn event_document(catalog: &Catalog, event: &EventInfo) -> Option<EventDocument> {
    if event.status == EventStatus::Cancelled {
        return None;
    }
    let (venue_name, city) =
        catalog.venue(&event.venue_id).map(|venue| (venue.name.clone(), venue.city.clone())).unwrap_or_default();
    let performer_names = event
        .performer_ids
        .iter()
        .filter_map(|performer_id| catalog.performer(performer_id).ok())
        .map(|performer| performer.name.clone())
        .collect();
    Some(EventDocument {
        event_id: event.event_id.as_str().to_owned(),
        name: event.name.clone(),
        description: event.description.clone(),
        category: event.category.clone(),
        venue_id: event.venue_id.as_str().to_owned(),
        venue_name,
        city,
        performer_ids: event.performer_ids.iter().map(|performer_id| performer_id.as_str().to_owned()).collect(),
        performer_names,
        starts_at_ms: event.starts_at_ms,
    })
}

/// Documents for every event of `catalog` that should be searchable, for
/// [`SearchIndex::rebuild`](crate::SearchIndex::rebuild).
pub fn event_documents(catalog: &Catalog) -> impl Iterator<Item = EventDocument> + '_ {
    catalog.events().into_iter().filter_map(move |event| event_document(catalog, &event))
}
